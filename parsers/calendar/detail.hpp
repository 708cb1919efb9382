// SPDX-License-Identifier: Apache-2.0
// Internals of the calendar parser shared by its .cpp files (and its tests):
// civil-time arithmetic, system time zones, VTIMEZONE checks. Not a public API.
#pragma once

#include <libical/ical.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace crmcap::ical::detail {

// Days since 1970-01-01 of a proleptic Gregorian date, and back.
std::int64_t days_from_civil(std::int64_t y, int m, int d) noexcept;
void civil_from_days(std::int64_t days, int& y, int& m, int& d) noexcept;

// Seconds since the epoch of a wall-clock time read as UTC (its zone ignored).
std::int64_t civil_seconds(const icaltimetype& t) noexcept;
// A date-time (not a date, no zone) at `unix` seconds read as UTC wall time.
icaltimetype civil_from_seconds(std::int64_t unix) noexcept;
// "YYYY-MM-DDTHH:MM:SSZ" and "YYYY-MM-DD".
std::string format_utc(std::int64_t unix);
std::string format_date(const icaltimetype& t);

// A zone from the system database (libical's builtin zones, loaded from
// /usr/share/zoneinfo) by IANA name, with the name's case ignored; also accepts
// the names of system_zone_name(). nullptr when unknown. The zone lives for the
// whole process (libical keeps it); `name` receives its IANA name. Thread-safe.
icaltimezone* system_zone(std::string_view tzid, std::string* name);

// Guards libical's process-wide system zones: their loading and the lazy
// expansion of their changes (libical 3.0 locks neither).
std::mutex& libical_zone_mutex();

// Checks that a VTIMEZONE (a clone the caller owns) is safe to expand with
// libical: few observances, only simple YEARLY rules, sane offsets. Observance
// starts before 1900 are moved to 1900 (libical expands every year from them).
// Returns the reason it is refused, empty when it may be used.
std::string check_vtimezone(icalcomponent* vtimezone);

// Calls libical's global set-up once: errors never abort the process.
void init_libical();

}  // namespace crmcap::ical::detail
