// SPDX-License-Identifier: Apache-2.0
// Tests of the shared text utilities (parsers/text/text.hpp).
#include "parsers/text/text.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace crmcap::text;

const std::string fffd = "\xEF\xBF\xBD";

// ---- UTF-8 ----------------------------------------------------------------

TEST(TextUtf8, AcceptsValidSequences) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(is_valid_utf8(std::string_view("a\0b", 3)));
}

TEST(TextUtf8, RejectsInvalidSequences) {
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\x80"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));  // cut short
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("12345678\xFF"));  // after an ASCII block
}

TEST(TextUtf8, RepairReplacesMaximalSubparts) {
  EXPECT_EQ(repair_utf8("a\xFF"
                        "b"),
            "a" + fffd + "b");
  EXPECT_EQ(repair_utf8("\xE2\x82"), fffd);  // one truncated sequence, one U+FFFD
  EXPECT_EQ(repair_utf8("\xE2\x82x"), fffd + "x");
  EXPECT_EQ(repair_utf8("\xF0\x9F\x98"), fffd);
  EXPECT_EQ(repair_utf8("\xC0\xAF"), fffd + fffd);  // C0 is never a lead byte
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), fffd + fffd + fffd);
  EXPECT_EQ(repair_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
}

// ---- charsets ---------------------------------------------------------------

TEST(TextCharset, Latin1AndWindows1252) {
  EXPECT_EQ(to_utf8("caf\xE9", "ISO-8859-1"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("caf\xE9", "latin1"), "caf\xC3\xA9");
  // Latin-1 labels are read as Windows-1252, as browsers and mail readers do.
  EXPECT_EQ(to_utf8("\x80 \x93quoted\x94", "iso-8859-1"),
            "\xE2\x82\xAC \xE2\x80\x9Cquoted\xE2\x80\x9D");
  EXPECT_EQ(to_utf8("\x80", "windows-1252"), "\xE2\x82\xAC");
  EXPECT_EQ(to_utf8("\x81", "cp1252"), "\xC2\x81");
}

TEST(TextCharset, IsoAndWindowsFamilies) {
  EXPECT_EQ(to_utf8("\xA4", "iso-8859-15"), "\xE2\x82\xAC");
  EXPECT_EQ(to_utf8("\xB1", "ISO-8859-2"), "\xC4\x85");  // ą
  EXPECT_EQ(to_utf8("\xB1", "iso8859-2"), "\xC4\x85");
  EXPECT_EQ(to_utf8("\xB1", "iso_8859-2"), "\xC4\x85");
  EXPECT_EQ(to_utf8("\xCF\xF0\xE8\xE2\xE5\xF2", "windows-1251"),
            "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");  // Привет
  EXPECT_EQ(to_utf8("\xF0\xD2\xC9\xD7\xC5\xD4", "KOI8-R"),
            "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
  EXPECT_EQ(to_utf8("\xE0", "x-cp1250"), "\xC5\x95");  // ŕ
}

TEST(TextCharset, CjkCharsets) {
  const std::string konnichiwa = "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF";
  EXPECT_EQ(to_utf8("\x82\xB1\x82\xF1\x82\xC9\x82\xBF\x82\xCD", "Shift_JIS"), konnichiwa);
  EXPECT_EQ(to_utf8("\x82\xB1\x82\xF1\x82\xC9\x82\xBF\x82\xCD", "x-sjis"), konnichiwa);
  EXPECT_EQ(to_utf8("\x1B$B$3$s$K$A$O\x1B(B", "ISO-2022-JP"), konnichiwa);
  EXPECT_EQ(to_utf8("\xA4\xB3\xA4\xF3\xA4\xCB\xA4\xC1\xA4\xCF", "euc-jp"), konnichiwa);
  EXPECT_EQ(to_utf8("\xC4\xE3\xBA\xC3", "gb2312"), "\xE4\xBD\xA0\xE5\xA5\xBD");  // 你好
  EXPECT_EQ(to_utf8("\xC4\xE3\xBA\xC3", "GB18030"), "\xE4\xBD\xA0\xE5\xA5\xBD");
  EXPECT_EQ(to_utf8("\xA7\x41\xA6\x6E", "big5"), "\xE4\xBD\xA0\xE5\xA5\xBD");
  EXPECT_EQ(to_utf8("\xBE\xC8\xB3\xE7", "ks_c_5601-1987"), "\xEC\x95\x88\xEB\x85\x95");  // 안녕
  EXPECT_EQ(to_utf8("\xBE\xC8\xB3\xE7", "euc-kr"), "\xEC\x95\x88\xEB\x85\x95");
}

TEST(TextCharset, Iso2022JpWithMicrosoftExtensions) {
  // ① (NEC row 13) inside JIS X 0208, then こ: glibc alone rejects the first.
  EXPECT_EQ(to_utf8("\x1B$B-!$3\x1B(B", "iso-2022-jp"), "\xE2\x91\xA0\xE3\x81\x93");
  // Half-width katakana by ESC ( I and by SO/SI.
  EXPECT_EQ(to_utf8("\x1B(I1\x1B(B!", "iso-2022-jp"), "\xEF\xBD\xB1!");
  EXPECT_EQ(to_utf8("a\x0E"
                    "1\x0F"
                    "b",
                    "iso-2022-jp"),
            "a\xEF\xBD\xB1"
            "b");
  // JIS X 0212 (丂).
  EXPECT_EQ(to_utf8("\x1B$(D0!\x1B(B", "iso-2022-jp"), "\xE4\xB8\x82");
  // A lone byte in double-byte mode costs one U+FFFD, and the text after the
  // next escape is intact.
  EXPECT_EQ(to_utf8("\x1B$B$3$\x1B(Bok", "iso-2022-jp"), "\xE3\x81\x93" + fffd + "ok");
  // Mislabelled UTF-8 without escapes.
  EXPECT_EQ(to_utf8("caf\xC3\xA9", "iso-2022-jp"), "caf\xC3\xA9");
  // ISO-2022-JP-2's other charsets go to glibc (ESC . A + ESC N A: é from Latin-1).
  EXPECT_EQ(to_utf8("\x1B.A\x1BNi", "iso-2022-jp-2"), "\xC3\xA9");
}

TEST(TextCharset, UndecodableBytesBecomeReplacementCharacters) {
  // 0x82 0x20 is no Shift_JIS character; the rest still converts.
  const std::string out = to_utf8("a\x82 b", "shift_jis");
  EXPECT_TRUE(is_valid_utf8(out));
  EXPECT_EQ(out.substr(0, 1), "a");
  EXPECT_NE(out.find(fffd), std::string::npos);
  EXPECT_EQ(out.back(), 'b');
  // Cut off in the middle of a two-byte character.
  EXPECT_EQ(to_utf8("ab\x82", "shift_jis"), "ab" + fffd);
  // A broken ISO-2022-JP escape.
  EXPECT_TRUE(is_valid_utf8(to_utf8("\x1B$B$3\x1B", "iso-2022-jp")));
  EXPECT_TRUE(is_valid_utf8(to_utf8("\xFF\xFE\x00", "utf-16")));
}

TEST(TextCharset, Utf8AsciiAndUnknownLabels) {
  EXPECT_EQ(to_utf8("caf\xC3\xA9", "UTF-8"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("caf\xC3\xA9", "utf8"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("a\xFF", "utf-8"), "a" + fffd);
  EXPECT_EQ(to_utf8("a\xFF", "x-no-such-charset"), "a" + fffd);
  EXPECT_EQ(to_utf8("caf\xC3\xA9", ""), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("caf\xC3\xA9", "unknown-8bit"), "caf\xC3\xA9");
  // Labels that would smuggle iconv flags are not passed on.
  EXPECT_EQ(to_utf8("a\xFF", "UTF-8//TRANSLIT"), "a" + fffd);
  // Quoted labels and stray spaces.
  EXPECT_EQ(to_utf8("caf\xE9", " \"ISO-8859-1\" "), "caf\xC3\xA9");
  // US-ASCII with 8-bit bytes is mislabelled: UTF-8 kept, else Windows-1252.
  EXPECT_EQ(to_utf8("caf\xC3\xA9", "us-ascii"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("caf\xE9", "us-ascii"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("", "koi8-r"), "");
  EXPECT_EQ(to_utf8("plain", "iso-2022-jp"), "plain");
}

TEST(TextCharset, Utf16AndUtf7) {
  EXPECT_EQ(to_utf8(std::string_view("\xFF\xFEh\0i\0", 6), "UTF-16"), "hi");
  EXPECT_EQ(to_utf8("Hi Mom -+Jjo--!", "utf-7"), "Hi Mom -\xE2\x98\xBA-!");
}

TEST(TextCharset, ManyCharsetNamesStayBounded) {
  // More distinct labels than the per-thread cache holds; each must still work.
  for (int i = 0; i < 100; ++i) {
    const std::string label = "x-made-up-" + std::to_string(i);
    EXPECT_EQ(to_utf8("ok", label), "ok");
    EXPECT_EQ(to_utf8("\xE9", "iso-8859-" + std::to_string(1 + i % 16)).size() > 0, true);
  }
  EXPECT_EQ(to_utf8("\xF0\xD2\xC9\xD7\xC5\xD4", "koi8-r"),
            "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
}

TEST(TextCharset, ThreadsConvertConcurrently) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      int good = 0;
      for (int i = 0; i < 500; ++i) {
        good += to_utf8("\x1B$B$3$s\x1B(B", "iso-2022-jp") == "\xE3\x81\x93\xE3\x82\x93";
        good += to_utf8("\xF0\xD2", "koi8-r") == "\xD0\x9F\xD1\x80";
      }
      ok[static_cast<std::size_t>(t)] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 1000);
}

// ---- RFC 2047 ---------------------------------------------------------------

TEST(TextRfc2047, DecodesBAndQWords) {
  EXPECT_EQ(decode_words("=?UTF-8?B?Y2Fmw6k=?="), "caf\xC3\xA9");
  EXPECT_EQ(decode_words("=?utf-8?b?Y2Fmw6k?="), "caf\xC3\xA9");  // no padding
  EXPECT_EQ(decode_words("=?ISO-8859-1?Q?caf=E9_cr=E8me?="), "caf\xC3\xA9 cr\xC3\xA8me");
  EXPECT_EQ(decode_words("=?iso-8859-1?q?caf=e9?="), "caf\xC3\xA9");
  EXPECT_EQ(decode_words("Re: =?utf-8?q?Angebot?= f\xC3\xBCr Sie"), "Re: Angebot f\xC3\xBCr Sie");
}

TEST(TextRfc2047, JoinsAdjacentWordsOnly) {
  EXPECT_EQ(decode_words("=?utf-8?q?a?= =?utf-8?q?b?="), "ab");
  EXPECT_EQ(decode_words("=?utf-8?q?a?=\t  =?utf-8?q?b?="), "ab");
  EXPECT_EQ(decode_words("=?utf-8?q?a?= x =?utf-8?q?b?="), "a x b");
  EXPECT_EQ(decode_words("=?utf-8?q?a_?= =?iso-8859-1?q?=E9?="), "a \xC3\xA9");
  EXPECT_EQ(decode_words("  =?utf-8?q?a?="), "  a");
}

TEST(TextRfc2047, JoinsCharactersSplitAcrossWords) {
  // "é" (C3 A9) split between two B words, as careless encoders do.
  EXPECT_EQ(decode_words("=?UTF-8?B?Y2Fmww==?= =?UTF-8?B?qQ==?="), "caf\xC3\xA9");
  // Shift_JIS split between Q words.
  EXPECT_EQ(decode_words("=?shift_jis?q?=82?= =?shift_jis?q?=B1?="), "\xE3\x81\x93");
}

TEST(TextRfc2047, MalformedWordsStayAsWritten) {
  EXPECT_EQ(decode_words("=?utf-8?x?abc?="), "=?utf-8?x?abc?=");
  EXPECT_EQ(decode_words("=?utf-8?q?abc"), "=?utf-8?q?abc");
  EXPECT_EQ(decode_words("=??q?abc?="), "=??q?abc?=");
  EXPECT_EQ(decode_words("a =? b ?= c"), "a =? b ?= c");
  EXPECT_EQ(decode_words("=?utf-8?q?a=ZZ?="), "a=ZZ");  // a stray '=' is kept
}

TEST(TextRfc2047, LanguageSuffixWordsInTextAndUnknownCharsets) {
  EXPECT_EQ(decode_words("=?utf-8*en?q?hi?="), "hi");
  EXPECT_EQ(decode_words("x=?utf-8?q?y?=z"), "xyz");
  EXPECT_EQ(decode_words("=?x-unknown?q?a=FF?="), "a" + fffd);
  EXPECT_EQ(decode_words("=?utf-8?q?line=0D=0Abreak?="), "line  break");
}

TEST(TextRfc2047, RawBytesOutsideWords) {
  EXPECT_EQ(decode_words("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(decode_words("caf\xE9"), "caf" + fffd);
  EXPECT_EQ(decode_words("caf\xE9", "iso-8859-1"), "caf\xC3\xA9");
  EXPECT_EQ(decode_words("caf\xC3\xA9", "iso-8859-1"), "caf\xC3\xA9");  // valid UTF-8 wins
  EXPECT_EQ(decode_words("\xE9 =?utf-8?q?x?=", "iso-8859-1"), "\xC3\xA9 x");
}

TEST(TextUnfold, DropsLineBreaksKeepsWhitespace) {
  EXPECT_EQ(unfold("  a\r\n b\n\tc  "), "a b\tc");
  EXPECT_EQ(unfold(""), "");
  EXPECT_EQ(unfold("x\xFF"), "x" + fffd);
}

// ---- parameters -------------------------------------------------------------

TEST(TextParams, MainValueAndSimpleParameters) {
  const HeaderParams p = parse_params("Text/Plain; Charset=\"UTF-8\"; format=flowed");
  EXPECT_EQ(p.value, "text/plain");
  EXPECT_EQ(p.params.at("charset"), "UTF-8");
  EXPECT_EQ(p.params.at("format"), "flowed");
  EXPECT_EQ(p.params.size(), 2u);
}

TEST(TextParams, QuotedValuesAndComments) {
  const HeaderParams p = parse_params(
      "attachment (a comment); filename=\"a \\\"quoted\\\" name;.pdf\" ; size=12 (bytes)");
  EXPECT_EQ(p.value, "attachment");
  EXPECT_EQ(p.params.at("filename"), "a \"quoted\" name;.pdf");
  EXPECT_EQ(p.params.at("size"), "12");
}

TEST(TextParams, Rfc2231ContinuationsAndCharsets) {
  const HeaderParams p = parse_params(
      "attachment; filename*0*=UTF-8'en'%E2%82%AC%20rate; filename*1=\" card\"; "
      "filename*2*=%2Epdf");
  EXPECT_EQ(p.params.at("filename"), "\xE2\x82\xAC rate card.pdf");

  const HeaderParams q = parse_params("attachment; filename*=iso-8859-1''caf%E9.txt");
  EXPECT_EQ(q.params.at("filename"), "caf\xC3\xA9.txt");

  // Sections out of order are put in order.
  const HeaderParams r = parse_params("x; name*1=b; name*0=a");
  EXPECT_EQ(r.params.at("name"), "ab");

  // name* is preferred to name.
  const HeaderParams s = parse_params("x; name=\"fallback.txt\"; name*=utf-8''real.txt");
  EXPECT_EQ(s.params.at("name"), "real.txt");

  // No charset, broken percent escapes.
  const HeaderParams t = parse_params("x; name*=''a%2; other*=%41");
  EXPECT_EQ(t.params.at("name"), "a%2");
  EXPECT_EQ(t.params.at("other"), "A");
}

TEST(TextParams, Rfc2047WordSplitAcrossPlainContinuations) {
  const HeaderParams p = parse_params("x; name*0=\"=?UTF-8?B?w6ku\"; name*1=\"cGRm?=\"");
  EXPECT_EQ(p.params.at("name"), "\xC3\xA9.pdf");
}

TEST(TextParams, UnquotedBoundaryWithEquals) {
  const HeaderParams p = parse_params("multipart/mixed; boundary=----=_NextPart_000_0001");
  EXPECT_EQ(p.params.at("boundary"), "----=_NextPart_000_0001");
  const HeaderParams q = parse_params("attachment; filename=Report Q3.pdf");
  EXPECT_EQ(q.params.at("filename"), "Report Q3.pdf");
}

TEST(TextParams, Rfc2047InValues) {
  const HeaderParams p =
      parse_params("application/pdf; name=\"=?UTF-8?B?w6kucGRm?=\"; x==?utf-8?q?a?=");
  EXPECT_EQ(p.params.at("name"), "\xC3\xA9.pdf");
  EXPECT_EQ(p.params.at("x"), "a");
}

TEST(TextParams, LenientForms) {
  // Missing ';' before a parameter, unquoted spaces, doubled ';', first of duplicates.
  const HeaderParams p = parse_params("text/plain charset=utf-8 (c) format=flowed");
  EXPECT_EQ(p.value, "text/plain");
  EXPECT_EQ(p.params.at("charset"), "utf-8");
  EXPECT_EQ(p.params.at("format"), "flowed");
  const HeaderParams q =
      parse_params("text/plain; charset=utf-8 format=flowed;; name=my file.txt; name=second; junk");
  EXPECT_EQ(q.value, "text/plain");
  EXPECT_EQ(q.params.at("charset"), "utf-8");
  EXPECT_EQ(q.params.at("format"), "flowed");
  EXPECT_EQ(q.params.at("name"), "my file.txt");
  EXPECT_EQ(q.params.count("junk"), 0u);

  const HeaderParams r = parse_params("");
  EXPECT_EQ(r.value, "");
  EXPECT_TRUE(r.params.empty());

  const HeaderParams s = parse_params("text/html; charset=\"unterminated");
  EXPECT_EQ(s.params.at("charset"), "unterminated");

  const HeaderParams t = parse_params("multipart/mixed;\r\n\tboundary=\"----=_Part_1\"");
  EXPECT_EQ(t.params.at("boundary"), "----=_Part_1");
}

// ---- HTML -------------------------------------------------------------------

TEST(TextHtml, DropsInvisibleElements) {
  EXPECT_EQ(html_to_text("<html><head><title>T</title><style>p{color:red}</style></head>"
                         "<body>Hello<script>document.write('<p>x</p>')</script> world"
                         "</body></html>"),
            "Hello world");
  EXPECT_EQ(html_to_text("<SCRIPT type=x>a</SCRIPT >b"), "b");
  EXPECT_EQ(html_to_text("a<style>never closed"), "a");
  EXPECT_EQ(html_to_text("<head><meta charset=utf-8>Body text"), "Body text");
  EXPECT_EQ(html_to_text("a<!-- <p>hidden</p> -->b<!DOCTYPE html>c"), "abc");
}

TEST(TextHtml, BlocksAndBreaksBecomeLines) {
  EXPECT_EQ(html_to_text("<p>One</p><p>Two</p>"), "One\n\nTwo");
  EXPECT_EQ(html_to_text("<div>One</div><div>Two<br>Three<br/>Four</div>"),
            "One\nTwo\nThree\nFour");
  EXPECT_EQ(html_to_text("<ul><li>a</li><li>b</li></ul>"), "a\nb");
  EXPECT_EQ(html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"),
            "a b\nc");
  EXPECT_EQ(html_to_text("Hi,<br><br><br><br>Bye"), "Hi,\n\nBye");
  EXPECT_EQ(html_to_text("<p class=\"MsoNormal\">Text<o:p></o:p></p>"), "Text");
}

TEST(TextHtml, WhitespaceAndPre) {
  EXPECT_EQ(html_to_text("  a \n\n  b\t c  "), "a b c");
  EXPECT_EQ(html_to_text("<pre>a\n  b</pre>c"), "a\n  b\n\nc");
}

TEST(TextHtml, Entities) {
  EXPECT_EQ(html_to_text("a &amp; b &lt;c&gt; &quot;d&quot; &apos;"), "a & b <c> \"d\" '");
  EXPECT_EQ(html_to_text("&eacute;&Eacute;&euro;&hellip;&mdash;"),
            "\xC3\xA9\xC3\x89\xE2\x82\xAC\xE2\x80\xA6\xE2\x80\x94");
  EXPECT_EQ(html_to_text("&#233;&#xE9;&#XE9;&#x1F600;"),
            "\xC3\xA9\xC3\xA9\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(html_to_text("&#150;"), "\xE2\x80\x93");  // C1 read as Windows-1252
  EXPECT_EQ(html_to_text("&#0;&#xD800;&#99999999;"), fffd + fffd + fffd);
  EXPECT_EQ(html_to_text("a&nbsp;&nbsp;b"), "a b");
  EXPECT_EQ(html_to_text("&unknown; & &amp &copy2026"),
            "&unknown; & & \xC2\xA9"
            "2026");
}

TEST(TextHtml, BrokenMarkup) {
  EXPECT_EQ(html_to_text("a < b and c<3"), "a < b and c<3");
  EXPECT_EQ(html_to_text("<a href=\"x>y\">link</a>"), "link");
  EXPECT_EQ(html_to_text("<a title=it's>x</a>"), "x");
  EXPECT_EQ(html_to_text("text<p"), "text");
  EXPECT_EQ(html_to_text("<"), "<");
  EXPECT_EQ(html_to_text(""), "");
  EXPECT_TRUE(is_valid_utf8(html_to_text("\xFF<b>\xC3</b>")));
}

// ---- whitespace and truncation ------------------------------------------------

TEST(TextFold, FoldsAllWhitespace) {
  EXPECT_EQ(fold_whitespace("  a \r\n\t b  "), "a b");
  EXPECT_EQ(fold_whitespace("a\xC2\xA0\xC2\xA0"
                            "b"),
            "a b");
  EXPECT_EQ(fold_whitespace(""), "");
  EXPECT_EQ(fold_whitespace(" \n "), "");
  EXPECT_EQ(fold_whitespace("a\xFF"), "a" + fffd);
}

// fold_whitespace against the plain byte-at-a-time reading of its rule: any
// run of whitespace (U+00A0 included) is one space between two other
// characters and none at either end, then invalid UTF-8 is repaired.
TEST(TextFold, AgreesWithTheByteAtATimeRuleOnRandomText) {
  const auto reference = [](std::string_view s) {
    std::string out;
    bool pending = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      const bool nbsp =
          c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0;
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v' || nbsp) {
        pending = !out.empty();
        i += nbsp ? 1 : 0;
        continue;
      }
      if (pending) out.push_back(' ');
      pending = false;
      out.push_back(s[i]);
    }
    return repair_utf8(out);
  };
  const std::string alphabet[] = {"a",        "Z",    " ",    "\t",       "\r\n", "\v",
                                  "\xC2\xA0", "\xC2", "\xA0", "\xC3\xA9", "\xFF", "\xE2\x82"};
  std::mt19937 rng(7);
  for (int round = 0; round < 5000; ++round) {
    std::string s;
    const int parts = static_cast<int>(rng() % 24);
    for (int k = 0; k < parts; ++k) s += alphabet[rng() % std::size(alphabet)];
    ASSERT_EQ(fold_whitespace(s), reference(s)) << testing::PrintToString(s);
  }
}

TEST(TextTruncate, CutsAtWordsAndCountsCodePoints) {
  EXPECT_EQ(truncate_utf8("short", 10), "short");
  EXPECT_EQ(truncate_utf8("exactly10!", 10), "exactly10!");
  EXPECT_EQ(truncate_utf8("abc", 0), "");
  EXPECT_EQ(truncate_utf8("abc", 1), "\xE2\x80\xA6");
  // "…" counts towards the limit.
  EXPECT_EQ(truncate_utf8("abcdefghijk", 5), "abcd\xE2\x80\xA6");
  // A word boundary near the end is preferred.
  EXPECT_EQ(truncate_utf8("the quick brown fox jumps over the lazy dog", 18),
            "the quick brown\xE2\x80\xA6");
  EXPECT_EQ(truncate_utf8("the quick brown fox jumps over the lazy dog", 20),
            "the quick brown fox\xE2\x80\xA6");
  // No boundary near: the word is cut.
  EXPECT_EQ(truncate_utf8("a verylongwordwithoutanyspaces", 12), "a verylongw\xE2\x80\xA6");
  // Code points, not bytes.
  EXPECT_EQ(truncate_utf8("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xC3\xA9\xE2\x80\xA6");
  EXPECT_EQ(truncate_utf8("\xC3\xA9\xC3\xA9", 2), "\xC3\xA9\xC3\xA9");
}

// ---- robustness ---------------------------------------------------------------

// Seeded random inputs, biased towards the characters these parsers care about.
std::string random_input(std::mt19937& rng, std::size_t max_len) {
  static const std::string alphabet =
      "=?_;:\"'\\<>@,.()[]&#x*%-+ \t\r\nabcQBqb0129Fz/\x1B\x80\xC3\xA9\xFF\xE2\x82";
  std::uniform_int_distribution<std::size_t> len_dist(0, max_len);
  std::uniform_int_distribution<int> pick(0, 9);
  std::uniform_int_distribution<std::size_t> a(0, alphabet.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len_dist(rng), '\0');
  for (char& c : s) c = pick(rng) < 8 ? alphabet[a(rng)] : static_cast<char>(byte(rng));
  return s;
}

TEST(TextRobustness, RandomInputGivesValidUtf8) {
  std::mt19937 rng(20261125);
  static const char* const charsets[] = {"utf-8",   "iso-8859-1", "shift_jis", "iso-2022-jp",
                                         "gb18030", "big5",       "utf-16",    "utf-7",
                                         "koi8-r",  "bogus",      "euc-kr",    "windows-1251"};
  for (int i = 0; i < 3000; ++i) {
    const std::string s = random_input(rng, 64);
    const char* cs = charsets[static_cast<std::size_t>(i) % std::size(charsets)];
    ASSERT_TRUE(is_valid_utf8(to_utf8(s, cs))) << i;
    ASSERT_TRUE(is_valid_utf8(repair_utf8(s)));
    ASSERT_TRUE(is_valid_utf8(decode_words(s)));
    ASSERT_TRUE(is_valid_utf8(decode_words(s, cs)));
    ASSERT_TRUE(is_valid_utf8(decode_words("=?" + std::string(cs) + "?q?" + s + "?=")));
    ASSERT_TRUE(is_valid_utf8(decode_words("=?" + std::string(cs) + "?b?" + s + "?=")));
    ASSERT_TRUE(is_valid_utf8(unfold(s)));
    const HeaderParams p = parse_params(s);
    ASSERT_TRUE(is_valid_utf8(p.value));
    for (const auto& [k, v] : p.params) ASSERT_TRUE(is_valid_utf8(v));
    ASSERT_TRUE(is_valid_utf8(html_to_text(s)));
    ASSERT_TRUE(is_valid_utf8(fold_whitespace(s)));
    ASSERT_TRUE(is_valid_utf8(truncate_utf8(s, static_cast<std::size_t>(i % 20))));
  }
}

// Inputs that made a reader quadratic before (minutes at this size); now each
// takes milliseconds. A regression shows as a test timeout.
TEST(TextRobustness, PathologicalInputsStayLinear) {
  auto rep = [](std::string_view unit, std::size_t n) {
    std::string r;
    while (r.size() < n) r.append(unit);
    return r;
  };
  constexpr std::size_t n = 1 << 17;
  EXPECT_EQ(decode_words(rep("=?a?q?x", n)).size(), rep("=?a?q?x", n).size());
  EXPECT_EQ(parse_params("a; b=c" + std::string(n, ' ') + "d").params.at("b"),
            "c" + std::string(n, ' ') + "d");
  EXPECT_EQ(parse_params("a" + std::string(n, ' ') + "b").value, "ab");
  EXPECT_EQ(html_to_text(rep("<head>", n)), "");
  EXPECT_TRUE(is_valid_utf8(to_utf8(rep("\x1B$B!", n), "iso-2022-jp")));
}

}  // namespace
