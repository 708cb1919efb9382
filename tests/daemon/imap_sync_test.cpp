// SPDX-License-Identifier: Apache-2.0
// The IMAP connector feeding capture, against a real Dovecot started on
// 127.0.0.1 by the fixture: first and second sync, the backfill window, TLS
// trust, a wrong password, a UIDVALIDITY change, a failed batch resumed, the
// server killed mid-sync, new mail arriving through IDLE, and the sink run on
// a thread of its own (as crm-captured runs it).
#include "connectors/imap/imap.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/imap_sink.hpp"
#include "parsers/mail/mail.hpp"
#include "tests/daemon/forwarding_sink.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/dovecot_fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace asio = boost::asio;
using namespace crmcap;

namespace {

template <class T>
T run_on(asio::io_context& io, imap::Awaitable<T> op) {
  std::optional<T> out;
  asio::co_spawn(
      io, [&]() -> imap::Awaitable<void> { out.emplace(co_await std::move(op)); }, asio::detached);
  io.restart();
  io.run();
  return std::move(*out);
}

// Runs account.run() on `io` until the test calls account.stop(), failing the
// test with `timeout_message` (and stopping) if that takes longer than `limit`.
void run_until_stopped(asio::io_context& io, imap::Account& account, std::chrono::seconds limit,
                       const std::string& timeout_message) {
  asio::steady_timer guard(io);
  guard.expires_after(limit);
  guard.async_wait([&](const boost::system::error_code& ec) {
    if (!ec) {
      ADD_FAILURE() << timeout_message;
      account.stop();
    }
  });
  asio::co_spawn(
      io,
      [&]() -> imap::Awaitable<void> {
        co_await account.run();
        guard.cancel();
      },
      asio::detached);
  io.restart();
  io.run();
}

std::string dated(const std::string& mid, const std::string& from, const std::string& subject,
                  const std::string& extra = "") {
  return test::message("From: " + from + "\nTo: user1@example.com\nSubject: " + subject +
                       "\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <" + mid + ">\n" +
                       extra);
}

class ImapSync : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::DovecotServer::available()) GTEST_SKIP() << "dovecot is not installed";
    dovecot = std::make_unique<test::DovecotServer>();
    st = test::directory_store((dir.path() / "capture.db").string());
    capture::Settings s;
    s.owner_addresses = {"user1@example.com"};
    s.internal_domains = {"example.com"};
    auto fm = capture::FreeMailDomains::load();
    ASSERT_TRUE(fm) << fm.error();
    pipeline = std::make_unique<capture::Pipeline>(*st, *st, s, *fm);
    sink = std::make_unique<capture::ImapSink>("work", *pipeline, *st, *st);
    sink->on_warning = [this](const std::string& w) { warnings.push_back(w); };
  }

  imap::AccountOptions options(imap::TlsMode tls = imap::TlsMode::starttls) {
    imap::AccountOptions o;
    o.name = "work";
    o.transport.host = "127.0.0.1";
    o.transport.port =
        tls == imap::TlsMode::implicit ? dovecot->imaps_port() : dovecot->imap_port();
    o.transport.tls = tls;
    o.transport.ca_file = dovecot->ca_file();
    o.transport.io_timeout = std::chrono::seconds(20);
    o.username = dovecot->user();
    const std::string pw = dovecot->password();
    o.secret = [pw]() -> imap::SyncResult<std::string> { return pw; };
    o.folders = {"INBOX", "\\Sent", "Trash"};
    return o;
  }

  imap::SyncResult<imap::SyncReport> sync(const imap::AccountOptions& o) {
    imap::Account account(io.get_executor(), o, *sink);
    return run_on(io, account.sync_once());
  }

  std::vector<store::Activity> activities() { return st->list({}).value(); }

  // Syncs once into `into` (a sink that keeps what it is handed), which must
  // be handed `inbox` messages of INBOX.
  void sync_into(imap::MailSink& into, const imap::AccountOptions& o, std::uint32_t inbox) {
    imap::Account account(io.get_executor(), o, into);
    auto r = run_on(io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    const imap::FolderReport* f = folder(*r, "INBOX");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->handed_over, inbox);
  }

  // Syncs once through a sink whose commit number `fail_at` fails, as a full
  // disk would: the sync must end in that sink error (defined below FailingSink).
  void sync_failing_at_commit(const imap::AccountOptions& o, int fail_at);

  const imap::FolderReport* folder(const imap::SyncReport& r, const std::string& name) {
    for (const auto& f : r.folders) {
      if (f.folder == name) return &f;
    }
    return nullptr;
  }

  void fill_basic() {
    dovecot->deliver_doveadm("INBOX", dated("i1@acme.com", "jane@acme.com", "Renewal"));
    dovecot->deliver_doveadm("INBOX", dated("i2@globex.com", "hank@globex.com", "Pilot"));
    dovecot->deliver_doveadm(
        "INBOX", dated("i3@acme.com", "news@acme.com", "News", "List-Id: <news.acme.com>\n"));
    dovecot->deliver_doveadm(
        "Sent",
        test::message("From: user1@example.com\nTo: peter@initech.com\nSubject: Quote\n"
                      "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <s1@example.com>\n"));
    dovecot->deliver_doveadm("Trash", dated("t1@acme.com", "jane@acme.com", "Deleted"));
  }

  test::TempDir dir;
  std::unique_ptr<test::DovecotServer> dovecot;
  std::unique_ptr<store::Store> st;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::ImapSink> sink;
  std::vector<std::string> warnings;
  asio::io_context io;
};

}  // namespace

TEST_F(ImapSync, FirstSyncCapturesAndSecondSyncDoesNothing) {
  fill_basic();
  // An old message, outside the 90-day backfill window (Maildir keeps the
  // receive time as the file's mtime).
  const std::string old =
      dovecot->deliver_file("INBOX", dated("old@acme.com", "jane@acme.com", "Last year"));
  const time_t long_ago = std::time(nullptr) - 200 * 86400;
  utimbuf times{long_ago, long_ago};
  ASSERT_EQ(utime(old.c_str(), &times), 0);

  auto r = sync(options());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_NE(folder(*r, "INBOX"), nullptr);
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 3u);
  EXPECT_EQ(folder(*r, "Sent")->handed_over, 1u);
  EXPECT_EQ(folder(*r, "Trash"), nullptr);  // Trash is never synced, even when named
  EXPECT_FALSE(warnings.empty());

  auto acts = activities();
  ASSERT_EQ(acts.size(), 4u);
  std::map<std::string, store::Activity> by;
  for (auto& a : acts) by[a.message_id] = a;
  EXPECT_EQ(by.at("i1@acme.com").opportunity_id, "O-1");
  EXPECT_EQ(by.at("i1@acme.com").sources.at(0).mailbox, "work");
  EXPECT_EQ(by.at("i1@acme.com").sources.at(0).folder, "INBOX");
  EXPECT_GT(by.at("i1@acme.com").sources.at(0).uid, 0);
  EXPECT_EQ(by.at("i3@acme.com").rule, "bulk");
  EXPECT_EQ(by.at("s1@example.com").direction, store::Direction::outbound);
  EXPECT_FALSE(by.contains("old@acme.com"));

  // Read-only: nothing was marked \Seen.
  const std::string flags = dovecot->doveadm(
      {"-f", "flow", "fetch", "-u", dovecot->user(), "flags", "mailbox", "INBOX", "all"});
  EXPECT_EQ(flags.find("\\Seen"), std::string::npos) << flags;

  const auto inbox_state = st->cursor("work", "INBOX").value();
  ASSERT_TRUE(inbox_state);
  EXPECT_EQ(inbox_state->uidvalidity, dovecot->uid_validity("INBOX"));

  const auto before = sink->counters().seen;
  auto again = sync(options());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(folder(*again, "INBOX")->skipped_unchanged);
  EXPECT_TRUE(folder(*again, "Sent")->skipped_unchanged);
  EXPECT_EQ(sink->counters().seen, before);
  EXPECT_EQ(activities().size(), 4u);

  // New mail after the first sync is fetched, and only it.
  dovecot->deliver_doveadm("INBOX", dated("i4@initech.com", "peter@initech.com", "Printers"));
  auto third = sync(options());
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(folder(*third, "INBOX")->handed_over, 1u);
  EXPECT_EQ(activities().size(), 5u);
}

TEST_F(ImapSync, ImplicitTlsWorksAndAnUntrustedCertificateIsRefused) {
  fill_basic();
  auto ok = sync(options(imap::TlsMode::implicit));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(activities().size(), 4u);

  auto o = options(imap::TlsMode::implicit);
  o.transport.ca_file.clear();
  auto bad = sync(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().retry, imap::RetryClass::needs_user);
  EXPECT_NE(bad.error().message.find("certificate"), std::string::npos) << bad.error().message;

  auto s = options(imap::TlsMode::starttls);
  s.transport.ca_file.clear();
  auto bad_starttls = sync(s);
  ASSERT_FALSE(bad_starttls);
  EXPECT_EQ(bad_starttls.error().retry, imap::RetryClass::needs_user);
}

TEST_F(ImapSync, CompressDeflateWhenAskedAndNotToLoopbackByDefault) {
  fill_basic();
  auto o = options();
  auto plain = sync(o);  // automatic: the server is on loopback, no compression
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_FALSE(plain->compressed);
  EXPECT_NE(std::find(plain->capabilities.begin(), plain->capabilities.end(), "COMPRESS=DEFLATE"),
            plain->capabilities.end());
  // A fresh store, the same mailbox, compressed: the same activities.
  const auto before = activities();
  st = test::directory_store((dir.path() / "compressed.db").string());
  auto fm = capture::FreeMailDomains::load();
  capture::Settings s;
  s.owner_addresses = {"user1@example.com"};
  s.internal_domains = {"example.com"};
  pipeline = std::make_unique<capture::Pipeline>(*st, *st, s, *fm);
  sink = std::make_unique<capture::ImapSink>("work", *pipeline, *st, *st);
  o.compress = imap::AccountOptions::Compress::always;
  o.batch_size = 2;  // several pipelined round trips through the streams
  auto packed = sync(o);
  ASSERT_TRUE(packed) << packed.error().message;
  EXPECT_TRUE(packed->compressed);
  const auto after = activities();
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].snippet, before[i].snippet);
  }
}

TEST_F(ImapSync, WrongPasswordIsAClearErrorWithoutTheSecret) {
  auto o = options();
  o.secret = []() -> imap::SyncResult<std::string> { return std::string("not-the-pw-4711"); };
  auto r = sync(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, imap::make_error_code(imap::SyncErrc::auth_failed));
  EXPECT_EQ(r.error().retry, imap::RetryClass::needs_user);
  EXPECT_EQ(r.error().message.find("not-the-pw-4711"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("user1"), std::string::npos) << r.error().message;
}

TEST_F(ImapSync, UidValidityChangeRemapsByMessageIdWithoutDuplicates) {
  fill_basic();
  ASSERT_TRUE(sync(options()));
  const auto first = activities();
  dovecot->set_uid_validity("INBOX", 777);
  auto r = sync(options());
  ASSERT_TRUE(r) << r.error().message;
  const auto* inbox = folder(*r, "INBOX");
  ASSERT_NE(inbox, nullptr);
  EXPECT_TRUE(inbox->uidvalidity_changed);
  EXPECT_EQ(inbox->handed_over, 3u);
  EXPECT_EQ(inbox->known, 3u);  // re-mapped by Message-ID, not fetched again
  const auto after = activities();
  ASSERT_EQ(after.size(), first.size());
  EXPECT_EQ(st->cursor("work", "INBOX").value()->uidvalidity, 777);
  EXPECT_EQ(st->known_uids("work", "INBOX", 777).value().size(), 3u);
  // The old places are left as they are: a message outside the backfill
  // window gets no new place, and is still on the server.
  for (const auto& a : after) {
    for (const auto& s : a.sources) EXPECT_TRUE(s.removed_at.empty()) << a.message_id;
  }
}

// QRESYNC: a message expunged on the server keeps its activity (it was still
// sent or received), and its place is marked gone. A pass that finds no new
// mail but an expunge is not skipped by the STATUS pre-check.
TEST_F(ImapSync, AMessageGoneFromTheServerKeepsItsActivityAndItsPlaceIsMarked) {
  fill_basic();
  auto first = sync(options());
  ASSERT_TRUE(first) << first.error().message;
  const auto& caps = first->capabilities;
  ASSERT_NE(std::find(caps.begin(), caps.end(), "QRESYNC"), caps.end());
  auto by_mid = [&] {
    std::map<std::string, store::Activity> m;
    for (auto& a : activities()) m[a.message_id] = a;
    return m;
  };
  const auto before = by_mid();
  const auto uid = before.at("i2@globex.com").sources.at(0).uid;
  dovecot->doveadm(
      {"expunge", "-u", dovecot->user(), "mailbox", "INBOX", "uid", std::to_string(uid)});

  auto r = sync(options());
  ASSERT_TRUE(r) << r.error().message;
  const auto* inbox = folder(*r, "INBOX");
  ASSERT_NE(inbox, nullptr);
  EXPECT_EQ(inbox->vanished, 1u);
  EXPECT_EQ(inbox->handed_over, 0u);
  EXPECT_TRUE(inbox->skipped_unchanged);  // nothing new to fetch
  EXPECT_TRUE(folder(*r, "Sent")->skipped_unchanged);
  EXPECT_EQ(folder(*r, "Sent")->vanished, 0u);
  const auto after = by_mid();
  ASSERT_EQ(after.size(), before.size());
  const std::string gone_at = after.at("i2@globex.com").sources.at(0).removed_at;
  EXPECT_FALSE(gone_at.empty());
  EXPECT_EQ(after.at("i2@globex.com").status, before.at("i2@globex.com").status);
  EXPECT_EQ(after.at("i2@globex.com").opportunity_id, before.at("i2@globex.com").opportunity_id);
  EXPECT_TRUE(after.at("i1@acme.com").sources.at(0).removed_at.empty());
  EXPECT_TRUE(after.at("i3@acme.com").sources.at(0).removed_at.empty());
  EXPECT_TRUE(after.at("s1@example.com").sources.at(0).removed_at.empty());

  // The new HIGHESTMODSEQ was stored with it: the next pass skips the folder.
  auto again = sync(options());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(folder(*again, "INBOX")->skipped_unchanged);
  EXPECT_EQ(folder(*again, "INBOX")->vanished, 0u);
  EXPECT_EQ(by_mid().at("i2@globex.com").sources.at(0).removed_at, gone_at);

  // New mail after the expunge is fetched as before.
  dovecot->deliver_doveadm("INBOX", dated("i5@initech.com", "peter@initech.com", "Toner"));
  auto third = sync(options());
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(folder(*third, "INBOX")->handed_over, 1u);
  EXPECT_EQ(folder(*third, "INBOX")->vanished, 0u);
  EXPECT_EQ(activities().size(), before.size() + 1);
}

// A batch of many new messages is parsed on two threads: every message must
// still get its own decision, in its own place, and one that cannot be parsed
// (here in the second thread's half) a failed row with the reason.
TEST_F(ImapSync, ALargeBatchIsParsedOnTwoThreadsWithEveryMessageInItsPlace) {
  constexpr int kCount = 40;
  constexpr int kCopy = 10;    // a second copy of message 5 (a list's re-send): known, not parsed
  constexpr int kBroken = 30;  // no header block: in the second thread's half
  auto mid = [](int i) { return "p" + std::to_string(i) + "@acme.com"; };
  for (int i = 0; i < kCount; ++i) {
    if (i == kBroken) {
      dovecot->deliver_doveadm("INBOX", "no header block, only text\r\n");
      continue;
    }
    const int n = i == kCopy ? 5 : i;
    dovecot->deliver_doveadm("INBOX", dated(mid(n), n % 2 ? "jane@acme.com" : "hank@globex.com",
                                            "Parallel " + std::to_string(n)));
  }
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 100;  // one batch
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, static_cast<std::uint32_t>(kCount));
  const auto acts = activities();
  ASSERT_EQ(acts.size(), static_cast<std::size_t>(kCount - 1));
  int checked = 0;
  for (const auto& a : acts) {
    ASSERT_FALSE(a.sources.empty());
    const int i = static_cast<int>(a.sources[0].uid) - 1;  // UIDs 1..kCount, in delivery order
    if (i == kBroken) {
      EXPECT_EQ(a.status, store::DecisionStatus::failed);
      EXPECT_EQ(a.rule, "parse");
      EXPECT_NE(a.reason.find("cannot parse the message"), std::string::npos) << a.reason;
    } else {
      EXPECT_EQ(a.message_id, mid(i));
      EXPECT_EQ(a.subject, "Parallel " + std::to_string(i));
      EXPECT_EQ(a.status, store::DecisionStatus::captured) << a.message_id << ": " << a.reason;
      EXPECT_EQ(a.contact_ids.size(), 1u) << a.message_id;
      EXPECT_EQ(a.sources.size(), i == 5 ? 2u : 1u) << a.message_id;
    }
    ++checked;
  }
  EXPECT_EQ(checked, kCount - 1);
}

// Every field of a folder's state survives the store's cursor, and a count
// of refusals the cursor cannot read is dropped (counted afresh), never
// misread.
TEST(ImapCursor, EveryFieldOfAFolderStateSurvivesTheStore) {
  imap::FolderState s;
  s.folder = "Sent";
  s.uidvalidity = 4'000'000'000u;
  s.highest_uid = 77;
  s.highest_modseq = 123456789012ull;
  s.uidnext = 80;
  s.messages = 70;
  s.backfilling = true;
  s.suspect_messages = 3;
  s.refused = {78, 2, 1'795'000'000};
  const imap::FolderState back = capture::from_cursor(capture::to_cursor("work", s));
  EXPECT_EQ(back.folder, s.folder);
  EXPECT_EQ(back.uidvalidity, s.uidvalidity);
  EXPECT_EQ(back.highest_uid, s.highest_uid);
  EXPECT_EQ(back.highest_modseq, s.highest_modseq);
  EXPECT_EQ(back.uidnext, s.uidnext);
  EXPECT_EQ(back.messages, s.messages);
  EXPECT_EQ(back.backfilling, s.backfilling);
  EXPECT_EQ(back.suspect_messages, s.suspect_messages);
  EXPECT_EQ(back.refused, s.refused);
  s.refused = {};
  EXPECT_EQ(capture::to_cursor("work", s).extra.find("refused"), std::string::npos);
  for (const char* bad : {"refused=78,2", "refused=78,x,5", "refused=78,2,5,", "refused="}) {
    store::SyncCursor c = capture::to_cursor("work", s);
    c.extra += std::string(" ") + bad;
    EXPECT_EQ(capture::from_cursor(c).refused, imap::Refusal{}) << bad;
  }
}

namespace {

// A sink that fails the n-th commit, as a full disk would.
class FailingSink final : public test::ForwardingSink {
 public:
  FailingSink(imap::MailSink& inner, int fail_at)
      : test::ForwardingSink(inner), fail_at_(fail_at) {}
  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    if (++commits_ == fail_at_) {
      return imap::SyncError{imap::make_error_code(imap::SyncErrc::sink), "disk full",
                             imap::RetryClass::retry_later};
    }
    if (on_commit) on_commit(commits_);
    return test::ForwardingSink::commit(s, std::move(m));
  }
  std::function<void(int)> on_commit;

 private:
  int fail_at_;
  int commits_ = 0;
};

void ImapSync::sync_failing_at_commit(const imap::AccountOptions& o, int fail_at) {
  FailingSink failing(*sink, fail_at);
  imap::Account account(io.get_executor(), o, failing);
  auto r = run_on(io, account.sync_once());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, imap::make_error_code(imap::SyncErrc::sink)) << r.error().message;
}
}  // namespace

TEST_F(ImapSync, AFailedBatchIsResumedWithoutLossOrDuplicates) {
  for (int i = 0; i < 12; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("b" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Batch " + std::to_string(i)));
  }
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 5;
  ASSERT_NO_FATAL_FAILURE(sync_failing_at_commit(o, 2));
  EXPECT_EQ(activities().size(), 5u);  // the first batch only
  const auto mid = st->cursor("work", "INBOX").value();
  ASSERT_TRUE(mid);
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 7u);
  EXPECT_EQ(activities().size(), 12u);
}

// The same for new mail after a first sync: the folder's UIDNEXT must not
// be stored before the pass's last batch, or the next STATUS pre-check would
// take the folder as unchanged and the rest would wait for more new mail.
TEST_F(ImapSync, AFailedIncrementalBatchIsResumedByTheNextPass) {
  dovecot->deliver_doveadm("INBOX", dated("first@acme.com", "jane@acme.com", "First"));
  auto o = options();
  o.folders = {"INBOX"};
  ASSERT_TRUE(sync(o));
  for (int i = 0; i < 12; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("n" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "New " + std::to_string(i)));
  }
  o.batch_size = 5;
  ASSERT_NO_FATAL_FAILURE(sync_failing_at_commit(o, 2));
  EXPECT_EQ(activities().size(), 6u);  // the first sync and the first batch
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(folder(*r, "INBOX")->skipped_unchanged);
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 7u);
  EXPECT_EQ(activities().size(), 13u);
  auto again = sync(o);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(folder(*again, "INBOX")->skipped_unchanged);
}

// Records the thread of every sink call, then hands it on.
class ThreadRecordingSink final : public test::ForwardingSink {
 public:
  using test::ForwardingSink::ForwardingSink;
  std::optional<imap::FolderState> folder_state(const std::string& f) override {
    note();
    return test::ForwardingSink::folder_state(f);
  }
  std::vector<bool> known_messages(const std::string& f,
                                   const std::vector<imap::MessageKey>& keys) override {
    note();
    ++lookups;
    return test::ForwardingSink::known_messages(f, keys);
  }
  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    note();
    return test::ForwardingSink::commit(s, std::move(m));
  }
  imap::SyncResult<void> removed(const imap::FolderState& s, const imap::UidRanges& u) override {
    note();
    return test::ForwardingSink::removed(s, u);
  }
  void warn(const std::string& w) override {
    note();
    test::ForwardingSink::warn(w);
  }
  std::set<std::thread::id> threads;
  int calls = 0;
  int lookups = 0;  // known_messages() calls

 private:
  void note() {
    threads.insert(std::this_thread::get_id());
    ++calls;
  }
};

// Keeps what the account hands over for each message, and the keys it asks
// about, then hands them on.
class HandedOverSink final : public test::ForwardingSink {
 public:
  using test::ForwardingSink::ForwardingSink;
  std::vector<bool> known_messages(const std::string& f,
                                   const std::vector<imap::MessageKey>& keys) override {
    for (const auto& k : keys) asked.push_back(k.message_id);
    return test::ForwardingSink::known_messages(f, keys);
  }
  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    for (const auto& x : m) by_message_id[x.message_id] = x;
    return test::ForwardingSink::commit(s, std::move(m));
  }
  std::map<std::string, imap::FetchedMessage> by_message_id;
  std::vector<std::string> asked;  // the Message-IDs known_messages() was asked about
};

// A folder's first pass asks the server for no Message-IDs and the sink for
// no known messages (there is nothing to go by); each message's id comes
// from its own header. A later pass asks both, to skip known messages' bytes.
TEST_F(ImapSync, OnlyAFolderSyncedBeforeIsAskedForMessageIdsFirst) {
  dovecot->deliver_doveadm("INBOX", dated("a1@acme.com", "jane@acme.com", "One"));
  dovecot->deliver_doveadm("INBOX", dated("a2@acme.com", "jane@acme.com", "Two"));
  HandedOverSink handed(*sink);
  auto o = options();
  o.folders = {"INBOX"};
  ASSERT_NO_FATAL_FAILURE(sync_into(handed, o, 2));
  EXPECT_TRUE(handed.asked.empty());
  EXPECT_TRUE(handed.by_message_id.contains("<a1@acme.com>"));
  EXPECT_TRUE(handed.by_message_id.contains("<a2@acme.com>"));
  dovecot->deliver_doveadm("INBOX", dated("a3@acme.com", "jane@acme.com", "Three"));
  ASSERT_NO_FATAL_FAILURE(sync_into(handed, o, 1));
  EXPECT_EQ(handed.asked, std::vector<std::string>{"<a3@acme.com>"});
  EXPECT_EQ(activities().size(), 3u);
}

TEST_F(ImapSync, ALargeMessageComesPartByPartWithoutItsAttachment) {
  // 300 KB of attachment after a short text part and a small invitation;
  // with parts cut at 16 KiB the message is fetched by its structure.
  std::string pdf;
  for (int i = 0; pdf.size() < 300'000; ++i)
    pdf += "QVRUQUNITUVOVC1CWVRFUw" + std::to_string(i % 10) + "\n";
  const std::string big =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Contract\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID:\n <big@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
      "--b1\nContent-Type: text/plain; charset=utf-8\n\n"
      "Let us renew the contract for 2027.\n"
      "--b1\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\n\n"
      "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nSUMMARY:Signing\nEND:VEVENT\n"
      "END:VCALENDAR\n"
      "--b1\nContent-Type: application/pdf; name=\"contract.pdf\"\n"
      "Content-Disposition: attachment; filename=\"contract.pdf\"\n"
      "Content-Transfer-Encoding: base64\n\n" +
      pdf + "--b1--\n";
  dovecot->deliver_doveadm("INBOX", big);
  dovecot->deliver_doveadm("INBOX", dated("small@acme.com", "jane@acme.com", "Small"));
  HandedOverSink handed(*sink);
  auto o = options();
  o.max_part_bytes = 16384;
  ASSERT_NO_FATAL_FAILURE(sync_into(handed, o, 2));
  // The Message-ID, unfolded (on a folder's first pass, from the header the
  // message's bytes start with).
  ASSERT_TRUE(handed.by_message_id.contains("<big@acme.com>"));
  const imap::FetchedMessage& m = handed.by_message_id.at("<big@acme.com>");
  EXPECT_TRUE(m.partial);
  EXPECT_LT(m.raw.size(), 4096u);  // the header, the MIME headers and the two text parts
  EXPECT_EQ(m.raw.find("QVRUQUNITUVOVC1CWVRFUw"), std::string::npos);  // no attachment bytes
  EXPECT_NE(m.raw.find("renew the contract"), std::string::npos);
  EXPECT_NE(m.raw.find("SUMMARY:Signing"), std::string::npos);  // a small calendar part comes
  EXPECT_NE(m.raw.find("contract.pdf"), std::string::npos);     // the attachment's headers stay
  const imap::FetchedMessage& small = handed.by_message_id.at("<small@acme.com>");
  EXPECT_FALSE(small.partial);
  EXPECT_NE(small.raw.find("See below."), std::string::npos);

  bool found = false;
  for (const auto& a : activities()) {
    if (a.message_id != "big@acme.com") continue;
    found = true;
    EXPECT_EQ(a.status, store::DecisionStatus::captured) << a.reason;
    EXPECT_NE(a.snippet.find("renew the contract"), std::string::npos) << a.snippet;
  }
  EXPECT_TRUE(found);
}

// Issue 21, case 1, against a real Dovecot: a message nested 70
// multipart/mixed levels deep has a BODYSTRUCTURE past the parser's depth
// limit (64), so its first answer is skipped as unreadable. It is asked again
// without its structure and captured from its header and text; before, the
// folder's mark moved past it and it was lost for good, silently.
TEST_F(ImapSync, AMessageWhoseStructureCannotBeReadIsAskedAgainAndCaptured) {
  std::string nested =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Nested\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <nested@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n";
  constexpr int k_levels = 70;
  for (int i = 1; i < k_levels; ++i) {
    nested += "--b" + std::to_string(i - 1) + "\nContent-Type: multipart/mixed; boundary=\"b" +
              std::to_string(i) + "\"\n\n";
  }
  nested += "--b" + std::to_string(k_levels - 1) +
            "\nContent-Type: text/plain\n\nThe renewal, deep inside.\n";
  for (int i = k_levels - 1; i >= 0; --i) nested += "--b" + std::to_string(i) + "--\n";
  dovecot->deliver_doveadm("INBOX", dated("before@acme.com", "jane@acme.com", "Before"));
  dovecot->deliver_doveadm("INBOX", nested);
  dovecot->deliver_doveadm("INBOX", dated("after@acme.com", "jane@acme.com", "After"));

  auto r = sync(options());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 3u);
  std::map<std::string, store::Activity> by;
  for (auto& a : activities()) by[a.message_id] = a;
  ASSERT_TRUE(by.contains("nested@acme.com"));
  EXPECT_EQ(by.at("nested@acme.com").status, store::DecisionStatus::captured)
      << by.at("nested@acme.com").reason;
  EXPECT_EQ(by.at("nested@acme.com").contact_ids, std::vector<std::string>{"C-1"});
  EXPECT_TRUE(by.contains("before@acme.com"));
  EXPECT_TRUE(by.contains("after@acme.com"));
  auto again = sync(options());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(folder(*again, "INBOX")->skipped_unchanged);
}

// Mail in the \Sent folder went out, whatever its From says (an alias, a
// shared address); the same From in INBOX is mail coming in.
TEST_F(ImapSync, MailInTheSentFolderIsOutboundWhateverItsFrom) {
  dovecot->deliver_doveadm("Sent", dated("alias-out@example.com", "Sales <sales@example.com>",
                                         "Offer", "Cc: jane@acme.com\n"));
  dovecot->deliver_doveadm("INBOX", dated("alias-in@example.com", "Sales <sales@example.com>",
                                          "Offer too", "Cc: jane@acme.com\n"));
  auto r = sync(options());
  ASSERT_TRUE(r) << r.error().message;
  std::map<std::string, store::Activity> by;
  for (auto& a : activities()) by[a.message_id] = a;
  ASSERT_TRUE(by.contains("alias-out@example.com"));
  ASSERT_TRUE(by.contains("alias-in@example.com"));
  EXPECT_EQ(by.at("alias-out@example.com").direction, store::Direction::outbound);
  EXPECT_EQ(by.at("alias-in@example.com").direction, store::Direction::inbound);
}

// A message first found in INBOX (sent from a shared address one is in, or
// Bcc'd to oneself) is decided inbound; its copy in Sent then decides it
// again, as sent, on the Sent folder's first pass and on a later one alike,
// and it stays one activity with both places.
TEST_F(ImapSync, ACopyInSentDecidesAsSentAMessageFirstSeenInInbox) {
  const std::string first =
      dated("shared-1@example.com", "Sales <sales@example.com>", "Offer", "Cc: jane@acme.com\n");
  const std::string later = dated("shared-2@example.com", "Sales <sales@example.com>",
                                  "Offer again", "Cc: jane@acme.com\n");
  dovecot->deliver_doveadm("INBOX", first);
  dovecot->deliver_doveadm("Sent", first);
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  // Sent synced before now: its new message's Message-ID is asked first.
  dovecot->deliver_doveadm("INBOX", later);
  ASSERT_TRUE(sync(o));
  {
    const auto a = st->by_source_key("mid:shared-2@example.com").value();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->direction, store::Direction::inbound);  // only the INBOX copy so far
  }
  dovecot->deliver_doveadm("Sent", later);
  auto again = sync(o);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(folder(*again, "Sent")->known, 0u);  // its bytes came, to be decided
  for (const char* key : {"mid:shared-1@example.com", "mid:shared-2@example.com"}) {
    SCOPED_TRACE(key);
    const auto a = st->by_source_key(key).value();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->direction, store::Direction::outbound);
    ASSERT_EQ(a->sources.size(), 2u);
    EXPECT_EQ(a->sources[0].folder, "INBOX");
    EXPECT_EQ(a->sources[1].folder, "Sent");
  }
  EXPECT_EQ(activities().size(), 2u);
  // Decided as sent, it is known from then on.
  dovecot->deliver_doveadm("Sent", test::message("From: user1@example.com\nTo: jane@acme.com\n"
                                                 "Subject: Unrelated\nDate: Mon, 23 Nov 2026 "
                                                 "11:00:00 +0000\nMessage-ID: <u@example.com>\n"));
  auto third = sync(o);
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(activities().size(), 3u);
}

// A Bcc to oneself: the copy in INBOX (delivered without the Bcc field)
// comes first and is decided as sent (From is the owner), but only the
// sender's copy in Sent lists whom else it went to. That copy decides again,
// and the activity gains the Bcc; the pass counts it once, as captured.
TEST_F(ImapSync, ASentCopyAddsTheBccThatOnlyItLists) {
  const std::string head =
      "From: user1@example.com\nTo: jane@acme.com\nSubject: Proposal\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <bcc-self@example.com>\n";
  dovecot->deliver_doveadm("INBOX", test::message(head));
  dovecot->deliver_doveadm("Sent",
                           test::message(head + "Bcc: user1@example.com, Bob <bob@globex.com>\n"));
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  const auto acts = activities();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].direction, store::Direction::outbound);
  std::vector<std::string> bcc;
  for (const auto& p : acts[0].participants) {
    if (p.role == "bcc") bcc.push_back(p.address);
  }
  EXPECT_NE(std::find(bcc.begin(), bcc.end(), "bob@globex.com"), bcc.end())
      << "Bcc: " << testing::PrintToString(bcc);
  ASSERT_EQ(acts[0].sources.size(), 2u);
  EXPECT_EQ(sink->counters().captured, 1u);
  EXPECT_EQ(sink->counters().decided_again, 1u);
  // Decided from Sent, it is known there from then on (as a copy found
  // again after a UIDVALIDITY change would ask), and in INBOX.
  const imap::MessageKey key{"<bcc-self@example.com>", std::nullopt, true};
  EXPECT_EQ(sink->known_messages("Sent", {key}), std::vector<bool>{true});
  EXPECT_EQ(sink->known_messages("INBOX", {{key.message_id, std::nullopt, false}}),
            std::vector<bool>{true});
  auto second = sync(o);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(sink->counters().decided_again, 1u);
  EXPECT_EQ(activities().size(), 1u);
}

// Gmail keeps one folder, All Mail: a copy received (a Bcc to oneself that
// Gmail did not merge) and the sent copy, each with its own X-GM-MSGID, both
// have their place there. The sent copy still decides the inbound activity
// again, as sent; then it is known.
TEST_F(ImapSync, OnGmailTheSentCopyInAllMailDecidesAgainAnInboundActivity) {
  const std::string all = "[Gmail]/All Mail";
  imap::FetchedMessage in;
  in.uid = 1;
  in.gm_msgid = 1001;
  in.message_id = "<gm-copy@example.com>";
  in.raw = test::message(
      "From: Sales <sales@example.com>\nTo: user1@example.com\nCc: jane@acme.com\n"
      "Subject: Offer\nDate: Mon, 23 Nov 2026 09:00:00 +0000\n"
      "Message-ID: <gm-copy@example.com>\n");
  ASSERT_TRUE(sink->commit(imap::FolderState{all, 7, 1}, {in}));
  ASSERT_EQ(activities().at(0).direction, store::Direction::inbound);
  imap::FetchedMessage sent = in;
  sent.uid = 2;
  sent.gm_msgid = 1002;
  sent.sent = true;
  const imap::MessageKey key{sent.message_id, sent.gm_msgid, true};
  EXPECT_EQ(sink->known_messages(all, {key}), std::vector<bool>{false});
  ASSERT_TRUE(sink->commit(imap::FolderState{all, 7, 2}, {sent}));
  const auto acts = activities();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].direction, store::Direction::outbound);
  EXPECT_EQ(acts[0].sources.size(), 2u);
  EXPECT_EQ(sink->known_messages(all, {key}), std::vector<bool>{true});
  EXPECT_EQ(sink->counters().decided_again, 1u);
}

// A copy in Sent that the server refused to send has no bytes to decide
// again from: it stays a new place of the activity decided from INBOX,
// never a second, failed activity.
TEST_F(ImapSync, ARefusedCopyInSentIsOnlyANewPlace) {
  imap::FetchedMessage in;
  in.uid = 1;
  in.message_id = "<refused-copy@example.com>";
  in.raw = test::message(
      "From: Sales <sales@example.com>\nTo: user1@example.com\nCc: jane@acme.com\n"
      "Subject: Offer\nDate: Mon, 23 Nov 2026 09:00:00 +0000\n"
      "Message-ID: <refused-copy@example.com>\n");
  ASSERT_TRUE(sink->commit(imap::FolderState{"INBOX", 7, 1}, {in}));
  imap::FetchedMessage copy;
  copy.uid = 9;
  copy.message_id = in.message_id;
  copy.sent = true;
  copy.refused = "Some messages could not be FETCHed (Failure)";
  ASSERT_TRUE(sink->commit(imap::FolderState{"Sent", 3, 9}, {copy}));
  const auto acts = activities();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].direction, store::Direction::inbound);
  EXPECT_NE(acts[0].status, store::DecisionStatus::failed);
  ASSERT_EQ(acts[0].sources.size(), 2u);
  EXPECT_EQ(acts[0].sources[1].folder, "Sent");
}

TEST_F(ImapSync, ASmallMessageComesWithoutItsAttachmentAndAllTextComesWhole) {
  // Far below the 64 KiB cut, yet with an attachment: its structure, not its
  // size, decides. Only the text and the attachment's MIME header come.
  const std::string small_pdf =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: NDA\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <nda@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
      "--b1\nContent-Type: text/plain; charset=utf-8\n\n"
      "Please find the signed NDA attached.\n"
      "--b1\nContent-Type: application/pdf; name=\"nda.pdf\"\n"
      "Content-Disposition: attachment; filename=\"nda.pdf\"\n"
      "Content-Transfer-Encoding: base64\n\n"
      "JVBERi0xLjQKTkRBLUJZVEVTLU5EQS1CWVRFUwo=\n"
      "--b1--\n";
  // Text only, all of it read: nothing to leave out, so one whole fetch.
  const std::string two_texts =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Pricing\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <two@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"m1\"\n\n"
      "This is a preamble.\n"
      "--m1\nContent-Type: text/plain; charset=utf-8\n\nThe price is 40 EUR a seat.\n"
      "--m1\nContent-Type: text/plain; charset=utf-8\n\nIt holds until June.\n"
      "--m1--\n";
  dovecot->deliver_doveadm("INBOX", small_pdf);
  dovecot->deliver_doveadm("INBOX", two_texts);
  HandedOverSink handed(*sink);
  ASSERT_NO_FATAL_FAILURE(sync_into(handed, options(), 2));
  ASSERT_TRUE(handed.by_message_id.contains("<nda@acme.com>"));
  const imap::FetchedMessage& nda = handed.by_message_id.at("<nda@acme.com>");
  EXPECT_TRUE(nda.partial);
  EXPECT_EQ(nda.raw.find("JVBERi0xLjQ"), std::string::npos) << nda.raw;  // no attachment bytes
  EXPECT_NE(nda.raw.find("signed NDA attached"), std::string::npos) << nda.raw;
  EXPECT_NE(nda.raw.find("filename=\"nda.pdf\""), std::string::npos) << nda.raw;
  ASSERT_TRUE(handed.by_message_id.contains("<two@acme.com>"));
  const imap::FetchedMessage& two = handed.by_message_id.at("<two@acme.com>");
  EXPECT_FALSE(two.partial);
  EXPECT_NE(two.raw.find("This is a preamble."), std::string::npos) << two.raw;  // byte for byte
  EXPECT_NE(two.raw.find("It holds until June."), std::string::npos) << two.raw;

  const auto stored = st->by_source_key("mid:nda@acme.com").value();
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->status, store::DecisionStatus::captured) << stored->reason;
  EXPECT_NE(stored->snippet.find("signed NDA attached"), std::string::npos) << stored->snippet;
}

// Of a multipart/alternative with a large unread alternative, only the one
// capture takes its text from comes (text/plain before HTML, as the parser
// chooses), and calendar parts wherever they are: the HTML beside a
// text/plain is not fetched, and capture reads what it reads of the whole.
// A small one still comes whole (k_whole_despite_alternatives).
TEST_F(ImapSync, TheHtmlBesideATextPlainIsNotFetchedAndCaptureReadsTheSame) {
  std::string html_bytes = "<p style=\"color:#123456\">HTML-ONLY-BYTES</p>\n";
  while (html_bytes.size() < 20000) html_bytes += "<p>Our newsletter, in full colour.</p>\n";
  const std::string invite =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Pricing call\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <inv@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"a1\"\n\n"
      "--a1\nContent-Type: text/plain; charset=utf-8\n\nThe price is 40 EUR a seat.\n"
      "--a1\nContent-Type: text/html; charset=utf-8\n\n" +
      html_bytes +
      "--a1\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\n\n"
      "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:call-1@acme.com\n"
      "DTSTART:20261124T100000Z\nDTEND:20261124T103000Z\nSUMMARY:Pricing call\n"
      "END:VEVENT\nEND:VCALENDAR\n"
      "--a1--\n";
  // HTML only: then it is the text, and it comes.
  const std::string html_only =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Pricing\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <html@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"a2\"\n\n"
      "--a2\nContent-Type: text/html; charset=utf-8\n\n<p>Only HTML here.</p>\n"
      "--a2--\n";
  // A small HTML beside the text/plain: the message comes whole.
  const std::string small_html =
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Pricing\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <small@acme.com>\n"
      "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"a3\"\n\n"
      "--a3\nContent-Type: text/plain; charset=utf-8\n\nSee you Tuesday.\n"
      "--a3\nContent-Type: text/html; charset=utf-8\n\n<p>See you <b>Tuesday</b>.</p>\n"
      "--a3--\n";
  dovecot->deliver_doveadm("INBOX", small_html);
  dovecot->deliver_doveadm("INBOX", invite);
  dovecot->deliver_doveadm("INBOX", html_only);
  HandedOverSink handed(*sink);
  ASSERT_NO_FATAL_FAILURE(sync_into(handed, options(), 3));
  ASSERT_TRUE(handed.by_message_id.contains("<small@acme.com>"));
  const imap::FetchedMessage& small = handed.by_message_id.at("<small@acme.com>");
  EXPECT_FALSE(small.partial);
  EXPECT_NE(small.raw.find("<b>Tuesday</b>"), std::string::npos) << small.raw;
  ASSERT_TRUE(handed.by_message_id.contains("<inv@acme.com>"));
  const imap::FetchedMessage& inv = handed.by_message_id.at("<inv@acme.com>");
  EXPECT_TRUE(inv.partial);
  EXPECT_EQ(inv.raw.find("HTML-ONLY-BYTES"), std::string::npos) << inv.raw;
  EXPECT_NE(inv.raw.find("Content-Type: text/html"), std::string::npos) << inv.raw;
  EXPECT_NE(inv.raw.find("The price is 40 EUR a seat."), std::string::npos) << inv.raw;
  EXPECT_NE(inv.raw.find("UID:call-1@acme.com"), std::string::npos) << inv.raw;
  ASSERT_TRUE(handed.by_message_id.contains("<html@acme.com>"));
  const imap::FetchedMessage& html = handed.by_message_id.at("<html@acme.com>");
  EXPECT_FALSE(html.partial);
  EXPECT_NE(html.raw.find("Only HTML here."), std::string::npos) << html.raw;

  // What capture reads of the parts fetched is what it reads of the whole.
  for (const auto& [whole_raw, fetched] :
       {std::pair{test::message(invite), &inv}, std::pair{test::message(html_only), &html}}) {
    SCOPED_TRACE(fetched->message_id);
    const auto whole = mail::parse(whole_raw);
    const auto parts = mail::parse(fetched->raw);
    ASSERT_TRUE(whole && parts);
    EXPECT_EQ(parts->text, whole->text);
    EXPECT_EQ(parts->snippet, whole->snippet);
    EXPECT_EQ(parts->attachments, whole->attachments);
    EXPECT_EQ(parts->warnings, whole->warnings);
    EXPECT_EQ(parts->body_error, whole->body_error);
    ASSERT_EQ(parts->calendar_parts.size(), whole->calendar_parts.size());
    for (std::size_t i = 0; i < whole->calendar_parts.size(); ++i) {
      EXPECT_EQ(parts->calendar_parts[i].uid, whole->calendar_parts[i].uid);
      EXPECT_EQ(parts->calendar_parts[i].text, whole->calendar_parts[i].text);
    }
  }
  EXPECT_EQ(mail::parse(inv.raw)->calendar_parts.size(), 1u);
  EXPECT_LT(inv.raw.size(), 2000u) << inv.raw;
  // The invitation's row and its meeting's (rule 6), and the two others.
  EXPECT_EQ(activities().size(), 4u);
}

// An io_context on a thread of its own, as crm-captured runs capture.
class SinkThread {
 public:
  SinkThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~SinkThread() {
    work_.reset();
    thread_.join();
  }
  asio::any_io_executor executor() { return io_.get_executor(); }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

TEST_F(ImapSync, WithASinkExecutorEverySinkCallRunsThereAndNothingIsLostOrDoubled) {
  for (int i = 0; i < 30; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("x" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Overlap " + std::to_string(i)));
  }
  SinkThread worker;
  const asio::any_io_executor ex = worker.executor();
  auto o = options();
  o.folders = {"INBOX", "Missing"};  // one warning, from the sink's thread too
  o.batch_size = 4;                  // 8 batches, overlapping
  o.sink_executor = &ex;
  ThreadRecordingSink recording(*sink);
  {
    imap::Account account(io.get_executor(), o, recording);
    auto r = run_on(io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(folder(*r, "INBOX")->handed_over, 30u);
  }
  EXPECT_EQ(activities().size(), 30u);
  EXPECT_EQ(st->cursor("work", "INBOX").value()->highest_uid, 30);
  EXPECT_EQ(recording.threads, std::set<std::thread::id>{worker.id()});
  // The state, 8 commits and a warning; a first pass looks up no known
  // messages (it has no Message-IDs to go by).
  EXPECT_GE(recording.calls, 1 + 8 + 1);
  EXPECT_EQ(recording.lookups, 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("Missing"), std::string::npos);
  {
    // A second pass finds nothing new.
    imap::Account again(io.get_executor(), o, recording);
    auto r = run_on(io, again.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(folder(*r, "INBOX")->skipped_unchanged);
    EXPECT_EQ(activities().size(), 30u);
  }
  // A third, after new mail, looks its batches up, there too.
  for (int i = 30; i < 38; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("x" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Overlap " + std::to_string(i)));
  }
  const int before = recording.lookups;
  imap::Account third(io.get_executor(), o, recording);
  auto r = run_on(io, third.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 8u);
  EXPECT_EQ(recording.lookups - before, 2);  // one for each batch of 4
  EXPECT_EQ(recording.threads, std::set<std::thread::id>{worker.id()});
  EXPECT_EQ(activities().size(), 38u);
}

TEST_F(ImapSync, WithASinkExecutorAFailedCommitStopsAtTheLastGoodBatch) {
  for (int i = 0; i < 20; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("y" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Fail " + std::to_string(i)));
  }
  SinkThread worker;
  const asio::any_io_executor ex = worker.executor();
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 4;
  o.sink_executor = &ex;
  // The third commit fails while batch 4 is being read.
  ASSERT_NO_FATAL_FAILURE(sync_failing_at_commit(o, 3));
  EXPECT_EQ(activities().size(), 8u);
  EXPECT_EQ(st->cursor("work", "INBOX").value()->highest_uid, 8);
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 12u);
  EXPECT_EQ(activities().size(), 20u);
}

namespace {

// A loopback TCP relay to a server that keeps every byte its clients send:
// what an account asked the server, and when. (Plain text only.)
class Relay {
 public:
  explicit Relay(std::uint16_t target) : target_(target) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(0);
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 4) != 0) {
      throw std::runtime_error(std::string("relay: ") + std::strerror(errno));
    }
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  std::uint16_t port() const { return port_; }
  bool client_sent(std::string_view what) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return sent_.find(what) != std::string::npos;
  }

 private:
  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }

  void serve() {
    struct Pair {
      int client, server;
    };
    std::vector<Pair> pairs;
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (const auto& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        Pair& p = pairs[i];
        for (const bool from_client : {true, false}) {
          if (p.client < 0 ||
              !(fds[1 + 2 * i + (from_client ? 0 : 1)].revents & (POLLIN | POLLHUP)))
            continue;
          char buf[65536];
          const ssize_t n = ::read(from_client ? p.client : p.server, buf, sizeof buf);
          if (n <= 0 || !write_all(from_client ? p.server : p.client, buf, n)) {
            ::close(p.client);
            ::close(p.server);
            p.client = p.server = -1;
            continue;
          }
          if (from_client) {
            const std::lock_guard<std::mutex> lock(mutex_);
            sent_.append(buf, static_cast<std::size_t>(n));
          }
        }
      }
      std::erase_if(pairs, [](const Pair& p) { return p.client < 0; });
      if (fds[0].revents & POLLIN) {
        const int c = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        const int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(target_);
        if (c >= 0 && u >= 0 && ::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          pairs.push_back({c, u});
        } else {
          if (c >= 0) ::close(c);
          if (u >= 0) ::close(u);
        }
      }
    }
    for (const auto& p : pairs) {
      ::close(p.client);
      ::close(p.server);
    }
  }

  static bool write_all(int fd, const char* p, ssize_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, static_cast<std::size_t>(n));
      if (w <= 0) return false;
      p += w;
      n -= w;
    }
    return true;
  }

  std::uint16_t target_;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::string sent_;  // under mutex_
  std::thread thread_;
};

// Holds the commit of INBOX's last batch until the relay has seen the account
// ask the server for the next folder (or 10 s have passed), and records the
// order of the commits.
class HoldingSink final : public test::ForwardingSink {
 public:
  HoldingSink(imap::MailSink& inner, const Relay& relay)
      : test::ForwardingSink(inner), relay_(relay) {}
  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    if (s.folder == "INBOX" && s.uidnext != 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!relay_.client_sent("EXAMINE Sent") && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      next_folder_asked_first = relay_.client_sent("EXAMINE Sent");
    }
    commits.emplace_back(s.folder, s.highest_uid);
    return test::ForwardingSink::commit(s, std::move(m));
  }
  bool next_folder_asked_first = false;
  std::vector<std::pair<std::string, std::uint32_t>> commits;  // folder, new mark

 private:
  const Relay& relay_;
};

}  // namespace

// Between folders neither side waits for the other: the account asks the
// server for the next folder while the sink still commits the last batches
// of the one before. Each folder's commits still come in order, and the
// next folder's only after them.
TEST_F(ImapSync, TheNextFolderStartsWhileTheFolderBeforeIsStillBeingCommitted) {
  for (int i = 0; i < 12; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("z" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Folder " + std::to_string(i)));
  }
  for (int i = 0; i < 3; ++i) {
    dovecot->deliver_doveadm(
        "Sent", test::message("From: user1@example.com\nTo: peter@initech.com\nSubject: Quote " +
                              std::to_string(i) +
                              "\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <zs" +
                              std::to_string(i) + "@example.com>\n"));
  }
  Relay relay(dovecot->imap_port());
  SinkThread worker;
  const asio::any_io_executor ex = worker.executor();
  auto o = options(imap::TlsMode::none);
  o.transport.port = relay.port();
  o.folders = {"INBOX", "\\Sent"};
  o.batch_size = 4;  // 3 batches in INBOX
  o.sink_executor = &ex;
  HoldingSink holding(*sink, relay);
  {
    imap::Account account(io.get_executor(), o, holding);
    auto r = run_on(io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(folder(*r, "INBOX")->handed_over, 12u);
    EXPECT_EQ(folder(*r, "Sent")->handed_over, 3u);
  }
  EXPECT_TRUE(holding.next_folder_asked_first);
  using Commit = std::pair<std::string, std::uint32_t>;
  EXPECT_EQ(holding.commits,
            (std::vector<Commit>{{"INBOX", 4}, {"INBOX", 8}, {"INBOX", 12}, {"Sent", 3}}));
  EXPECT_EQ(activities().size(), 15u);
  EXPECT_EQ(st->cursor("work", "INBOX").value()->highest_uid, 12);
  EXPECT_EQ(st->cursor("work", "Sent").value()->highest_uid, 3);
}

// A failure of a folder's last commits, while the next folder has started,
// fails the pass with the sink's error; the folder's mark stays at its last
// good batch, the next folder's last batch is left uncommitted, and the
// next pass stores the rest, each message once.
TEST_F(ImapSync, AFailedLastCommitOfAFolderFailsThePassAndTheNextPassLosesNothing) {
  for (int i = 0; i < 12; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("w" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Tail " + std::to_string(i)));
  }
  dovecot->deliver_doveadm(
      "Sent",
      test::message("From: user1@example.com\nTo: peter@initech.com\nSubject: Quote\n"
                    "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <ws@example.com>\n"));
  SinkThread worker;
  const asio::any_io_executor ex = worker.executor();
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  o.batch_size = 4;
  o.sink_executor = &ex;
  // Commit 2 is INBOX's second batch, the first of the two left to commit
  // while Sent starts.
  ASSERT_NO_FATAL_FAILURE(sync_failing_at_commit(o, 2));
  EXPECT_EQ(activities().size(), 4u);
  EXPECT_EQ(st->cursor("work", "INBOX").value()->highest_uid, 4);
  EXPECT_FALSE(st->cursor("work", "Sent").value());
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 8u);
  EXPECT_EQ(folder(*r, "Sent")->handed_over, 1u);
  EXPECT_EQ(activities().size(), 13u);
}

// A copy of a message in the next batch (here a mailing list's re-send of
// it) is still only a new place, and never overwrites the decision on the
// first copy. (A folder's first pass: the account asks nothing, and the sink
// finds the copy by the Message-ID in its bytes when it commits.)
TEST_F(ImapSync, ACopyInTheNextBatchIsANewPlaceNotANewDecision) {
  dovecot->deliver_doveadm("INBOX", dated("dup@acme.com", "jane@acme.com", "Renewal"));
  dovecot->deliver_doveadm("INBOX", dated("dup@acme.com", "jane@acme.com", "[list] Renewal",
                                          "List-Id: <sales.acme.com>\n"));
  dovecot->deliver_doveadm("INBOX", dated("other@acme.com", "jane@acme.com", "Other"));
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 1;
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 3u);
  const auto acts = activities();
  ASSERT_EQ(acts.size(), 2u);
  const auto dup = st->by_source_key("mid:dup@acme.com").value();
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, store::DecisionStatus::captured) << dup->reason;
  EXPECT_EQ(dup->subject, "Renewal");
  EXPECT_EQ(dup->sources.size(), 2u);
}

TEST_F(ImapSync, ACopyWhoseMessageIdHasACommentAndFoldingIsKnownByTheParsersKey) {
  // The same message in INBOX and, later, in Archive, its Message-ID folded
  // and with a comment. Archive was synced before, so the first fetch reads
  // the field's text; the copy must be known by the key its activity was
  // stored under ("mid:" + the parser's id), so its bytes are not fetched
  // again and the first decision stays. (A copy in Sent would be decided
  // again, as sent: ACopyInSentDecidesAsSentAMessageFirstSeenInInbox.)
  const std::string raw = test::message(
      "From: jane@acme.com\nTo: user1@example.com\nSubject: Renewal\n"
      "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID:\n <odd.id@acme.com> (sent by Acme)\n");
  dovecot->doveadm({"mailbox", "create", "-u", dovecot->user(), "Archive"});
  auto o = options();
  o.folders = {"INBOX", "Archive"};
  dovecot->deliver_doveadm("INBOX", raw);
  auto first = sync(o);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(folder(*first, "INBOX")->handed_over, 1u);
  EXPECT_EQ(folder(*first, "INBOX")->known, 0u);
  dovecot->deliver_doveadm("Archive", raw);
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "Archive")->handed_over, 1u);
  EXPECT_EQ(folder(*r, "Archive")->known, 1u);
  const auto a = st->by_source_key("mid:odd.id@acme.com").value();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sources.size(), 2u);
  EXPECT_EQ(activities().size(), 1u);
}

// On a folder's first pass the first fetch asks no Message-IDs (the server
// would read every message's header for it): a copy of a message of a folder
// synced just before comes whole, and is known by the Message-ID in its own
// header. Here the copy is a mailing list's re-send: decided again, it would
// be skipped as bulk and overwrite the first decision.
TEST_F(ImapSync, OnAFoldersFirstPassACopyComesWholeAndIsStillOnlyANewPlace) {
  dovecot->doveadm({"mailbox", "create", "-u", dovecot->user(), "Archive"});
  dovecot->deliver_doveadm("INBOX", dated("dup@acme.com", "jane@acme.com", "Renewal"));
  dovecot->deliver_doveadm("Archive", dated("dup@acme.com", "jane@acme.com", "[list] Renewal",
                                            "List-Id: <sales.acme.com>\n"));
  auto o = options();
  o.folders = {"INBOX", "Archive"};
  auto r = sync(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(folder(*r, "INBOX")->handed_over, 1u);
  EXPECT_EQ(folder(*r, "Archive")->handed_over, 1u);
  EXPECT_EQ(folder(*r, "Archive")->known, 0u);  // its bytes came
  ASSERT_EQ(activities().size(), 1u);
  const auto dup = st->by_source_key("mid:dup@acme.com").value();
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, store::DecisionStatus::captured) << dup->reason;
  EXPECT_EQ(dup->subject, "Renewal");
  EXPECT_EQ(dup->sources.size(), 2u);
}

TEST_F(ImapSync, ServerKilledMidSyncEndsInACleanRetryableError) {
  for (int i = 0; i < 12; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("k" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Kill " + std::to_string(i)));
  }
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 4;
  o.transport.io_timeout = std::chrono::seconds(5);
  FailingSink killing(*sink, -1);
  killing.on_commit = [this](int n) {
    if (n == 1) {
      // Every Dovecot process of this instance: the imap (and other) children
      // of its master, then the master.
      test::detail::run({"pkill", "-KILL", "-P", std::to_string(dovecot->pid())});
      ::kill(dovecot->pid(), SIGKILL);
    }
  };
  imap::Account account(io.get_executor(), o, killing);
  auto r = run_on(io, account.sync_once());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().retry, imap::RetryClass::retry_later) << r.error().message;
  // Whole batches only, and the mark says exactly which: the first batch
  // committed before the kill; the one whose bytes had already arrived may
  // have been committed after it (the fetch runs a batch ahead); not all.
  const auto stored = activities().size();
  EXPECT_GE(stored, 4u);
  EXPECT_LT(stored, 12u);
  EXPECT_EQ(stored % 4, 0u);
  EXPECT_EQ(st->cursor("work", "INBOX").value()->highest_uid, static_cast<std::int64_t>(stored));
}

TEST_F(ImapSync, NewMailArrivesThroughIdle) {
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(600);
  o.compress = imap::AccountOptions::Compress::always;  // IDLE and DONE through deflate
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  std::chrono::steady_clock::time_point delivered;
  std::chrono::milliseconds latency{0};
  account.on_synced = [&](const imap::SyncReport&) {
    ++passes;
    if (passes == 1) {
      // Deliver once the first pass is done and IDLE is about to start.
      asio::co_spawn(
          io,
          [&]() -> imap::Awaitable<void> {
            asio::steady_timer t(io, std::chrono::milliseconds(300));
            co_await t.async_wait(asio::use_awaitable);
            delivered = std::chrono::steady_clock::now();
            dovecot->deliver_doveadm("INBOX", dated("idle@acme.com", "jane@acme.com", "Pushed"));
          },
          asio::detached);
    } else if (!activities().empty()) {
      latency = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - delivered);
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(30), "no activity 30 s after delivery");
  ASSERT_EQ(activities().size(), 1u);
  EXPECT_EQ(activities()[0].message_id, "idle@acme.com");
  std::printf("IDLE: delivery to stored activity in %lld ms\n",
              static_cast<long long>(latency.count()));
}

// IDLE is silent until new mail comes (Dovecot's keep-alive comes every
// 2 minutes): a wait longer than timeout_seconds is no failure, and the mail
// that ends it is taken on the same connection.
TEST_F(ImapSync, IdleOutlastsTimeoutSecondsWithoutReconnecting) {
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(600);
  o.transport.io_timeout = std::chrono::seconds(1);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  account.on_synced = [&](const imap::SyncReport&) {
    if (++passes == 1) {
      asio::co_spawn(
          io,
          [&]() -> imap::Awaitable<void> {
            asio::steady_timer t(io, std::chrono::milliseconds(3500));
            co_await t.async_wait(asio::use_awaitable);
            dovecot->deliver_doveadm("INBOX", dated("quiet@acme.com", "jane@acme.com", "Late"));
          },
          asio::detached);
    } else if (!activities().empty()) {
      account.stop();
    }
  };
  int failures = 0;
  account.on_failure = [&](const imap::SyncError& e) {
    ++failures;
    ADD_FAILURE() << e.message;
  };
  run_until_stopped(io, account, std::chrono::seconds(30), "no activity 30 s after delivery");
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(passes, 2);  // the first pass, then INBOX on the IDLE's news: no reconnect
  ASSERT_EQ(activities().size(), 1u);
}

// wake() (POST /v1/sync) ends the wait for new mail and syncs every folder
// now: from IDLE on INBOX, and from the sleep until the next poll of an
// account without INBOX (no IDLE). Mail put in Sent is never announced by
// IDLE, and the next poll is 10 minutes away: only the wake can bring it.
TEST_F(ImapSync, AWakeSyncsEveryFolderNowFromIdleOrFromTheSleepUntilThePoll) {
  // Without NOTIFY, which would announce the mail in Sent.
  dovecot = std::make_unique<test::DovecotServer>(1, std::vector<std::string>{"--no-notify"});
  for (const bool idle : {true, false}) {
    SCOPED_TRACE(idle ? "from IDLE" : "from the sleep");
    auto o = options();
    o.folders =
        idle ? std::vector<std::string>{"INBOX", "\\Sent"} : std::vector<std::string>{"\\Sent"};
    o.poll_interval = std::chrono::seconds(600);
    imap::Account account(io.get_executor(), o, *sink);
    int passes = 0;
    const std::string mid = idle ? "woken@example.com" : "slept@example.com";
    account.on_synced = [&](const imap::SyncReport&) {
      if (++passes == 1) {
        // Once the account waits (IDLE has begun, or the sleep).
        asio::co_spawn(
            io,
            [&]() -> imap::Awaitable<void> {
              dovecot->deliver_doveadm(
                  "Sent", test::message("From: user1@example.com\nTo: jane@acme.com\n"
                                        "Subject: Woken\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n"
                                        "Message-ID: <" +
                                        mid + ">\n"));
              asio::steady_timer t(io, std::chrono::milliseconds(500));
              co_await t.async_wait(asio::use_awaitable);
              account.wake();
            },
            asio::detached);
      } else {
        account.stop();
      }
    };
    account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
    run_until_stopped(io, account, std::chrono::seconds(20), "no pass 20 s after the wake");
    EXPECT_EQ(passes, 2);
    bool found = false;
    for (const auto& a : activities()) found = found || a.message_id == mid;
    EXPECT_TRUE(found);
  }
}

// A wake during a pass is not lost: the next pass follows at once, without
// waiting for new mail or the poll.
TEST_F(ImapSync, AWakeDuringAPassStartsAnotherRightAfterIt) {
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(600);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  account.on_synced = [&](const imap::SyncReport&) {
    if (++passes == 1) {
      account.wake();  // the session reports the pass, then goes on
    } else {
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(20), "no second pass within 20 s");
  EXPECT_EQ(passes, 2);
}

// A wake while the account waits to reconnect after a failure tries now.
TEST_F(ImapSync, AWakeEndsTheWaitBeforeAReconnect) {
  auto o = options();
  o.transport.port = 1;  // nothing listens: the connect fails, retry_later
  imap::Account account(io.get_executor(), o, *sink);
  int failures = 0;
  std::chrono::milliseconds delay{0};
  std::chrono::steady_clock::time_point first;
  account.on_failure = [&](const imap::SyncError&) {
    if (++failures == 2) {
      delay = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - first);
      account.stop();
    }
  };
  account.on_retry = [&](std::chrono::milliseconds d) {
    if (failures == 1) {
      first = std::chrono::steady_clock::now();
      EXPECT_GE(d, std::chrono::milliseconds(800));  // 1 s less 20 % jitter
      asio::post(io, [&] { account.wake(); });
    }
  };
  run_until_stopped(io, account, std::chrono::seconds(20), "no second attempt within 20 s");
  EXPECT_EQ(failures, 2);
  EXPECT_LT(delay, std::chrono::milliseconds(800));
}

// Mail that lands after a pass read INBOX but before IDLE starts is reported
// by the EXAMINE before IDLE, and never again by IDLE: it is synced at once,
// not at the next poll.
TEST_F(ImapSync, MailBetweenAPassAndIdleIsNotLeftForThePoll) {
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(600);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  account.on_synced = [&](const imap::SyncReport&) {
    if (++passes == 1) {
      // Synchronously: the account goes on (EXAMINE, then IDLE) only after this.
      dovecot->deliver_doveadm("INBOX", dated("gap@acme.com", "jane@acme.com", "In the gap"));
    } else if (!activities().empty()) {
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(20), "mail of the gap not synced in 20 s");
  ASSERT_EQ(activities().size(), 1u);
  EXPECT_EQ(activities()[0].message_id, "gap@acme.com");
}

// IDLE ends when the next poll is due, DONE written while its read still
// waits (through deflate here), the poll's pass runs, and IDLE starts again:
// twice. An IDLE that never ended would leave the second pass to the guard.
TEST_F(ImapSync, IdleEndsWhenAPollIsDueAndStartsAgainAfterIt) {
  fill_basic();
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(2);
  o.compress = imap::AccountOptions::Compress::always;
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  std::chrono::steady_clock::time_point first;
  std::chrono::milliseconds polls{0};
  std::uint32_t handed_over = 0;
  account.on_synced = [&](const imap::SyncReport& r) {
    for (const auto& f : r.folders) handed_over += f.handed_over;
    if (++passes == 1) first = std::chrono::steady_clock::now();
    if (passes == 3) {
      polls = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - first);
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(30), "no two polls within 30 s");
  EXPECT_EQ(passes, 3);
  // Two polls, 2 s apart, each after an IDLE that lasted until it.
  EXPECT_GE(polls, std::chrono::milliseconds(3500));
  EXPECT_EQ(handed_over, 3u);  // by the first pass; the polls found nothing new
}

// With QRESYNC, IDLE hears of an expunge too (VANISHED), and the place is
// marked gone without waiting for the next poll.
TEST_F(ImapSync, AnExpungeArrivesThroughIdle) {
  // Three messages, one of which goes: a folder that lost most of its mail
  // would pause once instead (the plan's tests cover that).
  dovecot->deliver_doveadm("INBOX", dated("bye@acme.com", "jane@acme.com", "Going"));
  dovecot->deliver_doveadm("INBOX", dated("stay1@acme.com", "jane@acme.com", "Staying"));
  dovecot->deliver_doveadm("INBOX", dated("stay2@acme.com", "jane@acme.com", "Staying too"));
  auto o = options();
  o.folders = {"INBOX"};
  o.poll_interval = std::chrono::seconds(600);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  std::uint32_t vanished = 0;
  account.on_synced = [&](const imap::SyncReport& r) {
    ++passes;
    for (const auto& f : r.folders) vanished += f.vanished;
    if (passes == 1) {
      asio::co_spawn(
          io,
          [&]() -> imap::Awaitable<void> {
            asio::steady_timer t(io, std::chrono::milliseconds(300));
            co_await t.async_wait(asio::use_awaitable);
            const auto bye = st->by_source_key("mid:bye@acme.com").value();
            if (!bye) co_return;  // checked below
            dovecot->doveadm({"expunge", "-u", dovecot->user(), "mailbox", "INBOX", "uid",
                              std::to_string(bye->sources.at(0).uid)});
          },
          asio::detached);
    } else if (vanished > 0) {
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(30), "no VANISHED 30 s after the expunge");
  EXPECT_EQ(activities().size(), 3u);
  EXPECT_EQ(vanished, 1u);
  for (const auto& a : activities()) {
    EXPECT_EQ(a.sources.at(0).removed_at.empty(), a.message_id != "bye@acme.com") << a.message_id;
  }
}

std::string sent_message(const std::string& mid) {
  return test::message("From: user1@example.com\nTo: jane@acme.com\nSubject: Sent " + mid +
                       "\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <" + mid + ">\n");
}

bool captured(const std::vector<store::Activity>& acts, const std::string& mid) {
  return std::any_of(acts.begin(), acts.end(), [&](const auto& a) { return a.message_id == mid; });
}

// NOTIFY (RFC 5465): mail put in Sent while the account IDLEs on INBOX is
// announced and captured at once, twice in a row (the folder synced, then
// asked again once INBOX is selected, then announced again). The poll is an
// hour away: only the announcement can bring it.
TEST_F(ImapSync, MailInSentArrivesThroughNotifyWhileIdle) {
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  o.poll_interval = std::chrono::seconds(3600);
  imap::Account account(io.get_executor(), o, *sink);
  const std::vector<std::string> mids = {"notified1@example.com", "notified2@example.com"};
  std::size_t delivered = 0;
  std::chrono::steady_clock::time_point at;
  std::vector<std::chrono::milliseconds> latencies;
  const auto deliver_soon = [&] {
    asio::co_spawn(
        io,
        [&]() -> imap::Awaitable<void> {
          asio::steady_timer t(io, std::chrono::milliseconds(500));
          co_await t.async_wait(asio::use_awaitable);
          at = std::chrono::steady_clock::now();
          dovecot->deliver_doveadm("Sent", sent_message(mids[delivered++]));
        },
        asio::detached);
  };
  account.on_synced = [&](const imap::SyncReport&) {
    if (delivered == 0 && latencies.empty()) {
      latencies.emplace_back(0);  // the first pass: deliver once IDLE waits
      deliver_soon();
      return;
    }
    if (delivered == 0 || !captured(activities(), mids[delivered - 1])) return;
    latencies.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - at));
    if (delivered < mids.size()) {
      deliver_soon();
    } else {
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(40), "mail in Sent not captured in 40 s");
  for (const auto& mid : mids) EXPECT_TRUE(captured(activities(), mid)) << mid;
  EXPECT_TRUE(warnings.empty());
  for (std::size_t i = 1; i < latencies.size(); ++i) {
    std::printf("NOTIFY: delivery to Sent to stored activity in %lld ms\n",
                static_cast<long long>(latencies[i].count()));
  }
}

// Mail put in Sent right after the pass that read it, while Sent is still
// selected (so the server announces nothing of it), is found by the STATUS
// asked once INBOX is selected: not left for the poll an hour away.
TEST_F(ImapSync, MailInSentWhileItIsSelectedIsNotLeftForThePoll) {
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  o.poll_interval = std::chrono::seconds(3600);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  account.on_synced = [&](const imap::SyncReport&) {
    if (++passes == 1) {
      // Synchronously: the account goes on (EXAMINE INBOX) only after this.
      dovecot->deliver_doveadm("Sent", sent_message("selected@example.com"));
    } else if (captured(activities(), "selected@example.com")) {
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(20), "mail in Sent not captured in 20 s");
  EXPECT_TRUE(captured(activities(), "selected@example.com"));
}

// Every login sets NOTIFY again: after the server restarts, mail put in Sent
// is announced on the new connection.
TEST_F(ImapSync, AfterAReconnectMailInSentIsStillAnnounced) {
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  o.poll_interval = std::chrono::seconds(3600);
  o.transport.io_timeout = std::chrono::seconds(5);
  imap::Account account(io.get_executor(), o, *sink);
  int connections = 0;
  bool delivered = false;
  account.on_connecting = [&] { ++connections; };
  account.on_synced = [&](const imap::SyncReport&) {
    if (connections == 1) {
      asio::post(io, [&] { dovecot->restart(); });  // as a crash; mail and ports stay
    } else if (!delivered) {
      delivered = true;
      asio::co_spawn(
          io,
          [&]() -> imap::Awaitable<void> {
            asio::steady_timer t(io, std::chrono::milliseconds(500));
            co_await t.async_wait(asio::use_awaitable);
            dovecot->deliver_doveadm("Sent", sent_message("reconnected@example.com"));
          },
          asio::detached);
    } else if (captured(activities(), "reconnected@example.com")) {
      account.stop();
    }
  };
  run_until_stopped(io, account, std::chrono::seconds(40), "mail in Sent not captured in 40 s");
  EXPECT_GE(connections, 2);
  EXPECT_TRUE(captured(activities(), "reconnected@example.com"));
}

// A server without NOTIFY: Sent is polled every poll_interval, and that is
// no condition to warn of.
TEST_F(ImapSync, WithoutNotifyMailInSentIsPolled) {
  dovecot = std::make_unique<test::DovecotServer>(1, std::vector<std::string>{"--no-notify"});
  auto o = options();
  o.folders = {"INBOX", "\\Sent"};
  o.poll_interval = std::chrono::seconds(2);
  imap::Account account(io.get_executor(), o, *sink);
  int passes = 0;
  account.on_synced = [&](const imap::SyncReport& r) {
    if (++passes == 1) {
      dovecot->deliver_doveadm("Sent", sent_message("polled@example.com"));
    } else if (captured(activities(), "polled@example.com")) {
      EXPECT_EQ(r.folders.size(), 2u);  // the poll's pass over every folder
      account.stop();
    }
  };
  account.on_failure = [&](const imap::SyncError& e) { ADD_FAILURE() << e.message; };
  run_until_stopped(io, account, std::chrono::seconds(20), "mail in Sent not polled in 20 s");
  EXPECT_TRUE(captured(activities(), "polled@example.com"));
  EXPECT_TRUE(warnings.empty());
}

// The daemon loop: the server dies in the middle of a backfill and comes back;
// run() reconnects after its backoff and finishes, every message exactly once.
TEST_F(ImapSync, RunReconnectsAfterAServerRestartAndFinishesTheBackfill) {
  for (int i = 0; i < 30; ++i) {
    dovecot->deliver_doveadm("INBOX", dated("r" + std::to_string(i) + "@acme.com", "jane@acme.com",
                                            "Restart " + std::to_string(i)));
  }
  auto o = options();
  o.folders = {"INBOX"};
  o.batch_size = 5;
  o.transport.io_timeout = std::chrono::seconds(5);
  FailingSink restarting(*sink, -1);
  restarting.on_commit = [this](int n) {
    if (n == 2) dovecot->restart();  // as a crash: connections die, the mail stays
  };
  imap::Account account(io.get_executor(), o, restarting);
  std::vector<imap::SyncError> failures;
  account.on_failure = [&](const imap::SyncError& e) { failures.push_back(e); };
  account.on_synced = [&](const imap::SyncReport&) {
    if (activities().size() == 30) account.stop();
  };
  run_until_stopped(io, account, std::chrono::seconds(60),
                    "the backfill did not finish within 60 s");
  ASSERT_FALSE(failures.empty());
  EXPECT_EQ(failures.front().retry, imap::RetryClass::retry_later) << failures.front().message;
  const auto acts = activities();
  ASSERT_EQ(acts.size(), 30u);
  std::set<std::string> ids;
  for (const auto& a : acts) ids.insert(a.message_id);
  EXPECT_EQ(ids.size(), 30u);
}

TEST(ImapBackoff, GrowsToFiveMinutesWithBoundedJitter) {
  using std::chrono::milliseconds;
  EXPECT_EQ(imap::backoff_delay(1, 5000), milliseconds(1000));  // jitter factor 1.0
  EXPECT_EQ(imap::backoff_delay(2, 5000), milliseconds(2000));
  EXPECT_EQ(imap::backoff_delay(30, 5000), milliseconds(300000));
  for (std::uint64_t bits : {0ULL, 12345ULL, 10000ULL, ~0ULL}) {
    const auto d = imap::backoff_delay(4, bits);
    EXPECT_GE(d, milliseconds(6400));
    EXPECT_LE(d, milliseconds(9600));
  }
}

namespace {
// tests/servers/fake_gmail.py on 127.0.0.1, killed at the end of the test.
class FakeGmail {
 public:
  // `uidvalidity` and `uid_offset` (added to every UID) play a renumbered
  // mailbox; the bytes of the message with X-GM-MSGID `refuse` are never sent
  // (with `refuse_at` "meta", nothing of it: its first fetch is refused too).
  explicit FakeGmail(const std::string& log, int uidvalidity = 11, int uid_offset = 0,
                     int refuse = 0, const std::string& refuse_at = "body") {
    const std::string validity = std::to_string(uidvalidity), offset = std::to_string(uid_offset),
                      refused = std::to_string(refuse);
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // A test that dies without running destructors (a crash, a sanitizer
      // abort) must not leave the server behind: it would keep ctest's output
      // pipe open, and ctest would wait for it.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);  // the parent died before prctl
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      const std::string script = std::string(CRMCAP_SOURCE_DIR) + "/tests/servers/fake_gmail.py";
      execlp("python3", "python3", script.c_str(), log.c_str(), validity.c_str(), offset.c_str(),
             refused.c_str(), refuse_at.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[64] = {0};
    if (!f || !std::fgets(line, sizeof line, f)) throw std::runtime_error("fake_gmail.py: no port");
    std::fclose(f);
    port_ = static_cast<std::uint16_t>(std::stoi(std::string(line).substr(5)));
  }
  ~FakeGmail() {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// The capture side of a Gmail account, for the fake server.
struct GmailCapture {
  explicit GmailCapture(const std::filesystem::path& dir)
      : st(test::directory_store((dir / "capture.db").string())) {
    capture::Settings s;
    s.owner_addresses = {"user@gmail-test.example"};
    auto fm = capture::FreeMailDomains::load();
    if (!fm) throw std::runtime_error(fm.error());
    pipeline = std::make_unique<capture::Pipeline>(*st, *st, s, *fm);
    sink = std::make_unique<capture::ImapSink>("gmail", *pipeline, *st, *st);
  }
  imap::AccountOptions options(std::uint16_t port) const {
    imap::AccountOptions o;
    o.name = "gmail";
    o.transport.host = "127.0.0.1";
    o.transport.port = port;
    o.transport.tls = imap::TlsMode::none;  // a scripted peer on loopback
    o.transport.io_timeout = std::chrono::seconds(10);
    o.username = "user@gmail-test.example";
    o.auth = imap::AuthMethod::login;
    o.secret = []() -> imap::SyncResult<std::string> { return std::string("app-password"); };
    return o;
  }
  std::unique_ptr<store::Store> st;
  std::unique_ptr<capture::Pipeline> pipeline;
  std::unique_ptr<capture::ImapSink> sink;
};

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A fake Gmail that refuses the message with X-GM-MSGID `refuse` (at `at`,
// see FakeGmail), a store to capture into, and the options for it.
struct RefusingGmail {
  explicit RefusingGmail(int refuse, const std::string& at = "body")
      : c(dir.path()),
        log((dir.path() / "commands.log").string()),
        gmail(log, 11, 0, refuse, at),
        o(c.options(gmail.port())) {}
  test::TempDir dir;
  GmailCapture c;
  asio::io_context io;
  std::string log;
  FakeGmail gmail;
  imap::AccountOptions o;
};

// The end of a sync of the fake Gmail whose "Pilot" (UID 2) was refused for
// good: the folder moved past it, and it is the one activity recorded as
// failed, by the fetch rule, with the server's words. Known by its
// X-GM-MSGID when the server sent that, in the first fetch.
void expect_pilot_recorded_as_failed(const GmailCapture& c,
                                     const std::string& remote_id = "gm:1002") {
  EXPECT_EQ(c.st->cursor("gmail", "[Gmail]/All Mail").value()->highest_uid, 5);
  const auto acts = c.st->list({}).value();
  ASSERT_EQ(acts.size(), 4u);
  int failed = 0;
  for (const auto& a : acts) {
    if (a.status != store::DecisionStatus::failed) {
      EXPECT_NE(a.subject, "Pilot");
      continue;
    }
    ++failed;
    EXPECT_EQ(a.rule, "fetch");
    EXPECT_NE(a.reason.find("Some messages could not be FETCHed"), std::string::npos) << a.reason;
    ASSERT_EQ(a.sources.size(), 1u);
    EXPECT_EQ(a.sources[0].uid, 2);
    EXPECT_EQ(a.sources[0].remote_id, remote_id);
  }
  EXPECT_EQ(failed, 1);
}

// One pass of `account` that the server's refusal fails: the folder's mark
// stays at `mark`. Returns the folder's stored state, in the store's words.
store::SyncCursor expect_refused_pass(asio::io_context& io, imap::Account& account,
                                      const GmailCapture& c, std::int64_t mark) {
  auto r = run_on(io, account.sync_once());
  EXPECT_FALSE(r);
  if (!r) {
    EXPECT_EQ(r.error().code, imap::make_error_code(imap::SyncErrc::server_refused))
        << r.error().message;
    EXPECT_NE(r.error().message.find("could not be FETCHed"), std::string::npos)
        << r.error().message;
  }
  const auto cur = c.st->cursor("gmail", "[Gmail]/All Mail").value();
  EXPECT_TRUE(cur);
  if (!cur) return {};
  EXPECT_EQ(cur->highest_uid, mark);
  return *cur;
}

}  // namespace

// Gmail shows labels as folders holding the same messages again: only
// "[Gmail]/All Mail" is synced, so each message is fetched and stored once,
// whatever folders are configured; drafts, which All Mail holds too, never.
TEST(ImapGmail, SyncsAllMailOnlyAndStoresEachMessageOnce) {
  test::TempDir dir;
  const std::string log = (dir.path() / "commands.log").string();
  FakeGmail gmail(log);
  GmailCapture c(dir.path());
  asio::io_context io;
  for (int pass = 0; pass < 2; ++pass) {
    imap::Account account(io.get_executor(), c.options(gmail.port()), *c.sink);
    auto r = run_on(io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->folders.size(), 1u);
    EXPECT_EQ(r->folders[0].folder, "[Gmail]/All Mail");
    EXPECT_EQ(r->folders[0].handed_over, pass == 0 ? 4u : 0u);
    EXPECT_EQ(r->folders[0].drafts, pass == 0 ? 1u : 0u);
  }
  const auto acts = c.st->list({}).value();
  ASSERT_EQ(acts.size(), 4u);
  for (const auto& a : acts) {
    // Labelled \Sent: outbound, though sent from a shared address.
    EXPECT_EQ(a.direction,
              a.subject == "Quote" ? store::Direction::outbound : store::Direction::inbound)
        << a.subject;
    EXPECT_NE(a.subject, "Draft offer");
    ASSERT_EQ(a.sources.size(), 1u);
    EXPECT_EQ(a.sources[0].folder, "[Gmail]/All Mail");
    EXPECT_TRUE(a.sources[0].remote_id.starts_with("gm:100")) << a.sources[0].remote_id;
  }
  const std::string commands = test::read_file(log);
  EXPECT_NE(commands.find("EXAMINE \"[Gmail]/All Mail\""), std::string::npos) << commands;
  EXPECT_EQ(commands.find("EXAMINE INBOX"), std::string::npos) << commands;
  EXPECT_EQ(commands.find("Sent Mail\""), std::string::npos) << commands;
  EXPECT_EQ(commands.find("app-password"), std::string::npos);
  EXPECT_NE(commands.find("X-GM-LABELS"), std::string::npos) << commands;
  EXPECT_EQ(count_of(commands, "SERVED "), 4u) << commands;
  EXPECT_EQ(commands.find("SERVED 1005"), std::string::npos) << commands;  // the draft
}

// A message the server will never send (Gmail answers the fetch with the
// others, then "NO Some messages could not be FETCHed") is recorded as failed
// with the server's words, and the folder moves on: the pass succeeds, and
// the next one does not stop at the same batch again.
TEST(ImapGmail, AMessageTheServerWillNotSendIsRecordedAsFailedAndTheFolderMovesOn) {
  RefusingGmail g(1002);  // "Pilot", UID 2
  for (int pass = 0; pass < 2; ++pass) {
    imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
    auto r = run_on(g.io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    if (pass == 0) {
      EXPECT_EQ(r->folders.at(0).handed_over, 4u);
    } else {
      EXPECT_TRUE(r->folders.at(0).skipped_unchanged);
    }
  }
  expect_pilot_recorded_as_failed(g.c);
  EXPECT_EQ(count_of(test::read_file(g.log), "SERVED "), 3u);  // 1001, 1003, 1004
}

// A refusal with nothing of the batch sent may be the server failing as a
// whole, for a while: the pass fails, to be retried, and nothing is recorded
// as failed. (Here each batch holds one message; the batch before the
// refused one is committed.)
TEST(ImapGmail, ARefusalOfAWholeBatchFailsThePassToBeRetried) {
  RefusingGmail g(1002);  // UID 2
  g.o.batch_size = 1;
  imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
  // Three passes in a row, within the default span of ten minutes: each
  // fails, and nothing is recorded as failed.
  for (int pass = 1; pass <= 3; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    expect_refused_pass(g.io, account, g.c, 1);
    const auto acts = g.c.st->list({}).value();
    ASSERT_EQ(acts.size(), 1u);
    EXPECT_EQ(acts[0].subject, "Renewal");
  }
}

// A message fetched alone whose bytes are refused pass after pass is that
// message's (Gmail refuses some for good): on the third pass (here with no
// least span of time between the first and the last) it is recorded as
// failed and the folder moves on, instead of stopping there for good (and
// every folder after it with it).
TEST(ImapGmail, AMessageRefusedAloneOnThreePassesIsRecordedAsFailedAndTheFolderMovesOn) {
  RefusingGmail g(1002);  // "Pilot", UID 2
  g.o.batch_size = 1;
  g.o.refusals_span = std::chrono::seconds(0);
  imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
  for (int pass = 1; pass <= 2; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    expect_refused_pass(g.io, account, g.c, 1);
    EXPECT_EQ(g.c.st->list({}).value().size(), 1u);
  }
  auto r = run_on(g.io, account.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  expect_pilot_recorded_as_failed(g.c);
  // Three passes, three refusals: a fourth is never asked for.
  EXPECT_EQ(count_of(test::read_file(g.log), "SERVED 1002"), 0u);
  EXPECT_EQ(count_of(test::read_file(g.log), "SERVED "), 3u);  // 1001, 1003, 1004
}

// The same count across separate runs, as crm-captured --once makes them
// (an Account each): it is kept with the folder's state, so a message the
// server refuses for good cannot stop its folder there for good either.
TEST(ImapGmail, RefusalsAreCountedAcrossSeparateRuns) {
  RefusingGmail g(1002);  // "Pilot", UID 2
  g.o.batch_size = 1;
  auto extra = [&] { return g.c.st->cursor("gmail", "[Gmail]/All Mail").value()->extra; };
  // Inside the default span (10 minutes), even a third refusal fails its run.
  for (int run = 1; run <= 3; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
    const auto cur = expect_refused_pass(g.io, account, g.c, 1);
    EXPECT_NE(cur.extra.find("refused=2," + std::to_string(run) + ","), std::string::npos)
        << cur.extra;
  }
  EXPECT_EQ(g.c.st->list({}).value().size(), 1u);
  // Once the span has passed (0 here), the next run takes the refusal as the
  // message's, and the count goes with the mark past it.
  g.o.refusals_span = std::chrono::seconds(0);
  imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
  auto r = run_on(g.io, account.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  expect_pilot_recorded_as_failed(g.c);
  EXPECT_EQ(extra().find("refused="), std::string::npos) << extra();
}

// A refusal of a folder's very first message is counted too, though the
// folder has no state yet: the count is stored with a mark at 0, and the
// first sync goes on from there.
TEST(ImapGmail, ARefusalOfAFoldersFirstMessageIsCountedBeforeTheFolderHasAState) {
  RefusingGmail g(1001);  // UID 1
  g.o.batch_size = 1;
  for (int run = 1; run <= 3; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
    const auto cur = expect_refused_pass(g.io, account, g.c, 0);
    EXPECT_NE(cur.extra.find("backfilling=1"), std::string::npos) << cur.extra;
    EXPECT_NE(cur.extra.find("refused=1," + std::to_string(run) + ","), std::string::npos)
        << cur.extra;
  }
  EXPECT_TRUE(g.c.st->list({}).value().empty());
  g.o.refusals_span = std::chrono::seconds(0);
  imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
  auto r = run_on(g.io, account.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  const auto cur = g.c.st->cursor("gmail", "[Gmail]/All Mail").value();
  EXPECT_EQ(cur->highest_uid, 5);
  EXPECT_NE(cur->extra.find("backfilling=0"), std::string::npos) << cur->extra;
  const auto acts = g.c.st->list({}).value();
  ASSERT_EQ(acts.size(), 4u);
  int failed = 0;
  for (const auto& a : acts) {
    if (a.status != store::DecisionStatus::failed) continue;
    ++failed;
    EXPECT_EQ(a.rule, "fetch");
    ASSERT_EQ(a.sources.size(), 1u);
    EXPECT_EQ(a.sources[0].uid, 1);
  }
  EXPECT_EQ(failed, 1);
}

// A refusal of a folder's last batch, read before the batch ahead of it is
// committed: that batch is committed all the same, and the count, noted
// before it on a folder that had no state yet, survives its commit. Nothing
// is lost, and the third run records the refused message.
TEST(ImapGmail, ARefusalCountSurvivesTheCommitOfTheBatchBeforeIt) {
  RefusingGmail g(1004);  // UID 4; UID 5 is a draft
  g.o.batch_size = 3;     // two batches: UIDs 1-3, then 4 (and the draft)
  g.o.refusals_span = std::chrono::seconds(0);
  for (int run = 1; run <= 2; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
    const auto cur = expect_refused_pass(g.io, account, g.c, 3);
    EXPECT_NE(cur.extra.find("refused=4," + std::to_string(run) + ","), std::string::npos)
        << cur.extra;
    EXPECT_EQ(g.c.st->list({}).value().size(), 3u);
  }
  imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
  auto r = run_on(g.io, account.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  const auto cur = g.c.st->cursor("gmail", "[Gmail]/All Mail").value();
  EXPECT_EQ(cur->highest_uid, 5);
  EXPECT_EQ(cur->extra.find("refused="), std::string::npos) << cur->extra;
  const auto acts = g.c.st->list({}).value();
  ASSERT_EQ(acts.size(), 4u);
  EXPECT_EQ(std::count_if(
                acts.begin(), acts.end(),
                [](const store::Activity& a) { return a.status == store::DecisionStatus::failed; }),
            1);
}

// Gmail may refuse the first fetch of a message it cannot read (its
// BODYSTRUCTURE), while it answers it for the others: that message is
// recorded as failed, its bytes never asked for, and the folder moves on.
// Fetched alone, the refusal counts as the refusal of its bytes does.
TEST(ImapGmail, AMessageWhoseStructureTheServerWillNotSendIsRecordedAsFailed) {
  for (const std::uint32_t batch : {500u, 1u}) {
    SCOPED_TRACE("batch_size " + std::to_string(batch));
    RefusingGmail g(1002, "meta");  // "Pilot", UID 2
    g.o.batch_size = batch;
    g.o.refusals_span = std::chrono::seconds(0);
    imap::Account account(g.io.get_executor(), g.o, *g.c.sink);
    const int failing_passes = batch == 1 ? 2 : 0;
    for (int pass = 1; pass <= failing_passes; ++pass) {
      auto r = run_on(g.io, account.sync_once());
      ASSERT_FALSE(r) << "pass " << pass;
      EXPECT_EQ(r.error().code, imap::make_error_code(imap::SyncErrc::server_refused));
    }
    auto r = run_on(g.io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    expect_pilot_recorded_as_failed(g.c, "");  // its X-GM-MSGID was refused too
    EXPECT_EQ(count_of(test::read_file(g.log), "SERVED 1002"), 0u);
    // One to a batch, the batch before the refused one is read when the pass
    // fails, and committed all the same: no message's bytes come twice.
    EXPECT_EQ(count_of(test::read_file(g.log), "SERVED "), 3u);
  }
}

// Messages are keyed by X-GM-MSGID: after a UIDVALIDITY change every message
// is known again without its bytes, the one without a Message-ID included,
// and each activity gains its new place instead of a twin.
TEST(ImapGmail, KeysMessagesByGmailIdAcrossAUidValidityChange) {
  test::TempDir dir;
  GmailCapture c(dir.path());
  asio::io_context io;
  {
    const std::string log = (dir.path() / "first.log").string();
    FakeGmail gmail(log);
    imap::Account account(io.get_executor(), c.options(gmail.port()), *c.sink);
    auto r = run_on(io, account.sync_once());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->folders.at(0).handed_over, 4u);
  }
  const std::string log = (dir.path() / "renumbered.log").string();
  FakeGmail renumbered(log, 12, 100);
  imap::Account account(io.get_executor(), c.options(renumbered.port()), *c.sink);
  auto r = run_on(io, account.sync_once());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->folders.at(0).uidvalidity_changed);
  EXPECT_EQ(r->folders.at(0).handed_over, 4u);
  EXPECT_EQ(r->folders.at(0).known, 4u);
  EXPECT_EQ(count_of(test::read_file(log), "SERVED "), 0u) << test::read_file(log);
  const auto acts = c.st->list({}).value();
  ASSERT_EQ(acts.size(), 4u);
  for (const auto& a : acts) {
    ASSERT_EQ(a.sources.size(), 2u) << a.subject;
    EXPECT_EQ(a.sources[0].remote_id, a.sources[1].remote_id);
    EXPECT_EQ(a.sources[0].uid + 100, a.sources[1].uid);
    EXPECT_EQ(a.sources[1].uidvalidity, 12);
  }
}
