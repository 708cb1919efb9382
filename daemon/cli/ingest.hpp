// SPDX-License-Identifier: Apache-2.0
// Offline import of local mail (.eml files, Maildirs, Maildir++ trees) into the
// capture pipeline. File code lives here, never in the pipeline.
#pragma once

#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace crmcap::cli {

// One message file found under a PATH given to `ingest`.
struct LocalMessage {
  std::string path;
  std::string folder;            // "INBOX", "Sent" (Maildir++ ".Sent"), or "" for a lone file
  std::int64_t received_at = 0;  // Maildir delivery time, else the file's mtime
};

// Finds the messages under each path: an .eml file, a Maildir (cur/ and new/),
// or a folder of Maildirs. Fails with the path when one does not exist or holds
// no mail.
store::Result<std::vector<LocalMessage>> find_messages(const std::vector<std::string>& paths);

// The file's modification time in Unix seconds, 0 when it cannot be read.
std::int64_t mtime_of(const std::string& path);

// Parses every message, then decides in date order (so a thread's opportunity
// flows from earlier to later mail whatever the file order), committing in
// batches of `batch_size`. A file that cannot be read is recorded as failed.
store::Result<capture::Tally> ingest(const std::vector<LocalMessage>& messages,
                                     capture::Pipeline& pipeline, store::Activities& activities,
                                     std::size_t batch_size = 1000);

}  // namespace crmcap::cli
