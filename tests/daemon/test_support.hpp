// SPDX-License-Identifier: Apache-2.0
// Shared by the daemon tests: a temporary directory, a small CRM directory,
// and the pieces of messages and calendars they write.
#pragma once

#include "daemon/capture/capture.hpp"
#include "daemon/capture/directory_import.hpp"
#include "store/store.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace crmcap::test {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline constexpr const char* k_companies =
    "id,name,domains\n"
    "CO-1,Acme,acme.com\n"
    "CO-2,Globex,globex.com\n"
    "CO-3,Initech,initech.com\n"
    "CO-4,Umbrella,umbrella.com\n";
inline constexpr const char* k_contacts =
    "id,name,emails,company_id\n"
    "C-1,Jane Doe,jane@acme.com,CO-1\n"
    "C-2,Hank Scorpio,hank@globex.com,CO-2\n"
    "C-3,Peter Gibbons,peter@initech.com,CO-3\n"
    "C-4,Bill Lumbergh,bill.lumbergh@gmail.com,\n";
inline constexpr const char* k_opportunities =
    "id,name,company_id,stage,status,contact_ids\n"
    "O-1,Acme renewal,CO-1,Proposal,open,C-1\n"
    "O-2,Acme 2025,CO-1,Closed,won,C-1\n"
    "O-3,Initech TPS,CO-3,Qualify,open,\n"
    "O-4,Initech printers,CO-3,Qualify,open,\n"
    "O-5,Globex pilot,CO-2,Demo,open,\n";

// Opens a store at `path` with the directory above imported.
inline std::unique_ptr<store::Store> directory_store(const std::string& path) {
  auto st = store::Store::open(path).value();
  using capture::ImportKind;
  EXPECT_TRUE(
      capture::import_directory_csv_text(*st, ImportKind::companies, k_companies, "c", false));
  EXPECT_TRUE(
      capture::import_directory_csv_text(*st, ImportKind::contacts, k_contacts, "p", false));
  EXPECT_TRUE(capture::import_directory_csv_text(*st, ImportKind::opportunities, k_opportunities,
                                                 "o", false));
  return st;
}

// What a built executable printed (stdout and stderr joined) and its exit status.
struct Run {
  int status;
  std::string out;
};

// Runs the built executable `exe` (crm-capture or crm-captured) with `args`
// (already shell-quoted).
inline Run run(const std::string& exe, const std::string& args) {
  const std::string cmd = std::string(CRMCAP_BINARY_DIR) + "/daemon/" + exe + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// A filter for the activities of one kind, of every status.
inline store::ActivityFilter of_kind(store::ActivityKind kind) {
  store::ActivityFilter f;
  f.kind = kind;
  return f;
}

// "YYYYMMDDTHHMMSSZ" of Unix seconds.
inline std::string ics_time(std::int64_t t) {
  const std::string iso = capture::iso_utc(t);  // 2026-11-25T19:08:31Z
  std::string out;
  for (const char c : iso) {
    if (c != '-' && c != ':') out += c;
  }
  return out;
}

inline std::string vevent(const std::string& body) {
  return "BEGIN:VEVENT\r\nDTSTAMP:20261101T000000Z\r\n" + body + "END:VEVENT\r\n";
}

inline std::string vcalendar(const std::string& events) {
  return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + events + "END:VCALENDAR\r\n";
}

// A plain message with the given header lines (each ending in "\n").
inline std::string message(const std::string& headers,
                           const std::string& body = "Hello,\n\nSee below.\n") {
  return headers + "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" + body;
}

}  // namespace crmcap::test
