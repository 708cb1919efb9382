// SPDX-License-Identifier: Apache-2.0
// The capture rules on their own: the skip policy and the matcher, table-driven
// against the in-memory directory. No SQLite, no files (this binary links
// crmcap_capture only).
#include "daemon/capture/rules.hpp"
#include "store/memory_directory.hpp"
#include "tests/support/failing_directory.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <string>
#include <vector>

using namespace crmcap;
using capture::Match;
using capture::Matcher;
using capture::Policy;
using store::Direction;
using store::OpportunityStatus;
using store::Participant;
using store::PlusTags;
using Read = test::FailingDirectory::Read;

namespace {

store::Company company(std::string id, std::string name, std::vector<std::string> domains) {
  return {std::move(id), std::move(name), std::move(domains)};
}
store::Contact contact(std::string id, std::vector<std::string> emails, std::string company_id) {
  return {std::move(id), "", std::move(emails), std::move(company_id), "", ""};
}
store::Opportunity opportunity(std::string id, std::string company_id,
                               std::vector<std::string> contact_ids,
                               OpportunityStatus status = OpportunityStatus::open) {
  store::Opportunity o;
  o.id = std::move(id);
  o.company_id = std::move(company_id);
  o.status = status;
  for (auto& c : contact_ids) o.contacts.push_back({std::move(c), ""});
  return o;
}

// The directory every matcher test reads.
store::MemoryDirectory world() {
  return store::MemoryDirectory(
      {company("CO-1", "Acme", {"acme.com"}), company("CO-2", "Globex", {"globex.com"}),
       company("CO-3", "Initech", {"initech.com"}),
       // A domain two companies list (a holding and its subsidiary).
       company("CO-4", "Hooli", {"hooli.com", "shared.example"}),
       company("CO-5", "Hooli XYZ", {"xyz.hooli.com", "shared.example"}),
       company("CO-6", "Soylent", {"soylent.com"})},
      {contact("C-1", {"jane+crm@acme.com"}, "CO-1"), contact("C-2", {"joe@acme.com"}, "CO-1"),
       contact("C-3", {"hank@globex.com"}, "CO-2"), contact("C-4", {"bill@gmail.com"}, "")},
      {// Acme: one open opportunity per contact role, a won one never counts.
       opportunity("O-1", "CO-1", {"C-1"}), opportunity("O-2", "CO-1", {"C-2"}),
       opportunity("O-9", "CO-1", {"C-1"}, OpportunityStatus::won),
       // Globex: one open opportunity, no roles.
       opportunity("O-3", "CO-2", {}),
       // Initech: two open, no roles.
       opportunity("O-4", "CO-3", {}), opportunity("O-5", "CO-3", {}),
       // Soylent: only a lost one.
       opportunity("O-6", "CO-6", {}, OpportunityStatus::lost)});
}

capture::FreeMailDomains free_mail() { return capture::FreeMailDomains::from_text("gmail.com\n"); }

std::vector<Participant> people(const std::vector<std::string>& addresses, bool strip = true) {
  std::vector<Participant> out;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    out.push_back(
        {capture::normalize_address(addresses[i], strip), "", i == 0 ? "from" : "to", "", ""});
  }
  return out;
}

std::vector<std::size_t> all(const std::vector<Participant>& p) {
  std::vector<std::size_t> out(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) out[i] = i;
  return out;
}

capture::ThreadOpportunity thread_of(std::optional<std::string> opp) {
  return [opp] { return store::Result<std::optional<std::string>>(opp); };
}

// ---- the matcher -------------------------------------------------------------

struct MatchCase {
  const char* name;
  std::vector<std::string> addresses;
  std::optional<std::string> thread;  // the thread's earlier opportunity
  std::vector<std::string> contacts, companies;
  std::string opportunity;
  std::string line;  // the opportunity line, or the unmatched skip's reason
};

class MatcherTable : public ::testing::TestWithParam<MatchCase> {};

TEST_P(MatcherTable, GivesContactsCompaniesOpportunityAndReason) {
  const MatchCase& c = GetParam();
  auto dir = world();
  const auto fm = free_mail();
  const Matcher matcher(dir, fm, PlusTags::ignored);
  auto p = people(c.addresses);
  auto m = matcher.match(p, all(p), thread_of(c.thread));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->contact_ids, c.contacts);
  EXPECT_EQ(m->company_ids, c.companies);
  EXPECT_EQ(m->opportunity_id, c.opportunity);
  EXPECT_EQ(m->unmatched ? m->unmatched->why : m->opportunity_line, c.line);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, MatcherTable,
    ::testing::Values(
        MatchCase{
            "ContactRoleOnOne",
            {"jane@acme.com"},
            {},
            {"C-1"},
            {"CO-1"},
            "O-1",
            "opportunity O-1: the one open opportunity on which a matched contact has a role"},
        // Both contacts matched: each has a role on another opportunity. (With
        // jane's +tag address unmatched, joe's role alone looked unambiguous.)
        MatchCase{"RolesOnSeveralAreAmbiguous",
                  {"Jane+CRM@ACME.com", "joe@acme.com"},
                  {},
                  {"C-1", "C-2"},
                  {"CO-1"},
                  "",
                  "no opportunity: ambiguous, matched contacts have roles on several open "
                  "opportunities (O-1, O-2)"},
        MatchCase{"RolesOnSeveralTheThreadChooses",
                  {"jane@acme.com", "joe@acme.com"},
                  "O-2",
                  {"C-1", "C-2"},
                  {"CO-1"},
                  "O-2",
                  "opportunity O-2: matched contacts have roles on several (O-1, O-2); the "
                  "thread's earlier activity names this one"},
        MatchCase{"ThreadOutsideTheCandidatesIsIgnored",
                  {"jane@acme.com", "joe@acme.com"},
                  "O-4",
                  {"C-1", "C-2"},
                  {"CO-1"},
                  "",
                  "no opportunity: ambiguous, matched contacts have roles on several open "
                  "opportunities (O-1, O-2)"},
        MatchCase{"OnlyOpenOpportunityOfTheCompany",
                  {"hank@globex.com"},
                  {},
                  {"C-3"},
                  {"CO-2"},
                  "O-3",
                  "opportunity O-3: only open opportunity of Globex"},
        MatchCase{"CompanyByParentDomain",
                  {"someone@mail.eu.globex.com"},
                  {},
                  {},
                  {"CO-2"},
                  "O-3",
                  "opportunity O-3: only open opportunity of Globex"},
        MatchCase{"SeveralOpenAreAmbiguous",
                  {"peter@initech.com"},
                  {},
                  {},
                  {"CO-3"},
                  "",
                  "no opportunity: ambiguous, Initech has several open (O-4, O-5)"},
        MatchCase{"SeveralOpenTheThreadChooses",
                  {"peter@initech.com"},
                  "O-5",
                  {},
                  {"CO-3"},
                  "O-5",
                  "opportunity O-5: Initech has several open (O-4, O-5); the thread's earlier "
                  "activity names this one"},
        MatchCase{"ClosedOpportunitiesNeverCount",
                  {"ceo@soylent.com"},
                  {},
                  {},
                  {"CO-6"},
                  "",
                  "no opportunity: Soylent has no open opportunity"},
        MatchCase{"NoOpenOpportunityTheThreadGives",
                  {"ceo@soylent.com"},
                  "O-77",
                  {},
                  {"CO-6"},
                  "O-77",
                  "opportunity O-77: from an earlier activity in the same thread"},
        MatchCase{"SeveralCompaniesNoRole",
                  {"hank@globex.com", "peter@initech.com"},
                  {},
                  {"C-3"},
                  {"CO-2", "CO-3"},
                  "",
                  "no opportunity: several companies matched (CO-2, CO-3) and no contact has a "
                  "role"},
        MatchCase{"SeveralCompaniesTheThreadGives",
                  {"hank@globex.com", "peter@initech.com"},
                  "O-4",
                  {"C-3"},
                  {"CO-2", "CO-3"},
                  "O-4",
                  "opportunity O-4: from an earlier activity in the same thread"},
        // A domain two companies list matches neither, and no parent domain
        // is tried instead.
        MatchCase{"DomainOfSeveralCompaniesIsNoMatch",
                  {"x@shared.example"},
                  {},
                  {},
                  {},
                  "",
                  "no participant is a known contact or company (x@shared.example)"},
        MatchCase{"SubsidiaryDomainBeforeParent",
                  {"x@xyz.hooli.com"},
                  {},
                  {},
                  {"CO-5"},
                  "",
                  "no opportunity: Hooli XYZ has no open opportunity"},
        MatchCase{"FreeMailIsNeverACompany",
                  {"stranger@gmail.com"},
                  {},
                  {},
                  {},
                  "",
                  "no participant is a known contact or company (stranger@gmail.com)"},
        MatchCase{"FreeMailContactStillMatches",
                  {"Bill@GMAIL.com"},
                  {},
                  {"C-4"},
                  {},
                  "",
                  "no opportunity: none found"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Matcher, NotesSayWhyAParticipantIsUnmatched) {
  auto dir = world();
  const auto fm = free_mail();
  auto p = people({"hank@globex.com", "x@shared.example", "a@gmail.com", "b@nowhere.org"});
  auto m = Matcher(dir, fm, PlusTags::ignored).match(p, all(p), thread_of({}));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->links, std::vector<std::string>{"from: hank@globex.com = contact C-3"});
  EXPECT_EQ(m->notes,
            (std::vector<std::string>{
                "to: x@shared.example: domain shared.example belongs to several companies "
                "(CO-4, CO-5), none chosen",
                "to: a@gmail.com: unknown contact at free-mail domain gmail.com, no company",
                "to: b@nowhere.org: no contact or company"}));
  // Participants carry their links.
  EXPECT_EQ(p[0].contact_id, "C-3");
  EXPECT_EQ(p[0].company_id, "CO-2");
  EXPECT_EQ(p[1].company_id, "");
}

// ---- +tags and case ------------------------------------------------------------

struct TagCase {
  const char* written;  // as the mail writes it
  bool strip;
  const char* contact;  // "" when none
};

class PlusTagTable : public ::testing::TestWithParam<TagCase> {};

TEST_P(PlusTagTable, DirectoryAndMailGiveTheSameKey) {
  const TagCase& c = GetParam();
  auto dir = world();  // C-1 is listed as jane+crm@acme.com
  const auto fm = free_mail();
  auto p = people({c.written}, c.strip);
  auto m = Matcher(dir, fm, c.strip ? PlusTags::ignored : PlusTags::distinct)
               .match(p, all(p), thread_of({}));
  ASSERT_TRUE(m);
  EXPECT_EQ(p[0].contact_id, c.contact) << c.written;
}

INSTANTIATE_TEST_SUITE_P(Rules, PlusTagTable,
                         ::testing::Values(TagCase{"Jane+CRM@ACME.com", true, "C-1"},
                                           TagCase{"jane@acme.com", true, "C-1"},
                                           TagCase{"JANE+other@Acme.Com", true, "C-1"},
                                           TagCase{" jane+crm@acme.com ", true, "C-1"},
                                           // Tags kept apart: only the address as listed.
                                           TagCase{"Jane+CRM@ACME.com", false, "C-1"},
                                           TagCase{"jane@acme.com", false, ""},
                                           TagCase{"jane+other@acme.com", false, ""}));

TEST(Matcher, AnExactAddressWinsOverATaggedOne) {
  store::MemoryDirectory dir(
      {}, {contact("C-1", {"sam+sales@acme.com"}, ""), contact("C-2", {"sam@acme.com"}, "")}, {});
  const auto fm = free_mail();
  auto p = people({"sam+anything@acme.com"});
  auto m = Matcher(dir, fm, PlusTags::ignored).match(p, all(p), thread_of({}));
  ASSERT_TRUE(m);
  EXPECT_EQ(p[0].contact_id, "C-2");
}

// A generated world: a quarter of the CRM's addresses carry +tags and mixed
// case, and mail writes every address in another case and with another tag
// (or none). Every one must match its contact.
TEST(Matcher, AGeneratedWorldOfTaggedMixedCaseAddressesMatchesEveryOne) {
  std::mt19937 rng(17);
  auto mixed_case = [&](std::string s) {
    for (auto& ch : s) {
      if (rng() % 2) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    return s;
  };
  std::vector<store::Contact> contacts;
  std::vector<std::string> written;  // how mail writes each contact's address
  for (int i = 0; i < 400; ++i) {
    const std::string local = "person" + std::to_string(i);
    const std::string domain = "firm" + std::to_string(i % 37) + ".com";
    const bool tagged = i % 4 == 0;
    std::string listed = local + (tagged ? "+crm" + std::to_string(i) : "") + "@" + domain;
    // The directory keeps addresses normalized (as its writers give them),
    // whatever case the CRM used.
    contacts.push_back(contact("C-" + std::to_string(i),
                               {capture::normalize_address(mixed_case(listed), false)}, ""));
    const std::string tag = rng() % 3 == 0 ? "" : "+Tag" + std::to_string(rng() % 100);
    written.push_back(mixed_case(local + tag + "@" + domain));
  }
  store::MemoryDirectory dir({}, contacts, {});
  const auto fm = free_mail();
  const Matcher matcher(dir, fm, PlusTags::ignored);
  std::size_t matched = 0;
  for (std::size_t i = 0; i < written.size(); ++i) {
    auto p = people({written[i]});
    auto m = matcher.match(p, all(p), thread_of({}));
    ASSERT_TRUE(m);
    EXPECT_EQ(p[0].contact_id, "C-" + std::to_string(i)) << written[i];
    matched += p[0].contact_id == "C-" + std::to_string(i);
  }
  EXPECT_EQ(matched, written.size());
}

// ---- a failing directory -----------------------------------------------------------

struct FailCase {
  const char* name;
  Read what;
  std::vector<std::string> addresses;  // mail that reaches that read
};

class FailingDirectoryTable : public ::testing::TestWithParam<FailCase> {};

TEST_P(FailingDirectoryTable, IsAnErrorNeverNoMatch) {
  const FailCase& c = GetParam();
  auto real = world();
  test::FailingDirectory dir(real, c.what);
  const auto fm = free_mail();
  auto p = people(c.addresses);
  auto m = Matcher(dir, fm, PlusTags::ignored).match(p, all(p), thread_of({}));
  ASSERT_FALSE(m) << "matched instead of failing: " << m->opportunity_line;
  EXPECT_EQ(m.error().message, test::FailingDirectory::k_message);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, FailingDirectoryTable,
    ::testing::Values(
        FailCase{"Contact", Read::contact, {"jane@acme.com"}},
        FailCase{"Domain", Read::domain, {"peter@initech.com"}},
        FailCase{"CompanyOpportunities", Read::company_opportunities, {"x@globex.com"}},
        FailCase{"ContactOpportunities", Read::contact_opportunities, {"joe@acme.com"}},
        // The company's name, read for a contact's company.
        FailCase{"Company", Read::company, {"hank@globex.com"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Matcher, AFailingThreadReadIsAnError) {
  auto dir = world();
  const auto fm = free_mail();
  auto p = people({"peter@initech.com"});
  auto m = Matcher(dir, fm, PlusTags::ignored).match(p, all(p), [] {
    return store::Result<std::optional<std::string>>(
        store::make_error(store::Errc::sql_failed, "database is locked"));
  });
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, "database is locked");
}

// ---- the skip policy ---------------------------------------------------------------

capture::Settings settings() {
  capture::Settings s;
  s.owner_addresses = {"Alice+Sales@Example.com"};
  s.internal_domains = {"Example.com"};
  s.block_addresses = {"noreply@vendor.com"};
  s.block_domains = {"spammer.biz"};
  return s;
}

struct HeaderCase {
  const char* name;
  void (*set)(mail::MailMessage&);
  const char* rule;  // "" when nothing is skipped
  const char* why;
};

class MailSkipTable : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(MailSkipTable, NamesTheRuleAndWhatItSaw) {
  const HeaderCase& c = GetParam();
  mail::MailMessage m;
  m.from = {{"", "jane@acme.com"}};
  c.set(m);
  const Policy policy(settings());
  const auto s = policy.mail_skip(m, capture::mail_participants(m, true));
  if (*c.rule == 0) {
    EXPECT_FALSE(s) << s->rule;
    return;
  }
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rule, c.rule);
  EXPECT_EQ(s->why, c.why);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, MailSkipTable,
    ::testing::Values(
        HeaderCase{"Plain", [](mail::MailMessage&) {}, "", ""},
        HeaderCase{"ListId", [](mail::MailMessage& m) { m.list_id = "news.acme.com"; }, "bulk",
                   "mailing list (List-Id: news.acme.com)"},
        HeaderCase{"ListUnsubscribe",
                   [](mail::MailMessage& m) { m.list_unsubscribe = "<mailto:u@acme.com>"; }, "bulk",
                   "bulk mail (List-Unsubscribe: <mailto:u@acme.com>)"},
        HeaderCase{"PrecedenceBulk", [](mail::MailMessage& m) { m.precedence = "Bulk"; }, "bulk",
                   "bulk mail (Precedence: Bulk)"},
        HeaderCase{"PrecedenceOther", [](mail::MailMessage& m) { m.precedence = "urgent"; }, "",
                   ""},
        HeaderCase{"AutoSubmitted", [](mail::MailMessage& m) { m.auto_submitted = "auto-replied"; },
                   "auto-reply", "automatic message (Auto-Submitted: auto-replied)"},
        HeaderCase{"AutoSubmittedNo", [](mail::MailMessage& m) { m.auto_submitted = "No"; }, "",
                   ""},
        HeaderCase{"XAutoreply", [](mail::MailMessage& m) { m.x_autoreply = "yes"; }, "auto-reply",
                   "automatic reply (X-Autoreply: yes)"},
        HeaderCase{"Bounce",
                   [](mail::MailMessage& m) {
                     m.from = {{"", "MAILER-DAEMON@acme.com"}};
                   },
                   "bounce", "delivery report from mailer-daemon@acme.com"},
        HeaderCase{"Private", [](mail::MailMessage& m) { m.sensitivity = "Private"; }, "private",
                   "marked private (Sensitivity: Private)"}),
    [](const auto& info) { return std::string(info.param.name); });

struct AudienceCase {
  const char* name;
  std::vector<std::string> addresses;
  std::vector<std::size_t> outside;  // when nothing is skipped
  const char* rule;
  const char* why;
};

class AudienceTable : public ::testing::TestWithParam<AudienceCase> {};

TEST_P(AudienceTable, LeavesOutsidersOrSkips) {
  const AudienceCase& c = GetParam();
  const Policy policy(settings());
  auto r = policy.outside_participants(people(c.addresses));
  if (*c.rule == 0) {
    ASSERT_TRUE(r) << r.error().why;
    EXPECT_EQ(*r, c.outside);
    return;
  }
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rule, c.rule);
  EXPECT_EQ(r.error().why, c.why);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, AudienceTable,
    ::testing::Values(
        AudienceCase{"Nobody", {}, {}, "no-participants", "no From, To, Cc or Bcc address"},
        AudienceCase{"AllInternal",
                     {"alice+x@example.com", "bob@eu.example.com"},
                     {},
                     "internal",
                     "every participant is internal"},
        AudienceCase{"Blocked",
                     {"alice@example.com", "NoReply@vendor.com", "x@mail.spammer.biz"},
                     {},
                     "blocklist",
                     "every outside participant is blocklisted (noreply@vendor.com, "
                     "x@mail.spammer.biz)"},
        AudienceCase{"OutsidersInOrder",
                     {"alice@example.com", "jane@acme.com", "x@spammer.biz", "joe@acme.com"},
                     {1, 3},
                     "",
                     ""},
        // example.com.evil.org is not a sub-domain of example.com.
        AudienceCase{"LookAlikeDomainIsOutside", {"x@example.com.evil.org"}, {0}, "", ""}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Policy, OwnerAndExcludedFolders) {
  const Policy policy(settings());
  EXPECT_TRUE(policy.is_owner("alice@example.com"));
  EXPECT_FALSE(policy.is_owner("bob@example.com"));
  for (const char* f : {"Spam", "INBOX.Trash", "INBOX/Junk E-mail", "[Gmail]/Bin", "Drafts"}) {
    EXPECT_TRUE(policy.excluded_folder(f)) << f;
  }
  for (const char* f : {"INBOX", "Sent", "Projects/Trash talk", "Customers.Acme"}) {
    EXPECT_FALSE(policy.excluded_folder(f)) << f;
  }
}

TEST(Policy, ParticipantsInHeaderOrderEachOnce) {
  mail::MailMessage m;
  m.from = {{"Jane", "Jane@Acme.com"}};
  m.to = {{"", "alice@example.com"}, {"", "jane@acme.com"}, {"", "undisclosed-recipients"}};
  m.cc = {{"", "joe+x@acme.com"}};
  m.bcc = {{"", "hank@globex.com"}};
  m.sender = {{"", "sender@elsewhere.com"}};
  m.reply_to = {{"", "replyto@elsewhere.com"}};
  const auto p = capture::mail_participants(m, true);
  std::vector<std::string> got;
  for (const auto& x : p) got.push_back(x.role + ":" + x.address);
  EXPECT_EQ(got, (std::vector<std::string>{"from:jane@acme.com", "to:alice@example.com",
                                           "cc:joe@acme.com", "bcc:hank@globex.com"}));
  EXPECT_EQ(p[0].name, "Jane");
}

// Rule 7's sent copy: decided again when inbound or not yet in that folder.
TEST(Policy, ASentCopyDecidesAgainWhenInboundOrNotYetInItsFolder) {
  using Copy = store::Activities::StoredCopy;
  EXPECT_TRUE(Policy::sent_copy_decides_again(Copy{Direction::inbound, true}));
  EXPECT_TRUE(Policy::sent_copy_decides_again(Copy{Direction::inbound, false}));
  EXPECT_TRUE(Policy::sent_copy_decides_again(Copy{Direction::outbound, false}));
  EXPECT_FALSE(Policy::sent_copy_decides_again(Copy{Direction::outbound, true}));
}

}  // namespace

namespace {

ical::Participant person(std::string address, std::string partstat = "NEEDS-ACTION",
                         bool resource = false) {
  ical::Participant p;
  p.address = std::move(address);
  p.partstat = std::move(partstat);
  p.resource = resource;
  return p;
}

}  // namespace

TEST(Policy, MeetingParticipantsAreOrganizerThenAttendeesWithoutRooms) {
  ical::Meeting m;
  m.organizer = person("Jane+CRM@Acme.com");
  m.attendees = {person("alice@example.com"), person("room-1@example.com", "", true),
                 person("jane@acme.com"), person("hank@globex.com")};
  std::vector<std::string> got;
  for (const auto& p : capture::meeting_participants(m, true)) {
    got.push_back(p.role + ":" + p.address);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"organizer:jane@acme.com", "attendee:alice@example.com",
                                           "attendee:hank@globex.com"}));
}

TEST(Policy, AMeetingIsSkippedWhenPrivateOrDeclinedByTheOwner) {
  const Policy policy(settings());  // owner Alice+Sales@Example.com
  ical::Meeting m;
  m.organizer = person("jane@acme.com");
  m.attendees = {person("Alice@example.com", "ACCEPTED"), person("bob@example.com", "DECLINED")};
  EXPECT_FALSE(policy.meeting_skip(m));  // a colleague's decline is no skip
  m.attendees[0].partstat = "DECLINED";
  auto s = policy.meeting_skip(m);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rule, "declined");
  EXPECT_EQ(s->why, "declined by alice@example.com");
  m.klass = "CONFIDENTIAL";
  s = policy.meeting_skip(m);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rule, "private");
  EXPECT_EQ(s->why, "marked private (CLASS: CONFIDENTIAL)");
}

// The declined rule on a stored occurrence's participants: an attendee at an
// owner address (+tags stripped as configured) who declined; never the
// organizer's PARTSTAT, never a colleague's.
TEST(Policy, AStoredOccurrenceIsDeclinedByTheOwnersAnswer) {
  const Policy policy(settings());  // owner Alice+Sales@Example.com
  std::vector<store::Participant> people = {
      {"alice@example.com", "", "organizer", "", "", "DECLINED"},
      {"bob@example.com", "", "attendee", "", "", "DECLINED"},
      {"jane@acme.com", "", "attendee", "", "", "ACCEPTED"},
  };
  EXPECT_FALSE(policy.declined(people));
  people.push_back({"alice@example.com", "", "attendee", "", "", "TENTATIVE"});
  EXPECT_FALSE(policy.declined(people));
  people.back().partstat = "DECLINED";
  const auto s = policy.declined(people);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rule, "declined");
  EXPECT_EQ(s->why, "declined by alice@example.com");
}
