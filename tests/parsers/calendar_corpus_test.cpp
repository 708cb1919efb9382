// SPDX-License-Identifier: Apache-2.0
// Golden corpus of the calendar parser: every tests/corpora/ics/NAME.ics is
// parsed and compared with NAME.json beside it. Keys of the JSON file:
//   options   {window_start, window_end (ISO 8601 UTC), floating_zone,
//              max_occurrences, max_iterations, max_meetings, max_events}
//             defaults: 2026-01-01T00:00:00Z .. 2027-01-01T00:00:00Z, Europe/Berlin
//   error     expected ParseError: its code's message (then nothing else is checked)
//   method, prodid, warnings   exact (default "" / [])
//   meetings  exact, in order, as meeting_json() below writes them (empty and
//             default fields left out)
//   failed    [{uid, code, reason}] exact
// To rewrite the goldens after a deliberate change, run the test with
// CRMCAP_WRITE_ICS_GOLDEN=1 and review the diff: the times in them were
// checked against Python's zoneinfo when they were written.
#include "parsers/calendar/calendar.hpp"
#include "parsers/text/text.hpp"

#include "tests/parsers/corpus_support.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace crmcap::ical;

fs::path corpus_dir() { return crmcap::test::corpus_dir("ics"); }
std::vector<std::string> corpus_names() { return crmcap::test::corpus_names(corpus_dir(), ".ics"); }
using crmcap::test::days_from_civil;
using crmcap::test::read_file;

// "YYYY-MM-DDTHH:MM:SSZ" to Unix seconds.
std::int64_t unix_of(const std::string& s) {
  const std::int64_t days =
      days_from_civil(std::stoi(s.substr(0, 4)), static_cast<unsigned>(std::stoi(s.substr(5, 2))),
                      static_cast<unsigned>(std::stoi(s.substr(8, 2))));
  return days * 86400 + std::stoi(s.substr(11, 2)) * 3600 + std::stoi(s.substr(14, 2)) * 60 +
         std::stoi(s.substr(17, 2));
}

ParseOptions options_of(const json::object& golden) {
  ParseOptions o;
  o.window_start = unix_of("2026-01-01T00:00:00Z");
  o.window_end = unix_of("2027-01-01T00:00:00Z");
  o.floating_zone = "Europe/Berlin";
  const json::value* v = golden.if_contains("options");
  if (v == nullptr) return o;
  const json::object& opt = v->as_object();
  if (auto* x = opt.if_contains("window_start"))
    o.window_start = unix_of(std::string(x->as_string()));
  if (auto* x = opt.if_contains("window_end")) o.window_end = unix_of(std::string(x->as_string()));
  if (auto* x = opt.if_contains("floating_zone")) o.floating_zone = x->as_string();
  if (auto* x = opt.if_contains("max_occurrences")) o.max_occurrences = x->to_number<std::size_t>();
  if (auto* x = opt.if_contains("max_iterations")) o.max_iterations = x->to_number<std::size_t>();
  if (auto* x = opt.if_contains("max_meetings")) o.max_meetings = x->to_number<std::size_t>();
  if (auto* x = opt.if_contains("max_events")) o.max_events = x->to_number<std::size_t>();
  return o;
}

void put(json::object& o, const char* key, const std::string& v) {
  if (!v.empty()) o[key] = v;
}
void put(json::object& o, const char* key, bool v) {
  if (v) o[key] = true;
}

json::value when_json(const When& w) {
  return w.date.empty() ? json::value(w.utc) : json::value(w.date);
}

json::object participant_json(const Participant& p) {
  json::object o;
  put(o, "address", p.address);
  put(o, "name", p.name);
  put(o, "partstat", p.partstat);
  put(o, "role", p.role);
  put(o, "cutype", p.cutype);
  put(o, "resource", p.resource);
  put(o, "rsvp", p.rsvp);
  return o;
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::object meeting_json(const Meeting& m) {
  json::object o;
  o["uid"] = m.uid;
  if (m.recurrence_id) o["recurrence_id"] = when_json(*m.recurrence_id);
  put(o, "overridden", m.overridden);
  if (m.sequence != 0) o["sequence"] = m.sequence;
  put(o, "summary", m.summary);
  o["start"] = when_json(m.start);
  o["end"] = when_json(m.end);
  if (m.all_day) {
    o["all_day"] = true;
    o["start_utc"] = m.start.utc;
    o["end_utc"] = m.end.utc;
  }
  put(o, "tzid", m.tzid);
  put(o, "zone", m.zone);
  put(o, "floating", m.floating);
  put(o, "status", std::string(to_string(m.status)));
  put(o, "class", m.klass);
  put(o, "transp", m.transp);
  put(o, "location", m.location);
  put(o, "url", m.url);
  put(o, "description", m.description);
  if (m.organizer) o["organizer"] = participant_json(*m.organizer);
  if (!m.attendees.empty()) {
    json::array a;
    for (const auto& p : m.attendees) a.push_back(participant_json(p));
    o["attendees"] = std::move(a);
  }
  if (!m.conference_urls.empty()) o["conference_urls"] = strings(m.conference_urls);
  if (!m.notes.empty()) o["notes"] = strings(m.notes);
  return o;
}

json::object result_json(const Result<Calendar>& r) {
  json::object o;
  if (!r) {
    o["error"] = r.error().code.message();
    o["error_message"] = r.error().message;
    return o;
  }
  o["method"] = r->method;
  o["prodid"] = r->prodid;
  json::array meetings;
  for (const auto& m : r->meetings) meetings.push_back(meeting_json(m));
  o["meetings"] = std::move(meetings);
  json::array failed;
  for (const auto& f : r->failed) {
    json::object x;
    x["uid"] = f.uid;
    if (f.recurrence_id) x["recurrence_id"] = when_json(*f.recurrence_id);
    x["code"] = f.code.message();
    x["reason"] = f.reason;
    failed.push_back(std::move(x));
  }
  o["failed"] = std::move(failed);
  o["warnings"] = strings(r->warnings);
  return o;
}

// Pretty-prints JSON, one key per line, for goldens a person reviews.
void pretty(std::ostream& os, const json::value& v, int indent = 0) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  if (v.is_object()) {
    const auto& o = v.as_object();
    if (o.empty()) {
      os << "{}";
      return;
    }
    os << "{\n";
    std::size_t i = 0;
    for (const auto& kv : o) {
      os << pad << "  " << json::serialize(json::string(kv.key())) << ": ";
      pretty(os, kv.value(), indent + 2);
      os << (++i < o.size() ? ",\n" : "\n");
    }
    os << pad << "}";
  } else if (v.is_array()) {
    const auto& a = v.as_array();
    const bool flat = std::all_of(
        a.begin(), a.end(), [](const json::value& x) { return !x.is_object() && !x.is_array(); });
    if (a.empty() || (flat && json::serialize(a).size() < 80)) {
      os << json::serialize(a);
      return;
    }
    os << "[\n";
    for (std::size_t i = 0; i < a.size(); ++i) {
      os << pad << "  ";
      pretty(os, a[i], indent + 2);
      os << (i + 1 < a.size() ? ",\n" : "\n");
    }
    os << pad << "]";
  } else {
    os << json::serialize(v);
  }
}

class IcsCorpus : public testing::TestWithParam<std::string> {};

TEST_P(IcsCorpus, MatchesGolden) {
  const fs::path ics = corpus_dir() / (GetParam() + ".ics");
  const fs::path golden_path = corpus_dir() / (GetParam() + ".json");
  json::object golden;
  if (fs::exists(golden_path)) golden = json::parse(read_file(golden_path)).as_object();
  const auto result = parse(read_file(ics), options_of(golden));
  json::object got = result_json(result);

  if (std::getenv("CRMCAP_WRITE_ICS_GOLDEN") != nullptr) {
    json::object out;
    if (auto* opt = golden.if_contains("options")) out["options"] = *opt;
    for (auto& kv : got) {
      if (kv.key() != "error_message") out[kv.key()] = kv.value();
    }
    std::ofstream os(golden_path, std::ios::binary);
    pretty(os, out);
    os << "\n";
    return;
  }
  ASSERT_TRUE(fs::exists(golden_path)) << golden_path;

  if (const json::value* err = golden.if_contains("error")) {
    ASSERT_FALSE(result.has_value()) << json::serialize(got);
    EXPECT_EQ(got.at("error"), *err) << result.error().message;
    EXPECT_FALSE(result.error().message.empty());
    return;
  }
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(got.at("method"), golden.at("method"));
  EXPECT_EQ(got.at("prodid"), golden.at("prodid"));
  EXPECT_EQ(got.at("warnings"), golden.at("warnings"));
  EXPECT_EQ(got.at("failed"), golden.at("failed")) << json::serialize(got.at("failed"));
  const json::array& want = golden.at("meetings").as_array();
  const json::array& have = got.at("meetings").as_array();
  EXPECT_EQ(have.size(), want.size());
  for (std::size_t i = 0; i < std::min(have.size(), want.size()); ++i) {
    EXPECT_EQ(have[i], want[i]) << "meeting " << i << "\n got: " << json::serialize(have[i])
                                << "\nwant: " << json::serialize(want[i]);
  }
  // Invariants of every result: text is valid UTF-8, the Unix seconds and the
  // ISO text agree, an occurrence ends no earlier than it starts.
  for (const Meeting& m : result->meetings) {
    for (const std::string* s : {&m.uid, &m.summary, &m.description, &m.location, &m.url}) {
      EXPECT_TRUE(crmcap::text::is_valid_utf8(*s)) << *s;
    }
    EXPECT_EQ(unix_of(m.start.utc), m.start.unix) << m.uid;
    EXPECT_EQ(unix_of(m.end.utc), m.end.unix) << m.uid;
    EXPECT_LE(m.start.unix, m.end.unix) << m.uid;
    EXPECT_EQ(m.all_day, !m.start.date.empty());
  }
}

// The same object with the other line ends gives the same result.
TEST_P(IcsCorpus, LineEndsDoNotMatter) {
  const std::string raw = read_file(corpus_dir() / (GetParam() + ".ics"));
  json::object golden;
  const fs::path golden_path = corpus_dir() / (GetParam() + ".json");
  if (fs::exists(golden_path)) golden = json::parse(read_file(golden_path)).as_object();
  std::string lf, crlf;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
    lf.push_back(raw[i]);
  }
  for (char c : lf) {
    if (c == '\n') crlf.push_back('\r');
    crlf.push_back(c);
  }
  const ParseOptions o = options_of(golden);
  json::object a = result_json(parse(lf, o));
  json::object b = result_json(parse(crlf, o));
  a.erase("error_message");
  b.erase("error_message");
  EXPECT_EQ(a, b);
}

// Every prefix of every corpus object gives a result or an error, no crash.
TEST_P(IcsCorpus, EveryPrefixParses) {
  const std::string raw = read_file(corpus_dir() / (GetParam() + ".ics"));
  const std::size_t step = std::max<std::size_t>(1, raw.size() / 200);
  for (std::size_t n = 0; n <= raw.size(); n += step) {
    const auto r = parse(std::string_view(raw).substr(0, n));
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
      EXPECT_TRUE(crmcap::text::is_valid_utf8(r.error().message));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, IcsCorpus, testing::ValuesIn(corpus_names()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
