// SPDX-License-Identifier: Apache-2.0
// The CRM directory from CSV into a real SQLite store: columns, normalization,
// validation with "file:line: what", and all-or-nothing writes.
#include "daemon/capture/directory_import.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>

using namespace crmcap;
using capture::import_directory_csv;
using capture::import_directory_csv_text;
using capture::ImportKind;

namespace {

const char* k_companies =
    "id,name,domains\n"
    "CO-1,Acme Corp,acme.com; ACME.co.uk \n"
    "CO-2,Globex,@globex.com\n"
    "CO-3,\"Initech, Inc.\",initech.com\n";
const char* k_contacts =
    " Name ,ID,Emails,company_id,title,phone,ignored\n"
    "Jane Doe,C-1, Jane@Acme.com ;jd@acme.co.uk;JANE@acme.com,CO-1,CTO,+1 555,x\n"
    "Hank Scorpio,C-2,hank@globex.com,CO-2,,,\n"
    "Peter Gibbons,C-3,peter@initech.com,,,,\n";
const char* k_opps =
    "id,name,company_id,stage,amount,close_date,status,contact_ids\n"
    "O-1,Acme renewal,CO-1,Proposal,12000.50,2026-12-31,Open,C-1\n"
    "O-2,Acme old deal,CO-1,Closed,5000,2024-02-29,won,\n"
    "O-3,Globex pilot,CO-2,Qualify,,,open,C-2; C-1\n";

struct Loaded {
  test::TempDir dir;
  std::unique_ptr<store::Store> store;
  Loaded() {
    store = store::Store::open((dir.path() / "capture.db").string()).value();
    EXPECT_EQ(import_directory_csv_text(*store, ImportKind::companies, k_companies, "co.csv", false)
                  .value(),
              3u);
    EXPECT_EQ(
        import_directory_csv_text(*store, ImportKind::contacts, k_contacts, "c.csv", false).value(),
        3u);
    EXPECT_EQ(import_directory_csv_text(*store, ImportKind::opportunities, k_opps, "o.csv", false)
                  .value(),
              3u);
  }
};

}  // namespace

TEST(Import, KindFromString) {
  EXPECT_EQ(capture::import_kind_from_string("companies"), ImportKind::companies);
  EXPECT_EQ(capture::import_kind_from_string("contacts"), ImportKind::contacts);
  EXPECT_EQ(capture::import_kind_from_string("opportunities"), ImportKind::opportunities);
  EXPECT_FALSE(capture::import_kind_from_string("Contacts"));
}

TEST(Import, NormalizesAddressesDomainsAndHeaders) {
  Loaded l;
  // " Name ", "ID" and "Emails" name their columns; " Jane@Acme.com " and
  // "JANE@acme.com" are one address, kept lowercase; "@globex.com" is a domain.
  auto contact = [&](std::string_view address) {
    const auto c = l.store->contact_by_email(address, store::PlusTags::distinct).value();
    return c ? c->id + " " + c->name + " " + c->company_id : std::string("none");
  };
  EXPECT_EQ(contact("jane@acme.com"), "C-1 Jane Doe CO-1");
  EXPECT_EQ(contact("jd@acme.co.uk"), "C-1 Jane Doe CO-1");
  EXPECT_EQ(contact("Jane@Acme.com"), "none");  // lookups take what the import wrote
  auto company = [&](std::string_view domain) {
    const auto v = l.store->companies_by_domain(domain).value();
    return v.size() == 1 ? v[0].id : std::string("none");
  };
  EXPECT_EQ(company("acme.co.uk"), "CO-1");
  EXPECT_EQ(company("globex.com"), "CO-2");
  EXPECT_EQ(l.store->company("CO-3").value()->name, "Initech, Inc.");
  auto o = l.store->opportunity("O-1").value();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, store::OpportunityStatus::open);
  EXPECT_DOUBLE_EQ(o->amount.value(), 12000.50);
  EXPECT_EQ(o->close_date, "2026-12-31");
  EXPECT_FALSE(l.store->opportunity("O-3").value()->amount);
  EXPECT_EQ(l.store->opportunity("O-3").value()->contacts.size(), 2u);
  const auto st = l.store->stats().value();
  EXPECT_EQ(st.company_domains, 4);
  EXPECT_EQ(st.contact_emails, 4);  // JANE@acme.com is Jane@Acme.com: kept once
  EXPECT_EQ(st.open_opportunities, 2);
}

// What update in place and replace do to the rows is the store's (tests/store);
// here, that the import asks for them.
TEST(Import, ReimportUpdatesInPlaceAndReplaceRemovesAbsentRows) {
  Loaded l;
  ASSERT_TRUE(import_directory_csv_text(*l.store, ImportKind::companies, "id,name\nCO-1,Acme Inc\n",
                                        "co.csv", false));
  EXPECT_EQ(l.store->company("CO-1").value()->name, "Acme Inc");
  EXPECT_EQ(l.store->stats().value().companies, 3);
  ASSERT_TRUE(import_directory_csv_text(*l.store, ImportKind::opportunities,
                                        "id,name,status\nO-2,Acme old deal,lost\n", "o.csv", true));
  EXPECT_EQ(l.store->opportunity("O-2").value()->status, store::OpportunityStatus::lost);
  EXPECT_FALSE(l.store->opportunity("O-1").value());
  EXPECT_EQ(l.store->stats().value().opportunities, 1);
}

TEST(Import, ReadsAFileAndNamesAMissingOne) {
  Loaded l;
  const auto path = l.dir.path() / "more.csv";
  std::ofstream(path) << "id,name\nCO-7,Hooli\n";
  EXPECT_EQ(import_directory_csv(*l.store, ImportKind::companies, path.string(), false).value(),
            1u);
  EXPECT_TRUE(l.store->company("CO-7").value());
  auto r = import_directory_csv(*l.store, ImportKind::companies, "/nonexistent/x.csv", false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "/nonexistent/x.csv: cannot read the file");
}

struct BadCsvCase {
  ImportKind kind;
  const char* csv;
  const char* expected;  // exact "file:line: message" prefix
};

class ImportRefusal : public ::testing::TestWithParam<BadCsvCase> {};

TEST_P(ImportRefusal, RefusesWholeFileWithFileAndLineAndChangesNothing) {
  Loaded l;
  const auto before = l.store->stats().value();
  auto r = import_directory_csv_text(*l.store, GetParam().kind, GetParam().csv, "in.csv", false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(store::Errc::bad_input));
  EXPECT_EQ(r.error().message.rfind(GetParam().expected, 0), 0u) << r.error().message;
  const auto after = l.store->stats().value();
  EXPECT_EQ(before.companies, after.companies);
  EXPECT_EQ(before.contacts, after.contacts);
  EXPECT_EQ(before.contact_emails, after.contact_emails);
  EXPECT_EQ(before.opportunities, after.opportunities);
  EXPECT_EQ(before.opportunity_contacts, after.opportunity_contacts);
  // The good first row of each bad file was not written either.
  EXPECT_FALSE(l.store->contact_by_email("new@acme.com", store::PlusTags::distinct).value());
  EXPECT_FALSE(l.store->company("CO-9").value());
  EXPECT_FALSE(l.store->opportunity("O-9").value());
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ImportRefusal,
    ::testing::Values(
        BadCsvCase{ImportKind::companies, "id,domains\nCO-9,x.com\n",
                   "in.csv:1: missing required column 'name'"},
        BadCsvCase{ImportKind::contacts, "id,name\nC-9,X\n",
                   "in.csv:1: missing required column 'emails'"},
        BadCsvCase{ImportKind::companies, "id,name,domains\nCO-9,A,a.com\nCO-8,\"Broken,b.com\n",
                   "in.csv:3: unterminated quoted field"},
        BadCsvCase{ImportKind::companies, "id,name,domains\nCO-9,A,a.com\nCO-8,Bro\"ken,b.com\n",
                   "in.csv:3: quote inside an unquoted field"},
        BadCsvCase{ImportKind::companies, "id,name,domains\nCO-9,A,a.com\nCO-8,\"B\"x,b.com\n",
                   "in.csv:3: text after a closing quote"},
        BadCsvCase{ImportKind::companies, "id,name,domains\nCO-9,A,a.com\nCO-8,B\n",
                   "in.csv:3: 2 fields, but the header has 3"},
        BadCsvCase{ImportKind::contacts,
                   "id,name,emails,company_id\nC-9,N,new@acme.com,CO-1\nC-8,M,m@x.com,CO-404\n",
                   "in.csv:3: unknown company id 'CO-404'"},
        BadCsvCase{ImportKind::contacts,
                   "id,name,emails\nC-9,N,new@acme.com\nC-8,M,not-an-address\n",
                   "in.csv:3: bad address 'not-an-address'"},
        BadCsvCase{ImportKind::contacts, "id,name,emails\nC-9,N,new@acme.com\nC-9,M,m@x.com\n",
                   "in.csv:3: duplicate id 'C-9'"},
        BadCsvCase{ImportKind::contacts, "id,name,emails\nC-9,N,new@acme.com\n,M,m@x.com\n",
                   "in.csv:3: empty id"},
        BadCsvCase{ImportKind::opportunities,
                   "id,name,status,company_id\nO-9,A,open,CO-1\nO-8,B,pending,CO-1\n",
                   "in.csv:3: bad status 'pending'"},
        BadCsvCase{ImportKind::opportunities,
                   "id,name,status,close_date\nO-9,A,open,2026-01-01\nO-8,B,open,2026-02-30\n",
                   "in.csv:3: bad close_date '2026-02-30'"},
        BadCsvCase{ImportKind::opportunities,
                   "id,name,status,amount\nO-9,A,open,10\nO-8,B,open,12k\n",
                   "in.csv:3: bad amount '12k'"},
        BadCsvCase{ImportKind::opportunities,
                   "id,name,status,contact_ids\nO-9,A,open,C-1\nO-8,B,open,C-1;C-77\n",
                   "in.csv:3: unknown contact id 'C-77'"},
        BadCsvCase{ImportKind::companies, "id,name,domains\nCO-9,A,a.com\nCO-8,B,bad domain\n",
                   "in.csv:3: bad domain 'bad domain'"},
        BadCsvCase{ImportKind::companies, "id,name\nCO-9,A\nCO-8,\xff\xfe\n",
                   "in.csv:3: not valid UTF-8"},
        BadCsvCase{ImportKind::companies, "", "in.csv:1: empty file"}));
