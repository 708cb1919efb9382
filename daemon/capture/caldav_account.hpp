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

#include <chrono>
#include <cstdint>
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
  // HTTP requests of discovery (each calendar's own: its report's). An
  // unchanged calendar given by its URL costs discovery's one PROPFIND alone.
  unsigned discovery_requests = 0;
  // How long the pass took, from its first request to its last commit.
  std::chrono::microseconds elapsed{0};
  // The first error of the pass: discovery's or a calendar's.
  const caldav::SyncError* first_error() const;
  bool needs_user() const;
  // Whether an error of the pass (discovery's or a calendar's) is worth a
  // retry (RetryClass::retry_later).
  bool retryable_failure() const;
};

// Where a pass under way stands (sync_caldav_once's on_progress), as
// imap::PassProgress for an IMAP pass.
struct CaldavPassProgress {
  // Some calendar the pass has synced so far (the one under way included)
  // is a first sync (caldav::SyncReport::first_sync).
  bool backfilling = false;
  // Calendar objects: those the listings of the calendars synced so far
  // named to fetch (the total grows as each calendar's listing answers),
  // and of those the ones committed to the sink (caldav::SyncReport's
  // to_fetch and fetched, summed). Unset until a listing named something to
  // fetch or a calendar's sync ended.
  std::optional<std::uint64_t> done, total;
};

// One pass: discovery from `url`, then a sync of every calendar found but
// those in `skip` (calendars stopped by a needs_user error earlier). An
// error's message is prefixed with "<mailbox>: "; a refused login says so in
// words. `on_progress`, when set, is called on the calling thread as each
// calendar's sync begins (once the sink's state of it is read), once its
// listing names items to fetch, and after each commit of fetched items: never
// during discovery.
CaldavPass sync_caldav_once(const std::string& mailbox, const std::string& url,
                            caldav::Transport& transport, caldav::CalendarSink& sink,
                            const std::set<std::string>& skip = {},
                            const std::function<void(const CaldavPassProgress&)>& on_progress = {});

// How long an account waits after `pass` before its next one:
// - `interval` when the pass had no retryable failure: it went through, or
//   failed only in ways that need the user (those calendars are left out of
//   later passes, and a discovery that needs the user ends the account's
//   passes: a refused password is never tried again and again);
// - when a retryable error came with a Retry-After (a 429 or 503), until the
//   latest such time of the pass (SyncError::retry_at, which the core clamps
//   to [1 s, 6 h]), at least kMinRetryAfter from `now`;
// - else an exponential backoff: `failures` is the number of passes in a row
//   with a retryable failure, this one included (1 for the first); the delay
//   starts at kFirstRetry (or `interval`, when shorter), doubles with each
//   failure up to kMaxBackoff (or `interval`, when longer), and is spread by
//   up to 20% either way by `random_bits`, so that many accounts failing
//   together do not come back in step. A short outage is thus retried
//   sooner than the interval, a long one less and less often.
inline constexpr std::chrono::seconds kFirstRetry{30};
inline constexpr std::chrono::seconds kMaxBackoff{30 * 60};
std::chrono::milliseconds next_pass_delay(const CaldavPass& pass, unsigned failures,
                                          std::chrono::seconds interval,
                                          std::chrono::system_clock::time_point now,
                                          std::uint64_t random_bits);

// "2 calendar(s): work 3 changed, 0 deleted, home unchanged; captured 1,
// skipped 1, failed 1; pass 812.4 ms" (the tally is the sink's, since the
// account started; the duration is this pass's).
std::string describe(const CaldavPass& pass, const Tally& tally, std::size_t cancelled);

}  // namespace crmcap::capture
