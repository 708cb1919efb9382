// SPDX-License-Identifier: Apache-2.0
// DirectoryWriter::apply: directory edits in order and the batch of decisions
// they change, in one transaction; Activities::involving, which finds the
// activities an edit may decide differently.
#include "store/store.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

using namespace crmcap::store;

namespace {

DirectoryEdit put(Company c) {
  DirectoryEdit e;
  e.kind = DirectoryKind::company;
  e.id = c.id;
  e.company = std::move(c);
  return e;
}
DirectoryEdit put(Contact c, std::string where = {}) {
  DirectoryEdit e;
  e.kind = DirectoryKind::contact;
  e.id = c.id;
  e.contact = std::move(c);
  e.where = std::move(where);
  return e;
}
DirectoryEdit put(Opportunity o) {
  DirectoryEdit e;
  e.kind = DirectoryKind::opportunity;
  e.id = o.id;
  e.opportunity = std::move(o);
  return e;
}
DirectoryEdit removal(DirectoryKind k, std::string id, std::string where = {}) {
  DirectoryEdit e;
  e.kind = k;
  e.remove = true;
  e.id = std::move(id);
  e.where = std::move(where);
  return e;
}

Activity activity(const std::string& key, const std::string& when, const std::string& from,
                  const std::string& contact = {}, const std::string& opportunity = {}) {
  Activity a;
  a.id = "id-" + key;
  a.source_key = key;
  a.occurred_at = when;
  a.status = contact.empty() ? DecisionStatus::skipped : DecisionStatus::captured;
  a.rule = contact.empty() ? "unmatched" : "";
  a.opportunity_id = opportunity;
  a.participants.push_back({from, "", "from", contact, ""});
  a.participants.push_back({"alice@example.com", "", "to", "", ""});
  return a;
}

using Then = std::function<Result<Batch>(const std::vector<EditApplied>&)>;
const Then nothing = [](const std::vector<EditApplied>&) -> Result<Batch> { return Batch{}; };

class DirectoryApply : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.on_change = [this](std::int64_t seq) { heard_.push_back(seq); };
    s_ = Store::open((dir_.path() / "d.db").string(), o).value();
  }
  crmcap::test::TempDir dir_;
  std::unique_ptr<Store> s_;
  std::vector<std::int64_t> heard_;
};

}  // namespace

TEST_F(DirectoryApply, EditsApplyInOrderAndSayWhatTheyInvolve) {
  ASSERT_TRUE(s_->apply({put(Company{"CO-1", "Acme", {"acme.com"}}),
                         put(Contact{"C-1", "Jane", {"jane+crm@acme.com"}, "CO-1", "", ""})},
                        nothing));
  // A contact naming the company put on the line before it is taken; the
  // company's new domain and the contact's old and new addresses are named.
  std::vector<EditApplied> seen;
  auto done =
      s_->apply({put(Company{"CO-1", "Acme", {"acme.io"}}),
                 put(Contact{"C-1", "Jane", {"jane@acme.io"}, "CO-1", "", ""}),
                 put(Opportunity{
                     "O-1", "Renewal", "CO-1", "", {}, "", OpportunityStatus::open, {{"C-1", ""}}}),
                 removal(DirectoryKind::opportunity, "O-1")},
                [&](const std::vector<EditApplied>& d) -> Result<Batch> {
                  seen = d;
                  // Reads inside see the new directory.
                  auto c = s_->contact_by_email("jane@acme.io", PlusTags::ignored);
                  EXPECT_TRUE(c && *c && (*c)->id == "C-1");
                  return Batch{};
                });
  ASSERT_TRUE(done) << done.error().message;
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].what, EditApplied::What::changed);
  EXPECT_EQ(seen[0].involving.domains, (std::set<std::string>{"acme.com", "acme.io"}));
  EXPECT_EQ(seen[1].involving.addresses,
            (std::set<std::string>{"jane+crm@acme.com", "jane@acme.com", "jane@acme.io"}));
  EXPECT_EQ(seen[2].what, EditApplied::What::created);
  EXPECT_EQ(seen[2].involving.company_ids, std::set<std::string>{"CO-1"});
  EXPECT_EQ(seen[2].involving.contact_ids, std::set<std::string>{"C-1"});
  EXPECT_EQ(seen[3].what, EditApplied::What::removed);
  EXPECT_FALSE(s_->opportunity("O-1").value());
  EXPECT_EQ(s_->company("CO-1").value()->domains, std::vector<std::string>{"acme.io"});
}

TEST_F(DirectoryApply, ABadEditOrAFailureOfThenChangesNothing) {
  ASSERT_TRUE(s_->commit(Batch{{{activity("k1", "2026-11-01T10:00:00Z", "ann@globex.com"),
                                 SourceRef{"alice", "INBOX", 1, 1, ""}}}}));
  const auto seq = s_->last_change_seq().value();
  Activity linked = activity("k1", "2026-11-01T10:00:00Z", "ann@globex.com", "C-9");
  linked.reason = "re-matched";
  auto with_batch = [&](const std::vector<EditApplied>&) -> Result<Batch> {
    Batch b;
    b.decided_again.push_back(linked);
    return b;
  };
  // Line 2 names an unknown company: line 1's contact is not kept either.
  auto r = s_->apply({put(Contact{"C-9", "Ann", {"ann@globex.com"}, "", "", ""}, "line 1"),
                      put(Contact{"C-8", "Bob", {"bob@globex.com"}, "CO-404", "", ""}, "line 2")},
                     with_batch);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(Errc::bad_input));
  EXPECT_EQ(r.error().message, "line 2: company_id: unknown company id 'CO-404'");
  EXPECT_EQ(s_->stats().value().contacts, 0);
  // Removing what is not there.
  r = s_->apply({removal(DirectoryKind::contact, "C-7", "line 4")}, nothing);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(Errc::not_found));
  EXPECT_EQ(r.error().message, "line 4: no contact 'C-7'");
  // `then` fails: the edit is rolled back, and no cached look-up keeps it.
  r = s_->apply({put(Contact{"C-9", "Ann", {"ann@globex.com"}, "", "", ""})},
                [&](const std::vector<EditApplied>&) -> Result<Batch> {
                  EXPECT_TRUE(s_->contact_by_email("ann@globex.com", PlusTags::ignored).value());
                  return make_error(Errc::sql_failed, "no");
                });
  ASSERT_FALSE(r);
  EXPECT_FALSE(s_->contact_by_email("ann@globex.com", PlusTags::ignored).value());
  EXPECT_EQ(s_->last_change_seq().value(), seq);
  EXPECT_EQ(s_->by_source_key("k1").value()->status, DecisionStatus::skipped);
  // It succeeds: the activity is updated in place (no new place), with a
  // new change number, announced once the transaction is committed.
  heard_.clear();
  ASSERT_TRUE(s_->apply({put(Contact{"C-9", "Ann", {"ann@globex.com"}, "", "", ""})}, with_batch));
  const auto a = s_->by_source_key("k1").value().value();
  EXPECT_EQ(a.status, DecisionStatus::captured);
  EXPECT_EQ(a.contact_ids, std::vector<std::string>{"C-9"});
  EXPECT_EQ(a.reason, "re-matched");
  EXPECT_EQ(a.sources.size(), 1u);
  EXPECT_EQ(a.change_seq, seq + 1);
  EXPECT_EQ(heard_, std::vector<std::int64_t>{seq + 1});
  // A decision again of a key not stored is ignored.
  linked.source_key = "k-none";
  ASSERT_TRUE(s_->apply({put(Contact{"C-9", "Ann", {"ann@globex.com"}, "", "", ""})}, with_batch));
  EXPECT_FALSE(s_->by_source_key("k-none").value());
}

TEST_F(DirectoryApply, InvolvingFindsByAddressDomainIdsAndOpportunityWithinTheWindow) {
  Batch b;
  std::int64_t uid = 0;
  for (const auto& a : {activity("old", "2026-01-01T10:00:00Z", "ann@globex.com"),
                        activity("addr", "2026-11-01T10:00:00Z", "ann@globex.com"),
                        activity("sub", "2026-11-02T10:00:00Z", "bo@mail.initech.com"),
                        activity("contact", "2026-11-03T10:00:00Z", "x@y.com", "C-1"),
                        activity("opp", "2026-11-04T10:00:00Z", "z@y.com", "C-2", "O-1"),
                        activity("other", "2026-11-05T10:00:00Z", "q@r.com")}) {
    b.items.push_back({a, SourceRef{"alice", "INBOX", 1, ++uid, ""}});
  }
  ASSERT_TRUE(s_->commit(b));
  Involving k;
  k.addresses = {"ann@globex.com"};
  k.domains = {"initech.com"};
  k.contact_ids = {"C-1"};
  k.opportunity_ids = {"O-1"};
  auto found = s_->involving(k, "2026-10-01T00:00:00Z").value();
  std::vector<std::string> keys;
  for (const auto& a : found) keys.push_back(a.source_key);
  EXPECT_EQ(keys, (std::vector<std::string>{"addr", "sub", "contact", "opp"}));
  EXPECT_EQ(found.front().sources.size(), 1u);
  EXPECT_EQ(found.front().participants.size(), 2u);
  // "globex.com" is not a parent of "initech.com"'s sub-domain; a domain key
  // matches the domain itself and its sub-domains only.
  Involving d;
  d.domains = {"mail.initech.com", "obex.com"};
  found = s_->involving(d, "2026-10-01T00:00:00Z").value();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.front().source_key, "sub");
}
