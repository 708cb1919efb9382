// SPDX-License-Identifier: Apache-2.0
// Local mail for offline import: finds the message files of .eml paths,
// Maildirs and Maildir++ trees. It only lists files; reading and parsing them
// is the caller's (daemon/cli/ingest.hpp).
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace crmcap::maildir {

// One message file found under a path given to find_messages().
struct LocalMessage {
  std::string path;
  std::string folder;            // "INBOX", "Sent" (Maildir++ ".Sent"), or "" for a lone file
  std::int64_t received_at = 0;  // Maildir delivery time, else the file's mtime
};

// Finds the messages under each path: an .eml file, a Maildir (cur/ and new/,
// its Maildir++ sub-folders ".Name" included), or a folder of Maildirs (each
// named as its folder) or of .eml and .ics files. Within a Maildir, files are listed
// by path; hidden files are skipped. Fails with "PATH: no such file or
// directory" or "PATH: no mail found (...)" for the first path that does not
// exist or holds no mail.
boost::system::result<std::vector<LocalMessage>, std::string> find_messages(
    const std::vector<std::string>& paths);

// The file's modification time in Unix seconds, 0 when it cannot be read.
std::int64_t mtime_of(const std::string& path);

}  // namespace crmcap::maildir
