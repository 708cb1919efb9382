// SPDX-License-Identifier: Apache-2.0
// CalDAV calendars into meeting activities, against a real Radicale: the
// connector's state machines run by sync_caldav_once, CaldavSink committing.
#include "daemon/capture/caldav_account.hpp"
#include "daemon/capture/caldav_sink.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/radicale_fixture.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

constexpr std::int64_t kNow = 1795996800;  // 2026-11-30T00:00:00Z

std::string ics(const std::string& body) {
  std::string s = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crm-capture//tests//EN\r\n";
  std::size_t from = 0;
  while (from < body.size()) {
    const auto nl = body.find('\n', from);
    s += body.substr(from, nl - from) + "\r\n";
    from = nl == std::string::npos ? body.size() : nl + 1;
  }
  return s + "END:VCALENDAR\r\n";
}

std::string meeting(const std::string& uid, const std::string& attendee,
                    const std::string& start = "20261201T100000Z",
                    const std::string& end = "20261201T110000Z") {
  return ics("BEGIN:VEVENT\nUID:" + uid + "\nDTSTAMP:20261101T000000Z\nDTSTART:" + start +
             "\nDTEND:" + end + "\nSUMMARY:Meeting " + uid +
             "\nORGANIZER;CN=Alice:mailto:alice@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:" +
             attendee + "\nEND:VEVENT");
}

class CaldavSync : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::RadicaleServer::available()) GTEST_SKIP() << "radicale is not installed";
    dav = std::make_unique<test::RadicaleServer>();
    cal = dav->make_calendar("work");
    st = test::directory_store((tmp.path() / "s.db").string());
    capture::Settings s;
    s.owner_addresses = {"alice@example.com"};
    s.internal_domains = {"example.com"};
    pipeline = std::make_unique<capture::Pipeline>(
        *st, *st, s,
        capture::FreeMailDomains::from_text(
            test::read_file(fs::path(CRMCAP_SOURCE_DIR) / "data" / "free-mail-domains.txt")));
    sink = std::make_unique<capture::CaldavSink>("m", *pipeline, *st, *st);
    sink->clock = [] { return kNow; };
    sink->on_warning = [this](const std::string& m) { warnings.push_back(m); };
  }

  capture::CaldavPass sync(caldav::TransportOptions o) {
    caldav::Transport t(std::move(o));
    return capture::sync_caldav_once("m", cal, t, *sink);
  }
  capture::CaldavPass sync() {
    auto pass = sync(dav->transport_options());
    const auto* e = pass.first_error();
    EXPECT_EQ(e, nullptr) << (e ? e->message : "");
    return pass;
  }
  std::map<std::string, store::Activity> by_key() {
    std::map<std::string, store::Activity> out;
    for (auto& a : st->list({}).value()) out.emplace(a.source_key, std::move(a));
    return out;
  }

  test::TempDir tmp;
  std::unique_ptr<test::RadicaleServer> dav;
  std::string cal;
  std::unique_ptr<store::Store> st;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::CaldavSink> sink;
  std::vector<std::string> warnings;
};

TEST_F(CaldavSync, FirstSyncCapturesSkipsAndFails) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  dav->put_event("work", "internal.ics", meeting("ev-internal", "bob@example.com"));
  // Radicale takes a start in year 2626; the parser reads years 1800-2500.
  dav->put_event("work", "broken.ics",
                 meeting("ev-broken", "jane@acme.com", "26261201T100000Z", "26261201T110000Z"));
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  auto all = by_key();
  ASSERT_EQ(all.size(), 3u);
  const auto& acme = all.at("ical:ev-acme");
  EXPECT_EQ(acme.status, store::DecisionStatus::captured) << acme.reason;
  EXPECT_EQ(acme.kind, store::ActivityKind::meeting);
  EXPECT_EQ(acme.contact_ids, std::vector<std::string>{"C-1"});
  ASSERT_TRUE(acme.meeting);
  EXPECT_EQ(acme.meeting->starts_at, "2026-12-01T10:00:00Z");
  ASSERT_EQ(acme.sources.size(), 1u);
  EXPECT_EQ(acme.sources[0].mailbox, "m");
  EXPECT_EQ(acme.sources[0].folder, cal);
  EXPECT_EQ(acme.sources[0].path, cal + "acme.ics#ical:ev-acme");
  EXPECT_EQ(all.at("ical:ev-internal").status, store::DecisionStatus::skipped);
  EXPECT_EQ(all.at("ical:ev-broken").status, store::DecisionStatus::failed);
  EXPECT_EQ(all.at("ical:ev-broken").rule, "parse");
  EXPECT_EQ(sink->counters().captured, 1u);
  EXPECT_EQ(sink->counters().skipped, 1u);
  EXPECT_EQ(sink->counters().failed, 1u);
  EXPECT_FALSE(warnings.empty());
  auto rec = st->calendar("m", cal).value();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->items.size(), 3u);
  EXPECT_FALSE(rec->sync_token.empty());
}

TEST_F(CaldavSync, ASecondSyncWithoutChangesWritesNothing) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  dav->put_event("work", "internal.ics", meeting("ev-internal", "bob@example.com"));
  sync();
  const auto before = by_key();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  EXPECT_EQ(pass.calendars[0].report->changed, 0u);
  const auto after = by_key();
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [key, a] : after) EXPECT_EQ(a.updated_at, before.at(key).updated_at) << key;
}

TEST_F(CaldavSync, AMovedEventUpdatesItsActivityInPlace) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  sync();
  const auto id = by_key().at("ical:ev-acme").id;
  dav->put_event("work", "acme.ics",
                 meeting("ev-acme", "jane@acme.com", "20261203T140000Z", "20261203T150000Z"));
  sync();
  auto all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const auto& a = all.at("ical:ev-acme");
  EXPECT_EQ(a.id, id);
  EXPECT_EQ(a.occurred_at, "2026-12-03T14:00:00Z");
  EXPECT_EQ(a.meeting->starts_at, "2026-12-03T14:00:00Z");
  EXPECT_FALSE(a.meeting->cancelled);
}

TEST_F(CaldavSync, ADeletedEventIsCancelled) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  sync();
  dav->delete_event("work", "acme.ics");
  sync();
  auto all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const auto& a = all.at("ical:ev-acme");
  EXPECT_EQ(a.status, store::DecisionStatus::captured);
  ASSERT_TRUE(a.meeting);
  EXPECT_TRUE(a.meeting->cancelled);
  EXPECT_NE(a.reason.find("deleted"), std::string::npos) << a.reason;
  ASSERT_EQ(a.sources.size(), 1u);
  EXPECT_FALSE(a.sources[0].removed_at.empty());
  EXPECT_EQ(sink->cancelled(), 1u);
  EXPECT_TRUE(st->calendar("m", cal).value()->items.empty());
}

TEST_F(CaldavSync, RecurringEventWithACancelledAndAnExcludedOccurrence) {
  const std::string series =
      "BEGIN:VEVENT\nUID:ev-weekly\nDTSTAMP:20261101T000000Z\nDTSTART:20261202T150000Z\n"
      "DTEND:20261202T153000Z\nRRULE:FREQ=WEEKLY;COUNT=3\nSUMMARY:Weekly\n"
      "ORGANIZER:mailto:alice@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\n";
  const std::string override_cancelled =
      "BEGIN:VEVENT\nUID:ev-weekly\nDTSTAMP:20261101T000000Z\nRECURRENCE-ID:20261209T150000Z\n"
      "DTSTART:20261209T150000Z\nDTEND:20261209T153000Z\nSTATUS:CANCELLED\nSUMMARY:Weekly\n"
      "ORGANIZER:mailto:alice@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\n"
      "END:VEVENT";
  dav->put_event("work", "weekly.ics", ics(series + "END:VEVENT\n" + override_cancelled));
  sync();
  auto all = by_key();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FALSE(all.at("ical:ev-weekly/2026-12-02T15:00:00Z").meeting->cancelled);
  EXPECT_TRUE(all.at("ical:ev-weekly/2026-12-09T15:00:00Z").meeting->cancelled);
  EXPECT_FALSE(all.at("ical:ev-weekly/2026-12-16T15:00:00Z").meeting->cancelled);
  // The last occurrence excluded: its activity is cancelled, the rest stay.
  dav->put_event("work", "weekly.ics",
                 ics(series + "EXDATE:20261216T150000Z\nEND:VEVENT\n" + override_cancelled));
  sync();
  all = by_key();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FALSE(all.at("ical:ev-weekly/2026-12-02T15:00:00Z").meeting->cancelled);
  EXPECT_TRUE(all.at("ical:ev-weekly/2026-12-09T15:00:00Z").meeting->cancelled);
  const auto& last = all.at("ical:ev-weekly/2026-12-16T15:00:00Z");
  EXPECT_TRUE(last.meeting->cancelled);
  EXPECT_NE(last.reason.find("no longer"), std::string::npos) << last.reason;
  EXPECT_EQ(sink->cancelled(), 1u);
}

TEST_F(CaldavSync, AnUnreadableObjectIsAFailedRow) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  sync();
  caldav::CalendarChanges changes;
  changes.state = {cal, "tok", ""};
  changes.changed.push_back({cal + "acme.ics", "\"x\"", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"});
  ASSERT_TRUE(sink->commit(changes));
  auto all = by_key();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("ical-href:" + cal + "acme.ics").status, store::DecisionStatus::failed);
  // What the earlier version gave stays as it was.
  EXPECT_FALSE(all.at("ical:ev-acme").meeting->cancelled);
}

TEST_F(CaldavSync, AWrongPasswordNeedsTheUser) {
  auto o = dav->transport_options();
  o.password = "wrong";
  auto pass = sync(o);
  EXPECT_TRUE(pass.needs_user());
  ASSERT_NE(pass.first_error(), nullptr);
  EXPECT_NE(pass.first_error()->message.find("refused the username and password"),
            std::string::npos)
      << pass.first_error()->message;
  EXPECT_TRUE(st->list({}).value().empty());
}

using test::run;

TEST_F(CaldavSync, DaemonOnceSyncsAMailboxWithOnlyCaldav) {
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  dav->put_event("work", "internal.ics", meeting("ev-internal", "bob@example.com"));
  sink.reset();
  pipeline.reset();
  st.reset();
  const fs::path db = tmp.path() / "s.db", pass = tmp.path() / "dav.pass",
                 conf = tmp.path() / "crm-capture.toml";
  std::ofstream(pass) << dav->password() << "\n";
  fs::permissions(pass, fs::perms::owner_read | fs::perms::owner_write);
  // The server's root: discovery finds the calendar.
  std::ofstream(conf) << "[store]\npath = \"" << db.string()
                      << "\"\n[identity]\ninternal_domains = [\"example.com\"]\n"
                         "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
                         "[mailbox.caldav]\nurl = \""
                      << dav->url() << "\"\nusername = \"" << dav->user()
                      << "\"\npassword_file = \"" << pass.string() << "\"\nallow_insecure = true\n";
  auto d = run("crm-captured", "--once --config " + conf.string());
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("alice: caldav: 1 calendar(s)"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("captured 1, skipped 1, failed 0"), std::string::npos) << d.out;
  auto a = run("crm-capture", "--store " + db.string() + " activities --json");
  ASSERT_EQ(a.status, 0) << a.out;
  EXPECT_NE(a.out.find("Meeting ev-acme"), std::string::npos) << a.out;
  // Once more: nothing changed.
  d = run("crm-captured", "--once --config " + conf.string());
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("unchanged"), std::string::npos) << d.out;

  // A wrong password: a clear message and a failed exit.
  std::ofstream(pass) << "wrong\n";
  d = run("crm-captured", "--once --config " + conf.string());
  EXPECT_EQ(d.status, 1) << d.out;
  EXPECT_NE(d.out.find("refused the username and password"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("not retrying"), std::string::npos) << d.out;
}

}  // namespace
