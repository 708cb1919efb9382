// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/core: one IMAP connection, sans-io. It says
// what to write and when to read (Actions, session.hpp), and follows what
// comes back: everything it understands comes from the parser, everything it
// sends from the command builder. It keeps the greeting, the capabilities,
// STARTTLS, the login, ENABLE, COMPRESS=DEFLATE (both directions), IDLE, the
// commands outstanding and their completions, and every deadline.
#pragma once

#include "connectors/imap/core/command.hpp"
#include "connectors/imap/core/parser.hpp"
#include "connectors/imap/core/session.hpp"
#include "connectors/imap/core/task.hpp"

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::imap::detail {

SyncError make_sync_error(SyncErrc code, std::string message, RetryClass retry);
SyncError from_transport(const TransportError& e);
// "host:port" as Transport::peer() says it, for messages.
std::string peer_of(const TransportOptions& options);

// Where the core's coroutines meet their driver: a coroutine that needs
// something puts the Action here and suspends (co_await need()); the driver
// reads the Action, carries it out, and resumes (resume()) the coroutine
// that suspended with `io` pointing at the outcome.
struct Exchange {
  Action action;
  Io* io = nullptr;  // the outcome, while resume() runs
  std::coroutine_handle<> suspended;
  Trampoline trampoline;  // runs the core's Tasks

  void resume() { trampoline.run(std::exchange(suspended, {})); }

  // Sets the next action (its fields other than `kind` are the caller's to
  // fill) and gives the awaitable that suspends for it.
  Action& next(Action::Kind kind) {
    action = Action{};
    action.kind = kind;
    return action;
  }
  Suspension need() { return Suspension{&suspended}; }
};

class Connection {
 public:
  using Clock = std::chrono::steady_clock;

  // `options`, `exchange` and `clocks` outlive the connection.
  Connection(const AccountOptions& options, Exchange& exchange, const SessionClocks& clocks);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects, reads the greeting, upgrades with STARTTLS when asked, logs in
  // and learns the capabilities, enables CONDSTORE/QRESYNC and COMPRESS
  // where offered. A refused login is needs_user.
  Task<SyncResult<void>> open();

  // Runs one command to its tagged completion, calling `on_untagged` for every
  // other response meanwhile. NO/BAD become a SyncError naming `what`. A
  // response the parser could not read is skipped and counted (malformed());
  // with `Malformed::fail` it fails the command too, once the completion is
  // read: for an answer that is the data itself (SEARCH), where a hole would
  // read as messages that are not there. Others check what they needed came.
  using Handler = std::function<void(Response&)>;
  enum class Malformed { fail, tolerate };
  Task<SyncResult<TaggedStatus>> run(const Command& command, const Handler& on_untagged,
                                     std::string_view what,
                                     Malformed malformed = Malformed::tolerate);
  // The two halves of run(), for overlapping a command with other work:
  // send() writes a one-segment command; finish() reads until its completion.
  // Several commands may be outstanding: a completion that arrives for a
  // command nobody is finishing yet is kept until its finish() asks for it,
  // and every untagged response read meanwhile goes to the handler of the
  // finish() that read it, so a handler must accept responses of any
  // outstanding command.
  Task<SyncResult<void>> send(const Command& command);
  // Each finish() must see its completion within options.command_timeout of
  // starting to read, however steadily the server sends; a tagged completion
  // for a tag that is not outstanding is dropped (and too many of them fail
  // the connection), so nothing the server sends piles up here.
  Task<SyncResult<TaggedStatus>> finish(const Command& command, const Handler& on_untagged,
                                        std::string_view what,
                                        Malformed malformed = Malformed::tolerate);
  // Writes several one-segment commands in one write.
  Task<SyncResult<void>> send(const std::vector<Command>& commands);
  // Waits for the completion of every command in `commands` (FETCH: malformed
  // responses tolerated). Fails on the first NO/BAD, after reading the other
  // completions.
  Task<SyncResult<void>> finish(const std::vector<Command>& commands, const Handler& on_untagged,
                                std::string_view what);

  // Responses the parser could not read and skipped on this connection so
  // far, and the last one's description. A caller compares counts taken
  // before and after reading to learn that an answer has a hole.
  std::uint64_t malformed() const { return malformed_; }
  const std::string& last_malformed() const { return last_malformed_; }

  // IDLE until `wake` reports true for a response (then DONE is sent) or
  // `timeout` passes (then DONE is sent too). Returns after the tagged OK.
  Task<SyncResult<void>> idle(std::chrono::milliseconds timeout,
                              const std::function<bool(const Response&)>& wake);

  // Called with every response read, before whoever reads it gets it: for
  // what may come while any command is under way (NOTIFY's STATUS).
  void observe(Handler observer) { observer_ = std::move(observer); }

  // LOGOUT (its answer not awaited past the BYE), then a clean close.
  Task<void> logout();

  const Capabilities& capabilities() const { return caps_; }
  bool compressed() const { return zlib_ != nullptr; }
  // The server enabled QRESYNC (RFC 7162): EXAMINE can ask what vanished, and
  // expunges arrive as VANISHED.
  bool qresync() const { return qresync_; }
  CommandBuilder& builder() { return builder_; }
  const std::string& peer() const { return peer_; }
  Clock::time_point now() const { return clocks_.steady(); }

 private:
  // The next response, waiting at most io_timeout for each read and never
  // past `deadline`; `what` names the command and `limit` the time allowed,
  // for the message of a deadline passed. With `wake_at`: nullopt once that
  // time passes with nothing read (the read goes on; see Action::read).
  Task<SyncResult<std::optional<Response>>> next(
      Clock::time_point deadline, std::string_view what, std::string_view limit,
      std::optional<Clock::time_point> wake_at = std::nullopt);
  void sent(const Command& command);
  Task<SyncResult<void>> write(std::string_view bytes);
  Task<SyncResult<void>> refresh_capabilities(const TaggedStatus& after);
  SyncError refusal(const TaggedStatus& st, std::string_view what) const;
  Task<SyncResult<void>> log_in();
  Task<SyncResult<void>> enable();

  // RFC 4978: after COMPRESS DEFLATE both directions are raw deflate streams.
  struct Zlib;
  struct ZlibDeleter {
    void operator()(Zlib* z) const noexcept;
  };
  Task<SyncResult<void>> start_compression();
  // Deflates `bytes` into out_ (one flushed block: the server sees whole
  // commands).
  SyncResult<void> deflate_into_output(std::string_view bytes);
  // Inflates `raw` and appends the result to `in_`.
  SyncResult<void> inflate_into_input(std::string_view raw);

  const AccountOptions& options_;
  Exchange& ex_;
  const SessionClocks& clocks_;
  const std::string peer_;
  std::unique_ptr<Zlib, ZlibDeleter> zlib_;
  // What one read returns: the parser reads it in place, or it is inflated
  // into in_. Allocated once and never zeroed (a string growing for each
  // read would zero 64 KiB every time).
  static constexpr std::size_t kReadBytes = 64 * 1024;
  std::unique_ptr<char[]> read_buf_;
  // A read woken by its wake_at goes on into read_buf_ (see next()); whether
  // its timeout was set by the deadline.
  bool reading_ = false;
  bool read_by_deadline_ = false;
  ResponseParser parser_;
  CommandBuilder builder_;
  Capabilities caps_;
  bool qresync_ = false;
  std::string in_;            // inflated bytes (with COMPRESS)
  std::string out_;           // deflated bytes (with COMPRESS)
  std::string_view pending_;  // not yet parsed: in read_buf_ or in_
  // Tags sent and not yet finished; a completion is kept only for one of them.
  std::vector<std::string> outstanding_;
  // Completions read while finishing another command, by tag (outstanding
  // tags only).
  std::map<std::string, TaggedStatus, std::less<>> completed_;
  std::uint64_t stray_completions_ = 0;  // for tags never sent, this connection
  std::uint64_t malformed_ = 0;
  std::string last_malformed_;
  Handler observer_;
};

}  // namespace crmcap::imap::detail
