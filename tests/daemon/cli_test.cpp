// SPDX-License-Identifier: Apache-2.0
// The crm-capture command as a user runs it: exit codes, messages, outputs.
#include "tests/daemon/test_support.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

using test::Run;
using test::run;

Run crm_capture(const std::string& args) { return run("crm-capture", args); }

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Writes n .eml files, dir/m1.eml ... dir/mN.eml, from jane@acme.com to
// alice@example.com (each its own Message-ID), and returns their paths joined by
// spaces, as a command line would give them.
std::string write_emls(const fs::path& dir, int n) {
  std::string args;
  for (int i = 1; i <= n; ++i) {
    const fs::path p = dir / ("m" + std::to_string(i) + ".eml");
    write(p, test::message("From: jane@acme.com\nTo: alice@example.com\nSubject: Hi " +
                           std::to_string(i) +
                           "\nDate: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <" +
                           std::to_string(i) + "@acme.com>\n"));
    args += (i > 1 ? " " : "") + p.string();
  }
  return args;
}

// A configuration with one IMAP mailbox whose password is dir/alice.pass, its
// store and socket inside dir; `extra` is appended to [capture].
std::string check_config(const fs::path& dir, const std::string& extra = "") {
  return "[store]\npath = \"" + (dir / "capture.db").string() + "\"\n[api]\nsocket = \"" +
         (dir / "api.sock").string() + "\"\n[capture]\nbackfill_days = 30\n" + extra +
         "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
         "[mailbox.imap]\nurl = \"imaps://imap.example.com\"\n"
         "username = \"alice@example.com\"\npassword_file = \"alice.pass\"\n";
}

}  // namespace

// --check reads the file and the secrets, and touches nothing else: the
// store is not created, and no server is contacted (imap.example.com is not
// reachable from a test).
TEST(Cli, CheckAcceptsAGoodConfigurationInOneLine) {
  test::TempDir dir;
  const fs::path toml = dir.path() / "alice.toml";
  write(toml, check_config(dir.path()));
  write(dir.path() / "alice.pass", "secret\n");
  fs::permissions(dir.path() / "alice.pass", fs::perms::owner_read | fs::perms::owner_write);
  auto r = run("crm-captured", "--check --config " + toml.string());
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "crm-captured: " + toml.string() +
                       ": OK: 1 mailbox (1 IMAP, 0 CalDAV), 1 secret readable, store " +
                       (dir.path() / "capture.db").string() + "\n");
  EXPECT_FALSE(fs::exists(dir.path() / "capture.db"));
}

TEST(Cli, CheckRefusesAnUnknownKeyWithFileAndLine) {
  test::TempDir dir;
  const fs::path toml = dir.path() / "alice.toml";
  write(toml, check_config(dir.path(), "backfil_days = 3\n"));
  write(dir.path() / "alice.pass", "secret\n");
  auto r = run("crm-captured", "--check --config " + toml.string());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out,
            "crm-captured: " + toml.string() + ":7:1: unknown key \"backfil_days\" in [capture]\n");
  EXPECT_FALSE(fs::exists(dir.path() / "capture.db"));
}

// A secret the daemon's user cannot read fails the check. Root reads any
// file, so as root the daemon runs as nobody (as the service's own user
// would), the secret still root's and mode 0600.
TEST(Cli, CheckRefusesAnUnreadableSecretAndNamesIt) {
  test::TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const fs::path toml = dir.path() / "alice.toml";
  const fs::path pass = dir.path() / "alice.pass";
  write(toml, check_config(dir.path()));
  write(pass, "secret\n");
  fs::permissions(toml, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  fs::permissions(
      pass, ::geteuid() == 0 ? fs::perms::owner_read | fs::perms::owner_write : fs::perms::none);
  const std::string as_user = ::geteuid() == 0 ? "--reuid=65534 --regid=65534 --clear-groups "
                                               : "--reuid=" + std::to_string(::geteuid()) + " ";
  const std::string cmd = "setpriv " + as_user + std::string(CRMCAP_BINARY_DIR) +
                          "/daemon/crm-captured --check --config " + toml.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2) << out;
  EXPECT_EQ(out, "crm-captured: " + toml.string() +
                     ": mailbox alice: imap: cannot read password file " + pass.string() +
                     ": Permission denied\n");
}

TEST(Cli, ImportIngestAndListAsAUserWould) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  write(dir.path() / "companies.csv", test::k_companies);
  write(dir.path() / "contacts.csv", test::k_contacts);
  write(dir.path() / "opps.csv", test::k_opportunities);
  EXPECT_EQ(
      crm_capture("--store " + db + " import companies " + (dir.path() / "companies.csv").string())
          .status,
      0);
  EXPECT_EQ(
      crm_capture("--store " + db + " import contacts " + (dir.path() / "contacts.csv").string())
          .status,
      0);
  auto r =
      crm_capture("--store " + db + " import opportunities " + (dir.path() / "opps.csv").string());
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "imported 5 opportunities from " + (dir.path() / "opps.csv").string() + "\n");

  auto stats = crm_capture("--store " + db + " directory stats");
  EXPECT_EQ(stats.out,
            "companies 4 (domains 4)\ncontacts 4 (addresses 4)\nopportunities 5 (open 4, contact "
            "roles 2)\n");

  const fs::path md = dir.path() / "Maildir";
  for (const char* s : {"cur", "new", "tmp"}) fs::create_directories(md / s);
  write(md / "cur" / "1.M1.x:2,S",
        test::message("From: jane@acme.com\nTo: alice@example.com\nSubject: Hi\n"
                      "Date: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <a@acme.com>\n"));
  write(md / "cur" / "2.M2.x:2,S",
        test::message(
            "From: list@acme.com\nTo: alice@example.com\nSubject: News\nList-Id: <l.acme.com>\n"
            "Date: Mon, 02 Nov 2026 10:00:00 +0000\nMessage-ID: <b@acme.com>\n"));
  auto ing = crm_capture("--store " + db + " ingest --owner alice@example.com " + md.string());
  EXPECT_EQ(ing.status, 0) << ing.out;
  EXPECT_EQ(ing.out, "seen 2, captured 1, skipped 1 (bulk 1), failed 0\n");

  auto act = crm_capture("--store " + db + " activities --json");
  ASSERT_EQ(act.status, 0);
  auto v = boost::json::parse(act.out.substr(0, act.out.find('\n'))).as_object();
  for (const char* k :
       {"id", "kind", "direction", "occurred_at", "subject", "snippet", "message_id", "thread_key",
        "participants", "contact_ids", "company_ids", "opportunity_id", "reason"}) {
    EXPECT_TRUE(v.contains(k)) << k;
  }
  EXPECT_EQ(v["opportunity_id"].as_string(), "O-1");
  EXPECT_EQ(v["occurred_at"].as_string(), "2026-11-02T09:00:00Z");
  EXPECT_EQ(v["participants"].as_array().at(0).as_object().at("contact_id").as_string(), "C-1");

  auto dec = crm_capture("--store " + db + " decisions --json");
  EXPECT_NE(dec.out.find("\"decision\":\"skipped\""), std::string::npos) << dec.out;
  EXPECT_NE(dec.out.find("\"folder\":\"INBOX\""), std::string::npos) << dec.out;

  auto ex = crm_capture("--store " + db + " explain --owner alice@example.com " +
                        (md / "cur" / "1.M1.x:2,S").string());
  EXPECT_EQ(ex.status, 0);
  EXPECT_NE(ex.out.find("Result: captured"), std::string::npos) << ex.out;
}

TEST(Cli, ABadCsvIsRefusedWithFileAndLineAndExitStatus) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  const std::string csv = (dir.path() / "bad.csv").string();
  write(csv, "id,name,domains\nCO-1,Acme,acme.com\nCO-2,\"Glob,globex.com\n");
  auto r = crm_capture("--store " + db + " import companies " + csv);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "crm-capture: " + csv + ":3: unterminated quoted field\n");
  auto stats = crm_capture("--store " + db + " directory stats");
  EXPECT_EQ(stats.out.rfind("companies 0 ", 0), 0u) << stats.out;
}

TEST(Cli, IngestOfAMissingPathSaysWhich) {
  test::TempDir dir;
  auto r = crm_capture("--store " + (dir.path() / "c.db").string() +
                       " ingest --owner a@b.c /nonexistent/mail");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "crm-capture: /nonexistent/mail: no such file or directory\n");
}

// A repeatable option takes one value per use: the words after it are paths,
// however many and wherever the options stand.
TEST(Cli, IngestCountsEveryPathGivenAfterRepeatableOptions) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  const std::string files = write_emls(dir.path(), 3);
  auto r = crm_capture("--store " + db +
                       " ingest --owner alice@example.com --internal-domain x.com " + files);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "seen 3, captured 0, skipped 3 (unmatched 3), failed 0\n");
  auto dec = crm_capture("--store " + db + " decisions --json");
  for (int i = 1; i <= 3; ++i) {
    const std::string path = (dir.path() / ("m" + std::to_string(i) + ".eml")).string();
    EXPECT_NE(dec.out.find("\"path\":\"" + path + "\""), std::string::npos) << path << dec.out;
  }
}

TEST(Cli, IngestOfFiftyFilesGivenAsFiftyArgumentsSeesFifty) {
  test::TempDir dir;
  auto r = crm_capture("--store " + (dir.path() / "c.db").string() +
                       " ingest --owner alice@example.com --internal-domain x.com " +
                       write_emls(dir.path(), 50));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "seen 50, captured 0, skipped 50 (unmatched 50), failed 0\n");
}

TEST(Cli, IngestTakesPathsBetweenOptions) {
  test::TempDir dir;
  write_emls(dir.path(), 4);
  const auto m = [&](int i) { return (dir.path() / ("m" + std::to_string(i) + ".eml")).string(); };
  auto r = crm_capture("--store " + (dir.path() / "c.db").string() + " ingest " + m(1) +
                       " --owner alice@example.com " + m(2) + " --internal-domain x.com " + m(3) +
                       " " + m(4));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "seen 4, captured 0, skipped 4 (unmatched 4), failed 0\n");
}

TEST(Cli, IngestCountsEveryRepeatedOwner) {
  test::TempDir dir;
  // Both addresses are the owner's, so every message is internal: with only
  // one of them owner, the messages would be "unmatched".
  auto r = crm_capture("--store " + (dir.path() / "c.db").string() +
                       " ingest --owner jane@acme.com --owner alice@example.com " +
                       write_emls(dir.path(), 2));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "seen 2, captured 0, skipped 2 (internal 2), failed 0\n");
}

TEST(Cli, IngestOfAMissingPathAmongOthersSaysWhich) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  write_emls(dir.path(), 2);
  const std::string missing = (dir.path() / "missing.eml").string();
  auto r = crm_capture(
      "--store " + db + " ingest --owner alice@example.com --internal-domain x.com " +
      (dir.path() / "m1.eml").string() + " " + missing + " " + (dir.path() / "m2.eml").string());
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out, "crm-capture: " + missing + ": no such file or directory\n");
  EXPECT_FALSE(fs::exists(db)) << "nothing is captured when a path is wrong";

  // Neither a file nor a folder: refused too, by name.
  auto dev = crm_capture("--store " + db + " ingest --owner alice@example.com --internal-domain " +
                         "x.com /dev/null " + (dir.path() / "m1.eml").string());
  EXPECT_NE(dev.status, 0);
  EXPECT_EQ(dev.out.rfind("crm-capture: /dev/null: ", 0), 0u) << dev.out;
}

TEST(Cli, ExplainTakesOneFileAndEveryRepeatedOwner) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  write_emls(dir.path(), 2);
  const std::string m1 = (dir.path() / "m1.eml").string();
  const std::string m2 = (dir.path() / "m2.eml").string();
  auto r =
      crm_capture("--store " + db + " explain --owner jane@acme.com --owner alice@example.com " +
                  m1 + " --folder Sent");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Result: skipped (internal)"), std::string::npos) << r.out;

  // A second file is refused, never read as an owner's address.
  auto two = crm_capture("--store " + db + " explain --owner alice@example.com " + m1 + " " + m2);
  EXPECT_NE(two.status, 0);
  EXPECT_NE(two.out.find(m2), std::string::npos) << two.out;
  EXPECT_EQ(two.out.find("Result:"), std::string::npos) << two.out;
}

TEST(Cli, ImportRefusesAnExtraPositional) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  const std::string csv = (dir.path() / "companies.csv").string();
  const std::string extra = (dir.path() / "contacts.csv").string();
  write(csv, test::k_companies);
  write(extra, test::k_contacts);
  auto r = crm_capture("--store " + db + " import companies " + csv + " --replace " + extra);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find(extra), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(db)) << "nothing is imported";
}

TEST(Cli, BothExecutablesPrintTheProjectVersion) {
  auto c = crm_capture("--version");
  EXPECT_EQ(c.status, 0);
  EXPECT_EQ(c.out, "crm-capture " CRMCAP_VERSION "\n");
  auto d = run("crm-captured", "--version");
  EXPECT_EQ(d.status, 0);
  EXPECT_EQ(d.out, "crm-captured " CRMCAP_VERSION "\n");
}

// A calendar export, as a user would capture and inspect it: `ingest` takes
// the .ics file, `activities --json` shows each meeting with its times, and
// `explain` shows each occurrence's decision without writing.
TEST(Cli, IngestAndExplainACalendarFile) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  write(dir.path() / "companies.csv", test::k_companies);
  write(dir.path() / "contacts.csv", test::k_contacts);
  ASSERT_EQ(
      crm_capture("--store " + db + " import companies " + (dir.path() / "companies.csv").string())
          .status,
      0);
  ASSERT_EQ(
      crm_capture("--store " + db + " import contacts " + (dir.path() / "contacts.csv").string())
          .status,
      0);
  // An all-day workshop (a single event is captured whatever its date).
  const fs::path ics = dir.path() / "export.ics";
  write(ics,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:workshop-1\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Workshop\r\n"
        "DTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261205\r\n"
        "ORGANIZER:mailto:jane@acme.com\r\nATTENDEE:mailto:alice@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n");
  auto in = crm_capture("--store " + db + " ingest --owner alice@example.com " + ics.string());
  EXPECT_EQ(in.status, 0) << in.out;
  EXPECT_NE(in.out.find("seen 1, captured 1"), std::string::npos) << in.out;
  auto list = crm_capture("--store " + db + " activities --json");
  EXPECT_NE(list.out.find(R"("kind":"meeting")"), std::string::npos) << list.out;
  EXPECT_NE(
      list.out.find(
          R"("event_uid":"workshop-1","starts_at":"2026-12-03","ends_at":"2026-12-05","all_day":true)"),
      std::string::npos)
      << list.out;
  auto decisions = crm_capture("--store " + db + " decisions --json");
  EXPECT_NE(decisions.out.find(R"("event_uid":"workshop-1")"), std::string::npos) << decisions.out;

  auto ex = crm_capture("--store " + db + " explain --owner alice@example.com " + ics.string());
  EXPECT_EQ(ex.status, 0) << ex.out;
  EXPECT_NE(ex.out.find("Meeting ical:workshop-1"), std::string::npos) << ex.out;
  EXPECT_NE(ex.out.find("Result: captured"), std::string::npos) << ex.out;
  EXPECT_NE(ex.out.find("organizer: jane@acme.com = contact C-1"), std::string::npos) << ex.out;
}

// Rule 6 as a user meets it: a calendar export, then the invitation mail of
// the same meeting moved, then the first invitation arriving late, each
// ingested on its own. One activity with the newest time; every mail listed
// in `decisions` with what it did. Then the golden corpus's Google REPLY and
// CANCEL, whose meetings nothing stored yet: each recorded from its event.
TEST(Cli, InvitationMailUpdatesTheCalendarsMeetingBySequence) {
  test::TempDir dir;
  const std::string db = (dir.path() / "c.db").string();
  write(dir.path() / "companies.csv", test::k_companies);
  write(dir.path() / "contacts.csv", test::k_contacts);
  write(dir.path() / "opps.csv", test::k_opportunities);
  for (const char* kind : {"companies", "contacts", "opportunities"}) {
    const std::string file = std::string(kind) == "opportunities" ? "opps" : kind;
    ASSERT_EQ(crm_capture("--store " + db + " import " + kind + " " +
                          (dir.path() / (file + ".csv")).string())
                  .status,
              0);
  }
  const auto event = [](int sequence, const std::string& start, const std::string& summary) {
    return "BEGIN:VEVENT\r\nUID:review-1@acme.com\r\nDTSTAMP:20261101T000000Z\r\nSEQUENCE:" +
           std::to_string(sequence) + "\r\nSUMMARY:" + summary + "\r\nDTSTART:20261201T" + start +
           "Z\r\nORGANIZER:mailto:jane@acme.com\r\nATTENDEE:mailto:alice@example.com\r\n"
           "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.com\r\nEND:VEVENT\r\n";
  };
  const auto mail = [](const std::string& method, const std::string& mid, const std::string& from,
                       const std::string& events) {
    return "From: " + from +
           "\nTo: alice@example.com\nSubject: Pilot review\n"
           "Date: Mon, 02 Nov 2026 09:00:00 +0000\nMessage-ID: <" +
           mid + ">\nMIME-Version: 1.0\nContent-Type: text/calendar; method=" + method +
           "\n\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:" + method + "\r\n" +
           events + "END:VCALENDAR\r\n";
  };
  const std::string ingest = "--store " + db + " ingest --owner alice@example.com ";
  write(dir.path() / "event.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" +
                                      event(0, "140000", "Pilot review") + "END:VCALENDAR\r\n");
  write(dir.path() / "moved.eml",
        mail("REQUEST", "moved@acme.com", "jane@acme.com", event(1, "160000", "Pilot review")));
  write(dir.path() / "late.eml",
        mail("REQUEST", "late@acme.com", "jane@acme.com", event(0, "140000", "Pilot review")));
  // Hank's answer, with a time and subject of its own: they change nothing.
  write(dir.path() / "reply.eml",
        mail("REPLY", "reply@globex.com", "hank@globex.com",
             "BEGIN:VEVENT\r\nUID:review-1@acme.com\r\nDTSTAMP:20261102T000000Z\r\n"
             "SEQUENCE:1\r\nSUMMARY:Accepted\r\nDTSTART:20261201T090000Z\r\n"
             "ORGANIZER:mailto:jane@acme.com\r\n"
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.com\r\nEND:VEVENT\r\n"));
  auto r = crm_capture(ingest + (dir.path() / "event.ics").string());
  EXPECT_EQ(r.out, "seen 1, captured 1, skipped 0, failed 0\n");
  r = crm_capture(ingest + (dir.path() / "moved.eml").string());
  EXPECT_EQ(r.out, "seen 2, captured 1, skipped 1 (imip 1), failed 0\n");
  r = crm_capture(ingest + (dir.path() / "late.eml").string());
  EXPECT_EQ(r.out, "seen 1, captured 0, skipped 1 (imip 1), failed 0\n");
  r = crm_capture(ingest + (dir.path() / "reply.eml").string());
  EXPECT_EQ(r.out, "seen 1, captured 0, skipped 1 (imip 1), failed 0\n");

  auto list = crm_capture("--store " + db + " activities --json");
  ASSERT_EQ(list.status, 0) << list.out;
  ASSERT_EQ(std::count(list.out.begin(), list.out.end(), '\n'), 1) << list.out;
  auto v = boost::json::parse(list.out).as_object();
  EXPECT_EQ(v["kind"].as_string(), "meeting");
  EXPECT_EQ(v["event_uid"].as_string(), "review-1@acme.com");
  EXPECT_EQ(v["starts_at"].as_string(), "2026-12-01T16:00:00Z");
  EXPECT_EQ(v["subject"].as_string(), "Pilot review");
  EXPECT_EQ(v["opportunity_id"].as_string(), "O-1");
  EXPECT_EQ(v["sources"].as_array().size(), 2u);  // the file's and the moved mail's

  auto dec = crm_capture("--store " + db + " decisions --json");
  std::map<std::string, std::string> reason_of;  // message id -> reason
  for (std::size_t at = 0, end; (end = dec.out.find('\n', at)) != std::string::npos; at = end + 1) {
    auto o = boost::json::parse(dec.out.substr(at, end - at)).as_object();
    if (!o["message_id"].as_string().empty()) {
      EXPECT_EQ(o["rule"].as_string(), "imip");
      reason_of[std::string(o["message_id"].as_string())] = o["reason"].as_string();
    }
  }
  EXPECT_EQ(reason_of.size(), 3u) << dec.out;
  EXPECT_EQ(reason_of["late@acme.com"],
            "skipped (imip): iMIP REQUEST for meeting review-1@acme.com, SEQUENCE 0: kept "
            "ical:review-1@acme.com (the stored SEQUENCE 1 is newer)");
  EXPECT_EQ(reason_of["reply@globex.com"],
            "skipped (imip): iMIP REPLY from hank@globex.com: ACCEPTED for meeting "
            "review-1@acme.com");

  // explain shows what a new message would do, each meeting as it would be
  // stored.
  write(dir.path() / "newer.eml",
        mail("REQUEST", "newer@acme.com", "jane@acme.com", event(2, "170000", "Pilot review")));
  auto ex = crm_capture("--store " + db + " explain --owner alice@example.com " +
                        (dir.path() / "newer.eml").string());
  EXPECT_EQ(ex.status, 0) << ex.out;
  EXPECT_NE(ex.out.find("Result: skipped (imip)\n  skipped (imip): iMIP REQUEST for meeting "
                        "review-1@acme.com, SEQUENCE 2: applied to ical:review-1@acme.com\n"
                        "Meeting ical:review-1@acme.com: captured\n  iMIP REQUEST, SEQUENCE 2, "
                        "in mail <newer@acme.com>; organizer: jane@acme.com = contact C-1"),
            std::string::npos)
      << ex.out;

  const fs::path corpus = fs::path(CRMCAP_SOURCE_DIR) / "tests" / "corpora" / "mail";
  r = crm_capture(ingest + (corpus / "calendar_reply_accepted.eml").string() + " " +
                  (corpus / "calendar_cancel.eml").string());
  EXPECT_EQ(r.out, "seen 4, captured 2, skipped 2 (imip 2), failed 0\n");
  list = crm_capture("--store " + db + " activities --json");
  std::map<std::string, boost::json::object> by_uid;
  for (std::size_t at = 0, end; (end = list.out.find('\n', at)) != std::string::npos;
       at = end + 1) {
    auto o = boost::json::parse(list.out.substr(at, end - at)).as_object();
    by_uid[std::string(o["event_uid"].as_string())] = o;
  }
  ASSERT_EQ(by_uid.size(), 3u) << list.out;
  auto& reply = by_uid["globex-review-2026@acme.com"];
  EXPECT_EQ(reply["subject"].as_string(), "Globex renewal review");
  EXPECT_EQ(reply["starts_at"].as_string(), "2026-12-01T13:00:00Z");
  auto& cancel = by_uid["initech-sync-77@acme.com"];
  EXPECT_EQ(cancel["meeting_status"].as_string(), "cancelled");
}
