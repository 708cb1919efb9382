// SPDX-License-Identifier: Apache-2.0
// End-to-end capture: a CRM directory imported from CSV, a Maildir++ tree of
// messages written by the test, ingested into a real SQLite store; then exact
// activities, links, skip reasons, and a second ingest that changes nothing.
#include "daemon/capture/capture.hpp"
#include "connectors/maildir/maildir.hpp"
#include "daemon/capture/directory_import.hpp"
#include "daemon/cli/ingest.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/support/failing_directory.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

using test::ics_time;
using test::message;
using test::read_file;
using test::TempDir;
using test::vcalendar;
using test::vevent;

std::string msg(const std::string& headers, const std::string& body = "Hello,\n\nSee below.\n") {
  return message(headers, body);
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<store::Store> st;
  fs::path maildir;
  int seq = 0;

  Fixture() {
    st = test::directory_store((dir.path() / "capture.db").string());
    maildir = dir.path() / "Mail";
    for (const char* f : {"", ".Sent", ".Trash"}) {
      for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(maildir / f / sub);
    }
  }

  void put(const std::string& folder, const std::string& raw) {
    const fs::path d = folder == "INBOX" ? maildir : maildir / ("." + folder);
    // Delivery times deliberately out of date order: ingest sorts by Date.
    ++seq;
    const std::string name =
        std::to_string(1800000000 - seq) + ".M" + std::to_string(seq) + "P1.test:2,S";
    std::ofstream(d / "cur" / name, std::ios::binary) << raw;
  }

  capture::Settings settings() const {
    capture::Settings s;
    s.owner_addresses = {"alice@example.com"};
    s.internal_domains = {"example.com"};
    s.block_domains = {"spammer.biz"};
    return s;
  }

  capture::FreeMailDomains free_mail() const {
    return capture::FreeMailDomains::from_text(
        read_file(fs::path(CRMCAP_SOURCE_DIR) / "data" / "free-mail-domains.txt"));
  }

  capture::Tally ingest() {
    capture::Pipeline p(*st, *st, settings(), free_mail());
    auto found = crmcap::maildir::find_messages({maildir.string()});
    EXPECT_TRUE(found) << found.error();
    auto r = cli::ingest(*found, p, *st, 3);  // small batches: threads span commits
    EXPECT_TRUE(r) << r.error().message;
    return *r;
  }

  std::map<std::string, store::Activity> by_mid() {
    std::map<std::string, store::Activity> out;
    for (auto& a : st->list({}).value()) out[a.message_id] = a;
    return out;
  }
};

void fill(Fixture& f) {
  f.put("INBOX", msg("From: Jane Doe <jane@acme.com>\nTo: alice@example.com\n"
                     "Subject: Renewal terms\nDate: Mon, 02 Nov 2026 09:00:00 +0100\n"
                     "Message-ID: <m1@acme.com>\n"));
  const std::string m2 =
      msg("From: Alice <alice@example.com>\nTo: \"Scorpio, Hank\" <hank@globex.com>\n"
          "Cc: alice@example.com\nSubject: Pilot plan\nDate: Tue, 03 Nov 2026 10:00:00 +0000\n"
          "Message-ID: <m2@example.com>\n",
          "Hank,\n\nAttached the plan.\n\nBest regards,\nAlice\n");
  f.put("Sent", m2);
  f.put("INBOX", m2);  // the Cc copy: the same message, one activity
  f.put("INBOX", msg("From: bob@sales.globex.com\nTo: alice@example.com\n"
                     "Subject: Pricing\nDate: Wed, 04 Nov 2026 08:00:00 +0000\n"
                     "Message-ID: <m3@globex.com>\n"));
  f.put("INBOX", msg("From: Peter Gibbons <peter@initech.com>\nTo: alice@example.com\n"
                     "Subject: Two projects\nDate: Thu, 05 Nov 2026 08:00:00 +0000\n"
                     "Message-ID: <m4@initech.com>\n"));
  // A thread: the root names O-1 through Jane's role; the reply from Umbrella
  // (no open opportunity) inherits it. The reply is written first on disk.
  f.put("INBOX", msg("From: dave@umbrella.com\nTo: alice@example.com\n"
                     "Subject: Re: Joint offer\nDate: Sat, 07 Nov 2026 08:00:00 +0000\n"
                     "Message-ID: <m5b@umbrella.com>\nIn-Reply-To: <m5a@acme.com>\n"
                     "References: <m5a@acme.com>\n",
                     "Fine by us.\n\nOn Fri, Jane wrote:\n> Shall we?\n"));
  f.put("INBOX", msg("From: jane+deals@acme.com\nTo: alice@example.com\nCc: dave@umbrella.com\n"
                     "Subject: Joint offer\nDate: Fri, 06 Nov 2026 08:00:00 +0000\n"
                     "Message-ID: <m5a@acme.com>\n"));
  f.put("INBOX", msg("From: news@acme.com\nTo: alice@example.com\nSubject: Newsletter\n"
                     "List-Id: Acme News <news.acme.com>\nDate: Sun, 08 Nov 2026 08:00:00 +0000\n"
                     "Message-ID: <m6@acme.com>\n"));
  f.put("INBOX", msg("From: jane@acme.com\nTo: alice@example.com\nSubject: Out of office\n"
                     "Auto-Submitted: auto-replied\nDate: Sun, 08 Nov 2026 09:00:00 +0000\n"
                     "Message-ID: <m7@acme.com>\n"));
  f.put("INBOX", msg("From: bob@example.com\nTo: alice@example.com\nSubject: Lunch\n"
                     "Date: Sun, 08 Nov 2026 10:00:00 +0000\nMessage-ID: <m8@example.com>\n"));
  f.put("INBOX", msg("From: stranger@gmail.com\nTo: alice@example.com\nSubject: Hi\n"
                     "Date: Sun, 08 Nov 2026 11:00:00 +0000\nMessage-ID: <m9@gmail.com>\n"));
  f.put("INBOX", msg("From: Bill <Bill.Lumbergh@GMAIL.com>\nTo: alice@example.com\n"
                     "Subject: TPS reports\nDate: Sun, 08 Nov 2026 12:00:00 +0000\n"
                     "Message-ID: <m10@gmail.com>\n"));
  f.put("INBOX", msg("From: jane@acme.com\nTo: alice@example.com\nSubject: Personal\n"
                     "Sensitivity: Private\nDate: Sun, 08 Nov 2026 13:00:00 +0000\n"
                     "Message-ID: <m11@acme.com>\n"));
  f.put("INBOX", msg("From: offers@spammer.biz\nTo: alice@example.com\nSubject: Deal\n"
                     "Date: Sun, 08 Nov 2026 14:00:00 +0000\nMessage-ID: <m12@spammer.biz>\n"));
  f.put("Trash", msg("From: jane@acme.com\nTo: alice@example.com\nSubject: Old\n"
                     "Date: Sun, 08 Nov 2026 15:00:00 +0000\nMessage-ID: <m13@acme.com>\n"));
  f.put("INBOX", "\x01\x02\x03 this is not a message\n\n");
}

}  // namespace

TEST(Capture, IngestGivesExactActivitiesLinksAndReasons) {
  Fixture f;
  fill(f);
  const auto sum = f.ingest();
  EXPECT_EQ(sum.seen, 16u);
  EXPECT_EQ(sum.failed, 1u);
  EXPECT_EQ(sum.line(),
            "seen 16, captured 8, skipped 7 (auto-reply 1, blocklist 1, bulk 1, folder 1, "
            "internal 1, private 1, unmatched 1), failed 1");

  auto a = f.by_mid();
  EXPECT_EQ(a.size(), 15u);  // m2 twice is one row; the failed one has no message id

  const auto& m1 = a.at("m1@acme.com");
  EXPECT_EQ(m1.status, store::DecisionStatus::captured);
  EXPECT_EQ(m1.direction, store::Direction::inbound);
  EXPECT_EQ(m1.occurred_at, "2026-11-02T08:00:00Z");
  EXPECT_EQ(m1.contact_ids, std::vector<std::string>{"C-1"});
  EXPECT_EQ(m1.company_ids, std::vector<std::string>{"CO-1"});
  EXPECT_EQ(m1.opportunity_id, "O-1");  // O-2 is won: never chosen
  EXPECT_EQ(m1.reason,
            "from: jane@acme.com = contact C-1; opportunity O-1: the one open opportunity on "
            "which a matched contact has a role");

  const auto& m2 = a.at("m2@example.com");
  EXPECT_EQ(m2.direction, store::Direction::outbound);
  EXPECT_EQ(m2.sources.size(), 2u);
  EXPECT_EQ(m2.opportunity_id, "O-5");
  EXPECT_EQ(m2.reason,
            "to: hank@globex.com = contact C-2; opportunity O-5: only open opportunity of Globex");
  ASSERT_EQ(m2.participants.size(), 2u);
  EXPECT_EQ(m2.participants[1].name, "Scorpio, Hank");
  EXPECT_EQ(m2.participants[1].role, "to");

  const auto& m3 = a.at("m3@globex.com");
  EXPECT_EQ(m3.company_ids, std::vector<std::string>{"CO-2"});
  EXPECT_TRUE(m3.contact_ids.empty());
  EXPECT_EQ(m3.reason,
            "from: bob@sales.globex.com = company CO-2 (domain globex.com); opportunity O-5: "
            "only open opportunity of Globex");

  const auto& m4 = a.at("m4@initech.com");
  EXPECT_EQ(m4.status, store::DecisionStatus::captured);
  EXPECT_EQ(m4.opportunity_id, "");
  EXPECT_EQ(m4.reason,
            "from: peter@initech.com = contact C-3; no opportunity: ambiguous, Initech has "
            "several open (O-3, O-4)");

  const auto& m5a = a.at("m5a@acme.com");
  EXPECT_EQ(m5a.opportunity_id, "O-1");
  EXPECT_EQ(m5a.participants[0].address, "jane@acme.com");  // +tag stripped
  const auto& m5b = a.at("m5b@umbrella.com");
  EXPECT_EQ(m5b.thread_key, "m5a@acme.com");
  EXPECT_EQ(m5b.opportunity_id, "O-1");
  EXPECT_EQ(m5b.reason,
            "from: dave@umbrella.com = company CO-4 (domain umbrella.com); opportunity O-1: "
            "from an earlier activity in the same thread");
  EXPECT_EQ(m5b.snippet, "Fine by us.");

  EXPECT_EQ(a.at("m6@acme.com").rule, "bulk");
  EXPECT_EQ(a.at("m6@acme.com").reason,
            "skipped (bulk): mailing list (List-Id: Acme News <news.acme.com>)");
  EXPECT_EQ(a.at("m7@acme.com").rule, "auto-reply");
  EXPECT_EQ(a.at("m8@example.com").reason, "skipped (internal): every participant is internal");
  EXPECT_EQ(a.at("m9@gmail.com").reason,
            "skipped (unmatched): no participant is a known contact or company "
            "(stranger@gmail.com)");
  const auto& m10 = a.at("m10@gmail.com");
  EXPECT_EQ(m10.status, store::DecisionStatus::captured);
  EXPECT_EQ(m10.contact_ids, std::vector<std::string>{"C-4"});
  EXPECT_TRUE(m10.company_ids.empty());
  EXPECT_EQ(m10.reason, "from: bill.lumbergh@gmail.com = contact C-4; no opportunity: none found");
  EXPECT_EQ(a.at("m11@acme.com").rule, "private");
  EXPECT_EQ(a.at("m12@spammer.biz").rule, "blocklist");
  EXPECT_EQ(a.at("m13@acme.com").reason, "skipped (folder): folder 'Trash' is excluded");

  const auto& failed = a.at("");
  EXPECT_EQ(failed.status, store::DecisionStatus::failed);
  EXPECT_EQ(failed.rule, "parse");
  EXPECT_EQ(failed.reason.rfind("failed: cannot parse the message: ", 0), 0u) << failed.reason;
  ASSERT_EQ(failed.sources.size(), 1u);
  EXPECT_NE(failed.sources[0].path.find("/Mail/cur/"), std::string::npos);

  // Lookups by contact, company and opportunity see the links.
  store::ActivityFilter by_opp;
  by_opp.opportunity_id = "O-1";
  EXPECT_EQ(f.st->list(by_opp).value().size(), 3u);
  store::ActivityFilter by_company;
  by_company.company_id = "CO-4";
  EXPECT_EQ(f.st->list(by_company).value().size(), 2u);  // m5a (Cc) and m5b
}

TEST(Capture, SecondIngestChangesNothing) {
  Fixture f;
  fill(f);
  f.ingest();
  auto before = f.st->list({}).value();
  const auto sum = f.ingest();
  EXPECT_EQ(sum.seen, 16u);
  auto after = f.st->list({}).value();
  ASSERT_EQ(before.size(), after.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].id, after[i].id);
    EXPECT_EQ(before[i].reason, after[i].reason);
    EXPECT_EQ(before[i].opportunity_id, after[i].opportunity_id);
    EXPECT_EQ(before[i].updated_at, after[i].updated_at) << before[i].message_id;
    EXPECT_EQ(before[i].sources.size(), after[i].sources.size());
  }
}

TEST(Capture, ActivityIdsAreStableAcrossStores) {
  Fixture f1, f2;
  fill(f1);
  fill(f2);
  f1.ingest();
  f2.ingest();
  auto a = f1.by_mid(), b = f2.by_mid();
  for (const auto& [mid, act] : a) EXPECT_EQ(act.id, b.at(mid).id) << mid;
  EXPECT_EQ(capture::activity_id_for("mid:x@y"), capture::activity_id_for("mid:x@y"));
  EXPECT_NE(capture::activity_id_for("mid:x@y"), capture::activity_id_for("mid:x@z"));
}

TEST(Capture, NormalizesAddresses) {
  EXPECT_EQ(capture::normalize_address(" Jane+CRM@Acme.COM ", true), "jane@acme.com");
  EXPECT_EQ(capture::normalize_address("jane+crm@acme.com", false), "jane+crm@acme.com");
  EXPECT_EQ(capture::normalize_address("+x@acme.com", true), "+x@acme.com");
}

TEST(Capture, CopyInAnExcludedFolderDoesNotUndoACapture) {
  Fixture f;
  const std::string m =
      msg("From: jane@acme.com\nTo: alice@example.com\nSubject: Moved\n"
          "Date: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <mv@acme.com>\n");
  f.put("INBOX", m);
  f.ingest();
  f.put("Trash", m);
  f.ingest();
  const auto a = f.by_mid().at("mv@acme.com");
  EXPECT_EQ(a.status, store::DecisionStatus::captured);
  EXPECT_EQ(a.sources.size(), 2u);
}

TEST(Capture, AMessageThatCannotBeParsedIsAFailedRow) {
  Fixture f;
  capture::Pipeline p(*f.st, *f.st, f.settings(), f.free_mail());
  capture::MessageSource src{{"local", "INBOX", 0, 0, "/x"}, 1700000000};
  auto o = p.process("", src);
  EXPECT_EQ(o.activity.status, store::DecisionStatus::failed);
  EXPECT_EQ(o.activity.rule, "parse");
  EXPECT_EQ(o.activity.occurred_at, "2023-11-14T22:13:20Z");
}

// A directory read that fails gives a failed row (rule "store") that names
// the error; never a skip ("unmatched") or a match without the company's
// opportunity. Each read the matcher makes for this message fails in turn.
TEST(Capture, FailedDirectoryIsNeverSilent) {
  Fixture f;
  const std::string raw =
      msg("From: bob@sales.globex.com\nTo: alice@example.com\nSubject: Pricing\n"
          "Date: Wed, 04 Nov 2026 08:00:00 +0000\nMessage-ID: <d1@globex.com>\n");
  capture::MessageSource src{{"local", "INBOX", 0, 0, "/x"}, 1700000000};
  using Read = test::FailingDirectory::Read;
  for (const Read failing : {Read::contact, Read::domain, Read::company_opportunities}) {
    test::FailingDirectory dir(*f.st, failing);
    capture::Pipeline p(dir, *f.st, f.settings(), f.free_mail());
    const auto o = p.process(raw, src);
    EXPECT_EQ(o.activity.status, store::DecisionStatus::failed) << static_cast<int>(failing);
    EXPECT_EQ(o.activity.rule, "store");
    EXPECT_EQ(o.activity.reason, "failed: reading the store: disk I/O error");
    EXPECT_EQ(o.activity.message_id, "d1@globex.com");
    EXPECT_EQ(o.activity.subject, "Pricing");
  }
  // A contact's roles.
  test::FailingDirectory dir(*f.st, Read::contact_opportunities);
  capture::Pipeline p(dir, *f.st, f.settings(), f.free_mail());
  const auto o = p.process(msg("From: jane@acme.com\nTo: alice@example.com\nSubject: x\n"
                               "Message-ID: <d2@acme.com>\n"),
                           src);
  EXPECT_EQ(o.activity.rule, "store");
  // With the directory readable, the same message is captured.
  capture::Pipeline ok(*f.st, *f.st, f.settings(), f.free_mail());
  EXPECT_EQ(ok.process(raw, src).activity.status, store::DecisionStatus::captured);
}

namespace {

// A meeting invitation, reply or cancellation for UID `uid`, sent as iMIP.
std::string imip(const std::string& method, const std::string& mid, const std::string& from,
                 const std::string& to, const std::string& date, int sequence) {
  return "From: " + from + "\nTo: " + to + "\nSubject: Renewal review\nDate: " + date +
         "\nMessage-ID: <" + mid +
         ">\nMIME-Version: 1.0\nContent-Type: text/calendar; charset=utf-8; method=" + method +
         "\n\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:" + method +
         "\r\nBEGIN:VEVENT\r\nUID:review-1@acme.com\r\nSEQUENCE:" + std::to_string(sequence) +
         "\r\nDTSTAMP:20261102T090000Z\r\nDTSTART:20261201T140000Z\r\nDTEND:20261201T150000Z\r\n"
         "SUMMARY:Renewal review\r\nORGANIZER:mailto:jane@acme.com\r\n"
         "ATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
}

}  // namespace

// DESIGN.md rule 6: invitation, update and cancellation mail about one
// meeting is one meeting activity (keyed by its UID), not one per mail; each
// mail is listed with what it did (tests/daemon/imip_test.cpp has the rest).
TEST(Capture, IMipMailUpdatesOneMeetingActivity) {
  Fixture f;
  f.put("INBOX", imip("REQUEST", "i1@acme.com", "jane@acme.com", "alice@example.com",
                      "Mon, 02 Nov 2026 09:00:00 +0000", 0));
  f.put("INBOX", imip("REQUEST", "i2@acme.com", "jane@acme.com", "alice@example.com",
                      "Tue, 03 Nov 2026 09:00:00 +0000", 1));
  f.put("INBOX", imip("CANCEL", "i3@acme.com", "jane@acme.com", "alice@example.com",
                      "Wed, 04 Nov 2026 09:00:00 +0000", 2));
  const auto sum = f.ingest();
  EXPECT_EQ(sum.line(), "seen 6, captured 3, skipped 3 (imip 3), failed 0");
  const auto meetings = f.st->list(test::of_kind(store::ActivityKind::meeting)).value();
  ASSERT_EQ(meetings.size(), 1u);
  const auto& m = meetings[0];
  EXPECT_EQ(m.source_key, "ical:review-1@acme.com");
  EXPECT_EQ(m.sources.size(), 3u);  // a place in each mail
  EXPECT_EQ(m.status, store::DecisionStatus::captured);
  EXPECT_EQ(m.opportunity_id, "O-1");
  ASSERT_TRUE(m.meeting);
  EXPECT_TRUE(m.meeting->cancelled);
  EXPECT_EQ(m.meeting->sequence, 2);
  EXPECT_EQ(m.reason.rfind("iMIP CANCEL, SEQUENCE 2, in mail <i3@acme.com>; cancelled; ", 0), 0u)
      << m.reason;
  const auto mails = f.st->list(test::of_kind(store::ActivityKind::email)).value();
  ASSERT_EQ(mails.size(), 3u);
  for (const auto& a : mails) {
    EXPECT_EQ(a.status, store::DecisionStatus::skipped) << a.message_id;
    EXPECT_EQ(a.rule, "imip") << a.message_id;
  }
  EXPECT_EQ(mails[2].reason,
            "skipped (imip): iMIP CANCEL for meeting review-1@acme.com, SEQUENCE 2: cancelled "
            "ical:review-1@acme.com");

  // A second ingest changes nothing: each mail was applied once, and an
  // older one is not applied again to what came after it.
  std::map<std::string, store::Activity> first;
  for (auto& a : f.st->list({}).value()) first[a.source_key] = a;
  f.ingest();
  for (const auto& a : f.st->list({}).value()) {
    const auto& was = first.at(a.source_key);
    EXPECT_EQ(a.reason, was.reason) << a.source_key;
    EXPECT_EQ(a.meeting, was.meeting) << a.source_key;
    EXPECT_EQ(a.updated_at, was.updated_at) << a.source_key;
  }
}

// DESIGN.md rule 7: the same message in two folders, or ingested from two
// copies, is one activity with both places.
TEST(Capture, OneActivityPerMessageIdAcrossFoldersAndRuns) {
  Fixture f;
  const std::string raw =
      msg("From: alice@example.com\nTo: hank@globex.com\nSubject: Plan\n"
          "Date: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <same@example.com>\n");
  f.put("INBOX", raw);
  f.ingest();
  f.put("Sent", raw);
  const auto sum = f.ingest();
  const auto all = f.st->list({}).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].sources.size(), 2u);
  EXPECT_EQ(all[0].direction, store::Direction::outbound);
  EXPECT_EQ(sum.seen, 2u);
}

// A domain two companies list matches neither: the mail is skipped as
// unmatched, and `explain` says which companies share the domain.
TEST(Capture, ADomainOfSeveralCompaniesChoosesNone) {
  Fixture f;
  store::Company a{"CO-7", "Hooli", {"hooli.example"}}, b{"CO-8", "Hooli EU", {"hooli.example"}};
  ASSERT_TRUE(f.st->upsert_companies({a, b}, false));
  capture::Pipeline p(*f.st, *f.st, f.settings(), f.free_mail());
  capture::MessageSource src{{"local", "INBOX", 0, 0, "/x"}, 1700000000};
  const auto o = p.process(msg("From: gavin@hooli.example\nTo: alice@example.com\nSubject: x\n"
                               "Message-ID: <h1@hooli.example>\n"),
                           src);
  EXPECT_EQ(o.activity.rule, "unmatched");
  EXPECT_NE(std::find(o.steps.begin(), o.steps.end(),
                      "from: gavin@hooli.example: domain hooli.example belongs to several "
                      "companies (CO-7, CO-8), none chosen"),
            o.steps.end());
}

// Issue 17's world: a CRM whose contacts.csv lists a quarter of its addresses
// with +tags and in mixed case, and mail that writes every address in another
// case and with another tag or none. Imported from CSV and ingested as a user
// would: every message is captured and linked to its contact.
TEST(Capture, AGeneratedWorldOfTaggedMixedCaseAddressesMatchesEveryOne) {
  Fixture f;
  std::mt19937 rng(4711);
  auto mixed_case = [&](std::string s) {
    for (auto& ch : s) {
      if (rng() % 2) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    return s;
  };
  std::string companies = "id,name,domains\n", contacts = "id,name,emails,company_id\n";
  for (int c = 0; c < 10; ++c) {
    companies += "W-" + std::to_string(c) + ",Firm " + std::to_string(c) + ",firm" +
                 std::to_string(c) + ".example\n";
  }
  constexpr int k_contacts = 120;
  std::vector<std::string> written;
  for (int i = 0; i < k_contacts; ++i) {
    const std::string local = "person" + std::to_string(i);
    const std::string domain = "firm" + std::to_string(i % 10) + ".example";
    const std::string tag = i % 4 == 0 ? "+CRM" + std::to_string(i) : "";
    contacts += "P-" + std::to_string(i) + ",Person " + std::to_string(i) + "," +
                mixed_case(local + tag + "@" + domain) + ",W-" + std::to_string(i % 10) + "\n";
    const std::string other = rng() % 3 == 0 ? "" : "+Mail" + std::to_string(rng() % 100);
    written.push_back(mixed_case(local + other + "@" + domain));
  }
  ASSERT_TRUE(capture::import_directory_csv_text(*f.st, capture::ImportKind::companies, companies,
                                                 "companies.csv", false));
  ASSERT_TRUE(capture::import_directory_csv_text(*f.st, capture::ImportKind::contacts, contacts,
                                                 "contacts.csv", false));
  for (int i = 0; i < k_contacts; ++i) {
    f.put("INBOX", msg("From: " + written[static_cast<std::size_t>(i)] +
                       "\nTo: alice@example.com\nSubject: Hello " + std::to_string(i) +
                       "\nDate: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <w" +
                       std::to_string(i) + "@world.example>\n"));
  }
  const auto sum = f.ingest();
  EXPECT_EQ(sum.seen, static_cast<std::size_t>(k_contacts));
  EXPECT_EQ(sum.captured, static_cast<std::size_t>(k_contacts)) << sum.line();
  const auto a = f.by_mid();
  for (int i = 0; i < k_contacts; ++i) {
    const auto& act = a.at("w" + std::to_string(i) + "@world.example");
    EXPECT_EQ(act.contact_ids, std::vector<std::string>{"P-" + std::to_string(i)})
        << written[static_cast<std::size_t>(i)] << ": " << act.reason;
  }
}

// A calendar export captured offline: each occurrence in the window is one
// meeting activity keyed by UID and original start, matched like mail through
// organizer and attendees; private, declined and internal meetings are
// skipped with their rule, an unreadable event is a failed row, and a second
// ingest after a change updates in place.
TEST(Capture, IngestOfACalendarFileGivesOneActivityPerOccurrence) {
  Fixture f;
  const std::int64_t day = 86400;
  // Midnight UTC three weeks ago: the four weekly occurrences below are all
  // inside the window (90 days back, 30 ahead).
  const std::int64_t base = (static_cast<std::int64_t>(std::time(nullptr)) / day - 21) * day;
  const std::string t0 = ics_time(base + 14 * 3600), t0e = ics_time(base + 15 * 3600);
  const std::string series =
      vevent("UID:weekly@example.com\r\nSUMMARY:Pilot sync\r\nDTSTART:" + t0 + "\r\nDTEND:" + t0e +
             "\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nORGANIZER:mailto:alice@example.com\r\n"
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.com\r\n"
             "ATTENDEE;CUTYPE=ROOM:mailto:room-4@example.com\r\n") +
      // The second occurrence moved by an hour, the third cancelled.
      vevent("UID:weekly@example.com\r\nSUMMARY:Pilot sync (moved)\r\nRECURRENCE-ID:" +
             ics_time(base + 7 * day + 14 * 3600) +
             "\r\nDTSTART:" + ics_time(base + 7 * day + 15 * 3600) +
             "\r\nDTEND:" + ics_time(base + 7 * day + 16 * 3600) +
             "\r\nORGANIZER:mailto:alice@example.com\r\nATTENDEE:mailto:hank@globex.com\r\n") +
      vevent("UID:weekly@example.com\r\nSUMMARY:Pilot sync\r\nSTATUS:CANCELLED\r\nRECURRENCE-ID:" +
             ics_time(base + 14 * day + 14 * 3600) +
             "\r\nDTSTART:" + ics_time(base + 14 * day + 14 * 3600) +
             "\r\nDTEND:" + ics_time(base + 14 * day + 15 * 3600) +
             "\r\nORGANIZER:mailto:alice@example.com\r\nATTENDEE:mailto:hank@globex.com\r\n");
  const std::string others =
      vevent("UID:review@acme.com\r\nSUMMARY:Renewal review\r\nLOCATION:Teams\r\nDTSTART:" + t0 +
             "\r\nDTEND:" + t0e +
             "\r\nORGANIZER;CN=Jane:mailto:Jane@Acme.com\r\n"
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\n") +
      vevent("UID:doctor@example.com\r\nSUMMARY:Doctor\r\nCLASS:PRIVATE\r\nDTSTART:" + t0 +
             "\r\nORGANIZER:mailto:hank@globex.com\r\nATTENDEE:mailto:alice@example.com\r\n") +
      vevent("UID:declined@globex.com\r\nSUMMARY:Pitch\r\nDTSTART:" + t0 +
             "\r\nORGANIZER:mailto:hank@globex.com\r\n"
             "ATTENDEE;PARTSTAT=DECLINED:mailto:alice@example.com\r\n") +
      vevent("UID:standup@example.com\r\nSUMMARY:Standup\r\nDTSTART:" + t0 +
             "\r\nORGANIZER:mailto:alice@example.com\r\nATTENDEE:mailto:bob@example.com\r\n") +
      vevent("UID:broken@example.com\r\nSUMMARY:No start\r\n");
  const fs::path ics = f.dir.path() / "export.ics";
  std::ofstream(ics, std::ios::binary) << vcalendar(series + others);

  capture::Pipeline p(*f.st, *f.st, f.settings(), f.free_mail());
  auto found = maildir::find_messages({ics.string()});
  ASSERT_TRUE(found) << found.error();
  auto sum = cli::ingest(*found, p, *f.st);
  ASSERT_TRUE(sum) << sum.error().message;
  EXPECT_EQ(sum->line(),
            "seen 9, captured 5, skipped 3 (declined 1, internal 1, private 1), failed 1");

  std::map<std::string, store::Activity> by_key;
  for (auto& a : f.st->list({}).value()) by_key[a.source_key] = a;
  ASSERT_EQ(by_key.size(), 9u);
  const auto occurrence = [&](std::int64_t week) {
    return "ical:weekly@example.com/" + capture::iso_utc(base + week * 7 * day + 14 * 3600);
  };
  const auto& first = by_key.at(occurrence(0));
  EXPECT_EQ(first.kind, store::ActivityKind::meeting);
  EXPECT_EQ(first.status, store::DecisionStatus::captured);
  EXPECT_EQ(first.direction, store::Direction::outbound);
  EXPECT_EQ(first.contact_ids, std::vector<std::string>{"C-2"});
  EXPECT_EQ(first.opportunity_id, "O-5");
  ASSERT_EQ(first.participants.size(), 2u);  // the room is no participant
  EXPECT_EQ(first.participants[0].role, "organizer");
  ASSERT_TRUE(first.meeting);
  EXPECT_EQ(first.meeting->event_uid, "weekly@example.com");
  EXPECT_EQ(first.meeting->starts_at, capture::iso_utc(base + 14 * 3600));
  EXPECT_EQ(first.meeting->ends_at, capture::iso_utc(base + 15 * 3600));
  EXPECT_EQ(capture::meeting_status(*first.meeting, base + 16 * 3600), "held");
  EXPECT_EQ(capture::meeting_status(*first.meeting, base), "scheduled");
  // The moved occurrence keeps the key of its original start.
  const auto& moved = by_key.at(occurrence(1));
  EXPECT_EQ(moved.subject, "Pilot sync (moved)");
  EXPECT_EQ(moved.meeting->starts_at, capture::iso_utc(base + 7 * day + 15 * 3600));
  const auto& cancelled = by_key.at(occurrence(2));
  EXPECT_TRUE(cancelled.meeting->cancelled);
  EXPECT_EQ(capture::meeting_status(*cancelled.meeting, base), "cancelled");
  EXPECT_EQ(cancelled.reason.rfind("cancelled; ", 0), 0u) << cancelled.reason;
  EXPECT_TRUE(by_key.contains(occurrence(3)));

  const auto& review = by_key.at("ical:review@acme.com");
  EXPECT_EQ(review.direction, store::Direction::inbound);
  EXPECT_EQ(review.opportunity_id, "O-1");
  EXPECT_EQ(review.meeting->location, "Teams");
  EXPECT_EQ(review.reason,
            "organizer: jane@acme.com = contact C-1; opportunity O-1: the one open opportunity "
            "on which a matched contact has a role");
  const auto& private_one = by_key.at("ical:doctor@example.com");
  EXPECT_EQ(private_one.reason, "skipped (private): marked private (CLASS: PRIVATE)");
  EXPECT_EQ(private_one.subject, "");
  EXPECT_EQ(by_key.at("ical:declined@globex.com").reason,
            "skipped (declined): declined by alice@example.com");
  EXPECT_EQ(by_key.at("ical:standup@example.com").rule, "internal");
  const auto& broken = by_key.at("ical:broken@example.com");
  EXPECT_EQ(broken.status, store::DecisionStatus::failed);
  EXPECT_EQ(broken.rule, "parse");

  // The moved occurrence moves again, and the review gets an attendee: a
  // second ingest updates both in place, duplicating nothing.
  std::string changed = vcalendar(series + others);
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = changed.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    changed.replace(at, from.size(), to);
  };
  replace("DTSTART:" + ics_time(base + 7 * day + 15 * 3600),
          "DTSTART:" + ics_time(base + 7 * day + 17 * 3600));
  replace("ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\n",
          "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\n"
          "ATTENDEE:mailto:joe@initech.com\r\n");
  std::ofstream(ics, std::ios::binary | std::ios::trunc) << changed;
  ASSERT_TRUE(cli::ingest(*found, p, *f.st));
  std::map<std::string, store::Activity> again;
  for (auto& a : f.st->list({}).value()) again[a.source_key] = a;
  EXPECT_EQ(again.size(), 9u);
  EXPECT_EQ(again.at(occurrence(1)).meeting->starts_at,
            capture::iso_utc(base + 7 * day + 17 * 3600));
  EXPECT_EQ(again.at("ical:review@acme.com").participants.size(), 3u);
  EXPECT_EQ(again.at("ical:review@acme.com").company_ids,
            (std::vector<std::string>{"CO-1", "CO-3"}));
  EXPECT_EQ(again.at(occurrence(3)).updated_at, by_key.at(occurrence(3)).updated_at);
}
