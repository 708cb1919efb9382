// SPDX-License-Identifier: Apache-2.0
// CalDAV calendars into meeting activities, against a real Radicale: the
// connector's state machines run by sync_caldav_once, CaldavSink committing.
#include "daemon/capture/caldav_account.hpp"
#include "daemon/capture/caldav_sink.hpp"
#include "parsers/calendar/calendar.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/radicale_fixture.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>
#include <vector>

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

// An object whose VTIMEZONE the parser refuses (an offset over 18 hours):
// the object's warning and the meeting's own note end the stored reason,
// the warning is logged once with the mailbox and href, a re-decision keeps
// both, and `crm-capture ingest` of the same object stores the same reason.
TEST_F(CaldavSync, AnObjectsWarningsEndTheReasonOfItsDecisions) {
  const std::string object =
      ics("BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\n"
          "TZOFFSETFROM:+0200\nTZOFFSETTO:+2000\nEND:STANDARD\nEND:VTIMEZONE\n"
          "BEGIN:VEVENT\nUID:ev-tz\nDTSTAMP:20261101T000000Z\n"
          "DTSTART;TZID=Europe/Berlin:20261201T100000\nDTEND;TZID=Europe/Berlin:20261201T110000\n"
          "SUMMARY:Zone\nORGANIZER:mailto:alice@example.com\n"
          "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\nEND:VEVENT");
  dav->put_event("work", "tz.ics", object);
  sync();
  const std::string notes =
      "; note: VTIMEZONE 'Europe/Berlin' ignored: TZOFFSETTO over 18h"
      "; note: TZID 'Europe/Berlin': VTIMEZONE ignored; using Europe/Berlin";
  auto all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const store::Activity& a = all.at("ical:ev-tz");
  EXPECT_EQ(a.status, store::DecisionStatus::captured) << a.reason;
  EXPECT_TRUE(a.reason.ends_with(notes)) << a.reason;
  EXPECT_EQ(a.meeting->starts_at, "2026-12-01T09:00:00Z");  // the system's Berlin
  const std::string logged =
      "m: " + cal + "tz.ics: note: VTIMEZONE 'Europe/Berlin' ignored: TZOFFSETTO over 18h";
  EXPECT_EQ(std::count(warnings.begin(), warnings.end(), logged), 1) << warnings.size();

  // The directory cannot change what parsing noted.
  const capture::Outcome again = pipeline->redecide(a);
  EXPECT_EQ(again.activity.reason, a.reason);

  // The same object as an .ics file, offline.
  const fs::path file = tmp.path() / "tz.ics", db = tmp.path() / "offline.db";
  std::ofstream(file, std::ios::binary) << object;
  test::directory_store(db.string()).reset();
  auto in = test::run("crm-capture", "--store " + db.string() +
                                         " ingest --owner alice@example.com --internal-domain "
                                         "example.com " +
                                         file.string());
  ASSERT_EQ(in.status, 0) << in.out;
  auto list = test::run("crm-capture", "--store " + db.string() + " activities --json");
  ASSERT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find("\"reason\":\"" + a.reason + "\""), std::string::npos) << a.reason << "\n"
                                                                                 << list.out;
}

// A resource over the parser's size limit (ParseOptions::max_bytes, 1 MiB
// by default; Radicale's own max_content_length is 100 MB, so the fixture
// takes it as it is), served by Radicale beside a normal event: connector,
// sink and store end it as a failed row at its href, naming the limit; the
// other event is captured. (The size the parser sees is the calendar-data as
// the multistatus XML gives it, its CRLFs read as LFs: a tenth more than the
// limit keeps it over.)
TEST_F(CaldavSync, AnOversizeResourceIsAFailedRowNamingTheLimit) {
  const std::size_t limit = ical::ParseOptions{}.max_bytes;
  std::string big = meeting("ev-big", "jane@acme.com");
  std::string description = "DESCRIPTION:" + std::string(60, 'a') + "\r\n";
  while (big.size() + description.size() <= limit + limit / 10) {
    description += " " + std::string(74, 'x') + "\r\n";
  }
  big.insert(big.find("END:VEVENT"), description);
  dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  dav->put_event("work", "big.ics", big);
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  EXPECT_EQ(pass.calendars[0].report->changed, 2u);
  auto all = by_key();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("ical:ev-acme").status, store::DecisionStatus::captured);
  ASSERT_EQ(all.count("ical-href:" + cal + "big.ics"), 1u);
  const store::Activity& f = all.at("ical-href:" + cal + "big.ics");
  EXPECT_EQ(f.status, store::DecisionStatus::failed);
  EXPECT_EQ(f.rule, "parse");
  const std::regex over("failed: ([0-9]+) bytes, over the limit of " + std::to_string(limit));
  std::smatch m;
  ASSERT_TRUE(std::regex_match(f.reason, m, over)) << f.reason;
  EXPECT_GT(std::stoull(m[1].str()), limit);
  ASSERT_EQ(f.sources.size(), 1u);
  EXPECT_EQ(f.sources[0].mailbox, "m");
  EXPECT_EQ(f.sources[0].folder, cal);
  EXPECT_EQ(f.sources[0].path, cal + "big.ics#parse");
  EXPECT_EQ(sink->counters().failed, 1u);
  // Its ETag is kept: the next pass does not fetch it again.
  auto rec = st->calendar("m", cal).value();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->items.count(cal + "big.ics"), 1u);
  const std::string logged =
      "m: " + cal + "big.ics: cannot read the calendar object: " + m[1].str();
  EXPECT_EQ(std::count_if(warnings.begin(), warnings.end(),
                          [&](const std::string& w) { return w.starts_with(logged); }),
            1);
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

// A meeting organized by alice with these attendees (SEQUENCE as given).
std::string meeting_with(const std::string& uid, const std::vector<std::string>& attendees,
                         int sequence = 0) {
  std::string body = "BEGIN:VEVENT\nUID:" + uid +
                     "\nDTSTAMP:20261101T000000Z\nSEQUENCE:" + std::to_string(sequence) +
                     "\nDTSTART:20261201T100000Z\nDTEND:20261201T110000Z\nSUMMARY:Meeting " + uid +
                     "\nORGANIZER;CN=Alice:mailto:alice@example.com";
  for (const auto& a : attendees) body += "\nATTENDEE;PARTSTAT=ACCEPTED:mailto:" + a;
  return ics(body + "\nEND:VEVENT");
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> addresses(const store::Activity& a) {
  std::vector<std::string> out;
  for (const auto& p : a.participants) out.push_back(p.address);
  return sorted(std::move(out));
}

TEST_F(CaldavSync, FirstSyncOfAnEmptyCalendar) {
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  ASSERT_TRUE(pass.calendars[0].report);
  EXPECT_EQ(pass.calendars[0].report->changed, 0u);
  EXPECT_EQ(pass.calendars[0].report->deleted, 0u);
  EXPECT_TRUE(st->list({}).value().empty());
  EXPECT_EQ(sink->counters().captured + sink->counters().skipped + sink->counters().failed, 0u);
  // The state is stored all the same: the next sync asks nothing more.
  auto rec = st->calendar("m", cal).value();
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->items.empty());
  EXPECT_FALSE(rec->sync_token.empty());
  pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  EXPECT_EQ(pass.calendars[0].report->mode, caldav::SyncReport::Mode::unchanged);
  // Discovery's PROPFIND of the calendar says it is unchanged: no other.
  EXPECT_EQ(pass.discovery_requests, 1u);
  EXPECT_EQ(pass.calendars[0].report->requests, 0u);
  EXPECT_TRUE(st->list({}).value().empty());
}

TEST_F(CaldavSync, FirstSyncOfOneEvent) {
  const std::string etag = dav->put_event("work", "acme.ics", meeting("ev-acme", "jane@acme.com"));
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  EXPECT_EQ(pass.calendars[0].report->changed, 1u);
  auto all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const auto& a = all.at("ical:ev-acme");
  EXPECT_EQ(a.status, store::DecisionStatus::captured) << a.reason;
  EXPECT_EQ(a.direction, store::Direction::outbound);
  EXPECT_EQ(a.opportunity_id, "O-1") << a.reason;
  EXPECT_EQ(addresses(a), (std::vector<std::string>{"alice@example.com", "jane@acme.com"}));
  EXPECT_EQ(sink->counters().captured, 1u);
  EXPECT_EQ(sink->counters().skipped + sink->counters().failed, 0u);
  auto rec = st->calendar("m", cal).value();
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->items.size(), 1u);
  EXPECT_EQ(rec->items.begin()->first, cal + "acme.ics");
  EXPECT_EQ(rec->items.begin()->second, etag);
}

TEST_F(CaldavSync, FirstSyncOf250EventsThenNoDuplicates) {
  // 200 with a customer, every fifth internal only (skipped).
  constexpr int kEvents = 250;
  for (int i = 0; i < kEvents; ++i) {
    char day[32];
    std::snprintf(day, sizeof day, "202612%02dT%02d", 1 + i % 28, 8 + i % 10);
    const std::string who = i % 5 == 4 ? "bob@example.com" : "jane@acme.com";
    dav->put_event("work", "ev" + std::to_string(i) + ".ics",
                   meeting("ev-" + std::to_string(i), who, std::string(day) + "0000Z",
                           std::string(day) + "3000Z"));
  }
  auto pass = sync();
  ASSERT_EQ(pass.calendars.size(), 1u);
  const auto& report = *pass.calendars[0].report;
  EXPECT_EQ(report.changed, static_cast<std::size_t>(kEvents));
  EXPECT_EQ(report.failed, 0u);
  // 100 hrefs a multiget: at least three commits, each its own transaction.
  EXPECT_GE(report.commits, 3u);
  auto all = by_key();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kEvents));
  std::size_t captured = 0, skipped = 0;
  std::set<std::string> ids;
  for (const auto& [key, a] : all) {
    ids.insert(a.id);
    EXPECT_EQ(a.sources.size(), 1u) << key;
    captured += a.status == store::DecisionStatus::captured;
    skipped += a.status == store::DecisionStatus::skipped;
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kEvents));
  EXPECT_EQ(captured, 200u);
  EXPECT_EQ(skipped, 50u);
  EXPECT_EQ(sink->counters().captured, 200u);
  EXPECT_EQ(sink->counters().skipped, 50u);
  EXPECT_EQ(sink->counters().failed, 0u);
  EXPECT_EQ(st->calendar("m", cal).value()->items.size(), static_cast<std::size_t>(kEvents));

  // Nothing changed: one request, nothing written.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  pass = sync();
  EXPECT_EQ(pass.calendars[0].report->mode, caldav::SyncReport::Mode::unchanged);
  // Discovery's PROPFIND of the calendar says it is unchanged: no other.
  EXPECT_EQ(pass.discovery_requests, 1u);
  EXPECT_EQ(pass.calendars[0].report->requests, 0u);
  auto again = by_key();
  ASSERT_EQ(again.size(), all.size());
  for (const auto& [key, a] : again) EXPECT_EQ(a.updated_at, all.at(key).updated_at) << key;
  EXPECT_EQ(sink->counters().captured, 200u);

  // One new and one changed: exactly those two, the rest untouched.
  dav->put_event("work", "new.ics", meeting("ev-new", "hank@globex.com"));
  dav->put_event("work", "ev7.ics",
                 meeting("ev-7", "jane@acme.com", "20261220T100000Z", "20261220T110000Z"));
  pass = sync();
  EXPECT_EQ(pass.calendars[0].report->mode, caldav::SyncReport::Mode::sync_collection);
  EXPECT_EQ(pass.calendars[0].report->changed, 2u);
  again = by_key();
  ASSERT_EQ(again.size(), static_cast<std::size_t>(kEvents + 1));
  EXPECT_EQ(again.at("ical:ev-7").id, all.at("ical:ev-7").id);
  EXPECT_EQ(again.at("ical:ev-7").occurred_at, "2026-12-20T10:00:00Z");
  EXPECT_EQ(again.at("ical:ev-new").status, store::DecisionStatus::captured);
  std::size_t touched = 0;
  for (const auto& [key, a] : all) touched += again.at(key).updated_at != a.updated_at;
  EXPECT_EQ(touched, 1u);
  EXPECT_EQ(sink->counters().captured, 202u);
}

TEST_F(CaldavSync, AnAttendeeAddedUpdatesParticipantsAndLinksInPlace) {
  // Initech has two open opportunities: none is chosen.
  dav->put_event("work", "m.ics", meeting_with("ev-m", {"peter@initech.com"}));
  sync();
  auto all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const store::Activity before = all.at("ical:ev-m");
  EXPECT_EQ(before.contact_ids, std::vector<std::string>{"C-3"});
  EXPECT_EQ(before.company_ids, std::vector<std::string>{"CO-3"});
  EXPECT_EQ(before.opportunity_id, "") << before.reason;

  // Jane (a role on O-1) is invited too.
  dav->put_event("work", "m.ics", meeting_with("ev-m", {"peter@initech.com", "jane@acme.com"}, 1));
  auto pass = sync();
  EXPECT_EQ(pass.calendars[0].report->changed, 1u);
  all = by_key();
  ASSERT_EQ(all.size(), 1u);
  const auto& a = all.at("ical:ev-m");
  EXPECT_EQ(a.id, before.id);
  EXPECT_EQ(a.status, store::DecisionStatus::captured);
  EXPECT_EQ(addresses(a),
            (std::vector<std::string>{"alice@example.com", "jane@acme.com", "peter@initech.com"}));
  EXPECT_EQ(sorted(a.contact_ids), (std::vector<std::string>{"C-1", "C-3"}));
  EXPECT_EQ(sorted(a.company_ids), (std::vector<std::string>{"CO-1", "CO-3"}));
  EXPECT_EQ(a.opportunity_id, "O-1") << a.reason;
  ASSERT_TRUE(a.meeting);
  EXPECT_EQ(a.meeting->sequence, 1);
  EXPECT_FALSE(a.meeting->cancelled);
  ASSERT_EQ(a.sources.size(), 1u);
  EXPECT_TRUE(a.sources[0].removed_at.empty());
}

TEST_F(CaldavSync, AMovedOccurrenceOfASeriesUpdatesInPlace) {
  const std::string series =
      "BEGIN:VEVENT\nUID:ev-weekly\nDTSTAMP:20261101T000000Z\nDTSTART:20261202T150000Z\n"
      "DTEND:20261202T153000Z\nRRULE:FREQ=WEEKLY;COUNT=3\nSUMMARY:Weekly\n"
      "ORGANIZER:mailto:alice@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\n"
      "END:VEVENT";
  dav->put_event("work", "weekly.ics", ics(series));
  sync();
  const auto before = by_key();
  ASSERT_EQ(before.size(), 3u);
  const std::string key = "ical:ev-weekly/2026-12-09T15:00:00Z";
  // The second occurrence moved a day later and to 17:00, with Hank invited.
  const std::string moved =
      "\nBEGIN:VEVENT\nUID:ev-weekly\nDTSTAMP:20261102T000000Z\nRECURRENCE-ID:20261209T150000Z\n"
      "DTSTART:20261210T170000Z\nDTEND:20261210T173000Z\nSUMMARY:Weekly (moved)\n"
      "ORGANIZER:mailto:alice@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\n"
      "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.com\nEND:VEVENT";
  dav->put_event("work", "weekly.ics", ics(series + moved));
  auto pass = sync();
  EXPECT_EQ(pass.calendars[0].report->changed, 1u);
  auto all = by_key();
  ASSERT_EQ(all.size(), 3u);
  const auto& m = all.at(key);
  EXPECT_EQ(m.id, before.at(key).id);
  EXPECT_EQ(m.occurred_at, "2026-12-10T17:00:00Z");
  ASSERT_TRUE(m.meeting);
  EXPECT_EQ(m.meeting->starts_at, "2026-12-10T17:00:00Z");
  EXPECT_EQ(m.meeting->ends_at, "2026-12-10T17:30:00Z");
  EXPECT_FALSE(m.meeting->cancelled) << m.reason;
  EXPECT_EQ(m.subject, "Weekly (moved)");
  EXPECT_EQ(sorted(m.contact_ids), (std::vector<std::string>{"C-1", "C-2"}));
  ASSERT_EQ(m.sources.size(), 1u);
  EXPECT_TRUE(m.sources[0].removed_at.empty());
  // The other occurrences are as they were.
  for (const char* k :
       {"ical:ev-weekly/2026-12-02T15:00:00Z", "ical:ev-weekly/2026-12-16T15:00:00Z"}) {
    EXPECT_EQ(all.at(k).id, before.at(k).id) << k;
    EXPECT_EQ(all.at(k).occurred_at, before.at(k).occurred_at) << k;
    EXPECT_FALSE(all.at(k).meeting->cancelled) << k;
    EXPECT_EQ(all.at(k).contact_ids, std::vector<std::string>{"C-1"}) << k;
  }
  EXPECT_EQ(sink->cancelled(), 0u);
}

TEST_F(CaldavSync, AnInvalidSyncTokenFallsBackToAFullListing) {
  dav->put_event("work", "a.ics", meeting("ev-a", "jane@acme.com"));
  dav->put_event("work", "b.ics", meeting("ev-b", "hank@globex.com"));
  dav->put_event("work", "c.ics", meeting("ev-c", "peter@initech.com"));
  sync();
  const auto before = by_key();
  ASSERT_EQ(before.size(), 3u);
  const std::string real_token = st->calendar("m", cal).value()->sync_token;

  // Meanwhile: a moved, b deleted, d new, c unchanged.
  dav->put_event("work", "a.ics",
                 meeting("ev-a", "jane@acme.com", "20261204T090000Z", "20261204T100000Z"));
  dav->delete_event("work", "b.ics");
  dav->put_event("work", "d.ics", meeting("ev-d", "jane@acme.com"));
  // A token of Radicale's form that it never issued, and one of no form:
  // Radicale answers 403 with DAV:valid-sync-token to either.
  for (const std::string& bogus :
       {std::string("http://radicale.org/ns/sync/") + std::string(64, 'a'),
        std::string("not-a-token")}) {
    SCOPED_TRACE(bogus);
    caldav::CalendarChanges forged;
    forged.state = {cal, bogus, ""};
    ASSERT_TRUE(sink->commit(forged));
    ASSERT_EQ(st->calendar("m", cal).value()->sync_token, bogus);

    auto pass = sync();
    ASSERT_EQ(pass.calendars.size(), 1u);
    const auto& report = *pass.calendars[0].report;
    EXPECT_TRUE(report.fell_back);
    EXPECT_EQ(report.mode, caldav::SyncReport::Mode::etag_listing);
    auto all = by_key();
    ASSERT_EQ(all.size(), 4u);
    for (const auto& [key, a] : before) EXPECT_EQ(all.at(key).id, a.id) << key;
    EXPECT_EQ(all.at("ical:ev-a").occurred_at, "2026-12-04T09:00:00Z");
    EXPECT_FALSE(all.at("ical:ev-a").meeting->cancelled);
    EXPECT_TRUE(all.at("ical:ev-b").meeting->cancelled);
    EXPECT_FALSE(all.at("ical:ev-c").meeting->cancelled);
    EXPECT_EQ(all.at("ical:ev-c").updated_at, before.at("ical:ev-c").updated_at);
    EXPECT_EQ(all.at("ical:ev-d").status, store::DecisionStatus::captured);
    for (const auto& [key, a] : all) EXPECT_EQ(a.sources.size(), 1u) << key;
    auto rec = st->calendar("m", cal).value();
    ASSERT_TRUE(rec);
    EXPECT_NE(rec->sync_token, bogus);
    EXPECT_NE(rec->sync_token, real_token);
    std::vector<std::string> hrefs;
    for (const auto& [href, etag] : rec->items) hrefs.push_back(href);
    EXPECT_EQ(hrefs, (std::vector<std::string>{cal + "a.ics", cal + "c.ics", cal + "d.ics"}));
    // The token stored is the server's again: the next sync asks nothing more.
    pass = sync();
    EXPECT_EQ(pass.calendars[0].report->mode, caldav::SyncReport::Mode::unchanged);
  }
  // a (twice: first version, then moved), b, c, d: no decision made twice
  // for an unchanged item.
  EXPECT_EQ(sink->counters().captured, 5u);
  EXPECT_EQ(sink->cancelled(), 1u);
}

// A pass's progress sums its calendars: the total grows as each calendar's
// listing answers, done as each commit goes through; backfilling while some
// calendar of the pass is a first sync (from then on). A later pass with
// both calendars' tokens stored is no backfill, and counts only what it
// fetches.
TEST_F(CaldavSync, APassReportsItsProgressAcrossCalendars) {
  dav->make_calendar("home");
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    dav->put_event("work", "w" + n + ".ics", meeting("ev-w" + n, "jane@acme.com"));
  }
  dav->put_event("home", "h0.ics", meeting("ev-h0", "hank@globex.com"));
  dav->put_event("home", "h1.ics", meeting("ev-h1", "hank@globex.com"));
  std::vector<capture::CaldavPassProgress> seen;
  const auto record = [&](const capture::CaldavPassProgress& p) { seen.push_back(p); };
  const auto pass_of_all = [&] {
    caldav::Transport t(dav->transport_options());
    return capture::sync_caldav_once("m", dav->url() + "/", t, *sink, {}, record);
  };
  auto pass = pass_of_all();
  ASSERT_EQ(pass.first_error(), nullptr) << pass.first_error()->message;
  ASSERT_EQ(pass.calendars.size(), 2u);
  ASSERT_FALSE(seen.empty());
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_TRUE(seen[i].backfilling) << i;
    EXPECT_EQ(seen[i].done.has_value(), seen[i].total.has_value()) << i;
    if (!seen[i].done) continue;
    EXPECT_LE(*seen[i].done, *seen[i].total) << i;
    if (i > 0 && seen[i - 1].done) {
      EXPECT_GE(*seen[i].done, *seen[i - 1].done) << i;
      EXPECT_GE(*seen[i].total, *seen[i - 1].total) << i;
    }
  }
  // Unset until the first listing; the first calendar's total before the
  // second's listing; both at the end.
  EXPECT_FALSE(seen.front().done);
  const std::uint64_t first = pass.calendars[0].report->to_fetch;
  EXPECT_EQ(first, pass.calendars[0].calendar.url == cal ? 3u : 2u);
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(),
                          [&](const auto& p) { return p.total == first && p.done == 0u; }));
  EXPECT_EQ(seen.back().done, 5u);
  EXPECT_EQ(seen.back().total, 5u);
  EXPECT_EQ(sink->counters().captured, 5u);

  // One more event at home: only it is fetched, and it is no backfill.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  dav->put_event("home", "h2.ics", meeting("ev-h2", "hank@globex.com"));
  seen.clear();
  pass = pass_of_all();
  ASSERT_EQ(pass.first_error(), nullptr) << pass.first_error()->message;
  ASSERT_FALSE(seen.empty());
  for (const auto& p : seen) EXPECT_FALSE(p.backfilling);
  EXPECT_EQ(seen.back().done, 1u);
  EXPECT_EQ(seen.back().total, 1u);
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
  EXPECT_NE(d.out.find("captured 1, skipped 1, failed 0; pass "), std::string::npos) << d.out;
  EXPECT_TRUE(std::regex_search(d.out, std::regex("; pass [0-9]+\\.[0-9] ms\n"))) << d.out;
  auto a = run("crm-capture", "--store " + db.string() + " activities --json");
  ASSERT_EQ(a.status, 0) << a.out;
  EXPECT_NE(a.out.find("Meeting ev-acme"), std::string::npos) << a.out;
  // Jane's answer as the event gives it.
  EXPECT_NE(a.out.find(R"("address":"jane@acme.com")"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find(R"("partstat":"ACCEPTED")"), std::string::npos) << a.out;
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
