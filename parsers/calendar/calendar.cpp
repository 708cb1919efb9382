// SPDX-License-Identifier: Apache-2.0
// parse(): libical reads the syntax; VEVENTs, time zones, recurrence expansion
// and overrides are handled here.
//
// Why not libical's helpers: icalcomponent_foreach_recurrence (3.0.16) keeps a
// master occurrence that a RECURRENCE-ID overrides, spans all-day events over
// two days, expands floating times as UTC and has no bound; its TZID lookup is
// case-sensitive and leaves an unknown zone floating without a word. So each
// time property is read as wall time plus a zone resolved here (zones.cpp), and
// icalrecur_iterator is driven directly, with caps, skipping to the window.
#include "parsers/calendar/calendar.hpp"

#include "parsers/calendar/detail.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <unordered_map>

namespace crmcap::ical {
namespace {

using detail::civil_from_seconds;
using detail::civil_seconds;
using detail::days_from_civil;
using detail::format_date;
using detail::format_utc;

class ParseCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.ical.parse"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::empty_input:
        return "empty input";
      case Errc::too_large:
        return "calendar object larger than the size limit";
      case Errc::not_icalendar:
        return "not an iCalendar object";
      case Errc::bad_structure:
        return "iCalendar structure broken";
      case Errc::bad_options:
        return "bad parse options";
      case Errc::limit_exceeded:
        return "a limit of the calendar parser was reached";
      case Errc::bad_event:
        return "VEVENT unreadable";
    }
    return "unknown calendar parse error";
  }
};

constexpr std::size_t max_notes = 32;
constexpr std::size_t max_warnings = 64;
constexpr std::size_t max_depth = 16;            // BEGIN nesting; real objects use 3
constexpr std::size_t max_vtimezones_used = 50;  // per object; each is expanded by libical
constexpr int min_year = 1800;
constexpr int max_year = 2500;
constexpr std::int64_t day = 86400;
// Over all series of one object; libical's iterator is the costly part.
constexpr std::size_t max_total_iterations = 200000;
constexpr auto time_budget = std::chrono::milliseconds(400);

void add_note(std::vector<std::string>& notes, std::string n) {
  if (notes.size() < max_notes && std::find(notes.begin(), notes.end(), n) == notes.end()) {
    notes.push_back(text::repair_utf8(n));
  }
}

struct ComponentFree {
  void operator()(icalcomponent* c) const noexcept { icalcomponent_free(c); }
};
using ComponentPtr = std::unique_ptr<icalcomponent, ComponentFree>;
struct IteratorFree {
  void operator()(icalrecur_iterator* i) const noexcept { icalrecur_iterator_free(i); }
};
using IteratorPtr = std::unique_ptr<icalrecur_iterator, IteratorFree>;
struct ZoneFree {
  void operator()(icaltimezone* z) const noexcept { icaltimezone_free(z, 1); }
};
using ZonePtr = std::unique_ptr<icaltimezone, ZoneFree>;

std::string str(const char* s) { return s == nullptr ? std::string() : std::string(s); }

std::string upper(std::string_view s) {
  std::string out(text::trim(s));
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text::repair_utf8(out);
}

std::string param(icalproperty* p, const char* name) {
  return str(icalproperty_get_parameter_as_string(p, name));
}

// ---- zones ----------------------------------------------------------------------

// A resolved zone; tz == nullptr means UTC. `shared` zones are libical's
// process-wide system zones.
struct Zone {
  icaltimezone* tz = nullptr;
  bool shared = false;
  std::string name = "UTC";
  std::string note;  // set when the zone is a fallback
};

// UTC seconds of a wall-clock time (or a date's midnight) in `z`.
std::int64_t to_unix(icaltimetype local, const Zone& z) {
  local.zone = nullptr;
  if (local.is_date) {
    local.is_date = 0;
    local.hour = local.minute = local.second = 0;
  }
  int offset = 0;
  if (z.tz != nullptr) {
    int dst = 0;
    if (z.shared) {
      // libical expands a zone's changes lazily, without a lock of its own.
      const std::lock_guard lock(detail::libical_zone_mutex());
      offset = icaltimezone_get_utc_offset(z.tz, &local, &dst);
    } else {
      offset = icaltimezone_get_utc_offset(z.tz, &local, &dst);
    }
  }
  return civil_seconds(local) - offset;
}

// The VTIMEZONEs checked and built so far, across parse() calls. CalDAV
// clients store the VTIMEZONE with each event, and libical expands a zone's
// changes (every year from its first observance) on its first conversion:
// built anew per object, that was half of a first sync's CPU. An entry is
// keyed by the VTIMEZONE's text as libical writes it, TZID included, and a
// hit compares that whole text: two definitions under one TZID never share a
// zone. A refused VTIMEZONE is kept with its reason, so that a hostile one
// repeated costs its check once. At most `capacity` entries; the least
// recently used goes first. Not locked: parse() holds its one_at_a_time
// mutex around every use (libical's zones have no lock of their own).
class ZoneCache {
 public:
  struct Entry {
    std::shared_ptr<icaltimezone> zone;  // null when refused
    std::string why_not;                 // the reason it was refused
  };

  // The zone of `vtimezone` (which is not changed), checked and built on
  // first use. The entry stays valid while the caller holds it.
  Entry get(icalcomponent* vtimezone) {
    char* text = icalcomponent_as_ical_string_r(vtimezone);
    std::string key = text == nullptr ? std::string() : std::string(text);
    std::free(text);
    if (const auto it = slots_.find(key); it != slots_.end()) {
      it->second.used = ++tick_;
      return it->second.entry;
    }
    if (slots_.size() >= capacity) {
      auto oldest = slots_.begin();
      for (auto it = slots_.begin(); it != slots_.end(); ++it) {
        if (it->second.used < oldest->second.used) oldest = it;
      }
      slots_.erase(oldest);
    }
    return slots_.emplace(std::move(key), Slot{build(vtimezone), ++tick_}).first->second.entry;
  }

 private:
  static constexpr std::size_t capacity = 64;

  static Entry build(icalcomponent* vtimezone) {
    ComponentPtr clone(icalcomponent_new_clone(vtimezone));
    if (!clone) return {nullptr, "could not be copied"};
    if (std::string why = detail::check_vtimezone(clone.get()); !why.empty()) {
      return {nullptr, std::move(why)};
    }
    ZonePtr z(icaltimezone_new());
    if (!z || !icaltimezone_set_component(z.get(), clone.get())) {
      return {nullptr, "refused by libical"};
    }
    clone.release();  // the zone owns it now
    return {std::shared_ptr<icaltimezone>(z.release(), ZoneFree{}), {}};
  }

  struct Slot {
    Entry entry;
    std::uint64_t used = 0;  // tick_ at its last use
  };
  std::unordered_map<std::string, Slot> slots_;
  std::uint64_t tick_ = 0;
};

// The zones of one object: its VTIMEZONEs (built through `cache`), then the
// system database, then the calendar's X-WR-TIMEZONE, then UTC. Each TZID is
// resolved once.
class ZoneBook {
 public:
  ZoneBook(const std::vector<icalcomponent*>& vtimezones, std::string x_wr_timezone,
           const std::string& floating_zone, ZoneCache& cache, std::vector<std::string>& warnings)
      : x_wr_(std::move(x_wr_timezone)), warnings_(warnings), zone_cache_(cache) {
    for (icalcomponent* v : vtimezones) {
      icalproperty* p = icalcomponent_get_first_property(v, ICAL_TZID_PROPERTY);
      const std::string tzid(text::trim(p == nullptr ? "" : str(icalproperty_get_tzid(p))));
      if (!tzid.empty()) vtimezones_.emplace(tzid, v);
    }
    std::string name;
    if (icaltimezone* z = detail::system_zone(floating_zone, &name)) {
      floating_ = Zone{z, true, name, {}};
    } else if (!text::trim(floating_zone).empty() && !text::iequals(floating_zone, "UTC")) {
      floating_.note = "floating zone '" + floating_zone + "': unknown; floating times read as UTC";
    }
  }

  const Zone& floating() const { return floating_; }

  const Zone& by_tzid(const std::string& tzid) {
    if (const auto it = cache_.find(tzid); it != cache_.end()) return it->second;
    if (cache_.size() > 500) {
      // A hostile object names thousands of zones: stop looking them up.
      static const Zone utc{nullptr, false, "UTC", "time zone: too many TZIDs; read as UTC"};
      return utc;
    }
    return cache_.emplace(tzid, resolve(tzid)).first->second;
  }

 private:
  Zone resolve(const std::string& tzid) {
    std::string why_not;
    icalcomponent* v = find_vtimezone(tzid);
    if (v != nullptr) {
      if (used_.size() >= max_vtimezones_used) {
        why_not = "more than 50 VTIMEZONEs in use";
      } else {
        ZoneCache::Entry e = zone_cache_.get(v);
        if (e.zone) {
          used_.push_back(std::move(e.zone));
          return Zone{used_.back().get(), false, tzid, {}};
        }
        why_not = std::move(e.why_not);
      }
      add_warning("VTIMEZONE '" + tzid + "' ignored: " + why_not);
    }
    std::string name;
    if (icaltimezone* z = detail::system_zone(tzid, &name)) {
      Zone out{z, true, name, {}};
      if (!why_not.empty()) out.note = "TZID '" + tzid + "': VTIMEZONE ignored; using " + name;
      return out;
    }
    if (!x_wr_.empty()) {
      if (icaltimezone* z = detail::system_zone(x_wr_, &name)) {
        return Zone{
            z, true, name,
            "TZID '" + tzid + "': unknown zone; using the calendar's X-WR-TIMEZONE " + name};
      }
    }
    return Zone{nullptr, false, "UTC", "TZID '" + tzid + "': unknown zone; times read as UTC"};
  }

  icalcomponent* find_vtimezone(const std::string& tzid) const {
    if (const auto it = vtimezones_.find(tzid); it != vtimezones_.end()) return it->second;
    for (const auto& [name, v] : vtimezones_) {
      if (text::iequals(name, tzid)) return v;
    }
    return nullptr;
  }

  void add_warning(std::string w) {
    if (warnings_.size() < max_warnings &&
        std::find(warnings_.begin(), warnings_.end(), w) == warnings_.end()) {
      warnings_.push_back(text::repair_utf8(w));
    }
  }

  std::map<std::string, icalcomponent*> vtimezones_;
  std::string x_wr_;
  std::vector<std::string>& warnings_;
  Zone floating_;
  std::map<std::string, Zone> cache_;
  ZoneCache& zone_cache_;
  // The object's VTIMEZONE zones, held while it is read (the cache may drop
  // them meanwhile).
  std::vector<std::shared_ptr<icaltimezone>> used_;
};

// ---- time values -----------------------------------------------------------------

// A DATE or DATE-TIME value with its zone.
struct Stamp {
  icaltimetype local{};  // wall time in `zone` (a date: is_date set)
  const Zone* zone = nullptr;
  bool is_date = false;
  bool floating = false;
  std::string tzid;
  std::int64_t unix = 0;
};

bool sane(const icaltimetype& t) {
  if (icaltime_is_null_time(t) || t.year < min_year || t.year > max_year || t.month < 1 ||
      t.month > 12 || t.day < 1 || t.day > icaltime_days_in_month(t.month, t.year)) {
    return false;
  }
  if (t.is_date) return true;
  return t.hour >= 0 && t.hour < 24 && t.minute >= 0 && t.minute < 60 && t.second >= 0 &&
         t.second <= 60;
}

When when_of(const Stamp& s) {
  When w;
  w.unix = s.unix;
  w.utc = format_utc(s.unix);
  if (s.is_date) w.date = format_date(s.local);
  return w;
}

// Reads `t` (a value of `p`) with the zone its TZID names, "Z", or none.
// `base` gives the zone of floating values when set (RDATE, EXDATE and
// RECURRENCE-ID follow DTSTART's zone); else they are floating.
std::optional<Stamp> make_stamp(icalproperty* p, icaltimetype t, ZoneBook& zones, const Stamp* base,
                                std::string& why) {
  if (!sane(t)) {
    why = "unreadable or out of range (years 1800-2500)";
    return std::nullopt;
  }
  Stamp s;
  s.is_date = t.is_date != 0;
  if (s.is_date) {
    t.hour = t.minute = t.second = 0;
    s.zone = &zones.floating();
  } else if (icaltime_is_utc(t)) {
    static const Zone utc;
    s.zone = &utc;
  } else if (const std::string tzid(text::trim(param(p, "TZID"))); !tzid.empty()) {
    s.tzid = text::repair_utf8(tzid);
    s.zone = &zones.by_tzid(tzid);
  } else if (base != nullptr && !base->is_date) {
    s.zone = base->zone;
    s.floating = base->floating;
  } else {
    s.floating = true;
    s.zone = &zones.floating();
  }
  if (s.is_date && base != nullptr && !base->is_date) {
    // A date where the series has date-times: midnight in the series' zone.
    s.zone = base->zone;
  }
  t.zone = nullptr;
  s.local = t;
  s.unix = to_unix(t, *s.zone);
  return s;
}

std::optional<Stamp> read_time(icalproperty* p, ZoneBook& zones, const Stamp* base,
                               std::string& why) {
  icalvalue* v = icalproperty_get_value(p);
  if (v == nullptr) {
    why = "no value";
    return std::nullopt;
  }
  icaltimetype t;
  switch (icalvalue_isa(v)) {
    case ICAL_DATETIME_VALUE:
      t = icalvalue_get_datetime(v);
      break;
    case ICAL_DATE_VALUE:
      t = icalvalue_get_date(v);
      break;
    case ICAL_DATETIMEPERIOD_VALUE:
      t = icalvalue_get_datetimeperiod(v).time;
      break;
    default:
      why = "not a DATE or DATE-TIME";
      return std::nullopt;
  }
  return make_stamp(p, t, zones, base, why);
}

std::int64_t duration_seconds(const icaldurationtype& d) {
  const std::int64_t s = static_cast<std::int64_t>(d.weeks) * 7 * day +
                         static_cast<std::int64_t>(d.days) * day +
                         static_cast<std::int64_t>(d.hours) * 3600 +
                         static_cast<std::int64_t>(d.minutes) * 60 + d.seconds;
  return d.is_neg ? -s : s;
}

icaltimetype add_days(icaltimetype date, std::int64_t days) {
  int y = 0, m = 0, d = 0;
  detail::civil_from_days(days_from_civil(date.year, date.month, date.day) + days, y, m, d);
  date.year = y;
  date.month = m;
  date.day = d;
  return date;
}

std::int64_t days_of(const icaltimetype& t) { return days_from_civil(t.year, t.month, t.day); }

// ---- participants and text ----------------------------------------------------------

std::string normalize_address(std::string_view a) {
  a = text::trim(a);
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>')
    a = text::trim(a.substr(1, a.size() - 2));
  const std::size_t at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) return {};
  if (a.find_first_of(" \t\r\n<>,;:\"") != std::string_view::npos) return {};
  std::string out(a.substr(0, at + 1));
  out += text::to_lower_copy(a.substr(at + 1));
  return text::repair_utf8(out);
}

Participant read_participant(icalproperty* p, bool organizer) {
  Participant out;
  const std::string value(text::trim(str(icalproperty_get_value_as_string(p))));
  if (value.size() > 7 && text::iequals(std::string_view(value).substr(0, 7), "mailto:")) {
    out.address = normalize_address(std::string_view(value).substr(7));
  }
  if (out.address.empty()) out.address = normalize_address(param(p, "EMAIL"));
  out.name = text::repair_utf8(text::trim(param(p, "CN")));
  if (out.name.size() >= 2 && out.name.front() == '"' && out.name.back() == '"') {
    out.name = out.name.substr(1, out.name.size() - 2);
  }
  if (!organizer) {
    out.partstat = upper(param(p, "PARTSTAT"));
    if (out.partstat.empty()) out.partstat = "NEEDS-ACTION";
    out.role = upper(param(p, "ROLE"));
    if (out.role.empty()) out.role = "REQ-PARTICIPANT";
    out.cutype = upper(param(p, "CUTYPE"));
    if (out.cutype.empty()) out.cutype = "INDIVIDUAL";
    out.resource = out.cutype == "ROOM" || out.cutype == "RESOURCE";
    out.rsvp = text::iequals(text::trim(param(p, "RSVP")), "TRUE");
  }
  return out;
}

bool conference_host(std::string_view host) {
  const auto ends_with = [&](std::string_view suffix) {
    return host == suffix || (host.size() > suffix.size() && host.ends_with(suffix) &&
                              host[host.size() - suffix.size() - 1] == '.');
  };
  return ends_with("teams.microsoft.com") || ends_with("teams.live.com") || ends_with("zoom.us") ||
         ends_with("zoomgov.com") || host == "meet.google.com" || ends_with("webex.com");
}

void find_conference_urls(std::string_view s, std::vector<std::string>& out) {
  for (std::size_t p = 0; out.size() < 8;) {
    std::size_t found = std::string_view::npos;
    for (std::size_t i = p; i + 8 <= s.size(); ++i) {
      if (text::iequals(s.substr(i, 8), "https://")) {
        found = i;
        break;
      }
    }
    if (found == std::string_view::npos) return;
    std::size_t e = found + 8;
    while (e < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[e]);
      if (c <= ' ' || c == '"' || c == '<' || c == '>' || c == '\'' || c == '\\' || c == '`' ||
          c >= 0x80) {
        break;
      }
      ++e;
    }
    std::string_view url = s.substr(found, e - found);
    while (!url.empty() && (url.back() == '.' || url.back() == ',' || url.back() == ';' ||
                            url.back() == ')' || url.back() == ']')) {
      url.remove_suffix(1);
    }
    std::string_view host = url.substr(8);
    host = host.substr(0, host.find_first_of("/?#:"));
    if (conference_host(text::to_lower_copy(host)) && url.size() <= 2048) {
      std::string u(url);
      if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(std::move(u));
    }
    p = e;
  }
}

std::string text_value(icalproperty* p) {
  if (p == nullptr) return {};
  icalvalue* v = icalproperty_get_value(p);
  if (v == nullptr) return {};
  const icalvalue_kind k = icalvalue_isa(v);
  if (k == ICAL_TEXT_VALUE) return str(icalvalue_get_text(v));
  if (k == ICAL_URI_VALUE) return str(icalvalue_get_uri(v));
  return str(icalproperty_get_value_as_string(p));
}

std::string first_text(icalcomponent* c, icalproperty_kind kind) {
  return text_value(icalcomponent_get_first_property(c, kind));
}

// libical's reports inside `c` (X-LIC-ERROR properties, also in VALARMs).
void collect_lic_errors(icalcomponent* c, std::vector<std::string>& notes, int depth = 0) {
  for (icalproperty* p = icalcomponent_get_first_property(c, ICAL_XLICERROR_PROPERTY); p != nullptr;
       p = icalcomponent_get_next_property(c, ICAL_XLICERROR_PROPERTY)) {
    std::string type = param(p, "X-LIC-ERRORTYPE");
    add_note(notes, "libical: " + (type.empty() ? std::string() : type + ": ") +
                        std::string(text::trim(str(icalproperty_get_xlicerror(p)))));
  }
  if (depth > 2) return;
  for (icalcomponent* s = icalcomponent_get_first_component(c, ICAL_ANY_COMPONENT); s != nullptr;
       s = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT)) {
    if (icalcomponent_isa(s) != ICAL_VEVENT_COMPONENT) collect_lic_errors(s, notes, depth + 1);
  }
}

// ---- VEVENTs ---------------------------------------------------------------------

struct Event {
  icalcomponent* comp = nullptr;
  int index = 0;  // 1-based among the object's VEVENTs
  std::string uid;
  std::optional<Stamp> rid;
  bool this_and_future = false;
  Stamp start;
  std::int64_t duration = 0;       // seconds (date-times)
  std::int64_t duration_days = 1;  // all-day
  bool recurring = false;          // RRULE or RDATE
  Meeting proto;                   // everything but the times and recurrence_id
};

std::string where(const Event& e) {
  return "VEVENT " + std::to_string(e.index) + (e.uid.empty() ? "" : " (UID " + e.uid + ")");
}

// Reads one VEVENT; on failure returns nullopt with `why` set.
std::optional<Event> read_event(icalcomponent* c, int index, ZoneBook& zones, const ParseOptions& o,
                                std::string& why) {
  Event e;
  e.comp = c;
  e.index = index;
  e.uid = text::repair_utf8(text::trim(first_text(c, ICAL_UID_PROPERTY)));
  Meeting& m = e.proto;
  collect_lic_errors(c, m.notes);

  if (e.uid.empty()) {
    why = where(e) + ": no UID";
    return std::nullopt;
  }
  if (e.uid.size() > 1024) {
    why = where(e).substr(0, 200) + "...: UID longer than 1024 bytes";
    return std::nullopt;
  }
  icalproperty* dtstart = icalcomponent_get_first_property(c, ICAL_DTSTART_PROPERTY);
  if (dtstart == nullptr) {
    why = where(e) + ": no DTSTART";
    return std::nullopt;
  }
  std::string time_why;
  auto start = read_time(dtstart, zones, nullptr, time_why);
  if (!start) {
    why = where(e) + ": DTSTART " + time_why;
    return std::nullopt;
  }
  e.start = *start;
  if (!e.start.zone->note.empty()) add_note(m.notes, e.start.zone->note);

  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_DTEND_PROPERTY)) {
    auto end = read_time(p, zones, &e.start, time_why);
    if (!end) {
      add_note(m.notes, "DTEND " + time_why + "; ignored");
    } else if (e.start.is_date) {
      e.duration_days = days_of(end->local) - days_of(e.start.local);
    } else {
      e.duration = end->unix - e.start.unix;
      if (!end->zone->note.empty()) add_note(m.notes, end->zone->note);
    }
  } else if (icalproperty* d = icalcomponent_get_first_property(c, ICAL_DURATION_PROPERTY)) {
    const std::int64_t s = duration_seconds(icalproperty_get_duration(d));
    if (e.start.is_date) {
      e.duration_days = s / day;
    } else {
      e.duration = s;
    }
  }
  if (e.start.is_date && e.duration_days < 1) {
    add_note(m.notes, "all-day event ends before it starts; taken as one day");
    e.duration_days = 1;
  }
  if (e.duration < 0) {
    add_note(m.notes, "event ends before it starts; taken as no duration");
    e.duration = 0;
  }
  e.duration_days = std::min<std::int64_t>(e.duration_days, 3660);
  e.duration = std::min<std::int64_t>(e.duration, 3660 * day);

  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_RECURRENCEID_PROPERTY)) {
    e.rid = read_time(p, zones, &e.start, time_why);
    if (!e.rid) {
      why = where(e) + ": RECURRENCE-ID " + time_why;
      return std::nullopt;
    }
    e.this_and_future = text::iequals(text::trim(param(p, "RANGE")), "THISANDFUTURE");
  }
  e.recurring = icalcomponent_get_first_property(c, ICAL_RRULE_PROPERTY) != nullptr ||
                icalcomponent_get_first_property(c, ICAL_RDATE_PROPERTY) != nullptr;

  m.uid = e.uid;
  m.all_day = e.start.is_date;
  m.tzid = e.start.tzid;
  m.zone = e.start.zone->name;
  m.floating = e.start.floating;
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_SEQUENCE_PROPERTY)) {
    m.sequence = std::max(0, icalproperty_get_sequence(p));
  }
  m.summary = text::repair_utf8(text::trim(first_text(c, ICAL_SUMMARY_PROPERTY)));
  const std::string description = text::repair_utf8(first_text(c, ICAL_DESCRIPTION_PROPERTY));
  m.description = text::truncate_utf8(text::fold_whitespace(description), o.description_chars);
  m.location = text::repair_utf8(text::trim(first_text(c, ICAL_LOCATION_PROPERTY)));
  m.url = text::repair_utf8(text::trim(first_text(c, ICAL_URL_PROPERTY)));

  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_STATUS_PROPERTY)) {
    const std::string s = upper(str(icalproperty_get_value_as_string(p)));
    if (s == "CONFIRMED") m.status = Status::confirmed;
    if (s == "TENTATIVE") m.status = Status::tentative;
    if (s == "CANCELLED") m.status = Status::cancelled;
  }
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_CLASS_PROPERTY)) {
    m.klass = upper(str(icalproperty_get_value_as_string(p)));
  }
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_TRANSP_PROPERTY)) {
    m.transp = upper(str(icalproperty_get_value_as_string(p)));
  }
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_ORGANIZER_PROPERTY)) {
    m.organizer = read_participant(p, true);
  }
  for (icalproperty* p = icalcomponent_get_first_property(c, ICAL_ATTENDEE_PROPERTY); p != nullptr;
       p = icalcomponent_get_next_property(c, ICAL_ATTENDEE_PROPERTY)) {
    if (m.attendees.size() >= 1000) {
      add_note(m.notes, "attendees: more than 1000; the rest dropped");
      break;
    }
    Participant a = read_participant(p, false);
    const bool dup = !a.address.empty() &&
                     std::any_of(m.attendees.begin(), m.attendees.end(), [&](const Participant& b) {
                       return text::iequals(a.address, b.address);
                     });
    if (!dup) m.attendees.push_back(std::move(a));
  }
  find_conference_urls(m.url, m.conference_urls);
  find_conference_urls(m.location, m.conference_urls);
  find_conference_urls(description, m.conference_urls);
  for (icalproperty* p = icalcomponent_get_first_property(c, ICAL_X_PROPERTY); p != nullptr;
       p = icalcomponent_get_next_property(c, ICAL_X_PROPERTY)) {
    if (text::iequals(str(icalproperty_get_x_name(p)), "X-GOOGLE-CONFERENCE")) {
      find_conference_urls(str(icalproperty_get_x(p)), m.conference_urls);
    }
  }
  return e;
}

// ---- recurrence ------------------------------------------------------------------

struct Window {
  std::int64_t start = 0;
  std::int64_t end = 0;
  bool overlaps(std::int64_t s, std::int64_t e) const {
    return s <= end && (e > start || s >= start);
  }
};

// One occurrence of a series, before overrides.
struct Occurrence {
  Stamp original;  // the original start (RECURRENCE-ID), in the series' zone
  std::int64_t start = 0, end = 0;
  icaltimetype start_date{}, end_date{};  // all-day
};

struct Budget {
  std::size_t iterations = 0;
  std::chrono::steady_clock::time_point deadline;
  bool spent() const {
    return iterations > max_total_iterations || std::chrono::steady_clock::now() > deadline;
  }
};

struct Expansion {
  std::map<std::int64_t, Occurrence> occurrences;  // by original start (unix)
  std::string failure;                             // the series could not be expanded
  std::error_code failure_code;
  std::vector<std::string> notes;
};

int by_count(const short* a, int size) {
  int n = 0;
  while (n < size && a[n] != ICAL_RECURRENCE_ARRAY_MAX) ++n;
  return n;
}

// Why a rule cannot be expanded safely (libical would search for years
// inside a single call), or empty.
std::string unsafe_rule(const icalrecurrencetype& r) {
  if (r.rscale != nullptr) return "RSCALE is not supported";
  const bool date_filters = by_count(r.by_month, ICAL_BY_MONTH_SIZE) > 0 ||
                            by_count(r.by_month_day, ICAL_BY_MONTHDAY_SIZE) > 0 ||
                            by_count(r.by_year_day, ICAL_BY_YEARDAY_SIZE) > 0 ||
                            by_count(r.by_week_no, ICAL_BY_WEEKNO_SIZE) > 0 ||
                            by_count(r.by_day, ICAL_BY_DAY_SIZE) > 0 ||
                            by_count(r.by_set_pos, ICAL_BY_SETPOS_SIZE) > 0;
  if ((r.freq == ICAL_SECONDLY_RECURRENCE || r.freq == ICAL_MINUTELY_RECURRENCE ||
       r.freq == ICAL_HOURLY_RECURRENCE) &&
      date_filters) {
    return "FREQ=SECONDLY, MINUTELY or HOURLY with a date filter (BYMONTH, BYDAY, ...)";
  }
  // BYMONTH with BYMONTHDAY that no listed month has (FEB 30): libical would
  // search up to the year 20000 for the first one.
  const int months = by_count(r.by_month, ICAL_BY_MONTH_SIZE);
  const int monthdays = by_count(r.by_month_day, ICAL_BY_MONTHDAY_SIZE);
  if (months > 0 && monthdays > 0) {
    bool possible = false;
    for (int i = 0; i < months && !possible; ++i) {
      const int month = icalrecurrencetype_month_month(r.by_month[i]);
      const int length = month == 2                                                ? 29
                         : (month == 4 || month == 6 || month == 9 || month == 11) ? 30
                                                                                   : 31;
      for (int j = 0; j < monthdays && !possible; ++j) {
        possible = std::abs(r.by_month_day[j]) <= length;
      }
    }
    if (!possible) return "BYMONTHDAY names a day none of its BYMONTH months has";
  }
  if (by_count(r.by_year_day, ICAL_BY_YEARDAY_SIZE) > 0 && (months > 0 || monthdays > 0)) {
    return "BYYEARDAY with BYMONTH or BYMONTHDAY";
  }
  if (by_count(r.by_week_no, ICAL_BY_WEEKNO_SIZE) > 0 && (months > 0 || monthdays > 0)) {
    return "BYWEEKNO with BYMONTH or BYMONTHDAY";
  }
  // An ordinal weekday ("5MO") that no period has, or one tied to a day
  // number as well: rules no calendar client writes, which libical would
  // search for up to the year 20000.
  const bool monthly_days =
      r.freq == ICAL_MONTHLY_RECURRENCE || (r.freq == ICAL_YEARLY_RECURRENCE && months > 0);
  const int days = by_count(r.by_day, ICAL_BY_DAY_SIZE);
  for (int i = 0; i < days; ++i) {
    const int pos = std::abs(icalrecurrencetype_day_position(r.by_day[i]));
    if (pos == 0) continue;
    if (pos > (monthly_days ? 5 : 53)) return "BYDAY names a weekday no period has";
    if (monthdays > 0 || by_count(r.by_year_day, ICAL_BY_YEARDAY_SIZE) > 0 ||
        by_count(r.by_week_no, ICAL_BY_WEEKNO_SIZE) > 0) {
      return "BYDAY with a position together with BYMONTHDAY, BYYEARDAY or BYWEEKNO";
    }
  }
  // BYSETPOS picks from the set of one period; beyond its largest possible
  // size it never matches.
  long set = 1;
  const auto times = [&](int n) { set *= std::max(n, 1); };
  times(by_count(r.by_hour, ICAL_BY_HOUR_SIZE));
  times(by_count(r.by_minute, ICAL_BY_MINUTE_SIZE));
  times(by_count(r.by_second, ICAL_BY_SECOND_SIZE));
  long day_set = 1;
  if (r.freq == ICAL_WEEKLY_RECURRENCE) {
    day_set = std::max(days, 1);
  } else if (r.freq == ICAL_MONTHLY_RECURRENCE || r.freq == ICAL_YEARLY_RECURRENCE) {
    const long per_month = monthdays > 0 ? monthdays : days > 0 ? 5L * days : 1;
    if (r.freq == ICAL_MONTHLY_RECURRENCE) {
      day_set = per_month;
    } else if (by_count(r.by_year_day, ICAL_BY_YEARDAY_SIZE) > 0) {
      day_set = by_count(r.by_year_day, ICAL_BY_YEARDAY_SIZE);
    } else if (by_count(r.by_week_no, ICAL_BY_WEEKNO_SIZE) > 0) {
      day_set = 7L * by_count(r.by_week_no, ICAL_BY_WEEKNO_SIZE);
    } else {
      day_set = (months > 0 ? months : 12) * (days > 0 && monthdays == 0 ? 5L * days : per_month);
    }
  }
  set *= day_set;
  for (int i = 0; i < by_count(r.by_set_pos, ICAL_BY_SETPOS_SIZE); ++i) {
    if (r.by_set_pos[i] == 0 || std::abs(r.by_set_pos[i]) > set) {
      return "BYSETPOS beyond the occurrences of a period";
    }
  }
  return {};
}

class Expander {
 public:
  Expander(const Event& master, const Window& window, const ParseOptions& o, ZoneBook& zones,
           Budget& budget)
      : m_(master), window_(window), o_(o), zones_(zones), budget_(budget) {}

  Expansion run() {
    read_exdates();
    add(m_.start.local, std::nullopt);
    for (icalproperty* p = icalcomponent_get_first_property(m_.comp, ICAL_RRULE_PROPERTY);
         p != nullptr && out_.failure.empty();
         p = icalcomponent_get_next_property(m_.comp, ICAL_RRULE_PROPERTY)) {
      expand_rule(p);
    }
    std::size_t rdates = 0;
    for (icalproperty* p = icalcomponent_get_first_property(m_.comp, ICAL_RDATE_PROPERTY);
         p != nullptr && out_.failure.empty() && !full_;
         p = icalcomponent_get_next_property(m_.comp, ICAL_RDATE_PROPERTY)) {
      if (++rdates > o_.max_iterations) {
        add_note(out_.notes, "recurrence: more than max_iterations RDATEs; the rest ignored");
        break;
      }
      add_rdate(p);
    }
    return std::move(out_);
  }

 private:
  void read_exdates() {
    std::string why;
    std::size_t n = 0;
    for (icalproperty* p = icalcomponent_get_first_property(m_.comp, ICAL_EXDATE_PROPERTY);
         p != nullptr; p = icalcomponent_get_next_property(m_.comp, ICAL_EXDATE_PROPERTY)) {
      if (++n > o_.max_iterations) break;
      auto s = read_time(p, zones_, &m_.start, why);
      if (!s) {
        add_note(out_.notes, "EXDATE " + why + "; ignored");
        continue;
      }
      if (s->is_date) {
        exdays_.insert(days_of(s->local));
      } else {
        exinstants_.insert(s->unix);
      }
    }
  }

  // Adds the occurrence starting at wall time `t` in the series' zone (or on
  // date `t`); `end` overrides the series' duration (an RDATE PERIOD).
  void add(icaltimetype t, std::optional<std::int64_t> end) {
    t.zone = nullptr;
    t.is_date = m_.start.is_date ? 1 : 0;
    Occurrence occ;
    occ.original = m_.start;
    occ.original.local = t;
    occ.original.unix = to_unix(t, *m_.start.zone);
    add(std::move(occ), end);
  }

  void add(Occurrence occ, std::optional<std::int64_t> end) {
    const Stamp& s = occ.original;
    if (exinstants_.count(s.unix) != 0 || exdays_.count(days_of(s.local)) != 0) return;
    occ.start = s.unix;
    if (m_.start.is_date) {
      occ.start_date = s.local;
      occ.end_date = add_days(s.local, m_.duration_days);
      occ.end = to_unix(occ.end_date, *s.zone);
    } else {
      occ.end = end.value_or(occ.start + m_.duration);
      if (occ.end < occ.start) occ.end = occ.start;
    }
    if (!window_.overlaps(occ.start, occ.end)) return;
    if (out_.occurrences.size() >= o_.max_occurrences) {
      if (out_.occurrences.count(s.unix) == 0) {
        // More occurrences in the window than a person attends (an endless
        // SECONDLY rule, say): no meeting series, so it fails whole with its
        // reason rather than being captured cut short.
        full_ = true;
        out_.occurrences.clear();
        fail("recurrence not expanded: more than " + std::to_string(o_.max_occurrences) +
                 " occurrences in the window (max_occurrences)",
             Errc::limit_exceeded);
      }
      return;
    }
    out_.occurrences.emplace(s.unix, std::move(occ));
  }

  void add_rdate(icalproperty* p) {
    const icaldatetimeperiodtype v = icalproperty_get_rdate(p);
    std::string why;
    if (!icalperiodtype_is_null_period(v.period)) {
      auto start = make_stamp(p, v.period.start, zones_, &m_.start, why);
      if (!start) {
        add_note(out_.notes, "RDATE period " + why + "; ignored");
        return;
      }
      std::int64_t end = 0;
      if (!icaltime_is_null_time(v.period.end)) {
        auto e = make_stamp(p, v.period.end, zones_, &m_.start, why);
        if (!e) {
          add_note(out_.notes, "RDATE period end " + why + "; ignored");
          return;
        }
        end = e->unix;
      } else {
        end = start->unix + duration_seconds(v.period.duration);
      }
      add_instant(*start, end);
      return;
    }
    auto s = make_stamp(p, v.time, zones_, &m_.start, why);
    if (!s) {
      add_note(out_.notes, "RDATE " + why + "; ignored");
      return;
    }
    add_instant(*s, std::nullopt);
  }

  // An RDATE: a date-time in any zone, turned into the series' wall time.
  void add_instant(const Stamp& s, std::optional<std::int64_t> end) {
    if (m_.start.is_date || s.is_date) {
      add(s.local, end);
      return;
    }
    Occurrence occ;
    occ.original = m_.start;
    occ.original.unix = s.unix;
    // The wall time in the series' zone: shift by that zone's offset.
    icaltimetype local = civil_from_seconds(s.unix);
    const std::int64_t offset = civil_seconds(local) - to_unix(local, *m_.start.zone);
    occ.original.local = civil_from_seconds(s.unix + offset);
    add(std::move(occ), end);
  }

  void fail(std::string why, Errc code = Errc::bad_event) {
    out_.failure = where(m_) + ": " + std::move(why);
    out_.failure_code = make_error_code(code);
  }

  // With COUNT, libical cannot skip ahead: every occurrence from DTSTART on
  // is a step. Answers without iterating when the series surely ends before
  // the window (false, nothing to add) or surely needs more than
  // max_iterations steps to reach it (false, the series fails).
  bool count_can_reach_window(const icalrecurrencetype& rule, const icaltimetype& dtstart) {
    const std::int64_t gap = window_.start - civil_seconds(dtstart) - 2 * day;
    if (gap <= 0) return true;
    std::int64_t period = 0;  // the longest a period of the rule can be
    switch (rule.freq) {
      case ICAL_SECONDLY_RECURRENCE:
        period = 1;
        break;
      case ICAL_MINUTELY_RECURRENCE:
        period = 60;
        break;
      case ICAL_HOURLY_RECURRENCE:
        period = 3600;
        break;
      case ICAL_DAILY_RECURRENCE:
        period = day;
        break;
      case ICAL_WEEKLY_RECURRENCE:
        period = 7 * day;
        break;
      case ICAL_MONTHLY_RECURRENCE:
        period = 31 * day;
        break;
      default:
        period = 366 * day;
        break;
    }
    const long double step = static_cast<long double>(period) * rule.interval;
    const bool plain = by_count(rule.by_second, ICAL_BY_SECOND_SIZE) == 0 &&
                       by_count(rule.by_minute, ICAL_BY_MINUTE_SIZE) == 0 &&
                       by_count(rule.by_hour, ICAL_BY_HOUR_SIZE) == 0 &&
                       by_count(rule.by_day, ICAL_BY_DAY_SIZE) == 0 &&
                       by_count(rule.by_month_day, ICAL_BY_MONTHDAY_SIZE) == 0 &&
                       by_count(rule.by_year_day, ICAL_BY_YEARDAY_SIZE) == 0 &&
                       by_count(rule.by_week_no, ICAL_BY_WEEKNO_SIZE) == 0 &&
                       by_count(rule.by_month, ICAL_BY_MONTH_SIZE) == 0 &&
                       by_count(rule.by_set_pos, ICAL_BY_SETPOS_SIZE) == 0;
    // Without BY parts each period has one occurrence: COUNT periods end it.
    if (plain && static_cast<long double>(rule.count) * step < static_cast<long double>(gap)) {
      return false;
    }
    if (static_cast<long double>(gap) / step > static_cast<long double>(o_.max_iterations)) {
      capped_ = true;
      fail("recurrence not expanded: COUNT series needs more than max_iterations (" +
               std::to_string(o_.max_iterations) + ") steps to reach the window",
           Errc::limit_exceeded);
      return false;
    }
    return true;
  }

  void expand_rule(icalproperty* p) {
    icalrecurrencetype rule = icalproperty_get_rrule(p);
    if (rule.freq == ICAL_NO_RECURRENCE) {
      add_note(out_.notes, "RRULE unreadable; ignored");
      return;
    }
    if (std::string why = unsafe_rule(rule); !why.empty()) {
      fail("RRULE not expanded: " + why);
      return;
    }
    if (rule.interval < 1) rule.interval = 1;
    // UNTIL is checked here, in UTC: libical compares it with the wall times it
    // produces, which is wrong when DTSTART has a zone. libical's UNTIL is set
    // to the end of the window instead, which bounds its inner searches too.
    std::optional<std::int64_t> until;
    std::optional<std::int64_t> until_day;
    if (!icaltime_is_null_time(rule.until)) {
      std::string why;
      icaltimetype u = rule.until;
      if (u.is_date && !m_.start.is_date) {
        until_day = days_of(u);  // a date UNTIL keeps its whole last day
      } else if (auto s = make_stamp(p, u, zones_, &m_.start, why)) {
        until = s->unix;
      } else {
        add_note(out_.notes, "RRULE UNTIL " + why + "; ignored");
      }
    }
    std::int64_t limit = window_.end + 2 * day;
    if (until) limit = std::min(limit, *until + 2 * day);
    if (until_day) limit = std::min(limit, (*until_day + 3) * day);
    rule.until = civil_from_seconds(limit);
    if (m_.start.is_date) {
      rule.until.is_date = 1;
      rule.until.hour = rule.until.minute = rule.until.second = 0;
    }
    icaltimetype dtstart = m_.start.local;
    dtstart.zone = nullptr;
    if (civil_seconds(dtstart) > limit) return;  // the series starts after the window

    if (rule.count > 0 && !count_can_reach_window(rule, dtstart)) return;
    if (!out_.failure.empty()) return;
    if (budget_.spent()) {
      fail("recurrence not expanded: the object's time or iteration budget is spent",
           Errc::limit_exceeded);
      return;
    }
    // Skip to the window: the earliest original start whose occurrence can
    // still reach it (the longest duration, plus two days for zone offsets).
    // Not with COUNT: every occurrence from DTSTART on counts.
    const std::int64_t span = m_.start.is_date ? m_.duration_days * day : m_.duration;
    icaltimetype from = civil_from_seconds(window_.start - span - 2 * day);
    const bool skip = rule.count == 0 && civil_seconds(from) > civil_seconds(dtstart);
    std::int64_t sub_daily = 0;  // the period in seconds of a sub-daily rule
    if (rule.freq == ICAL_SECONDLY_RECURRENCE) sub_daily = 1;
    if (rule.freq == ICAL_MINUTELY_RECURRENCE) sub_daily = 60;
    if (rule.freq == ICAL_HOURLY_RECURRENCE) sub_daily = 3600;
    icaltimetype first = dtstart;
    if (skip && sub_daily != 0) {
      // Sub-daily rules step in seconds: start at the window start turned
      // into the series' wall time (a margin only near a DST change), on a
      // step of the series. libical's icalrecur_iterator_set_start aligns
      // INTERVAL by the hour (minute, second) of the day alone, which is
      // wrong across days, so the iterator starts there instead; without
      // COUNT that is the same series.
      const auto offset_at = [&](std::int64_t u) {
        const icaltimetype l = civil_from_seconds(u);
        return civil_seconds(l) - to_unix(l, *m_.start.zone);
      };
      const std::int64_t base = window_.start - span;
      const std::int64_t offset = offset_at(base);
      const bool steady = offset == offset_at(base - day) && offset == offset_at(base + day);
      const std::int64_t wall = base + offset - (steady ? 0 : 2 * 3600);
      const std::int64_t step = sub_daily * rule.interval;
      const std::int64_t origin = civil_seconds(dtstart);
      if (wall > origin) {
        first = civil_from_seconds(origin + (wall - origin + step - 1) / step * step);
      }
    }
    IteratorPtr it(icalrecur_iterator_new(rule, first));
    if (!it) {
      fail(std::string("RRULE refused by libical: ") + str(icalerror_strerror(icalerrno)));
      icalerror_clear_errno();
      return;
    }
    if (skip && sub_daily == 0) {
      if (m_.start.is_date) {
        from.is_date = 1;
        from.hour = from.minute = from.second = 0;
      }
      icalrecur_iterator_set_start(it.get(), from);
    }
    for (std::size_t steps = 0;; ++steps) {
      if (steps >= o_.max_iterations) {
        add_note(out_.notes, "recurrence: stopped after " + std::to_string(o_.max_iterations) +
                                 " iterator steps (max_iterations)");
        capped_ = true;
        break;
      }
      if (++budget_.iterations, budget_.spent()) {
        fail("recurrence not expanded: the object's time or iteration budget is spent",
             Errc::limit_exceeded);
        return;
      }
      icaltimetype t = icalrecur_iterator_next(it.get());
      if (icaltime_is_null_time(t)) break;
      t.zone = nullptr;
      if (!sane(t)) break;
      if (until_day && days_of(t) > *until_day) break;
      const std::int64_t original = to_unix(t, *m_.start.zone);
      if (until && original > *until) break;
      if (original > window_.end) break;
      add(t, std::nullopt);
      if (full_) break;
    }
    icalerror_clear_errno();
    if (capped_ && out_.occurrences.empty() && out_.failure.empty()) {
      fail("recurrence not expanded: max_iterations reached before the window",
           Errc::limit_exceeded);
    }
  }

  const Event& m_;
  Window window_;
  const ParseOptions& o_;
  ZoneBook& zones_;
  Budget& budget_;
  Expansion out_;
  std::set<std::int64_t> exinstants_;
  std::set<std::int64_t> exdays_;
  bool full_ = false;
  bool capped_ = false;
};

// ---- assembling meetings -----------------------------------------------------------

struct Output {
  Calendar& cal;
  const ParseOptions& o;
  std::size_t dropped = 0;

  bool full() const { return cal.meetings.size() >= o.max_meetings; }

  void emit(Meeting m) {
    if (full()) {
      ++dropped;
      return;
    }
    cal.meetings.push_back(std::move(m));
  }

  void fail(const Event* e, std::string uid, std::string reason, Errc code = Errc::bad_event) {
    EventFailure f;
    f.uid = std::move(uid);
    if (e != nullptr && e->rid) f.recurrence_id = when_of(*e->rid);
    if (e != nullptr) {
      f.sequence = e->proto.sequence;
      f.has_recurrence_id = e->rid.has_value();
      f.own_recurrence_id = f.recurrence_id;
    }
    f.code = make_error_code(code);
    f.reason = text::repair_utf8(reason);
    cal.failed.push_back(std::move(f));
  }
};

// What a VEVENT that could not be read still says of itself
// (EventFailure::sequence, has_recurrence_id, own_recurrence_id). Its
// RECURRENCE-ID is read in its own TZID, UTC or the floating zone: without a
// readable DTSTART there is no other zone to follow.
void identify(icalcomponent* c, ZoneBook& zones, EventFailure& f) {
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_SEQUENCE_PROPERTY)) {
    f.sequence = std::max(0, icalproperty_get_sequence(p));
  }
  if (icalproperty* p = icalcomponent_get_first_property(c, ICAL_RECURRENCEID_PROPERTY)) {
    f.has_recurrence_id = true;
    std::string ignored;
    if (auto rid = read_time(p, zones, nullptr, ignored)) f.own_recurrence_id = when_of(*rid);
  }
}

Meeting meeting_at(const Event& e, std::int64_t start, std::int64_t end,
                   const icaltimetype* start_date, const icaltimetype* end_date) {
  Meeting m = e.proto;
  m.start.unix = start;
  m.start.utc = format_utc(start);
  m.end.unix = end;
  m.end.utc = format_utc(end);
  if (start_date != nullptr) m.start.date = format_date(*start_date);
  if (end_date != nullptr) m.end.date = format_date(*end_date);
  return m;
}

// An event at its own DTSTART.
Meeting meeting_of(const Event& e) {
  if (e.start.is_date) {
    const icaltimetype end_date = add_days(e.start.local, e.duration_days);
    return meeting_at(e, e.start.unix, to_unix(end_date, *e.start.zone), &e.start.local, &end_date);
  }
  return meeting_at(e, e.start.unix, e.start.unix + e.duration, nullptr, nullptr);
}

std::int64_t key_of(const Stamp& s, bool all_day) { return all_day ? days_of(s.local) : s.unix; }

struct Series {
  Event* master = nullptr;
  std::vector<Event*> overrides;
};

void assemble(Series& s, const ParseOptions& o, ZoneBook& zones, Budget& budget, Output& out) {
  if (s.master == nullptr) {
    // Overrides whose series is not in this object (an iMIP invitation to one
    // occurrence): each stands alone, whatever its time.
    for (Event* e : s.overrides) {
      Meeting m = meeting_of(*e);
      m.recurrence_id = when_of(*e->rid);
      m.overridden = true;
      out.emit(std::move(m));
    }
    return;
  }
  Event& master = *s.master;
  if (!master.recurring && s.overrides.empty()) {
    out.emit(meeting_of(master));
    return;
  }
  const Window window{o.window_start, o.window_end};
  const bool all_day = master.start.is_date;

  // Overrides by original start; the highest SEQUENCE wins a tie.
  std::map<std::int64_t, Event*> exact;
  std::vector<Event*> future;
  std::int64_t widen = 0;
  for (Event* e : s.overrides) {
    auto [it, fresh] = exact.emplace(key_of(*e->rid, all_day), e);
    if (!fresh) {
      Event* loser = e;
      if (e->proto.sequence >= it->second->proto.sequence) std::swap(loser, it->second);
      out.fail(loser, loser->uid,
               where(*loser) + ": another VEVENT overrides the same occurrence; SEQUENCE " +
                   std::to_string(it->second->proto.sequence) + " kept");
    }
    if (e->this_and_future) {
      future.push_back(e);
      widen = std::max(widen, std::abs(e->start.unix - e->rid->unix));
    }
  }
  std::sort(future.begin(), future.end(),
            [](const Event* a, const Event* b) { return a->rid->unix < b->rid->unix; });

  const Window expand_window{window.start - widen, window.end + widen};
  Expansion x = Expander(master, expand_window, o, zones, budget).run();
  if (!x.failure.empty()) {
    out.fail(&master, master.uid, x.failure,
             static_cast<Errc>(x.failure_code ? x.failure_code.value() : 0) == Errc::limit_exceeded
                 ? Errc::limit_exceeded
                 : Errc::bad_event);
  }
  std::vector<std::string> series_notes = x.notes;

  std::set<const Event*> used;
  for (auto& [original, occ] : x.occurrences) {
    const When rid = when_of(occ.original);
    Meeting m;
    const auto found = exact.find(key_of(occ.original, all_day));
    if (found != exact.end()) {
      used.insert(found->second);
      m = meeting_of(*found->second);
      m.overridden = true;
    } else {
      const Event* f = nullptr;
      for (const Event* e : future) {
        if (e->rid->unix <= occ.original.unix) f = e;
      }
      if (f != nullptr) {
        // RANGE=THISANDFUTURE: this occurrence takes the override's fields and
        // its shift in time.
        const std::int64_t shift = f->start.unix - f->rid->unix;
        if (all_day && f->start.is_date) {
          const std::int64_t days = days_of(f->start.local) - days_of(f->rid->local);
          const icaltimetype sd = add_days(occ.start_date, days);
          const icaltimetype ed = add_days(sd, f->duration_days);
          m = meeting_at(*f, to_unix(sd, *master.start.zone), to_unix(ed, *master.start.zone), &sd,
                         &ed);
        } else {
          m = meeting_at(*f, occ.start + shift, occ.start + shift + f->duration, nullptr, nullptr);
        }
        m.overridden = true;
      } else if (all_day) {
        m = meeting_at(master, occ.start, occ.end, &occ.start_date, &occ.end_date);
      } else {
        m = meeting_at(master, occ.start, occ.end, nullptr, nullptr);
      }
    }
    if (!window.overlaps(m.start.unix, m.end.unix)) continue;
    m.recurrence_id = rid;
    for (const auto& n : series_notes) add_note(m.notes, n);
    out.emit(std::move(m));
  }
  // Overrides whose original occurrence was not expanded (outside the window,
  // excluded, or not in the rule): kept when they fall in the window.
  for (const auto& [key, e] : exact) {
    if (used.count(e) != 0) continue;
    Meeting m = meeting_of(*e);
    if (!window.overlaps(m.start.unix, m.end.unix)) continue;
    m.recurrence_id = when_of(*e->rid);
    m.overridden = true;
    out.emit(std::move(m));
  }
}

// ---- the object ------------------------------------------------------------------

// BEGIN/END balance and depth, checked before libical sees the text: libical
// frees components recursively and would accept any depth.
std::optional<ParseError> check_structure(std::string_view s) {
  std::size_t depth = 0, line = 0, max_seen = 0;
  std::size_t pos = 0;
  bool any = false;
  while (pos < s.size()) {
    std::size_t e = s.find('\n', pos);
    if (e == std::string_view::npos) e = s.size();
    std::string_view l = s.substr(pos, e - pos);
    pos = e + 1;
    ++line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.size() >= 6 && text::iequals(l.substr(0, 6), "BEGIN:")) {
      any = true;
      if (++depth > max_depth) {
        return ParseError{make_error_code(Errc::bad_structure),
                          "line " + std::to_string(line) + ": components nested deeper than " +
                              std::to_string(max_depth)};
      }
      max_seen = std::max(max_seen, depth);
    } else if (l.size() >= 4 && text::iequals(l.substr(0, 4), "END:")) {
      if (depth == 0) {
        return ParseError{make_error_code(Errc::bad_structure),
                          "line " + std::to_string(line) + ": END without BEGIN"};
      }
      --depth;
    }
  }
  if (!any) {
    return ParseError{make_error_code(Errc::not_icalendar), "no BEGIN line"};
  }
  if (depth != 0) {
    return ParseError{make_error_code(Errc::bad_structure),
                      "truncated: " + std::to_string(depth) +
                          " component(s) without END at the end of the input (line " +
                          std::to_string(line) + ")"};
  }
  return std::nullopt;
}

Result<Calendar> parse_impl(std::string_view ics, const ParseOptions& o, ZoneCache& zone_cache) {
  detail::init_libical();
  if (o.window_end < o.window_start || o.max_occurrences == 0 || o.max_iterations == 0) {
    return ParseError{make_error_code(Errc::bad_options),
                      "window_end before window_start, or a zero limit"};
  }
  if (text::trim(ics).empty()) return ParseError{make_error_code(Errc::empty_input), "empty input"};
  if (ics.size() > o.max_bytes) {
    return ParseError{
        make_error_code(Errc::too_large),
        std::to_string(ics.size()) + " bytes, over the limit of " + std::to_string(o.max_bytes)};
  }
  if (const std::size_t nul = ics.find('\0'); nul != std::string_view::npos) {
    return ParseError{make_error_code(Errc::bad_structure),
                      "NUL byte at offset " + std::to_string(nul)};
  }
  if (auto bad = check_structure(ics)) return *bad;

  const std::string copy(ics);  // libical wants a C string
  icalerror_clear_errno();
  ComponentPtr root(icalparser_parse_string(copy.c_str()));
  if (!root) {
    return ParseError{
        make_error_code(Errc::not_icalendar),
        std::string("libical read no component: ") + str(icalerror_strerror(icalerrno))};
  }
  // What libical could not read is in X-LIC-ERROR properties (read per
  // VEVENT below); its error state says so in one word.
  const icalerrorenum parse_errno = icalerrno;
  icalerror_clear_errno();

  std::vector<icalcomponent*> calendars;
  const icalcomponent_kind root_kind = icalcomponent_isa(root.get());
  if (root_kind == ICAL_VCALENDAR_COMPONENT || root_kind == ICAL_VEVENT_COMPONENT) {
    calendars.push_back(root.get());
  } else if (root_kind == ICAL_XROOT_COMPONENT) {
    for (icalcomponent* c = icalcomponent_get_first_component(root.get(), ICAL_VCALENDAR_COMPONENT);
         c != nullptr; c = icalcomponent_get_next_component(root.get(), ICAL_VCALENDAR_COMPONENT)) {
      calendars.push_back(c);
    }
  }
  if (calendars.empty()) {
    // libical names no kind for a component it does not know (NULL).
    const std::string kind = str(icalcomponent_kind_to_string(root_kind));
    return ParseError{
        make_error_code(Errc::not_icalendar),
        "the object is " +
            (kind.empty() ? std::string("an unknown component") : "a " + text::repair_utf8(kind)) +
            ", not a VCALENDAR"};
  }

  Calendar cal;
  if (parse_errno != ICAL_NO_ERROR) {
    add_note(cal.warnings, "libical: " + str(icalerror_strerror(parse_errno)));
  }
  Budget budget;
  budget.deadline = std::chrono::steady_clock::now() + time_budget;
  int index = 0;
  for (icalcomponent* vcal : calendars) {
    std::vector<icalcomponent*> vtimezones, vevents;
    if (icalcomponent_isa(vcal) == ICAL_VEVENT_COMPONENT) {
      vevents.push_back(vcal);
      add_note(cal.warnings, "a bare VEVENT without VCALENDAR");
    } else {
      if (cal.method.empty()) cal.method = upper(first_text(vcal, ICAL_METHOD_PROPERTY));
      if (cal.prodid.empty())
        cal.prodid = text::repair_utf8(first_text(vcal, ICAL_PRODID_PROPERTY));
      for (icalproperty* p = icalcomponent_get_first_property(vcal, ICAL_XLICERROR_PROPERTY);
           p != nullptr; p = icalcomponent_get_next_property(vcal, ICAL_XLICERROR_PROPERTY)) {
        add_note(cal.warnings, "libical: " + str(icalproperty_get_xlicerror(p)));
      }
      for (icalcomponent* c = icalcomponent_get_first_component(vcal, ICAL_ANY_COMPONENT);
           c != nullptr; c = icalcomponent_get_next_component(vcal, ICAL_ANY_COMPONENT)) {
        const icalcomponent_kind k = icalcomponent_isa(c);
        if (k == ICAL_VTIMEZONE_COMPONENT) vtimezones.push_back(c);
        if (k == ICAL_VEVENT_COMPONENT) {
          vevents.push_back(c);
        } else {
          collect_lic_errors(c, cal.warnings);
        }
      }
    }
    std::string x_wr;
    for (icalproperty* p = icalcomponent_get_first_property(vcal, ICAL_X_PROPERTY); p != nullptr;
         p = icalcomponent_get_next_property(vcal, ICAL_X_PROPERTY)) {
      if (text::iequals(str(icalproperty_get_x_name(p)), "X-WR-TIMEZONE")) {
        x_wr = std::string(text::trim(str(icalproperty_get_x(p))));
      }
    }
    ZoneBook zones(vtimezones, x_wr, o.floating_zone, zone_cache, cal.warnings);
    if (!zones.floating().note.empty()) add_note(cal.warnings, zones.floating().note);
    Output out{cal, o};

    std::vector<Event> events;
    events.reserve(std::min(vevents.size(), o.max_events));
    std::vector<std::string> order;  // UIDs in order of first appearance
    std::map<std::string, Series> series;
    for (icalcomponent* c : vevents) {
      ++index;
      if (static_cast<std::size_t>(index) > o.max_events) {
        out.fail(nullptr, text::repair_utf8(text::trim(first_text(c, ICAL_UID_PROPERTY))),
                 "VEVENT " + std::to_string(index) + ": not read, over max_events (" +
                     std::to_string(o.max_events) + ")",
                 Errc::limit_exceeded);
        continue;
      }
      std::string why;
      auto e = read_event(c, index, zones, o, why);
      if (!e) {
        // libical's own words often say what was wrong (a value it dropped).
        std::vector<std::string> lic;
        collect_lic_errors(c, lic);
        for (const auto& n : lic) {
          if (why.size() < 600) why += "; " + n;
        }
        out.fail(nullptr, text::repair_utf8(text::trim(first_text(c, ICAL_UID_PROPERTY))), why);
        identify(c, zones, cal.failed.back());
        continue;
      }
      events.push_back(std::move(*e));
    }
    for (Event& e : events) {
      auto [it, fresh] = series.try_emplace(e.uid);
      if (fresh) order.push_back(e.uid);
      if (e.rid) {
        it->second.overrides.push_back(&e);
      } else if (it->second.master == nullptr) {
        it->second.master = &e;
      } else {
        out.fail(&e, e.uid, where(e) + ": a second VEVENT with this UID and no RECURRENCE-ID");
      }
    }
    for (const std::string& uid : order) {
      const std::size_t dropped_before = out.dropped;
      assemble(series[uid], o, zones, budget, out);
      if (out.dropped != dropped_before) {
        out.fail(nullptr, uid,
                 "UID " + uid + ": " + std::to_string(out.dropped - dropped_before) +
                     " occurrence(s) not produced, over max_meetings (" +
                     std::to_string(o.max_meetings) + ")",
                 Errc::limit_exceeded);
      }
    }
  }

  std::sort(cal.meetings.begin(), cal.meetings.end(), [](const Meeting& a, const Meeting& b) {
    if (a.start.unix != b.start.unix) return a.start.unix < b.start.unix;
    if (a.uid != b.uid) return a.uid < b.uid;
    const std::int64_t ra = a.recurrence_id ? a.recurrence_id->unix : 0;
    const std::int64_t rb = b.recurrence_id ? b.recurrence_id->unix : 0;
    return ra < rb;
  });
  icalerror_clear_errno();
  return cal;
}

}  // namespace

const std::error_category& parse_category() noexcept {
  static const ParseCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), parse_category()}; }

void throw_exception_from_error(const ParseError& e, const boost::source_location&) {
  throw std::system_error(e.code, e.message);
}

std::string_view to_string(Status s) noexcept {
  switch (s) {
    case Status::none:
      return "";
    case Status::confirmed:
      return "CONFIRMED";
    case Status::tentative:
      return "TENTATIVE";
    case Status::cancelled:
      return "CANCELLED";
  }
  return "";
}

Result<Calendar> parse(std::string_view ics, const ParseOptions& options) {
  // One parse at a time in the process: libical 3.0.16 keeps process-wide
  // state beyond the zone caches locked in zones.cpp, and parses on several
  // threads crashed (Calendar.ParsesOnSeveralThreadsAtOnce, about one run in
  // three on a loaded machine). Calendar parsing is far from the hot path.
  static std::mutex one_at_a_time;
  static ZoneCache zone_cache;  // under one_at_a_time
  const std::lock_guard lock(one_at_a_time);
  // The readers do not throw; this is the last line for std::bad_alloc and for
  // anything a library might still raise.
  try {
    return parse_impl(ics, options, zone_cache);
  } catch (const std::bad_alloc&) {
    return ParseError{make_error_code(Errc::too_large), "out of memory"};
  } catch (const std::exception& e) {
    return ParseError{make_error_code(Errc::bad_structure),
                      text::repair_utf8(std::string("internal: ") + e.what())};
  } catch (...) {
    return ParseError{make_error_code(Errc::bad_structure), "internal: unknown failure"};
  }
}

}  // namespace crmcap::ical
