// SPDX-License-Identifier: Apache-2.0
#include "connectors/maildir/maildir.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>

#include <sys/stat.h>

namespace fs = std::filesystem;

namespace crmcap::maildir {

namespace {

// Maildir file names start with the delivery time: "1700000000.M1P2.host:2,S".
std::int64_t delivery_time(const fs::path& p) {
  const std::string name = p.filename().string();
  std::int64_t t = 0;
  auto r = std::from_chars(name.data(), name.data() + name.size(), t);
  if (r.ec == std::errc{} && r.ptr != name.data() && *r.ptr == '.' && t > 0) return t;
  return mtime_of(p.string());
}

bool is_maildir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p / "cur", ec) || fs::is_directory(p / "new", ec);
}

void add_maildir(const fs::path& dir, const std::string& folder, std::vector<LocalMessage>& out) {
  std::vector<LocalMessage> found;
  for (const char* sub : {"new", "cur"}) {
    std::error_code ec;
    for (fs::directory_iterator it(dir / sub, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->path().filename().string().starts_with(".")) continue;
      found.push_back({it->path().string(), folder, delivery_time(it->path())});
    }
  }
  std::sort(found.begin(), found.end(),
            [](const LocalMessage& a, const LocalMessage& b) { return a.path < b.path; });
  out.insert(out.end(), found.begin(), found.end());
}

// A Maildir++ tree: the root is INBOX, ".Sent" is Sent, ".A.B" is A.B.
void add_maildir_tree(const fs::path& root, const std::string& root_folder,
                      std::vector<LocalMessage>& out) {
  add_maildir(root, root_folder, out);
  std::vector<fs::path> subs;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 1 && name[0] == '.' && it->is_directory(ec) && is_maildir(it->path())) {
      subs.push_back(it->path());
    }
  }
  std::sort(subs.begin(), subs.end());
  for (const auto& s : subs) add_maildir(s, s.filename().string().substr(1), out);
}

}  // namespace

std::int64_t mtime_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_mtime);
}

boost::system::result<std::vector<LocalMessage>, std::string> find_messages(
    const std::vector<std::string>& paths) {
  std::vector<LocalMessage> out;
  for (const auto& arg : paths) {
    const fs::path p(arg);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) {
      out.push_back({p.string(), "", mtime_of(p.string())});
    } else if (fs::is_directory(p, ec)) {
      const std::size_t before = out.size();
      if (is_maildir(p)) {
        add_maildir_tree(p, "INBOX", out);
      } else {
        // A folder of Maildirs (each named as its folder), or of .eml files.
        std::vector<fs::path> entries;
        for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
          entries.push_back(it->path());
        }
        std::sort(entries.begin(), entries.end());
        for (const auto& e : entries) {
          std::string name = e.filename().string();
          if (fs::is_directory(e, ec) && is_maildir(e)) {
            if (name.starts_with(".")) name.erase(0, 1);
            add_maildir_tree(e, name, out);
          } else if (fs::is_regular_file(e, ec) &&
                     (e.extension() == ".eml" || e.extension() == ".ics")) {
            out.push_back({e.string(), p.filename().string(), mtime_of(e.string())});
          }
        }
      }
      if (out.size() == before) {
        return arg +
               ": no mail found (expected an .eml or .ics file, a Maildir with cur/ and new/, or a "
               "folder of Maildirs)";
      }
    } else {
      return arg + ": no such file or directory";
    }
  }
  return out;
}

}  // namespace crmcap::maildir
