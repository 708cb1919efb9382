// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/caldav_account.hpp"

#include "daemon/service/secrets.hpp"

#include <algorithm>
#include <utility>

namespace crmcap::capture {

namespace {

// Makes the machine's requests with `transport` until it is done or fails.
// A transport failure that no retry can mend (an untrusted certificate, an
// http:// URL refused) makes the machine's error needs_user.
template <class Fsm>
caldav::Action drive(Fsm& fsm, caldav::Transport& transport) {
  caldav::Action a = fsm.resume({});
  bool permanent = false;
  while (a.kind == caldav::Action::Kind::send) {
    caldav::Io io;
    auto r = transport.perform(a.request);
    if (r) {
      io.response = std::move(*r);
    } else {
      io.error = r.error().code;
      io.message = r.error().message;
      permanent = r.error().retry() == caldav::RetryClass::needs_user;
    }
    a = fsm.resume(io);
  }
  if (a.kind == caldav::Action::Kind::error && permanent) {
    a.error.retry = caldav::RetryClass::needs_user;
  }
  return a;
}

caldav::SyncError explained(const std::string& mailbox, caldav::SyncError e,
                            const std::string& url) {
  if (e.code == caldav::make_error_code(caldav::Errc::auth_failed)) {
    e.message = "CalDAV " + url + ": the server refused the username and password (" + e.message +
                "); check [mailbox.caldav] username and secret";
  }
  e.message = mailbox + ": " + e.message;
  return e;
}

}  // namespace

caldav::SyncResult<caldav::TransportOptions> caldav_transport_options(
    const std::string& mailbox, const config::CaldavConfig& cfg, const config::Environment& env) {
  caldav::TransportOptions o;
  o.allow_insecure = cfg.allow_insecure;
  const bool bearer = !cfg.token_file.empty() || !cfg.token_command.empty();
  const bool any = bearer || !cfg.password_file.empty() || !cfg.credential.empty();
  if (!any) return o;  // no authentication configured
  service::SecretSource src{cfg.password_file, cfg.token_file, cfg.token_command, cfg.credential,
                            env.credentials_directory};
  auto secret = service::read_secret(src);
  if (!secret) {
    return caldav::SyncError{caldav::make_error_code(caldav::Errc::transport),
                             mailbox + ": " + secret.error().message,
                             caldav::RetryClass::needs_user, std::nullopt};
  }
  if (bearer) {
    o.auth = caldav::TransportOptions::Auth::bearer;
    o.bearer_token = std::move(*secret);
  } else {
    o.auth = caldav::TransportOptions::Auth::basic;
    o.username = cfg.username;
    o.password = std::move(*secret);
  }
  return o;
}

const caldav::SyncError* CaldavPass::first_error() const {
  if (error) return &*error;
  for (const auto& c : calendars) {
    if (c.error) return &*c.error;
  }
  return nullptr;
}

bool CaldavPass::needs_user() const {
  const auto* e = first_error();
  return e != nullptr && e->retry == caldav::RetryClass::needs_user;
}

bool CaldavPass::retryable_failure() const {
  if (error) return error->retry == caldav::RetryClass::retry_later;
  for (const auto& c : calendars) {
    if (c.error && c.error->retry == caldav::RetryClass::retry_later) return true;
  }
  return false;
}

std::chrono::milliseconds next_pass_delay(const CaldavPass& pass, unsigned failures,
                                          std::chrono::seconds interval,
                                          std::chrono::system_clock::time_point now,
                                          std::uint64_t random_bits) {
  using std::chrono::milliseconds;
  if (!pass.retryable_failure()) return interval;
  std::optional<std::chrono::system_clock::time_point> retry_at;
  auto consider = [&](const std::optional<caldav::SyncError>& e) {
    if (e && e->retry == caldav::RetryClass::retry_later && e->retry_at) {
      retry_at = retry_at ? std::max(*retry_at, *e->retry_at) : *e->retry_at;
    }
  };
  consider(pass.error);
  for (const auto& c : pass.calendars) consider(c.error);
  if (retry_at) {
    return std::max<milliseconds>(std::chrono::duration_cast<milliseconds>(*retry_at - now),
                                  caldav::kMinRetryAfter);
  }
  const milliseconds first = std::min<milliseconds>(kFirstRetry, interval);
  const milliseconds cap = std::max<milliseconds>(kMaxBackoff, interval);
  // 2^16 times the first delay is past any cap: no overflow, no loop.
  const unsigned doublings = std::min(failures == 0 ? 0u : failures - 1, 16u);
  const milliseconds base = std::min<milliseconds>(first * (1LL << doublings), cap);
  const double unit = static_cast<double>(random_bits % 10001) / 10000.0;  // [0, 1]
  return milliseconds(
      static_cast<std::int64_t>(static_cast<double>(base.count()) * (0.8 + 0.4 * unit)));
}

CaldavPass sync_caldav_once(const std::string& mailbox, const std::string& url,
                            caldav::Transport& transport, caldav::CalendarSink& sink,
                            const std::set<std::string>& skip,
                            const std::function<void(const CaldavPassProgress&)>& on_progress) {
  const auto started = std::chrono::steady_clock::now();
  auto took = [&] {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 started);
  };
  CaldavPass pass;
  caldav::discovery_fsm discovery(caldav::DiscoveryOptions{url});
  const caldav::Action discovered = drive(discovery, transport);
  pass.discovery_requests = discovery.requests();
  if (discovered.kind == caldav::Action::Kind::error) {
    pass.error = explained(mailbox, discovered.error, url);
    pass.elapsed = took();
    return pass;
  }
  // The calendars synced before the one under way.
  CaldavPassProgress before;
  for (const auto& cal : discovery.calendars()) {
    if (skip.count(cal.url)) continue;
    CaldavCalendarPass c{cal, std::nullopt, std::nullopt};
    caldav::SyncOptions options;
    options.calendar_url = cal.url;
    options.discovered = cal;  // its token and ctag: no second PROPFIND
    if (on_progress) {
      options.on_progress = [&before, &on_progress](const caldav::SyncReport& r) {
        CaldavPassProgress now{before.backfilling || r.first_sync, std::nullopt, std::nullopt};
        if (before.total || r.to_fetch > 0) {
          now.done = before.done.value_or(0) + r.fetched;
          now.total = before.total.value_or(0) + r.to_fetch;
        }
        on_progress(now);
      };
    }
    caldav::sync_fsm sync(std::move(options), sink);
    caldav::Action a = drive(sync, transport);
    if (a.kind == caldav::Action::Kind::error) {
      c.error = explained(mailbox, std::move(a.error), cal.url);
    } else {
      c.report = sync.report();
    }
    const caldav::SyncReport& r = sync.report();
    before.backfilling = before.backfilling || r.first_sync;
    before.done = before.done.value_or(0) + r.fetched;
    before.total = before.total.value_or(0) + r.to_fetch;
    pass.calendars.push_back(std::move(c));
  }
  pass.elapsed = took();
  return pass;
}

std::string describe(const CaldavPass& pass, const Tally& tally, std::size_t cancelled) {
  std::string out = std::to_string(pass.calendars.size()) + " calendar(s)";
  const char* sep = ": ";
  for (const auto& c : pass.calendars) {
    out += sep;
    sep = ", ";
    out += c.calendar.display_name.empty() ? c.calendar.url : c.calendar.display_name;
    if (c.error) {
      out += " failed";
    } else if (c.report->mode == caldav::SyncReport::Mode::unchanged) {
      out += " unchanged";
    } else {
      out += " " + std::to_string(c.report->changed) + " changed, " +
             std::to_string(c.report->deleted) + " deleted";
      if (c.report->failed) out += ", " + std::to_string(c.report->failed) + " not fetched";
    }
  }
  out += "; captured " + std::to_string(tally.captured) + ", skipped " +
         std::to_string(tally.skipped) + ", failed " + std::to_string(tally.failed);
  if (cancelled) out += ", cancelled " + std::to_string(cancelled);
  const auto tenths = (pass.elapsed.count() + 50) / 100;  // of a millisecond
  out += "; pass " + std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " ms";
  return out;
}

}  // namespace crmcap::capture
