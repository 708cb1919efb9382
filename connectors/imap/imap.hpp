// SPDX-License-Identifier: Apache-2.0
// The IMAP connector's public interface: an account that syncs configured
// folders of one mailbox and hands raw messages plus their source reference to
// a MailSink. It knows the protocol, never CRM rules; it never writes to the
// mailbox (EXAMINE and BODY.PEEK only).
//
// This header does not include Asio; the .cpp files that implement it do.
#pragma once

#include "connectors/imap/transport/transport.hpp"

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace crmcap::imap {

enum class AuthMethod { automatic, plain, login, xoauth2, oauthbearer };

// How a failure should be handled by whoever runs the account (isync's
// FAIL_TEMP / FAIL_WAIT / FAIL_FINAL).
enum class RetryClass {
  retry_later,  // network, timeout, BYE, THROTTLED, UNAVAILABLE: back off, then retry
  needs_user,   // bad password, untrusted certificate, no TLS offered: do not retry
};

enum class SyncErrc {
  connection = 1,  // transport failure (see message)
  protocol,        // the server's bytes could not be followed
  auth_failed,     // the server refused the credentials
  no_tls,          // STARTTLS wanted but not offered
  server_refused,  // a command got NO/BAD that capture cannot work around
  server_busy,     // THROTTLED, UNAVAILABLE, OVERQUOTA, too many connections, BYE
  credential,      // the password or token could not be read
  sink,            // the sink (store) failed; the batch was not committed
  cancelled,
  internal,  // an exception escaped the sync (out of memory, a bug): see message
};
const std::error_category& sync_category() noexcept;
std::error_code make_error_code(SyncErrc e) noexcept;

struct SyncError {
  std::error_code code;
  std::string message;  // what failed, with server text; never a credential
  RetryClass retry = RetryClass::retry_later;
};
[[noreturn]] void throw_exception_from_error(const SyncError& e, const boost::source_location& loc);
template <class T>
using SyncResult = boost::system::result<T, SyncError>;
// An exception that escaped a sync (std::bad_alloc, a bug), as the failed
// pass it is (SyncErrc::internal, retry_later), with its what(). Never
// swallowed: whoever runs the account reports it like any failure.
SyncError failure_of(std::exception_ptr e);

struct AccountOptions {
  std::string name;  // the mailbox's configured name, for messages
  TransportOptions transport;
  std::string username;
  AuthMethod auth = AuthMethod::automatic;
  // Returns the password (plain, login) or the bearer token (xoauth2,
  // oauthbearer). Called once per connection, so a token refreshed on disk or
  // by a command is picked up on reconnect.
  std::function<SyncResult<std::string>()> secret;
  // Folders by name, or "\\Sent" (and other "\\Special") for a special-use
  // folder. Junk, Trash and Drafts are never synced, even when named.
  std::vector<std::string> folders = {"INBOX", "\\Sent"};
  std::uint32_t backfill_days = 90;      // first sync: only mail SINCE this window
  std::uint32_t max_part_bytes = 65536;  // each fetched text part is cut here
  std::uint32_t batch_size = 500;        // most messages per UID FETCH and per commit
  // Every command must complete within this, however steadily the server
  // sends (the transport's io_timeout only bounds each read's wait); IDLE
  // within its own wait plus io_timeout. Past it the pass fails (retry_later).
  std::chrono::seconds command_timeout{600};
  std::chrono::seconds idle_reissue{25 * 60};
  // How often the folders other than INBOX are synced while IDLE watches
  // INBOX. Where the server offers NOTIFY (RFC 5465) and takes NOTIFY SET,
  // it announces their changes during IDLE, and they are synced then; a
  // pass over every folder comes only every second idle_reissue, or at this
  // interval while a folder waits for a pass to confirm what it saw (a
  // paused folder, say). A server without IDLE: every folder at this
  // interval.
  std::chrono::seconds poll_interval{60};
  // COMPRESS=DEFLATE (RFC 4978) when offered: automatic compresses except to
  // a loopback address, where it would only cost CPU.
  enum class Compress { automatic, always, never };
  Compress compress = Compress::automatic;
  // A folder whose message count drops below this fraction of the last seen
  // count is paused with a warning instead of being synced.
  double min_keep_fraction = 0.5;
  // A message fetched alone (a batch of one: new mail, mostly) whose bytes
  // the server refuses, with nothing else to tell a refusal of that message
  // from a server failing as a whole, fails its pass, to be retried. Once
  // refused on this many passes, over at least `refusals_span` (counted with
  // the folder's state, so that separate runs count too), the refusal is
  // taken as that message's: it is recorded as failed, and its folder moves
  // on instead of stopping there for good. (A server failing for a while
  // costs no message then, only a wait; the daemon's passes back off from
  // 1 s to 5 min.)
  unsigned refusals_before_failed = 3;
  std::chrono::seconds refusals_span{10 * 60};
  // Where the sink's calls run; the caller owns it, and it outlives the
  // account. Null: inline, on the account's executor, which then waits for
  // each. Set: every sink call runs there, in the order the account makes
  // them and one at a time for the account (a strand; calls of several
  // accounts run one at a time only when that executor runs on one thread,
  // so a sink shared by them then needs no locks), and the account goes on
  // reading the next batch, or starting the next folder, while a batch is
  // captured and committed.
  const boost::asio::any_io_executor* sink_executor = nullptr;
};

// A message fetched alone (a batch of one) whose bytes the server refused,
// with nothing else to tell that from a server failing as a whole (see
// AccountOptions::refusals_before_failed). Kept with its folder's state, so
// that the passes of separate runs (crm-captured --once) count too.
struct Refusal {
  std::uint32_t uid = 0;     // 0: none
  std::uint32_t passes = 0;  // passes that saw it refused
  std::int64_t since = 0;    // the first of them, Unix seconds
  bool operator==(const Refusal&) const = default;
};

// Where a folder's sync stands; the sink stores it with the batch it covers.
struct FolderState {
  std::string folder;  // the folder's name (UTF-8)
  std::uint32_t uidvalidity = 0;
  std::uint32_t highest_uid = 0;  // every UID <= this (in the window) is handed over
  std::uint64_t highest_modseq = 0;
  std::uint32_t uidnext = 0;
  std::uint32_t messages = 0;  // count at the last sync (for the shrink check)
  // A first sync (SINCE the backfill window) is under way: committed batches
  // moved highest_uid, the rest of the window is still to come.
  bool backfilling = false;
  // The low message count seen by a pass that paused; a next pass that sees it
  // again takes it as real.
  std::uint32_t suspect_messages = 0;
  // A refusal being counted, of the message above highest_uid.
  Refusal refused;
};

// One message handed to the sink.
struct FetchedMessage {
  std::uint32_t uid = 0;
  std::string message_id;  // the Message-ID field, unfolded (with angle brackets); may be empty
  std::int64_t internaldate = 0;  // Unix seconds; the receive time
  // The message as capture needs it: the header block and the text parts
  // (each cut at max_part_bytes), in the original MIME structure; attachment
  // parts keep their MIME headers and lose their bytes. Empty when `known`.
  std::string raw;
  bool known = false;  // the sink already has this message: not fetched again
  // The mailbox keeps it as sent mail: found in the \Sent special-use folder,
  // or (Gmail) labelled \Sent. The owner sent it, whatever its From says (an
  // alias, a shared address).
  bool sent = false;
  bool partial = false;                   // some part was cut or left out
  std::optional<std::uint64_t> gm_msgid;  // Gmail's X-GM-MSGID
  // Set when the server refused to send the bytes (NO or BAD to the fetch,
  // such as Gmail's "Some messages could not be FETCHed"): its words. `raw`
  // is then empty; the sink records the message as failed, and the folder's
  // mark moves on past it instead of stopping there at every pass.
  std::string refused;
};

// Inclusive UID ranges, ascending.
using UidRanges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

// What the account knows of a message before it fetches the bytes.
struct MessageKey {
  std::string message_id;                 // the Message-ID field, unfolded; may be empty
  std::optional<std::uint64_t> gm_msgid;  // Gmail's X-GM-MSGID, which outlives UIDVALIDITY
  bool sent = false;                      // kept as sent mail (FetchedMessage::sent)
};

// The receiving end of the connector (capture and the store). Its calls run
// on AccountOptions::sink_executor when one is set, never two at once for one
// account.
class MailSink {
 public:
  virtual ~MailSink() = default;
  // The stored state of a folder, if any.
  virtual std::optional<FolderState> folder_state(const std::string& folder) = 0;
  // For each message, whether the sink has it already: by X-GM-MSGID where
  // the server gives one, else by Message-ID. A known message is handed over
  // without its bytes (`known`), so that only its new place is recorded. A
  // message kept as sent mail (in `folder`) whose activity was not yet seen
  // in that folder (its copy in INBOX came first: a Bcc or Cc to oneself, a
  // shared address one is in) is not known: it comes again, to be decided
  // as the sent mail it is, with the Bcc only the sender's copy lists.
  virtual std::vector<bool> known_messages(const std::string& folder,
                                           const std::vector<MessageKey>& keys) = 0;
  // Captures a batch and stores `state` in the same transaction. An error
  // leaves the state as it was; the account stops the folder's sync. Of
  // `state.refused`, what note_refusal stored is kept while it is of a
  // message above the new mark, and dropped once the mark passes it.
  virtual SyncResult<void> commit(const FolderState& state,
                                  std::vector<FetchedMessage> messages) = 0;
  // Messages the server reports gone from the folder since the stored state
  // (QRESYNC's VANISHED (EARLIER)): inclusive UID ranges at
  // state.uidvalidity, which may name UIDs the sink never had. Stored with
  // `state` in one transaction; an error leaves the state as it was. The
  // activities stay: mail moved or deleted was still sent or received.
  virtual SyncResult<void> removed(const FolderState& state, const UidRanges& uids) = 0;
  // Stores `state.refused` (a message refused again, counted) and nothing
  // else: the stored state keeps its mark. A folder with no stored state at
  // `state.uidvalidity` gets `state` as it is. An error loses only the count.
  virtual SyncResult<void> note_refusal(const FolderState& state) = 0;
  // A condition worth telling the user (folder paused, capability missing).
  virtual void warn(const std::string& message) = 0;
};

struct FolderReport {
  std::string folder;
  std::uint32_t handed_over = 0;  // messages committed to the sink
  // Of which the sink had already when the account asked, before fetching
  // their bytes (not fetched again). A folder's first pass asks nothing: a
  // copy there is found by the sink when it commits, and not counted here.
  std::uint32_t known = 0;
  std::uint32_t drafts = 0;  // Gmail messages labelled \Draft: never handed over
  // UIDs the server reported gone since the last sync (QRESYNC); they may
  // include UIDs that were never captured (outside the window, or skipped).
  std::uint32_t vanished = 0;
  bool skipped_unchanged = false;
  bool paused = false;
  bool uidvalidity_changed = false;
};

struct SyncReport {
  std::vector<FolderReport> folders;
  std::vector<std::string> capabilities;
  bool compressed = false;  // COMPRESS=DEFLATE was in use
};

// Where a pass under way stands (Account::on_progress).
struct PassProgress {
  // The pass makes a first sync of some folder's backfill window (a folder
  // never synced, one whose backfill was cut short, or one whose UIDVALIDITY
  // changed); else it fetches only what came since the last pass.
  bool backfilling = false;
  // Backfilling: messages of the window committed to the sink, of the
  // messages the pass lists to fetch in the folders it has searched so far
  // (the total grows as each folder's UID SEARCH answers). Unset until the
  // first such folder's search has answered.
  std::optional<std::uint64_t> done, total;
};

// Runs on the executor it is given. Not thread-safe; one coroutine at a time.
class Account {
 public:
  Account(const boost::asio::any_io_executor& executor, AccountOptions options, MailSink& sink);
  ~Account();
  Account(const Account&) = delete;
  Account& operator=(const Account&) = delete;

  // Connects, logs in, syncs every configured folder once, logs out.
  Awaitable<SyncResult<SyncReport>> sync_once();

  // Syncs, then waits for new mail with IDLE on INBOX (re-issued every
  // idle_reissue) and hears of the other folders' changes by NOTIFY, or
  // polls them every poll_interval (see there); reconnects
  // with exponential backoff and jitter (1 s up to 5 min) after a
  // retry_later failure. Returns on a needs_user failure or after stop().
  Awaitable<SyncError> run();
  // Makes run() return soon (it closes the connection).
  void stop();
  // Makes run() sync every folder now: it ends its IDLE or its wait for the
  // next poll or reconnect; asked during a pass, another pass follows it.
  // Call on the account's executor. Nothing once run() has returned.
  void wake();

  // Called after every sync pass inside run() (for tests and status).
  std::function<void(const SyncReport&)> on_synced;
  // Called for every failure inside run() before it backs off (or returns).
  std::function<void(const SyncError&)> on_failure;
  // Called after on_failure when run() waits `delay` before reconnecting
  // (a retry_later failure, or a session that ended).
  std::function<void(std::chrono::milliseconds delay)> on_retry;
  // Called before each connection is made (then the greeting, TLS and login
  // follow), inside run() and sync_once().
  std::function<void()> on_connecting;
  // Called once logged in, when a pass begins (done and total unset), and
  // while a pass that backfills goes on: once each folder's search has
  // answered, and after each of its batches is committed. Inside run() and
  // sync_once(), on the account's executor.
  std::function<void(const PassProgress&)> on_progress;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The backoff delay before reconnect attempt `attempt` (1-based): 1 s doubled
// each time up to 5 min, with up to 20% random jitter either way.
std::chrono::milliseconds backoff_delay(unsigned attempt, std::uint64_t random_bits);

}  // namespace crmcap::imap

template <>
struct std::is_error_code_enum<crmcap::imap::SyncErrc> : std::true_type {};
