// SPDX-License-Identifier: Apache-2.0
// The pure folder plan: stored state + what the server reports -> what to do.
#include "connectors/imap/core/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

using namespace crmcap::imap;

namespace {
FolderState stored(std::uint32_t uidvalidity, std::uint32_t highest, std::uint32_t uidnext,
                   std::uint32_t messages) {
  FolderState s;
  s.folder = "INBOX";
  s.uidvalidity = uidvalidity;
  s.highest_uid = highest;
  s.uidnext = uidnext;
  s.messages = messages;
  return s;
}
FolderObservation seen(std::uint32_t uidvalidity, std::uint32_t uidnext, std::uint32_t messages) {
  return FolderObservation{uidvalidity, uidnext, messages, std::nullopt};
}
}  // namespace

TEST(ImapPlan, FirstSyncIsABackfill) {
  const auto p = plan_folder("INBOX", std::nullopt, seen(7, 100, 99), 0.5);
  EXPECT_EQ(p.kind, PlanKind::backfill);
  EXPECT_TRUE(p.start.backfilling);
  EXPECT_EQ(p.start.highest_uid, 0u);
  EXPECT_EQ(p.start.uidvalidity, 7u);
}

TEST(ImapPlan, NothingNewIsUnchanged) {
  EXPECT_EQ(plan_folder("INBOX", stored(7, 99, 100, 99), seen(7, 100, 99), 0.5).kind,
            PlanKind::unchanged);
  // Mail arrived and was expunged again: UIDNEXT moved, but the high-water mark
  // covers everything below it only after a fetch, so it is incremental.
  EXPECT_EQ(plan_folder("INBOX", stored(7, 99, 100, 99), seen(7, 102, 99), 0.5).kind,
            PlanKind::incremental);
}

TEST(ImapPlan, NewMailIsIncrementalFromTheHighWaterMark) {
  const auto p = plan_folder("INBOX", stored(7, 99, 100, 99), seen(7, 105, 104), 0.5);
  EXPECT_EQ(p.kind, PlanKind::incremental);
  EXPECT_EQ(p.start.highest_uid, 99u);
  EXPECT_FALSE(p.start.backfilling);
}

TEST(ImapPlan, UidValidityChangeStartsOverWithRemapping) {
  const auto p = plan_folder("INBOX", stored(7, 99, 100, 99), seen(8, 50, 99), 0.5);
  EXPECT_EQ(p.kind, PlanKind::backfill);
  EXPECT_TRUE(p.uidvalidity_changed);
  EXPECT_EQ(p.start.highest_uid, 0u);
  EXPECT_EQ(p.start.uidvalidity, 8u);
}

TEST(ImapPlan, AnInterruptedBackfillResumesAsABackfill) {
  auto s = stored(7, 40, 100, 99);
  s.backfilling = true;
  const auto p = plan_folder("INBOX", s, seen(7, 100, 99), 0.5);
  EXPECT_EQ(p.kind, PlanKind::backfill);
  EXPECT_EQ(p.start.highest_uid, 40u);
}

// A state whose UIDNEXT is above its mark (an incremental pass stopped after
// a middle batch, as written before UIDNEXT was stored with the last batch
// only) still has UIDs to fetch when UIDNEXT has not moved since.
TEST(ImapPlan, AStoredUidNextAboveTheMarkIsNotTakenAsUnchanged) {
  const auto p = plan_folder("INBOX", stored(7, 6, 14, 13), seen(7, 14, 13), 0.5);
  EXPECT_EQ(p.kind, PlanKind::incremental);
  EXPECT_EQ(p.start.highest_uid, 6u);
  // Once the mark reached it, the same UIDNEXT is unchanged again.
  EXPECT_EQ(plan_folder("INBOX", stored(7, 13, 14, 13), seen(7, 14, 13), 0.5).kind,
            PlanKind::unchanged);
}

TEST(ImapPlan, ASuddenDropPausesOnceThenIsAccepted) {
  const auto s = stored(7, 99, 100, 99);
  const auto p = plan_folder("INBOX", s, seen(7, 100, 0), 0.5);
  EXPECT_EQ(p.kind, PlanKind::paused);
  EXPECT_NE(p.reason.find("0 messages where it had 99"), std::string::npos) << p.reason;
  EXPECT_EQ(p.start.highest_uid, 99u);  // nothing acted on
  EXPECT_EQ(p.start.messages, 99u);
  // The next pass sees the same count: it is real.
  const auto again = plan_folder("INBOX", p.start, seen(7, 100, 0), 0.5);
  EXPECT_EQ(again.kind, PlanKind::unchanged);
  EXPECT_EQ(again.start.messages, 0u);
  // An empty folder after a UIDVALIDITY change pauses too.
  EXPECT_EQ(plan_folder("INBOX", s, seen(9, 1, 0), 0.5).kind, PlanKind::paused);
  // A small drop is normal.
  EXPECT_EQ(plan_folder("INBOX", s, seen(7, 100, 60), 0.5).kind, PlanKind::unchanged);
}

TEST(ImapBatches, AddUpToEveryMessageInBatchesNoLargerThanAsked) {
  for (std::size_t batch : {1u, 2u, 7u, 8u, 9u, 64u, 500u}) {
    for (std::size_t n = 0; n <= 3 * batch + 40; ++n) {
      const auto sizes = batch_sizes(n, batch);
      std::size_t total = 0;
      for (const auto s : sizes) {
        EXPECT_GT(s, 0u) << n << "/" << batch;
        EXPECT_LE(s, batch) << n << "/" << batch;
        total += s;
      }
      EXPECT_EQ(total, n) << n << "/" << batch;
    }
  }
  EXPECT_TRUE(batch_sizes(0, 500).empty());
  EXPECT_EQ(batch_sizes(5, 0), (std::vector<std::size_t>{1, 1, 1, 1, 1}));  // 0 taken as 1
}

TEST(ImapBatches, SmallFirstAndLastAroundFullOnes) {
  EXPECT_EQ(batch_sizes(1, 500), std::vector<std::size_t>{1});  // new mail: one batch
  EXPECT_EQ(batch_sizes(250, 500), std::vector<std::size_t>{250});
  EXPECT_EQ(batch_sizes(300, 500), (std::vector<std::size_t>{62, 125, 113}));
  const auto sizes = batch_sizes(10'000, 500);
  ASSERT_GE(sizes.size(), 6u);
  EXPECT_EQ(std::vector<std::size_t>(sizes.begin(), sizes.begin() + 3),
            (std::vector<std::size_t>{62, 125, 250}));
  EXPECT_EQ(std::vector<std::size_t>(sizes.end() - 2, sizes.end()),
            (std::vector<std::size_t>{125, 62}));
  // Between them, full batches and at most one that is not.
  const auto partial =
      std::count_if(sizes.begin() + 3, sizes.end() - 2, [](std::size_t s) { return s != 500; });
  EXPECT_LE(partial, 1);
  EXPECT_EQ(sizes.size(), 3u + 19u + 2u);  // 10,000 - 437 - 187 = 9,376: 18 full, one of 376
}
