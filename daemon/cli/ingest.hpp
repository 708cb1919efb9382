// SPDX-License-Identifier: Apache-2.0
// Offline import of local mail (.eml files, Maildirs, Maildir++ trees, as
// connectors/maildir finds them) into the capture pipeline. File code lives
// here, never in the pipeline.
#pragma once

#include "connectors/maildir/maildir.hpp"
#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace crmcap::cli {

struct IngestSummary {
  std::size_t seen = 0, captured = 0, skipped = 0, failed = 0;
  std::map<std::string, std::size_t> skipped_by_rule;
  std::string line() const;  // "seen 12, captured 7, skipped 4 (bulk 2, internal 2), failed 1"
};

// Parses every message, then decides in date order (so a thread's opportunity
// flows from earlier to later mail whatever the file order), committing in
// batches of `batch_size`. A file that cannot be read is recorded as failed.
store::Result<IngestSummary> ingest(const std::vector<maildir::LocalMessage>& messages,
                                    capture::Pipeline& pipeline, store::Activities& activities,
                                    std::size_t batch_size = 1000);

}  // namespace crmcap::cli
