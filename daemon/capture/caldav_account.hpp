// SPDX-License-Identifier: Apache-2.0
// Running a mailbox's CalDAV account: discovery, then a sync of each calendar
// found, each state machine fed by a blocking Transport. Everything here
// blocks: the daemon runs it on a worker thread of its own, never on the Asio
// loop (the sink's calls are the caller's to move to the store's thread).
#pragma once

#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/transport.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/config/config.hpp"

#include <boost/system/result.hpp>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace crmcap::capture {

// The transport options of [mailbox.caldav]: basic authentication with the
// username and the password read from the configured secret (a password
// file or credential), or a bearer token (a token file or command). A secret
// that cannot be read is a needs_user error.
caldav::SyncResult<caldav::TransportOptions> caldav_transport_options(
    const std::string& mailbox, const config::CaldavConfig& cfg, const config::Environment& env);

struct CaldavCalendarPass {
  caldav::CalendarInfo calendar;
  std::optional<caldav::SyncReport> report;  // set when the sync finished
  std::optional<caldav::SyncError> error;
};

struct CaldavPass {
  // Discovery's failure (no calendar was synced then).
  std::optional<caldav::SyncError> error;
  std::vector<CaldavCalendarPass> calendars;
  // The first error of the pass: discovery's or a calendar's.
  const caldav::SyncError* first_error() const;
  bool needs_user() const;
};

// One pass: discovery from `url`, then a sync of every calendar found but
// those in `skip` (calendars stopped by a needs_user error earlier). An
// error's message is prefixed with "<mailbox>: "; a refused login says so in
// words.
CaldavPass sync_caldav_once(const std::string& mailbox, const std::string& url,
                            caldav::Transport& transport, caldav::CalendarSink& sink,
                            const std::set<std::string>& skip = {});

// "2 calendars: work 3 changed, home unchanged; captured 1, skipped 1, failed 1"
std::string describe(const CaldavPass& pass, const Tally& tally, std::size_t cancelled);

}  // namespace crmcap::capture
