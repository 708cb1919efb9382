// SPDX-License-Identifier: Apache-2.0
// The activity and decision writers: their text is what boost::json would
// serialize of the same object (keys in the schema's order, the same escapes),
// so the API's bodies and `crm-capture activities --json` stay as they were
// when the writer stopped building a value tree.
#include "daemon/api/json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

using namespace crmcap;
using api::append_activity_json;
using api::append_decision_json;

namespace {

// Every character that JSON escapes, and some that it does not.
const std::string k_awkward =
    std::string("q\"b\\s/\b\f\n\r\t") + '\0' + "\x01\x1f\x7f" + "é ü \xe2\x82\xac <&>";

store::Activity mail() {
  store::Activity a;
  a.id = "a-1";
  a.kind = store::ActivityKind::email;
  a.direction = store::Direction::outbound;
  a.occurred_at = "2026-11-02T10:00:00Z";
  a.subject = "Re: " + k_awkward;
  a.snippet = k_awkward + k_awkward;
  a.message_id = "m1@x";
  a.thread_key = "t";
  a.opportunity_id = "";
  a.reason = "matched \"Jane\"";
  a.participants = {{"jane@acme.com", "Jane \"J\" Doe", "from", "C-1", "CO-1", ""},
                    {"bob@other.org", k_awkward, "to", "", "", ""}};
  a.contact_ids = {"C-1"};
  a.company_ids = {"CO-1"};
  a.sources = {{"alice", "INBOX", 7, 42, "", "gm:1", ""},
               {"local", "", 0, 0, "/tmp/m.eml", "", "2026-11-03T00:00:00Z"}};
  return a;
}

store::Activity meeting() {
  store::Activity a = mail();
  a.kind = store::ActivityKind::meeting;
  a.opportunity_id = "O-1";
  a.participants[1].partstat = "ACCEPTED";
  a.meeting = store::MeetingFields{"uid-1", "2026-11-05", "2026-11-06", true, k_awkward, false, 3};
  return a;
}

// What boost::json writes of the text read back: equal only if the text is
// compact, in boost::json's escapes and number forms.
std::string canonical(const std::string& text) {
  return boost::json::serialize(boost::json::parse(text));
}

}  // namespace

TEST(Json, ActivityIsWhatBoostJsonWrites) {
  for (const auto& a : {mail(), meeting()}) {
    std::string text;
    append_activity_json(text, a, 1'800'000'000);
    EXPECT_EQ(text, canonical(text));
    const auto o = boost::json::parse(text).as_object();
    std::vector<std::string> keys;
    for (const auto& kv : o) keys.emplace_back(kv.key());
    std::vector<std::string> want{"id",           "kind",        "direction",   "occurred_at",
                                  "subject",      "snippet",     "message_id",  "thread_key",
                                  "participants", "contact_ids", "company_ids", "opportunity_id",
                                  "status",       "reason",      "sources"};
    if (a.meeting) {
      for (const char* k :
           {"event_uid", "starts_at", "ends_at", "all_day", "location", "meeting_status"}) {
        want.emplace_back(k);
      }
    }
    EXPECT_EQ(keys, want);
    EXPECT_EQ(o.at("subject").as_string(), a.subject);
    EXPECT_EQ(o.at("snippet").as_string(), a.snippet);
    EXPECT_EQ(o.at("participants").as_array()[1].at("name").as_string(), k_awkward);
    EXPECT_TRUE(o.at("participants").as_array()[1].at("contact_id").is_null());
    EXPECT_EQ(o.at("opportunity_id").is_null(), a.opportunity_id.empty());
    EXPECT_EQ(o.at("sources").as_array()[0].at("uid").as_int64(), 42);
    EXPECT_FALSE(o.at("sources").as_array()[1].as_object().contains("uid"));
    EXPECT_EQ(o.at("sources").as_array()[1].at("removed_at").as_string(), "2026-11-03T00:00:00Z");
  }
  std::string text;
  append_activity_json(text, meeting(), 1'800'000'000);
  const auto o = boost::json::parse(text).as_object();
  EXPECT_EQ(o.at("participants").as_array()[1].at("partstat").as_string(), "ACCEPTED");
  EXPECT_FALSE(o.at("participants").as_array()[0].as_object().contains("partstat"));
  EXPECT_EQ(o.at("all_day").as_bool(), true);
  EXPECT_EQ(o.at("meeting_status").as_string(), "held");
}

TEST(Json, AppendsAfterWhatIsThere) {
  std::string text = "[";
  append_activity_json(text, mail(), 0);
  text += ',';
  append_decision_json(text, mail(), mail().sources[0]);
  text += ']';
  EXPECT_EQ(text, canonical(text));
  const auto d = boost::json::parse(text).as_array()[1].as_object();
  std::vector<std::string> keys;
  for (const auto& kv : d) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"message_id", "activity_id", "occurred_at", "mailbox",
                                            "folder", "decision", "rule", "reason", "uid"}));
}

// Escapes found wherever they fall (the writer looks at sixteen characters
// at a time, then eight, then one): strings of 48, 56 and 61 characters, so
// that a character is met in the sixteens, in the eight after them and in
// the last few.
TEST(Json, EscapesAtEveryOffset) {
  for (const std::string& special : std::vector<std::string>{
           "\"", "\\", std::string(1, '\0'), "\x01", "\n", "\x1f", " ", "\x7f", "\xc3\xa9"}) {
    for (const std::size_t others : {47U, 55U, 60U}) {
      for (std::size_t at = 0; at <= others; ++at) {
        store::Activity a = mail();
        a.subject = std::string(others, 'x');
        a.subject.insert(at, special);
        std::string text;
        append_activity_json(text, a, 0);
        EXPECT_EQ(text, canonical(text))
            << "character " << int(special[0]) << " at " << at << " of " << a.subject.size();
        EXPECT_EQ(boost::json::parse(text).at("subject").as_string(), a.subject);
      }
    }
  }
}
