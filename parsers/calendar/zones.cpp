// SPDX-License-Identifier: Apache-2.0
// Time zones: the system database by name (case-insensitive, prefixes such as
// "/mozilla.org/20070129_1/" stripped, Windows names through ICU's CLDR table),
// and the checks a VTIMEZONE passes before libical may expand it.
//
// libical's own lookup (icaltimezone_get_builtin_timezone) is case-sensitive,
// builds a file path from the name it is given (so "../" must never reach it)
// and is not thread-safe; every call goes through system_zone() below, which
// validates the name against an index of the zone directory and holds a lock.
#include "parsers/calendar/calendar.hpp"
#include "parsers/calendar/detail.hpp"
#include "parsers/text/text.hpp"

#include <libical/icaltz-util.h>
#include <unicode/ucal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <vector>

namespace crmcap::ical::detail {
namespace {

// ---- the index of the zone directory ------------------------------------------

bool valid_zone_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || n.front() == '/' || n.back() == '/') return false;
  if (n.find("..") != std::string_view::npos || n.find("//") != std::string_view::npos) {
    return false;
  }
  for (char c : n) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// Lowercased name -> name as spelled in the directory, for every zone file
// under the zone directory (links such as US/Eastern included; the posix/ and
// right/ trees and the data files beside the zones left out). Built once.
const std::map<std::string, std::string>& zone_index() {
  static const std::map<std::string, std::string> index = [] {
    std::map<std::string, std::string> out;
    const char* dir = icaltzutil_get_zone_directory();
    if (dir == nullptr) return out;
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root(dir);
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    const fs::recursive_directory_iterator end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string rel = it->path().lexically_relative(root).generic_string();
      if (it->is_directory(ec)) {
        if (rel == "posix" || rel == "right") it.disable_recursion_pending();
        continue;
      }
      if (!valid_zone_name(rel) || rel == "posixrules" || rel == "localtime" ||
          rel == "leapseconds" || rel == "SECURITY") {
        continue;  // also drops zone.tab, tzdata.zi and the like (they have a '.')
      }
      out.emplace(text::to_lower_copy(rel), rel);
      if (out.size() > 5000) break;  // a zone directory has about 600 zones and 1,200 links
    }
    return out;
  }();
  return index;
}

// The zone of an exact name from zone_index(); nullptr when libical cannot
// load it. Loaded zones are remembered (libical keeps them for the process).
icaltimezone* load_zone(const std::string& name) {
  const std::lock_guard lock(libical_zone_mutex());
  static std::map<std::string, icaltimezone*> loaded;
  if (const auto it = loaded.find(name); it != loaded.end()) return it->second;
  icaltimezone* z = icaltimezone_get_builtin_timezone(name.c_str());
  icalerror_clear_errno();
  if (z != nullptr) {
    // Load and expand the rules now, under the lock: libical does it lazily and
    // without a lock of its own on first use.
    icaltimetype probe = icaltime_from_day_of_year(1, 2000);
    int dst = 0;
    icaltimezone_get_utc_offset(z, &probe, &dst);
    loaded.emplace(name, z);
  }
  return z;
}

std::optional<std::string> indexed_name(std::string_view candidate) {
  if (!valid_zone_name(candidate)) return std::nullopt;
  const auto& index = zone_index();
  const auto it = index.find(text::to_lower_copy(candidate));
  if (it == index.end()) return std::nullopt;
  return it->second;
}

// The IANA zone CLDR maps a Windows zone name to (its "001" territory).
std::optional<std::string> windows_zone(std::string_view windows_name) {
  if (windows_name.empty() || windows_name.size() > 80) return std::nullopt;
  std::vector<UChar> in;
  for (char c : windows_name) {
    if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
    in.push_back(static_cast<UChar>(c));
  }
  UChar out[128];
  UErrorCode status = U_ZERO_ERROR;
  const int32_t n = ucal_getTimeZoneIDForWindowsID(in.data(), static_cast<int32_t>(in.size()),
                                                   nullptr, out, 128, &status);
  if (U_FAILURE(status) || n <= 0 || n >= 128) return std::nullopt;
  std::string id;
  for (int32_t i = 0; i < n; ++i) {
    if (out[i] >= 0x80) return std::nullopt;
    id.push_back(static_cast<char>(out[i]));
  }
  return id;
}

std::string strip_quotes(std::string_view s) {
  s = text::trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"')
    s = text::trim(s.substr(1, s.size() - 2));
  return std::string(s);
}

std::optional<std::string> resolve_name(std::string_view tzid) {
  const std::string name = strip_quotes(tzid);
  if (name.empty()) return std::nullopt;
  // The name itself, then every tail after a '/': "/mozilla.org/20070129_1/Europe/Berlin",
  // "/softwarestudio.org/Olson_20011030_5/America/New_York", "/citadel.org/.../Europe/Paris".
  if (auto n = indexed_name(name)) return n;
  for (std::size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
    if (auto n = indexed_name(std::string_view(name).substr(p + 1))) return n;
  }
  if (auto w = windows_zone(name)) {
    if (auto n = indexed_name(*w)) return n;
  }
  return std::nullopt;
}

// ---- VTIMEZONE checks -----------------------------------------------------------

constexpr int max_observances = 400;
constexpr int max_rule_observances = 32;
constexpr int max_rdates = 2000;
constexpr int max_offset = 18 * 3600;

int count_by(const short* a, int size) {
  int n = 0;
  while (n < size && a[n] != ICAL_RECURRENCE_ARRAY_MAX) ++n;
  return n;
}

std::string check_rule(const icalrecurrencetype& r) {
  if (r.freq != ICAL_YEARLY_RECURRENCE) return "an observance's RRULE is not FREQ=YEARLY";
  if (r.interval < 1) return "an observance's RRULE has a bad INTERVAL";
  if (count_by(r.by_second, ICAL_BY_SECOND_SIZE) > 0 ||
      count_by(r.by_minute, ICAL_BY_MINUTE_SIZE) > 0 ||
      count_by(r.by_hour, ICAL_BY_HOUR_SIZE) > 0 ||
      count_by(r.by_year_day, ICAL_BY_YEARDAY_SIZE) > 0 ||
      count_by(r.by_week_no, ICAL_BY_WEEKNO_SIZE) > 0) {
    return "an observance's RRULE has BYSECOND, BYMINUTE, BYHOUR, BYYEARDAY or BYWEEKNO";
  }
  if (count_by(r.by_month, ICAL_BY_MONTH_SIZE) > 1 || count_by(r.by_day, ICAL_BY_DAY_SIZE) > 1 ||
      count_by(r.by_month_day, ICAL_BY_MONTHDAY_SIZE) > 7 ||
      count_by(r.by_set_pos, ICAL_BY_SETPOS_SIZE) > 1) {
    return "an observance's RRULE names more than one transition a year";
  }
  if (r.rscale != nullptr) return "an observance's RRULE has RSCALE";
  return {};
}

}  // namespace

std::mutex& libical_zone_mutex() {
  static std::mutex m;
  return m;
}

std::int64_t days_from_civil(std::int64_t y, int m, int d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(std::int64_t z, int& y, int& m, int& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

std::int64_t civil_seconds(const icaltimetype& t) noexcept {
  const std::int64_t days = days_from_civil(t.year, t.month, t.day);
  if (t.is_date) return days * 86400;
  return days * 86400 + t.hour * 3600 + t.minute * 60 + t.second;
}

icaltimetype civil_from_seconds(std::int64_t unix) noexcept {
  std::int64_t days = unix / 86400;
  std::int64_t rem = unix % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  icaltimetype t = icaltime_null_time();
  civil_from_days(days, t.year, t.month, t.day);
  t.hour = static_cast<int>(rem / 3600);
  t.minute = static_cast<int>(rem / 60 % 60);
  t.second = static_cast<int>(rem % 60);
  t.is_date = 0;
  t.zone = nullptr;
  return t;
}

std::string format_utc(std::int64_t unix) {
  const icaltimetype t = civil_from_seconds(unix);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", t.year, t.month, t.day, t.hour,
                t.minute, t.second);
  return buf;
}

std::string format_date(const icaltimetype& t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", t.year, t.month, t.day);
  return buf;
}

icaltimezone* system_zone(std::string_view tzid, std::string* name) {
  const std::optional<std::string> n = resolve_name(tzid);
  if (!n) return nullptr;
  icaltimezone* z = load_zone(*n);
  if (z != nullptr && name != nullptr) *name = *n;
  return z;
}

std::string check_vtimezone(icalcomponent* vtz) {
  if (icalcomponent_get_first_property(vtz, ICAL_TZID_PROPERTY) == nullptr) return "no TZID";
  int observances = 0, rule_observances = 0, rdates = 0;
  for (icalcomponent* c = icalcomponent_get_first_component(vtz, ICAL_ANY_COMPONENT); c != nullptr;
       c = icalcomponent_get_next_component(vtz, ICAL_ANY_COMPONENT)) {
    const icalcomponent_kind kind = icalcomponent_isa(c);
    if (kind != ICAL_XSTANDARD_COMPONENT && kind != ICAL_XDAYLIGHT_COMPONENT) continue;
    if (++observances > max_observances) return "more than 400 STANDARD/DAYLIGHT observances";
    int rules = 0;
    bool has_start = false, has_to = false;
    for (icalproperty* p = icalcomponent_get_first_property(c, ICAL_ANY_PROPERTY); p != nullptr;
         p = icalcomponent_get_next_property(c, ICAL_ANY_PROPERTY)) {
      switch (icalproperty_isa(p)) {
        case ICAL_DTSTART_PROPERTY: {
          icaltimetype t = icalproperty_get_dtstart(p);
          if (icaltime_is_null_time(t) || !icaltime_is_valid_time(t) || t.month < 1 ||
              t.month > 12 || t.day < 1 || t.day > 31) {
            return "an observance's DTSTART is unreadable";
          }
          if (t.year > 2500) return "an observance starts after 2500";
          if (t.year < 1900) {
            // libical expands every year from DTSTART on; Outlook writes 1601.
            t.year = 1900;
            if (t.month == 2 && t.day == 29) t.day = 28;
            icalproperty_set_dtstart(p, t);
          }
          has_start = true;
          break;
        }
        case ICAL_TZOFFSETTO_PROPERTY:
          if (std::abs(icalproperty_get_tzoffsetto(p)) > max_offset) return "TZOFFSETTO over 18h";
          has_to = true;
          break;
        case ICAL_TZOFFSETFROM_PROPERTY:
          if (std::abs(icalproperty_get_tzoffsetfrom(p)) > max_offset) {
            return "TZOFFSETFROM over 18h";
          }
          break;
        case ICAL_RRULE_PROPERTY: {
          if (++rules > 1) return "an observance has more than one RRULE";
          if (++rule_observances > max_rule_observances) {
            return "more than 32 observances with an RRULE";
          }
          const icalrecurrencetype r = icalproperty_get_rrule(p);
          if (std::string why = check_rule(r); !why.empty()) return why;
          break;
        }
        case ICAL_RDATE_PROPERTY:
          if (++rdates > max_rdates) return "more than 2000 RDATEs";
          break;
        default:
          break;
      }
    }
    if (!has_start || !has_to) return "an observance lacks DTSTART or TZOFFSETTO";
  }
  if (observances == 0) return "no STANDARD or DAYLIGHT observance";
  return {};
}

void init_libical() {
  static std::once_flag once;
  std::call_once(once, [] {
    icalerror_set_errors_are_fatal(0);
    for (icalerrorenum e :
         {ICAL_BADARG_ERROR, ICAL_NEWFAILED_ERROR, ICAL_ALLOCATION_ERROR, ICAL_MALFORMEDDATA_ERROR,
          ICAL_PARSE_ERROR, ICAL_INTERNAL_ERROR, ICAL_FILE_ERROR, ICAL_USAGE_ERROR,
          ICAL_UNIMPLEMENTED_ERROR, ICAL_UNKNOWN_ERROR}) {
      icalerror_set_error_state(e, ICAL_ERROR_NONFATAL);
    }
    (void)zone_index();
  });
}

}  // namespace crmcap::ical::detail

namespace crmcap::ical {

std::string system_zone_name(std::string_view tzid) {
  detail::init_libical();
  std::string name;
  if (detail::system_zone(tzid, &name) == nullptr) return {};
  return name;
}

}  // namespace crmcap::ical
