// SPDX-License-Identifier: Apache-2.0
// Golden corpus: every tests/corpora/mail/NAME.eml is parsed and compared with
// NAME.json beside it. Keys of the JSON file:
//   from, sender, reply_to, to, cc, bcc   [{name, address}]     (checked when present)
//   date                                   ISO 8601 UTC string or Unix seconds
//   date_fallback, message_id_synthetic    bool (default false)
//   subject, message_id, in_reply_to, list_id, list_unsubscribe, precedence,
//   auto_submitted, x_autoreply, sensitivity, importance       exact strings
//   message_id_prefix                      prefix of message_id
//   references                             [string]
//   snippet                                exact (always checked)
//   text_contains, text_excludes, warnings_contain  [string]
//   attachments   [{filename, media_type, size?}]   (always checked; default [])
//   calendar_parts [{method, uid}]                  (always checked; default [])
//   body_error    bool (always checked; default false)
//   subject_valid_utf8  only check that the subject is valid UTF-8
//   mimetic_throws_on_raw  the raw bytes make mimetic itself throw
//   error         expected ParseError: empty_input, too_large, no_header
// Each message is parsed with received_at = 1795000000.
#include "parsers/mail/body.hpp"
#include "parsers/mail/mail.hpp"
#include "parsers/text/text.hpp"

#include "tests/parsers/corpus_support.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using crmcap::mail::Address;
using crmcap::mail::MailMessage;

constexpr std::int64_t received_at = 1795000000;

fs::path corpus_dir() { return crmcap::test::corpus_dir("mail"); }
std::vector<std::string> corpus_names() { return crmcap::test::corpus_names(corpus_dir(), ".eml"); }
using crmcap::test::days_from_civil;
using crmcap::test::read_file;

std::int64_t expected_date(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  const std::string s(v.as_string());  // YYYY-MM-DDTHH:MM:SSZ
  const std::int64_t days =
      days_from_civil(std::stoi(s.substr(0, 4)), static_cast<unsigned>(std::stoi(s.substr(5, 2))),
                      static_cast<unsigned>(std::stoi(s.substr(8, 2))));
  return days * 86400 + std::stoi(s.substr(11, 2)) * 3600 + std::stoi(s.substr(14, 2)) * 60 +
         std::stoi(s.substr(17, 2));
}

std::string str(const json::value& v) { return std::string(v.as_string()); }

std::vector<Address> addresses(const json::value& v) {
  std::vector<Address> out;
  for (const json::value& a : v.as_array()) {
    out.push_back({str(a.at("name")), str(a.at("address"))});
  }
  return out;
}

std::string show(const std::vector<Address>& list) {
  std::string s;
  for (const Address& a : list) s += "[" + a.name + " | " + a.address + "] ";
  return s;
}

class MailCorpus : public testing::TestWithParam<std::string> {};

TEST_P(MailCorpus, MatchesGolden) {
  const fs::path eml = corpus_dir() / (GetParam() + ".eml");
  const fs::path golden = corpus_dir() / (GetParam() + ".json");
  ASSERT_TRUE(fs::exists(golden)) << golden;
  const std::string raw = read_file(eml);
  const json::object exp = json::parse(read_file(golden)).as_object();

  crmcap::mail::ParseOptions options;
  options.received_at = received_at;
  const auto result = crmcap::mail::parse(raw, options);
  if (const json::value* err = exp.if_contains("error")) {
    ASSERT_TRUE(result.has_error());
    EXPECT_EQ(result.error().code.message(), str(*err)) << result.error().message;
    return;
  }
  ASSERT_TRUE(result.has_value()) << result.error().message;
  const MailMessage& m = *result;

  struct AddressField {
    const char* key;
    const std::vector<Address>& got;
  };
  for (const AddressField& f : {AddressField{"from", m.from}, AddressField{"sender", m.sender},
                                AddressField{"reply_to", m.reply_to}, AddressField{"to", m.to},
                                AddressField{"cc", m.cc}, AddressField{"bcc", m.bcc}}) {
    if (const json::value* v = exp.if_contains(f.key)) {
      EXPECT_EQ(f.got, addresses(*v)) << f.key << ": got " << show(f.got);
    }
  }
  if (const json::value* v = exp.if_contains("date")) {
    EXPECT_EQ(m.date, expected_date(*v));
  }
  const json::value* fallback = exp.if_contains("date_fallback");
  EXPECT_EQ(m.date_fallback, fallback != nullptr && fallback->as_bool());

  struct StringField {
    const char* key;
    const std::string& got;
  };
  for (const StringField& f :
       {StringField{"subject", m.subject}, StringField{"message_id", m.message_id},
        StringField{"in_reply_to", m.in_reply_to}, StringField{"list_id", m.list_id},
        StringField{"list_unsubscribe", m.list_unsubscribe},
        StringField{"precedence", m.precedence}, StringField{"auto_submitted", m.auto_submitted},
        StringField{"x_autoreply", m.x_autoreply}, StringField{"sensitivity", m.sensitivity},
        StringField{"importance", m.importance}, StringField{"snippet", m.snippet}}) {
    if (const json::value* v = exp.if_contains(f.key)) {
      EXPECT_EQ(f.got, str(*v)) << f.key;
    }
  }
  ASSERT_TRUE(exp.contains("snippet")) << "every golden file states its snippet";
  const json::value* synthetic = exp.if_contains("message_id_synthetic");
  EXPECT_EQ(m.message_id_synthetic, synthetic != nullptr && synthetic->as_bool());
  if (const json::value* v = exp.if_contains("message_id_prefix")) {
    EXPECT_TRUE(m.message_id.starts_with(str(*v))) << m.message_id;
  }
  if (const json::value* v = exp.if_contains("references")) {
    std::vector<std::string> want;
    for (const json::value& r : v->as_array()) want.push_back(str(r));
    EXPECT_EQ(m.references, want);
  }
  if (const json::value* v = exp.if_contains("text_contains")) {
    for (const json::value& s : v->as_array()) {
      EXPECT_NE(m.text.find(str(s)), std::string::npos) << "text lacks '" << str(s) << "':\n"
                                                        << m.text;
    }
  }
  if (const json::value* v = exp.if_contains("text_excludes")) {
    for (const json::value& s : v->as_array()) {
      EXPECT_EQ(m.text.find(str(s)), std::string::npos) << "text has '" << str(s) << "'";
    }
  }
  if (const json::value* v = exp.if_contains("warnings_contain")) {
    for (const json::value& s : v->as_array()) {
      const bool found = std::any_of(m.warnings.begin(), m.warnings.end(), [&](const auto& w) {
        return w.find(str(s)) != std::string::npos;
      });
      EXPECT_TRUE(found) << "no warning mentions '" << str(s) << "'";
    }
  }

  const json::array& atts = exp.at("attachments").as_array();
  ASSERT_EQ(m.attachments.size(), atts.size());
  for (std::size_t i = 0; i < atts.size(); ++i) {
    const json::object& a = atts[i].as_object();
    EXPECT_EQ(m.attachments[i].filename, str(a.at("filename"))) << "attachment " << i;
    EXPECT_EQ(m.attachments[i].media_type, str(a.at("media_type"))) << "attachment " << i;
    if (const json::value* size = a.if_contains("size")) {
      EXPECT_EQ(m.attachments[i].size, static_cast<std::uint64_t>(size->as_int64()))
          << "attachment " << i;
    }
  }
  const json::array& cals = exp.at("calendar_parts").as_array();
  ASSERT_EQ(m.calendar_parts.size(), cals.size());
  for (std::size_t i = 0; i < cals.size(); ++i) {
    EXPECT_EQ(m.calendar_parts[i].method, str(cals[i].at("method")));
    EXPECT_EQ(m.calendar_parts[i].uid, str(cals[i].at("uid")));
    EXPECT_NE(m.calendar_parts[i].text.find("BEGIN:VCALENDAR"), std::string::npos);
  }
  EXPECT_EQ(!m.body_error.empty(), exp.at("body_error").as_bool()) << m.body_error;

  // Every output string is valid UTF-8.
  for (const std::string* s : {&m.subject, &m.text, &m.snippet, &m.message_id, &m.date_raw}) {
    EXPECT_TRUE(crmcap::text::is_valid_utf8(*s)) << *s;
  }
  for (const auto* list : {&m.from, &m.sender, &m.reply_to, &m.to, &m.cc, &m.bcc}) {
    for (const Address& a : *list) {
      EXPECT_TRUE(crmcap::text::is_valid_utf8(a.name) && crmcap::text::is_valid_utf8(a.address));
    }
  }
  for (const std::string& w : m.warnings) EXPECT_TRUE(crmcap::text::is_valid_utf8(w)) << w;

  if (const json::value* v = exp.if_contains("mimetic_throws_on_raw")) {
    if (v->as_bool()) {
      EXPECT_NE(crmcap::mail::detail::mimetic_load_error(raw), "")
          << "this input no longer makes mimetic throw; the corpus entry lost its point";
    }
  }
}

// The same message with the other line ends gives the same result.
TEST_P(MailCorpus, LineEndsDoNotMatter) {
  const std::string raw = read_file(corpus_dir() / (GetParam() + ".eml"));
  // The other line-end convention: CRLF files become LF, LF files CRLF.
  std::string lf, crlf;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
    lf.push_back(raw[i]);
  }
  for (char c : lf) {
    if (c == '\n') crlf.push_back('\r');
    crlf.push_back(c);
  }
  const std::string& other = lf == raw ? crlf : lf;
  crmcap::mail::ParseOptions options;
  options.received_at = received_at;
  const auto a = crmcap::mail::parse(raw, options);
  const auto b = crmcap::mail::parse(other, options);
  ASSERT_EQ(a.has_value(), b.has_value());
  if (!a) return;
  EXPECT_EQ(a->snippet, b->snippet);
  EXPECT_EQ(a->attachments, b->attachments);
  EXPECT_EQ(a->subject, b->subject);
  EXPECT_EQ(a->to, b->to);
}

// Every prefix of every corpus message parses to a result or an error, no crash.
TEST_P(MailCorpus, EveryPrefixParses) {
  const std::string raw = read_file(corpus_dir() / (GetParam() + ".eml"));
  const std::size_t step = std::max<std::size_t>(1, raw.size() / 400);
  for (std::size_t n = 0; n <= raw.size(); n += step) {
    const auto r = crmcap::mail::parse(std::string_view(raw).substr(0, n));
    if (r) {
      EXPECT_TRUE(crmcap::text::is_valid_utf8(r->snippet));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MailCorpus, testing::ValuesIn(corpus_names()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(MailCorpusSize, HasTheShapesTheIssueAsksFor) { EXPECT_GE(corpus_names().size(), 25u); }

}  // namespace
