// SPDX-License-Identifier: Apache-2.0
#include "daemon/api/json.hpp"

#include "daemon/capture/capture.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
    const char* p = v.data();
    const char* const end = p + v.size();
    const char* run = p;  // the start of the characters not yet appended
    while ((p = plain_until(p, end)) != end) {
      s_.append(run, static_cast<std::size_t>(p - run));
      escape(static_cast<unsigned char>(*p));
      run = ++p;
    }
    s_.append(run, static_cast<std::size_t>(end - run));
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
  // The first character in [p, end) that JSON escapes (a control character,
  // '"' or '\\'), or `end`: sixteen characters at a time with SSE2 (every
  // x86-64), else eight at a time in a word ("Bit Twiddling Hacks": whether a
  // word has a byte less than n / equal to n), then one at a time.
  static const char* plain_until(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  last_control = _mm_set1_epi8(0x1f);
    for (; end - p >= 16; p += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      // Unsigned x <= 0x1f exactly when max(x, 0x1f) is 0x1f.
      const __m128i hit =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                       _mm_cmpeq_epi8(_mm_max_epu8(x, last_control), last_control));
      if (const int mask = _mm_movemask_epi8(hit)) return p + __builtin_ctz(mask);
    }
#endif
    for (; end - p >= 8; p += 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
      const auto zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
      const std::uint64_t control = (w - ones * 0x20) & ~w & highs;
      if ((control | zero_byte(w ^ (ones * '"')) | zero_byte(w ^ (ones * '\\'))) != 0) break;
    }
    for (; p != end; ++p) {
      const auto c = static_cast<unsigned char>(*p);
      if (c < 0x20 || c == '"' || c == '\\') return p;
    }
    return end;
  }

  // Appends the escape of `c`, one of the characters plain_until stops at:
  // itself after a backslash ('"', '\\'), JSON's short form (\b \f \n \r \t),
  // else \u00xx.
  void escape(unsigned char c) {
    static constexpr std::string_view shorts = "\b\f\n\r\t", letters = "bfnrt";
    char buf[6] = {'\\', static_cast<char>(c), '0', '0'};
    std::size_t n = 2;
    if (const auto i = shorts.find(static_cast<char>(c)); i != std::string_view::npos) {
      buf[1] = letters[i];
    } else if (c != '"' && c != '\\') {
      buf[1] = 'u';
      buf[4] = "0123456789abcdef"[c >> 4];
      buf[5] = "0123456789abcdef"[c & 15];
      n = 6;
    }
    s_.append(buf, n);
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
