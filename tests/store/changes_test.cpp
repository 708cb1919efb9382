// SPDX-License-Identifier: Apache-2.0
// The change sequence (Activities::changes_after, StoreOptions::on_change)
// and paged listings (ActivityFilter::after, newest_first, until, mailbox).
#include "store/schema.hpp"
#include "store/store.hpp"
#include "tests/support/raw_sql.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <set>
#include <tuple>

using namespace crmcap::store;

namespace {

Activity activity(const std::string& key, const std::string& when,
                  DecisionStatus status = DecisionStatus::captured) {
  Activity a;
  a.id = "id-" + key;
  a.source_key = key;
  a.occurred_at = when;
  a.subject = "about " + key;
  a.status = status;
  a.participants.push_back({"jane@acme.com", "Jane", "from", "C-1", "CO-1"});
  return a;
}

Batch batch_of(const std::vector<Activity>& v, const std::string& mailbox = "alice") {
  Batch b;
  std::int64_t uid = 1;
  for (const auto& a : v) {
    b.items.push_back({a, SourceRef{mailbox, "INBOX", 1, uid++, ""}});
  }
  return b;
}

std::vector<std::string> ids(const std::vector<Activity>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(a.id);
  return out;
}

}  // namespace

TEST(Changes, EveryCreateOrChangeGetsTheNextNumberAndTheHookHearsIt) {
  crmcap::test::TempDir dir;
  std::vector<std::int64_t> heard;
  StoreOptions o;
  o.on_change = [&](std::int64_t seq) { heard.push_back(seq); };
  auto s = Store::open((dir.path() / "c.db").string(), o).value();
  EXPECT_EQ(s->last_change_seq().value(), 0);
  ASSERT_TRUE(s->commit(
      batch_of({activity("a", "2026-11-01T10:00:00Z"), activity("b", "2026-11-02T10:00:00Z")})));
  EXPECT_EQ(heard, (std::vector<std::int64_t>{2}));
  // The same rows again: nothing changed, no number, no call.
  ASSERT_TRUE(s->commit(batch_of({activity("a", "2026-11-01T10:00:00Z")})));
  EXPECT_EQ(heard.size(), 1u);
  // A changed row takes a new number and moves behind the others.
  auto a2 = activity("a", "2026-11-01T10:00:00Z");
  a2.subject = "changed";
  ASSERT_TRUE(s->commit(batch_of({a2, activity("c", "2026-11-03T10:00:00Z")})));
  EXPECT_EQ(heard, (std::vector<std::int64_t>{2, 4}));
  const auto all = s->changes_after(0, 0).value();
  EXPECT_EQ(ids(all), (std::vector<std::string>{"id-b", "id-a", "id-c"}));
  EXPECT_EQ(all[0].change_seq, 2);
  EXPECT_EQ(all[1].change_seq, 3);
  EXPECT_EQ(all[1].subject, "changed");
  EXPECT_EQ(ids(s->changes_after(3, 0).value()), (std::vector<std::string>{"id-c"}));
  EXPECT_EQ(ids(s->changes_after(0, 1).value()), (std::vector<std::string>{"id-b"}));
  EXPECT_TRUE(s->changes_after(4, 0).value().empty());
  EXPECT_EQ(s->last_change_seq().value(), 4);
}

TEST(Changes, NumbersSurviveReopeningAndAnUpgradeNumbersOldRows) {
  crmcap::test::TempDir dir;
  const std::string path = (dir.path() / "old.db").string();
  { auto s = detail::open_at_version(path, 8).value(); }
  ASSERT_NO_FATAL_FAILURE(
      crmcap::test::exec_raw(path,
                             "INSERT INTO activities (id, source_key, kind, direction, status, "
                             "occurred_at, created_at, updated_at) VALUES "
                             "('id-old1', 'old1', 'email', 'inbound', 'captured', "
                             "'2026-10-01T00:00:00Z', 'x', 'x'), "
                             "('id-old2', 'old2', 'email', 'inbound', 'captured', "
                             "'2026-10-02T00:00:00Z', 'x', 'x')"));
  {
    auto s = Store::open(path).value();
    EXPECT_EQ(s->last_change_seq().value(), 2);
    EXPECT_EQ(ids(s->changes_after(1, 0).value()), (std::vector<std::string>{"id-old2"}));
    ASSERT_TRUE(s->commit(batch_of({activity("new", "2026-11-01T00:00:00Z")})));
  }
  auto s = Store::open(path).value();
  const auto after = s->changes_after(2, 0).value();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id, "id-new");
  EXPECT_EQ(after[0].change_seq, 3);
}

TEST(Listing, PagesNewestFirstNeverRepeatOrSkipWhileRowsArrive) {
  crmcap::test::TempDir dir;
  auto s = Store::open((dir.path() / "p.db").string()).value();
  std::vector<Activity> first;
  // 10,000 rows over 10 days: many share a time, and the id breaks the tie.
  for (int i = 0; i < 10000; ++i) {
    const int day = i / 1000 + 1;
    first.push_back(activity("m" + std::to_string(i),
                             "2026-11-" + std::string(day < 10 ? "0" : "") + std::to_string(day) +
                                 "T10:00:" + std::to_string(10 + i % 50) + "Z"));
  }
  ASSERT_TRUE(s->commit(batch_of(first)));
  std::set<std::string> seen;
  ActivityFilter f;
  f.newest_first = true;
  f.limit = 333;
  int round = 0;
  for (;;) {
    const auto page = s->list(f).value();
    for (const auto& a : page) {
      EXPECT_TRUE(seen.insert(a.id).second) << a.id << " twice";
      if (f.after) {
        EXPECT_LT(std::tie(a.occurred_at, a.id), std::tie(f.after->occurred_at, f.after->id));
      }
    }
    if (page.size() < f.limit) break;
    f.after = ActivityKey{page.back().occurred_at, page.back().id};
    // New rows between pages, newer and older than the position.
    ++round;
    ASSERT_TRUE(
        s->commit(batch_of({activity("new" + std::to_string(round), "2026-12-01T00:00:00Z"),
                            activity("old" + std::to_string(round), "2026-01-01T00:00:00Z")},
                           "bob")));
  }
  for (const auto& a : first) EXPECT_TRUE(seen.count(a.id)) << a.id << " missed";
  for (int r = 1; r <= round; ++r) EXPECT_FALSE(seen.count("id-new" + std::to_string(r)));
}

TEST(Listing, UntilIsExclusiveMailboxAndStatusesFilter) {
  crmcap::test::TempDir dir;
  auto s = Store::open((dir.path() / "f.db").string()).value();
  ASSERT_TRUE(
      s->commit(batch_of({activity("a", "2026-11-01T10:00:00Z"),
                          activity("b", "2026-11-02T00:00:00Z", DecisionStatus::skipped)})));
  ASSERT_TRUE(
      s->commit(batch_of({activity("c", "2026-11-03T10:00:00Z", DecisionStatus::failed)}, "bob")));
  ActivityFilter f;
  f.until = "2026-11-02";
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-a"}));
  f = {};
  f.until = "2026-11-02T00:00:01Z";
  f.since = "2026-11-02";
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-b"}));
  f = {};
  f.mailbox = "bob";
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-c"}));
  f = {};
  f.statuses = {DecisionStatus::skipped, DecisionStatus::failed};
  f.newest_first = true;
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-c", "id-b"}));
}

// A contact's and a company's listings come from their participants' index
// (v11): in the sort order, each activity once even when the contact is on
// it twice, pages that neither repeat nor skip, and an activity whose time
// changed found at its new place.
TEST(Listing, AContactsAndACompanysPagesFollowTheSortOrderOnceEach) {
  crmcap::test::TempDir dir;
  auto s = Store::open((dir.path() / "c.db").string()).value();
  std::vector<Activity> rows;
  for (int i = 0; i < 60; ++i) {
    // Ten rows a time: the id breaks the ties.
    Activity a =
        activity("k" + std::to_string(i), "2026-11-0" + std::to_string(1 + i / 10) + "T10:00:00Z");
    a.participants.clear();
    if (i % 3 != 0) a.participants.push_back({"jane@acme.com", "Jane", "from", "C-1", "CO-1"});
    if (i % 4 == 0) a.participants.push_back({"jane@home.org", "Jane", "to", "C-1", ""});
    if (i % 5 == 0) a.participants.push_back({"bob@beta.com", "Bob", "cc", "C-2", "CO-2"});
    a.participants.push_back({"me@example.com", "Me", "to", "", ""});
    rows.push_back(a);
  }
  ASSERT_TRUE(s->commit(batch_of(rows)));
  const auto expected = [&](auto keep, bool newest_first) {
    std::vector<Activity> v;
    for (const auto& a : rows) {
      if (keep(a)) v.push_back(a);
    }
    std::sort(v.begin(), v.end(), [&](const Activity& x, const Activity& y) {
      return newest_first ? std::tie(x.occurred_at, x.id) > std::tie(y.occurred_at, y.id)
                          : std::tie(x.occurred_at, x.id) < std::tie(y.occurred_at, y.id);
    });
    return ids(v);
  };
  const auto paged = [&](ActivityFilter f) {
    std::vector<std::string> out;
    f.limit = 7;
    for (;;) {
      const auto page = s->list(f).value();
      for (const auto& a : page) out.push_back(a.id);
      if (page.size() < f.limit) return out;
      f.after = ActivityKey{page.back().occurred_at, page.back().id};
    }
  };
  const auto has = [](const char* contact, const char* company) {
    return [=](const Activity& a) {
      return std::any_of(a.participants.begin(), a.participants.end(), [&](const Participant& p) {
        return (!*contact || p.contact_id == contact) && (!*company || p.company_id == company);
      });
    };
  };
  const auto both = [](const Activity& a) {
    const auto any = [&](auto pred) {
      return std::any_of(a.participants.begin(), a.participants.end(), pred);
    };
    return any([](const Participant& p) { return p.contact_id == "C-1"; }) &&
           any([](const Participant& p) { return p.company_id == "CO-2"; });
  };
  for (const bool newest : {true, false}) {
    ActivityFilter f;
    f.newest_first = newest;
    f.contact_id = "C-1";
    EXPECT_EQ(paged(f), expected(has("C-1", ""), newest)) << newest;
    EXPECT_EQ(ids(s->list(f).value()), expected(has("C-1", ""), newest));  // no limit
    f.contact_id.clear();
    f.company_id = "CO-2";
    EXPECT_EQ(paged(f), expected(has("", "CO-2"), newest)) << newest;
    f.contact_id = "C-1";  // both: the contact's rows with the company among them
    EXPECT_EQ(paged(f), expected(both, newest)) << newest;
  }
  ActivityFilter f;
  f.contact_id = "C-2";
  f.since = "2026-11-02";
  f.until = "2026-11-05";
  f.newest_first = true;
  EXPECT_EQ(ids(s->list(f).value()),
            (std::vector<std::string>{"id-k35", "id-k30", "id-k25", "id-k20", "id-k15", "id-k10"}));
  // k10 moves to the newest day: its contacts' listings follow.
  Activity moved = rows[10];
  moved.occurred_at = "2026-11-09T10:00:00Z";
  ASSERT_TRUE(s->commit(batch_of({moved})));
  f = {};
  f.contact_id = "C-2";
  f.newest_first = true;
  f.limit = 2;
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-k10", "id-k55"}));
}

// The upgrade to v11 gives matched participants stored before it their
// activity's time, so that listings by contact find the old rows in order.
TEST(Listing, AnUpgradeKeepsEarlierActivitiesInTheirContactsListings) {
  crmcap::test::TempDir dir;
  const std::string path = (dir.path() / "v10.db").string();
  { auto s = detail::open_at_version(path, 10).value(); }
  ASSERT_NO_FATAL_FAILURE(crmcap::test::exec_raw(
      path,
      "INSERT INTO activities (seq, id, source_key, kind, direction, status, "
      "occurred_at, created_at, updated_at) VALUES "
      "(1, 'id-old1', 'old1', 'email', 'inbound', 'captured', "
      "'2026-10-02T00:00:00Z', 'x', 'x'), "
      "(2, 'id-old2', 'old2', 'email', 'inbound', 'captured', "
      "'2026-10-01T00:00:00Z', 'x', 'x');"
      "INSERT INTO activity_participants (activity_seq, position, address, "
      "role, contact_id, company_id) VALUES "
      "(1, 0, 'jane@acme.com', 'from', 'C-1', 'CO-1'), "
      "(2, 0, 'jane@acme.com', 'from', 'C-1', 'CO-1'), "
      "(2, 1, 'me@example.com', 'to', '', '')"));
  auto s = Store::open(path).value();
  ASSERT_TRUE(s->commit(batch_of({activity("new", "2026-10-03T00:00:00Z")})));
  ActivityFilter f;
  f.contact_id = "C-1";
  f.newest_first = true;
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-new", "id-old1", "id-old2"}));
  f.contact_id.clear();
  f.company_id = "CO-1";
  f.newest_first = false;
  EXPECT_EQ(ids(s->list(f).value()), (std::vector<std::string>{"id-old2", "id-old1", "id-new"}));
}

// v12: a page reads an activity's places from their index alone, in the
// order of the table's key, and an upgrade keeps the places stored before it.
TEST(Listing, PlacesAreReadFromTheirIndexAloneAndSurviveTheUpgrade) {
  crmcap::test::TempDir dir;
  const std::string path = (dir.path() / "v11.db").string();
  { auto s = detail::open_at_version(path, 11).value(); }
  ASSERT_NO_FATAL_FAILURE(crmcap::test::exec_raw(
      path,
      "INSERT INTO activities (seq, id, source_key, kind, direction, status, "
      "occurred_at, created_at, updated_at) VALUES "
      "(1, 'id-old', 'old', 'email', 'inbound', 'captured', "
      "'2026-10-02T00:00:00Z', 'x', 'x');"
      "INSERT INTO activity_sources (activity_seq, mailbox, folder, "
      "uidvalidity, uid, path, seen_at, remote_id, removed_at) VALUES "
      "(1, 'alice', 'Sent', 7, 3, '', 'x', 'gm:42', ''), "
      "(1, 'alice', 'INBOX', 7, 9, '', 'x', '', '2026-10-03T00:00:00Z')"));
  auto s = Store::open(path).value();
  const auto got = s->get("id-old").value();
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->sources.size(), 2U);
  EXPECT_EQ(got->sources[0].folder, "INBOX");
  EXPECT_EQ(got->sources[0].uid, 9);
  EXPECT_EQ(got->sources[0].removed_at, "2026-10-03T00:00:00Z");
  EXPECT_EQ(got->sources[1].folder, "Sent");
  EXPECT_EQ(got->sources[1].remote_id, "gm:42");
  EXPECT_EQ(got->sources[1].removed_at, "");

  // The plans of the store's reads of places and participants (fill()): the
  // keys as given, each one's rows sought in an index that gives their order
  // (no sorter; there is no ORDER BY), the places' index covering them.
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
  const auto plan_of = [h](const char* sql) {
    std::string plan;
    EXPECT_EQ(sqlite3_exec(
                  h, (std::string("EXPLAIN QUERY PLAN ") + sql).c_str(),
                  [](void* out, int n, char** cols, char**) {
                    *static_cast<std::string*>(out) += cols[n - 1];
                    *static_cast<std::string*>(out) += '\n';
                    return 0;
                  },
                  &plan, nullptr),
              SQLITE_OK);
    return plan;
  };
  const std::string places = plan_of(
      "SELECT s.activity_seq, s.mailbox, s.folder, s.uidvalidity, s.uid, s.path, s.remote_id, "
      "s.removed_at FROM json_each('[2,1]') k CROSS JOIN activity_sources s "
      "ON s.activity_seq = k.value");
  const std::string participants = plan_of(
      "SELECT p.activity_seq, p.address, p.name, p.role, p.contact_id, p.company_id, "
      "p.partstat FROM json_each('[2,1]') k CROSS JOIN activity_participants p "
      "ON p.activity_seq = k.value");
  sqlite3_close(h);
  EXPECT_NE(places.find("SEARCH s USING COVERING INDEX activity_sources_by_activity"),
            std::string::npos)
      << places;
  EXPECT_NE(participants.find("SEARCH p USING PRIMARY KEY (activity_seq=?)"), std::string::npos)
      << participants;
  for (const auto& plan : {places, participants}) {
    EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  }
}

// Listings read rows in their index's time order and put rows of one time in
// id order themselves: ids stored against their id order (later rows with
// smaller ids), times shared by up to five rows, pages of 4 that cut those
// runs; by opportunity (the activities' index), contact (the participants'),
// mailbox and none. Each row once, in (time, id) order, either direction.
TEST(Listing, RowsOfOneTimeComeInIdOrderAcrossPages) {
  crmcap::test::TempDir dir;
  auto s = Store::open((dir.path() / "t.db").string()).value();
  std::vector<Activity> rows;
  for (int i = 0; i < 23; ++i) {
    Activity a = activity("k" + std::to_string(i),
                          "2026-11-0" + std::to_string(1 + (i * 7 % 23) / 5) + "T10:00:00Z");
    a.id = "id-" + std::string(1, static_cast<char>('z' - i));  // later rows, smaller ids
    a.opportunity_id = "O-1";
    if (i % 4 == 0) a.participants.push_back({"jane@home.org", "Jane", "to", "C-1", ""});
    rows.push_back(a);
  }
  ASSERT_TRUE(s->commit(batch_of(rows)));
  for (const bool newest : {true, false}) {
    std::vector<Activity> v = rows;
    std::sort(v.begin(), v.end(), [&](const Activity& x, const Activity& y) {
      return newest ? std::tie(x.occurred_at, x.id) > std::tie(y.occurred_at, y.id)
                    : std::tie(x.occurred_at, x.id) < std::tie(y.occurred_at, y.id);
    });
    for (int filter = 0; filter < 4; ++filter) {
      ActivityFilter f;
      f.newest_first = newest;
      f.limit = 4;
      if (filter == 1) f.opportunity_id = "O-1";
      if (filter == 2) f.contact_id = "C-1";
      if (filter == 3) f.mailbox = "alice";
      std::vector<std::string> got;
      for (;;) {
        const auto page = s->list(f).value();
        for (const auto& a : page) got.push_back(a.id);
        if (page.size() < f.limit) break;
        f.after = ActivityKey{page.back().occurred_at, page.back().id};
      }
      EXPECT_EQ(got, ids(v)) << "newest " << newest << ", filter " << filter;
    }
  }
}
