// SPDX-License-Identifier: Apache-2.0
// The pure part of folder sync: from what the server reports now and the stored
// state to what to do. No I/O; unit-tested on its own.
#pragma once

#include "connectors/imap/imap.hpp"

#include <optional>
#include <string>
#include <vector>

namespace crmcap::imap {

// What STATUS or EXAMINE told about a folder.
struct FolderObservation {
  std::uint32_t uidvalidity = 0;
  std::uint32_t uidnext = 0;  // 0: not reported
  std::uint32_t messages = 0;
  std::optional<std::uint64_t> highest_modseq;  // with CONDSTORE
};

enum class PlanKind {
  unchanged,    // nothing new since the stored state: skip the folder
  backfill,     // first sync (or resumed, or after a UIDVALIDITY change): SEARCH SINCE
  incremental,  // fetch UIDs above state.highest_uid
  paused,       // the folder shrank suspiciously: touch nothing, warn
};

struct FolderPlan {
  PlanKind kind = PlanKind::unchanged;
  bool uidvalidity_changed = false;
  // The state to start from (uidvalidity of now; highest_uid reset on change).
  FolderState start;
  std::string reason;  // one sentence for logs and warnings
};

FolderPlan plan_folder(const std::string& folder, const std::optional<FolderState>& stored,
                       const FolderObservation& now, double min_keep_fraction);

// How a pass splits `n` messages into batches (each one UID FETCH and one
// commit) of at most `batch`, in order; they add up to n. The first batches
// are smaller (batch/8, /4, /2), so capture starts on one while the server
// prepares the next, and so are the last two (batch/4, /8), so the folder's
// final commit, which nothing overlaps, is short. Up to batch/2 messages are
// one batch.
std::vector<std::size_t> batch_sizes(std::size_t n, std::size_t batch);

}  // namespace crmcap::imap
