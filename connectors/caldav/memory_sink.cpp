// SPDX-License-Identifier: Apache-2.0
#include "connectors/caldav/detail.hpp"

namespace crmcap::caldav {

SyncResult<StoredCalendar> MemorySink::stored(const std::string& url) {
  StoredCalendar out;
  auto it = calendars.find(url);
  if (it == calendars.end()) return out;
  out.state = it->second.state;
  for (const auto& [href, item] : it->second.items) out.items.emplace(href, item.etag);
  return out;
}

SyncResult<void> MemorySink::commit(const CalendarChanges& changes) {
  const std::size_t call = commit_calls++;
  if (fail_commit && *fail_commit == call) {
    return detail::make_error(Errc::sink, "memory sink: commit " + std::to_string(call) + " fails",
                              RetryClass::retry_later);
  }
  // Built aside and swapped in: all or nothing, as a transaction.
  Calendar next = calendars[changes.state.url];
  next.state = changes.state;
  for (const auto& item : changes.changed) {
    next.items[item.href] = item;
    next.failed.erase(item.href);
  }
  for (const auto& href : changes.deleted) {
    next.items.erase(href);
    next.failed.erase(href);
  }
  for (const auto& f : changes.failed) next.failed[f.href] = f.reason;
  calendars[changes.state.url] = std::move(next);
  commits.push_back(changes);
  return {};
}

}  // namespace crmcap::caldav
