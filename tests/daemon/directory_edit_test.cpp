// SPDX-License-Identifier: Apache-2.0
// DirectoryEditor: directory edits applied with the decisions they change,
// over a real SQLite store holding messages decided by the pipeline.
#include "daemon/capture/directory_edit.hpp"
#include "daemon/capture/directory_import.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace crmcap;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

constexpr std::int64_t k_now = 1795000000;  // 2026-11-19
constexpr std::int64_t k_day = 86400;

capture::Settings settings() {
  capture::Settings s;
  s.owner_addresses = {"alice@example.com"};
  s.internal_domains = {"example.com"};
  return s;
}

capture::FreeMailDomains free_mail() {
  return capture::FreeMailDomains::from_text(
      test::read_file(std::filesystem::path(CRMCAP_SOURCE_DIR) / "data" / "free-mail-domains.txt"));
}

store::DirectoryEdit put_contact(std::string id, std::string email, std::string company = {}) {
  store::DirectoryEdit e;
  e.kind = store::DirectoryKind::contact;
  e.id = id;
  e.contact = {std::move(id), "Ann", {std::move(email)}, std::move(company), "", ""};
  EXPECT_FALSE(capture::check_row(e.contact));  // the editor takes checked rows
  return e;
}

store::DirectoryEdit put_company(std::string id, std::string domain) {
  store::DirectoryEdit e;
  e.kind = store::DirectoryKind::company;
  e.id = id;
  e.company = {std::move(id), "Newco", {std::move(domain)}};
  return e;
}

store::DirectoryEdit put_opportunity(std::string id, std::string company,
                                     store::OpportunityStatus status) {
  store::DirectoryEdit e;
  e.kind = store::DirectoryKind::opportunity;
  e.id = id;
  e.opportunity.id = std::move(id);
  e.opportunity.name = "Pilot";
  e.opportunity.company_id = std::move(company);
  e.opportunity.status = status;
  return e;
}

class DirectoryEdits : public ::testing::Test {
 protected:
  void SetUp() override {
    st_ = test::directory_store((dir_.path() / "capture.db").string());
    capture::Pipeline p(*st_, *st_, settings(), free_mail());
    capture::BatchWriter w(p, *st_);
    std::int64_t uid = 0;
    auto add = [&](const std::string& id, std::int64_t when, const std::string& extra) {
      const std::string raw = test::message(
          "From: Ann <ann@newco.com>\nTo: alice@example.com\n"
          "Subject: hello\nMessage-ID: <" +
          id + ">\nDate: " + date(when) + "\n" + extra);
      capture::MessageSource src{{"alice", "INBOX", 1, ++uid, ""}, when};
      auto o = p.process(raw, src);
      w.add(std::move(o), src.ref);
    };
    add("recent@newco.com", k_now - 3 * k_day, "");
    add("bulk@newco.com", k_now - 2 * k_day, "List-Id: <news.newco.com>\n");
    add("old@newco.com", k_now - 200 * k_day, "");
    ASSERT_TRUE(w.commit());
  }

  static std::string date(std::int64_t t) {
    char buf[64];
    const std::time_t tt = t;
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
  }
  store::Activity stored(const std::string& mid) {
    return st_->by_source_key("mid:" + mid).value().value();
  }
  store::Result<capture::DirectoryReport> apply(const std::vector<store::DirectoryEdit>& edits) {
    capture::DirectoryEditor editor(*st_, {{"alice", settings()}}, settings(), free_mail());
    return editor.apply(edits, "over the API", k_now);
  }

  test::TempDir dir_;
  std::unique_ptr<store::Store> st_;
};

}  // namespace

TEST_F(DirectoryEdits, ANewContactRelinksUnmatchedMailOfTheWindowInPlace) {
  const store::Activity before = stored("recent@newco.com");
  ASSERT_EQ(before.status, store::DecisionStatus::skipped);
  ASSERT_EQ(before.rule, "unmatched");
  const auto seq = st_->last_change_seq().value();

  auto r = apply({put_contact("C-9", "Ann@Newco.com")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->created, 1u);
  EXPECT_EQ(r->rematched, std::vector<std::string>{before.id});
  const store::Activity after = stored("recent@newco.com");
  EXPECT_EQ(after.id, before.id);
  EXPECT_EQ(after.status, store::DecisionStatus::captured);
  EXPECT_EQ(after.contact_ids, std::vector<std::string>{"C-9"});
  EXPECT_EQ(after.reason,
            "re-matched: contact C-9 added over the API; from: ann@newco.com = contact C-9; "
            "no opportunity: none found");
  EXPECT_EQ(after.sources.size(), 1u);
  EXPECT_EQ(after.change_seq, seq + 1);
  // Bulk mail stays skipped for what its header said; mail older than the
  // backfill window is not decided again.
  EXPECT_EQ(stored("bulk@newco.com").rule, "bulk");
  EXPECT_EQ(stored("old@newco.com").rule, "unmatched");
  // The same row again changes no decision.
  r = apply({put_contact("C-9", "ann@newco.com")});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->changed, 1u);
  EXPECT_TRUE(r->rematched.empty());
  EXPECT_EQ(st_->last_change_seq().value(), seq + 1);
}

TEST_F(DirectoryEdits, CompanyDomainAndOpportunityOpenedThenClosed) {
  auto r = apply({put_company("CO-9", "newco.com")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(stored("recent@newco.com").company_ids, std::vector<std::string>{"CO-9"});
  EXPECT_THAT(stored("recent@newco.com").reason,
              StartsWith("re-matched: company CO-9 added over the API; from: ann@newco.com = "
                         "company CO-9"));

  r = apply({put_opportunity("O-9", "CO-9", store::OpportunityStatus::open)});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rematched.size(), 1u);
  EXPECT_EQ(stored("recent@newco.com").opportunity_id, "O-9");
  EXPECT_THAT(stored("recent@newco.com").reason,
              HasSubstr("re-matched: opportunity O-9 added over the API;"));

  r = apply({put_opportunity("O-9", "CO-9", store::OpportunityStatus::won)});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rematched.size(), 1u);
  EXPECT_EQ(stored("recent@newco.com").opportunity_id, "");
  EXPECT_THAT(stored("recent@newco.com").reason,
              HasSubstr("re-matched: opportunity O-9 changed over the API;"));

  // The company removed: the mail is unmatched again, and says why.
  store::DirectoryEdit gone;
  gone.kind = store::DirectoryKind::company;
  gone.remove = true;
  gone.id = "CO-9";
  r = apply({gone});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->removed, 1u);
  const auto a = stored("recent@newco.com");
  EXPECT_EQ(a.status, store::DecisionStatus::skipped);
  EXPECT_EQ(a.rule, "unmatched");
  EXPECT_THAT(a.reason, StartsWith("re-matched: company CO-9 removed over the API; skipped ("));
}

TEST_F(DirectoryEdits, AFailedEditLeavesDirectoryAndDecisionsAsTheyWere) {
  auto bad = put_contact("C-8", "bob@newco.com", "CO-404");
  bad.where = "line 2";
  auto r = apply({put_contact("C-9", "ann@newco.com"), bad});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "line 2: company_id: unknown company id 'CO-404'");
  EXPECT_EQ(stored("recent@newco.com").status, store::DecisionStatus::skipped);
  EXPECT_FALSE(st_->contact_by_email("ann@newco.com", store::PlusTags::ignored).value());
}

TEST(DirectoryRows, CheckedAndNormalizedAsTheCsvImportDoes) {
  store::Contact c{"C-1", "Jane", {" Jane@ACME.com ", "jane@acme.com"}, "", "", ""};
  EXPECT_FALSE(capture::check_row(c));
  EXPECT_EQ(c.emails, std::vector<std::string>{"jane@acme.com"});
  c.emails = {"not-an-address"};
  auto p = capture::check_row(c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->field, "emails");
  EXPECT_EQ(p->what, "bad address 'not-an-address'");
  store::Company co{"CO-1", "Acme", {"@Acme.com"}};
  EXPECT_FALSE(capture::check_row(co));
  EXPECT_EQ(co.domains, std::vector<std::string>{"acme.com"});
  store::Opportunity o;
  o.id = "O-1";
  o.close_date = "2026-02-30";
  ASSERT_TRUE(capture::check_row(o));
  EXPECT_EQ(capture::check_row(o)->field, "close_date");
  // CSV rows become the same edits, their `where` the file and line.
  auto edits = capture::directory_csv_edits(capture::ImportKind::contacts,
                                            "id,name,emails\nC-1,Jane,JANE@acme.com\n", "c.csv");
  ASSERT_TRUE(edits);
  ASSERT_EQ(edits->size(), 1u);
  EXPECT_EQ(edits->front().where, "c.csv:2");
  EXPECT_EQ(edits->front().contact.emails, std::vector<std::string>{"jane@acme.com"});
}
