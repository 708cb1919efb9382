// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for crmcap::ical::parse(). Contract checked: parse() never
// throws or crashes, stays within its limits, and every string it returns is
// valid UTF-8 with the description within its bound. Seed with tests/corpora/ics.
#include "parsers/calendar/calendar.hpp"
#include "parsers/text/text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_ical: contract broken: %s\n", what);
    __builtin_trap();
  }
}

void require_utf8(std::string_view s, const char* what) {
  require(crmcap::text::is_valid_utf8(s), what);
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

void check_participant(const crmcap::ical::Participant& p) {
  for (const auto* s : {&p.address, &p.name, &p.partstat, &p.role, &p.cutype}) {
    require_utf8(*s, "participant");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  crmcap::ical::ParseOptions options;
  options.window_start = 1767225600;  // 2026-01-01
  options.window_end = 1798761600;    // 2027-01-01
  options.floating_zone = "Europe/Berlin";
  options.description_chars = 280;
  // Smaller caps than the defaults keep each run short, so the fuzzer explores
  // more inputs; the caps themselves are still hit and checked.
  options.max_occurrences = 100;
  options.max_meetings = 1000;
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const auto result = crmcap::ical::parse(raw, options);
  if (!result) {
    require(static_cast<bool>(result.error().code), "error without a code");
    require(!result.error().message.empty(), "error without a message");
    require_utf8(result.error().message, "error message");
    return 0;
  }
  const crmcap::ical::Calendar& c = *result;
  require_utf8(c.method, "method");
  require_utf8(c.prodid, "prodid");
  for (const auto& w : c.warnings) require_utf8(w, "warning");
  require(c.meetings.size() <= options.max_meetings, "too many meetings");
  for (const auto& f : c.failed) {
    require_utf8(f.uid, "failed uid");
    require(!f.reason.empty(), "failure without a reason");
    require_utf8(f.reason, "failure reason");
  }
  for (const auto& m : c.meetings) {
    require(!m.uid.empty(), "meeting without UID");
    for (const auto* s : {&m.uid, &m.summary, &m.description, &m.location, &m.url, &m.tzid, &m.zone,
                          &m.klass, &m.transp, &m.start.utc, &m.end.utc}) {
      require_utf8(*s, "meeting text");
    }
    // truncate_utf8 may append "…" after description_chars code points.
    require(code_points(m.description) <= options.description_chars + 1, "description too long");
    require(m.start.unix <= m.end.unix, "ends before it starts");
    require(m.all_day == !m.start.date.empty(), "all_day and start.date disagree");
    if (m.organizer) check_participant(*m.organizer);
    for (const auto& a : m.attendees) check_participant(a);
    for (const auto& u : m.conference_urls) require_utf8(u, "conference url");
    for (const auto& n : m.notes) require_utf8(n, "note");
  }
  return 0;
}
