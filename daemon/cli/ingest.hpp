// SPDX-License-Identifier: Apache-2.0
// Offline import of local mail (.eml files, Maildirs, Maildir++ trees, as
// connectors/maildir finds them) into the capture pipeline. File code lives
// here, never in the pipeline.
#pragma once

#include "connectors/maildir/maildir.hpp"
#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace crmcap::cli {

// Parses every message and calendar file (.ics: each occurrence in the
// settings' window is one meeting), then decides in date order (so a
// thread's opportunity flows from earlier to later mail whatever the file
// order), committing in batches of `batch_size`. A file that cannot be read,
// and an event that cannot be, is recorded as failed.
store::Result<capture::Tally> ingest(const std::vector<maildir::LocalMessage>& messages,
                                     capture::Pipeline& pipeline, store::Activities& activities,
                                     std::size_t batch_size = 1000);

}  // namespace crmcap::cli
