// SPDX-License-Identifier: Apache-2.0
// DESIGN.md rule 6 end to end, on a real SQLite store: iMIP mail (REQUEST,
// CANCEL, REPLY) updates the meeting by UID and SEQUENCE, keyed as the
// calendar keys it, whichever of mail, .ics file and CalDAV comes first; the
// mail itself is listed with what it did and is no second activity.
#include "connectors/caldav/caldav.hpp"
#include "connectors/maildir/maildir.hpp"
#include "daemon/capture/caldav_sink.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/cli/ingest.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace crmcap;
using store::ActivityKind;
using store::DecisionStatus;
using test::ics_time;
using test::vcalendar;
using test::vevent;

namespace {

constexpr std::int64_t k_day = 86400;
// 2026-12-01T00:00:00Z: a single event is read whatever its time.
constexpr std::int64_t k_dec1 = 1796083200;

// An iMIP message from `from` to alice@example.com (the owner), whose one
// text/calendar part has `method` and the VEVENTs `events`.
std::string imip(const std::string& method, const std::string& mid, const std::string& events,
                 const std::string& from = "jane@acme.com",
                 const std::string& subject = "Pilot review") {
  return "From: " + from + "\nTo: alice@example.com\nSubject: " + subject +
         "\nDate: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <" + mid +
         ">\nMIME-Version: 1.0\nContent-Type: text/calendar; charset=utf-8; method=" + method +
         "\n\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:" + method + "\r\n" +
         events + "END:VCALENDAR\r\n";
}

// The review: a single event organized by Jane (contact C-1, a role on O-1),
// with Alice and Hank (C-2), from `start` for an hour.
std::string review(int sequence, std::int64_t start, const std::string& summary = "Pilot review",
                   const std::string& more = "") {
  return vevent("UID:review-1@acme.com\r\nSEQUENCE:" + std::to_string(sequence) + "\r\nSUMMARY:" +
                summary + "\r\nDTSTART:" + ics_time(start) + "\r\nDTEND:" + ics_time(start + 3600) +
                "\r\nORGANIZER:mailto:jane@acme.com\r\n" + more +
                "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.com\r\n"
                "ATTENDEE:mailto:hank@globex.com\r\n");
}

// Hank's answer to the review, as Google sends it: ORGANIZER, his ATTENDEE
// line and what the answering client had (here another time and subject).
std::string hank_accepts(const std::string& when) {
  return vevent("UID:review-1@acme.com\r\nSEQUENCE:0\r\n" + when +
                "SUMMARY:Accepted: Pilot review\r\nORGANIZER:mailto:jane@acme.com\r\n"
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.com\r\n");
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<store::Store> st = test::directory_store((dir.path() / "c.db").string());
  capture::Pipeline pipeline{*st, *st, settings(), free_mail()};
  std::int64_t uid = 0;
  // Midnight UTC three weeks ago: a weekly series of four from here is in
  // the window (90 days back, 30 ahead).
  const std::int64_t base = (static_cast<std::int64_t>(std::time(nullptr)) / k_day - 21) * k_day;

  static capture::Settings settings() {
    capture::Settings s;
    s.owner_addresses = {"alice@example.com"};
    s.internal_domains = {"example.com"};
    return s;
  }
  static capture::FreeMailDomains free_mail() {
    return capture::FreeMailDomains::from_text("gmail.com\n");
  }

  // Decides the messages in the order given, as the IMAP sink does (the
  // order they arrive in), in one batch, or committing after each.
  capture::Tally deliver(const std::vector<std::string>& raws, bool commit_each = false,
                         const std::string& folder = "INBOX") {
    capture::BatchWriter w(pipeline, *st);
    for (const auto& raw : raws) {
      const capture::MessageSource src{{"work", folder, 7, ++uid}, 1795000000};
      w.add(pipeline.process(raw, src), src.ref);
      if (commit_each) {
        EXPECT_TRUE(w.commit());
      }
    }
    EXPECT_TRUE(w.commit());
    return w.tally();
  }

  // Ingests a calendar file holding `events`, as `crm-capture ingest` does.
  capture::Tally ingest_ics(const std::string& name, const std::string& events) {
    const fs::path p = dir.path() / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << vcalendar(events);
    auto found = maildir::find_messages({p.string()});
    EXPECT_TRUE(found) << found.error();
    auto r = cli::ingest(*found, pipeline, *st);
    EXPECT_TRUE(r) << r.error().message;
    return *r;
  }

  std::optional<store::Activity> get(const std::string& key) {
    return st->by_source_key(key).value();
  }
  store::Activity mail(const std::string& mid) {
    auto a = get("mid:" + mid);
    EXPECT_TRUE(a) << mid;
    return a ? *a : store::Activity{};
  }
  std::vector<store::Activity> meetings() {
    return st->list(test::of_kind(ActivityKind::meeting)).value();
  }

  // The weekly pilot sync organized by Jane with Hank, four from `base`.
  std::string weekly(int sequence, const std::string& more = "") const {
    return vevent("UID:weekly@acme.com\r\nSEQUENCE:" + std::to_string(sequence) +
                  "\r\nSUMMARY:Pilot sync\r\nDTSTART:" + ics_time(base + 14 * 3600) +
                  "\r\nDTEND:" + ics_time(base + 15 * 3600) +
                  "\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nORGANIZER:mailto:jane@acme.com\r\n"
                  "ATTENDEE:mailto:hank@globex.com\r\n" +
                  more);
  }
  std::string occurrence(int week) const {
    return "ical:weekly@acme.com/" + capture::iso_utc(base + week * 7 * k_day + 14 * 3600);
  }
};

}  // namespace

// A moved meeting's update, then the earlier invitation arriving late: the
// meeting keeps the newer time, and the late one says why it changed nothing.
TEST(Imip, ALateOlderRequestNeverOverwritesANewerOne) {
  for (const bool commit_each : {false, true}) {
    SCOPED_TRACE(commit_each ? "a commit after each" : "one batch");
    Fixture f;
    const auto sum = f.deliver(
        {imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600)),
         imip("REQUEST", "r2@acme.com", review(2, k_dec1 + 16 * 3600, "Pilot review (moved)")),
         imip("REQUEST", "r1@acme.com", review(1, k_dec1 + 15 * 3600))},
        commit_each);
    EXPECT_EQ(sum.line(), "seen 5, captured 2, skipped 3 (imip 3), failed 0");
    const auto all = f.meetings();
    ASSERT_EQ(all.size(), 1u);
    const auto& m = all[0];
    EXPECT_EQ(m.source_key, "ical:review-1@acme.com");
    EXPECT_EQ(m.status, DecisionStatus::captured);
    EXPECT_EQ(m.subject, "Pilot review (moved)");
    EXPECT_EQ(m.occurred_at, "2026-12-01T16:00:00Z");
    ASSERT_TRUE(m.meeting);
    EXPECT_EQ(m.meeting->starts_at, "2026-12-01T16:00:00Z");
    EXPECT_EQ(m.meeting->sequence, 2);
    EXPECT_EQ(m.opportunity_id, "O-1");
    EXPECT_EQ(m.reason.rfind("iMIP REQUEST, SEQUENCE 2, in mail <r2@acme.com>; organizer: "
                             "jane@acme.com = contact C-1; ",
                             0),
              0u)
        << m.reason;
    // Placed in the two mails that decided it, not in the late one.
    ASSERT_EQ(m.sources.size(), 2u);
    EXPECT_EQ(m.sources[0].uid, 1);
    EXPECT_EQ(m.sources[0].path, "#ical:review-1@acme.com");
    EXPECT_EQ(m.sources[1].uid, 2);

    const auto late = f.mail("r1@acme.com");
    EXPECT_EQ(late.kind, ActivityKind::email);
    EXPECT_EQ(late.status, DecisionStatus::skipped);
    EXPECT_EQ(late.rule, "imip");
    EXPECT_EQ(late.reason,
              "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 1: kept "
              "ical:review-1@acme.com (the stored SEQUENCE 2 is newer)");
    EXPECT_EQ(f.mail("r2@acme.com").reason,
              "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 2: applied to "
              "ical:review-1@acme.com");
  }
}

// A calendar's series, then its invitation: the same four occurrences, each
// now also placed in the mail; no fifth activity under the bare UID.
// An iMIP part's own warnings (here a refused VTIMEZONE) end the reason of
// the occurrence it decides, as a calendar object's do.
TEST(Imip, APartsWarningsEndTheReasonOfItsOccurrence) {
  Fixture f;
  f.deliver({imip("REQUEST", "tz@acme.com",
                  "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n"
                  "DTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+2000\r\n"
                  "END:STANDARD\r\nEND:VTIMEZONE\r\n" +
                      vevent("UID:tz-1@acme.com\r\nSUMMARY:Zone\r\n"
                             "DTSTART;TZID=Europe/Berlin:20261201T100000\r\n"
                             "DTEND;TZID=Europe/Berlin:20261201T110000\r\n"
                             "ORGANIZER:mailto:jane@acme.com\r\n"
                             "ATTENDEE:mailto:alice@example.com\r\n"))});
  const auto m = f.get("ical:tz-1@acme.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, DecisionStatus::captured) << m->reason;
  EXPECT_TRUE(
      m->reason.ends_with("; note: VTIMEZONE 'Europe/Berlin' ignored: TZOFFSETTO over 18h"
                          "; note: TZID 'Europe/Berlin': VTIMEZONE ignored; using Europe/Berlin"))
      << m->reason;
}

TEST(Imip, ACalendarEventAndItsInvitationAreOneActivity) {
  Fixture f;
  EXPECT_EQ(f.ingest_ics("work.ics", f.weekly(0)).captured, 4u);
  const auto before = f.meetings();
  ASSERT_EQ(before.size(), 4u);
  const auto sum = f.deliver({imip("REQUEST", "w0@acme.com", f.weekly(0))});
  EXPECT_EQ(sum.line(), "seen 5, captured 4, skipped 1 (imip 1), failed 0");
  const auto after = f.meetings();
  ASSERT_EQ(after.size(), 4u);
  for (int week = 0; week < 4; ++week) {
    const auto m = f.get(f.occurrence(week));
    ASSERT_TRUE(m) << week;
    EXPECT_EQ(m->sources.size(), 2u) << week;
    EXPECT_EQ(m->meeting, before[static_cast<std::size_t>(week)].meeting) << week;
  }
  EXPECT_FALSE(f.get("ical:weekly@acme.com"));
  EXPECT_EQ(f.mail("w0@acme.com").reason,
            "skipped (imip): iMIP REQUEST for meeting weekly@acme.com, SEQUENCE 0: applied to 4 "
            "occurrences");
}

// The invitation's update first, then the calendar's older copy (a .ics
// export, then the CalDAV sink): the update stands. The calendar's copy of
// the same revision replaces it (here: the owner declined there), and the
// same revision mailed again does not undo that.
TEST(Imip, TheNewerVersionStandsWhicheverPathComesFirst) {
  Fixture f;
  f.deliver({imip("REQUEST", "r3@acme.com", review(3, k_dec1 + 16 * 3600, "Moved"))});
  f.ingest_ics("old.ics", review(2, k_dec1 + 14 * 3600));
  auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->meeting);
  EXPECT_EQ(m->subject, "Moved");
  EXPECT_EQ(m->meeting->sequence, 3);
  EXPECT_EQ(m->sources.size(), 2u);  // the mail's and the file's

  capture::CaldavSink sink("work", f.pipeline, *f.st, *f.st);
  sink.on_warning = [](const std::string&) {};
  const std::string cal = "https://dav.example/alice/work/";
  caldav::CalendarChanges older;
  older.state = caldav::CalendarState{cal, "tok-1", ""};
  older.changed.push_back({cal + "r.ics", "\"e1\"", vcalendar(review(2, k_dec1 + 14 * 3600))});
  ASSERT_TRUE(sink.commit(older));
  m = f.get("ical:review-1@acme.com");
  EXPECT_EQ(m->meeting->starts_at, "2026-12-01T16:00:00Z");
  EXPECT_EQ(m->meeting->sequence, 3);

  caldav::CalendarChanges declined;
  declined.state = caldav::CalendarState{cal, "tok-2", ""};
  declined.changed.push_back(
      {cal + "r.ics", "\"e2\"",
       vcalendar(vevent("UID:review-1@acme.com\r\nSEQUENCE:3\r\nSUMMARY:Moved\r\nDTSTART:" +
                        ics_time(k_dec1 + 16 * 3600) +
                        "\r\nORGANIZER:mailto:jane@acme.com\r\n"
                        "ATTENDEE;PARTSTAT=DECLINED:mailto:alice@example.com\r\n"
                        "ATTENDEE:mailto:hank@globex.com\r\n"))});
  ASSERT_TRUE(sink.commit(declined));
  m = f.get("ical:review-1@acme.com");
  EXPECT_EQ(m->status, DecisionStatus::skipped);
  EXPECT_EQ(m->rule, "declined");

  f.deliver({imip("REQUEST", "r3-again@acme.com", review(3, k_dec1 + 16 * 3600, "Moved"))});
  EXPECT_EQ(f.get("ical:review-1@acme.com")->rule, "declined");
  EXPECT_EQ(f.mail("r3-again@acme.com").reason,
            "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 3: kept "
            "ical:review-1@acme.com (declined by the owner at SEQUENCE 3, the same revision)");
}

// A CANCEL with a RECURRENCE-ID cancels that occurrence of the series only.
TEST(Imip, ACancelOfOneOccurrenceCancelsThatOneOnly) {
  Fixture f;
  f.deliver({imip("REQUEST", "w0@acme.com", f.weekly(0))});
  ASSERT_EQ(f.meetings().size(), 4u);
  const std::string second = ics_time(f.base + 7 * k_day + 14 * 3600);
  f.deliver(
      {imip("CANCEL", "c1@acme.com",
            vevent("UID:weekly@acme.com\r\nSEQUENCE:1\r\nRECURRENCE-ID:" + second +
                   "\r\nDTSTART:" + second +
                   "\r\nSUMMARY:Pilot sync\r\nSTATUS:CANCELLED\r\n"
                   "ORGANIZER:mailto:jane@acme.com\r\nATTENDEE:mailto:hank@globex.com\r\n"))});
  ASSERT_EQ(f.meetings().size(), 4u);
  for (int week = 0; week < 4; ++week) {
    const auto m = f.get(f.occurrence(week));
    ASSERT_TRUE(m && m->meeting) << week;
    EXPECT_EQ(m->meeting->cancelled, week == 1) << week;
  }
  const auto cancelled = *f.get(f.occurrence(1));
  EXPECT_EQ(cancelled.meeting->sequence, 1);
  EXPECT_EQ(cancelled.subject, "Pilot sync");
  EXPECT_EQ(cancelled.reason.rfind("iMIP CANCEL, SEQUENCE 1, in mail <c1@acme.com>; cancelled; "
                                   "organizer: jane@acme.com = contact C-1",
                                   0),
            0u)
      << cancelled.reason;
  EXPECT_EQ(f.mail("c1@acme.com").reason,
            "skipped (imip): iMIP CANCEL for meeting weekly@acme.com, SEQUENCE 1: cancelled " +
                f.occurrence(1));
}

// A CANCEL of the event (no RECURRENCE-ID) cancels the meeting, or every
// stored occurrence of a series, keeping what they said; with nothing
// stored it records the cancelled meeting. An older update changes none.
TEST(Imip, ACancelOfTheMeetingCancelsItWhole) {
  Fixture f;
  f.deliver({imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600))});
  // Without STATUS and with a subject of its own: the CANCEL still cancels,
  // and the meeting keeps its subject and time.
  const std::string cancel = imip(
      "CANCEL", "c1@acme.com",
      vevent("UID:review-1@acme.com\r\nSEQUENCE:1\r\nSUMMARY:Canceled: Pilot review\r\nDTSTART:" +
             ics_time(k_dec1 + 14 * 3600) + "\r\nORGANIZER:mailto:jane@acme.com\r\n"));
  f.deliver({cancel});
  auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->meeting);
  EXPECT_TRUE(m->meeting->cancelled);
  EXPECT_EQ(m->subject, "Pilot review");
  EXPECT_EQ(m->meeting->starts_at, "2026-12-01T14:00:00Z");
  EXPECT_EQ(m->participants.size(), 3u);
  EXPECT_EQ(capture::meeting_status(*m->meeting, k_dec1), "cancelled");
  // The same CANCEL again, and an older update: nothing changes.
  f.deliver({cancel, imip("REQUEST", "r0b@acme.com", review(0, k_dec1 + 10 * 3600))});
  const auto again = f.get("ical:review-1@acme.com");
  EXPECT_EQ(again->updated_at, m->updated_at);
  EXPECT_EQ(again->reason, m->reason);
  EXPECT_TRUE(again->meeting->cancelled);
  EXPECT_EQ(f.mail("r0b@acme.com").reason,
            "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 0: kept "
            "ical:review-1@acme.com (the stored SEQUENCE 1 is newer)");

  // A series from the calendar, cancelled by a CANCEL without its RRULE.
  f.ingest_ics("work.ics", f.weekly(0));
  f.deliver(
      {imip("CANCEL", "c2@acme.com",
            vevent("UID:weekly@acme.com\r\nSEQUENCE:1\r\nDTSTART:" + ics_time(f.base + 14 * 3600) +
                   "\r\nORGANIZER:mailto:jane@acme.com\r\n"))});
  for (int week = 0; week < 4; ++week) {
    EXPECT_TRUE(f.get(f.occurrence(week))->meeting->cancelled) << week;
  }
  EXPECT_FALSE(f.get("ical:weekly@acme.com"));
  EXPECT_EQ(f.mail("c2@acme.com").reason,
            "skipped (imip): iMIP CANCEL for meeting weekly@acme.com, SEQUENCE 1: cancelled 4 "
            "occurrences");

  // Nothing stored: the cancelled meeting as the CANCEL says.
  f.deliver({imip("CANCEL", "c3@acme.com",
                  vevent("UID:dinner@globex.com\r\nSEQUENCE:4\r\nSUMMARY:Dinner\r\nDTSTART:" +
                         ics_time(k_dec1 + 19 * 3600) +
                         "\r\nORGANIZER:mailto:hank@globex.com\r\n"
                         "ATTENDEE:mailto:alice@example.com\r\n"),
                  "hank@globex.com", "Canceled: Dinner")});
  const auto dinner = f.get("ical:dinner@globex.com");
  ASSERT_TRUE(dinner && dinner->meeting);
  EXPECT_TRUE(dinner->meeting->cancelled);
  EXPECT_EQ(dinner->meeting->sequence, 4);
  EXPECT_EQ(dinner->subject, "Dinner");
  EXPECT_EQ(dinner->status, DecisionStatus::captured);
  EXPECT_EQ(f.mail("c3@acme.com").reason,
            "skipped (imip): iMIP CANCEL for meeting dinner@globex.com, SEQUENCE 4: recorded "
            "ical:dinner@globex.com (nothing stored for this UID)");
}

// An attendee's REPLY changes no stored meeting (its time and subject may be
// the answering client's); it is listed with who answered what, and the
// answer (PARTSTAT) is recorded on that attendee.
TEST(Imip, AReplyChangesNoStoredMeeting) {
  Fixture f;
  f.deliver({imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600))});
  const auto before = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(before);
  const auto sum = f.deliver({imip("REPLY", "a1@globex.com",
                                   hank_accepts("DTSTART:" + ics_time(k_dec1 + 9 * 3600) + "\r\n"),
                                   "hank@globex.com", "Accepted: Pilot review")});
  // The mail, and the meeting written again with Hank's answer.
  EXPECT_EQ(sum.line(), "seen 2, captured 1, skipped 1 (imip 1), failed 0");
  const auto after = f.get("ical:review-1@acme.com");
  EXPECT_EQ(after->subject, "Pilot review");
  EXPECT_EQ(after->meeting, before->meeting);
  EXPECT_EQ(after->occurred_at, before->occurred_at);
  // Only Hank's answer changed.
  auto expected = before->participants;
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(expected[2].address, "hank@globex.com");
  EXPECT_EQ(expected[2].partstat, "NEEDS-ACTION");
  expected[2].partstat = "ACCEPTED";
  EXPECT_EQ(after->participants, expected);
  EXPECT_EQ(f.meetings().size(), 1u);
  EXPECT_EQ(f.mail("a1@globex.com").reason,
            "skipped (imip): iMIP REPLY from hank@globex.com: ACCEPTED for meeting "
            "review-1@acme.com: answer recorded on ical:review-1@acme.com");
}

// A REPLY to an older SEQUENCE records nothing; one to an occurrence of a
// series (RECURRENCE-ID) records on that occurrence only.
TEST(Imip, AReplyRecordsTheAnswerOfItsRevisionAndOccurrence) {
  Fixture f;
  f.deliver({imip("REQUEST", "r1@acme.com", review(1, k_dec1 + 14 * 3600))});
  f.deliver({imip("REPLY", "a0@globex.com",
                  hank_accepts("DTSTART:" + ics_time(k_dec1 + 14 * 3600) + "\r\n"),
                  "hank@globex.com", "Accepted: Pilot review")});
  auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->participants.size() == 3u);
  EXPECT_EQ(m->participants[2].partstat, "NEEDS-ACTION");
  EXPECT_EQ(f.mail("a0@globex.com").reason,
            "skipped (imip): iMIP REPLY from hank@globex.com: ACCEPTED for meeting "
            "review-1@acme.com");

  f.deliver({imip("REQUEST", "w0@acme.com", f.weekly(0))});
  const std::string second = ics_time(f.base + 7 * k_day + 14 * 3600);
  f.deliver({imip("REPLY", "w1@globex.com",
                  vevent("UID:weekly@acme.com\r\nSEQUENCE:0\r\nRECURRENCE-ID:" + second +
                         "\r\nDTSTART:" + second +
                         "\r\nORGANIZER:mailto:jane@acme.com\r\n"
                         "ATTENDEE;PARTSTAT=DECLINED:mailto:hank@globex.com\r\n"),
                  "hank@globex.com", "Declined: Pilot sync")});
  for (int week = 0; week < 4; ++week) {
    const auto o = f.get(f.occurrence(week));
    ASSERT_TRUE(o) << week;
    const auto hank = std::find_if(o->participants.begin(), o->participants.end(),
                                   [](const auto& p) { return p.address == "hank@globex.com"; });
    ASSERT_NE(hank, o->participants.end()) << week;
    EXPECT_EQ(hank->partstat, week == 1 ? "DECLINED" : "NEEDS-ACTION") << week;
    EXPECT_FALSE(o->meeting->cancelled) << week;
  }
  EXPECT_EQ(f.mail("w1@globex.com").reason,
            "skipped (imip): iMIP REPLY from hank@globex.com: DECLINED for meeting "
            "weekly@acme.com: answer recorded on " +
                f.occurrence(1));
}

// The owner's own answer, as her client sends it from her Sent folder: the
// review with her PARTSTAT at `sequence`, for the occurrence `recurrence`
// (a DTSTART-style line) or the whole event.
std::string alice_answers(const std::string& partstat, int sequence = 0,
                          const std::string& recurrence = "") {
  return vevent("UID:review-1@acme.com\r\nSEQUENCE:" + std::to_string(sequence) + "\r\n" +
                recurrence + "DTSTART:" + ics_time(k_dec1 + 14 * 3600) +
                "\r\nORGANIZER:mailto:jane@acme.com\r\nATTENDEE;PARTSTAT=" + partstat +
                ":mailto:alice@example.com\r\n");
}

// The owner declining by REPLY skips the meeting (rule "declined", saying
// which mail), a later invitation of the same revision keeps it so, and her
// ACCEPTED later matches it again as it was. Colleagues' answers decide
// nothing.
TEST(Imip, TheOwnersDeclineByReplySkipsTheMeetingAndHerAcceptUndoesIt) {
  Fixture f;
  f.deliver({imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600))});
  const auto captured = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(captured && captured->meeting);
  ASSERT_EQ(captured->status, DecisionStatus::captured);
  ASSERT_EQ(captured->opportunity_id, "O-1");

  const auto sum = f.deliver({imip("REPLY", "d1@example.com", alice_answers("DECLINED"),
                                   "alice@example.com", "Declined: Pilot review")},
                             false, "Sent");
  EXPECT_EQ(sum.line(), "seen 2, captured 0, skipped 2 (declined 1, imip 1), failed 0");
  auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->meeting);
  EXPECT_EQ(m->status, DecisionStatus::skipped);
  EXPECT_EQ(m->rule, "declined");
  EXPECT_EQ(m->reason,
            "skipped (declined): declined by alice@example.com (iMIP REPLY, SEQUENCE 0, in mail "
            "<d1@example.com>)");
  EXPECT_EQ(m->meeting, captured->meeting);
  EXPECT_EQ(m->subject, "Pilot review");
  EXPECT_TRUE(m->contact_ids.empty());
  EXPECT_TRUE(m->opportunity_id.empty());
  ASSERT_EQ(m->participants.size(), 3u);
  EXPECT_EQ(m->participants[1].address, "alice@example.com");
  EXPECT_EQ(m->participants[1].partstat, "DECLINED");
  EXPECT_EQ(f.mail("d1@example.com").reason,
            "skipped (imip): iMIP REPLY from alice@example.com: DECLINED for meeting "
            "review-1@acme.com: answer recorded on ical:review-1@acme.com");

  // The invitation of the same revision again, and a colleague's answer:
  // still declined.
  f.deliver({imip("REQUEST", "r0-again@acme.com", review(0, k_dec1 + 14 * 3600)),
             imip("REPLY", "a1@globex.com",
                  hank_accepts("DTSTART:" + ics_time(k_dec1 + 14 * 3600) + "\r\n"),
                  "hank@globex.com", "Accepted: Pilot review")});
  m = f.get("ical:review-1@acme.com");
  EXPECT_EQ(m->rule, "declined");
  EXPECT_EQ(m->participants[2].partstat, "ACCEPTED");

  // She changes her mind: matched again, as the invitation was.
  f.deliver({imip("REPLY", "d2@example.com", alice_answers("ACCEPTED"), "alice@example.com",
                  "Accepted: Pilot review")},
            false, "Sent");
  m = f.get("ical:review-1@acme.com");
  EXPECT_EQ(m->status, DecisionStatus::captured);
  EXPECT_EQ(m->rule, "");
  EXPECT_EQ(m->contact_ids, captured->contact_ids);
  EXPECT_EQ(m->opportunity_id, "O-1");
  EXPECT_EQ(m->reason.rfind("iMIP REPLY, SEQUENCE 0, in mail <d2@example.com>; organizer: "
                            "jane@acme.com = contact C-1; ",
                            0),
            0u)
      << m->reason;
  EXPECT_EQ(m->participants[1].partstat, "ACCEPTED");
  EXPECT_EQ(f.meetings().size(), 1u);

  // An answer to an older revision decides nothing.
  f.deliver({imip("REQUEST", "r1@acme.com", review(1, k_dec1 + 14 * 3600))});
  f.deliver({imip("REPLY", "d3@example.com", alice_answers("DECLINED", 0), "alice@example.com",
                  "Declined: Pilot review")},
            false, "Sent");
  EXPECT_EQ(f.get("ical:review-1@acme.com")->status, DecisionStatus::captured);
}

// A decline of one occurrence of a series skips that one only; one of the
// event skips them all, even when the invitation did not name the owner
// (it went to a list she is on). A calendar's decline is undone by her
// ACCEPTED the same way. A private meeting stays private.
TEST(Imip, TheOwnersDeclineCoversWhatItAnswersFor) {
  Fixture f;
  f.deliver({imip("REQUEST", "w0@acme.com", f.weekly(0))});
  const std::string second = ics_time(f.base + 7 * k_day + 14 * 3600);
  auto weekly_answer = [&](const std::string& partstat, const std::string& more) {
    return vevent("UID:weekly@acme.com\r\nSEQUENCE:0\r\n" + more +
                  "ORGANIZER:mailto:jane@acme.com\r\nATTENDEE;PARTSTAT=" + partstat +
                  ":mailto:alice@example.com\r\n");
  };
  f.deliver(
      {imip("REPLY", "w1@example.com",
            weekly_answer("DECLINED", "RECURRENCE-ID:" + second + "\r\nDTSTART:" + second + "\r\n"),
            "alice@example.com", "Declined: Pilot sync")},
      false, "Sent");
  for (int week = 0; week < 4; ++week) {
    const auto o = f.get(f.occurrence(week));
    ASSERT_TRUE(o) << week;
    EXPECT_EQ(o->rule, week == 1 ? "declined" : "") << week;
    // Alice is an attendee now, by her own answer.
    const auto alice = std::find_if(o->participants.begin(), o->participants.end(),
                                    [](const auto& p) { return p.address == "alice@example.com"; });
    EXPECT_EQ(alice != o->participants.end(), week == 1) << week;
  }
  f.deliver({imip("REPLY", "w2@example.com",
                  weekly_answer("DECLINED", "DTSTART:" + ics_time(f.base + 14 * 3600) + "\r\n"),
                  "alice@example.com", "Declined: Pilot sync")},
            false, "Sent");
  for (int week = 0; week < 4; ++week) {
    const auto o = f.get(f.occurrence(week));
    EXPECT_EQ(o->status, DecisionStatus::skipped) << week;
    EXPECT_EQ(o->rule, "declined") << week;
  }
  EXPECT_EQ(f.mail("w2@example.com").reason,
            "skipped (imip): iMIP REPLY from alice@example.com: DECLINED for meeting "
            "weekly@acme.com: answer recorded on 3 occurrences");

  // Declined in the calendar, accepted by mail later.
  f.ingest_ics("review.ics",
               vevent("UID:review-1@acme.com\r\nSEQUENCE:0\r\nSUMMARY:Pilot review\r\nDTSTART:" +
                      ics_time(k_dec1 + 14 * 3600) +
                      "\r\nORGANIZER:mailto:jane@acme.com\r\n"
                      "ATTENDEE;PARTSTAT=DECLINED:mailto:alice@example.com\r\n"
                      "ATTENDEE:mailto:hank@globex.com\r\n"));
  ASSERT_EQ(f.get("ical:review-1@acme.com")->rule, "declined");
  f.deliver({imip("REPLY", "t1@example.com", alice_answers("TENTATIVE"), "alice@example.com",
                  "Tentative: Pilot review")},
            false, "Sent");
  EXPECT_EQ(f.get("ical:review-1@acme.com")->status, DecisionStatus::captured);

  // Private: what it says stays unkept, whatever she answers.
  f.deliver({imip("REQUEST", "p0@acme.com",
                  vevent("UID:private@acme.com\r\nSEQUENCE:0\r\nCLASS:PRIVATE\r\n"
                         "SUMMARY:Offsite\r\nDTSTART:" +
                         ics_time(k_dec1 + 10 * 3600) +
                         "\r\nORGANIZER:mailto:jane@acme.com\r\n"
                         "ATTENDEE:mailto:alice@example.com\r\n"))});
  f.deliver(
      {imip("REPLY", "p1@example.com",
            vevent("UID:private@acme.com\r\nSEQUENCE:0\r\nDTSTART:" + ics_time(k_dec1 + 10 * 3600) +
                   "\r\nORGANIZER:mailto:jane@acme.com\r\n"
                   "ATTENDEE;PARTSTAT=DECLINED:mailto:alice@example.com\r\n"),
            "alice@example.com", "Declined")},
      false, "Sent");
  const auto p = f.get("ical:private@acme.com");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rule, "private");
  EXPECT_EQ(p->subject, "");
}

// A REPLY with nothing stored for its UID (the owner organized the meeting
// elsewhere) records the meeting as the reply gives it, which the
// organizer's version of the same SEQUENCE then replaces. A reply without a
// time gives the meeting from the mail itself.
TEST(Imip, AReplyWithNothingStoredRecordsTheMeetingFromIt) {
  Fixture f;
  f.deliver({imip("REPLY", "a1@globex.com",
                  hank_accepts("DTSTART:" + ics_time(k_dec1 + 13 * 3600) + "\r\n"),
                  "hank@globex.com", "Accepted: Pilot review")});
  auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->meeting);
  EXPECT_EQ(m->status, DecisionStatus::captured);
  EXPECT_EQ(m->subject, "Accepted: Pilot review");
  EXPECT_EQ(m->meeting->starts_at, "2026-12-01T13:00:00Z");
  EXPECT_EQ(m->participants.size(), 2u);  // Jane and Hank
  EXPECT_EQ(m->reason.rfind("iMIP REPLY, SEQUENCE 0, in mail <a1@globex.com>; ", 0), 0u)
      << m->reason;
  EXPECT_EQ(f.mail("a1@globex.com").reason,
            "skipped (imip): iMIP REPLY from hank@globex.com: ACCEPTED for meeting "
            "review-1@acme.com: nothing stored for this UID, recorded ical:review-1@acme.com "
            "from it");

  f.deliver({imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600))});
  m = f.get("ical:review-1@acme.com");
  EXPECT_EQ(m->subject, "Pilot review");
  EXPECT_EQ(m->meeting->starts_at, "2026-12-01T14:00:00Z");
  EXPECT_EQ(m->participants.size(), 3u);

  f.deliver({imip("REPLY", "a2@globex.com",
                  vevent("UID:lunch@acme.com\r\nSEQUENCE:0\r\nORGANIZER:mailto:jane@acme.com\r\n"
                         "ATTENDEE;PARTSTAT=TENTATIVE:mailto:hank@globex.com\r\n"),
                  "hank@globex.com", "Tentative: Lunch")});
  const auto lunch = f.get("ical:lunch@acme.com");
  ASSERT_TRUE(lunch);
  EXPECT_EQ(lunch->kind, ActivityKind::meeting);
  EXPECT_EQ(lunch->subject, "Tentative: Lunch");
  EXPECT_EQ(lunch->occurred_at, "2026-11-02T09:00:00Z");
  EXPECT_EQ(lunch->status, DecisionStatus::captured);
  EXPECT_EQ(lunch->reason.rfind("iMIP REPLY, in mail <a2@globex.com>; ", 0), 0u) << lunch->reason;
  EXPECT_EQ(f.mail("a2@globex.com").reason,
            "skipped (imip): iMIP REPLY from hank@globex.com for meeting lunch@acme.com: nothing "
            "stored for this UID, recorded ical:lunch@acme.com from it (its event cannot be read: "
            "VEVENT 1 (UID lunch@acme.com): no DTSTART)");
}

// A calendar part that cannot be read, or an event in it that cannot, is a
// failed row of its own, keyed by the mail, and the stored meeting stays as
// it was. A mail of which nothing could be read is an ordinary one.
TEST(Imip, AnUnreadableCalendarPartIsAFailedRowAndChangesNothing) {
  Fixture f;
  f.deliver({imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600))});
  const auto before = f.get("ical:review-1@acme.com");
  const auto sum = f.deliver(
      {"From: jane@acme.com\nTo: alice@example.com\nSubject: Pilot review\n"
       "Date: Mon, 02 Nov 2026 10:00:00 +0000\nMessage-ID: <bad@acme.com>\nMIME-Version: 1.0\n"
       "Content-Type: text/calendar; method=REQUEST\n\nthis is no calendar\n",
       imip("REQUEST", "nostart@acme.com",
            vevent("UID:review-1@acme.com\r\nSEQUENCE:5\r\nSUMMARY:Pilot review\r\n"
                   "ORGANIZER:mailto:jane@acme.com\r\n"))});
  EXPECT_EQ(sum.line(), "seen 4, captured 2, skipped 0, failed 2");
  const auto bad = f.get("imip:bad@acme.com#1");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, DecisionStatus::failed);
  EXPECT_EQ(bad->rule, "parse");
  EXPECT_EQ(bad->reason.rfind("failed: cannot read the iMIP REQUEST part: ", 0), 0u) << bad->reason;
  ASSERT_EQ(bad->sources.size(), 1u);
  EXPECT_EQ(bad->sources[0].path, "#imip:bad@acme.com#1");
  const auto bad_mail = f.mail("bad@acme.com");
  EXPECT_EQ(bad_mail.kind, ActivityKind::email);
  EXPECT_EQ(bad_mail.status, DecisionStatus::captured);
  EXPECT_NE(bad_mail.reason.find(" (calendar unreadable: imip:bad@acme.com#1)"), std::string::npos)
      << bad_mail.reason;
  EXPECT_EQ(f.get("imip:nostart@acme.com#1")->reason,
            "failed: cannot read an event of the iMIP REQUEST: VEVENT 1 (UID review-1@acme.com): "
            "no DTSTART");
  EXPECT_EQ(f.mail("nostart@acme.com").status, DecisionStatus::captured);
  auto after = f.get("ical:review-1@acme.com");
  EXPECT_EQ(after->updated_at, before->updated_at);
  EXPECT_EQ(after->meeting, before->meeting);

  // One event read, one not: the one read is applied, the other failed.
  f.deliver(
      {imip("REQUEST", "mixed@acme.com",
            review(1, k_dec1 + 15 * 3600) + vevent("UID:other@acme.com\r\nSUMMARY:No start\r\n"
                                                   "ORGANIZER:mailto:jane@acme.com\r\n"))});
  EXPECT_EQ(f.mail("mixed@acme.com").reason,
            "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 1: applied to "
            "ical:review-1@acme.com; unreadable: imip:mixed@acme.com#1");
  EXPECT_EQ(f.get("imip:mixed@acme.com#1")->status, DecisionStatus::failed);
  EXPECT_EQ(f.get("ical:review-1@acme.com")->meeting->starts_at, "2026-12-01T15:00:00Z");
}

// An invitation applied from INBOX, then its copy in Trash (Outlook moves
// an accepted invitation there): the copy changes nothing. An invitation
// seen only in Trash is skipped and touches no meeting.
TEST(Imip, ACopyInAnExcludedFolderKeepsItsDecision) {
  Fixture f;
  const std::string raw = imip("REQUEST", "r0@acme.com", review(0, k_dec1 + 14 * 3600));
  f.deliver({raw});
  f.deliver({raw}, false, "Trash");
  EXPECT_EQ(f.mail("r0@acme.com").rule, "imip");
  f.deliver({imip("REQUEST", "t1@acme.com", review(1, k_dec1 + 9 * 3600))}, false, "Trash");
  EXPECT_EQ(f.mail("t1@acme.com").rule, "folder");
  EXPECT_EQ(f.get("ical:review-1@acme.com")->meeting->sequence, 0);
}

// RFC 5546 lets a CANCEL leave out DTSTART: its event cannot be read, but it
// still names what it cancels by UID, RECURRENCE-ID and SEQUENCE. What is
// stored is cancelled (the meeting keeps its time and subject); an older
// SEQUENCE changes nothing; with nothing stored it is a failed row.
TEST(Imip, ACancelWithoutDtstartStillCancels) {
  Fixture f;
  f.deliver({imip("REQUEST", "r2@acme.com", review(2, k_dec1 + 14 * 3600))});
  // Older than what is stored: kept.
  f.deliver({imip("CANCEL", "c1@acme.com",
                  vevent("UID:review-1@acme.com\r\nSEQUENCE:1\r\nSTATUS:CANCELLED\r\n"
                         "ORGANIZER:mailto:jane@acme.com\r\n"))});
  EXPECT_FALSE(f.get("ical:review-1@acme.com")->meeting->cancelled);
  EXPECT_EQ(f.mail("c1@acme.com").reason,
            "skipped (imip): iMIP CANCEL for meeting review-1@acme.com, SEQUENCE 1: kept "
            "ical:review-1@acme.com (the stored SEQUENCE 2 is newer)");
  EXPECT_FALSE(f.get("imip:c1@acme.com#1"));

  f.deliver({imip("CANCEL", "c3@acme.com",
                  vevent("UID:review-1@acme.com\r\nSEQUENCE:3\r\nSTATUS:CANCELLED\r\n"
                         "ORGANIZER:mailto:jane@acme.com\r\n"))});
  const auto m = f.get("ical:review-1@acme.com");
  ASSERT_TRUE(m && m->meeting);
  EXPECT_TRUE(m->meeting->cancelled);
  EXPECT_EQ(m->meeting->sequence, 3);
  EXPECT_EQ(m->meeting->starts_at, "2026-12-01T14:00:00Z");
  EXPECT_EQ(m->subject, "Pilot review");
  EXPECT_EQ(m->status, DecisionStatus::captured);
  EXPECT_EQ(m->reason.rfind("iMIP CANCEL, SEQUENCE 3, in mail <c3@acme.com>; cancelled; ", 0), 0u)
      << m->reason;
  EXPECT_EQ(f.mail("c3@acme.com").reason,
            "skipped (imip): iMIP CANCEL for meeting review-1@acme.com, SEQUENCE 3: cancelled "
            "ical:review-1@acme.com");
  EXPECT_FALSE(f.get("imip:c3@acme.com#1"));

  // One occurrence of a series, by its RECURRENCE-ID alone.
  f.deliver({imip("REQUEST", "w0@acme.com", f.weekly(0))});
  const std::string second = ics_time(f.base + 7 * k_day + 14 * 3600);
  f.deliver({imip("CANCEL", "w1@acme.com",
                  vevent("UID:weekly@acme.com\r\nSEQUENCE:1\r\nRECURRENCE-ID:" + second +
                         "\r\nORGANIZER:mailto:jane@acme.com\r\n"))});
  for (int week = 0; week < 4; ++week) {
    const auto o = f.get(f.occurrence(week));
    ASSERT_TRUE(o && o->meeting) << week;
    EXPECT_EQ(o->meeting->cancelled, week == 1) << week;
  }

  // Nothing stored for the UID: nothing to cancel, a failed row.
  f.deliver({imip("CANCEL", "c9@acme.com",
                  vevent("UID:unknown@acme.com\r\nSEQUENCE:1\r\n"
                         "ORGANIZER:mailto:jane@acme.com\r\n"))});
  const auto failed = f.get("imip:c9@acme.com#1");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, DecisionStatus::failed);
  EXPECT_FALSE(f.get("ical:unknown@acme.com"));
}
