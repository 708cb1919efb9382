// SPDX-License-Identifier: Apache-2.0
// The board (mailbox states and store changes) and the reports of the IMAP
// and CalDAV sides on it. No Asio here.
#include "connectors/imap/imap.hpp"
#include "daemon/api/api.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/imap_sink.hpp"

#include <algorithm>
#include <ctime>

namespace crmcap::api {

namespace {

std::string now_iso() { return capture::iso_utc(std::time(nullptr)); }

void take_counters(SourceStatus& s, const capture::Tally& t) {
  s.seen = t.seen;
  s.captured = t.captured;
  s.skipped = t.skipped;
  s.failed = t.failed;
  s.known = t.known;
}

}  // namespace

std::string_view to_string(SourceState s) noexcept {
  switch (s) {
    case SourceState::starting:
      return "starting";
    case SourceState::connecting:
      return "connecting";
    case SourceState::backfilling:
      return "backfilling";
    case SourceState::syncing:
      return "syncing";
    case SourceState::idle:
      return "idle";
    case SourceState::retrying:
      return "retrying";
    case SourceState::needs_user:
      return "needs_user";
    case SourceState::stopped:
      return "stopped";
  }
  return "starting";
}

void Board::add_mailbox(const std::string& name, bool imap, bool caldav) {
  const std::lock_guard<std::mutex> lock(mutex_);
  MailboxStatus m{name, {}, {}};
  const std::string now = now_iso();
  if (imap) m.imap = SourceStatus{.state_since = now};
  if (caldav) m.caldav = SourceStatus{.state_since = now};
  for (auto& old : mailboxes_) {
    if (old.name == name) {
      old = std::move(m);
      return;
    }
  }
  mailboxes_.push_back(std::move(m));
}

void Board::remove_mailbox(std::string_view name) {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::erase_if(mailboxes_, [&](const MailboxStatus& m) { return m.name == name; });
}

void Board::update(std::string_view mailbox, Side side,
                   const std::function<void(SourceStatus&)>& change) {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (auto& m : mailboxes_) {
    if (m.name != mailbox) continue;
    auto& s = side == Side::imap ? m.imap : m.caldav;
    if (!s) return;
    const SourceState before = s->state;
    change(*s);
    if (s->state != before) s->state_since = now_iso();
    return;
  }
}

std::vector<MailboxStatus> Board::mailboxes() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return mailboxes_;
}

bool Board::has_mailbox(std::string_view name) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(mailboxes_.begin(), mailboxes_.end(),
                     [&](const MailboxStatus& m) { return m.name == name; });
}

void Board::store_changed(std::int64_t) {
  // Under the lock, so that once the server has cleared its listener no call
  // of it is under way or to come.
  const std::lock_guard<std::mutex> lock(mutex_);
  if (change_listener_) change_listener_();
}

void Board::set_change_listener(std::function<void()> listener) {
  const std::lock_guard<std::mutex> lock(mutex_);
  change_listener_ = std::move(listener);
}

void Board::set_sync_handler(std::function<bool(const std::string&)> handler) {
  const std::lock_guard<std::mutex> lock(mutex_);
  sync_handler_ = std::move(handler);
}

void Board::set_directory_writer(DirectoryWriter writer) {
  const std::lock_guard<std::mutex> lock(mutex_);
  directory_writer_ = std::move(writer);
}

std::optional<store::Result<capture::DirectoryReport>> Board::write_directory(
    const std::vector<store::DirectoryEdit>& edits) const {
  DirectoryWriter w;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    w = directory_writer_;
  }
  if (!w) return std::nullopt;
  return w(edits);
}

std::optional<bool> Board::request_sync(const std::string& mailbox) const {
  std::function<bool(const std::string&)> h;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    h = sync_handler_;
  }
  if (!h) return std::nullopt;
  return h(mailbox);
}

void report_connecting(Board& board, const std::string& mailbox, Side side) {
  board.update(mailbox, side, [](SourceStatus& s) {
    s.state = SourceState::connecting;
    s.next_attempt_at.clear();
    s.progress_done.reset();
    s.progress_total.reset();
  });
}

void report_progress(Board& board, const std::string& mailbox, Side side, bool backfilling,
                     std::optional<std::uint64_t> done, std::optional<std::uint64_t> total) {
  board.update(mailbox, side, [&](SourceStatus& s) {
    s.state = backfilling ? SourceState::backfilling : SourceState::syncing;
    s.next_attempt_at.clear();
    const bool known = backfilling && done && total;
    s.progress_done = known ? done : std::nullopt;
    s.progress_total = known ? total : std::nullopt;
  });
}

void report_pass(Board& board, const std::string& mailbox, Side side, const PassOutcome& o,
                 const capture::Tally& t) {
  board.update(mailbox, side, [&](SourceStatus& s) {
    const std::string now = now_iso();
    s.progress_done.reset();
    s.progress_total.reset();
    s.last_pass_at = now;
    s.last_pass_ok = o.ok;
    ++s.passes;
    take_counters(s, t);
    s.next_attempt_at.clear();
    if (o.ok) {
      // The account goes on to wait for new mail or its interval.
      s.state = SourceState::idle;
      s.reason.clear();
      s.last_success_at = now;
      return;
    }
    ++s.failed_passes;
    s.reason = o.reason;
    s.state = o.needs_user ? SourceState::needs_user : SourceState::retrying;
    if (o.next_attempt && !o.needs_user) {
      s.next_attempt_at = capture::iso_utc(std::chrono::system_clock::to_time_t(*o.next_attempt));
    }
  });
}

void report_imap(Board& board, const std::string& mailbox, imap::Account& account,
                 const capture::ImapSink& sink) {
  auto synced = std::move(account.on_synced);
  account.on_synced = [&board, &sink, mailbox, synced](const imap::SyncReport& r) {
    if (synced) synced(r);
    report_pass(board, mailbox, Side::imap, PassOutcome{}, sink.counters());
  };
  auto failed = std::move(account.on_failure);
  account.on_failure = [&board, &sink, mailbox, failed](const imap::SyncError& e) {
    if (failed) failed(e);
    PassOutcome o;
    o.ok = false;
    o.needs_user = e.retry == imap::RetryClass::needs_user;
    o.reason = e.message;
    report_pass(board, mailbox, Side::imap, o, sink.counters());
  };
  auto connecting = std::move(account.on_connecting);
  account.on_connecting = [&board, mailbox, connecting] {
    if (connecting) connecting();
    report_connecting(board, mailbox, Side::imap);
  };
  auto progress = std::move(account.on_progress);
  account.on_progress = [&board, mailbox, progress](const imap::PassProgress& p) {
    if (progress) progress(p);
    report_progress(board, mailbox, Side::imap, p.backfilling, p.done, p.total);
  };
  auto retry = std::move(account.on_retry);
  account.on_retry = [&board, mailbox, retry](std::chrono::milliseconds delay) {
    if (retry) retry(delay);
    const auto at = std::chrono::system_clock::now() + delay;
    board.update(mailbox, Side::imap, [&](SourceStatus& s) {
      if (s.state == SourceState::retrying) {
        s.next_attempt_at = capture::iso_utc(std::chrono::system_clock::to_time_t(at));
      }
    });
  };
}

}  // namespace crmcap::api
