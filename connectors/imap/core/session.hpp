// SPDX-License-Identifier: Apache-2.0
// The IMAP session core (sans-io): everything an Account does over one
// connection, from the greeting to LOGOUT, as a state machine that answers
// "what next" and is resumed with the outcome. It holds the parser, the
// command builder, COMPRESS=DEFLATE, the outstanding commands, the folder
// sync and every limit; it never touches a socket, a timer or an executor,
// and never calls the MailSink itself: a driver (session/account.cpp, or a
// test) carries out each Action and resumes it.
//
// Internal to connectors/imap: the public interface stays imap.hpp.
#pragma once

#include "connectors/imap/imap.hpp"

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace crmcap::imap {

// ---------------------------------------------------------------------------
// Calls of the MailSink, as data: the driver makes them (see imap.hpp for
// what each means) where AccountOptions::sink_executor says.

namespace sink_call {
struct FolderStates {  // MailSink::folder_state() of each, in order
  std::vector<std::string> folders;
};
struct KnownMessages {  // MailSink::known_messages()
  std::string folder;
  std::vector<MessageKey> keys;
};
struct Removed {  // MailSink::removed()
  FolderState state;
  UidRanges uids;
};
struct NoteRefusal {  // MailSink::note_refusal()
  FolderState state;
};
struct Warn {  // MailSink::warn()
  std::string message;
};
// One MailSink::commit(); see Action::start_commits.
struct Commit {
  FolderState state;
  std::vector<FetchedMessage> messages;
};
}  // namespace sink_call

using SinkCall = std::variant<sink_call::FolderStates, sink_call::KnownMessages, sink_call::Removed,
                              sink_call::NoteRefusal, sink_call::Warn>;

// What a sink call answered. Only the member of its kind is read.
struct SinkAnswer {
  SyncResult<void> result;                         // Removed, NoteRefusal; commits
  std::vector<bool> known;                         // KnownMessages: one per key
  std::vector<std::optional<FolderState>> states;  // FolderStates: one per folder
};

// ---------------------------------------------------------------------------
// The exchange with the driver

// What the core wants done next. Views and pointers point into the core and
// stay valid until the next resume() (the read buffer: until the read ends;
// `error`: as long as the machine). Trivially copyable: one is made for
// every read.
struct Action {
  enum class Kind {
    // Transport::async_connect(); resume with Io::error set when it failed.
    connect,
    // Write all of `bytes`; resume with Io::error set when it failed. Allowed
    // while a read goes on (see read).
    write,
    // Read what one read returns into `into`, waiting at most `timeout`;
    // resume with Io::bytes, or Io::error. With `wake_at`: when that time
    // passes first, resume with Io::woken instead, the read going on; the
    // core then writes (at most) and asks for a read again, which is that
    // same read, still under its first timeout.
    read,
    // Transport::async_start_tls(); resume with Io::error set when it failed.
    start_tls,
    // Transport::async_close() (the end of a session that logged out).
    close,
    // Make `*call` on the sink (it may be moved from) and resume with its
    // answer; sink calls are made one at a time, in the order asked, after
    // every commit started before.
    sink,
    // Start the commits `*commits` (they may be moved from) in order, each
    // only once the one before succeeded, and resume at once; they are
    // `ticket`, awaited by wait_commits. They go on while the core reads.
    start_commits,
    // Resume once the commits started as `ticket` are done, with the first
    // failure in Io::sink.result (success when none failed).
    wait_commits,
    // Resume once the steady clock reaches `until`.
    sleep,
    // A watch session finished a pass: `*report` (Account::on_synced).
    synced,
    // A pass began, or a backfill moved on: `*progress`
    // (Account::on_progress).
    progress,
    // The end: the session's report is in session_fsm::report().
    done,
    // The end, failed with `*error`.
    error,
  };
  Kind kind = Kind::done;
  std::string_view bytes;                                        // write
  std::span<char> into;                                          // read
  std::chrono::milliseconds timeout{0};                          // read
  std::optional<std::chrono::steady_clock::time_point> wake_at;  // read
  SinkCall* call = nullptr;                                      // sink
  std::vector<sink_call::Commit>* commits = nullptr;             // start_commits
  std::uint64_t ticket = 0;                                      // start_commits, wait_commits
  std::chrono::steady_clock::time_point until;                   // sleep
  const SyncReport* report = nullptr;                            // synced
  const PassProgress* progress = nullptr;                        // progress
  const SyncError* error = nullptr;                              // error
};

// What came of an Action. resume() reads it in place, and may move from it.
struct Io {
  // connect, write, read, start_tls: the transport's failure, if it failed.
  std::optional<TransportError> error;
  std::size_t bytes = 0;  // read: how many were put at the start of `into`
  bool woken = false;     // read with wake_at: it passed first
  SinkAnswer sink;        // sink, wait_commits
};

// The clocks the core reads (deadlines, the backfill window, refusal
// counts); tests give their own.
struct SessionClocks {
  std::function<std::chrono::steady_clock::time_point()> steady = std::chrono::steady_clock::now;
  std::function<std::chrono::system_clock::time_point()> system = std::chrono::system_clock::now;
};

// What a watch session leaves for the next one of the same account
// (Account::run keeps it across reconnects).
struct SessionMemory {
  // The server refused NOTIFY SET and the sink was told so: a later refusal
  // falls back to polling again without telling it again.
  bool notify_refusal_told = false;
};

namespace detail {
struct Core;
}

// One connection's session:
// - once: connect, log in, sync every configured folder once, log out: done
//   with the report (Account::sync_once);
// - watch: the same pass (reported by `synced`), then IDLE on INBOX (or
//   sleeping until the next poll without IDLE) and a pass over every folder
//   each poll_interval, until stop() or a failure (Account::run, which
//   reconnects). Where the server offers NOTIFY (RFC 5465), it announces
//   changes of the other folders during that IDLE, and they are not polled.
//
// Usage: resume({}) first, then carry out each Action and resume with what
// came of it, until done or error; after that resume() answers the same.
// It throws nothing: an exception inside (std::bad_alloc, a bug) ends it in
// `error`, as failure_of() describes it. By its end it has waited for every
// commit it started, unless an exception ended it; a read may still be
// going (one woken for DONE, when writing DONE failed). So whatever ends a
// session, its driver closes the transport and waits for that read (which
// fills the machine's buffer) and for the commits still running before it
// lets go of the machine.
class session_fsm {
 public:
  enum class Mode { once, watch };
  // `options` outlives the machine, and so does `memory` (may be null).
  session_fsm(const AccountOptions& options, Mode mode, SessionClocks clocks = {},
              SessionMemory* memory = nullptr);
  ~session_fsm();
  session_fsm(const session_fsm&) = delete;
  session_fsm& operator=(const session_fsm&) = delete;

  Action resume(Io&& io);
  // The session ends soon (cancelled): before the next batch or pass.
  void stop() noexcept;
  // A watch session syncs every folder now (POST /v1/sync): it ends its IDLE
  // or its sleep until the next poll and starts a pass; asked during a pass,
  // another pass follows it at once. Nothing in a once session. The driver
  // cuts the wait short: see wake_pending().
  void wake() noexcept;
  // A wake() whose pass has not started: the driver then resumes a read with
  // a wake_at at once with Io::woken (the read going on), and a sleep at once.
  bool wake_pending() const noexcept;
  // After done (once): every folder's report, the capabilities, COMPRESS.
  const SyncReport& report() const;

 private:
  std::unique_ptr<detail::Core> core_;
};

}  // namespace crmcap::imap
