// SPDX-License-Identifier: Apache-2.0
// The bridge from the CalDAV connector to capture: each commit the connector
// hands over (a multiget batch, a sync-collection page, the end of a listing)
// is parsed, decided occurrence by occurrence and committed, with the
// calendar's new state and its items' ETags, in one store transaction.
//
// Places: every occurrence of an item (a calendar object resource) has a
// place of its own, SourceRef{mailbox, calendar URL, 0, 0, href "#" meeting
// key}. An occurrence an item no longer gives (its new version dropped it,
// or the item was deleted) has its meeting activity marked cancelled (the
// activity stays) and its place marked removed; only occurrences within the
// parse window (Pipeline::calendar_options) are cancelled, so one that has
// merely fallen out of the window keeps its status.
#pragma once

#include "connectors/caldav/caldav.hpp"
#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace crmcap::capture {

class CaldavSink final : public caldav::CalendarSink {
 public:
  // `mailbox` is the configured mailbox name; places and calendar state are
  // keyed by it.
  CaldavSink(std::string mailbox, Pipeline& pipeline, store::Activities& activities,
             store::SyncState& sync_state);

  caldav::SyncResult<caldav::StoredCalendar> stored(const std::string& url) override;
  caldav::SyncResult<void> commit(const caldav::CalendarChanges& changes) override;

  // A copy, as ImapSink's.
  Tally counters() const {
    const std::lock_guard<std::mutex> lock(counters_mutex_);
    return counters_;
  }
  // Meeting activities marked cancelled because their occurrence is gone.
  std::size_t cancelled() const {
    const std::lock_guard<std::mutex> lock(counters_mutex_);
    return cancelled_;
  }
  // Receives warnings (default: standard error).
  std::function<void(const std::string&)> on_warning;
  // Now, in Unix seconds: the parse window and the date of failed rows.
  std::function<std::int64_t()> clock;

 private:
  void warn(const std::string& message);

  std::string mailbox_;
  Pipeline& pipeline_;
  store::Activities& activities_;
  store::SyncState& sync_state_;
  mutable std::mutex counters_mutex_;
  Tally counters_;             // under counters_mutex_
  std::size_t cancelled_ = 0;  // under counters_mutex_
};

}  // namespace crmcap::capture
