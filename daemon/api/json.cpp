// SPDX-License-Identifier: Apache-2.0
#include "daemon/api/json.hpp"

#include "daemon/capture/capture.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace crmcap::api {

namespace {

// Appends JSON text to a string, compact as boost::json::serialize writes it
// (the same escapes: '"', '\\', and control characters, short where JSON has
// a short form, else \u00xx), without building a value first.
class Out {
 public:
  explicit Out(std::string& s) : s_(s) {}

  // `k` is a key written as it is (the keys below need no escapes and are
  // short): "k":, in one append.
  Out& key(std::string_view k) {
    char buf[40];
    std::size_t n = 0;
    if (!first_) buf[n++] = ',';
    first_ = false;
    buf[n++] = '"';
    k = k.substr(0, sizeof buf - 4);
    std::memcpy(buf + n, k.data(), k.size());
    n += k.size();
    buf[n++] = '"';
    buf[n++] = ':';
    s_.append(buf, n);
    return *this;
  }
  void open(char c) {
    s_ += c;
    first_ = true;
  }
  void close(char c) {
    s_ += c;
    first_ = false;
  }
  // An element of an array (not its first): the comma before it.
  void next() {
    if (!first_) s_ += ',';
    first_ = false;
  }
  void str(std::string_view v) {
    s_ += '"';
    std::size_t run = 0;  // the start of the characters not yet appended
    for (std::size_t i = 0; i < v.size(); ++i) {
      // Eight characters at a time while none of them needs an escape.
      while (i + 8 <= v.size() && !needs_escape(v.data() + i)) i += 8;
      if (i == v.size()) break;
      const auto c = static_cast<unsigned char>(v[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      s_.append(v.data() + run, i - run);
      run = i + 1;
      s_ += '\\';
      switch (c) {
        case '"':
        case '\\':
          s_ += static_cast<char>(c);
          break;
        case '\b':
          s_ += 'b';
          break;
        case '\t':
          s_ += 't';
          break;
        case '\n':
          s_ += 'n';
          break;
        case '\f':
          s_ += 'f';
          break;
        case '\r':
          s_ += 'r';
          break;
        default:
          s_ += "u00";
          s_ += "0123456789abcdef"[c >> 4];
          s_ += "0123456789abcdef"[c & 15];
      }
    }
    s_.append(v.data() + run, v.size() - run);
    s_ += '"';
  }
  void str_or_null(std::string_view v) {
    if (v.empty()) {
      s_ += "null";
    } else {
      str(v);
    }
  }
  void num(std::int64_t n) {
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    s_.append(buf, end);
  }
  void boolean(bool b) { s_ += b ? "true" : "false"; }

 private:
  // Whether any of the eight bytes at `p` is a control character, '"' or
  // '\\' (the bit tricks of "Bit Twiddling Hacks", determine if a word has
  // a byte less than n / equal to n).
  static bool needs_escape(const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
    const auto zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
    const std::uint64_t control = (w - ones * 0x20) & ~w & highs;
    return (control | zero_byte(w ^ (ones * '"')) | zero_byte(w ^ (ones * '\\'))) != 0;
  }

  std::string& s_;
  bool first_ = true;
};

void ids(Out& o, const std::vector<std::string>& v) {
  o.open('[');
  for (const auto& id : v) {
    o.next();
    o.str(id);
  }
  o.close(']');
}

}  // namespace

void append_activity_json(std::string& out, const store::Activity& a, std::int64_t now) {
  Out o(out);
  o.open('{');
  o.key("id").str(a.id);
  o.key("kind").str(store::to_string(a.kind));
  o.key("direction").str(store::to_string(a.direction));
  o.key("occurred_at").str(a.occurred_at);
  o.key("subject").str(a.subject);
  o.key("snippet").str(a.snippet);
  o.key("message_id").str(a.message_id);
  o.key("thread_key").str(a.thread_key);
  o.key("participants").open('[');
  for (const auto& p : a.participants) {
    o.next();
    o.open('{');
    o.key("address").str(p.address);
    o.key("name").str(p.name);
    o.key("role").str(p.role);
    o.key("contact_id").str_or_null(p.contact_id);
    o.key("company_id").str_or_null(p.company_id);
    if (!p.partstat.empty()) o.key("partstat").str(p.partstat);
    o.close('}');
  }
  o.close(']');
  ids(o.key("contact_ids"), a.contact_ids);
  ids(o.key("company_ids"), a.company_ids);
  o.key("opportunity_id").str_or_null(a.opportunity_id);
  o.key("status").str(store::to_string(a.status));
  o.key("reason").str(a.reason);
  o.key("sources").open('[');
  for (const auto& s : a.sources) {
    o.next();
    o.open('{');
    o.key("mailbox").str(s.mailbox);
    o.key("folder").str(s.folder);
    if (s.uid) {
      o.key("uidvalidity").num(s.uidvalidity);
      o.key("uid").num(s.uid);
    }
    if (!s.path.empty()) o.key("path").str(s.path);
    if (!s.remote_id.empty()) o.key("remote_id").str(s.remote_id);
    if (!s.removed_at.empty()) o.key("removed_at").str(s.removed_at);
    o.close('}');
  }
  o.close(']');
  if (const auto& m = a.meeting) {
    o.key("event_uid").str(m->event_uid);
    o.key("starts_at").str(m->starts_at);
    o.key("ends_at").str(m->ends_at);
    o.key("all_day").boolean(m->all_day);
    o.key("location").str(m->location);
    o.key("meeting_status").str(capture::meeting_status(*m, now));
  }
  o.close('}');
}

void append_decision_json(std::string& out, const store::Activity& a, const store::SourceRef& s) {
  Out o(out);
  o.open('{');
  o.key("message_id").str(a.message_id);
  o.key("activity_id").str(a.id);
  o.key("occurred_at").str(a.occurred_at);
  o.key("mailbox").str(s.mailbox);
  o.key("folder").str(s.folder);
  o.key("decision").str(store::to_string(a.status));
  o.key("rule").str(a.rule);
  o.key("reason").str(a.reason);
  if (!s.path.empty()) o.key("path").str(s.path);
  if (s.uid) o.key("uid").num(s.uid);
  if (!s.removed_at.empty()) o.key("removed_at").str(s.removed_at);
  if (a.meeting) o.key("event_uid").str(a.meeting->event_uid);
  o.close('}');
}

}  // namespace crmcap::api
