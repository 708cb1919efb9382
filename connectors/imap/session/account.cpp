// SPDX-License-Identifier: Apache-2.0
// Account: the driver of the session core (core/session.hpp). Everything the
// account decides, the core decides; this carries out its Actions and
// resumes it with what came of them, and is, with driver.cpp (the
// transport's actions), the only code that calls the Transport and the
// MailSink. The sink's calls run on AccountOptions::sink_executor (through a
// strand) or inline; the commits the core starts without waiting run there
// while the core goes on reading the next batch or starting the next folder.
#include "connectors/imap/core/session.hpp"
#include "connectors/imap/imap.hpp"
#include "connectors/imap/session/driver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <map>
#include <random>
#include <type_traits>
#include <utility>

namespace asio = boost::asio;

namespace crmcap::imap {

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

struct Account::Impl {
  Impl(const asio::any_io_executor& ex, AccountOptions o, MailSink& s)
      : executor(ex), options(std::move(o)), sink(s), sleeper(ex), commits_ended(ex) {
    if (options.sink_executor) sink_strand.emplace(*options.sink_executor);
  }

  asio::any_io_executor executor;
  AccountOptions options;
  MailSink& sink;
  // The sink's calls, in the order they are made and never two at once, even
  // on an executor of several threads: a folder's last commit runs while the
  // next folder starts, which may call the sink too.
  std::optional<asio::strand<asio::any_io_executor>> sink_strand;
  bool stopped = false;
  // What one session of run() leaves for the next.
  SessionMemory memory;
  // The session under way, its transport, and its sleep (Action::sleep):
  // for stop().
  session_fsm* session = nullptr;
  std::unique_ptr<Transport> transport;
  detail::WakingReads* waking_reads = nullptr;  // the session's, for wake()
  // wake() came with no session under way (between two: one ending, or the
  // backoff): the next session starts without waiting out the backoff.
  bool wake_asked = false;
  // The session's sleep, and run()'s backoff between sessions: stop() and
  // wake() cancel it.
  asio::steady_timer sleeper;

  // Commits started (Action::start_commits) and not yet waited for, by
  // ticket; `commits_ended` is cancelled whenever some end.
  struct Commits {
    bool done = false;
    SyncResult<void> result;
    std::exception_ptr thrown;  // escaped the sink: rethrown where waited for
  };
  std::map<std::uint64_t, Commits> commits;
  asio::steady_timer commits_ended;

  // Runs `f` (a call of the sink) on the sink's executor, or inline when
  // there is none, and returns its result here.
  template <class F>
  Awaitable<std::invoke_result_t<F&>> on_sink(F f) {
    using R = std::invoke_result_t<F&>;
    auto task = [&f]() -> Awaitable<R> { co_return f(); };
    // Named, not temporaries, in the co_await (GCC 12 can destroy such
    // temporaries twice).
    if (!sink_strand) {
      auto here = task();
      co_return co_await std::move(here);
    }
    auto there = asio::co_spawn(*sink_strand, std::move(task), asio::use_awaitable);
    co_return co_await std::move(there);
  }

  // Makes `call` (Action::sink).
  SinkAnswer answer(SinkCall& call) {
    SinkAnswer a;
    std::visit(
        Overloaded{
            [&](sink_call::FolderStates& c) {
              for (const auto& f : c.folders) a.states.push_back(sink.folder_state(f));
            },
            [&](sink_call::KnownMessages& c) { a.known = sink.known_messages(c.folder, c.keys); },
            [&](sink_call::Removed& c) { a.result = sink.removed(c.state, c.uids); },
            [&](sink_call::NoteRefusal& c) { a.result = sink.note_refusal(c.state); },
            [&](sink_call::Warn& c) { sink.warn(c.message); },
        },
        call);
    return a;
  }

  // Action::start_commits: the batches in order, each only once the one
  // before is stored; with no sink executor, here and now.
  void start_commits(std::uint64_t ticket, std::vector<sink_call::Commit> batches) {
    auto run = [this, batches = std::move(batches)]() mutable -> SyncResult<void> {
      for (auto& b : batches) {
        if (auto r = sink.commit(b.state, std::move(b.messages)); !r) return r;
      }
      return {};
    };
    Commits& slot = commits[ticket];
    if (!sink_strand) {
      try {
        slot.result = run();
      } catch (...) {
        slot.thrown = std::current_exception();
      }
      slot.done = true;
      return;
    }
    asio::co_spawn(
        *sink_strand,
        [run = std::move(run)]() mutable -> Awaitable<SyncResult<void>> { co_return run(); },
        asio::bind_executor(executor, [this, ticket](std::exception_ptr e, SyncResult<void> r) {
          Commits& ended = commits[ticket];
          ended.result = std::move(r);
          ended.thrown = std::move(e);
          ended.done = true;
          commits_ended.cancel();
        }));
  }

  // Action::wait_commits.
  Awaitable<SyncResult<void>> wait_commits(std::uint64_t ticket) {
    for (;;) {
      auto it = commits.find(ticket);
      if (it == commits.end()) co_return SyncResult<void>{};
      if (it->second.done) {
        Commits ended = std::move(it->second);
        commits.erase(it);
        if (ended.thrown) std::rethrow_exception(ended.thrown);
        co_return std::move(ended.result);
      }
      commits_ended.expires_at(asio::steady_timer::time_point::max());
      (void)co_await commits_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // Waits for every commit still running (a session that ended early: an
  // exception), whatever came of them.
  Awaitable<void> drain_commits() {
    for (;;) {
      std::erase_if(commits, [](const auto& c) { return c.second.done; });
      if (commits.empty()) co_return;
      commits_ended.expires_at(asio::steady_timer::time_point::max());
      (void)co_await commits_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // Runs `s` over a new connection to its end, carrying out every Action;
  // returns why it failed, if it did. `synced` is called for each pass a
  // watch session reports; `hooks`' on_connecting and on_progress as they
  // say. An exception (from the sink, from a hook) ends the session as the
  // failure failure_of() makes of it.
  Awaitable<std::optional<SyncError>> drive(session_fsm& s, const Account& hooks,
                                            const std::function<void(const SyncReport&)>& synced) {
    transport = std::make_unique<Transport>(executor, options.transport);
    Transport& t = *transport;
    detail::WakingReads waking(executor, t);
    session = &s;
    waking_reads = &waking;
    wake_asked = false;  // this session's first pass is the one asked for
    const std::function<bool()> wake_pending = [&s] { return s.wake_pending(); };
    if (stopped) s.stop();  // stop() came first: the session stops at its first check
    std::optional<SyncError> failed;
    std::exception_ptr thrown;
    try {
      for (Action a = s.resume(Io{}); a.kind != Action::Kind::done;) {
        Io outcome;
        switch (a.kind) {
          case Action::Kind::connect:
            if (hooks.on_connecting) hooks.on_connecting();
            if (auto r = co_await t.async_connect(); !r) outcome.error = std::move(r).error();
            break;
          case Action::Kind::write:
            if (auto r = co_await t.async_write(a.bytes); !r) outcome.error = std::move(r).error();
            break;
          case Action::Kind::read:
            if (waking.handles(a)) {
              outcome = co_await waking.read(a, wake_pending);
            } else if (auto r = co_await t.async_read_some(a.into, a.timeout); r) {
              outcome.bytes = *r;
            } else {
              outcome.error = std::move(r).error();
            }
            break;
          case Action::Kind::start_tls:
            if (auto r = co_await t.async_start_tls(); !r) outcome.error = std::move(r).error();
            break;
          case Action::Kind::close:
            co_await t.async_close();
            break;
          case Action::Kind::sink:
            outcome.sink = co_await on_sink([&] { return answer(*a.call); });
            break;
          case Action::Kind::start_commits:
            start_commits(a.ticket, std::move(*a.commits));
            break;
          case Action::Kind::wait_commits:
            outcome.sink.result = co_await wait_commits(a.ticket);
            break;
          case Action::Kind::sleep:
            sleeper.expires_at(a.until);
            if (!stopped && !s.wake_pending()) {
              (void)co_await sleeper.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            break;
          case Action::Kind::synced:
            if (synced) synced(*a.report);
            break;
          case Action::Kind::progress:
            if (hooks.on_progress) hooks.on_progress(*a.progress);
            break;
          case Action::Kind::error:
            failed = *a.error;
            break;
          case Action::Kind::done:
            break;
        }
        if (failed) break;
        a = s.resume(std::move(outcome));
      }
    } catch (...) {
      thrown = std::current_exception();
    }
    session = nullptr;
    waking_reads = nullptr;
    // Nothing the session started outlives it: a read left going, commits.
    co_await waking.close();
    co_await drain_commits();
    if (thrown) failed = failure_of(std::move(thrown));
    co_return failed;
  }
};

Account::Account(const asio::any_io_executor& ex, AccountOptions options, MailSink& sink)
    : impl_(std::make_unique<Impl>(ex, std::move(options), sink)) {}

Account::~Account() = default;

Awaitable<SyncResult<SyncReport>> Account::sync_once() {
  Impl& s = *impl_;
  session_fsm session(s.options, session_fsm::Mode::once);
  const std::function<void(const SyncReport&)> none;
  if (auto failed = co_await s.drive(session, *this, none)) co_return std::move(*failed);
  co_return session.report();
}

void Account::stop() {
  impl_->stopped = true;
  if (impl_->session) impl_->session->stop();
  if (impl_->transport) impl_->transport->close();
  impl_->sleeper.cancel();
}

void Account::wake() {
  Impl& s = *impl_;
  if (s.stopped) return;
  if (s.session) {
    s.session->wake();
    if (s.waking_reads) s.waking_reads->interrupt();
  } else {
    s.wake_asked = true;
  }
  s.sleeper.cancel();
}

Awaitable<SyncError> Account::run() {
  Impl& s = *impl_;
  std::mt19937_64 rng{std::random_device{}()};
  unsigned attempt = 0;
  const std::function<void(const SyncReport&)> synced = [&](const SyncReport& r) {
    attempt = 0;
    if (on_synced) on_synced(r);
  };
  while (!s.stopped) {
    SyncError failure;
    bool failed = false;
    {
      session_fsm session(s.options, session_fsm::Mode::watch, {}, &s.memory);
      if (auto ended = co_await s.drive(session, *this, synced)) {
        failure = std::move(*ended);
        failed = true;
      }
    }
    if (s.stopped) break;
    if (failed && on_failure) on_failure(failure);
    if (failed && failure.retry == RetryClass::needs_user) co_return failure;
    ++attempt;
    const auto delay = backoff_delay(attempt, rng());
    if (on_retry) on_retry(delay);
    s.sleeper.expires_after(delay);
    if (!s.stopped && !s.wake_asked) {
      (void)co_await s.sleeper.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  co_return SyncError{make_error_code(SyncErrc::cancelled), s.options.name + ": stopped",
                      RetryClass::retry_later};
}

}  // namespace crmcap::imap
