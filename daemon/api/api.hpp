// SPDX-License-Identifier: Apache-2.0
// The local API of crm-captured: HTTP/1.1 and JSON on a Unix socket
// (Boost.Beast), described in daemon/api/openapi.yaml.
//
// Read side: GET /v1/status, /v1/activities, /v1/activities/{id},
// /v1/decisions, /v1/events (Server-Sent Events); and POST /v1/sync. Write
// side: PUT and DELETE /v1/contacts/{id}, /v1/companies/{id},
// /v1/opportunities/{id}, and POST /v1/directory (a batch). Every
// connection's peer is checked with SO_PEERCRED before a byte is read; every
// request has size limits and a deadline, every write a deadline, so a slow or
// stuck client is dropped and never holds up another or the daemon. The
// server runs on threads of its own (one a store connection), never on the
// daemon's capture: a request is read, queried and answered on one of them.
// As many queries as threads run at once; more wait for a thread, and so do
// other connections' reads and writes meanwhile (a page takes about 1 ms).
//
// This header does not include Asio (see DESIGN.md, "Build time"); server.cpp
// does. The JSON of activities and decisions is in json.hpp.
#pragma once

#include "daemon/capture/directory_edit.hpp"
#include "store/store.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace crmcap::imap {
class Account;
}
namespace crmcap::capture {
class ImapSink;
struct Tally;
}  // namespace crmcap::capture

namespace crmcap::api {

// ---- Mailbox state, as the daemon knows it ---------------------------------

// Where a mailbox's IMAP or CalDAV side stands. The daemon reports
// starting, connecting, idle (after a pass), retrying and needs_user for
// both sides; backfilling (with progress) and syncing for a pass under way.
// stopped is not reported yet.
enum class SourceState {
  starting,     // configured, no pass reported yet
  connecting,   // connecting or logging in (IMAP), discovering the calendars (CalDAV)
  backfilling,  // a first sync of the backfill window or a calendar (progress: done/total)
  syncing,      // a later pass
  idle,         // synced; waiting for new mail (IDLE, polling, the next interval)
  retrying,     // the last pass failed; next_attempt_at says when (when known)
  needs_user,   // stopped until the user acts (bad password, certificate); reason says why
  stopped,      // the daemon stopped this side
};
std::string_view to_string(SourceState s) noexcept;

struct SourceStatus {
  SourceState state = SourceState::starting;
  std::string state_since;  // ISO 8601 UTC
  // Backfilling: messages (IMAP) or calendar objects (CalDAV) done of
  // total; unset when unknown.
  std::optional<std::uint64_t> progress_done, progress_total;
  std::string next_attempt_at;  // retrying: ISO 8601 UTC, empty when unknown
  // retrying, needs_user: the failure, never a secret; kept while connecting
  // again after it.
  std::string reason;
  std::string last_pass_at;  // when the last pass ended, ISO 8601 UTC; empty: none yet
  bool last_pass_ok = false;
  std::string last_success_at;  // the last pass that succeeded; empty: none yet
  std::uint64_t passes = 0, failed_passes = 0;
  // Messages decided since the daemon started (capture::Tally).
  std::uint64_t seen = 0, captured = 0, skipped = 0, failed = 0, known = 0;
};

struct MailboxStatus {
  std::string name;
  std::optional<SourceStatus> imap, caldav;  // set for the sides configured
};

enum class Side { imap, caldav };

// What the daemon tells the API while it runs: mailbox states and store
// changes. Every member may be called from any thread.
class Board {
 public:
  // Adds a mailbox with the sides it has, each `starting`; one of that name
  // already there is replaced.
  void add_mailbox(const std::string& name, bool imap, bool caldav);
  // Removes a mailbox (its configuration no longer has it).
  void remove_mailbox(std::string_view name);
  // Applies `change` to that side of `mailbox` under the board's lock (it
  // must be quick and must not call the board); nothing when there is no
  // such side. Moves state_since when the state changes.
  void update(std::string_view mailbox, Side side,
              const std::function<void(SourceStatus&)>& change);
  std::vector<MailboxStatus> mailboxes() const;
  bool has_mailbox(std::string_view name) const;

  // The store's StoreOptions::on_change: tells the event streams that
  // activities changed (up to `change_seq`).
  void store_changed(std::int64_t change_seq);
  std::function<void(std::int64_t)> change_hook() {
    return [this](std::int64_t seq) { store_changed(seq); };
  }
  // Set by the server: called by store_changed on the committing thread.
  void set_change_listener(std::function<void()> listener);

  // POST /v1/sync: asks the named mailbox (empty: every mailbox) to sync now.
  // Set by the daemon where it can wake its tasks; the server calls it on
  // the daemon's io_context. Unset, the API answers 501. Returns whether the
  // mailbox is known.
  void set_sync_handler(std::function<bool(const std::string& mailbox)> handler);
  // nullopt: no handler; else the handler's answer.
  std::optional<bool> request_sync(const std::string& mailbox) const;

  // PUT and DELETE of directory rows and POST /v1/directory: applies the
  // edits in one transaction with the decisions they change
  // (capture::DirectoryEditor::apply). Set by the daemon, which runs it
  // where its one store writer runs; called on the server's thread of
  // writes (never one that serves connections), it may block until the
  // change is applied.
  // Unset, the API answers 501.
  using DirectoryWriter = std::function<store::Result<capture::DirectoryReport>(
      const std::vector<store::DirectoryEdit>& edits)>;
  void set_directory_writer(DirectoryWriter writer);
  // nullopt: no writer; else the writer's answer.
  std::optional<store::Result<capture::DirectoryReport>> write_directory(
      const std::vector<store::DirectoryEdit>& edits) const;

 private:
  mutable std::mutex mutex_;
  std::vector<MailboxStatus> mailboxes_;
  std::function<void()> change_listener_;
  std::function<bool(const std::string&)> sync_handler_;
  DirectoryWriter directory_writer_;
};

// Reports `account`'s connections, passes (with a backfill's progress) and
// failures, and `sink`'s counters, on the board as `mailbox`'s IMAP side.
// Wraps the account's on_connecting, on_progress, on_synced, on_failure and
// on_retry, calling the ones set before; board and sink must outlive the
// account's run.
void report_imap(Board& board, const std::string& mailbox, imap::Account& account,
                 const capture::ImapSink& sink);

// How a pass of a mailbox's side ended, for report_pass.
struct PassOutcome {
  bool ok = true;
  bool needs_user = false;  // failed, and not retried until the user acts
  std::string reason;       // a failure's message (never a secret)
  // Failed and retried: when (system clock); unset when not known.
  std::optional<std::chrono::system_clock::time_point> next_attempt;
};
// Puts that side of `mailbox` in `connecting` (a pass begins: connection,
// login or calendar discovery), without progress or next attempt; the
// reason of a failure before stays, since this attempt may fail alike.
void report_connecting(Board& board, const std::string& mailbox, Side side);
// Puts that side in `backfilling`, with progress when `done` and `total` are
// both set, or else in `syncing` (a pass under way, without progress).
void report_progress(Board& board, const std::string& mailbox, Side side, bool backfilling,
                     std::optional<std::uint64_t> done, std::optional<std::uint64_t> total);
// Records a pass's end: idle after one that went through, else retrying
// (with next_attempt_at) or needs_user; the counters are `tally`'s.
void report_pass(Board& board, const std::string& mailbox, Side side, const PassOutcome& outcome,
                 const capture::Tally& tally);

// ---- Access ----------------------------------------------------------------

// The credentials of a connected peer (SO_PEERCRED, and SO_PEERGROUPS for
// its supplementary groups).
struct PeerCred {
  std::int64_t pid = 0;
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::uint32_t> groups;
};

// Whom the socket lets in: its owner, its group when its mode grants the
// group read and write, and `allow_uids`. Root always (it could read the
// store anyway).
struct Access {
  std::uint32_t owner_uid = 0, group_gid = 0;
  std::uint32_t mode = 0660;
  std::vector<std::uint32_t> allow_uids;
};
bool peer_allowed(const PeerCred& peer, const Access& access);

// ---- The server ------------------------------------------------------------

struct Options {
  std::string socket_path;  // its directory is created (owner only) when absent
  std::uint32_t mode = 0660;
  std::vector<std::uint32_t> allow_uids;
  std::string store_path;  // opened again by the server, for reading
  std::string version;     // the daemon's, for /v1/status

  std::size_t header_limit = 8 * 1024;  // request line and headers, bytes (413)
  std::size_t body_limit = 64 * 1024;   // request body, bytes (413)
  // The body of a directory batch (POST /v1/directory), bytes (413).
  std::size_t directory_body_limit = 16 * 1024 * 1024;
  // A request must arrive whole within this, from the connection's start or
  // the previous response (slowloris); an idle keep-alive connection is
  // closed after it too.
  std::chrono::milliseconds request_timeout{10000};
  // Each response, and each write to an event stream, must be taken by the
  // client within this; a client that stops reading is dropped.
  std::chrono::milliseconds write_timeout{10000};
  // An event stream with nothing to send writes a comment this often.
  std::chrono::milliseconds keepalive_interval{15000};
  std::size_t max_connections = 256;  // past it, 503 and close
  // A socket already bound and listening (systemd socket activation), used
  // instead of binding socket_path: its file, mode and directory are the
  // socket unit's (socket_path, when it names that file, gives the group
  // that access allows). -1: none.
  int listen_fd = -1;
  // start() does not open the store: until open_store(), every request is
  // answered 503 `migrating` (the daemon's own open may be migrating it).
  bool open_store_later = false;
};

struct StartError {
  std::string message;
};

// Listens on the socket until stop(), on threads of its own (one a store
// reader connection); POST /v1/sync is handed to `io`, the daemon's
// io_context, which must outlive the server and keep running while it
// serves. start() prepares the directory, refuses a socket another process
// listens on (and replaces a stale one), binds with `mode`, opens the store
// and starts accepting; or, given Options::listen_fd, accepts on that
// socket.
class Server {
 public:
  static boost::system::result<std::unique_ptr<Server>, StartError> start(
      boost::asio::io_context& io, Options options, Board& board);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the store (Options::open_store_later); requests are served from
  // then on. Call from one thread at a time.
  boost::system::result<void, StartError> open_store();

  // Stops accepting, closes every connection and removes the socket file;
  // returns at once. Any thread. The destructor stops too, and waits for
  // the connections to end (a query or a directory write under way
  // finishes first): it must not run on io's thread while io runs, nor
  // before io.run() has returned if io is not run (a POST /v1/sync under
  // way waits for io).
  void stop();

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  // start() with Options::listen_fd; both end in begin(), which starts the
  // accepting.
  static boost::system::result<std::unique_ptr<Server>, StartError> adopt(
      boost::asio::io_context& io, Options options, Board& board);
  static boost::system::result<std::unique_ptr<Server>, StartError> begin(
      std::shared_ptr<Impl> impl, Board& board);
  std::shared_ptr<Impl> impl_;
};

}  // namespace crmcap::api
