// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/plan.hpp"

#include <algorithm>

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
  p.start.refused = s.refused;
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

std::vector<std::size_t> batch_sizes(std::size_t n, std::size_t batch) {
  std::vector<std::size_t> out;
  if (n == 0) return out;
  batch = std::max<std::size_t>(batch, 1);
  if (n <= batch / 2 || batch < 8) {
    for (std::size_t done = 0; done < n; done += batch) out.push_back(std::min(batch, n - done));
    return out;
  }
  const std::size_t head[] = {batch / 8, batch / 4, batch / 2};
  const std::size_t tail[] = {batch / 4, batch / 8};
  const std::size_t tail_total = tail[0] + tail[1];
  std::size_t rest = n;
  for (const std::size_t h : head) {
    if (rest <= h) {
      out.push_back(rest);
      return out;
    }
    out.push_back(h);
    rest -= h;
  }
  while (rest > batch + tail_total) {
    out.push_back(batch);
    rest -= batch;
  }
  if (rest > tail_total) {
    out.push_back(rest - tail_total);
    rest = tail_total;
  }
  for (const std::size_t t : tail) {
    const std::size_t take = std::min(t, rest);
    if (take > 0) out.push_back(take);
    rest -= take;
  }
  return out;
}

}  // namespace crmcap::imap
