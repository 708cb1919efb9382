// SPDX-License-Identifier: Apache-2.0
// Unit tests of crmcap::mail::parse() and its body and snippet helpers. The
// golden corpus is in corpus_test.cpp.
#include "parsers/mail/body.hpp"
#include "parsers/mail/mail.hpp"
#include "parsers/mail/snippet.hpp"
#include "parsers/text/text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using crmcap::mail::Errc;
using crmcap::mail::parse;
using crmcap::mail::ParseOptions;
namespace detail = crmcap::mail::detail;

const std::string simple =
    "From: Jane Doe <jane@acme.com>\r\n"
    "To: Bob Smith <bob.smith@globex.com>\r\n"
    "Subject: Hello\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <hello-1@acme.com>\r\n"
    "\r\n"
    "Hi Bob, see you Thursday.\r\n";

TEST(MailParse, Simple) {
  auto r = parse(simple);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->subject, "Hello");
  EXPECT_EQ(r->message_id, "hello-1@acme.com");
  EXPECT_FALSE(r->message_id_synthetic);
  EXPECT_EQ(r->date, 1795428000);
  EXPECT_EQ(r->snippet, "Hi Bob, see you Thursday.");
  EXPECT_TRUE(r->body_error.empty());
}

TEST(MailParse, Errors) {
  auto empty = parse("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, crmcap::mail::make_error_code(Errc::empty_input));

  ParseOptions small;
  small.max_bytes = 10;
  auto big = parse(simple, small);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::too_large);
  EXPECT_NE(big.error().message.find("limit 10"), std::string::npos);

  auto none = parse("no colon on this line\n\nbody\n");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::no_header);
  EXPECT_STREQ(none.error().code.category().name(), "crmcap.mail.parse");
  EXPECT_FALSE(none.error().code.message().empty());
}

TEST(MailParse, ValueThrowsSystemError) {
  auto none = parse("");
  EXPECT_THROW((void)none.value(), std::system_error);
}

TEST(MailParse, DateFallback) {
  ParseOptions o;
  o.received_at = 1700000000;
  auto r = parse("From: a@b.example\nDate: someday\n\nx\n", o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->date_fallback);
  EXPECT_EQ(r->date, 1700000000);
  EXPECT_EQ(r->date_raw, "someday");
  auto missing = parse("From: a@b.example\n\nx\n", o);
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->date_fallback);
  EXPECT_NE(missing->warnings.at(0).find("date: missing"), std::string::npos);
}

TEST(MailParse, WarningsStayValidUtf8) {
  // Found by fuzz_mail: a Date of invalid bytes, clipped for the warning.
  std::string date(120, '\xff');
  auto r = parse("From: a@b.example\nDate: Thu, 26 Nov " + date + "\n\nx\n");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->date_fallback);
  for (const auto& w : r->warnings) EXPECT_TRUE(crmcap::text::is_valid_utf8(w)) << w;
  EXPECT_TRUE(crmcap::text::is_valid_utf8(r->date_raw));
}

TEST(MailParse, SyntheticMessageIdIsStable) {
  const std::string base =
      "From: Bob <bob@globex.com>\nTo: jane@acme.com\nSubject: Q\n"
      "Date: Mon, 23 Nov 2026 10:00:00 +0000\n\nbody\n";
  auto a = parse("Received: from a by b; Mon, 23 Nov 2026 10:00:01 +0000\n" + base);
  auto b = parse("Received: from c by d; Mon, 23 Nov 2026 10:00:09 +0000\n" + base);
  auto c = parse(base + "more body\n");
  std::string other = base;
  other.replace(other.find("Subject: Q"), 10, "Subject: R");
  auto d = parse(other);
  ASSERT_TRUE(a && b && c && d);
  EXPECT_TRUE(a->message_id_synthetic);
  EXPECT_EQ(a->message_id, b->message_id);  // INBOX and Sent copies agree
  EXPECT_EQ(a->message_id, c->message_id);  // the body does not enter when From/Date exist
  EXPECT_NE(a->message_id, d->message_id);
  EXPECT_TRUE(a->message_id.starts_with("syn-"));
  EXPECT_TRUE(a->message_id.ends_with("@crm-capture.invalid"));
  EXPECT_EQ(a->message_id.size(), 4 + 32 + 20);
}

TEST(MailParse, HeadersAreNeverReadThroughMimetic) {
  // A malformed address list that makes mimetic's typed accessors throw (and then
  // use freed memory): ours reads what it can.
  auto r = parse(
      "From: \"unterminated <jane@acme.com>, ,,, <>\nTo: <<<@>>>, bob@globex.com\n"
      "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhi\n--x--\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->snippet, "hi");
}

std::string nested_rfc822(int levels) {
  std::string m = "From: a@b.example\nContent-Type: message/rfc822\n\n";
  for (int i = 0; i < levels; ++i) m += "Content-Type: message/rfc822\n\n";
  return m + "Subject: inner\n\ntext\n";
}

std::string nested_multipart(int levels) {
  std::string m = "From: a@b.example\nContent-Type: multipart/mixed; boundary=b0\n\n";
  for (int i = 1; i <= levels; ++i) {
    m += "--b" + std::to_string(i - 1) + "\nContent-Type: multipart/mixed; boundary=b" +
         std::to_string(i) + "\n\n";
  }
  m += "--b" + std::to_string(levels) + "\nContent-Type: text/plain\n\ndeep text\n";
  return m;
}

TEST(MailParse, NestingIsBounded) {
  auto shallow = parse(nested_multipart(10));
  ASSERT_TRUE(shallow);
  EXPECT_EQ(shallow->text, "deep text\n");
  EXPECT_TRUE(shallow->body_error.empty());

  auto deep = parse(nested_multipart(40));  // read by mimetic, cut by our walk
  ASSERT_TRUE(deep);
  EXPECT_TRUE(deep->body_error.empty());
  EXPECT_TRUE(deep->text.empty());
  bool warned = false;
  for (const auto& w : deep->warnings) warned |= w.find("nesting deeper") != std::string::npos;
  EXPECT_TRUE(warned);

  // Far past what mimetic's recursion could survive: refused before it runs.
  for (const std::string& m : {nested_multipart(5000), nested_rfc822(200000)}) {
    auto r = parse(m);
    ASSERT_TRUE(r);
    EXPECT_NE(r->body_error.find("too large"), std::string::npos) << r->body_error;
    EXPECT_EQ(r->from.size(), 1u);
  }
}

TEST(MailParse, PartCountIsBounded) {
  std::string m = "From: a@b.example\nContent-Type: multipart/mixed; boundary=p\n\n";
  for (int i = 0; i < 1500; ++i) m += "--p\nContent-Type: text/plain\n\nx\n";
  auto many = parse(m);
  ASSERT_TRUE(many);
  bool warned = false;
  for (const auto& w : many->warnings) warned |= w.find("parts; the rest") != std::string::npos;
  EXPECT_TRUE(warned);

  std::string flood = "From: a@b.example\nContent-Type: multipart/mixed; boundary=\"\"\n\n";
  for (int i = 0; i < 40000; ++i) flood += "--\n";
  auto f = parse(flood);
  ASSERT_TRUE(f);
  EXPECT_NE(f->body_error.find("too large"), std::string::npos);
}

TEST(MailParse, MimeticLengthErrorShapeIsPreempted) {
  // The shape that makes mimetic 0.9.8 compute a negative length: a part body of
  // one CR preceded by LF right before the boundary.
  const std::string m =
      "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\n\r--b--\r\n";
  EXPECT_NE(detail::mimetic_load_error(m).find("length_error"), std::string::npos);
  // mimetic itself, default-constructed then load()ed as read_body does: it
  // throws every time, and under LeakSanitizer nothing leaks.
  for (int i = 0; i < 200; ++i) EXPECT_FALSE(detail::mimetic_load_error(m).empty());
  // Many of them in a row: run under LeakSanitizer this shows no leak.
  for (int i = 0; i < 200; ++i) {
    auto r = parse(m);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->body_error.empty()) << r->body_error;
    EXPECT_EQ(r->text, "first\n");
  }
}

TEST(MailParse, AlternativeInsideMixedWithInlineImage) {
  auto r = parse(
      "From: a@b.example\nContent-Type: multipart/related; boundary=r\n\n"
      "--r\nContent-Type: multipart/alternative; boundary=a\n\n"
      "--a\nContent-Type: text/html\n\n<p>Hello&nbsp;<b>there</b></p>\n"
      "--a--\n"
      "--r\nContent-Type: image/png; name=logo.png\nContent-ID: <logo>\n"
      "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--r--\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->snippet, "Hello there");
  ASSERT_EQ(r->attachments.size(), 1u);
  EXPECT_EQ(r->attachments[0].filename, "logo.png");
  EXPECT_EQ(r->attachments[0].size, 8u);
}

TEST(MailParse, TextHasLfLineEnds) {
  // "line one\r\nline two\r\n" in base64, in a single-part CRLF message.
  auto r = parse(
      "From: a@b.example\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n"
      "\r\nbGluZSBvbmUNCmxpbmUgdHdvDQo=\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->text, "line one\nline two\n");
}

TEST(MailParse, SnippetLengthIsInCodePoints) {
  std::string body;
  for (int i = 0; i < 100; ++i) body += "\xC3\xA9t\xC3\xA9 ";
  ParseOptions o;
  o.snippet_chars = 20;
  auto r = parse("From: a@b.example\nContent-Type: text/plain; charset=utf-8\n\n" + body, o);
  ASSERT_TRUE(r);
  std::size_t cps = 0;
  for (unsigned char c : r->snippet) cps += (c & 0xC0) != 0x80;
  EXPECT_LE(cps, 20u);
  EXPECT_GT(cps, 10u);
}

std::string b64(std::string_view in, bool* junk = nullptr,
                crmcap::text::Base64Padding padding = crmcap::text::Base64Padding::restart) {
  std::string out;
  crmcap::text::decode_base64(in, out, padding, junk);
  return out;
}

TEST(Base64, Lenient) {
  bool junk = false;
  EXPECT_EQ(b64("SGVs\r\nbG8=", &junk), "Hello");
  EXPECT_FALSE(junk);
  EXPECT_EQ(b64("SGV*sbG8", &junk), "Hello");
  EXPECT_TRUE(junk);
  EXPECT_EQ(b64("SGk=SGk="), "HiHi");  // concatenated encodings
  EXPECT_EQ(b64("SGk"), "Hi");         // missing padding
  EXPECT_EQ(b64("SGk=SGk=", nullptr, crmcap::text::Base64Padding::stop), "Hi");  // RFC 2047
  EXPECT_EQ(b64("-_8"), "\xFB\xFF");                                             // URL-safe
  std::string out = "x";
  crmcap::text::decode_base64("SGk=", out);
  EXPECT_EQ(out, "xHi");  // appends
  EXPECT_EQ(crmcap::text::base64_decoded_size("SGVs\r\nbG8="), 5u);
  EXPECT_EQ(crmcap::text::base64_decoded_size("SGk=SGk="), 4u);
}

TEST(QuotedPrintable, Lenient) {
  EXPECT_EQ(detail::decode_quoted_printable("caf=C3=A9 =\r\nau lait"), "caf\xC3\xA9 au lait");
  EXPECT_EQ(detail::decode_quoted_printable("a=\nb"), "ab");
  EXPECT_EQ(detail::decode_quoted_printable("100% =ZZ ok="), "100% =ZZ ok");
  EXPECT_EQ(detail::decode_quoted_printable("trailing   \nnext"), "trailing\nnext");
  EXPECT_EQ(detail::decode_quoted_printable("x=4"), "x=4");
  for (std::string_view s : {"caf=C3=A9 =\r\nau lait", "100% =ZZ ok=", "trailing   \nnext"}) {
    EXPECT_EQ(detail::quoted_printable_decoded_size(s), detail::decode_quoted_printable(s).size());
  }
}

TEST(Newlines, Normalized) {
  EXPECT_EQ(detail::normalize_newlines("a\r\nb\rc\n\r\n"), "a\nb\nc\n\n");
}

TEST(MimeBounds, CountsCandidates) {
  const auto b = detail::mime_bounds("Content-Type: Multipart/mixed\n--x\n---\n----\nrfc822");
  EXPECT_EQ(b.containers, 2u);
  EXPECT_EQ(b.entities, 1u + 4u + 1u);  // "--", "--"(of ---), "--","--"(of ----), rfc822
}

TEST(MimeBounds, AnyCaseRightAfterDashesAndNothingCutOffAtTheEnd) {
  const auto b = detail::mime_bounds("--MULTIPART--Message/RFC822 mUlTiPaRt\n-rfc822-multipar");
  EXPECT_EQ(b.containers, 2u + 2u);     // two multipart, two rfc822; "multipar" is cut off
  EXPECT_EQ(b.entities, 1u + 2u + 2u);  // two "--" pairs, two rfc822
  EXPECT_EQ(detail::mime_bounds("").entities, 1u);
}

TEST(Ical, PropertyScan) {
  const std::string ics =
      "BEGIN:VCALENDAR\r\nMETHOD:request\r\nUID:not-this-one\r\nBEGIN:VEVENT\r\n"
      "UID;X-P=1:abc\r\n def\r\n\tghi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
  EXPECT_EQ(detail::ical_property(ics, "method", false), "request");
  EXPECT_EQ(detail::ical_property(ics, "UID", true), "abcdefghi");
  EXPECT_EQ(detail::ical_property(ics, "SUMMARY", true), "");
}

TEST(Snippet, QuoteShapes) {
  using detail::make_snippet;
  EXPECT_EQ(make_snippet("Yes.\n\nOn Tue, 24 Nov 2026, Jane <j@a.com> wrote:\n> q\n", 280), "Yes.");
  EXPECT_EQ(make_snippet("Ja.\n\nAm 24.11.2026 um 10:00 schrieb Jane <j@a.com>:\n> q\n", 280),
            "Ja.");
  EXPECT_EQ(make_snippet("Oui.\n\nLe 24 nov. 2026 \xC3\xA0 10:00, Jane <j@a.com> a \xC3\xA9"
                         "crit :\n> q\n",
                         280),
            "Oui.");
  EXPECT_EQ(make_snippet("S\xC3\xAD.\n\nEl mar, 24 nov 2026 a las 10:00, Jane (<j@a.com>) "
                         "escribi\xC3\xB3:\n> q\n",
                         280),
            "S\xC3\xAD.");
  EXPECT_EQ(make_snippet("Done.\n-----Original Message-----\nFrom: x\n", 280), "Done.");
  EXPECT_EQ(make_snippet("Done.\n\n*From:* Jane\n*Sent:* Monday\n*To:* Bob\n", 280), "Done.");
  EXPECT_EQ(make_snippet("Done.\nFrom: Jane Sent: Monday To: Bob Subject: x\n", 280), "Done.");
  EXPECT_EQ(make_snippet("Done.\n________________________________\nFrom: Jane\n", 280), "Done.");
  EXPECT_EQ(make_snippet("Inline:\n> question one\nanswer one\n> question two\nanswer two\n", 280),
            "Inline: answer one answer two");
  EXPECT_EQ(make_snippet("Here is what she wrote:\nthe text\n", 280),
            "Here is what she wrote: the text");
}

TEST(Snippet, Signatures) {
  using detail::make_snippet;
  EXPECT_EQ(make_snippet("See attached.\n\n-- \nJane Doe\nACME\n", 280), "See attached.");
  EXPECT_EQ(make_snippet("See attached.\n\nBest regards,\nJane\n", 280), "See attached.");
  EXPECT_EQ(make_snippet("See attached.\nThanks!\nJane\n", 280), "See attached.");
  EXPECT_EQ(make_snippet("Thanks!\n", 280), "Thanks!");  // nothing before it: kept
  EXPECT_EQ(make_snippet("Ok\n\nSent from my iPhone\n", 280), "Ok");
  EXPECT_EQ(make_snippet("Ok\n\nVon meinem iPhone gesendet\n", 280), "Ok");
  EXPECT_EQ(make_snippet("Thanks, that works for us.\nJane\n", 280),
            "Thanks, that works for us. Jane");
  EXPECT_EQ(make_snippet("", 280), "");
}

// make_snippet stops reading a long body once the cut is known; what it
// returns must be the cut of the whole body, at every length, with spaces,
// no-break spaces, multi-byte and broken UTF-8 on the lines around the cut.
TEST(Snippet, StoppingEarlyCutsWhereTheWholeBodyWouldBeCut) {
  std::string body;
  for (int i = 0; i < 40; ++i) {
    body +=
        "line " + std::to_string(i) + " caf\xC3\xA9\xC2\xA0\xC2\xA0 na\xC3\xAFve \xF0\x9F\x98\x80";
    body += i % 7 == 3 ? "\xFF\x80 broken\n" : "   \t\n\n";
  }
  body += "\nBest regards,\nJane\n-- \nsignature\n";
  for (const std::string& b : {body, std::string(600, ' ') + body, body.substr(0, 900)}) {
    for (std::size_t n = 1; n <= 400; n += 7) {
      const std::string whole = crmcap::text::truncate_utf8(
          crmcap::text::fold_whitespace(detail::strip_quotes_and_signature(b)), n);
      EXPECT_EQ(detail::make_snippet(b, n), whole) << "max_chars " << n;
    }
  }
  EXPECT_LT(detail::strip_quotes_and_signature(body, 20).size(), 100u);  // it did stop early
}

}  // namespace
