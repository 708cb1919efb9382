// SPDX-License-Identifier: Apache-2.0
// The daemon's service (see daemon.hpp): the supervisor of the mailbox
// tasks, their CalDAV workers, the signals and the systemd protocol.
// Threads: the io_context's (the IMAP accounts, the API, the supervisor;
// every member of Supervisor and MailboxTask is used there), the capture
// thread (every sink call, so the pipelines and the store are used by it
// alone), a worker per CalDAV account, and the API's query thread.
#include "daemon/service/daemon.hpp"

#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/transport.hpp"
#include "connectors/imap/imap.hpp"
#include "daemon/api/api.hpp"
#include "daemon/capture/caldav_account.hpp"
#include "daemon/capture/caldav_sink.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "daemon/capture/imap_sink.hpp"
#include "daemon/service/log.hpp"
#include "daemon/service/notify.hpp"
#include "daemon/service/secrets.hpp"
#include "store/store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include <malloc.h>

namespace asio = boost::asio;

namespace crmcap::service {

namespace {

// A thread running an io_context until destroyed (after the work queued on
// it is done).
class CaptureThread {
 public:
  CaptureThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~CaptureThread() {
    work_.reset();
    thread_.join();
  }
  CaptureThread(const CaptureThread&) = delete;
  CaptureThread& operator=(const CaptureThread&) = delete;
  asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// Runs `f` on `executor` and waits for its result: for a thread that must
// use what only the capture thread may (the store, the pipelines).
template <class F>
auto run_on(const asio::any_io_executor& executor, F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto done = task.get_future();
  asio::post(executor, [&task] { task(); });
  return done.get();
}

// A CalendarSink whose calls run on the capture thread, where the store and
// the pipelines are used; the calling worker waits for each.
class OnCaptureThread final : public caldav::CalendarSink {
 public:
  OnCaptureThread(caldav::CalendarSink& inner, asio::any_io_executor capture)
      : inner_(inner), capture_(std::move(capture)) {}
  caldav::SyncResult<caldav::StoredCalendar> stored(const std::string& url) override {
    return run_on(capture_, [&] { return inner_.stored(url); });
  }
  caldav::SyncResult<void> commit(const caldav::CalendarChanges& changes) override {
    return run_on(capture_, [&] { return inner_.commit(changes); });
  }

 private:
  caldav::CalendarSink& inner_;
  asio::any_io_executor capture_;
};

// What a CalDAV worker waits on between passes: wake() starts the next pass
// now (one asked during a pass is kept, and the next wait ends at once);
// stop() ends the worker, and cuts a request under way short.
class Wakeup {
 public:
  enum class Why { time, wake, stop };
  void stop() { set(stop_); }
  void wake() { set(wake_); }
  void forget_wake() {
    const std::lock_guard<std::mutex> lock(mutex_);
    wake_ = false;
  }
  bool stopped() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return stop_;
  }
  Why wait(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, d, [this] { return stop_ || wake_; });
    if (stop_) return Why::stop;
    if (!wake_) return Why::time;
    wake_ = false;
    return Why::wake;
  }

 private:
  void set(bool& flag) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      flag = true;
    }
    changed_.notify_all();
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false, wake_ = false;
};

imap::AccountOptions account_options(const config::Config& cfg, const config::MailboxConfig& mb,
                                     const config::Environment& env) {
  const config::ImapConfig& ic = *mb.imap;
  imap::AccountOptions o;
  o.name = mb.name;
  o.transport.host = ic.host;
  o.transport.port = ic.port;
  switch (ic.security) {
    case config::ImapConfig::Security::implicit_tls:
      o.transport.tls = imap::TlsMode::implicit;
      break;
    case config::ImapConfig::Security::starttls:
      o.transport.tls = imap::TlsMode::starttls;
      break;
    case config::ImapConfig::Security::none:
      o.transport.tls = imap::TlsMode::none;
      break;
  }
  o.transport.ca_file = ic.ca_file;
  o.transport.io_timeout = std::chrono::seconds(ic.timeout_seconds);
  o.transport.connect_timeout =
      std::chrono::seconds(std::min<std::uint32_t>(ic.timeout_seconds, 30));
  o.command_timeout = std::chrono::seconds(ic.command_timeout_seconds);
  o.username = ic.username;
  switch (ic.auth) {
    case config::ImapConfig::Auth::automatic:
      o.auth = imap::AuthMethod::automatic;
      break;
    case config::ImapConfig::Auth::plain:
      o.auth = imap::AuthMethod::plain;
      break;
    case config::ImapConfig::Auth::login:
      o.auth = imap::AuthMethod::login;
      break;
    case config::ImapConfig::Auth::xoauth2:
      o.auth = imap::AuthMethod::xoauth2;
      break;
    case config::ImapConfig::Auth::oauthbearer:
      o.auth = imap::AuthMethod::oauthbearer;
      break;
  }
  service::SecretSource src{ic.password_file, ic.token_file, ic.token_command, ic.credential,
                            env.credentials_directory};
  const std::string name = mb.name;
  o.secret = [src, name]() -> imap::SyncResult<std::string> {
    auto s = service::read_secret(src);
    if (!s) {
      return imap::SyncError{imap::make_error_code(imap::SyncErrc::credential),
                             name + ": " + s.error().message, imap::RetryClass::needs_user};
    }
    return std::move(*s);
  };
  switch (ic.compress) {
    case config::ImapConfig::Compress::automatic:
      o.compress = imap::AccountOptions::Compress::automatic;
      break;
    case config::ImapConfig::Compress::always:
      o.compress = imap::AccountOptions::Compress::always;
      break;
    case config::ImapConfig::Compress::never:
      o.compress = imap::AccountOptions::Compress::never;
      break;
  }
  o.folders = ic.folders;
  o.backfill_days = cfg.backfill_days;
  o.max_part_bytes = ic.max_part_bytes;
  o.batch_size = ic.batch_size;
  o.idle_reissue = std::chrono::minutes(ic.idle_minutes);
  o.poll_interval = std::chrono::seconds(ic.poll_seconds);
  return o;
}

// The capture settings of one mailbox: its owner, and the [identity] and
// [capture] tables.
capture::Settings settings_of(const config::Config& cfg, const config::MailboxConfig& mb) {
  capture::Settings s;
  s.owner_addresses = mb.owner;
  s.internal_domains = cfg.internal_domains;
  s.strip_plus_tags = cfg.strip_plus_tags;
  s.block_addresses = cfg.block_addresses;
  s.block_domains = cfg.block_domains;
  s.snippet_chars = cfg.snippet_chars;
  s.backfill_days = static_cast<int>(cfg.backfill_days);
  s.horizon_days = static_cast<int>(cfg.horizon_days);
  return s;
}

bool same_settings(const capture::Settings& a, const capture::Settings& b) {
  const auto key = [](const capture::Settings& s) {
    return std::tie(s.owner_addresses, s.internal_domains, s.strip_plus_tags, s.block_addresses,
                    s.block_domains, s.backfill_days, s.horizon_days, s.excluded_folders,
                    s.snippet_chars);
  };
  return key(a) == key(b);
}

std::string describe(const imap::SyncReport& r, const capture::Tally& c) {
  std::string out;
  for (const auto& f : r.folders) {
    if (!out.empty()) out += ", ";
    out += f.folder + ": ";
    if (f.paused) {
      out += "paused";
    } else if (f.skipped_unchanged) {
      out += "unchanged";
    } else {
      out += std::to_string(f.handed_over) + " new";
      if (f.known) out += " (" + std::to_string(f.known) + " known, not fetched again)";
      if (f.uidvalidity_changed) out += " after a UIDVALIDITY change";
    }
  }
  out += "; captured " + std::to_string(c.captured) + ", skipped " + std::to_string(c.skipped) +
         ", failed " + std::to_string(c.failed);
  if (c.decided_again) {
    out += ", decided again from sent copies " + std::to_string(c.decided_again);
  }
  return out;
}

// "12 s", or "500 ms" under a second: how long until the next pass.
std::string in_words(std::chrono::milliseconds d) {
  if (d < std::chrono::seconds(1)) return std::to_string(d.count()) + " ms";
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

// A mailbox's CalDAV account, run by a worker thread of its own.
struct CaldavSide {
  std::string name;
  config::CaldavConfig config;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::CaldavSink> sink;
  std::unique_ptr<OnCaptureThread> on_capture;
  Wakeup wakeup;
  api::Board* board = nullptr;  // where the passes are reported; none with --once
  bool failed = false;          // a pass failed (--once: the exit status)
  std::string summary;          // the last pass's, for --once
  std::thread worker;
};

// A mailbox's CalDAV account: (after `start_delay`) a pass now, then
// (without `once`) the next one when capture::next_pass_delay says: every
// interval_seconds, sooner or later after a retryable failure (a
// Retry-After the server sent, else a backoff with jitter), or at a wake.
// The retry after a pass in which some calendars failed retryably syncs
// those only (and any new one), not the calendars that went through. A
// needs_user error stops the calendar it came from, or the account when
// discovery or the credentials failed.
void run_caldav(CaldavSide& rt, const config::Environment& env, bool once,
                std::chrono::milliseconds start_delay) {
  if (start_delay.count() > 0 && rt.wakeup.wait(start_delay) == Wakeup::Why::stop) return;
  std::set<std::string> stopped;       // calendars that need the user
  std::set<std::string> went_through;  // while retrying: calendars synced since the failure
  unsigned failures = 0;               // passes in a row with a retryable failure
  std::mt19937_64 rng{std::random_device{}()};
  for (;;) {
    auto options = capture::caldav_transport_options(rt.name, rt.config, env);
    if (!options) {
      rt.failed = true;
      log(Level::error, options.error().message + " (needs attention; not retrying)");
      if (rt.board) {
        api::report_pass(*rt.board, rt.name, api::Side::caldav,
                         {false, true, options.error().message, std::nullopt}, rt.sink->counters());
      }
      return;
    }
    options->abort = [&rt] { return rt.wakeup.stopped(); };
    caldav::Transport transport(std::move(*options));
    std::function<void(const capture::CaldavPassProgress&)> progress;
    if (rt.board) {
      api::report_connecting(*rt.board, rt.name, api::Side::caldav);
      // On this worker; the board takes calls from any thread.
      progress = [&rt](const capture::CaldavPassProgress& p) {
        api::report_progress(*rt.board, rt.name, api::Side::caldav, p.backfilling, p.done, p.total);
      };
    }
    std::set<std::string> skip = stopped;
    skip.insert(went_through.begin(), went_through.end());
    auto pass = capture::sync_caldav_once(rt.name, rt.config.url, transport, *rt.on_capture, skip,
                                          progress);
    // Stopped: the pass was cut short on purpose; nothing to tell.
    if (!once && rt.wakeup.stopped()) return;
    rt.failed = pass.first_error() != nullptr;
    failures = pass.retryable_failure() ? failures + 1 : 0;
    if (failures == 0 || pass.error) {
      went_through.clear();
    } else {
      for (const auto& c : pass.calendars) {
        if (!c.error) went_through.insert(c.calendar.url);
      }
    }
    const auto now = std::chrono::system_clock::now();
    const auto delay = capture::next_pass_delay(
        pass, failures, std::chrono::seconds(rt.config.interval_seconds), now, rng());
    const std::string again = once ? " (will retry)" : " (will retry in " + in_words(delay) + ")";
    for (const auto& c : pass.calendars) {
      if (!c.error) continue;
      const bool final = c.error->retry == caldav::RetryClass::needs_user;
      if (final) stopped.insert(c.calendar.url);
      log(final ? Level::error : Level::warning,
          c.error->message + (final ? " (needs attention; not retrying)" : again));
    }
    const bool account_stops = pass.error && pass.error->retry == caldav::RetryClass::needs_user;
    if (pass.error) {
      log(account_stops ? Level::error : Level::warning,
          pass.error->message + (account_stops ? " (needs attention; not retrying)" : again));
    }
    if (rt.board) {
      api::PassOutcome o;
      if (const caldav::SyncError* e = pass.first_error()) {
        o.ok = false;
        o.reason = e->message;
        o.needs_user = !pass.retryable_failure();
        if (!o.needs_user) o.next_attempt = now + delay;
      }
      api::report_pass(*rt.board, rt.name, api::Side::caldav, o, rt.sink->counters());
    }
    if (account_stops) return;
    rt.summary = "caldav: " + capture::describe(pass, rt.sink->counters(), rt.sink->cancelled());
    if (once) return;
    if (!pass.error) log(Level::info, rt.name + ": " + rt.summary);
    switch (rt.wakeup.wait(delay)) {
      case Wakeup::Why::stop:
        return;
      case Wakeup::Why::wake:
        went_through.clear();  // asked for: every calendar
        break;
      case Wakeup::Why::time:
        break;
    }
  }
}

std::unique_ptr<CaldavSide> make_caldav_side(const config::MailboxConfig& mb,
                                             const capture::Settings& settings, store::Store& db,
                                             const capture::FreeMailDomains& free_mail,
                                             const asio::any_io_executor& capture) {
  auto rt = std::make_unique<CaldavSide>();
  rt->name = mb.name;
  rt->config = *mb.caldav;
  rt->pipeline = std::make_unique<capture::Pipeline>(db, db, settings, free_mail);
  rt->sink = std::make_unique<capture::CaldavSink>(mb.name, *rt->pipeline, db, db);
  rt->sink->on_warning = [](const std::string& m) { log(Level::warning, "warning: " + m); };
  rt->on_capture = std::make_unique<OnCaptureThread>(*rt->sink, capture);
  return rt;
}

// What every mailbox task shares.
struct Context {
  asio::io_context& io;
  store::Store& db;
  const asio::any_io_executor& capture;
  api::Board& board;
  const capture::FreeMailDomains& free_mail;
  const config::Environment& env;
};

// One mailbox: its IMAP account and its CalDAV account, each started after
// the task's start delay, stopped by stop(), started again by wake() once
// they stopped for the user. Used on the io_context only.
class MailboxTask {
 public:
  MailboxTask(Context& ctx, const config::Config& cfg, const config::MailboxConfig& mb,
              std::chrono::milliseconds start_delay)
      : ctx_(ctx),
        mb_(mb),
        settings_(settings_of(cfg, mb)),
        start_delay_(start_delay),
        start_timer_(ctx.io) {
    if (mb.imap) {
      imap_pipeline_ =
          std::make_unique<capture::Pipeline>(ctx.db, ctx.db, settings_, ctx.free_mail);
      imap_sink_ = std::make_unique<capture::ImapSink>(mb.name, *imap_pipeline_, ctx.db, ctx.db);
      imap_sink_->on_warning = [](const std::string& m) { log(Level::warning, "warning: " + m); };
      imap::AccountOptions o = account_options(cfg, mb, ctx.env);
      o.sink_executor = &ctx.capture;
      account_ = std::make_unique<imap::Account>(ctx.io.get_executor(), std::move(o), *imap_sink_);
      account_->on_synced = [this](const imap::SyncReport& r) {
        log(Level::info, mb_.name + ": " + describe(r, imap_sink_->counters()));
        // The pass is over and the mailbox idles: the store gives its caches
        // back (a backfill fills them to tens of MiB), on the thread it lives
        // on, and glibc returns the freed pages to the system (without the
        // trim, RSS stayed at 58 MiB after a 20,000-message backfill; with it,
        // 25 MiB: tests/bench/README.md).
        asio::post(ctx_.capture, [&db = ctx_.db] {
          db.release_memory();
          malloc_trim(0);
        });
      };
      account_->on_failure = [this](const imap::SyncError& e) {
        const bool final = e.retry == imap::RetryClass::needs_user;
        log(final ? Level::error : Level::warning,
            mb_.name + ": " + e.message +
                (final ? " (needs attention; not retrying)" : " (will retry)"));
      };
      api::report_imap(ctx.board, mb.name, *account_, *imap_sink_);
    }
    if (mb.caldav) {
      caldav_ = make_caldav_side(mb, settings_, ctx.db, ctx.free_mail, ctx.capture);
      caldav_->board = &ctx.board;
    }
  }
  ~MailboxTask() {
    // Ended by now (stop() said so): the worker only returns.
    if (caldav_ && caldav_->worker.joinable()) caldav_->worker.join();
  }
  MailboxTask(const MailboxTask&) = delete;
  MailboxTask& operator=(const MailboxTask&) = delete;

  const std::string& name() const { return mb_.name; }
  bool same_as(const config::MailboxConfig& mb, const capture::Settings& s) const {
    return mb == mb_ && same_settings(s, settings_);
  }
  // The IMAP account stopped with an error (needs_user, or an exception).
  bool imap_failed() const { return imap_error_.has_value(); }

  void start() {
    if (account_) start_imap(start_delay_);
    if (caldav_) start_caldav(start_delay_);
  }

  // A pass now: the sides running are woken, a side that stopped for the
  // user starts again.
  void wake() {
    if (stopping_) return;
    start_timer_.cancel();  // a start still delayed: now
    if (account_) {
      if (imap_running_) {
        account_->wake();
      } else {
        start_imap(std::chrono::milliseconds(0));
      }
    }
    if (caldav_) {
      if (caldav_running_) {
        caldav_->wakeup.wake();
      } else {
        start_caldav(std::chrono::milliseconds(0));
      }
    }
  }

  // Stops both sides; `ended` is called on the io_context once neither
  // runs (the commits under way done). The task may be destroyed then.
  void stop(std::function<void()> ended) {
    stopping_ = true;
    ended_ = std::move(ended);
    start_timer_.cancel();
    if (account_) account_->stop();
    if (caldav_) caldav_->wakeup.stop();
    asio::post(ctx_.io, [this] { side_ended(); });  // when neither runs
  }

 private:
  void start_imap(std::chrono::milliseconds delay) {
    imap_running_ = true;
    imap_error_.reset();
    asio::co_spawn(
        ctx_.io,
        [this, delay]() -> imap::Awaitable<void> {
          if (delay.count() > 0) {
            start_timer_.expires_after(delay);
            (void)co_await start_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (stopping_) co_return;
          }
          auto e = co_await account_->run();
          if (e.code != imap::make_error_code(imap::SyncErrc::cancelled)) imap_error_ = e;
        },
        [this](std::exception_ptr e) {
          // The account turns a pass's exceptions into failed passes; one
          // escaping here ends this mailbox's capture, and is said so.
          if (e) {
            imap_error_ = imap::failure_of(std::move(e));
            log(Level::error,
                mb_.name + ": " + imap_error_->message + " (capture of this mailbox stopped)");
          }
          imap_running_ = false;
          side_ended();
        });
  }

  void start_caldav(std::chrono::milliseconds delay) {
    if (caldav_->worker.joinable()) caldav_->worker.join();  // ended: it only returns
    caldav_->wakeup.forget_wake();
    caldav_running_ = true;
    caldav_work_.emplace(ctx_.io.get_executor());  // io.run() waits for the worker's end
    CaldavSide* rt = caldav_.get();
    rt->worker = std::thread([this, rt, delay] {
      run_caldav(*rt, ctx_.env, false, delay);
      asio::post(ctx_.io, [this] {
        caldav_running_ = false;
        caldav_work_.reset();
        side_ended();
      });
    });
  }

  void side_ended() {
    if (!stopping_ || imap_running_ || caldav_running_ || !ended_) return;
    auto ended = std::move(ended_);
    ended_ = nullptr;
    ended();
  }

  Context& ctx_;
  const config::MailboxConfig mb_;
  const capture::Settings settings_;
  const std::chrono::milliseconds start_delay_;
  asio::steady_timer start_timer_;
  bool stopping_ = false;
  std::function<void()> ended_;

  std::unique_ptr<capture::Pipeline> imap_pipeline_;
  std::unique_ptr<capture::ImapSink> imap_sink_;
  std::unique_ptr<imap::Account> account_;
  bool imap_running_ = false;
  std::optional<imap::SyncError> imap_error_;

  std::unique_ptr<CaldavSide> caldav_;
  bool caldav_running_ = false;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> caldav_work_;
};

// The mailbox tasks by name, and those stopping. Used on the io_context only.
class Supervisor {
 public:
  explicit Supervisor(Context& ctx) : ctx_(ctx) {}
  ~Supervisor() = default;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs the mailboxes of `cfg`: those not running start (staggered when
  // there are many), those gone stop, those changed restart once stopped,
  // the others run on untouched.
  void apply(const config::Config& cfg) {
    std::set<std::string> names;
    for (const auto& mb : cfg.mailboxes) names.insert(mb.name);
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      if (names.count(it->first)) {
        ++it;
        continue;
      }
      log(Level::info, it->first + ": removed from the configuration; stopping");
      ctx_.board.remove_mailbox(it->first);
      retire(std::move(it->second), nullptr);
      it = tasks_.erase(it);
    }
    const bool stagger = cfg.mailboxes.size() > kStaggerAbove;
    std::size_t starting = 0;
    for (const auto& mb : cfg.mailboxes) {
      auto it = tasks_.find(mb.name);
      if (it != tasks_.end() && it->second->same_as(mb, settings_of(cfg, mb))) continue;
      const auto delay =
          stagger ? kStaggerStep * static_cast<long>(starting++) : std::chrono::milliseconds(0);
      auto task = std::make_unique<MailboxTask>(ctx_, cfg, mb, delay);
      MailboxTask* raw = task.get();
      if (it == tasks_.end()) {
        ctx_.board.add_mailbox(mb.name, !!mb.imap, !!mb.caldav);
        tasks_.emplace(mb.name, std::move(task));
        raw->start();
        continue;
      }
      // Changed: the new task starts once the old one has stopped, so the
      // two never sync the same folders at once.
      log(Level::info, mb.name + ": its settings changed; restarting");
      retire(std::move(it->second),
             [this, raw, name = mb.name, imap = !!mb.imap, caldav = !!mb.caldav] {
               auto now = tasks_.find(name);
               if (now == tasks_.end() || now->second.get() != raw) return;  // replaced again
               ctx_.board.add_mailbox(name, imap, caldav);
               raw->start();
             });
      it->second = std::move(task);
    }
  }

  // POST /v1/sync: wakes `name`'s task (every task when empty); false when
  // there is no such mailbox.
  bool wake(const std::string& name) {
    if (name.empty()) {
      for (auto& [_, t] : tasks_) t->wake();
      return true;
    }
    auto it = tasks_.find(name);
    if (it == tasks_.end()) return false;
    it->second->wake();
    return true;
  }

  // Stops every task; `done` is called on the io_context once all have.
  void stop_all(std::function<void()> done) {
    for (auto& [_, t] : tasks_) failed_ = failed_ || t->imap_failed();
    done_ = std::move(done);
    for (auto& [_, t] : tasks_) retire(std::move(t), nullptr);
    tasks_.clear();
    asio::post(ctx_.io, [this] { check_done(); });
  }

  // An IMAP account had stopped with an error when stop_all() was called.
  bool failed() const { return failed_; }

 private:
  void retire(std::unique_ptr<MailboxTask> task, std::function<void()> then) {
    MailboxTask* raw = task.get();
    retiring_.push_back(std::move(task));
    raw->stop([this, raw, then = std::move(then)] {
      // Not from inside the task's own call.
      asio::post(ctx_.io, [this, raw, then] {
        std::erase_if(retiring_, [raw](const auto& t) { return t.get() == raw; });
        if (then) then();
        check_done();
      });
    });
  }

  void check_done() {
    if (!done_ || !retiring_.empty() || !tasks_.empty()) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done();
  }

  Context& ctx_;
  std::map<std::string, std::unique_ptr<MailboxTask>> tasks_;
  std::vector<std::unique_ptr<MailboxTask>> retiring_;
  std::function<void()> done_;
  bool failed_ = false;
};

bool has_accounts(const config::Config& cfg) {
  for (const auto& mb : cfg.mailboxes) {
    if (mb.imap || mb.caldav) return true;
  }
  return false;
}

// "2 IMAP and 1 CalDAV account(s)"
std::string accounts_of(const config::Config& cfg) {
  std::size_t imap = 0, caldav = 0;
  for (const auto& mb : cfg.mailboxes) {
    imap += mb.imap ? 1 : 0;
    caldav += mb.caldav ? 1 : 0;
  }
  return std::to_string(imap) + " IMAP and " + std::to_string(caldav) + " CalDAV account(s)";
}

// A configuration's problems on one line: "a; b".
std::string one_line(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::string out;
  for (const char c : text) {
    if (c == '\n') {
      out += "; ";
    } else {
      out += c;
    }
  }
  return out;
}

std::unique_ptr<store::Store> open_store(const config::Config& cfg, api::Board* board) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(cfg.store_path).parent_path(), ec);
  store::StoreOptions store_options;
  if (board) store_options.on_change = board->change_hook();
  auto st = store::Store::open(cfg.store_path, store_options);
  if (!st) {
    log(Level::error, st.error().message);
    return nullptr;
  }
  return std::move(*st);
}

}  // namespace

namespace {

// The directory editor of `cfg`'s mailboxes (each re-decides with its own
// settings). Made, used and replaced on the capture thread only.
std::unique_ptr<capture::DirectoryEditor> make_editor(const config::Config& cfg, store::Store& db,
                                                      const capture::FreeMailDomains& free_mail) {
  std::map<std::string, capture::Settings> by_mailbox;
  for (const auto& mb : cfg.mailboxes) by_mailbox.emplace(mb.name, settings_of(cfg, mb));
  return std::make_unique<capture::DirectoryEditor>(db, by_mailbox, settings_of(cfg, {}),
                                                    free_mail);
}

}  // namespace

int run_once(const config::Config& cfg, const capture::FreeMailDomains& free_mail,
             const DaemonOptions& options) {
  if (!has_accounts(cfg)) {
    log(Level::error,
        cfg.source + ": no [[mailbox]] with an [mailbox.imap] or [mailbox.caldav] table");
    return 2;
  }
  auto st = open_store(cfg, nullptr);
  if (!st) return 2;
  store::Store& db = *st;
  CaptureThread capture_thread;
  const asio::any_io_executor capture = capture_thread.executor();

  struct ImapOnce {
    std::string name;
    std::unique_ptr<capture::Pipeline> pipeline;
    std::unique_ptr<capture::ImapSink> sink;
    std::unique_ptr<imap::Account> account;
    std::optional<imap::SyncError> error;
    std::optional<imap::SyncReport> report;
  };
  asio::io_context io;
  std::vector<std::unique_ptr<ImapOnce>> boxes;
  std::vector<std::unique_ptr<CaldavSide>> calendars;
  for (const auto& mb : cfg.mailboxes) {
    const capture::Settings settings = settings_of(cfg, mb);
    if (mb.imap) {
      auto rt = std::make_unique<ImapOnce>();
      rt->name = mb.name;
      rt->pipeline = std::make_unique<capture::Pipeline>(db, db, settings, free_mail);
      rt->sink = std::make_unique<capture::ImapSink>(mb.name, *rt->pipeline, db, db);
      rt->sink->on_warning = [](const std::string& m) { log(Level::warning, "warning: " + m); };
      imap::AccountOptions o = account_options(cfg, mb, options.env);
      o.sink_executor = &capture;
      rt->account = std::make_unique<imap::Account>(io.get_executor(), std::move(o), *rt->sink);
      boxes.push_back(std::move(rt));
    }
    if (mb.caldav) calendars.push_back(make_caldav_side(mb, settings, db, free_mail, capture));
  }
  for (auto& c : calendars) {
    CaldavSide* rt = c.get();
    rt->worker = std::thread(
        [rt, &options] { run_caldav(*rt, options.env, true, std::chrono::milliseconds(0)); });
  }
  for (auto& b : boxes) {
    ImapOnce* rt = b.get();
    asio::co_spawn(
        io,
        [rt]() -> imap::Awaitable<void> {
          auto r = co_await rt->account->sync_once();
          if (r) {
            rt->report = std::move(*r);
          } else {
            rt->error = r.error();
          }
        },
        [rt](std::exception_ptr e) {
          if (e) rt->error = imap::failure_of(std::move(e));
        });
  }
  io.run();
  // Before the capture thread ends: the workers wait on it.
  for (auto& c : calendars) c->worker.join();
  int failed = 0;
  for (const auto& b : boxes) {
    if (b->error) {
      ++failed;
      log(Level::error, b->name + ": " + b->error->message);
    } else if (b->report) {
      std::cout << b->name << ": " << describe(*b->report, b->sink->counters()) << "\n";
    }
  }
  for (const auto& c : calendars) {
    if (c->failed) ++failed;
    if (!c->summary.empty()) std::cout << c->name << ": " << c->summary << "\n";
  }
  return failed ? 1 : 0;
}

int run_service(const config::Config& first, const capture::FreeMailDomains& free_mail,
                const DaemonOptions& options) {
  if (!has_accounts(first)) {
    log(Level::error,
        first.source + ": no [[mailbox]] with an [mailbox.imap] or [mailbox.caldav] table");
    return 2;
  }
  config::Config cfg = first;
  if (!options.api_socket.empty()) cfg.api_socket = options.api_socket;
  // What the local API tells of the mailboxes and the store's changes.
  api::Board board;
  const std::vector<ListenFd> passed = listen_fds();
  int listen_fd = -1;
  for (const auto& l : passed) {
    if (listen_fd < 0 || l.name == "api") listen_fd = l.fd;
  }
  asio::io_context io;
  // The API listens before the store is open: while the daemon's open
  // migrates it (or waits for a lock), requests are answered 503 migrating.
  api::Options api_options{cfg.api_socket, cfg.api_mode, cfg.allow_uids, cfg.store_path,
                           options.version};
  api_options.listen_fd = listen_fd;
  api_options.open_store_later = true;
  auto server = api::Server::start(io, std::move(api_options), board);
  if (!server) {
    log(Level::error, server.error().message);
    return 2;
  }
  int status = 0;
  bool stopping = false;
  std::unique_ptr<store::Store> st;
  // The capture thread: every sink call of every mailbox runs there, one at
  // a time, so that the pipelines and the store are only ever used by it.
  // Directory changes over the API (PUT, DELETE, POST /v1/directory);
  // destroyed after the capture thread, which alone uses it.
  std::unique_ptr<capture::DirectoryEditor> editor;
  std::optional<CaptureThread> capture_thread;
  std::optional<asio::any_io_executor> capture;
  std::optional<Context> ctx;
  std::optional<Supervisor> supervisor;

  asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  asio::signal_set reload_signal(io, SIGHUP);
  stop_signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    log(Level::info, "stopping");
    notify("STOPPING=1");
    stopping = true;
    reload_signal.cancel();
    board.set_sync_handler({});
    board.set_directory_writer({});
    (*server)->stop();
    if (supervisor) supervisor->stop_all([] {});
  });
  std::function<void()> await_reload = [&] {
    reload_signal.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      notify("RELOADING=1");
      auto next = config::load_config(options.config_path, options.env);
      if (next && !options.api_socket.empty()) next->api_socket = options.api_socket;
      if (!next) {
        log(Level::error,
            "reload refused, the running configuration stays: " + one_line(next.error().message));
      } else if (!has_accounts(*next)) {
        log(Level::error, "reload refused, the running configuration stays: " + next->source +
                              ": no [[mailbox]] with an [mailbox.imap] or [mailbox.caldav] table");
      } else {
        for (const auto& w : next->warnings) log(Level::warning, "warning: " + w);
        if (next->store_path != cfg.store_path || next->api_socket != cfg.api_socket ||
            next->api_mode != cfg.api_mode || next->allow_uids != cfg.allow_uids) {
          log(Level::warning, "[store] and [api] changes take effect at the next start");
        }
        // Before the store is open, the new set is what starts once it is.
        if (supervisor) supervisor->apply(*next);
        if (capture) {
          asio::post(*capture, [&editor, &db = *st, &free_mail, at = *next] {
            editor = make_editor(at, db, free_mail);
          });
        }
        cfg = std::move(*next);
        log(Level::info, "reloaded " + cfg.source + ": " + accounts_of(cfg));
      }
      notify("READY=1\nSTATUS=" + accounts_of(cfg));
      await_reload();
    });
  };
  await_reload();

  // Once the store is open: the mailboxes start, and the daemon is ready.
  const auto opened = [&] {
    if (stopping) return;
    if (!st) {
      status = 2;
      stop_signals.cancel();
      reload_signal.cancel();
      (*server)->stop();
      return;
    }
    capture_thread.emplace();
    capture.emplace(capture_thread->executor());
    ctx.emplace(Context{io, *st, *capture, board, free_mail, options.env});
    supervisor.emplace(*ctx);
    run_on(*capture, [&] { editor = make_editor(cfg, *st, free_mail); });
    board.set_directory_writer([&](const std::vector<store::DirectoryEdit>& edits) {
      // The API's writer thread asks; the capture thread writes.
      return run_on(*capture, [&] {
        return editor->apply(edits, "over the API", static_cast<std::int64_t>(std::time(nullptr)));
      });
    });
    board.set_sync_handler([&](const std::string& name) {
      // The server asks on the io_context, where the supervisor lives.
      return supervisor->wake(name);
    });
    supervisor->apply(cfg);
    // Last: the server answers on threads of its own from here on, and its
    // first answer must already see the mailboxes and the handlers above.
    if (auto r = (*server)->open_store(); !r) {
      log(Level::error, r.error().message);
      status = 2;
      stop_signals.cancel();
      reload_signal.cancel();
      board.set_sync_handler({});
      board.set_directory_writer({});
      (*server)->stop();
      supervisor->stop_all([] {});
      return;
    }
    log(Level::info, "running " + accounts_of(cfg) + ", store " + cfg.store_path +
                         (listen_fd >= 0 ? ", API on the socket systemd passed" : ""));
    notify("READY=1\nSTATUS=" + accounts_of(cfg));
  };
  auto opening = asio::make_work_guard(io);
  std::thread opener([&, at = cfg] {
    st = open_store(at, &board);
    asio::post(io, [&] {
      opening.reset();
      opened();
    });
  });
  // Type=notify (packaging/systemd): alive while the loop turns.
  {
    const Watchdog watchdog(io.get_executor());
    io.run();
  }
  opener.join();
  if (status != 0) return status;
  return supervisor && supervisor->failed() ? 1 : 0;
}

}  // namespace crmcap::service
