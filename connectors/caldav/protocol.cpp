// SPDX-License-Identifier: Apache-2.0
// The caldav error category, request bodies and small protocol pieces
// (multistatus.hpp, caldav.hpp).
#include "connectors/caldav/multistatus.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace crmcap::caldav {

namespace {

class CalDavCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "caldav"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::transport:
        return "the CalDAV request got no response";
      case Errc::auth_failed:
        return "the CalDAV server refused the credentials";
      case Errc::server_busy:
        return "the CalDAV server is busy";
      case Errc::server_error:
        return "the CalDAV server failed";
      case Errc::not_found:
        return "no such CalDAV resource";
      case Errc::refused:
        return "the CalDAV server refused the request";
      case Errc::bad_redirect:
        return "a redirect that cannot be followed";
      case Errc::too_many_redirects:
        return "too many redirects";
      case Errc::protocol:
        return "a CalDAV reply that cannot be followed";
      case Errc::no_calendars:
        return "no calendar that holds events";
      case Errc::not_a_calendar:
        return "not a calendar collection";
      case Errc::sink:
        return "the calendar sink failed";
      case Errc::bad_url:
        return "a URL that cannot be parsed";
      case Errc::out_of_memory:
        return "out of memory";
      case Errc::xml_malformed:
        return "malformed XML";
      case Errc::xml_dtd:
        return "XML with a DOCTYPE";
      case Errc::xml_too_large:
        return "XML too large";
      case Errc::xml_not_multistatus:
        return "XML that is not a multistatus";
    }
    return "unknown CalDAV error";
  }
};

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

constexpr std::string_view kXmlDecl = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
constexpr std::string_view kNamespaces =
    " xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\""
    " xmlns:cs=\"http://calendarserver.org/ns/\"";

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view strip_weak(std::string_view e) {
  if (e.size() >= 2 && (e[0] == 'W' || e[0] == 'w') && e[1] == '/') e.remove_prefix(2);
  return e;
}

// An HTTP date in any of RFC 7231's three forms (IMF-fixdate, RFC 850,
// asctime): the first number is the day, the next the year; the month by
// name; the time as hh:mm:ss. Weekday names and "GMT" are ignored.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view v) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  int day = -1, year = -1, month = -1, hh = -1, mm = -1, ss = -1;
  std::size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == ',' || v[i] == '-' || v[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < v.size() && v[j] != ' ' && v[j] != ',' && v[j] != '-' && v[j] != '\t') ++j;
    std::string_view tok = v.substr(i, j - i);
    i = j;
    if (tok.empty()) continue;
    const bool digits =
        std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits && tok.size() <= 4) {
      int n = 0;
      for (char c : tok) n = n * 10 + (c - '0');
      if (day < 0 && tok.size() <= 2) {
        day = n;
      } else if (year < 0) {
        year = tok.size() <= 2 ? (n < 70 ? 2000 + n : 1900 + n) : n;
      } else {
        return std::nullopt;
      }
    } else if (tok.size() == 8 && tok[2] == ':' && tok[5] == ':') {
      auto two = [&](std::size_t at) -> int {
        if (tok[at] < '0' || tok[at] > '9' || tok[at + 1] < '0' || tok[at + 1] > '9') return -1;
        return (tok[at] - '0') * 10 + (tok[at + 1] - '0');
      };
      hh = two(0);
      mm = two(3);
      ss = two(6);
    } else if (tok.size() >= 3) {
      for (std::size_t m = 0; m < kMonths.size(); ++m) {
        if (iequal(tok.substr(0, 3), kMonths[m]) && tok.size() == 3)
          month = static_cast<int>(m) + 1;
      }
    }
  }
  if (day < 1 || day > 31 || month < 1 || year < 1900 || year > 9999 || hh < 0 || hh > 23 ||
      mm < 0 || mm > 59 || ss < 0 || ss > 60) {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  const sys_seconds at = sys_days{ymd} + hours{hh} + minutes{mm} + seconds{ss};
  // system_clock counts nanoseconds in 64 bits: it ends in April 2262, and
  // converting a later date overflows (fuzz_multistatus found "Sun, 06 Dec
  // 4052"). Any such date is past every clamp: it stands as 2262 begins.
  constexpr sys_seconds kLast = sys_days{std::chrono::year{2262} / 1 / 1};
  return time_point_cast<system_clock::duration>(std::min(at, kLast));
}

}  // namespace

const std::error_category& caldav_category() noexcept {
  static const CalDavCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), caldav_category()};
}

std::string propfind_body(PropSet set) {
  std::string props;
  switch (set) {
    case PropSet::probe:
      props =
          "<d:resourcetype/><d:current-user-principal/><c:calendar-home-set/><d:displayname/>"
          "<c:supported-calendar-component-set/><cs:getctag/><d:sync-token/>"
          "<d:supported-report-set/>";
      break;
    case PropSet::home:
      props = "<d:resourcetype/><c:calendar-home-set/>";
      break;
    case PropSet::calendar:
      props =
          "<d:resourcetype/><d:displayname/><c:supported-calendar-component-set/><cs:getctag/>"
          "<d:sync-token/><d:supported-report-set/>";
      break;
    case PropSet::etags:
      props = "<d:resourcetype/><d:getetag/>";
      break;
  }
  std::string body(kXmlDecl);
  body += "<d:propfind";
  body += kNamespaces;
  body += "><d:prop>" + props + "</d:prop></d:propfind>\n";
  return body;
}

std::string sync_collection_body(std::string_view token) {
  std::string body(kXmlDecl);
  body += "<d:sync-collection xmlns:d=\"DAV:\">";
  body += token.empty() ? "<d:sync-token/>" : "<d:sync-token>" + escape(token) + "</d:sync-token>";
  body += "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>\n";
  return body;
}

std::string multiget_body(const std::vector<std::string>& hrefs) {
  std::string body(kXmlDecl);
  body +=
      "<c:calendar-multiget xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\">"
      "<d:prop><d:getetag/><c:calendar-data/></d:prop>";
  for (const auto& h : hrefs) body += "<d:href>" + escape(h) + "</d:href>";
  body += "</c:calendar-multiget>\n";
  return body;
}

bool etag_equal(std::string_view a, std::string_view b) { return strip_weak(a) == strip_weak(b); }

std::string content_etag(std::string_view data) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "crmcap-fnv1a64:";
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(h >> shift) & 0xf];
  return out;
}

std::optional<std::chrono::system_clock::time_point> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  std::optional<std::chrono::system_clock::time_point> at;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Anything over nine digits is over the clamp anyway.
    std::int64_t secs = 0;
    for (char c : value.substr(0, std::min<std::size_t>(value.size(), 10)))
      secs = secs * 10 + (c - '0');
    if (value.size() > 10) secs = kMaxRetryAfter.count();
    at = now + std::chrono::seconds(std::min<std::int64_t>(secs, kMaxRetryAfter.count()));
  } else {
    at = parse_http_date(value);
    if (!at) return std::nullopt;
  }
  return std::clamp(*at, now + kMinRetryAfter, now + kMaxRetryAfter);
}

std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                            std::string_view name) {
  for (const auto& h : headers) {
    if (iequal(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

}  // namespace crmcap::caldav
