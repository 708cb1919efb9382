// SPDX-License-Identifier: Apache-2.0
// The CalDAV part of a batch: a calendar's state and item ETags, committed
// with the activities, and the places of an item's activities.
#include "store/store.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <filesystem>

namespace fs = std::filesystem;
using namespace crmcap::store;

namespace {

class CalendarStore : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "crmcap-calstore-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    st = Store::open((dir_ / "s.db").string()).value();
  }
  void TearDown() override {
    st.reset();
    fs::remove_all(dir_);
  }

  static Activity meeting(const std::string& key) {
    Activity a;
    a.id = "id-" + key;
    a.source_key = key;
    a.kind = ActivityKind::meeting;
    a.occurred_at = "2026-12-01T10:00:00Z";
    a.subject = "Call";
    a.reason = "because";
    a.meeting = MeetingFields{"uid", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"};
    return a;
  }
  static SourceRef place(const std::string& path) { return {"m", kCal, 0, 0, path}; }

  static constexpr const char* kCal = "http://dav.example/u/work/";
  fs::path dir_;
  std::unique_ptr<Store> st;
};

TEST_F(CalendarStore, NoneBeforeTheFirstCommit) {
  auto c = st->calendar("m", kCal);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(*c);
}

TEST_F(CalendarStore, StateAndEtagsCommitWithTheActivities) {
  Batch b;
  b.items.push_back({meeting("ical:a"), place(std::string(kCal) + "a.ics#ical:a")});
  b.calendar = Batch::Calendar{
      "m",
      kCal,
      "tok-1",
      "ctag-1",
      {{std::string(kCal) + "a.ics", "\"e1\""}, {std::string(kCal) + "b.ics", "\"e2\""}}};
  ASSERT_TRUE(st->commit(b));
  auto c = st->calendar("m", kCal).value();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sync_token, "tok-1");
  EXPECT_EQ(c->ctag, "ctag-1");
  EXPECT_EQ(c->items.size(), 2u);
  EXPECT_EQ(c->items.at(std::string(kCal) + "a.ics"), "\"e1\"");
  EXPECT_FALSE(st->calendar("other", kCal).value());

  // A changed ETag, a deleted href, a new token.
  Batch d;
  d.calendar = Batch::Calendar{"m",
                               kCal,
                               "tok-2",
                               "",
                               {{std::string(kCal) + "a.ics", "\"e3\""}},
                               {std::string(kCal) + "b.ics"}};
  ASSERT_TRUE(st->commit(d));
  c = st->calendar("m", kCal).value();
  EXPECT_EQ(c->sync_token, "tok-2");
  EXPECT_EQ(c->ctag, "");
  ASSERT_EQ(c->items.size(), 1u);
  EXPECT_EQ(c->items.at(std::string(kCal) + "a.ics"), "\"e3\"");
}

TEST_F(CalendarStore, AFailedCommitKeepsNoEtag) {
  Batch ok;
  ok.items.push_back({meeting("ical:a"), place("x#ical:a")});
  ASSERT_TRUE(st->commit(ok));
  Batch b;
  auto clash = meeting("ical:b");
  clash.id = "id-ical:a";  // another key's id: the commit fails
  b.items.push_back({clash, place("y#ical:b")});
  b.calendar = Batch::Calendar{"m", kCal, "tok", "", {{"y", "\"e\""}}};
  EXPECT_FALSE(st->commit(b));
  EXPECT_FALSE(st->calendar("m", kCal).value());
}

TEST_F(CalendarStore, PlacesUnderAnHrefAndTheirRemoval) {
  const std::string a = std::string(kCal) + "a.ics", ab = std::string(kCal) + "ab.ics";
  Batch b;
  b.items.push_back({meeting("ical:s/1"), place(a + "#ical:s/1")});
  b.items.push_back({meeting("ical:s/2"), place(a + "#ical:s/2")});
  b.items.push_back({meeting("ical:t"), place(ab + "#ical:t")});
  b.items.push_back({meeting("ical:u"), SourceRef{"m", "other", 0, 0, a + "#ical:u"}});
  ASSERT_TRUE(st->commit(b));
  auto p = st->placed_under("m", kCal, a + "#").value();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].path, a + "#ical:s/1");
  EXPECT_EQ(p[0].source_key, "ical:s/1");
  EXPECT_EQ(p[1].source_key, "ical:s/2");

  Batch r;
  r.calendar = Batch::Calendar{"m", kCal, "", "", {}, {a}, {a + "#ical:s/2"}};
  ASSERT_TRUE(st->commit(r));
  p = st->placed_under("m", kCal, a + "#").value();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].source_key, "ical:s/1");
  auto gone = st->by_source_key("ical:s/2").value();
  ASSERT_TRUE(gone);
  ASSERT_EQ(gone->sources.size(), 1u);
  EXPECT_FALSE(gone->sources[0].removed_at.empty());

  // Seen again at that place: it is there again.
  Batch again;
  again.items.push_back({meeting("ical:s/2"), place(a + "#ical:s/2")});
  ASSERT_TRUE(st->commit(again));
  EXPECT_EQ(st->placed_under("m", kCal, a + "#").value().size(), 2u);
}

// Rule 6 reads the stored occurrences of an event by its UID: those stored
// with meeting fields, sorted; a row decided again without them (an
// unreadable event) drops out.
TEST_F(CalendarStore, MeetingKeysOfAnEvent) {
  Batch b;
  b.items.push_back({meeting("ical:uid/2"), place("a#2")});
  b.items.push_back({meeting("ical:uid/1"), place("a#1")});
  auto other = meeting("ical:t");
  other.meeting->event_uid = "t";
  b.items.push_back({other, place("b#t")});
  auto unreadable = meeting("ical:uid");
  unreadable.meeting.reset();
  unreadable.status = DecisionStatus::failed;
  b.items.push_back({unreadable, place("c#0")});
  ASSERT_TRUE(st->commit(b));
  EXPECT_EQ(st->meeting_keys("uid").value(),
            (std::vector<std::string>{"ical:uid/1", "ical:uid/2"}));
  EXPECT_EQ(st->meeting_keys("t").value(), std::vector<std::string>{"ical:t"});
  EXPECT_TRUE(st->meeting_keys("none").value().empty());

  Batch again;
  auto failed = meeting("ical:uid/2");
  failed.meeting.reset();
  failed.status = DecisionStatus::failed;
  again.items.push_back({failed, place("a#2")});
  ASSERT_TRUE(st->commit(again));
  EXPECT_EQ(st->meeting_keys("uid").value(), std::vector<std::string>{"ical:uid/1"});
}

}  // namespace
