// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/types.hpp"

#include "connectors/imap/core/detail.hpp"

#include <algorithm>
#include <chrono>

namespace crmcap::imap {

namespace {

class ImapCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "imap"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::line_too_long:
        return "IMAP line too long";
      case Errc::literal_too_large:
        return "IMAP literal too large";
      case Errc::response_too_large:
        return "IMAP response too large";
      case Errc::too_many_literals:
        return "too many literals in one IMAP response";
      case Errc::bad_literal:
        return "malformed IMAP literal announcement";
      case Errc::syntax:
        return "IMAP response syntax error";
      case Errc::too_deep:
        return "IMAP response nested too deeply";
      case Errc::out_of_memory:
        return "out of memory while parsing an IMAP response";
      case Errc::forbidden_char:
        return "argument contains a character that cannot be sent (NUL, CR or LF)";
      case Errc::invalid_argument:
        return "invalid IMAP command argument";
      case Errc::bad_utf8:
        return "invalid UTF-8";
      case Errc::bad_mutf7:
        return "invalid modified UTF-7";
    }
    return "unknown IMAP error";
  }
};

}  // namespace

const std::error_category& imap_category() noexcept {
  static const ImapCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), imap_category()}; }

// ---------------------------------------------------------------------------
// UidSet

void UidSet::add(std::uint32_t first, std::uint32_t last) {
  if (first > last) std::swap(first, last);
  if (first == 0) first = 1;
  if (last == 0) return;
  // Fast path: appending in ascending order (the common way sets are built).
  if (ranges_.empty() || (ranges_.back().last != star && first > ranges_.back().last + 1)) {
    ranges_.push_back({first, last});
    return;
  }
  // General case: find every range that overlaps or touches [first, last] and
  // replace them by their union. 64-bit arithmetic avoids overflow at star.
  auto touches = [&](const UidRange& r) {
    return static_cast<std::uint64_t>(r.last) + 1 >= first &&
           static_cast<std::uint64_t>(r.first) <= static_cast<std::uint64_t>(last) + 1;
  };
  auto begin = std::find_if(ranges_.begin(), ranges_.end(), [&](const UidRange& r) {
    return static_cast<std::uint64_t>(r.last) + 1 >= first;
  });
  auto end = begin;
  while (end != ranges_.end() && touches(*end)) {
    first = std::min(first, end->first);
    last = std::max(last, end->last);
    ++end;
  }
  if (begin == end) {
    ranges_.insert(begin, UidRange{first, last});
  } else {
    *begin = UidRange{first, last};
    ranges_.erase(begin + 1, end);
  }
}

void UidSet::add(const UidSet& other) {
  for (const UidRange& r : other.ranges_) add(r.first, r.last);
}

bool UidSet::contains(std::uint32_t n) const noexcept {
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), n,
                             [](const UidRange& r, std::uint32_t v) { return r.last < v; });
  return it != ranges_.end() && it->first <= n;
}

std::uint64_t UidSet::size() const noexcept {
  std::uint64_t n = 0;
  for (const UidRange& r : ranges_) n += static_cast<std::uint64_t>(r.last) - r.first + 1;
  return n;
}

std::optional<std::uint32_t> UidSet::min() const noexcept {
  if (ranges_.empty()) return std::nullopt;
  return ranges_.front().first;
}

std::optional<std::uint32_t> UidSet::max() const noexcept {
  if (ranges_.empty()) return std::nullopt;
  return ranges_.back().last;
}

std::string UidSet::to_string() const {
  std::string out;
  auto put = [&](std::uint32_t n) {
    if (n == star) {
      out += '*';
    } else {
      out += std::to_string(n);
    }
  };
  for (const UidRange& r : ranges_) {
    if (!out.empty()) out += ',';
    put(r.first);
    if (r.last != r.first) {
      out += ':';
      put(r.last);
    }
  }
  return out;
}

Result<UidSet> UidSet::parse(std::string_view text) {
  UidSet set;
  if (text.empty()) return make_error_code(Errc::syntax);
  auto number = [](std::string_view s) -> std::optional<std::uint32_t> {
    if (s == "*") return star;
    std::uint64_t v = 0;
    if (!detail::parse_u64(s, v) || v == 0 || v > 0xFFFFFFFFu) return std::nullopt;
    return static_cast<std::uint32_t>(v);
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    std::size_t colon = item.find(':');
    auto a = number(item.substr(0, colon));
    if (!a) return make_error_code(Errc::syntax);
    auto b = a;
    if (colon != std::string_view::npos) {
      b = number(item.substr(colon + 1));
      if (!b) return make_error_code(Errc::syntax);
    }
    set.add(*a, *b);
    pos = comma + 1;
  }
  return set;
}

// ---------------------------------------------------------------------------
// Modified UTF-7

namespace {

constexpr std::string_view kMutf7Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int mutf7_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

}  // namespace

Result<std::string> mutf7_encode(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  std::size_t i = 0;
  while (i < utf8.size()) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c >= 0x20 && c <= 0x7e) {
      out += static_cast<char>(c);
      if (c == '&') out += '-';
      ++i;
      continue;
    }
    // A run of characters outside printable ASCII: UTF-16BE, then base64.
    std::vector<std::uint16_t> units;
    while (i < utf8.size()) {
      auto d = static_cast<unsigned char>(utf8[i]);
      if (d >= 0x20 && d <= 0x7e) break;
      char32_t cp = 0;
      if (!detail::decode_utf8(utf8, i, cp)) return make_error_code(Errc::bad_utf8);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        units.push_back(static_cast<std::uint16_t>(0xD800 + (cp >> 10)));
        units.push_back(static_cast<std::uint16_t>(0xDC00 + (cp & 0x3FF)));
      } else {
        units.push_back(static_cast<std::uint16_t>(cp));
      }
    }
    out += '&';
    std::uint32_t bits = 0;
    int nbits = 0;
    for (std::uint16_t u : units) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out += kMutf7Alphabet[(bits >> nbits) & 0x3F];
      }
      bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) out += kMutf7Alphabet[(bits << (6 - nbits)) & 0x3F];
    out += '-';
  }
  return out;
}

Result<std::string> mutf7_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c > 0x7e) return make_error_code(Errc::bad_mutf7);
    if (c != '&') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    ++i;
    if (i < in.size() && in[i] == '-') {
      out += '&';
      ++i;
      continue;
    }
    std::uint32_t bits = 0;
    int nbits = 0;
    std::uint16_t high = 0;  // a pending high surrogate
    bool any = false;
    for (;;) {
      if (i >= in.size()) return make_error_code(Errc::bad_mutf7);
      char d = in[i++];
      if (d == '-') break;
      int v = mutf7_value(d);
      if (v < 0) return make_error_code(Errc::bad_mutf7);
      bits = (bits << 6) | static_cast<std::uint32_t>(v);
      nbits += 6;
      if (nbits >= 16) {
        nbits -= 16;
        auto u = static_cast<std::uint16_t>((bits >> nbits) & 0xFFFF);
        bits &= (1u << nbits) - 1;
        any = true;
        char32_t cp = 0;
        if (high != 0) {
          if (u < 0xDC00 || u > 0xDFFF) return make_error_code(Errc::bad_mutf7);
          cp = 0x10000 + ((static_cast<char32_t>(high) - 0xD800) << 10) + (u - 0xDC00);
          high = 0;
        } else if (u >= 0xD800 && u <= 0xDBFF) {
          high = u;
          continue;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          return make_error_code(Errc::bad_mutf7);
        } else {
          cp = u;
          // Printable ASCII must be sent directly, never shifted.
          if (cp >= 0x20 && cp <= 0x7e) return make_error_code(Errc::bad_mutf7);
        }
        detail::append_utf8(out, cp);
      }
    }
    // Leftover bits must be padding: fewer than 6 and all zero.
    if (!any || high != 0 || nbits >= 6 || bits != 0) return make_error_code(Errc::bad_mutf7);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Header fields

std::string header_field_value(std::string_view block, std::string_view name) {
  const auto is_wsp = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t pos = 0;
  while (pos < block.size()) {
    std::size_t eol = block.find('\n', pos);
    if (eol == std::string_view::npos) eol = block.size();
    const std::string_view line = block.substr(pos, eol - pos);
    pos = eol + 1;
    // The name, then the colon (RFC 5322's obsolete syntax allows blanks
    // between them).
    if (line.size() <= name.size() || !detail::iequals(line.substr(0, name.size()), name)) {
      continue;
    }
    std::size_t colon = name.size();
    while (colon < line.size() && is_wsp(line[colon])) ++colon;
    if (colon == line.size() || line[colon] != ':') continue;
    std::string value(line.substr(colon + 1));
    // Continuation lines start with a space or a tab; the line break goes.
    while (pos < block.size() && is_wsp(block[pos])) {
      eol = block.find('\n', pos);
      if (eol == std::string_view::npos) eol = block.size();
      if (!value.empty() && value.back() == '\r') value.pop_back();
      value += block.substr(pos, eol - pos);
      pos = eol + 1;
    }
    const auto first = value.find_first_not_of(" \t\r");
    if (first == std::string::npos) return {};
    return value.substr(first, value.find_last_not_of(" \t\r") - first + 1);
  }
  return {};
}

std::string_view header_block(std::string_view message) {
  // An empty first line: no header at all.
  if (message.starts_with("\n") || message.starts_with("\r\n")) return message.substr(0, 0);
  // The first line break followed at once by another (with or without CR).
  std::size_t pos = 0;
  while ((pos = message.find('\n', pos)) != std::string_view::npos) {
    ++pos;
    if (pos < message.size() && message[pos] == '\n') return message.substr(0, pos + 1);
    if (pos + 1 < message.size() && message[pos] == '\r' && message[pos + 1] == '\n') {
      return message.substr(0, pos + 2);
    }
  }
  return message;
}

// ---------------------------------------------------------------------------
// INTERNALDATE

std::optional<std::int64_t> internaldate_to_unix(std::string_view t) {
  // date-day-fixed "-" date-month "-" date-year SP time SP zone
  if (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  auto digits = [&](std::size_t n, int& out) {
    if (t.size() < n) return false;
    std::uint64_t v = 0;
    if (!detail::parse_u64(t.substr(0, n), v)) return false;
    out = static_cast<int>(v);
    t.remove_prefix(n);
    return true;
  };
  auto lit = [&](char c) {
    if (t.empty() || t.front() != c) return false;
    t.remove_prefix(1);
    return true;
  };
  int day = 0, year = 0, hh = 0, mm = 0, ss = 0, zh = 0, zm = 0;
  std::size_t dash = t.find('-');
  if (dash == 0 || dash > 2 || !digits(dash, day) || !lit('-') || t.size() < 3) {
    return std::nullopt;
  }
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  unsigned month = 0;
  for (unsigned i = 0; i < 12; ++i) {
    if (detail::iequals(t.substr(0, 3), kMonths[i])) month = i + 1;
  }
  t.remove_prefix(3);
  if (month == 0 || !lit('-') || !digits(4, year) || !lit(' ') || !digits(2, hh) || !lit(':') ||
      !digits(2, mm) || !lit(':') || !digits(2, ss) || !lit(' ') || t.size() != 5) {
    return std::nullopt;
  }
  char sign = t.front();
  t.remove_prefix(1);
  if ((sign != '+' && sign != '-') || !digits(2, zh) || !digits(2, zm)) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                                  std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hh > 23 || mm > 59 || ss > 60 || zm > 59) return std::nullopt;
  std::int64_t days = std::chrono::sys_days{ymd}.time_since_epoch().count();
  std::int64_t offset = (zh * 3600 + zm * 60) * (sign == '-' ? -1 : 1);
  return days * 86400 + hh * 3600 + mm * 60 + ss - offset;
}

// ---------------------------------------------------------------------------
// Small helpers of the data types

std::string EnvelopeAddress::address() const {
  if (!mailbox || !host) return {};
  return *mailbox + "@" + *host;
}

std::string Section::to_string() const {
  std::string out = part;
  auto keyword = [&](std::string_view k) {
    if (!out.empty()) out += '.';
    out += k;
  };
  switch (text) {
    case SectionText::none:
      break;
    case SectionText::header:
      keyword("HEADER");
      break;
    case SectionText::header_fields:
      keyword("HEADER.FIELDS");
      break;
    case SectionText::header_fields_not:
      keyword("HEADER.FIELDS.NOT");
      break;
    case SectionText::text:
      keyword("TEXT");
      break;
    case SectionText::mime:
      keyword("MIME");
      break;
  }
  if (text == SectionText::header_fields || text == SectionText::header_fields_not) {
    out += " (";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i) out += ' ';
      out += fields[i];
    }
    out += ')';
  }
  return out;
}

bool Capabilities::has(std::string_view name) const noexcept {
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return detail::iequals(n, name); });
}

const std::string* BodyStructure::param(std::string_view name) const noexcept {
  for (const BodyParam& p : params) {
    if (detail::iequals(p.name, name)) return &p.value;
  }
  return nullptr;
}

std::string BodyStructure::filename() const {
  if (disposition) {
    for (const BodyParam& p : disposition->params) {
      if (detail::iequals(p.name, "filename")) return p.value;
    }
  }
  if (const std::string* n = param("name")) return *n;
  return {};
}

bool ListEntry::has(std::string_view attribute) const noexcept {
  return std::any_of(attributes.begin(), attributes.end(),
                     [&](const std::string& a) { return detail::iequals(a, attribute); });
}

bool ListEntry::noselect() const noexcept { return has("\\Noselect") || has("\\NonExistent"); }

SpecialUse ListEntry::special_use() const noexcept {
  struct Name {
    std::string_view name;
    SpecialUse use;
  };
  static constexpr Name kNames[] = {
      {"\\All", SpecialUse::all},
      {"\\AllMail", SpecialUse::all},
      {"\\Archive", SpecialUse::archive},
      {"\\Drafts", SpecialUse::drafts},
      {"\\Flagged", SpecialUse::flagged},
      {"\\Starred", SpecialUse::flagged},
      {"\\Important", SpecialUse::important},
      {"\\Junk", SpecialUse::junk},
      {"\\Spam", SpecialUse::junk},
      {"\\Sent", SpecialUse::sent},
      {"\\Trash", SpecialUse::trash},
  };
  for (const std::string& a : attributes) {
    for (const Name& n : kNames) {
      if (detail::iequals(a, n.name)) return n.use;
    }
  }
  return SpecialUse::none;
}

}  // namespace crmcap::imap
