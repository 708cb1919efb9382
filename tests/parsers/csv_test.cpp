// SPDX-License-Identifier: Apache-2.0
#include "parsers/csv/csv.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using crmcap::csv::Errc;
using crmcap::csv::parse;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::filesystem::path corpus = std::filesystem::path(CRMCAP_SOURCE_DIR) / "tests/corpora/csv";

}  // namespace

TEST(Csv, QuotedFieldsWithLineBreaksKeepLineNumbers) {
  auto t = parse("a,b\r\n\"x\ny\",\"say \"\"hi\"\"\"\r\n\r\nz,w\r\n", "f.csv").value();
  EXPECT_EQ(t.header, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.records[0].fields[0], "x\ny");
  EXPECT_EQ(t.records[0].fields[1], "say \"hi\"");
  EXPECT_EQ(t.records[0].line, 2u);
  EXPECT_EQ(t.records[1].line, 5u);
}

TEST(Csv, HeaderAsWrittenWithoutTheBom) {
  auto t = parse("\xEF\xBB\xBF Id ,Name\n1,2\n", "f.csv").value();
  EXPECT_EQ(t.header, (std::vector<std::string>{" Id ", "Name"}));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].fields, (std::vector<std::string>{"1", "2"}));
}

TEST(Csv, LineEndsAndEmptyFields) {
  // A lone CR ends a record too; the last record needs no line end.
  auto t = parse("a,b,c\r1,,\"\"\n2,x,y", "f.csv").value();
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.records[0].fields, (std::vector<std::string>{"1", "", ""}));
  EXPECT_EQ(t.records[0].line, 2u);
  EXPECT_EQ(t.records[1].fields, (std::vector<std::string>{"2", "x", "y"}));
  EXPECT_EQ(t.records[1].line, 3u);
}

TEST(Csv, BlankLinesCarryNoRecord) {
  auto t = parse("\n  \nid\n\n1\n \t\n2\n", "f.csv").value();
  EXPECT_EQ(t.header, (std::vector<std::string>{"id"}));
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.records[0].line, 5u);
  EXPECT_EQ(t.records[1].line, 7u);
}

struct BadCsv {
  const char* csv;
  Errc code;
  const char* expected;  // the whole message
};

class CsvRefusal : public ::testing::TestWithParam<BadCsv> {};

TEST_P(CsvRefusal, NamesFileAndLine) {
  auto r = parse(GetParam().csv, "in.csv");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(GetParam().code));
  EXPECT_EQ(r.error().message, GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, CsvRefusal,
    ::testing::Values(
        BadCsv{"id,name\nCO-9,A\nCO-8,\"Broken\n", Errc::bad_quoting,
               "in.csv:3: unterminated quoted field"},
        BadCsv{"id,name\nCO-9,A\nCO-8,Bro\"ken\n", Errc::bad_quoting,
               "in.csv:3: quote inside an unquoted field (quote the whole field)"},
        BadCsv{"id,name\nCO-9,\"A\nB\"\nCO-8,\"B\"x\n", Errc::bad_quoting,
               "in.csv:4: text after a closing quote (a quote inside a field must be \"\")"},
        BadCsv{"id,name,domains\nCO-9,A,a.com\nCO-8,B\n", Errc::field_count,
               "in.csv:3: 2 fields, but the header has 3"},
        BadCsv{"id,name\nCO-9,A\nCO-8,\xff\xfe\n", Errc::not_utf8, "in.csv:3: not valid UTF-8"},
        // Well-formed UTF-8 only: an encoded surrogate (U+D800) and an overlong '/'.
        BadCsv{"id,name\nCO-8,\xED\xA0\x80\n", Errc::not_utf8, "in.csv:2: not valid UTF-8"},
        BadCsv{"id,name\nCO-8,\xE0\x80\xAF\n", Errc::not_utf8, "in.csv:2: not valid UTF-8"},
        BadCsv{"", Errc::empty, "in.csv:1: empty file: a header row is required"},
        BadCsv{"\xEF\xBB\xBF\r\n\n", Errc::empty,
               "in.csv:1: empty file: a header row is required"}));

TEST(Csv, Corpus) {
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    if (e.path().extension() != ".csv") continue;
    ++files;
    auto t = parse(read_file(e.path()), e.path().filename().string());
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_FALSE(t->records.empty()) << e.path();
  }
  EXPECT_GE(files, 2u);
  auto contacts = parse(read_file(corpus / "contacts.csv"), "contacts.csv").value();
  EXPECT_EQ(contacts.header.front(), "name");
  ASSERT_EQ(contacts.records.size(), 2u);
  EXPECT_EQ(contacts.records[0].fields[5], "said \"hi\"\nat the fair");
  EXPECT_EQ(contacts.records[1].line, 5u);
  EXPECT_EQ(contacts.records[1].fields[0], "Zo\xC3\xAB Kr\xC3\xA4mer");
}
