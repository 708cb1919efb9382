// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/imap_sink.hpp"

#include "parsers/mail/mail.hpp"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_set>

namespace crmcap::capture {

namespace {
// Below this many new messages a batch is parsed on one thread.
constexpr std::size_t kParallelParseMin = 16;
}  // namespace

store::SyncCursor to_cursor(const std::string& mailbox, const imap::FolderState& s) {
  store::SyncCursor c;
  c.mailbox = mailbox;
  c.folder = s.folder;
  c.uidvalidity = s.uidvalidity;
  c.highest_uid = s.highest_uid;
  c.highest_modseq = static_cast<std::int64_t>(s.highest_modseq);
  c.extra = "uidnext=" + std::to_string(s.uidnext) + " messages=" + std::to_string(s.messages) +
            " backfilling=" + (s.backfilling ? "1" : "0") +
            " suspect=" + std::to_string(s.suspect_messages);
  if (s.refused.uid != 0) {
    c.extra += " refused=" + std::to_string(s.refused.uid) + "," +
               std::to_string(s.refused.passes) + "," + std::to_string(s.refused.since);
  }
  return c;
}

imap::FolderState from_cursor(const store::SyncCursor& c) {
  imap::FolderState s;
  s.folder = c.folder;
  s.uidvalidity = static_cast<std::uint32_t>(c.uidvalidity);
  s.highest_uid = static_cast<std::uint32_t>(c.highest_uid);
  s.highest_modseq = static_cast<std::uint64_t>(c.highest_modseq);
  std::string_view rest = c.extra;
  while (!rest.empty()) {
    const auto sp = rest.find(' ');
    const std::string_view item = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "refused") {
      // uid,passes,since; anything else counts afresh.
      imap::Refusal r;
      const char* p = val.data();
      const char* const end = p + val.size();
      // Reads one number, then the comma after it (`last`: the end instead).
      auto take = [&](auto& n, bool last) {
        const auto [next, ec] = std::from_chars(p, end, n);
        p = next;
        if (ec != std::errc{} || p == end) return ec == std::errc{} && last;
        return !last && *p++ == ',';
      };
      if (take(r.uid, false) && take(r.passes, false) && take(r.since, true)) s.refused = r;
      continue;
    }
    std::uint32_t n = 0;
    std::from_chars(val.data(), val.data() + val.size(), n);
    if (key == "uidnext") s.uidnext = n;
    if (key == "messages") s.messages = n;
    if (key == "backfilling") s.backfilling = n != 0;
    if (key == "suspect") s.suspect_messages = n;
  }
  return s;
}

ImapSink::ImapSink(std::string mailbox, Pipeline& pipeline, store::Activities& activities,
                   store::SyncState& sync_state)
    : mailbox_(std::move(mailbox)),
      pipeline_(pipeline),
      activities_(activities),
      sync_state_(sync_state) {}

std::optional<imap::FolderState> ImapSink::folder_state(const std::string& folder) {
  auto c = sync_state_.cursor(mailbox_, folder);
  if (!c || !*c) return std::nullopt;
  return from_cursor(**c);
}

namespace {

std::string remote_id_of(const std::optional<std::uint64_t>& gm_msgid) {
  return gm_msgid ? "gm:" + std::to_string(*gm_msgid) : std::string();
}

// The source key capture gives a message with this Message-ID field (the
// server's text, brackets, comments and folding whitespace included): the
// mail parser's own reading of it, so that a known message is known by the
// key its activity was stored under.
std::string mid_key(std::string_view message_id) {
  const std::string id = mail::message_id_of(message_id);
  return id.empty() ? std::string() : "mid:" + id;
}

// mid_key() of every key's Message-ID, read once for all the look-ups of a batch.
std::vector<std::string> mid_keys(const std::vector<imap::MessageKey>& keys) {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(mid_key(k.message_id));
  return out;
}

// The store failed; the account retries the folder later.
imap::SyncError store_failure(std::string message) {
  return imap::SyncError{imap::make_error_code(imap::SyncErrc::sink), std::move(message),
                         imap::RetryClass::retry_later};
}

}  // namespace

store::Result<std::vector<std::string>> ImapSink::stored_keys(
    const std::string& folder, const std::vector<imap::MessageKey>& keys,
    const std::vector<std::string>& key_mids, std::vector<std::string>* again) {
  // First by the server's own id (Gmail), which also finds a message that has
  // no Message-ID; then by Message-ID.
  std::vector<std::string> out(keys.size());
  std::vector<std::string> remote;
  for (const auto& k : keys) remote.push_back(remote_id_of(k.gm_msgid));
  if (std::any_of(remote.begin(), remote.end(), [](const auto& r) { return !r.empty(); })) {
    auto found = activities_.source_keys_by_remote_id(mailbox_, remote);
    if (!found) return found.error();
    out = std::move(*found);
  }
  std::vector<std::string> mids;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    mids.push_back(out[i].empty() ? key_mids[i] : std::string());
  }
  if (std::any_of(mids.begin(), mids.end(), [](const auto& k) { return !k.empty(); })) {
    auto have = activities_.have_source_keys(mids);
    if (!have) return have.error();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!mids[i].empty() && (*have)[i]) out[i] = std::move(mids[i]);
    }
  }
  // Sent mail whose activity was decided inbound, or from another folder's
  // copy (its copy in INBOX came first), is not known: it is decided again,
  // as sent, from the sender's own copy (which alone lists the Bcc). Once
  // decided from it, the activity is outbound with a place in this folder,
  // and known.
  if (again != nullptr) again->assign(keys.size(), std::string());
  std::vector<std::string> sent_known;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].sent && !out[i].empty()) {
      sent_known.push_back(out[i]);
      at.push_back(i);
    }
  }
  if (!sent_known.empty()) {
    auto stored = activities_.stored_copies(mailbox_, folder, sent_known);
    if (!stored) return stored.error();
    for (std::size_t j = 0; j < at.size(); ++j) {
      const auto& copy = (*stored)[j];
      if (!copy || !Policy::sent_copy_decides_again(*copy)) continue;
      if (again != nullptr) (*again)[at[j]] = std::move(out[at[j]]);
      out[at[j]].clear();
    }
  }
  return out;
}

std::vector<bool> ImapSink::known_messages(const std::string& folder,
                                           const std::vector<imap::MessageKey>& keys) {
  std::vector<bool> out(keys.size(), false);
  // A failed look-up answers "not known": fetching again is always safe.
  if (auto stored = stored_keys(folder, keys, mid_keys(keys))) {
    for (std::size_t i = 0; i < keys.size(); ++i) out[i] = !(*stored)[i].empty();
  }
  return out;
}

imap::SyncResult<void> ImapSink::commit(const imap::FolderState& state,
                                        std::vector<imap::FetchedMessage> messages) {
  // The stored source key of every message. In a folder synced before, the
  // account asks what is known a batch ahead, before the batch in front of
  // it is committed; on a folder's first pass it asks nothing. And one batch
  // may hold two copies of a message. So a message stored since it asked (or
  // not asked), or seen earlier in this batch, is known too. Only its place
  // is new, and a later copy (a list's re-send) never overwrites the
  // decision on the first; but for a copy kept as sent mail when the first
  // was another folder's (stored_keys): that decision is made again, as sent.
  BatchWriter writer(pipeline_, activities_);
  {
    // Every look-up of the batch (known keys, and each message's contacts,
    // companies and thread) in one read transaction. Without one, each takes
    // the store's read lock on its own. A failure to start it only costs that.
    auto hold = activities_.hold_reads();
    if (auto r = decide_batch(state, messages, writer); !r) return r;
  }
  writer.batch().cursor = to_cursor(mailbox_, with_stored_refusal(state));
  auto r = writer.commit();
  {
    const std::lock_guard<std::mutex> lock(counters_mutex_);
    counters_ += writer.tally();
  }
  if (!r) {
    return store_failure(mailbox_ + ": cannot store a batch of " + state.folder + ": " +
                         r.error().message);
  }
  return {};
}

imap::SyncResult<void> ImapSink::decide_batch(const imap::FolderState& state,
                                              std::vector<imap::FetchedMessage>& messages,
                                              BatchWriter& writer) {
  std::vector<imap::MessageKey> keys;
  keys.reserve(messages.size());
  // A refused copy has no bytes to decide again from: it stays a new place.
  for (const auto& m : messages) {
    keys.push_back({m.message_id, m.gm_msgid, m.sent && m.refused.empty()});
  }
  // Each Message-ID is read once here, for the store's look-up, the batch's
  // own duplicates and the known messages' places.
  const std::vector<std::string> mids = mid_keys(keys);
  std::vector<std::string> again;
  auto stored = stored_keys(state.folder, keys, mids, &again);
  if (!stored)
    return store_failure(mailbox_ + ": cannot read the store: " + stored.error().message);
  std::vector<std::string>& known_keys = *stored;
  std::unordered_set<std::string> in_batch;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (!known_keys[i].empty()) {
      messages[i].known = true;
      continue;
    }
    // Not stored under its Message-ID (below): no copy may be known by it.
    if (!messages[i].refused.empty()) continue;
    const std::string& mid = mids[i];
    if (!mid.empty() && !in_batch.insert(mid).second) {
      messages[i].known = true;
      known_keys[i] = mid;
    }
  }
  // The new messages are parsed first, half of them on a second thread
  // (parsing touches nothing shared); then each is decided, in order, here.
  std::vector<std::size_t> fresh;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].known && messages[i].refused.empty()) fresh.push_back(i);
  }
  std::vector<std::optional<mail::Result<mail::MailMessage>>> parsed(messages.size());
  auto parse_range = [&](std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to; ++k) {
      const imap::FetchedMessage& m = messages[fresh[k]];
      parsed[fresh[k]].emplace(pipeline_.parse(m.raw, MessageSource{{}, m.internaldate}));
    }
  };
  std::size_t split = fresh.size() >= kParallelParseMin ? fresh.size() / 2 : fresh.size();
  {
    std::jthread helper;
    if (split < fresh.size()) {
      try {
        helper = std::jthread([&parse_range, split, n = fresh.size()] { parse_range(split, n); });
      } catch (const std::system_error&) {
        split = fresh.size();  // no thread to be had (a process limit): all of it here
      }
    }
    parse_range(0, split);
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    imap::FetchedMessage& m = messages[i];
    store::SourceRef ref{mailbox_, state.folder, state.uidvalidity,
                         m.uid,    "",           remote_id_of(m.gm_msgid)};
    if (m.known) {
      // A key the store cannot find (the message was known when the account
      // asked by a key it no longer has) is ignored by the store.
      writer.add_known(known_keys[i].empty() ? mids[i] : known_keys[i], ref);
      continue;
    }
    const MessageSource source{ref, m.internaldate, m.sent};
    writer.add(m.refused.empty() ? pipeline_.finish(m.raw, std::move(*parsed[i]), source)
                                 : pipeline_.unfetched(m.refused, source),
               ref, again[i]);
  }
  return {};
}

imap::SyncResult<void> ImapSink::removed(const imap::FolderState& state,
                                         const imap::UidRanges& uids) {
  store::Batch batch;
  batch.cursor = to_cursor(mailbox_, with_stored_refusal(state));
  batch.removed_uids.reserve(uids.size());
  for (const auto& [first, last] : uids) batch.removed_uids.emplace_back(first, last);
  if (auto r = activities_.commit(batch); !r) {
    return store_failure(mailbox_ + ": cannot record messages gone from " + state.folder + ": " +
                         r.error().message);
  }
  return {};
}

imap::FolderState ImapSink::with_stored_refusal(const imap::FolderState& state) {
  imap::FolderState s = state;
  s.refused = {};
  const auto was = folder_state(state.folder);
  if (was && was->uidvalidity == state.uidvalidity && was->refused.uid > state.highest_uid) {
    s.refused = was->refused;
  }
  return s;
}

imap::SyncResult<void> ImapSink::note_refusal(const imap::FolderState& state) {
  auto stored = sync_state_.cursor(mailbox_, state.folder);
  if (!stored) {
    return store_failure(mailbox_ + ": cannot read the state of " + state.folder + ": " +
                         stored.error().message);
  }
  imap::FolderState s = state;
  if (*stored && static_cast<std::uint32_t>((*stored)->uidvalidity) == state.uidvalidity) {
    s = from_cursor(**stored);
    s.refused = state.refused;
  }
  store::Batch batch;
  batch.cursor = to_cursor(mailbox_, s);
  if (auto r = activities_.commit(batch); !r) {
    return store_failure(mailbox_ + ": cannot record a refusal in " + state.folder + ": " +
                         r.error().message);
  }
  return {};
}

void ImapSink::warn(const std::string& message) {
  if (on_warning) {
    on_warning(message);
  } else {
    // One write, so that a line from another thread cannot cut into it.
    std::cerr << ("crm-captured: warning: " + message + "\n");
  }
}

}  // namespace crmcap::capture
