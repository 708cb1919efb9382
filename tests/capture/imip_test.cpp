// SPDX-License-Identifier: Apache-2.0
// Rule 6 on its own: which version of a meeting occurrence stands, by origin
// and SEQUENCE, table-driven. No store (this binary links crmcap_capture only).
#include "daemon/capture/rules.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

using namespace crmcap;
using capture::MeetingOrigin;
using capture::stored_version_stands;

namespace {

store::Activity stored(int sequence, bool cancelled = false,
                       store::DecisionStatus status = store::DecisionStatus::captured,
                       std::string rule = "") {
  store::Activity a;
  a.source_key = "ical:m-1";
  a.kind = store::ActivityKind::meeting;
  a.status = status;
  a.rule = std::move(rule);
  a.meeting = store::MeetingFields{
      "m-1", "2026-12-01T14:00:00Z", "2026-12-01T15:00:00Z", false, "", cancelled, sequence};
  return a;
}

}  // namespace

TEST(Imip, MethodsByWhatTheyDo) {
  EXPECT_EQ(capture::imip_origin("REQUEST"), MeetingOrigin::imip_update);
  EXPECT_EQ(capture::imip_origin("PUBLISH"), MeetingOrigin::imip_update);
  EXPECT_EQ(capture::imip_origin("ADD"), MeetingOrigin::imip_update);
  EXPECT_EQ(capture::imip_origin("CANCEL"), MeetingOrigin::imip_cancel);
  for (const char* m : {"REPLY", "COUNTER", "DECLINECOUNTER", "REFRESH", "X-OTHER", ""}) {
    EXPECT_EQ(capture::imip_origin(m), MeetingOrigin::imip_answer) << m;
  }
}

// Every origin against a stored occurrence at SEQUENCE 2: a lower SEQUENCE
// never replaces it, a higher one always does but for an answer.
TEST(Imip, ALowerSequenceNeverReplacesAHigherOneAlways) {
  const store::Activity at2 = stored(2);
  for (auto origin :
       {MeetingOrigin::calendar, MeetingOrigin::imip_update, MeetingOrigin::imip_cancel}) {
    const auto older = stored_version_stands(origin, 1, at2);
    ASSERT_TRUE(older) << static_cast<int>(origin);
    EXPECT_EQ(*older, "the stored SEQUENCE 2 is newer");
    EXPECT_FALSE(stored_version_stands(origin, 3, at2)) << static_cast<int>(origin);
  }
  for (int sequence : {1, 2, 3}) {
    EXPECT_EQ(stored_version_stands(MeetingOrigin::imip_answer, sequence, at2),
              "an attendee's answer changes no meeting details");
  }
}

// The same revision again: the calendar's copy replaces what is stored
// (it knows the owner's answer); iMIP undoes no cancellation and no decline.
TEST(Imip, AnEqualSequence) {
  struct Case {
    const char* name;
    MeetingOrigin origin;
    store::Activity stored;
    std::optional<std::string> stands;
  };
  const auto declined = stored(2, false, store::DecisionStatus::skipped, "declined");
  const auto internal = stored(2, false, store::DecisionStatus::skipped, "internal");
  const Case cases[] = {
      {"calendar over captured", MeetingOrigin::calendar, stored(2), std::nullopt},
      {"calendar over cancelled", MeetingOrigin::calendar, stored(2, true), std::nullopt},
      {"calendar over declined", MeetingOrigin::calendar, declined, std::nullopt},
      {"update over captured", MeetingOrigin::imip_update, stored(2), std::nullopt},
      {"update over internal", MeetingOrigin::imip_update, internal, std::nullopt},
      {"update over cancelled", MeetingOrigin::imip_update, stored(2, true),
       "cancelled at SEQUENCE 2, the same revision"},
      {"update over declined", MeetingOrigin::imip_update, declined,
       "declined by the owner at SEQUENCE 2, the same revision"},
      {"cancel over captured", MeetingOrigin::imip_cancel, stored(2), std::nullopt},
      {"cancel over cancelled", MeetingOrigin::imip_cancel, stored(2, true),
       "cancelled already at SEQUENCE 2"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(stored_version_stands(c.origin, 2, c.stored), c.stands) << c.name;
  }
  // A higher SEQUENCE cancels even a cancelled one again (its SEQUENCE moves
  // on, so that an update between the two stays out).
  EXPECT_FALSE(stored_version_stands(MeetingOrigin::imip_cancel, 3, stored(2, true)));
}

// A row without meeting fields (an event that could not be read) holds no
// version: anything replaces it.
TEST(Imip, AStoredRowWithoutMeetingFieldsAlwaysYields) {
  store::Activity failed;
  failed.kind = store::ActivityKind::meeting;
  failed.status = store::DecisionStatus::failed;
  for (auto origin : {MeetingOrigin::calendar, MeetingOrigin::imip_update,
                      MeetingOrigin::imip_cancel, MeetingOrigin::imip_answer}) {
    EXPECT_FALSE(stored_version_stands(origin, 0, failed)) << static_cast<int>(origin);
  }
}

// What an answer recorded on a stored occurrence does to its decision, by
// what was stored and whether the owner now declines it.
TEST(Imip, AfterAnAnswer) {
  using capture::AfterAnswer;
  using store::DecisionStatus;
  struct Case {
    const char* name;
    store::Activity stored;
    bool declined;
    AfterAnswer after;
  };
  store::Activity unreadable;
  unreadable.kind = store::ActivityKind::meeting;
  unreadable.status = DecisionStatus::failed;
  unreadable.rule = "parse";
  const auto skipped = [](const char* rule) {
    return stored(0, false, DecisionStatus::skipped, rule);
  };
  const Case cases[] = {
      {"captured, declined now", stored(0), true, AfterAnswer::decline},
      {"cancelled, declined now", stored(0, true), true, AfterAnswer::decline},
      {"captured, not declined", stored(0), false, AfterAnswer::stands},
      {"internal, declined now", skipped("internal"), true, AfterAnswer::decline},
      {"unmatched, declined now", skipped("unmatched"), true, AfterAnswer::decline},
      {"declined, declined still", skipped("declined"), true, AfterAnswer::stands},
      {"declined, accepted now", skipped("declined"), false, AfterAnswer::match_again},
      {"internal, accepted now", skipped("internal"), false, AfterAnswer::stands},
      {"private, declined now", skipped("private"), true, AfterAnswer::stands},
      {"private, accepted now", skipped("private"), false, AfterAnswer::stands},
      {"store failure, declined now", stored(0, false, DecisionStatus::failed, "store"), true,
       AfterAnswer::stands},
      {"unreadable, declined now", unreadable, true, AfterAnswer::stands},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(capture::after_answer(c.stored, c.declined), c.after) << c.name;
  }
}
