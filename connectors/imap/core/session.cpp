// SPDX-License-Identifier: Apache-2.0
// The session core's folder sync, over one connection (core/connection):
// which folders, what changed (core/plan), what to fetch (dates and
// structures, and Message-IDs for a folder synced before; then whole the
// messages that are all text, and only the header and text parts of the
// others, never an attachment's bytes: core/parts), and handing batches to
// the sink that commits them with the folder's new state. Sans-io: the sink
// is called through Actions too, a commit started without waiting so that
// the next batch is read meanwhile.
#include "connectors/imap/core/session.hpp"

#include "connectors/imap/core/answers.hpp"
#include "connectors/imap/core/connection.hpp"
#include "connectors/imap/core/detail.hpp"
#include "connectors/imap/core/parts.hpp"
#include "connectors/imap/core/plan.hpp"
#include "connectors/imap/core/task.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <type_traits>
#include <utility>

namespace crmcap::imap {

static_assert(std::is_trivially_copyable_v<Action>, "an Action is made for every read");

namespace detail {

namespace {

bool is_excluded_special(SpecialUse u) {
  return u == SpecialUse::junk || u == SpecialUse::trash || u == SpecialUse::drafts;
}

}  // namespace

// The state of one session and its coroutines (see session_fsm). A struct
// like the Account::Impl it came from: its fields are its own business.
struct Core {
  Core(const AccountOptions& o, session_fsm::Mode m, SessionClocks c, SessionMemory* mem)
      : options(o), mode(m), clocks(std::move(c)), memory(mem), conn(options, exchange, clocks) {}

  Action resume(Io& io);
  void stop() noexcept { stopped = true; }
  void wake() noexcept { woken = mode == session_fsm::Mode::watch; }
  const SyncReport& report() const { return result; }

  const AccountOptions& options;
  const session_fsm::Mode mode;
  const SessionClocks clocks;
  SessionMemory* const memory;  // may be null
  Exchange exchange;
  Connection conn;
  Task<SyncResult<void>> root;
  std::optional<Action> finished;  // what resume() answers once done
  SyncError failure;               // why it ended, when it failed
  bool failed = false;
  SyncReport result;
  bool stopped = false;
  bool woken = false;  // wake(): a pass over every folder is wanted now
  std::uint64_t next_ticket = 1;
  // The pass under way, as Account::on_progress sees it.
  PassProgress pass;
  // The folder being synced makes a first sync of its backfill window: its
  // commits count towards pass.done.
  bool backfill_folder = false;
  // Commits started for such a folder and not yet waited for: their ticket
  // and how many messages they hold.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> counted;
  // Resolved folder names (configured "\\Sent" -> "Sent"), in configured order.
  std::vector<std::string> folders;
  // NOTIFY (RFC 5465) is set: the server announces changes of the folders
  // other than INBOX with an unsolicited STATUS, at any time (see watch()).
  bool notifying = false;
  // The server said notifications were lost (and sends no more).
  bool notify_lost = false;
  // Folders other than INBOX whose changes the server may not have
  // announced: selected since their last STATUS (a server announces nothing
  // of the selected mailbox), or announced since.
  std::vector<std::string> stale;
  // The folder a STATUS under way asks about: its answer is no announcement.
  std::string asking_status;

  // The session: once, or watching (see session_fsm).
  Task<SyncResult<void>> session() {
    if (auto c = co_await conn.open(); !c) co_return c.error();
    if (auto f = co_await resolve_folders(); !f) co_return f.error();
    if (mode == session_fsm::Mode::watch) co_return co_await watch();
    auto r = co_await sync_all(true);
    if (!r) co_return r.error();
    result = std::move(*r);
    co_await conn.logout();
    co_return SyncResult<void>{};
  }

  // Makes `c` on the sink (Action::sink) and returns its answer.
  Task<SinkAnswer> call(SinkCall& c) {
    exchange.next(Action::Kind::sink).call = &c;
    co_await exchange.need();
    co_return std::move(exchange.io->sink);
  }

  Task<void> warn(std::string message) {
    SinkCall c = sink_call::Warn{std::move(message)};
    const SinkAnswer answered = co_await call(c);
    (void)answered;
  }

  // Tells the driver where the pass stands (Action::progress).
  Task<void> report_progress() {
    exchange.next(Action::Kind::progress).progress = &pass;
    co_await exchange.need();
  }

  // Whether a folder stored so makes a first sync of its backfill window
  // (as plan_folder decides, but for a changed UIDVALIDITY, seen only once
  // the folder is examined: sync_folder reports that).
  static bool backfills(const std::optional<FolderState>& stored) {
    return !stored || stored->backfilling;
  }

  // A pass begins (Action::progress).
  Task<void> begin_pass(bool backfilling) {
    pass = PassProgress{};
    pass.backfilling = backfilling;
    counted.clear();
    co_await report_progress();
  }

  // Starts `batches` on the sink without waiting (Action::start_commits):
  // in order, each only once the one before is stored. Returns their ticket
  // for wait_commits().
  Task<std::uint64_t> start_commits(std::vector<sink_call::Commit>& batches) {
    const std::uint64_t ticket = next_ticket++;
    if (backfill_folder) {
      std::uint64_t n = 0;
      for (const auto& b : batches) n += b.messages.size();
      if (n > 0) counted.emplace_back(ticket, n);
    }
    Action& a = exchange.next(Action::Kind::start_commits);
    a.commits = &batches;
    a.ticket = ticket;
    co_await exchange.need();
    co_return ticket;
  }

  // The first failure of the commits started as `ticket`, once they are done.
  // Those of a backfill, stored, move the pass's progress.
  Task<SyncResult<void>> wait_commits(std::uint64_t ticket) {
    exchange.next(Action::Kind::wait_commits).ticket = ticket;
    co_await exchange.need();
    SyncResult<void> r = std::move(exchange.io->sink.result);
    const auto c = std::find_if(counted.begin(), counted.end(),
                                [ticket](const auto& t) { return t.first == ticket; });
    if (c != counted.end()) {
      const std::uint64_t n = c->second;
      counted.erase(c);
      if (r) {
        pass.done = pass.done.value_or(0) + n;
        co_await report_progress();
      }
    }
    co_return r;
  }

  Task<SyncResult<void>> commit(FolderState state, std::vector<FetchedMessage> messages) {
    std::vector<sink_call::Commit> batch;
    batch.push_back(sink_call::Commit{std::move(state), std::move(messages)});
    const std::uint64_t ticket = co_await start_commits(batch);
    co_return co_await wait_commits(ticket);
  }

  // A pass was made (watch): Account::on_synced.
  Task<void> synced(const SyncReport& r) {
    exchange.next(Action::Kind::synced).report = &r;
    co_await exchange.need();
  }

  SyncError missing_listed(const std::string& folder) const {
    return make_sync_error(
        SyncErrc::protocol,
        "LIST: no folder " + folder +
            " among those listed, and a response could not be read: " + conn.last_malformed(),
        RetryClass::retry_later);
  }

  Task<SyncResult<void>> resolve_folders() {
    std::vector<ListEntry> entries;
    ListOptions lo;
    lo.special_use =
        conn.capabilities().has("SPECIAL-USE") && conn.capabilities().has("LIST-EXTENDED");
    auto cmd = conn.builder().list("", "*", lo);
    if (!cmd) {
      co_return make_sync_error(SyncErrc::protocol, "cannot build LIST", RetryClass::retry_later);
    }
    const Connection::Handler on_response = [&](Response& resp) {
      if (auto* e = std::get_if<ListEntry>(&resp); e && !e->lsub) entries.push_back(*e);
    };
    const std::string what = "LIST";
    const std::uint64_t malformed_before = conn.malformed();
    auto r = co_await conn.run(*cmd, on_response, what);
    if (!r) co_return r.error();
    // A LIST entry that could not be read: harmless unless a configured
    // folder is then missing (checked below), when the pass fails instead,
    // to be retried, rather than pass that folder by.
    const bool unreadable = conn.malformed() != malformed_before;
    folders.clear();
    sent_folders.clear();
    for (const auto& e : entries) {
      if (e.special_use() == SpecialUse::sent) sent_folders.push_back(e.mailbox);
    }
    std::vector<std::string> warnings;
    auto add = [&](const std::string& name) {
      if (std::find(folders.begin(), folders.end(), name) == folders.end()) folders.push_back(name);
    };
    // Gmail: every message is in All Mail once; label folders (INBOX, Sent)
    // would only repeat it. Sync All Mail alone.
    if (conn.capabilities().has("X-GM-EXT-1")) {
      for (const auto& e : entries) {
        if (e.special_use() == SpecialUse::all && !e.noselect()) add(e.mailbox);
      }
      if (!folders.empty()) co_return SyncResult<void>{};
    }
    for (const auto& want : options.folders) {
      if (want.size() > 1 && want[0] == '\\') {
        std::string attr = want;
        bool found = false;
        for (const auto& e : entries) {
          if (e.has(attr) && !e.noselect() && !is_excluded_special(e.special_use())) {
            add(e.mailbox);
            found = true;
            break;
          }
        }
        if (!found) {
          if (unreadable) co_return missing_listed(want);
          warnings.push_back(options.name + ": no folder has the special use " + want);
        }
        continue;
      }
      bool found = false;
      for (const auto& e : entries) {
        const bool inbox = want == "INBOX" || want == "inbox";
        const bool same =
            inbox ? (e.mailbox == "INBOX" || e.mailbox == "inbox") : e.mailbox == want;
        if (!same) continue;
        found = true;
        if (e.noselect()) {
          warnings.push_back(options.name + ": folder " + want + " cannot be selected");
        } else if (is_excluded_special(e.special_use())) {
          warnings.push_back(options.name + ": folder " + want +
                             " is Junk, Trash or Drafts: never synced");
        } else {
          add(e.mailbox);
        }
        break;
      }
      if (!found) {
        if (unreadable) co_return missing_listed(want);
        warnings.push_back(options.name + ": no folder named " + want);
      }
    }
    for (auto& w : warnings) co_await warn(std::move(w));
    co_return SyncResult<void>{};
  }

  // A synced folder other than INBOX (the one IDLE watches).
  bool is_other(const std::string& folder) const {
    return folder != "INBOX" && std::find(folders.begin(), folders.end(), folder) != folders.end();
  }

  void mark_stale(const std::string& folder) {
    if (std::find(stale.begin(), stale.end(), folder) == stale.end()) stale.push_back(folder);
  }

  std::vector<std::string> other_folders() const {
    std::vector<std::string> out;
    for (const auto& f : folders) {
      if (is_other(f)) out.push_back(f);
    }
    return out;
  }

  // What the server announces while any command is under way, once NOTIFY
  // is set: an unsolicited STATUS of a synced folder marks it stale (one of
  // the folder STATUS asks is status()'s to judge); a NOTIFICATIONOVERFLOW
  // (RFC 5465, 5.8: the server then acts as after NOTIFY NONE), whatever
  // the response's status, or a NO that names NOTIFY (Dovecot's "NOTIFY
  // error, some events may have got lost") says announcements were lost. A
  // STATUS of any other mailbox is nothing to capture.
  void observe(const Response& r) {
    if (const auto* st = std::get_if<MailboxStatus>(&r)) {
      if (st->mailbox != asking_status && is_other(st->mailbox)) mark_stale(st->mailbox);
    } else if (const auto* u = std::get_if<UntaggedStatus>(&r)) {
      if ((u->code && u->code->kind == CodeKind::notificationoverflow) ||
          (u->status == Status::no && u->text.starts_with("NOTIFY"))) {
        notify_lost = true;
      }
    }
  }

  // NOTIFY SET for the folders other than INBOX (watch()): whether the
  // server took it. A refusal is told to the sink once per account (see
  // SessionMemory); the folders are polled then.
  Task<SyncResult<bool>> set_notify() {
    notify_lost = false;
    const std::vector<std::string> others = other_folders();
    auto cmd = conn.builder().notify_set(others);
    if (!cmd) co_return false;  // a name EXAMINE could send is one NOTIFY can send
    conn.observe([this](Response& r) { observe(r); });
    const Connection::Handler none;
    auto r = co_await conn.run(*cmd, none, "NOTIFY SET");
    notifying = r.has_value();
    if (notifying) co_return true;
    conn.observe({});
    if (r.error().code != make_error_code(SyncErrc::server_refused)) co_return r.error();
    if (!memory || !memory->notify_refusal_told) {
      if (memory) memory->notify_refusal_told = true;
      std::string why = options.name + ": " + r.error().message + "; folders other than INBOX" +
                        " are polled every " + std::to_string(options.poll_interval.count()) +
                        " s (poll_seconds)";
      co_await warn(std::move(why));
    }
    co_return false;
  }

  Task<SyncResult<FolderObservation>> status(const std::string& folder) {
    StatusItems items;
    items.messages = items.uidnext = items.uidvalidity = true;
    // QRESYNC implies CONDSTORE (RFC 7162), even when only QRESYNC is named.
    items.highestmodseq =
        conn.capabilities().has("CONDSTORE") || conn.capabilities().has("QRESYNC");
    auto cmd = conn.builder().status(folder, items);
    if (!cmd) {
      co_return make_sync_error(SyncErrc::protocol, "cannot name folder " + folder,
                                RetryClass::needs_user);
    }
    // The answer is the first STATUS that names the folder. With NOTIFY set,
    // another folder's announcement may come inside this command, and the
    // folder's own later announcements carry fewer items: one that follows
    // the answer leaves the folder stale. Without NOTIFY, a STATUS under
    // another name (an odd server's spelling) still answers, when no STATUS
    // names the folder.
    FolderObservation o;
    bool answered = false, named = false, announced_after = false;
    const Connection::Handler on_response = [&](Response& resp) {
      auto* s = std::get_if<MailboxStatus>(&resp);
      if (!s) return;
      const bool names_it =
          s->mailbox == folder || (iequals(folder, "INBOX") && iequals(s->mailbox, "INBOX"));
      if (named) {
        announced_after = announced_after || names_it;
        return;
      }
      if (!names_it && (notifying || answered)) return;
      answered = true;
      named = names_it;
      o.uidvalidity = s->uidvalidity.value_or(0);
      o.uidnext = s->uidnext.value_or(0);
      o.messages = s->messages.value_or(0);
      o.highest_modseq = s->highestmodseq;
    };
    const std::string what = "STATUS " + folder;
    asking_status = folder;
    auto r = co_await conn.run(*cmd, on_response, what);
    asking_status.clear();
    if (!r) co_return r.error();
    // The answer tells all that was announced of the folder before it.
    if (answered) std::erase(stale, folder);
    if (announced_after && is_other(folder)) mark_stale(folder);
    if (!answered) {
      co_return make_sync_error(
          SyncErrc::protocol,
          what + ": no answer that could be read" +
              (conn.last_malformed().empty() ? std::string() : ": " + conn.last_malformed()),
          RetryClass::retry_later);
    }
    co_return o;
  }

  // EXAMINE; with `since` (a stored state) and QRESYNC enabled, also asks
  // which messages vanished since its HIGHESTMODSEQ, into `vanished`.
  Task<SyncResult<FolderObservation>> examine(const std::string& folder,
                                              const FolderState* since = nullptr,
                                              UidSet* vanished = nullptr) {
    ExamineOptions eo;
    if (since && vanished && conn.qresync() && since->uidvalidity != 0 &&
        since->highest_modseq != 0) {
      // A server whose UIDVALIDITY is no longer this one ignores the rest
      // (RFC 7162, section 3.2.5): no VANISHED then.
      eo.qresync = QresyncParams{since->uidvalidity, since->highest_modseq, {}, {}, {}};
    }
    auto cmd = conn.builder().examine(folder, eo);
    if (!cmd) {
      co_return make_sync_error(SyncErrc::protocol, "cannot name folder " + folder,
                                RetryClass::needs_user);
    }
    FolderObservation o;
    std::string impossible;  // a number no folder can have
    bool counted = false;    // EXISTS came
    const Connection::Handler on_response = [&](Response& resp) {
      if (auto* e = std::get_if<Exists>(&resp)) {
        o.messages = e->count;
        counted = true;
      }
      if (auto* u = std::get_if<UntaggedStatus>(&resp); u && u->code && u->code->number) {
        const std::uint64_t n = *u->code->number;
        if (u->code->kind == CodeKind::uidvalidity) {
          if (n == 0 || n > 0xFFFFFFFFu) impossible = "UIDVALIDITY " + std::to_string(n);
          o.uidvalidity = static_cast<std::uint32_t>(n);
        }
        // 4294967295 would leave no UID for new mail: a server must change
        // UIDVALIDITY first (RFC 3501, 2.3.1.1). Taken as real, it would move
        // the folder's mark past every message still to come.
        if (u->code->kind == CodeKind::uidnext) {
          if (n >= 0xFFFFFFFFu) impossible = "UIDNEXT " + std::to_string(n);
          o.uidnext = static_cast<std::uint32_t>(n);
        }
        if (u->code->kind == CodeKind::highestmodseq) o.highest_modseq = *u->code->number;
      }
      if (auto* v = std::get_if<Vanished>(&resp); v && v->earlier && vanished) {
        vanished->add(v->uids);
      }
    };
    const std::string what = "EXAMINE " + folder;
    const std::uint64_t malformed_before = conn.malformed();
    // Selected, the folder's changes are no longer announced (NOTIFY).
    if (is_other(folder)) mark_stale(folder);
    auto r = co_await conn.run(*cmd, on_response, what);
    if (!r) co_return r.error();
    // What the plan needs must have come; a response that could not be read
    // beside them (an odd flag in FLAGS) does no harm.
    if (conn.malformed() != malformed_before && (!counted || o.uidvalidity == 0)) {
      co_return make_sync_error(
          SyncErrc::protocol,
          what + ": a response from the server could not be read: " + conn.last_malformed(),
          RetryClass::retry_later);
    }
    if (!impossible.empty()) {
      co_return make_sync_error(SyncErrc::protocol,
                                what + ": the server announced " + impossible +
                                    "; nothing is marked until it answers sanely",
                                RetryClass::retry_later);
    }
    co_return o;
  }

  // UID SEARCH in the folder EXAMINE reported as `at`: the UIDs it answered,
  // checked (SearchAnswer). An answer that cannot be true fails the pass, and
  // no mark moves.
  Task<SyncResult<std::vector<std::uint32_t>>> search(const SearchCriteria& c,
                                                      const FolderObservation& at) {
    const bool esearch = conn.capabilities().has("ESEARCH");
    SearchReturn ret;
    ret.all = esearch;
    auto cmd = conn.builder().uid_search(c, ret);
    if (!cmd) {
      co_return make_sync_error(SyncErrc::protocol, "cannot build UID SEARCH",
                                RetryClass::retry_later);
    }
    SearchAnswer answer(at.uidnext, at.messages);
    const Connection::Handler on_response = [&](Response& resp) { answer.add(resp); };
    const std::string what = "UID SEARCH";
    auto r = co_await conn.run(*cmd, on_response, what, Connection::Malformed::fail);
    if (!r) co_return r.error();
    SearchAnswer::Checked checked = answer.take();
    if (!checked.refused.empty()) {
      co_return make_sync_error(
          SyncErrc::protocol,
          what + ": " + checked.refused + "; nothing is marked until it answers sanely",
          RetryClass::retry_later);
    }
    co_return std::move(checked.uids);
  }

  // The first fetch of a batch: dates and structures, and the Message-IDs
  // when `ids_first`. The structure says which parts to fetch (plan_bodies).
  // Not ENVELOPE: only its Message-ID would be used, and Dovecot builds it
  // from the header of every message.
  // Without `structure`: the same but BODYSTRUCTURE, for messages whose first
  // answer could not be read (plan_bodies).
  SyncResult<Command> meta_command(const std::vector<std::uint32_t>& uids, bool structure = true) {
    UidSet set;
    for (auto u : uids) set.add(u);
    std::vector<FetchAttr> attrs = {FetchAttr::of(FetchAttr::Kind::internaldate)};
    if (structure) attrs.push_back(FetchAttr::of(FetchAttr::Kind::bodystructure));
    if (ids_first) {
      attrs.push_back(
          FetchAttr::body_peek(Section{"", SectionText::header_fields, {"MESSAGE-ID"}}));
    }
    const bool gmail = conn.capabilities().has("X-GM-EXT-1");
    if (gmail) {
      attrs.push_back(FetchAttr::of(FetchAttr::Kind::gm_msgid));
      attrs.push_back(FetchAttr::of(FetchAttr::Kind::gm_labels));
    }
    auto cmd = conn.builder().uid_fetch(set, attrs);
    if (!cmd) {
      return make_sync_error(SyncErrc::protocol, "cannot build UID FETCH", RetryClass::retry_later);
    }
    return std::move(*cmd);
  }

  // One batch of UIDs on its way through the pipeline: its first fetch
  // (dates, structures, Message-IDs), then the fetch of the bytes capture
  // needs, then the hand-over to the sink.
  struct InFlight {
    std::vector<std::uint32_t> uids;
    Command meta;
    std::vector<Command> bodies;
    std::vector<FetchedMessage> messages;  // filled from the first fetch
    // Connection::malformed() when `meta` and `bodies` were sent: a response
    // skipped since may have been one of this batch's.
    std::uint64_t malformed_at_meta = 0, malformed_at_bodies = 0;
  };

  // Every FETCH response of the batches in flight, merged by UID: responses of
  // two outstanding commands may be read by one finish() (see Connection).
  FetchedMessages fetched;
  std::uint32_t drafts = 0;  // Gmail drafts left out by this folder's pass
  // Whether this folder's pass asks the Message-IDs in the first fetch, to
  // skip the bytes of messages the store already has. Only for a folder
  // synced before (new mail, a changed UIDVALIDITY, a pass cut short): on a
  // folder's first pass nothing in it can be known yet but a copy of a
  // message in a folder synced just before, and asking would make the
  // server read the header of every message of the folder to spare the
  // bytes of those few. A copy there comes with its bytes (whole, or part
  // by part: either way they start with its header), and the sink knows it
  // by the Message-ID in them.
  bool ids_first = true;
  // Folders with the \Sent special use (resolve_folders): their messages are
  // sent mail (FetchedMessage::sent).
  std::vector<std::string> sent_folders;
  Connection::Handler collector() {
    return [this](Response& resp) {
      if (auto* f = std::get_if<FetchItem>(&resp)) fetched.add(std::move(*f));
    };
  }

  SyncResult<InFlight> start_batch(std::vector<std::uint32_t> uids) {
    auto cmd = meta_command(uids);
    if (!cmd) return cmd.error();
    fetched.expect(uids);
    return InFlight{std::move(uids), std::move(*cmd), {}, {}, 0, 0};
  }

  // Why a message sent this many bytes is not captured.
  static std::string overflow_reason() {
    return "the server sent more than " + std::to_string(k_max_message_bytes >> 20) +
           " MiB for this message";
  }

  // Where responses were skipped as unreadable since `since` (a
  // Connection::malformed() count), the error that refuses the messages of
  // `b` that did not come: their answer may have been one of those.
  std::optional<SyncError> unreadable(std::uint64_t since) const {
    if (conn.malformed() == since) return std::nullopt;
    return make_sync_error(
        SyncErrc::protocol,
        "the server's response to UID FETCH could not be read: " + conn.last_malformed(),
        RetryClass::retry_later);
  }

  // The messages of `b` whose first answer did not come while responses
  // were skipped as unreadable: asked again without BODYSTRUCTURE, the item
  // a server's odd answer breaks most (70 nested multiparts: past the
  // parser's depth limit), so that they come part by part as messages
  // without a structure do. Those still missing when that answer is
  // unreadable too (or refused) are refused: `refused` is set, unless it
  // holds the server's refusal already. Fails only when the connection does.
  Task<SyncResult<void>> ask_again_unstructured(const InFlight& b,
                                                std::optional<SyncError>& refused) {
    if (!unreadable(b.malformed_at_meta)) co_return SyncResult<void>{};
    std::vector<std::uint32_t> missing;
    for (const std::uint32_t uid : b.uids) {
      if (!fetched.find(uid)) missing.push_back(uid);
    }
    if (missing.empty()) co_return SyncResult<void>{};
    auto cmd = meta_command(missing, false);
    if (!cmd) co_return cmd.error();
    const std::uint64_t before = conn.malformed();
    const Connection::Handler collect = collector();
    const std::string what = "UID FETCH";
    auto r = co_await conn.run(*cmd, collect, what, Connection::Malformed::tolerate);
    if (!r && r.error().code != make_error_code(SyncErrc::server_refused)) co_return r.error();
    if (!refused) refused = r ? unreadable(before) : std::optional<SyncError>(r.error());
    co_return SyncResult<void>{};
  }

  // Whether a refusal with nothing of its batch sent, which fails the pass,
  // is taken as the message's own instead: only when the batch asked for one
  // message (`asked`), refused on refusals_before_failed passes over
  // refusals_span. Otherwise that refusal is counted with the folder's
  // state (`where.refused`, from the stored state; a batch of several notes
  // its first message, uncounted), and the pass fails.
  // `where` is the folder's state at the start of the pass: where the folder
  // has no stored state yet, it is stored as it is, and its mark must be one
  // that no uncommitted batch has moved.
  Task<bool> refused_for_good(const FolderState& where, std::vector<std::uint32_t> asked) {
    if (asked.empty()) co_return false;
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(clocks.system().time_since_epoch())
            .count();
    Refusal r = where.refused.uid == asked.front() ? where.refused : Refusal{asked.front(), 0, now};
    // A batch of several refused as a whole counts against none of them, but
    // names its first: the next pass asks for that one alone (sync_folder),
    // and so each message of such a batch comes to be counted in turn.
    if (asked.size() == 1) ++r.passes;
    if (asked.size() == 1 && r.passes >= options.refusals_before_failed &&
        now - r.since >= options.refusals_span.count()) {
      co_return true;
    }
    FolderState noted = where;
    noted.refused = r;
    noted.uidnext = 0;  // (only the last batch's commit stores UIDNEXT)
    SinkCall note = sink_call::NoteRefusal{std::move(noted)};
    const SinkAnswer noted_it = co_await call(note);
    if (const SyncResult<void>& n = noted_it.result; !n) {
      std::string why =
          options.name + ": " + where.folder + ": cannot count a refusal: " + n.error().message;
      co_await warn(std::move(why));
    }
    co_return false;
  }

  // Reads the first fetch of `b`, a batch of the folder whose pass started at
  // `where`, and
  // decides what to fetch next: known messages nothing, the others by their
  // structure. A refusal of the first fetch (the structure of a message the
  // server cannot read) counts as a refusal of their bytes does (see
  // finish_batch): the messages it left out are handed over as refused.
  Task<SyncResult<void>> plan_bodies(InFlight& b, const FolderState& where) {
    const std::uint32_t max_part = options.max_part_bytes;
    const Connection::Handler collect = collector();
    const std::string what = "UID FETCH";
    std::optional<SyncError> refused;
    if (auto r = co_await conn.finish(b.meta, collect, what, Connection::Malformed::tolerate); !r) {
      if (r.error().code != make_error_code(SyncErrc::server_refused)) co_return r.error();
      refused = r.error();
    }
    // An answer that could not be read refuses the messages it left out as a
    // refusal by the server does: the mark never passes them unrecorded.
    if (auto a = co_await ask_again_unstructured(b, refused); !a) co_return a.error();
    if (refused) {
      const bool none_sent = std::none_of(b.uids.begin(), b.uids.end(),
                                          [&](std::uint32_t u) { return fetched.find(u); });
      if (none_sent) {
        const bool for_good = co_await refused_for_good(where, b.uids);
        if (!for_good) co_return *refused;
      }
    }

    const bool sent_folder =
        std::find(sent_folders.begin(), sent_folders.end(), where.folder) != sent_folders.end();
    std::vector<MessageKey> keys;
    for (const std::uint32_t uid : b.uids) {
      const FetchedMessages::Held* held = fetched.find(uid);
      if (!held) {
        // Refused (handed over as such, not fetched), or else expunged
        // meanwhile.
        if (refused) {
          FetchedMessage m;
          m.uid = uid;
          m.refused = refused->message;
          m.sent = sent_folder;
          keys.emplace_back();
          b.messages.push_back(std::move(m));
        }
        continue;
      }
      const FetchItem& f = held->item;
      if (has_gmail_label(f, "\\Draft")) {
        // All Mail holds drafts too; a draft is no activity (the Drafts
        // folder of any other server is never synced either).
        ++drafts;
        fetched.drop(uid);
        continue;
      }
      FetchedMessage m;
      m.uid = uid;
      if (held->overflowed) m.refused = overflow_reason();
      if (const std::string* h = find_section(f, "", SectionText::header_fields)) {
        m.message_id = header_field_value(*h, "Message-ID");
      }
      if (f.internaldate) m.internaldate = internaldate_to_unix(*f.internaldate).value_or(0);
      m.gm_msgid = f.gm_msgid;
      m.sent = sent_folder || has_gmail_label(f, "\\Sent");
      keys.push_back({m.message_id, m.gm_msgid, m.sent});
      b.messages.push_back(std::move(m));
    }
    // Without a Message-ID or a server id to go by (a folder's first pass
    // asks none), nothing is known, and the sink, busy committing an earlier
    // batch, need not be waited for.
    const bool keyless = std::all_of(keys.begin(), keys.end(), [](const MessageKey& k) {
      return k.message_id.empty() && !k.gm_msgid;
    });
    std::vector<bool> known(keys.size(), false);
    if (!keyless) {
      SinkCall ask = sink_call::KnownMessages{where.folder, std::move(keys)};
      SinkAnswer asked = co_await call(ask);
      known = std::move(asked.known);
    }

    // A message that is all text capture reads (but for small unread
    // alternatives) comes whole, with the others of its batch in one
    // command; any other part by part (part_by_part), in one command per set
    // of parts asked. Known messages not at all.
    UidSet whole;
    std::vector<std::pair<std::vector<FetchAttr>, UidSet>> by_parts;  // few: shapes of mail
    for (std::size_t i = 0; i < b.messages.size(); ++i) {
      FetchedMessage& m = b.messages[i];
      if (i < known.size() && known[i]) {
        m.known = true;
        continue;
      }
      if (!m.refused.empty()) continue;
      const FetchItem& f = fetched.find(m.uid)->item;
      if (f.body && comes_whole(*f.body, max_part)) {
        whole.add(m.uid);
        continue;
      }
      std::vector<FetchAttr> a = part_by_part(f.body ? &*f.body : nullptr, max_part);
      auto group = std::find_if(by_parts.begin(), by_parts.end(),
                                [&](const auto& g) { return g.first == a; });
      if (group == by_parts.end()) group = by_parts.insert(by_parts.end(), {std::move(a), {}});
      group->second.add(m.uid);
    }
    if (!whole.empty()) {
      const std::array<FetchAttr, 1> all{FetchAttr::body_peek(Section{})};
      auto c = conn.builder().uid_fetch(whole, all);
      if (c) b.bodies.push_back(std::move(*c));
    }
    for (const auto& [attrs, uids] : by_parts) {
      auto c = conn.builder().uid_fetch(uids, attrs);
      if (c) b.bodies.push_back(std::move(*c));
    }
    co_return SyncResult<void>{};
  }

  // A message whose first fetch did not ask its Message-ID (!ids_first) takes
  // it from its own header, which its bytes start with.
  void id_from_bytes(FetchedMessage& m) const {
    if (!ids_first) m.message_id = header_field_value(header_block(m.raw), "Message-ID");
  }

  // Reads the bodies of `b`, a batch of the folder whose pass started at
  // `where`, and assembles its messages (taking their responses out of
  // `fetched`).
  Task<SyncResult<std::vector<FetchedMessage>>> finish_batch(InFlight& b,
                                                             const FolderState& where) {
    const Connection::Handler collect = collector();
    const std::string what = "UID FETCH";
    // A refusal of the fetch (NO or BAD; every command of the batch still
    // completes) that the server made while sending other messages of the
    // batch is about the messages it left out (Gmail: "Some messages could
    // not be FETCHed"): they are handed over as refused. A refusal with
    // nothing sent, a busy server or a lost connection fails the pass
    // instead, to be retried: the server may be failing as a whole, for a
    // while. Unless the batch asked for one message only, refused on
    // refusals_before_failed passes over refusals_span: then the refusal is
    // that message's.
    std::optional<SyncError> refused;
    if (auto p = co_await conn.finish(b.bodies, collect, what); !p) {
      if (p.error().code != make_error_code(SyncErrc::server_refused)) co_return p.error();
      refused = p.error();
    }
    // An answer that could not be read counts as a refusal of the messages
    // it left out: they are never taken as expunged.
    if (!refused) refused = unreadable(b.malformed_at_bodies);
    // A message with no bytes: refused, or else expunged since the first
    // fetch (nothing to hand over).
    auto missing = [&](FetchedMessage& m) {
      if (refused) {
        m.refused = refused->message;
      } else {
        m.uid = 0;
      }
    };
    std::vector<FetchedMessage> out = std::move(b.messages);
    for (auto& m : out) {
      auto held = fetched.take(m.uid);
      if (m.known || !m.refused.empty()) continue;
      if (!held) {
        missing(m);
        continue;
      }
      if (held->overflowed) {
        m.refused = overflow_reason();
        continue;
      }
      FetchItem& f = held->item;
      if (std::string* whole = find_section(f, "", SectionText::none)) {
        // Moved, not copied: the responses are not needed after this.
        m.raw = std::move(*whole);
        id_from_bytes(m);
        continue;
      }
      const std::string* header = find_section(f, "", SectionText::header);
      if (!header) {
        missing(m);
        continue;
      }
      m.raw = *header;
      m.partial = true;  // part by part: something was left out or cut
      if (f.body && f.body->is_multipart()) {
        emit_part(*f.body, f, m.raw, m.partial);
      } else if (const std::string* text = find_section(f, "", SectionText::text)) {
        m.raw += *text;
      }
      id_from_bytes(m);
    }
    for (const std::uint32_t uid : b.uids) (void)fetched.take(uid);
    if (refused && std::none_of(out.begin(), out.end(),
                                [](const FetchedMessage& m) { return !m.raw.empty(); })) {
      std::vector<std::uint32_t> asked;
      for (const auto& m : out) {
        if (!m.known) asked.push_back(m.uid);
      }
      const bool for_good = co_await refused_for_good(where, std::move(asked));
      if (!for_good) co_return *refused;
    }
    std::erase_if(out, [](const FetchedMessage& m) { return m.uid == 0; });
    co_return out;
  }

  // With QRESYNC, a folder whose HIGHESTMODSEQ moved may have lost messages
  // even when nothing new came (a flag change moves it too).
  bool modseq_moved(const std::optional<FolderState>& stored, const FolderObservation& o) const {
    return conn.qresync() && stored && stored->highest_modseq != 0 && o.highest_modseq &&
           *o.highest_modseq != stored->highest_modseq;
  }

  // Whether a pass over the folder has anything to do: what the plan says
  // (a paused plan warns), or record what vanished.
  bool has_work(const FolderPlan& p, const std::optional<FolderState>& stored,
                const FolderObservation& o) const {
    return p.kind != PlanKind::unchanged || modseq_moved(stored, o);
  }

  // Syncs `folder`, whose stored state is `stored`. With `last_commit`, the
  // commits of the folder's last batches are left there, not yet started,
  // for the caller to start while the next folder starts; without it, made
  // here.
  Task<SyncResult<FolderReport>> sync_folder(
      const std::string& folder, std::optional<FolderState> stored, bool precheck,
      std::vector<sink_call::Commit>* last_commit = nullptr) {
    FolderReport rep;
    rep.folder = folder;
    backfill_folder = false;
    if (precheck && stored) {
      auto st = co_await status(folder);
      if (!st) co_return st.error();
      const FolderPlan quick = plan_folder(folder, stored, *st, options.min_keep_fraction);
      if (!has_work(quick, stored, *st)) {
        rep.skipped_unchanged = true;
        co_return rep;
      }
    }
    ids_first = stored.has_value();
    UidSet vanished;
    auto ex = co_await examine(folder, stored ? &*stored : nullptr, &vanished);
    if (!ex) co_return ex.error();
    const FolderPlan plan = plan_folder(folder, stored, *ex, options.min_keep_fraction);
    rep.uidvalidity_changed = plan.uidvalidity_changed;
    if (plan.kind != PlanKind::paused && !plan.uidvalidity_changed && modseq_moved(stored, *ex)) {
      // What vanished, with the new HIGHESTMODSEQ, before any batch: a
      // batch's state carries the new HIGHESTMODSEQ too, and after it the
      // server would no longer report these. The mark and UIDNEXT stay until
      // the batches move them.
      FolderState seen = *stored;
      seen.highest_modseq = *ex->highest_modseq;
      seen.messages = ex->messages;
      seen.suspect_messages = 0;
      UidRanges gone;
      for (const auto& r : vanished.ranges()) {
        if (r.last == UidSet::star) continue;  // never in an answer; nothing to mark
        gone.emplace_back(r.first, r.last);
        rep.vanished += r.last - r.first + 1;
      }
      SinkCall removed = sink_call::Removed{std::move(seen), std::move(gone)};
      const SinkAnswer done = co_await call(removed);
      if (!done.result) co_return done.result.error();
    }
    if (plan.kind == PlanKind::unchanged) {
      rep.skipped_unchanged = true;
      co_return rep;
    }
    if (plan.kind == PlanKind::paused) {
      rep.paused = true;
      // Named locals, never temporaries, in co_await expressions (GCC 12).
      std::string why = options.name + ": " + plan.reason;
      co_await warn(std::move(why));
      std::vector<FetchedMessage> none;
      if (auto c = co_await commit(plan.start, std::move(none)); !c) co_return c.error();
      co_return rep;
    }
    if (plan.uidvalidity_changed) {
      std::string why = options.name + ": " + plan.reason;
      co_await warn(std::move(why));
    }

    SearchCriteria crit;
    if (plan.kind == PlanKind::backfill) {
      using namespace std::chrono;
      const auto since = floor<days>(clocks.system()) - days(options.backfill_days);
      crit.since = year_month_day{since};
    }
    if (plan.start.highest_uid > 0) crit.uids.add(plan.start.highest_uid + 1, UidSet::star);
    auto found = co_await search(crit, *ex);
    if (!found) co_return found.error();
    std::vector<std::uint32_t> uids;
    for (auto u : *found) {
      if (u > plan.start.highest_uid) uids.push_back(u);
    }
    if (plan.kind == PlanKind::backfill) {
      backfill_folder = true;
      pass.backfilling = true;
      pass.done = pass.done.value_or(0);
      pass.total = pass.total.value_or(0) + uids.size();
      co_await report_progress();
    }

    FolderState state = plan.start;  // where the pass starts (its mark: see state_after)
    // After this pass every UID below the folder's UIDNEXT is either captured
    // or outside the window: the high-water mark can move up to it.
    const std::uint32_t final_mark =
        std::max(state.highest_uid, ex->uidnext > 0 ? ex->uidnext - 1 : 0u);
    // Batch k holds uids[starts[k], starts[k + 1]). A message whose refusal
    // is being counted comes alone first: a batch refused as a whole says
    // nothing of its messages, and only a refusal of one alone counts
    // towards its failure (refused_for_good).
    std::vector<std::size_t> starts{0};
    const bool refused_first = !uids.empty() && uids.front() == state.refused.uid;
    if (refused_first) starts.push_back(1);
    for (const std::size_t n :
         batch_sizes(uids.size() - (refused_first ? 1 : 0), options.batch_size)) {
      starts.push_back(starts.back() + n);
    }
    auto slice = [&](std::size_t k) {
      return std::vector<std::uint32_t>(uids.begin() + static_cast<std::ptrdiff_t>(starts[k]),
                                        uids.begin() + static_cast<std::ptrdiff_t>(starts[k + 1]));
    };
    // Batches overlap: while batch k is captured and committed (on the sink's
    // executor), the bytes of batch k + 1 are read and the server prepares
    // the first fetch of batch k + 2. Only the commit of batch k moves the
    // folder's mark, so a crash at any point loses nothing.
    fetched.clear();
    drafts = 0;
    const std::size_t count = starts.size() - 1;
    auto begin = [&](std::size_t k) -> SyncResult<std::optional<InFlight>> {
      if (k >= count) return std::optional<InFlight>{};
      auto b = start_batch(slice(k));
      if (!b) return b.error();
      return std::optional<InFlight>(std::move(*b));
    };
    // Reads the first fetch of `b`, then asks for its bytes and for the first
    // fetch of the batch after it (`then`), in one write.
    auto request = [&](InFlight& b, std::optional<InFlight>& then) -> Task<SyncResult<void>> {
      if (auto p = co_await plan_bodies(b, state); !p) co_return p.error();
      std::vector<Command> out = b.bodies;
      b.malformed_at_bodies = conn.malformed();
      if (then) {
        out.push_back(then->meta);
        then->malformed_at_meta = conn.malformed();
      }
      co_return co_await conn.send(out);
    };
    // The folder's state once batch k is committed.
    auto state_after = [&](std::size_t k) {
      FolderState s = plan.start;
      const bool last = k + 1 == count;
      s.highest_uid =
          last ? std::max(final_mark, uids[starts[k + 1] - 1]) : uids[starts[k + 1] - 1];
      s.backfilling = !last && plan.kind == PlanKind::backfill;
      // UIDNEXT only with the last batch: the pre-check takes a folder whose
      // UIDNEXT is the stored one as unchanged, so a pass that stops after a
      // middle batch must leave one that tells it otherwise (0: not known).
      s.uidnext = last ? plan.start.uidnext : 0;
      return s;
    };
    auto count_in = [&](const std::vector<FetchedMessage>& batch) {
      rep.handed_over += static_cast<std::uint32_t>(batch.size());
      for (const auto& m : batch) rep.known += m.known ? 1 : 0;
    };
    // A batch read is stored even when a later step fails, so that what it
    // decided (a message refused for good, above all) is not lost, and the
    // failure's count is of the message after it. `read` is batch k's.
    auto keep = [&](std::size_t k, std::vector<FetchedMessage> read,
                    SyncError failure) -> Task<SyncResult<FolderReport>> {
      if (auto c = co_await commit(state_after(k), std::move(read)); !c) co_return c.error();
      co_return failure;
    };
    std::vector<FetchedMessage> msgs;  // of batch k, read
    std::optional<InFlight> next;      // batch k + 1: bytes asked for
    std::optional<InFlight> after;     // batch k + 2: first fetch asked for
    if (count > 0) {
      auto first = begin(0);
      if (!first) co_return first.error();
      InFlight current = std::move(**first);
      current.malformed_at_meta = conn.malformed();
      if (auto w = co_await conn.send(current.meta); !w) co_return w.error();
      auto second = begin(1);
      if (!second) co_return second.error();
      next = std::move(*second);
      if (auto r = co_await request(current, next); !r) co_return r.error();
      auto read = co_await finish_batch(current, state);
      if (!read) co_return read.error();
      msgs = std::move(*read);
      if (next) {
        auto third = begin(2);
        if (!third) co_return third.error();
        after = std::move(*third);
        if (auto r = co_await request(*next, after); !r) {
          co_return co_await keep(0, std::move(msgs), r.error());
        }
      }
    }
    for (std::size_t k = 0; k < count; ++k) {
      if (stopped) {
        co_return make_sync_error(SyncErrc::cancelled, "stopped", RetryClass::retry_later);
      }
      FolderState at = state_after(k);
      count_in(msgs);
      if (!next) {
        if (last_commit) {
          last_commit->push_back(sink_call::Commit{std::move(at), std::move(msgs)});
        } else if (auto c = co_await commit(std::move(at), std::move(msgs)); !c) {
          co_return c.error();
        }
        break;
      }
      if (last_commit && !after) {
        // Batch k + 1 is the folder's last: it is read before batch k is
        // committed, and both commits are left to the caller, so that the
        // server starts on the next folder while the sink still works on
        // this one. (The sink waits for that read; the last batch is small,
        // see batch_sizes, and was asked for a batch ago.)
        auto read = co_await finish_batch(*next, state);
        if (!read) {
          // Batch k is stored all the same, as it would have been alongside.
          if (auto c = co_await commit(std::move(at), std::move(msgs)); !c) co_return c.error();
          co_return read.error();
        }
        count_in(*read);
        // In order, the second only once the first is stored, so that the
        // folder's mark never passes a batch that failed.
        last_commit->push_back(sink_call::Commit{std::move(at), std::move(msgs)});
        last_commit->push_back(sink_call::Commit{state_after(k + 1), std::move(*read)});
        break;
      }
      {
        std::vector<sink_call::Commit> committing;
        committing.push_back(sink_call::Commit{std::move(at), std::move(msgs)});
        const std::uint64_t ticket = co_await start_commits(committing);
        auto read = co_await finish_batch(*next, state);
        const SyncResult<void> committed = co_await wait_commits(ticket);
        // The commit's failure first: it says why the mark did not move.
        if (!committed) co_return committed.error();
        if (!read) co_return read.error();
        msgs = std::move(read).value();
      }
      next = std::move(after);
      after.reset();
      if (next) {
        auto later = begin(k + 3);
        if (!later) co_return later.error();
        after = std::move(*later);
        if (auto r = co_await request(*next, after); !r) {
          co_return co_await keep(k + 1, std::move(msgs), r.error());
        }
      }
    }
    if (uids.empty()) {
      state.highest_uid = final_mark;
      state.backfilling = false;
      std::vector<FetchedMessage> none;
      if (auto c = co_await commit(state, std::move(none)); !c) co_return c.error();
    }
    rep.drafts = drafts;
    co_return rep;
  }

  // Syncs every folder in order, each folder's last commit running while the
  // next folder starts (its EXAMINE, SEARCH and first fetches), so that
  // neither the server nor the sink waits for the other between folders.
  // The stored states are read first, all at once: a sink call queues behind
  // the commit running on the sink, and no folder's sync writes another's.
  Task<SyncResult<SyncReport>> sync_all(bool precheck) {
    SyncReport report;
    report.capabilities = conn.capabilities().names;
    report.compressed = conn.compressed();
    SinkCall ask = sink_call::FolderStates{folders};
    SinkAnswer stored = co_await call(ask);
    stored.states.resize(folders.size());
    const bool backfilling = std::any_of(stored.states.begin(), stored.states.end(), backfills);
    co_await begin_pass(backfilling);
    std::optional<std::uint64_t> pending;  // the folder before's last commits, started
    for (std::size_t i = 0; i < folders.size(); ++i) {
      std::vector<sink_call::Commit> last;
      auto syncing = sync_folder(folders[i], std::move(stored.states[i]), precheck, &last);
      const SyncResult<FolderReport> r = co_await std::move(syncing);
      if (pending) {
        const SyncResult<void> committed = co_await wait_commits(*pending);
        pending.reset();
        // The commit's failure first: it says why that folder's mark did not
        // move (this folder's last commits, if any, are dropped unstarted).
        if (!committed) co_return committed.error();
      }
      if (!r) co_return r.error();
      report.folders.push_back(*r);
      if (!last.empty()) pending = co_await start_commits(last);
    }
    if (pending) {
      const SyncResult<void> committed = co_await wait_commits(*pending);
      if (!committed) co_return committed.error();
    }
    co_return report;
  }

  // When the next pass over every folder is due after the pass `r`:
  // poll_interval from `from`; while NOTIFY announces the changes of every
  // folder and none is paused (a paused folder's count is confirmed by the
  // next pass), every second IDLE re-issue instead, when IDLE wakes anyway:
  // a server may lose an announcement without a word (Dovecot ignores its
  // own failures to send some).
  Connection::Clock::time_point poll_after(const SyncReport& r,
                                           Connection::Clock::time_point from) const {
    const bool paused =
        std::any_of(r.folders.begin(), r.folders.end(), [](const auto& f) { return f.paused; });
    if (notifying && !paused) return from + 2 * options.idle_reissue;
    return from + options.poll_interval;
  }

  // The stale folders (NOTIFY set, INBOX selected: from now on the server
  // announces what changes in them), each asked with STATUS, and those with
  // something to do synced, as one pass. A folder that is paused, or whose
  // EXAMINE then finds nothing to do, is left to the next poll (moved
  // closer in `next_poll`), so that no loop of STATUS and EXAMINE begins.
  Task<SyncResult<void>> sync_stale(Connection::Clock::time_point& next_poll) {
    const std::vector<std::string> names = stale;
    SinkCall ask = sink_call::FolderStates{names};
    SinkAnswer got = co_await call(ask);
    got.states.resize(names.size());
    const auto poll_soon = [&] {
      next_poll = std::min(next_poll, conn.now() + options.poll_interval);
    };
    std::vector<std::size_t> behind;
    for (std::size_t i = 0; i < names.size(); ++i) {
      auto st = co_await status(names[i]);
      if (!st) co_return st.error();
      const std::optional<FolderState>& stored = got.states[i];
      if (stored && stored->suspect_messages != 0) {
        poll_soon();
        continue;
      }
      const FolderPlan p = plan_folder(names[i], stored, *st, options.min_keep_fraction);
      if (p.kind == PlanKind::paused) {
        poll_soon();
      } else if (has_work(p, stored, *st)) {
        behind.push_back(i);
      }
    }
    if (behind.empty()) co_return SyncResult<void>{};
    const bool backfilling = std::any_of(behind.begin(), behind.end(),
                                         [&](std::size_t i) { return backfills(got.states[i]); });
    co_await begin_pass(backfilling);
    SyncReport rep;
    for (const std::size_t i : behind) {
      auto syncing = sync_folder(names[i], got.states[i], false);
      auto r = co_await std::move(syncing);
      if (!r) co_return r.error();
      if (r->skipped_unchanged) {
        std::erase(stale, names[i]);
        poll_soon();
      }
      rep.folders.push_back(*r);
    }
    co_await synced(rep);
    next_poll = std::min(next_poll, poll_after(rep, conn.now()));
    co_return SyncResult<void>{};
  }

  // After the first pass: IDLE on INBOX (re-issued every idle_reissue) and
  // a pass over every folder each poll_interval (and after wake()); without
  // IDLE, sleeping until the next poll. Where the server offers NOTIFY
  // (RFC 5465) and takes NOTIFY SET, the other folders are not polled: the
  // server announces their changes while IDLE waits (an unsolicited STATUS;
  // see observe()), and then those folders are synced; each folder selected
  // since its last STATUS is asked again once INBOX is selected (stale), and
  // lost announcements bring NOTIFY SET again and a pass over every folder.
  // Until stop() or a failure.
  Task<SyncResult<void>> watch() {
    using std::chrono::milliseconds;
    const bool inbox = std::find(folders.begin(), folders.end(), "INBOX") != folders.end();
    const bool can_idle = inbox && conn.capabilities().has("IDLE");
    if (can_idle && conn.capabilities().has("NOTIFY") && !other_folders().empty()) {
      auto set = co_await set_notify();
      if (!set) co_return set.error();
    }
    auto first = co_await sync_all(true);
    if (!first) co_return first.error();
    co_await synced(*first);
    auto next_poll = poll_after(*first, conn.now());
    while (!stopped) {
      bool full = false;  // a pass over every folder now
      if (woken) {
        // wake() came during the last pass: the next one starts at once.
      } else if (notifying && notify_lost) {
        auto set = co_await set_notify();
        if (!set) co_return set.error();
        full = true;
      } else if (can_idle) {
        // Named, not a temporary, in co_await (GCC 12).
        const std::string inbox_name = "INBOX";
        auto e = co_await examine(inbox_name);
        if (!e) co_return e.error();
        // Mail that came (or, with QRESYNC, went) after the last pass read
        // INBOX was reported by this EXAMINE, and IDLE would not report it
        // again: sync first. Never for a paused folder, which waits for the
        // next poll to confirm its count.
        SinkCall ask = sink_call::FolderStates{{inbox_name}};
        SinkAnswer got = co_await call(ask);
        std::optional<FolderState> stored;
        if (!got.states.empty()) stored = std::move(got.states.front());
        // The test is sync_folder()'s own, so that the pass it starts
        // ends what made it start (no loop of EXAMINE and sync).
        bool behind = false;
        if (stored && stored->suspect_messages == 0) {
          const FolderPlan p = plan_folder(inbox_name, stored, *e, options.min_keep_fraction);
          behind = p.kind != PlanKind::paused && has_work(p, stored, *e);
        }
        if (!behind && notifying && !stale.empty()) {
          // Then INBOX again: news of it during these commands went to them.
          if (auto r = co_await sync_stale(next_poll); !r) co_return r.error();
          continue;
        }
        const auto until_poll = std::chrono::duration_cast<milliseconds>(next_poll - conn.now());
        const auto wait = std::clamp<milliseconds>(
            until_poll, milliseconds(100),
            std::chrono::duration_cast<milliseconds>(options.idle_reissue));
        bool new_mail = behind;
        const std::function<bool(const Response&)> wake = [&](const Response& r) {
          // New mail, or (with QRESYNC) mail gone: sync INBOX now.
          if (std::holds_alternative<Exists>(r)) new_mail = true;
          if (conn.qresync() && std::holds_alternative<Vanished>(r)) new_mail = true;
          // Another folder announced (observe()), or announcements lost.
          return new_mail || (notifying && (!stale.empty() || notify_lost));
        };
        if (!behind) {
          auto idled = co_await conn.idle(wait, wake);
          if (!idled) co_return idled.error();
        }
        // After wake(), the pass over every folder below takes INBOX too.
        if (new_mail && !woken) {
          co_await begin_pass(backfills(stored));
          auto syncing = sync_folder(inbox_name, stored, false);
          auto r = co_await std::move(syncing);
          if (!r) co_return r.error();
          const SyncReport one{{*r}, {}, false};
          co_await synced(one);
          next_poll = std::min(next_poll, poll_after(one, conn.now()));
        }
      } else {
        exchange.next(Action::Kind::sleep).until = next_poll;
        co_await exchange.need();
      }
      if (full || woken || conn.now() >= next_poll) {
        woken = false;
        const auto began = conn.now();
        auto r = co_await sync_all(true);
        if (!r) co_return r.error();
        co_await synced(*r);
        next_poll = poll_after(*r, began);
      }
    }
    co_return make_sync_error(SyncErrc::cancelled, options.name + ": stopped",
                              RetryClass::retry_later);
  }
};

Action Core::resume(Io& io) {
  if (finished) return *finished;
  exchange.io = &io;
  try {
    if (!root.valid()) {
      root = session();
      root.start(exchange.trampoline);
    } else {
      exchange.resume();
    }
    exchange.io = nullptr;
    if (!root.done()) return exchange.action;
    SyncResult<void> r = root.result();
    if (!r) failure = std::move(r).error();
    failed = !r;
  } catch (...) {
    failure = failure_of(std::current_exception());
    failed = true;
  }
  exchange.io = nullptr;
  Action end;
  end.kind = failed ? Action::Kind::error : Action::Kind::done;
  if (failed) end.error = &failure;
  finished = end;
  return end;
}

}  // namespace detail

session_fsm::session_fsm(const AccountOptions& options, Mode mode, SessionClocks clocks,
                         SessionMemory* memory)
    : core_(std::make_unique<detail::Core>(options, mode, std::move(clocks), memory)) {}

session_fsm::~session_fsm() = default;

Action session_fsm::resume(Io&& io) { return core_->resume(io); }
void session_fsm::stop() noexcept { core_->stop(); }
void session_fsm::wake() noexcept { core_->wake(); }
bool session_fsm::wake_pending() const noexcept { return core_->woken; }
const SyncReport& session_fsm::report() const { return core_->report(); }

}  // namespace crmcap::imap
