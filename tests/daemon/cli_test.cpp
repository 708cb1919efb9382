// SPDX-License-Identifier: Apache-2.0
// The crm-capture command as a user runs it: exit codes, messages, outputs.
#include "tests/daemon/test_support.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

struct Run {
  int status;
  std::string out;
};

// Runs crm-capture with `args` (already shell-quoted), stdout and stderr joined.
Run crm_capture(const std::string& args) {
  const std::string cmd = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-capture " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

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
