// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/caldav_sink.hpp"

#include "parsers/calendar/calendar.hpp"

#include <ctime>
#include <iostream>
#include <set>
#include <utility>
#include <vector>

namespace crmcap::capture {

namespace {

caldav::SyncError store_failure(std::string message) {
  return caldav::SyncError{caldav::make_error_code(caldav::Errc::sink), std::move(message),
                           caldav::RetryClass::retry_later};
}

// A place that an item's new version (or its deletion) took away.
struct Gone {
  store::Activities::Placement placement;
  std::string why;
};

}  // namespace

CaldavSink::CaldavSink(std::string mailbox, Pipeline& pipeline, store::Activities& activities,
                       store::SyncState& sync_state)
    : clock([] { return static_cast<std::int64_t>(std::time(nullptr)); }),
      mailbox_(std::move(mailbox)),
      pipeline_(pipeline),
      activities_(activities),
      sync_state_(sync_state) {}

caldav::SyncResult<caldav::StoredCalendar> CaldavSink::stored(const std::string& url) {
  auto rec = sync_state_.calendar(mailbox_, url);
  if (!rec) {
    return store_failure(mailbox_ + ": cannot read the state of calendar " + url + ": " +
                         rec.error().message);
  }
  caldav::StoredCalendar out;
  if (*rec) {
    out.state = caldav::CalendarState{url, (*rec)->sync_token, (*rec)->ctag};
    out.items = std::move((*rec)->items);
  }
  return out;
}

caldav::SyncResult<void> CaldavSink::commit(const caldav::CalendarChanges& changes) {
  const std::string& url = changes.state.url;
  const std::int64_t now = clock();
  const ical::ParseOptions options = pipeline_.calendar_options(now);
  const std::string window_start = iso_utc(options.window_start);
  const std::string window_end = iso_utc(options.window_end);
  BatchWriter writer(pipeline_, activities_);
  store::Batch::Calendar cal{mailbox_, url, changes.state.sync_token, changes.state.ctag, {},
                             {},       {}};
  std::vector<std::string> warnings;
  std::size_t cancelled = 0;
  auto place = [&](std::string path) {
    return store::SourceRef{mailbox_, url, 0, 0, std::move(path)};
  };
  {
    auto hold = activities_.hold_reads();
    std::vector<Gone> gone;
    std::set<std::string> decided;  // source keys decided by this commit
    for (const auto& href : changes.deleted) {
      cal.deleted.push_back(href);
      auto placed = activities_.placed_under(mailbox_, url, href + "#");
      if (!placed) {
        return store_failure(mailbox_ + ": cannot read the store: " + placed.error().message);
      }
      for (auto& p : *placed) gone.push_back({std::move(p), "the event was deleted from " + url});
    }
    for (const auto& item : changes.changed) {
      cal.items.emplace_back(item.href, item.etag);
      auto placed = activities_.placed_under(mailbox_, url, item.href + "#");
      if (!placed) {
        return store_failure(mailbox_ + ": cannot read the store: " + placed.error().message);
      }
      auto parsed = ical::parse(item.data, options);
      if (!parsed) {
        // The whole object is unreadable: a failed row, and whatever its
        // earlier version gave stays as it was.
        const MessageSource src{place(item.href + "#parse"), now};
        writer.add(failed_outcome("ical-href:" + item.href, "parse", parsed.error().message, src),
                   src.ref);
        warnings.push_back(item.href +
                           ": cannot read the calendar object: " + parsed.error().message);
        continue;
      }
      // Noted in the reason of each decision from the object, and logged once.
      for (const auto& w : parsed->warnings) warnings.push_back(item.href + ": note: " + w);
      std::set<std::string> paths;
      for (const auto& m : parsed->meetings) {
        const std::string key = meeting_key(m.uid, m.recurrence_id);
        const MessageSource src{place(item.href + "#" + key), now};
        paths.insert(src.ref.path);
        Outcome out = pipeline_.decide_meeting(m, src, parsed->warnings);
        decided.insert(out.activity.source_key);
        writer.add(std::move(out), src.ref);
      }
      for (std::size_t i = 0; i < parsed->failed.size(); ++i) {
        const ical::EventFailure& f = parsed->failed[i];
        const std::string key =
            f.uid.empty() ? std::to_string(i) : meeting_key(f.uid, f.recurrence_id);
        const MessageSource src{place(item.href + "#" + key), now};
        paths.insert(src.ref.path);
        Outcome out =
            pipeline_.failed_event(f, item.href + "#" + std::to_string(i), src, parsed->warnings);
        decided.insert(out.activity.source_key);
        writer.add(std::move(out), src.ref);
        warnings.push_back(item.href + ": cannot read an event: " + f.reason);
      }
      for (auto& p : *placed) {
        if (!paths.count(p.path) && p.path != item.href + "#parse") {
          gone.push_back({std::move(p), "the occurrence is no longer in its event at " + url});
        }
      }
    }
    std::set<std::string> removed;
    for (const auto& g : gone) removed.insert(g.placement.path);
    for (auto& g : gone) {
      cal.removed_paths.push_back(g.placement.path);
      if (decided.count(g.placement.source_key)) continue;  // decided anew elsewhere
      auto a = activities_.by_source_key(g.placement.source_key);
      if (!a) return store_failure(mailbox_ + ": cannot read the store: " + a.error().message);
      if (!*a || !(*a)->meeting || (*a)->meeting->cancelled) continue;
      store::Activity& act = **a;
      // Only what the window vouches for: an occurrence outside it is not
      // given by the parser whether cancelled or not.
      if (act.meeting->starts_at < window_start.substr(0, act.meeting->starts_at.size()) ||
          act.meeting->starts_at > window_end) {
        continue;
      }
      // Still placed at another item of a calendar of this mailbox: the
      // event moved there, it is not cancelled.
      bool elsewhere = false;
      for (const auto& s : act.sources) {
        elsewhere =
            elsewhere || (s.mailbox == mailbox_ && s.uidvalidity == 0 && s.uid == 0 &&
                          s.removed_at.empty() && !s.path.empty() && !removed.count(s.path));
      }
      if (elsewhere) continue;
      act.meeting->cancelled = true;
      act.reason = "cancelled: " + g.why;
      act.sources.clear();
      writer.batch().items.push_back({std::move(act), place(g.placement.path)});
      ++cancelled;
    }
  }
  for (const auto& f : changes.failed) {
    warnings.push_back(f.href + ": cannot fetch the event: " + f.reason);
  }
  writer.batch().calendar = std::move(cal);
  auto r = writer.commit();
  {
    const std::lock_guard<std::mutex> lock(counters_mutex_);
    counters_ += writer.tally();
    if (r) cancelled_ += cancelled;
  }
  if (!r) {
    return store_failure(mailbox_ + ": cannot store a batch of calendar " + url + ": " +
                         r.error().message);
  }
  for (const auto& w : warnings) warn(mailbox_ + ": " + w);
  return {};
}

void CaldavSink::warn(const std::string& message) {
  if (on_warning) {
    on_warning(message);
  } else {
    std::cerr << ("crm-captured: warning: " + message + "\n");
  }
}

}  // namespace crmcap::capture
