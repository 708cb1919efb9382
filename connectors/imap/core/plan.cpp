// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/plan.hpp"

namespace crmcap::imap {

FolderPlan plan_folder(const std::string& folder, const std::optional<FolderState>& stored,
                       const FolderObservation& now, double min_keep_fraction) {
  FolderPlan p;
  p.start.folder = folder;
  p.start.uidvalidity = now.uidvalidity;
  p.start.uidnext = now.uidnext;
  p.start.messages = now.messages;
  p.start.highest_modseq = now.highest_modseq.value_or(0);
  if (!stored) {
    p.kind = PlanKind::backfill;
    p.start.backfilling = true;
    p.reason = folder + ": first sync";
    return p;
  }
  const FolderState& s = *stored;
  // A sudden drop (or an empty folder where there was mail) is more often a
  // server or mailbox accident than real deletion: pause once, and act only
  // when the next pass sees the same count.
  const bool shrank = s.messages > 0 && (now.messages == 0 ||
                                         static_cast<double>(now.messages) <
                                             static_cast<double>(s.messages) * min_keep_fraction);
  if (shrank && s.suspect_messages != now.messages + 1) {
    p.kind = PlanKind::paused;
    p.start = s;
    p.start.suspect_messages = now.messages + 1;  // +1 so that 0 messages is recordable
    p.reason = folder + ": paused, the folder reports " + std::to_string(now.messages) +
               " messages where it had " + std::to_string(s.messages) +
               "; nothing is done until a later pass sees the same count";
    return p;
  }
  if (s.uidvalidity != now.uidvalidity) {
    p.kind = PlanKind::backfill;
    p.uidvalidity_changed = true;
    p.start.backfilling = true;
    p.reason = folder + ": UIDVALIDITY changed from " + std::to_string(s.uidvalidity) + " to " +
               std::to_string(now.uidvalidity) + "; re-mapping by Message-ID (X-GM-MSGID on Gmail)";
    return p;
  }
  p.start.highest_uid = s.highest_uid;
  if (s.backfilling) {
    p.kind = PlanKind::backfill;
    p.start.backfilling = true;
    p.reason = folder + ": resuming the first sync above UID " + std::to_string(s.highest_uid);
    return p;
  }
  const bool no_new_uid = now.uidnext != 0 && now.uidnext <= s.highest_uid + 1;
  // The stored UIDNEXT counts only when the mark reached it: a pass that
  // stopped after a middle batch (and older versions stored UIDNEXT with
  // every batch) left UIDs between the two still to fetch.
  const bool same_uidnext =
      now.uidnext != 0 && now.uidnext == s.uidnext && s.uidnext <= s.highest_uid + 1;
  if (no_new_uid || same_uidnext) {
    p.kind = PlanKind::unchanged;
    p.reason = folder + ": nothing new";
    return p;
  }
  p.kind = PlanKind::incremental;
  p.reason = folder + ": new mail above UID " + std::to_string(s.highest_uid);
  return p;
}

}  // namespace crmcap::imap
