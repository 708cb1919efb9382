// SPDX-License-Identifier: Apache-2.0
// Shared by the IMAP fault and property tests (imap_fault_test.cpp,
// imap_property_test.cpp): they drive imap::Account, through its public API
// only, against the in-process fake server (tests/support/fake_imap.hpp),
// into a real store through capture::ImapSink, and check what the store holds
// against what the server holds.
#pragma once

#include "connectors/imap/imap.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/imap_sink.hpp"
#include "tests/daemon/forwarding_sink.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/support/fake_imap.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace crmcap::test {

// The configured name of the mailbox the tests sync: rows and cursors are
// keyed by it.
inline constexpr const char* k_fake_mailbox = "work";

// Runs account.sync_once() on `io` to its end and returns what it returned.
// A watchdog fails the test and stops the account when that takes longer
// than `limit` (a hang); should the sync not end within 10 s more even so,
// the process aborts, so that a hang never holds up the suite.
inline imap::SyncResult<imap::SyncReport> sync_guarded(
    boost::asio::io_context& io, imap::Account& account,
    std::chrono::seconds limit = std::chrono::seconds(20)) {
  std::optional<imap::SyncResult<imap::SyncReport>> out;
  boost::asio::steady_timer watchdog(io);
  watchdog.expires_after(limit);
  watchdog.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    ADD_FAILURE() << "sync_once() did not return within " << limit.count() << " s; stopped";
    account.stop();
  });
  boost::asio::co_spawn(
      io,
      [&]() -> imap::Awaitable<void> {
        // Named, not a temporary, in co_await (GCC 12, see connectors/).
        auto op = account.sync_once();
        out.emplace(co_await std::move(op));
        watchdog.cancel();
      },
      boost::asio::detached);
  io.restart();
  io.run_for(limit + std::chrono::seconds(10));
  if (!out) {
    std::fprintf(stderr, "sync_once() did not end even after stop(): aborting\n");
    std::abort();
  }
  return std::move(*out);
}

// Hands every call on to `inner`, but for the commit fail_commit() names:
// that one fails as a full disk would, storing nothing; or, `after_storing`,
// it is stored and then reported failed, as a process that died right after
// the commit would leave it (the account stops there, the store is ahead).
class FlakySink final : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
  // The `n`-th commit from now fails; 0: none.
  void fail_commit(int n, bool after_storing = false) {
    fail_in_ = n;
    after_storing_ = after_storing;
    failed_ = false;
  }
  // Whether the commit fail_commit() named came, and failed.
  bool failed() const { return failed_; }

  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    if (fail_in_ > 0 && --fail_in_ == 0) {
      failed_ = true;
      if (after_storing_) {
        auto stored = inner_.commit(s, std::move(m));
        if (!stored) return stored;
      }
      return imap::SyncError{imap::make_error_code(imap::SyncErrc::sink),
                             after_storing_ ? "stored, then the process died (injected by the test)"
                                            : "disk full (injected by the test)",
                             imap::RetryClass::retry_later};
    }
    return inner_.commit(s, std::move(m));
  }

 private:
  int fail_in_ = 0;
  bool after_storing_ = false;
  bool failed_ = false;
};

// A store with the test directory (test_support.hpp), made once and copied
// for each run that needs a fresh one: importing the directory every time
// would cost more than most runs.
class StoreTemplate {
 public:
  explicit StoreTemplate(const std::filesystem::path& dir) : path_(dir / "template.db") {
    (void)directory_store(path_.string());  // closed again at once
  }
  // A copy at `to`, opened. `to` must not have been a store before (its WAL
  // would be taken for the copy's).
  std::unique_ptr<store::Store> copy(const std::filesystem::path& to) const {
    std::filesystem::copy_file(path_, to);
    // SQLite usually folds the WAL into the file when the last connection
    // closes; should it have kept one, it goes with the copy.
    const std::filesystem::path wal = path_.string() + "-wal";
    if (std::filesystem::exists(wal)) std::filesystem::copy_file(wal, to.string() + "-wal");
    return store::Store::open(to.string()).value();
  }

 private:
  std::filesystem::path path_;
};

// The capture side: a store, the pipeline and an ImapSink over it.
struct Capture {
  explicit Capture(std::unique_ptr<store::Store> store) : st(std::move(store)) {
    capture::Settings s;
    s.owner_addresses = {"user1@example.com"};
    s.internal_domains = {"example.com"};
    auto fm = capture::FreeMailDomains::load();
    if (!fm) throw std::runtime_error(fm.error());
    pipeline = std::make_unique<capture::Pipeline>(*st, *st, s, *fm);
    sink = std::make_unique<capture::ImapSink>(k_fake_mailbox, *pipeline, *st, *st);
    sink->on_warning = [this](const std::string& w) { warnings.push_back(w); };
  }
  std::vector<std::string> warnings;
  std::unique_ptr<store::Store> st;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::ImapSink> sink;
};

// Options for an account of the fake server: plain TCP, LOGIN, INBOX and the
// \Sent folder, and short timeouts, so that a silent server fails a pass in
// about a second (io_timeout) and no command may take more than five.
inline imap::AccountOptions fake_options(const FakeImapServer& server) {
  imap::AccountOptions o;
  o.name = k_fake_mailbox;
  o.transport.host = "127.0.0.1";
  o.transport.port = server.port();
  o.transport.tls = imap::TlsMode::none;  // a scripted peer on loopback
  o.transport.connect_timeout = std::chrono::seconds(2);
  o.transport.io_timeout = std::chrono::seconds(1);
  o.command_timeout = std::chrono::seconds(5);
  o.username = server.user();
  o.auth = imap::AuthMethod::login;
  const std::string pw = server.password();
  o.secret = [pw]() -> imap::SyncResult<std::string> { return pw; };
  o.folders = {"INBOX", "\\Sent"};
  o.compress = imap::AccountOptions::Compress::never;
  return o;
}

// A message of the test mailbox, number `n` (its Message-ID is
// <m`n`@fake.example> unless `with_id` is false). Received from one of a few
// senders (a contact, a company's unknown employee, a stranger, a mailing
// list), or, when `sent`, sent by the owner. `body_bytes` pads the body to
// about that many bytes.
inline std::string fake_mail(std::uint64_t n, bool sent, std::size_t body_bytes = 0,
                             bool with_id = true) {
  static const char* const k_from[] = {"Jane Doe <jane@acme.com>", "hank@globex.com",
                                       "someone@unknown-corp.example", "news@acme.com"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  const std::string num = std::to_string(n);
  std::string h = sent ? "From: user1@example.com\nTo: Peter <peter@initech.com>\n"
                       : "From: " + std::string(k_from[n % 4]) + "\nTo: user1@example.com\n";
  h += "Subject: Note " + num + "\nDate: " + date + "\n";
  if (with_id) h += "Message-ID: <m" + num + "@fake.example>\n";
  if (!sent && n % 4 == 3) h += "List-Id: <news.acme.com>\n";
  std::string body = "Hello,\n\nthis is note " + num + ".\n";
  while (body.size() < body_bytes) body += "A line to make the body longer than one part.\n";
  return message(h, body);
}

// One place of the store at a folder: the activity seen there.
struct Place {
  std::string source_key;
  store::DecisionStatus status = store::DecisionStatus::failed;
  std::string reason;
};

// The places the store holds at `folder` under `uidvalidity`, by UID.
inline std::map<std::int64_t, Place> places(store::Store& st, const std::string& folder,
                                            std::uint32_t uidvalidity) {
  std::map<std::int64_t, Place> out;
  for (const auto& [uid, key] : st.known_uids(k_fake_mailbox, folder, uidvalidity).value()) {
    const auto a = st.by_source_key(key).value();
    Place p{key, store::DecisionStatus::failed, "(no activity under its key)"};
    if (a) {
      p.status = a->status;
      p.reason = a->reason;
    }
    out[uid] = std::move(p);
  }
  return out;
}

// What the store holds against what the server holds, one sentence a
// problem (none: all is well). For every folder with a stored state at the
// server's UIDVALIDITY, every message at or below its mark must have a place
// there, whose activity is decided (captured or skipped), or failed with a
// reason, and failed only where the server gave a cause: it refused the
// message, never sent a readable answer for it, or one answer of it was made
// malformed (FakeImapServer::glitched). With `at_end`, every folder must also
// have such a state whose mark reached the end of the folder (UIDNEXT - 1):
// every message the server holds is then checked.
inline std::vector<std::string> store_problems(store::Store& st, const FakeImapServer& server,
                                               bool at_end) {
  std::vector<std::string> out;
  const std::set<std::uint64_t> glitched = server.glitched();
  for (const FakeFolder& f : server.folders()) {
    const auto cur = st.cursor(k_fake_mailbox, f.name).value();
    if (!cur || cur->uidvalidity != f.uidvalidity) {
      if (at_end) {
        out.push_back(f.name + ": no stored state at UIDVALIDITY " + std::to_string(f.uidvalidity));
      }
      continue;
    }
    if (at_end && cur->highest_uid + 1 < f.uidnext) {
      out.push_back(f.name + ": the mark " + std::to_string(cur->highest_uid) +
                    " is short of UIDNEXT " + std::to_string(f.uidnext));
    }
    const auto held = places(st, f.name, f.uidvalidity);
    for (const FakeMessage& m : f.messages) {
      if (m.uid > cur->highest_uid) continue;
      const std::string which = f.name + ": UID " + std::to_string(m.uid) + " (message " +
                                std::to_string(m.serial) + ", mark " +
                                std::to_string(cur->highest_uid) + ")";
      const auto p = held.find(m.uid);
      if (p == held.end()) {
        out.push_back(which + " is at or below the mark, and not in the store");
        continue;
      }
      if (p->second.status != store::DecisionStatus::failed) continue;
      if (p->second.reason.size() <= std::string_view("failed: ").size()) {
        out.push_back(which + " is failed without a reason: '" + p->second.reason + "'");
      }
      const bool cause = m.refused || m.unreadable || glitched.contains(m.serial);
      if (!cause) {
        out.push_back(which + " is failed, though the server sent it whole: " + p->second.reason);
      }
    }
  }
  return out;
}

// How many file descriptors the process holds open (sockets, store files).
inline std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// A pass's outcome in one line, for traces.
inline std::string outcome_text(const imap::SyncResult<imap::SyncReport>& r) {
  if (!r) return "error (" + r.error().code.message() + "): " + r.error().message;
  std::string s = "ok:";
  for (const auto& f : r->folders) {
    s += " " + f.folder + (f.skipped_unchanged ? " unchanged" : "") + (f.paused ? " paused" : "") +
         (f.uidvalidity_changed ? " new-uidvalidity" : "") + " handed " +
         std::to_string(f.handed_over) + " (known " + std::to_string(f.known) + ");";
  }
  return s;
}

}  // namespace crmcap::test
