// SPDX-License-Identifier: Apache-2.0
// crm-capture calendar parser: a pure function from the bytes of one iCalendar
// object (a CalDAV resource, an iMIP part, an .ics file) to the meetings it
// holds, one Meeting per occurrence. No store, no network, no exception leaves it.
//
// libical 3.0 reads the syntax. Time zones, recurrence expansion and overrides
// are done here, because libical's own helpers are unsafe on hostile input or
// wrong for us (see calendar.cpp): icalcomponent_foreach_recurrence is not used.
// The one I/O it does is reading the system time zone database
// (/usr/share/zoneinfo, through libical) and ICU's Windows zone mapping.
// Thread-safe: parse() may run on several threads at once.
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::ical {

struct ParseError {
  std::error_code code;
  std::string message;  // what and where, e.g. "line 12: BEGIN:VEVENT without END"
};

enum class Errc {
  empty_input = 1,
  too_large,       // over ParseOptions::max_bytes
  not_icalendar,   // no VCALENDAR (nor a bare VEVENT) could be read
  bad_structure,   // truncated, nested too deep, NUL bytes, unbalanced BEGIN/END
  bad_options,     // ParseOptions out of range (window_end < window_start, ...)
  limit_exceeded,  // used in Calendar::failed: a per-object budget ran out
  bad_event,       // used in Calendar::failed: one VEVENT could not be read
};
const std::error_category& parse_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

template <class T>
using Result = boost::system::result<T, ParseError>;
[[noreturn]] void throw_exception_from_error(const ParseError& e,
                                             const boost::source_location& loc);

// A point in time. `unix` is UTC Unix seconds and `utc` its ISO 8601 text
// ("2026-03-29T08:00:00Z"). For an all-day value `date` holds the calendar
// date "YYYY-MM-DD" as written (no zone applies to it) and `unix`/`utc` are the
// start of that day in ParseOptions::floating_zone, for sorting and windows
// only; `date` is empty for a date-time.
struct When {
  std::int64_t unix = 0;
  std::string utc;
  std::string date;
  bool operator==(const When&) const = default;
};

// ORGANIZER or ATTENDEE. `address` comes from a mailto: value (the scheme in
// any case), else from the EMAIL parameter; the domain is lowercased, the
// local part kept as written; empty when neither gives an address. `name` is
// the CN parameter. `partstat`, `role` and `cutype` are upper case as written,
// with RFC 5545's defaults when absent (NEEDS-ACTION, REQ-PARTICIPANT,
// INDIVIDUAL; empty for the organizer). `resource` is true for CUTYPE=ROOM and
// CUTYPE=RESOURCE: a meeting room or a projector is not a person.
struct Participant {
  std::string address;
  std::string name;
  std::string partstat;
  std::string role;
  std::string cutype;
  bool resource = false;
  bool rsvp = false;
  bool operator==(const Participant&) const = default;
};

enum class Status { none, confirmed, tentative, cancelled };

// One occurrence of a VEVENT. A single event gives one Meeting; a recurring one
// gives one per occurrence in the window, each with `recurrence_id` set.
struct Meeting {
  std::string uid;
  // The occurrence's original start (its RECURRENCE-ID): set for every
  // occurrence of a recurring series and for an override, empty for a single
  // event. UID + recurrence_id identify an occurrence across edits and moves.
  std::optional<When> recurrence_id;
  // True when this occurrence comes from an overriding VEVENT (one carrying a
  // RECURRENCE-ID, exactly or through RANGE=THISANDFUTURE).
  bool overridden = false;
  int sequence = 0;

  std::string summary;      // valid UTF-8, unfolded, trimmed
  std::string description;  // a snippet: whitespace folded, at most
                            // ParseOptions::description_chars code points (+ "…")
  std::string location;
  std::string url;  // the URL property

  // DTSTART and the end: DTEND, else DTSTART + DURATION, else DTSTART (a
  // date-time) or the next day (a date). For all-day events `all_day` is true,
  // start.date / end.date are set and end.date is exclusive (a one-day event on
  // 2026-05-01 ends "2026-05-02").
  When start;
  When end;
  bool all_day = false;
  // The TZID of DTSTART as written ("" for UTC, floating and dates) and the zone
  // it was resolved to: a VTIMEZONE's TZID, an IANA name, or "UTC".
  std::string tzid;
  std::string zone;
  bool floating = false;  // DTSTART had no zone: read in ParseOptions::floating_zone

  Status status = Status::none;
  std::string klass;   // CLASS upper case: PUBLIC, PRIVATE, CONFIDENTIAL, x-name; "" if absent
  std::string transp;  // TRANSP upper case: OPAQUE, TRANSPARENT; "" if absent

  std::optional<Participant> organizer;
  std::vector<Participant> attendees;  // in order, duplicates (same address) dropped

  // Teams, Zoom, Google Meet and Webex https links found in URL, LOCATION,
  // DESCRIPTION (and Google's X-GOOGLE-CONFERENCE), in that order, each once.
  std::vector<std::string> conference_urls;

  // Non-fatal problems, each "what: detail", e.g. "TZID 'Foo': unknown zone;
  // times read as UTC", "libical: VALUE-PARSE-ERROR: ...", "recurrence: stopped
  // after 20000 iterator steps (max_iterations)".
  std::vector<std::string> notes;
};

// A VEVENT that gave no meeting: the caller records it as failed.
struct EventFailure {
  std::string uid;  // empty when the VEVENT has none
  std::optional<When> recurrence_id;
  std::error_code code;  // Errc::bad_event or Errc::limit_exceeded
  std::string reason;    // what and where, e.g. "VEVENT 3: no DTSTART"
  // What the VEVENT names, read even when the event itself is not: an iMIP
  // CANCEL need not say when (RFC 5546 makes DTSTART optional there), yet
  // names what it cancels and in which revision. Its SEQUENCE (0 when it has
  // none); whether it has a RECURRENCE-ID, and that RECURRENCE-ID when it
  // can be read on its own (in its TZID, UTC or the floating zone). Kept
  // apart from recurrence_id, which keys the failure: an override that
  // cannot be read must not take the key of the occurrence its series still
  // gives.
  int sequence = 0;
  bool has_recurrence_id = false;
  std::optional<When> own_recurrence_id;
};

struct Calendar {
  std::string method;  // METHOD, upper case (iMIP: REQUEST, REPLY, CANCEL); "" if absent
  std::string prodid;
  // Sorted by start, then UID, then recurrence_id.
  std::vector<Meeting> meetings;
  std::vector<EventFailure> failed;
  // Object-level notes: libical's errors outside any VEVENT and its error
  // state, ignored VTIMEZONEs (and why), an unknown floating zone.
  std::vector<std::string> warnings;
};

struct ParseOptions {
  // Recurring series are expanded within [window_start, window_end] (UTC Unix
  // seconds): an occurrence is kept when it overlaps the window (start <=
  // window_end and end > window_start, or start >= window_start for an
  // occurrence without duration). Overrides of a series follow their own
  // (moved) time. A non-recurring event is returned whatever its time.
  std::int64_t window_start = 0;         // 1970-01-01
  std::int64_t window_end = 4102444800;  // 2100-01-01
  // The zone of floating times and all-day dates: an IANA name ("Europe/Berlin")
  // or a Windows one; unknown or empty means UTC (noted per meeting).
  std::string floating_zone = "UTC";
  std::size_t description_chars = 280;  // in Unicode code points
  std::size_t max_bytes = 1u << 20;
  // Per series: occurrences in the window (a series with more fails whole,
  // Errc::limit_exceeded), and steps of the recurrence iterator (which also
  // skips excluded and out-of-window candidates).
  std::size_t max_occurrences = 1000;
  std::size_t max_iterations = 20000;
  // Per object: meetings produced, and VEVENT components read.
  std::size_t max_meetings = 10000;
  std::size_t max_events = 5000;
};

// Parses one iCalendar object (or several VCALENDARs concatenated). Fails only
// for the object as a whole (empty, over max_bytes, not iCalendar, broken
// structure, bad options); a VEVENT that cannot be read (no UID, no DTSTART, an
// RRULE it cannot expand safely, a budget exhausted) is listed in
// Calendar::failed with its reason, and the other VEVENTs still give meetings.
// Time: bounded by the options' limits, well under a second for max_bytes input.
Result<Calendar> parse(std::string_view ics, const ParseOptions& options = {});

// The IANA zone name a TZID, a Windows zone name or an X-WR-TIMEZONE value
// resolves to in the system database ("/mozilla.org/20070129_1/Europe/Berlin"
// and "W. Europe Standard Time" both give "Europe/Berlin"; case is ignored);
// empty when it names no known zone. No VTIMEZONE is consulted.
std::string system_zone_name(std::string_view tzid);

std::string_view to_string(Status s) noexcept;  // "", "CONFIRMED", "TENTATIVE", "CANCELLED"

}  // namespace crmcap::ical

template <>
struct std::is_error_code_enum<crmcap::ical::Errc> : std::true_type {};
