// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap: one logged-in IMAP connection. The only code that
// reads and writes the transport; everything it understands comes from the
// sans-io parser, everything it sends from the command builder.
#pragma once

#include "connectors/imap/core/command.hpp"
#include "connectors/imap/core/parser.hpp"
#include "connectors/imap/imap.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace crmcap::imap::detail {

SyncError make_sync_error(SyncErrc code, std::string message, RetryClass retry);
SyncError from_transport(const TransportError& e);

class Connection {
 public:
  Connection(const boost::asio::any_io_executor& ex, const AccountOptions& options);

  // Connects, reads the greeting, upgrades with STARTTLS when asked, logs in
  // and learns the capabilities. A refused login is needs_user.
  Awaitable<SyncResult<void>> open();

  // Runs one command to its tagged completion, calling `on_untagged` for every
  // other response meanwhile. NO/BAD become a SyncError naming `what`. A
  // response the parser could not read is skipped and counted (malformed());
  // with `Malformed::fail` it fails the command too, once the completion is
  // read: for an answer that is the data itself (SEARCH), where a hole would
  // read as messages that are not there. Others check what they needed came.
  using Handler = std::function<void(Response&)>;
  enum class Malformed { fail, tolerate };
  Awaitable<SyncResult<TaggedStatus>> run(const Command& command, const Handler& on_untagged,
                                          std::string_view what,
                                          Malformed malformed = Malformed::tolerate);
  // The two halves of run(), for overlapping a command with other work:
  // send() writes a one-segment command; finish() reads until its completion.
  // Between them the caller may do anything but read or write. Several
  // commands may be outstanding: a completion that arrives for a command
  // nobody is finishing yet is kept until its finish() asks for it, and every
  // untagged response read meanwhile goes to the handler of the finish() that
  // read it, so a handler must accept responses of any outstanding command.
  Awaitable<SyncResult<void>> send(const Command& command);
  // Each finish() must see its completion within options.command_timeout of
  // starting to read, however steadily the server sends; a tagged completion
  // for a tag that is not outstanding is dropped (and too many of them fail
  // the connection), so nothing the server sends piles up here.
  Awaitable<SyncResult<TaggedStatus>> finish(const Command& command, const Handler& on_untagged,
                                             std::string_view what,
                                             Malformed malformed = Malformed::tolerate);
  // Writes several one-segment commands in one write.
  Awaitable<SyncResult<void>> send(const std::vector<Command>& commands);
  // Waits for the completion of every command in `commands` (FETCH: malformed
  // responses tolerated). Fails on the first NO/BAD, after reading the other
  // completions.
  Awaitable<SyncResult<void>> finish(const std::vector<Command>& commands,
                                     const Handler& on_untagged, std::string_view what);

  // Responses the parser could not read and skipped on this connection so
  // far, and the last one's description. A caller compares counts taken
  // before and after reading to learn that an answer has a hole.
  std::uint64_t malformed() const { return malformed_; }
  const std::string& last_malformed() const { return last_malformed_; }

  // IDLE until `wake` reports true for a response (then DONE is sent) or the
  // timeout passes (then DONE is sent too). Returns after the tagged OK.
  Awaitable<SyncResult<void>> idle(std::chrono::milliseconds timeout,
                                   const std::function<bool(const Response&)>& wake);

  Awaitable<void> logout();
  void close() noexcept;

  const Capabilities& capabilities() const { return caps_; }
  bool compressed() const { return zlib_ != nullptr; }
  // The server enabled QRESYNC (RFC 7162): EXAMINE can ask what vanished, and
  // expunges arrive as VANISHED.
  bool qresync() const { return qresync_; }
  CommandBuilder& builder() { return builder_; }
  bool is_open() const { return transport_.is_open(); }

 private:
  using Clock = std::chrono::steady_clock;
  // The next response, waiting at most io_timeout for each read and never
  // past `deadline`; `what` names the command and `limit` the time allowed,
  // for the message of a deadline passed.
  Awaitable<SyncResult<Response>> next(Clock::time_point deadline, std::string_view what,
                                       std::string_view limit);
  void sent(const Command& command);
  Awaitable<SyncResult<void>> write(std::string_view bytes);
  Awaitable<SyncResult<void>> refresh_capabilities(const TaggedStatus& after);
  SyncError refusal(const TaggedStatus& st, std::string_view what) const;

  // RFC 4978: after COMPRESS DEFLATE both directions are raw deflate streams.
  struct Zlib;
  struct ZlibDeleter {
    void operator()(Zlib* z) const noexcept;
  };
  Awaitable<SyncResult<void>> start_compression();
  // Inflates `raw` and appends the result to `in_`.
  SyncResult<void> inflate_into_input(std::string_view raw);

  const AccountOptions& options_;
  std::unique_ptr<Zlib, ZlibDeleter> zlib_;
  // What one read returns: the parser reads it in place, or it is inflated
  // into in_. Allocated once and never zeroed (a string growing for each
  // read would zero 64 KiB every time).
  static constexpr std::size_t kReadBytes = 64 * 1024;
  std::unique_ptr<char[]> read_buf_;
  Transport transport_;
  ResponseParser parser_;
  CommandBuilder builder_;
  Capabilities caps_;
  bool qresync_ = false;
  std::string in_;            // inflated bytes (with COMPRESS)
  std::string_view pending_;  // not yet parsed: in read_buf_ or in_
  // Tags sent and not yet finished; a completion is kept only for one of them.
  std::vector<std::string> outstanding_;
  // Completions read while finishing another command, by tag (outstanding
  // tags only).
  std::map<std::string, TaggedStatus, std::less<>> completed_;
  std::uint64_t stray_completions_ = 0;  // for tags never sent, this connection
  std::uint64_t malformed_ = 0;
  std::string last_malformed_;
};

}  // namespace crmcap::imap::detail
