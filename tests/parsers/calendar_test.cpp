// SPDX-License-Identifier: Apache-2.0
// Calendar parser: hostile input answered in bounded time and reported, the
// zone lookups, the options. The golden corpus is in calendar_corpus_test.cpp.
#include "parsers/calendar/calendar.hpp"
#include "parsers/text/text.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using namespace crmcap::ical;

constexpr std::int64_t jan_2026 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr std::int64_t jan_2027 = 1798761600;

ParseOptions year_2026() {
  ParseOptions o;
  o.window_start = jan_2026;
  o.window_end = jan_2027;
  o.floating_zone = "Europe/Berlin";
  return o;
}

std::string calendar(const std::string& body) {
  return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + body + "END:VCALENDAR\r\n";
}

std::string event(const std::string& uid, const std::string& lines) {
  return "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20260101T000000Z\r\n" + lines +
         "END:VEVENT\r\n";
}

bool has_failure(const Calendar& c, const std::string& uid, Errc code) {
  return std::any_of(c.failed.begin(), c.failed.end(), [&](const EventFailure& f) {
    return f.uid == uid && f.code == make_error_code(code);
  });
}

TEST(Calendar, EmptyAndTooLargeAreObjectErrors) {
  EXPECT_EQ(parse("").error().code, make_error_code(Errc::empty_input));
  EXPECT_EQ(parse(" \r\n ").error().code, make_error_code(Errc::empty_input));
  std::string big = calendar(event(
      "big", "DTSTART:20260301T090000Z\r\nDESCRIPTION:" + std::string(1u << 20, 'x') + "\r\n"));
  const auto r = parse(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(Errc::too_large));
  EXPECT_NE(r.error().message.find("over the limit"), std::string::npos);
  ParseOptions o;
  o.max_bytes = big.size();
  EXPECT_TRUE(parse(big, o).has_value());
}

TEST(Calendar, NulBytesAndBadOptionsAreRefused) {
  std::string s = calendar(event("nul", "DTSTART:20260301T090000Z\r\n"));
  s.insert(20, 1, '\0');
  EXPECT_EQ(parse(s).error().code, make_error_code(Errc::bad_structure));
  ParseOptions o;
  o.window_start = 10;
  o.window_end = 5;
  EXPECT_EQ(parse(calendar(""), o).error().code, make_error_code(Errc::bad_options));
}

TEST(Calendar, OnlyTodosGiveNoMeetings) {
  const auto r = parse(calendar("BEGIN:VTODO\r\nUID:t\r\nSUMMARY:call back\r\nEND:VTODO\r\n"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->meetings.empty());
  EXPECT_TRUE(r->failed.empty());
}

TEST(Calendar, ConcatenatedCalendarsAreAllRead) {
  const std::string a = calendar(event("a", "DTSTART:20260301T090000Z\r\n"));
  const std::string b = calendar(event("b", "DTSTART:20260302T090000Z\r\n"));
  const auto r = parse(a + b);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->meetings.size(), 2u);
  EXPECT_EQ(r->meetings[0].uid, "a");
  EXPECT_EQ(r->meetings[1].uid, "b");
}

TEST(Calendar, DescriptionIsABoundedValidSnippet) {
  std::string desc;
  for (int i = 0; i < 200; ++i) desc += "Größe \\n ";
  desc += "\xff\xfe";
  ParseOptions o = year_2026();
  o.description_chars = 50;
  const auto r = parse(calendar(event("d", "DTSTART:20260301T090000Z\r\nDESCRIPTION:" + desc +
                                               "\r\nSUMMARY:bad \xc3\x28 byte\r\n")),
                       o);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->meetings.size(), 1u);
  const Meeting& m = r->meetings[0];
  EXPECT_TRUE(crmcap::text::is_valid_utf8(m.description));
  EXPECT_TRUE(crmcap::text::is_valid_utf8(m.summary));
  EXPECT_TRUE(m.description.starts_with("Größe Größe"));
  EXPECT_LE(m.description.size(), 50u * 2 + 3);
}

// An endless SECONDLY series is skipped ahead to the window and stopped by the
// occurrence cap, which is reported on the meetings.
// An endless SECONDLY series is no meeting series: it fails whole, with its
// reason, instead of being captured cut short. A series with as many
// occurrences in the window as the cap is kept whole.
TEST(Calendar, EndlessSecondlySeriesFailsAtTheOccurrenceCap) {
  ParseOptions o = year_2026();
  o.max_occurrences = 50;
  const auto r =
      parse(calendar(event("sec", "DTSTART:19900101T000000Z\r\nRRULE:FREQ=SECONDLY\r\n")), o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->meetings.empty());
  ASSERT_EQ(r->failed.size(), 1u);
  EXPECT_EQ(r->failed[0].uid, "sec");
  EXPECT_EQ(r->failed[0].code, make_error_code(Errc::limit_exceeded));
  EXPECT_NE(r->failed[0].reason.find("more than 50 occurrences in the window"), std::string::npos)
      << r->failed[0].reason;

  const auto whole = parse(
      calendar(event("fifty", "DTSTART:20260101T000000Z\r\nRRULE:FREQ=SECONDLY;COUNT=50\r\n")), o);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->meetings.size(), 50u);
  EXPECT_TRUE(whole->failed.empty());
}

// Skipping ahead keeps the phase of a sub-daily INTERVAL across days (libical's
// icalrecur_iterator_set_start aligns by the hour of the day alone).
TEST(Calendar, HourlyIntervalKeepsItsPhaseWhenSkipped) {
  ParseOptions o = year_2026();
  o.window_start = 1772323200;  // 2026-03-01T00:00:00Z, 59 days after DTSTART
  o.window_end = o.window_start + 86400;
  const auto r = parse(
      calendar(event("h5", "DTSTART:20260101T000000Z\r\nRRULE:FREQ=HOURLY;INTERVAL=5\r\n")), o);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->meetings.empty());
  // 59 days = 1416 hours; the next multiple of 5 is 1420: 04:00.
  EXPECT_EQ(r->meetings[0].start.utc, "2026-03-01T04:00:00Z");
  EXPECT_EQ(r->meetings[1].start.utc, "2026-03-01T09:00:00Z");
  for (const auto& m : r->meetings) EXPECT_EQ((m.start.unix - 1767225600) % (5 * 3600), 0);
}

// A COUNT series that ends long before the window is answered without
// iterating: no meetings and no failure.
TEST(Calendar, CountedSeriesEndingBeforeTheWindowGivesNothing) {
  const auto r = parse(
      calendar(event("old", "DTSTART:19900101T000000Z\r\nRRULE:FREQ=SECONDLY;COUNT=1000000\r\n")),
      year_2026());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->meetings.empty());
  EXPECT_TRUE(r->failed.empty());
}

// With COUNT the iterator cannot skip; max_iterations stops it and the series
// is reported as failed (its occurrences in the window are unknown).
TEST(Calendar, CountedSeriesBeforeTheWindowHitsTheIterationCap) {
  ParseOptions o = year_2026();
  o.max_iterations = 500;
  const auto r = parse(
      calendar(event("cnt", "DTSTART:19900101T000000Z\r\nRRULE:FREQ=MINUTELY;COUNT=999999999\r\n")),
      o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->meetings.empty());
  ASSERT_TRUE(has_failure(*r, "cnt", Errc::limit_exceeded));
  EXPECT_NE(r->failed[0].reason.find("max_iterations"), std::string::npos);
}

// Rules for which libical would search for years (or up to the year 20000)
// inside one call: each is refused or bounded, never a hang.
class HostileRule : public testing::TestWithParam<const char*> {};

TEST_P(HostileRule, AnsweredInBoundedTime) {
  const auto started = std::chrono::steady_clock::now();
  const auto r = parse(
      calendar(event("h", std::string("DTSTART:20260105T100000Z\r\nRRULE:") + GetParam() + "\r\n")),
      year_2026());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  RecordProperty("milliseconds", std::to_string(ms));
  ASSERT_TRUE(r);
  // Either meetings (within the cap) or a reported failure: never nothing.
  EXPECT_TRUE(!r->meetings.empty() || !r->failed.empty()) << GetParam();
  EXPECT_LE(r->meetings.size(), ParseOptions{}.max_occurrences);
  for (const auto& f : r->failed) EXPECT_FALSE(f.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Rules, HostileRule,
    testing::Values("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=MINUTELY;BYDAY=MO",
                    "FREQ=HOURLY;BYYEARDAY=366", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
                    "FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=30",
                    "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=1", "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=2",
                    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYDAY=5MO;BYMONTH=2",
                    "FREQ=MONTHLY;BYDAY=5FR;BYSETPOS=-1", "FREQ=WEEKLY;INTERVAL=32767",
                    "FREQ=YEARLY;BYYEARDAY=-366", "FREQ=YEARLY;BYWEEKNO=-53;BYDAY=SU",
                    "FREQ=DAILY;INTERVAL=1;BYHOUR=25", "FREQ=SECONDLY;INTERVAL=1;BYSECOND=59",
                    "FREQ=MONTHLY;BYMONTHDAY=-31", "FREQ=YEARLY;UNTIL=99991231T235959Z",
                    "FREQ=DAILY;UNTIL=20251231", "FREQ=DAILY;COUNT=0",
                    "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1", "FREQ=YEARLY;BYMONTHDAY=31;BYDAY=1MO",
                    "FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=TU;BYSETPOS=2",
                    "FREQ=YEARLY;BYWEEKNO=1;BYYEARDAY=200", "FREQ=MONTHLY;BYDAY=-6FR",
                    "FREQ=YEARLY;BYMONTH=2;BYDAY=MO;BYMONTHDAY=29",
                    "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=2", "FREQ=YEARLY;BYMONTH=6;BYDAY=MO;BYSETPOS=-6",
                    "FREQ=DAILY;BYSETPOS=2",
                    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=1,2;BYSETPOS=2"));

// A hostile object with thousands of recurring events: the per-object budgets
// stop it, and what was not produced is listed as failed.
TEST(Calendar, ManySeriesAreBoundedAndReported) {
  std::string body;
  for (int i = 0; body.size() < 900000; ++i) {
    body += event("s" + std::to_string(i), "DTSTART:20260101T000000Z\r\nRRULE:FREQ=HOURLY\r\n");
  }
  const auto started = std::chrono::steady_clock::now();
  const auto r = parse(calendar(body), year_2026());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  RecordProperty("milliseconds", std::to_string(ms));
  ASSERT_TRUE(r);
  EXPECT_LE(r->meetings.size(), ParseOptions{}.max_meetings);
  EXPECT_FALSE(r->failed.empty());
  EXPECT_TRUE(std::any_of(r->failed.begin(), r->failed.end(), [](const EventFailure& f) {
    return f.code == make_error_code(Errc::limit_exceeded);
  }));
}

TEST(Calendar, ManyEventsOverMaxEventsAreListed) {
  std::string body;
  for (int i = 0; i < 30; ++i)
    body += event("e" + std::to_string(i), "DTSTART:20260301T090000Z\r\n");
  ParseOptions o = year_2026();
  o.max_events = 20;
  const auto r = parse(calendar(body), o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->meetings.size(), 20u);
  ASSERT_EQ(r->failed.size(), 10u);
  EXPECT_EQ(r->failed[0].uid, "e20");
  EXPECT_EQ(r->failed[0].code, make_error_code(Errc::limit_exceeded));
}

TEST(Calendar, ManyUnknownZonesStayBounded) {
  std::string body;
  for (int i = 0; i < 2000; ++i) {
    body += event("z" + std::to_string(i),
                  "DTSTART;TZID=Nowhere/Zone" + std::to_string(i) + ":20260301T090000\r\n");
  }
  const auto r = parse(calendar(body), year_2026());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->meetings.size(), 2000u);
  for (const auto& m : r->meetings) {
    EXPECT_EQ(m.zone, "UTC");
    EXPECT_FALSE(m.notes.empty());
  }
}

TEST(Calendar, VtimezoneFarInThePastAndFutureIsBounded) {
  // Observances from the year 1 and an event in 2499: libical expands every
  // year in between; the checks move the start to 1900.
  const std::string vtz =
      "BEGIN:VTIMEZONE\r\nTZID:Old\r\nBEGIN:STANDARD\r\nDTSTART:00010101T000000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
      "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:00010101T000000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
      "END:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
  const auto r = parse(calendar(vtz + event("old", "DTSTART;TZID=Old:24990701T120000\r\n")));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->meetings.size(), 1u);
  EXPECT_EQ(r->meetings[0].start.utc, "2499-07-01T10:00:00Z");
}

TEST(Calendar, DeepNestingIsRefusedBeforeLibical) {
  std::string s = "BEGIN:VCALENDAR\r\n";
  for (int i = 0; i < 100000; ++i) s += "BEGIN:X\r\n";
  const auto r = parse(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(Errc::bad_structure));
  EXPECT_NE(r.error().message.find("line 17"), std::string::npos) << r.error().message;
}

TEST(Calendar, SystemZoneNames) {
  EXPECT_EQ(system_zone_name("Europe/Berlin"), "Europe/Berlin");
  EXPECT_EQ(system_zone_name("europe/BERLIN"), "Europe/Berlin");
  EXPECT_EQ(system_zone_name("\"America/New_York\""), "America/New_York");
  EXPECT_EQ(system_zone_name("/mozilla.org/20070129_1/Europe/Berlin"), "Europe/Berlin");
  EXPECT_EQ(system_zone_name("W. Europe Standard Time"), "Europe/Berlin");
  EXPECT_EQ(system_zone_name("Pacific Standard Time"), "America/Los_Angeles");
  EXPECT_EQ(system_zone_name("Australia/Lord_Howe"), "Australia/Lord_Howe");
  EXPECT_EQ(system_zone_name("UTC"), "UTC");
  EXPECT_EQ(system_zone_name(""), "");
  EXPECT_EQ(system_zone_name("Mars/Olympus_Mons"), "");
  EXPECT_EQ(system_zone_name("../../etc/passwd"), "");
  EXPECT_EQ(system_zone_name("zone.tab"), "");
}

TEST(Calendar, UnknownFloatingZoneIsNotedAndUtcUsed) {
  ParseOptions o = year_2026();
  o.floating_zone = "Atlantis/Capital";
  const auto r = parse(calendar(event("f", "DTSTART:20260301T090000\r\n")), o);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->meetings.size(), 1u);
  EXPECT_EQ(r->meetings[0].start.utc, "2026-03-01T09:00:00Z");
  EXPECT_TRUE(r->meetings[0].floating);
  ASSERT_FALSE(r->warnings.empty());
  EXPECT_NE(r->warnings[0].find("Atlantis/Capital"), std::string::npos);
}

TEST(Calendar, ParsesOnSeveralThreadsAtOnce) {
  const std::string s = calendar(
      event("t", "DTSTART;TZID=Asia/Tokyo:20260301T090000\r\nRRULE:FREQ=DAILY;COUNT=20\r\n"));
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const auto r = parse(s, year_2026());
        ok[static_cast<std::size_t>(t)] +=
            r && r->meetings.size() == 20 && r->meetings[0].start.utc == "2026-03-01T00:00:00Z";
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : ok) EXPECT_EQ(n, 20);
}

// A VTIMEZONE of `tzid` with one observance of `offset` ("+0530") all year.
std::string fixed_zone(const std::string& tzid, const std::string& offset) {
  return "BEGIN:VTIMEZONE\r\nTZID:" + tzid + "\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n" +
         "TZOFFSETFROM:" + offset + "\r\nTZOFFSETTO:" + offset +
         "\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
}

// A VTIMEZONE of `tzid` at +0100 in winter and +0200 in summer, summer time
// starting on `dst_start` (an RRULE's BYDAY) of March and ending on the last
// Sunday of October.
std::string dst_zone(const std::string& tzid, const std::string& dst_start) {
  return "BEGIN:VTIMEZONE\r\nTZID:" + tzid +
         "\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700301T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=" +
         dst_start +
         "\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n"
         "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
         "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
}

// The parser keeps the VTIMEZONEs it built across objects (CalDAV sends one
// with every event), keyed by their whole definition: calendars that define
// one TZID differently each convert by their own, whichever came first, and
// however many definitions passed in between (more than the cache holds).
TEST(Calendar, OneTzidDefinedDifferentlyConvertsByEachDefinition) {
  // 2026-03-15 falls between the second Sunday of March (8th, US rules) and
  // the last (29th, EU rules).
  const std::string noon = event("n", "DTSTART;TZID=Europe/Berlin:20260315T120000\r\n");
  const std::string eu = calendar(dst_zone("Europe/Berlin", "-1SU") + noon);
  const std::string us_rules = calendar(dst_zone("Europe/Berlin", "2SU") + noon);
  for (int round = 0; round < 2; ++round) {
    for (const auto& [ics, utc] :
         {std::pair{eu, "2026-03-15T11:00:00Z"}, std::pair{us_rules, "2026-03-15T10:00:00Z"}}) {
      const auto r = parse(ics, year_2026());
      ASSERT_TRUE(r);
      ASSERT_EQ(r->meetings.size(), 1u);
      EXPECT_EQ(r->meetings[0].start.utc, utc) << round;
      EXPECT_EQ(r->meetings[0].zone, "Europe/Berlin");
      EXPECT_TRUE(r->warnings.empty()) << r->warnings[0];
    }
  }
  // 70 definitions of "Office", from +0100 to +0209, twice over.
  for (int round = 0; round < 2; ++round) {
    for (int m = 0; m < 70; ++m) {
      char offset[8];
      std::snprintf(offset, sizeof offset, "+%02d%02d", 1 + m / 60, m % 60);
      const auto r = parse(calendar(fixed_zone("Office", offset) +
                                    event("o", "DTSTART;TZID=Office:20260601T120000\r\n")),
                           year_2026());
      ASSERT_TRUE(r);
      ASSERT_EQ(r->meetings.size(), 1u);
      EXPECT_EQ(r->meetings[0].start.unix, 1780315200 - (60 + m) * 60) << offset;
    }
  }
}

// A VTIMEZONE refused once is refused again with the same reason, and the
// event falls back to the system zone each time.
TEST(Calendar, ARefusedVtimezoneIsRefusedEveryTime) {
  const std::string ics = calendar(
      "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
      "RRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0500\r\nTZOFFSETTO:+0500\r\nEND:STANDARD\r\n"
      "END:VTIMEZONE\r\n" +
      event("r", "DTSTART;TZID=Europe/Berlin:20260601T120000\r\n"));
  for (int round = 0; round < 2; ++round) {
    const auto r = parse(ics, year_2026());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->meetings.size(), 1u);
    EXPECT_EQ(r->meetings[0].start.utc, "2026-06-01T10:00:00Z");
    ASSERT_EQ(r->warnings.size(), 1u);
    EXPECT_EQ(r->warnings[0],
              "VTIMEZONE 'Europe/Berlin' ignored: an observance's RRULE is not FREQ=YEARLY");
  }
}

// An event that cannot be read still says what it names: an iMIP CANCEL may
// leave out DTSTART (RFC 5546). Its RECURRENCE-ID does not key the failure;
// one out of range (c3) is there, but names no time.
TEST(Calendar, AnUnreadableEventKeepsItsSequenceAndRecurrenceId) {
  const auto r = parse(calendar(event("c1", "SEQUENCE:3\r\nSTATUS:CANCELLED\r\n") +
                                event("c2", "SEQUENCE:2\r\nRECURRENCE-ID:20260309T140000Z\r\n") +
                                event("c3", "RECURRENCE-ID:30000101T000000Z\r\n")),
                       year_2026());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->failed.size(), 3u);
  for (const auto& f : r->failed) {
    EXPECT_EQ(f.code, make_error_code(Errc::bad_event)) << f.uid;
    EXPECT_NE(f.reason.find("no DTSTART"), std::string::npos) << f.reason;
    EXPECT_FALSE(f.recurrence_id) << f.uid;
  }
  EXPECT_EQ(r->failed[0].sequence, 3);
  EXPECT_FALSE(r->failed[0].has_recurrence_id);
  EXPECT_FALSE(r->failed[0].own_recurrence_id);
  EXPECT_EQ(r->failed[1].sequence, 2);
  EXPECT_TRUE(r->failed[1].has_recurrence_id);
  ASSERT_TRUE(r->failed[1].own_recurrence_id);
  EXPECT_EQ(r->failed[1].own_recurrence_id->utc, "2026-03-09T14:00:00Z");
  EXPECT_EQ(r->failed[2].sequence, 0);
  EXPECT_TRUE(r->failed[2].has_recurrence_id);
  EXPECT_FALSE(r->failed[2].own_recurrence_id);
}

}  // namespace
