// SPDX-License-Identifier: Apache-2.0
// Tests of header splitting and msg-id lists (parsers/mail/headers.hpp).
#include "parsers/mail/headers.hpp"
#include "parsers/text/text.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

using namespace crmcap::mail::detail;

TEST(HeadersSplit, FieldsInOrderAndBodyOffset) {
  const std::string raw =
      "From: Jane <jane@acme.com>\r\n"
      "To: bob@x.com\r\n"
      "Subject: Hello\r\n"
      "\r\n"
      "Body\r\n";
  const HeaderBlock b = split_header(raw);
  ASSERT_EQ(b.fields.size(), 3u);
  EXPECT_EQ(b.fields[0].name, "From");
  EXPECT_EQ(b.fields[0].value, "Jane <jane@acme.com>");
  EXPECT_EQ(b.fields[2].value, "Hello");
  EXPECT_EQ(raw.substr(b.body_offset), "Body\r\n");
  EXPECT_TRUE(b.problems.empty());
}

TEST(HeadersSplit, LfLineEndsAndFolding) {
  const std::string raw =
      "Subject: a long\n"
      "\tsubject  \n"
      "   continued\n"
      "X-Empty:\n"
      "X-Later:\n"
      "  value on the next line\n"
      "Name With Space : v\n"
      "Key   : v2\n"
      "\n"
      "body";
  const HeaderBlock b = split_header(raw);
  ASSERT_EQ(b.fields.size(), 4u);
  EXPECT_EQ(b.fields[0].value, "a long\tsubject   continued");
  EXPECT_EQ(b.fields[1].name, "X-Empty");
  EXPECT_EQ(b.fields[1].value, "");
  EXPECT_EQ(b.fields[2].value, "value on the next line");
  EXPECT_EQ(b.fields[3].name, "Key");
  EXPECT_EQ(b.fields[3].value, "v2");
  ASSERT_EQ(b.problems.size(), 1u);
  EXPECT_EQ(b.problems[0], "header line 7: bad field name");
  EXPECT_EQ(raw.substr(b.body_offset), "body");
}

TEST(HeadersSplit, MboxLineAndBadLines) {
  const std::string raw =
      "From jane@acme.com Mon Jan 15 10:20:30 2024\n"
      " orphan continuation\n"
      "no colon here\n"
      ": empty name\n"
      "Subject: s\n"
      "\n";
  const HeaderBlock b = split_header(raw);
  ASSERT_EQ(b.fields.size(), 1u);
  EXPECT_EQ(b.fields[0].name, "Subject");
  ASSERT_EQ(b.problems.size(), 3u);
  EXPECT_EQ(b.problems[0], "header line 2: continuation line without a field");
  EXPECT_EQ(b.problems[1], "header line 3: no colon");
  EXPECT_EQ(b.problems[2], "header line 4: bad field name");
  EXPECT_EQ(b.body_offset, raw.size());
}

TEST(HeadersSplit, NoBodyNoHeaderAndEdgeCases) {
  EXPECT_EQ(split_header("Subject: only").body_offset, 13u);
  EXPECT_EQ(split_header("Subject: only").fields.size(), 1u);
  const HeaderBlock empty = split_header("");
  EXPECT_TRUE(empty.fields.empty());
  EXPECT_EQ(empty.body_offset, 0u);
  const HeaderBlock body_only = split_header("\r\nbody");
  EXPECT_TRUE(body_only.fields.empty());
  EXPECT_EQ(body_only.body_offset, 2u);
  // Raw bytes are kept as they are; decoding is the reader's job.
  const HeaderBlock raw8 = split_header("Subject: caf\xE9\r\n\r\n");
  EXPECT_EQ(raw8.fields[0].value, "caf\xE9");
  // A field after a skipped line is not a continuation of the field before it.
  const HeaderBlock after_bad = split_header("A: 1\nbad\n  cont\nB: 2\n\n");
  ASSERT_EQ(after_bad.fields.size(), 2u);
  EXPECT_EQ(after_bad.fields[0].value, "1");
}

TEST(HeadersSplit, ProblemsAreCapped) {
  std::string raw;
  for (int i = 0; i < 1000; ++i) raw += "junk line\n";
  const HeaderBlock b = split_header(raw);
  EXPECT_EQ(b.problems.size(), 51u);
  EXPECT_EQ(b.problems.back(), "header: further problems not listed");
}

TEST(HeadersFind, CaseInsensitiveFirstAndAll) {
  const HeaderBlock b = split_header("To: a@x.com\r\nSUBJECT: s\r\nto: b@x.com\r\n\r\n");
  ASSERT_NE(find_field(b, "subject"), nullptr);
  EXPECT_EQ(find_field(b, "Subject")->value, "s");
  EXPECT_EQ(find_field(b, "cc"), nullptr);
  const auto to = find_fields(b, "TO");
  ASSERT_EQ(to.size(), 2u);
  EXPECT_EQ(to[0]->value, "a@x.com");
  EXPECT_EQ(to[1]->value, "b@x.com");
  EXPECT_TRUE(find_fields(b, "bcc").empty());
}

TEST(HeadersFind, NamesSharingAnIndexKey) {
  // X-Ab-Y and X-Cb-Y have one key (length, first, middle and last bytes):
  // the index holds them side by side, and a lookup still tells them apart.
  static_assert(field_name_key("X-Ab-Y") == field_name_key("x-cb-y"));
  const HeaderBlock b = split_header("X-Ab-Y: 1\r\nX-CB-Y: 2\r\nx-ab-y: 3\r\nFrom: f\r\n\r\n");
  ASSERT_EQ(b.index.size(), 4u);
  ASSERT_NE(find_field(b, "X-Cb-Y"), nullptr);
  EXPECT_EQ(find_field(b, "X-Cb-Y")->value, "2");
  EXPECT_EQ(find_field(b, "X-AB-Y")->value, "1");
  const auto ab = find_fields(b, "x-ab-y");
  ASSERT_EQ(ab.size(), 2u);
  EXPECT_EQ(ab[0]->value, "1");
  EXPECT_EQ(ab[1]->value, "3");
  EXPECT_EQ(find_field(b, "X-Zb-Y"), nullptr);
  // Names of 1 to 9 bytes take each of matches()' paths (bytes, 4-byte and
  // 8-byte words).
  const HeaderBlock c =
      split_header("A: 1\r\nCc: 2\r\nDATE: 3\r\nList-Id: 4\r\nReply-To: 5\r\nX-Mailer9: 6\r\n\r\n");
  EXPECT_EQ(find_field(c, "a")->value, "1");
  EXPECT_EQ(find_field(c, "CC")->value, "2");
  EXPECT_EQ(find_field(c, "date")->value, "3");
  EXPECT_EQ(find_field(c, "LIST-ID")->value, "4");
  EXPECT_EQ(find_field(c, "reply-to")->value, "5");
  EXPECT_EQ(find_field(c, "x-mailer9")->value, "6");
  // Same keys as fields of c, other names: the compare says no.
  static_assert(field_name_key("Reply-Xo") == field_name_key("Reply-To"));
  EXPECT_EQ(find_field(c, "Reply-Xo"), nullptr);
  static_assert(field_name_key("List-Xd") == field_name_key("List-Id"));
  EXPECT_EQ(find_field(c, "List-Xd"), nullptr);
  static_assert(field_name_key("X-Mbiler9") == field_name_key("X-Mailer9"));
  EXPECT_EQ(find_field(c, "X-Mbiler9"), nullptr);
}

TEST(HeadersMsgIds, BracketedLists) {
  EXPECT_EQ(parse_msg_ids("<a@b>"), (std::vector<std::string>{"a@b"}));
  EXPECT_EQ(parse_msg_ids(" <a@b>  <c@d>\t<e@f> "),
            (std::vector<std::string>{"a@b", "c@d", "e@f"}));
  EXPECT_EQ(parse_msg_ids("<a@b>,<c@d>"), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_EQ(parse_msg_ids("<a@b> (comment <x@y>) <c@d>"), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_EQ(parse_msg_ids("<a @ b>"), (std::vector<std::string>{"a@b"}));
  EXPECT_EQ(parse_msg_ids("<> <a@b>"), (std::vector<std::string>{"a@b"}));
  // The old In-Reply-To phrase form.
  EXPECT_EQ(parse_msg_ids("\"Jane <not@id>\" message of Mon <a@b>"),
            (std::vector<std::string>{"a@b"}));
}

TEST(HeadersMsgIds, MissingBrackets) {
  EXPECT_EQ(parse_msg_ids("a@b"), (std::vector<std::string>{"a@b"}));
  EXPECT_EQ(parse_msg_ids("  lonely-id  "), (std::vector<std::string>{"lonely-id"}));
  EXPECT_EQ(parse_msg_ids("a@b c@d junk"), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_EQ(parse_msg_ids("<a@b"), (std::vector<std::string>{"a@b"}));
  EXPECT_EQ(parse_msg_ids("<a@b <c@d>"), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_TRUE(parse_msg_ids("").empty());
  EXPECT_TRUE(parse_msg_ids("(only a comment)").empty());
}

TEST(HeadersRobustness, RandomInputNeverBreaks) {
  std::mt19937 rng(822);
  static const std::string alphabet = "ab:;<>@() \t\r\n\"\\From x\xFF\xC3";
  std::uniform_int_distribution<std::size_t> len(0, 120);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 20000; ++i) {
    std::string s(len(rng), ' ');
    for (char& c : s) c = alphabet[pick(rng)];
    const HeaderBlock b = split_header(s);
    ASSERT_LE(b.body_offset, s.size());
    for (const HeaderField& f : b.fields) {
      ASSERT_FALSE(f.name.empty());
      ASSERT_EQ(f.value.find('\n'), std::string::npos);
    }
    for (const std::string& id : parse_msg_ids(s)) {
      ASSERT_FALSE(id.empty());
      ASSERT_TRUE(crmcap::text::is_valid_utf8(id));
    }
  }
}

}  // namespace
