// SPDX-License-Identifier: Apache-2.0
// crm-captured: the capture daemon. Reads the configuration, opens the store and
// runs every configured mailbox's IMAP account on one io_context: once
// (--once), or continuously with IDLE until SIGINT/SIGTERM. A mailbox's
// CalDAV account runs on a worker thread of its own (its transport blocks),
// once or every interval_seconds (sooner or later after a failure: a
// Retry-After, a backoff); its sink's calls run on the capture thread.
// Capture and the store run on a second thread of their own, so that parsing
// and committing a batch never holds up the network (any mailbox's) and the
// reading of the next batch overlaps the commit of this one.
#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/transport.hpp"
#include "connectors/imap/imap.hpp"
#include "daemon/api/api.hpp"
#include "daemon/capture/caldav_account.hpp"
#include "daemon/capture/caldav_sink.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "daemon/capture/imap_sink.hpp"
#include "daemon/config/config.hpp"
#include "daemon/service/check.hpp"
#include "daemon/service/notify.hpp"
#include "daemon/service/secrets.hpp"
#include "store/store.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <malloc.h>

namespace asio = boost::asio;
using namespace crmcap;

namespace {

struct MailboxRuntime {
  std::string name;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::ImapSink> sink;
  std::unique_ptr<imap::Account> account;
  std::optional<imap::SyncError> error;
  std::optional<imap::SyncReport> report;
};

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

// A CalendarSink whose calls run on the capture thread, where the store and
// the pipelines are used; the calling worker waits for each.
class OnCaptureThread final : public caldav::CalendarSink {
 public:
  OnCaptureThread(caldav::CalendarSink& inner, asio::any_io_executor capture)
      : inner_(inner), capture_(std::move(capture)) {}
  caldav::SyncResult<caldav::StoredCalendar> stored(const std::string& url) override {
    return run([&] { return inner_.stored(url); });
  }
  caldav::SyncResult<void> commit(const caldav::CalendarChanges& changes) override {
    return run([&] { return inner_.commit(changes); });
  }

 private:
  template <class F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(capture_, [&task] { task(); });
    return done.get();
  }
  caldav::CalendarSink& inner_;
  asio::any_io_executor capture_;
};

// Tells the CalDAV workers to stop waiting for their next pass.
struct StopSignal {
  std::mutex mutex;
  std::condition_variable changed;
  bool stop = false;
  void raise() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
  }
  // Waits `d` or until raised; true when raised.
  bool wait(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, d, [this] { return stop; });
  }
};

struct CaldavRuntime {
  std::string name;
  config::CaldavConfig config;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::CaldavSink> sink;
  std::unique_ptr<OnCaptureThread> on_capture;
  bool failed = false;  // a pass failed (--once: the exit status)
  std::string summary;  // the last pass's, for --once
  std::thread worker;
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

// One line to standard error in one write: the capture thread's warnings and
// the network thread's reports never cut into each other's lines.
void say_line(std::string line) {
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
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

// A mailbox's CalDAV account: a pass now, then (without `once`) the next one
// when capture::next_pass_delay says: every interval_seconds, sooner or later
// after a retryable failure (a Retry-After the server sent, else a backoff
// with jitter). A needs_user error stops the calendar it came from, or the
// account when discovery or the credentials failed.
void run_caldav(CaldavRuntime& rt, const config::Environment& env, bool once, StopSignal& stop) {
  std::set<std::string> stopped;  // calendars that need the user
  unsigned failures = 0;          // passes in a row with a retryable failure
  std::mt19937_64 rng{std::random_device{}()};
  for (;;) {
    auto options = capture::caldav_transport_options(rt.name, rt.config, env);
    if (!options) {
      rt.failed = true;
      say_line("crm-captured: " + options.error().message + " (needs attention; not retrying)");
      return;
    }
    caldav::Transport transport(std::move(*options));
    auto pass =
        capture::sync_caldav_once(rt.name, rt.config.url, transport, *rt.on_capture, stopped);
    rt.failed = pass.first_error() != nullptr;
    failures = pass.retryable_failure() ? failures + 1 : 0;
    const auto delay =
        capture::next_pass_delay(pass, failures, std::chrono::seconds(rt.config.interval_seconds),
                                 std::chrono::system_clock::now(), rng());
    const std::string again = once ? " (will retry)" : " (will retry in " + in_words(delay) + ")";
    for (const auto& c : pass.calendars) {
      if (!c.error) continue;
      const bool final = c.error->retry == caldav::RetryClass::needs_user;
      if (final) stopped.insert(c.calendar.url);
      say_line("crm-captured: " + c.error->message +
               (final ? " (needs attention; not retrying)" : again));
    }
    if (pass.error) {
      const bool final = pass.error->retry == caldav::RetryClass::needs_user;
      say_line("crm-captured: " + pass.error->message +
               (final ? " (needs attention; not retrying)" : again));
      if (final) return;
    }
    rt.summary = "caldav: " + capture::describe(pass, rt.sink->counters(), rt.sink->cancelled());
    if (once) return;
    if (!pass.error) say_line("crm-captured: " + rt.name + ": " + rt.summary);
    if (stop.wait(delay)) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"crm-captured: the crm-capture daemon"};
  app.set_version_flag("--version", "crm-captured " CRMCAP_VERSION);
  const auto env = config::Environment::current();
  std::string config_path = config::default_config_path(env);
  bool once = false;
  std::string free_mail_path;
  app.add_option("--config", config_path, "the configuration file")->capture_default_str();
  app.add_flag("--once", once, "sync every mailbox once and exit (non-zero if any failed)");
  app.add_option("--free-mail", free_mail_path, "free-mail domain list file");
  // crm-captured@NAME.service passes /run/crm-capture/NAME.sock: only the
  // unit knows its instance's name.
  std::string socket_path;
  app.add_option("--socket", socket_path, "the API socket, in place of [api] socket");
  bool check = false;
  app.add_flag("--check", check,
               "validate the configuration and read its secrets, then exit; no server is "
               "contacted and the store is not opened");
  CLI11_PARSE(app, argc, argv);

  auto cfg = config::load_config(config_path, env);
  if (!cfg) {
    std::cerr << "crm-captured: " << cfg.error().message << "\n";
    return 2;
  }
  if (!socket_path.empty()) cfg->api_socket = socket_path;
  for (const auto& w : cfg->warnings) std::cerr << "crm-captured: warning: " << w << "\n";
  auto free_mail = capture::FreeMailDomains::load(free_mail_path);
  if (!free_mail) {
    std::cerr << "crm-captured: " << free_mail.error() << "\n";
    return 2;
  }
  if (check) {
    const auto r = service::check_config(*cfg, env);
    for (const auto& n : r.notes) std::cerr << "crm-captured: note: " << n << "\n";
    for (const auto& e : r.errors) std::cerr << "crm-captured: " << e << "\n";
    if (!r.errors.empty()) return 2;
    std::cout << "crm-captured: " << r.summary << "\n";
    return 0;
  }
  {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(cfg->store_path).parent_path(), ec);
  }
  api::Board board;  // what the local API tells of the mailboxes and the store's changes
  store::StoreOptions store_options;
  store_options.on_change = board.change_hook();
  auto st = store::Store::open(cfg->store_path, store_options);
  if (!st) {
    std::cerr << "crm-captured: " << st.error().message << "\n";
    return 2;
  }
  store::Store& db = **st;

  // Directory changes over the API: applied on the capture thread too.
  std::map<std::string, capture::Settings> by_mailbox;
  for (const auto& mb : cfg->mailboxes) by_mailbox.emplace(mb.name, settings_of(*cfg, mb));
  capture::DirectoryEditor editor(db, by_mailbox, settings_of(*cfg, {}), *free_mail);

  // The capture thread: every sink call of every mailbox runs here, one at a
  // time, so the pipelines and the store are only ever used by this thread.
  CaptureThread capture_thread;
  const asio::any_io_executor capture = capture_thread.executor();
  board.set_directory_writer([&editor, capture](const std::vector<store::DirectoryEdit>& edits) {
    std::packaged_task<store::Result<capture::DirectoryReport>()> task(
        [&] { return editor.apply(edits, "over the API", std::time(nullptr)); });
    auto done = task.get_future();
    asio::post(capture, [&task] { task(); });
    return done.get();
  });

  asio::io_context io;
  std::vector<std::unique_ptr<MailboxRuntime>> boxes;
  for (const auto& mb : cfg->mailboxes) {
    if (!mb.imap) continue;
    auto rt = std::make_unique<MailboxRuntime>();
    rt->name = mb.name;
    rt->pipeline = std::make_unique<capture::Pipeline>(db, db, settings_of(*cfg, mb), *free_mail);
    rt->sink = std::make_unique<capture::ImapSink>(mb.name, *rt->pipeline, db, db);
    const std::string name = mb.name;
    rt->sink->on_warning = [name](const std::string& m) {
      say_line("crm-captured: warning: " + m);
    };
    imap::AccountOptions options = account_options(*cfg, mb, env);
    options.sink_executor = &capture;
    rt->account = std::make_unique<imap::Account>(io.get_executor(), std::move(options), *rt->sink);
    boxes.push_back(std::move(rt));
  }
  std::vector<std::unique_ptr<CaldavRuntime>> calendars;
  for (const auto& mb : cfg->mailboxes) {
    if (!mb.caldav) continue;
    auto rt = std::make_unique<CaldavRuntime>();
    rt->name = mb.name;
    rt->config = *mb.caldav;
    rt->pipeline = std::make_unique<capture::Pipeline>(db, db, settings_of(*cfg, mb), *free_mail);
    rt->sink = std::make_unique<capture::CaldavSink>(mb.name, *rt->pipeline, db, db);
    rt->sink->on_warning = [](const std::string& m) { say_line("crm-captured: warning: " + m); };
    rt->on_capture = std::make_unique<OnCaptureThread>(*rt->sink, capture);
    calendars.push_back(std::move(rt));
  }
  if (boxes.empty() && calendars.empty()) {
    std::cerr << "crm-captured: " << cfg->source
              << ": no [[mailbox]] with an [mailbox.imap] or [mailbox.caldav] table\n";
    return 2;
  }
  StopSignal stop;
  for (auto& c : calendars) {
    CaldavRuntime* rt = c.get();
    rt->worker = std::thread([rt, &env, once, &stop] { run_caldav(*rt, env, once, stop); });
  }
  // Before the capture thread ends: the workers wait on it.
  auto join_workers = [&] {
    stop.raise();
    for (auto& c : calendars) {
      if (c->worker.joinable()) c->worker.join();
    }
  };

  if (once) {
    for (auto& b : boxes) {
      MailboxRuntime* rt = b.get();
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
    join_workers();
    int failed = 0;
    for (const auto& b : boxes) {
      if (b->error) {
        ++failed;
        std::cerr << "crm-captured: " << b->name << ": " << b->error->message << "\n";
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

  for (const auto& mb : cfg->mailboxes) board.add_mailbox(mb.name, !!mb.imap, !!mb.caldav);
  auto server = api::Server::start(
      io, {cfg->api_socket, cfg->api_mode, cfg->allow_uids, cfg->store_path, CRMCAP_VERSION},
      board);
  if (!server) {
    std::cerr << "crm-captured: " << server.error().message << "\n";
    join_workers();
    return 2;
  }
  // Its own signal set: the API serves on (status says needs_user) after
  // every mailbox stopped, until SIGINT or SIGTERM.
  asio::signal_set api_signals(io, SIGINT, SIGTERM);
  api_signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) (*server)->stop();
  });
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    std::cerr << "crm-captured: stopping\n";
    service::notify("STOPPING=1");
    for (auto& b : boxes) b->account->stop();
    stop.raise();
  });
  std::size_t running = boxes.size();
  const bool has_calendars = !calendars.empty();
  for (auto& b : boxes) {
    MailboxRuntime* rt = b.get();
    rt->account->on_synced = [rt, capture, &db](const imap::SyncReport& r) {
      say_line("crm-captured: " + rt->name + ": " + describe(r, rt->sink->counters()));
      // The pass is over and the mailbox idles: the store gives its caches
      // back (a backfill fills them to tens of MiB), on the thread it lives
      // on, and glibc returns the freed pages to the system (without the
      // trim, RSS stayed at 58 MiB after a 20,000-message backfill; with it,
      // 25 MiB: tests/bench/README.md).
      asio::post(capture, [&db] {
        db.release_memory();
        malloc_trim(0);
      });
    };
    rt->account->on_failure = [rt](const imap::SyncError& e) {
      say_line("crm-captured: " + rt->name + ": " + e.message +
               (e.retry == imap::RetryClass::needs_user ? " (needs attention; not retrying)"
                                                        : " (will retry)"));
    };
    asio::co_spawn(
        io,
        [rt]() -> imap::Awaitable<void> {
          auto e = co_await rt->account->run();
          if (e.code != imap::make_error_code(imap::SyncErrc::cancelled)) rt->error = e;
        },
        [rt, &running, &signals, has_calendars](std::exception_ptr e) {
          // The account turns a pass's exceptions into failed passes; one
          // escaping here ends this mailbox's capture, and is said so.
          if (e) {
            rt->error = imap::failure_of(std::move(e));
            say_line("crm-captured: " + rt->name + ": " + rt->error->message +
                     " (capture of this mailbox stopped)");
          }
          if (--running == 0 && !has_calendars) signals.cancel();
        });
  }
  for (auto& b : boxes) api::report_imap(board, b->name, *b->account, *b->sink);
  std::cerr << "crm-captured: running " << boxes.size() << " IMAP and " << calendars.size()
            << " CalDAV account(s), store " << cfg->store_path << "\n";
  // Type=notify (packaging/systemd): running now, and alive while the loop turns.
  const service::Watchdog watchdog(io.get_executor());
  service::notify("READY=1");
  io.run();
  join_workers();
  for (const auto& b : boxes) {
    if (b->error) return 1;
  }
  return 0;
}
