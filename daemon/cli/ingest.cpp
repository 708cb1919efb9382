// SPDX-License-Identifier: Apache-2.0
#include "daemon/cli/ingest.hpp"

#include "parsers/calendar/calendar.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

namespace crmcap::cli {

namespace {

// One decision to make: a message, one occurrence of a calendar file, or a
// file or event that could not be read.
struct Unit {
  const maildir::LocalMessage* file;
  std::int64_t when = 0;  // for the order of decisions
  std::string key;        // message id or meeting key, for the order
  std::optional<mail::MailMessage> message;
  std::optional<ical::Meeting> meeting;
  std::optional<ical::EventFailure> event_failure;
  std::size_t event_index = 0;
  // The notes of the calendar object a meeting or event failure came from
  // (ical::Calendar::warnings), shared by its units.
  std::shared_ptr<const std::vector<std::string>> object_notes;
  std::string raw;    // a message kept only when parsing failed, for its failure record
  std::string error;  // the file could not be read, or is no calendar
};

bool is_calendar_file(const std::string& path) {
  return path.size() > 4 && text::iequals(std::string_view(path).substr(path.size() - 4), ".ics");
}

}  // namespace

store::Result<capture::Tally> ingest(const std::vector<maildir::LocalMessage>& messages,
                                     capture::Pipeline& pipeline, store::Activities& activities,
                                     std::size_t batch_size) {
  std::vector<Unit> units;
  units.reserve(messages.size());
  mail::ParseOptions opt;
  opt.snippet_chars = pipeline.settings().snippet_chars;
  const ical::ParseOptions calendar = pipeline.calendar_options(std::time(nullptr));
  for (const auto& f : messages) {
    Unit u{&f, f.received_at};
    std::ifstream in(f.path, std::ios::binary);
    std::ostringstream ss;
    if (in) ss << in.rdbuf();
    if (!in) {
      u.error = "cannot read " + f.path;
      units.push_back(std::move(u));
      continue;
    }
    std::string raw = std::move(ss).str();
    if (is_calendar_file(f.path)) {
      auto cal = ical::parse(raw, calendar);
      if (!cal) {
        u.error = f.path + ": " + cal.error().message;
        units.push_back(std::move(u));
        continue;
      }
      auto notes = std::make_shared<const std::vector<std::string>>(std::move(cal->warnings));
      for (auto& m : cal->meetings) {
        Unit e{&f, m.start.unix, capture::meeting_key(m.uid, m.recurrence_id)};
        e.meeting = std::move(m);
        e.object_notes = notes;
        units.push_back(std::move(e));
      }
      for (std::size_t i = 0; i < cal->failed.size(); ++i) {
        Unit e{&f, f.received_at};
        e.event_failure = std::move(cal->failed[i]);
        e.event_index = i;
        e.object_notes = notes;
        units.push_back(std::move(e));
      }
      continue;
    }
    opt.received_at = f.received_at;
    if (auto m = mail::parse(raw, opt)) {
      u.when = m->date;
      u.key = m->message_id;
      u.message = std::move(*m);
    } else {
      u.raw = std::move(raw);
    }
    units.push_back(std::move(u));
  }
  // Date order (then message id or meeting key, then path) makes thread
  // inheritance and the result independent of the order files were found in.
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) {
    return std::tie(a.when, a.key, a.file->path) < std::tie(b.when, b.key, b.file->path);
  });

  capture::BatchWriter writer(pipeline, activities);
  for (auto& u : units) {
    // A calendar file holds many occurrences, each an activity of its own
    // with a place of its own: the file's path, '#', the occurrence.
    std::string place = u.file->path;
    if (u.meeting) place += "#" + u.key;
    if (u.event_failure) place += "#" + std::to_string(u.event_index);
    const capture::MessageSource src{{"local", u.file->folder, 0, 0, std::move(place)},
                                     u.file->received_at};
    if (!u.error.empty()) {
      writer.add(capture::failed_outcome("file:" + u.file->path, "read", u.error, src), src.ref);
    } else if (u.meeting) {
      writer.add(pipeline.decide_meeting(*u.meeting, src, *u.object_notes), src.ref);
    } else if (u.event_failure) {
      writer.add(pipeline.failed_event(*u.event_failure, src.ref.path, src, *u.object_notes),
                 src.ref);
    } else {
      writer.add(
          u.message ? pipeline.decide(std::move(*u.message), src) : pipeline.process(u.raw, src),
          src.ref);
    }
    if (writer.size() >= batch_size) {
      if (auto r = writer.commit(); !r) return r.error();
    }
  }
  if (auto r = writer.commit(); !r) return r.error();
  return writer.tally();
}

}  // namespace crmcap::cli
