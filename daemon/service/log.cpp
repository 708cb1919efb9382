// SPDX-License-Identifier: Apache-2.0
#include "daemon/service/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace crmcap::service {

bool stderr_is_journal() {
  const char* v = std::getenv("JOURNAL_STREAM");
  if (v == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(v, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void log(Level level, std::string_view message) {
  static const bool journal = stderr_is_journal();
  std::string line;
  line.reserve(message.size() + 20);
  if (journal) line += "<" + std::to_string(static_cast<int>(level)) + ">";
  line += "crm-captured: ";
  line += message;
  line += '\n';
  // One write: lines of the network, capture and CalDAV threads stay whole.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace crmcap::service
