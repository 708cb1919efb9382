// SPDX-License-Identifier: Apache-2.0
// Tests of the address-list reader (parsers/mail/headers.hpp).
#include "parsers/mail/headers.hpp"
#include "parsers/text/text.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace {

using crmcap::mail::Address;
using crmcap::mail::detail::parse_address_list;

std::vector<Address> parse(std::string_view v) { return parse_address_list(v); }

Address a(std::string name, std::string address) { return {std::move(name), std::move(address)}; }

TEST(AddressList, PlainForms) {
  EXPECT_EQ(parse("jane@acme.com"), (std::vector{a("", "jane@acme.com")}));
  EXPECT_EQ(parse("Jane Doe <jane@acme.com>"), (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("<jane@acme.com>"), (std::vector{a("", "jane@acme.com")}));
  EXPECT_EQ(parse("  Jane   Doe   <  jane@acme.com  >  "),
            (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("a@x.com, B <b@y.com>,c@z.com"),
            (std::vector{a("", "a@x.com"), a("B", "b@y.com"), a("", "c@z.com")}));
  EXPECT_TRUE(parse("").empty());
  EXPECT_TRUE(parse(" , ,, ").empty());
}

TEST(AddressList, DomainIsLowercasedLocalPartKept) {
  EXPECT_EQ(parse("Jane.Doe@ACME.Com"), (std::vector{a("", "Jane.Doe@acme.com")}));
  EXPECT_EQ(parse("<x@[192.168.0.1]>"), (std::vector{a("", "x@[192.168.0.1]")}));
  EXPECT_EQ(parse("x@acme.com."), (std::vector{a("", "x@acme.com")}));
}

TEST(AddressList, QuotedDisplayNamesAndLocalParts) {
  EXPECT_EQ(parse("\"Doe, Jane\" <jane@acme.com>"), (std::vector{a("Doe, Jane", "jane@acme.com")}));
  EXPECT_EQ(parse("\"Jane \\\"JD\\\" Doe\" <jane@acme.com>"),
            (std::vector{a("Jane \"JD\" Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("\"jane doe\"@acme.com"), (std::vector{a("", "jane doe@acme.com")}));
  EXPECT_EQ(parse("\"jane@acme.com\" <jane@acme.com>"),
            (std::vector{a("jane@acme.com", "jane@acme.com")}));
  // Outlook's single quotes are not part of the name.
  EXPECT_EQ(parse("'Jane Doe' <jane@acme.com>"), (std::vector{a("Jane Doe", "jane@acme.com")}));
  // obs-phrase: a dot in an unquoted name.
  EXPECT_EQ(parse("John Q. Public <jqp@x.org>"), (std::vector{a("John Q. Public", "jqp@x.org")}));
}

TEST(AddressList, Comments) {
  EXPECT_EQ(parse("jane@acme.com (Jane Doe)"), (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("(Jane Doe) jane@acme.com"), (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("Jane (the boss) Doe <jane@acme.com> (work)"),
            (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("jane@acme.com (Jane (nested) Doe), bob@x.com"),
            (std::vector{a("Jane (nested) Doe", "jane@acme.com"), a("", "bob@x.com")}));
  EXPECT_EQ(parse("<jane(c)@acme.com>"), (std::vector{a("", "jane@acme.com")}));
}

TEST(AddressList, Groups) {
  EXPECT_EQ(parse("Team: a@x.com, B <b@x.com>;, c@y.com"),
            (std::vector{a("", "a@x.com"), a("B", "b@x.com"), a("", "c@y.com")}));
  EXPECT_TRUE(parse("undisclosed-recipients:;").empty());
  EXPECT_EQ(parse("A: a@x.com; B: b@x.com;"), (std::vector{a("", "a@x.com"), a("", "b@x.com")}));
  EXPECT_EQ(parse("Unclosed: a@x.com"), (std::vector{a("", "a@x.com")}));
}

TEST(AddressList, EncodedWordsInNames) {
  EXPECT_EQ(parse("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <jm@x.de>"),
            (std::vector{a("J\xC3\xB6rg M\xC3\xBC"
                           "ller",
                           "jm@x.de")}));
  EXPECT_EQ(parse("=?utf-8?b?SsO2cmc=?= =?utf-8?b?IE3DvGxsZXI=?= <jm@x.de>"),
            (std::vector{a("J\xC3\xB6rg M\xC3\xBC"
                           "ller",
                           "jm@x.de")}));
  // Inside quotes (not allowed, but common).
  EXPECT_EQ(parse("\"=?iso-8859-1?q?Ren=E9?=\" <r@x.fr>"),
            (std::vector{a("Ren\xC3\xA9", "r@x.fr")}));
  // A comma or dot inside a broken Q word does not split the name.
  EXPECT_EQ(parse("=?utf-8?q?Doe,_J.?= <j@x.com>"), (std::vector{a("Doe, J.", "j@x.com")}));
  // Raw UTF-8 and raw Latin-1 (repaired).
  EXPECT_EQ(parse("J\xC3\xB6rg <j@x.de>"), (std::vector{a("J\xC3\xB6rg", "j@x.de")}));
  EXPECT_EQ(parse("J\xF6rg <j@x.de>"), (std::vector{a("J\xEF\xBF\xBDrg", "j@x.de")}));
}

TEST(AddressList, FallbackCharsetForRawNames) {
  EXPECT_EQ(parse_address_list("J\xF6rg <j@x.de>", nullptr, "iso-8859-1"),
            (std::vector{a("J\xC3\xB6rg", "j@x.de")}));
  EXPECT_EQ(parse_address_list("J\xC3\xB6rg <j@x.de>", nullptr, "iso-8859-1"),
            (std::vector{a("J\xC3\xB6rg", "j@x.de")}));
}

TEST(AddressList, ProblemsAreCappedPerList) {
  std::vector<std::string> problems(5, "earlier");
  std::string junk;
  for (int i = 0; i < 100; ++i) junk += "junk, ";
  parse_address_list(junk, &problems);
  EXPECT_EQ(problems.size(), 25u);
}

TEST(AddressList, ObsoleteRoutesAndSchemes) {
  EXPECT_EQ(parse("<@relay1.org,@relay2.org:jane@acme.com>"),
            (std::vector{a("", "jane@acme.com")}));
  EXPECT_EQ(parse("Jane <@relay.org:jane@acme.com>, b@x.com"),
            (std::vector{a("Jane", "jane@acme.com"), a("", "b@x.com")}));
  EXPECT_EQ(parse("Jane <mailto:jane@acme.com>"), (std::vector{a("Jane", "jane@acme.com")}));
  EXPECT_EQ(parse("jane . doe @ acme . com"), (std::vector{a("", "jane.doe@acme.com")}));
}

TEST(AddressList, MissingBracketsAndCommas) {
  EXPECT_EQ(parse("Jane Doe jane@acme.com"), (std::vector{a("Jane Doe", "jane@acme.com")}));
  EXPECT_EQ(parse("Jane <jane@acme.com"), (std::vector{a("Jane", "jane@acme.com")}));
  EXPECT_EQ(parse("Jane <jane@acme.com, bob@x.com"),
            (std::vector{a("Jane", "jane@acme.com"), a("", "bob@x.com")}));
  EXPECT_EQ(parse("a@x.com b@y.com"), (std::vector{a("", "a@x.com"), a("", "b@y.com")}));
  EXPECT_EQ(parse("A <a@x.com> B <b@y.com>"), (std::vector{a("A", "a@x.com"), a("B", "b@y.com")}));
  EXPECT_EQ(parse("jane@acme.com <jane@acme.com>"),
            (std::vector{a("jane@acme.com", "jane@acme.com")}));
  EXPECT_EQ(parse("a@x.com>"), (std::vector{a("", "a@x.com")}));
}

TEST(AddressList, JunkIsSkippedAndReported) {
  std::vector<std::string> problems;
  const auto list = parse_address_list(
      "Jane <jane@acme.com> trailing junk, nobody, <>, <postmaster>, @nolocal.com, x@", &problems);
  EXPECT_EQ(list, (std::vector{a("Jane", "jane@acme.com")}));
  ASSERT_EQ(problems.size(), 6u);
  EXPECT_EQ(problems[0], "address: no address in 'trailing junk'");
  EXPECT_EQ(problems[1], "address: no address in 'nobody'");
  EXPECT_EQ(problems[2], "address: no local part in '<>'");
  EXPECT_EQ(problems[3], "address: no domain in '<postmaster>'");
  EXPECT_EQ(problems[4], "address: no local part in '@nolocal.com'");
  EXPECT_EQ(problems[5], "address: no domain in 'x@'");
  // Without a problems vector nothing is reported and nothing breaks.
  EXPECT_TRUE(parse("nobody").empty());
}

TEST(AddressList, UnterminatedQuotesAndComments) {
  EXPECT_TRUE(parse("\"Jane <jane@acme.com>").empty());  // all of it is a quoted name
  EXPECT_EQ(parse("jane@acme.com (Jane"), (std::vector{a("Jane", "jane@acme.com")}));
  EXPECT_TRUE(parse("\"\\").empty());
  EXPECT_TRUE(parse("(\\").empty());
  EXPECT_EQ(parse("<x@[1.2.3.4"), (std::vector{a("", "x@[1.2.3.4")}));
}

TEST(AddressList, PathologicalInputsStayLinear) {
  // Many RFC 2047 openers with no closer: once quadratic (two seconds at this size).
  std::string s;
  while (s.size() < (1u << 17)) s += "=?a?q?x,";
  std::vector<std::string> problems;
  EXPECT_TRUE(parse_address_list(s, &problems).empty());
  EXPECT_EQ(problems.size(), 20u);
}

TEST(AddressList, RandomInputNeverBreaks) {
  std::mt19937 rng(5322);
  static const std::string alphabet = "<>@,;:.()\"\\[] \tabcxyz=?QB_\xC3\xA9\xFF";
  std::uniform_int_distribution<std::size_t> len(0, 80);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 20000; ++i) {
    std::string s(len(rng), ' ');
    for (char& c : s) c = alphabet[pick(rng)];
    std::vector<std::string> problems;
    for (const Address& ad : parse_address_list(s, &problems)) {
      ASSERT_TRUE(crmcap::text::is_valid_utf8(ad.name)) << s;
      ASSERT_TRUE(crmcap::text::is_valid_utf8(ad.address)) << s;
      ASSERT_NE(ad.address.find('@'), std::string::npos) << s;
    }
    for (const std::string& p : problems) ASSERT_TRUE(crmcap::text::is_valid_utf8(p));
  }
}

}  // namespace
