// SPDX-License-Identifier: Apache-2.0
// An I/O failure at every step (STYLE 13): a clean sync of a small mailbox
// against the fake server (tests/support/fake_imap.hpp) is counted in steps;
// then, for every step i, a sync into a fresh store has the connection
// dropped at step i (a response cut in half, a command left unanswered), and
// another has an unparseable response at step i instead of the real one.
// Each must end, in a clean error or in success; no folder's mark may pass a
// message the store does not hold (or holds as failed without a cause); and
// a clean sync afterwards must bring the store to the server's contents, with
// a third sync finding nothing to do.
#include "tests/daemon/imap_fake_support.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>

namespace asio = boost::asio;
using namespace crmcap;

namespace {

// 6 messages in INBOX (one of them a mailing list's, so skipped), 2 in Sent.
void fill_small(test::FakeImapServer& server) {
  for (std::uint64_t n = 1; n <= 6; ++n) server.add("INBOX", test::fake_mail(n, false));
  for (std::uint64_t n = 7; n <= 8; ++n) server.add("Sent", test::fake_mail(n, true));
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n  " + l;
  return s;
}

}  // namespace

TEST(ImapFault, ADisconnectOrAMalformedResponseAtAnyStepEndsCleanlyAndLosesNothing) {
  test::TempDir dir;
  test::FakeImapServer server;
  fill_small(server);
  const test::StoreTemplate fresh(dir.path());
  asio::io_context io;
  imap::AccountOptions o = test::fake_options(server);
  o.batch_size = 2;  // INBOX in three batches, Sent in one: pipelined fetches and commits

  std::uint64_t clean_steps = 0;
  {
    test::Capture c(fresh.copy(dir.path() / "clean.db"));
    imap::Account account(io.get_executor(), o, *c.sink);
    auto r = test::sync_guarded(io, account);
    ASSERT_TRUE(r) << r.error().message;
    clean_steps = server.steps();
    ASSERT_EQ(r->folders.size(), 2u);
    EXPECT_EQ(r->folders[0].handed_over, 6u);
    EXPECT_EQ(r->folders[1].handed_over, 2u);
    EXPECT_EQ(c.st->list({}).value().size(), 8u);
    const auto problems = test::store_problems(*c.st, server, true);
    EXPECT_TRUE(problems.empty()) << joined(problems);
  }
  // Greeting, 3 CAPABILITY/LOGIN exchanges, LIST, 2 EXAMINE, 2 SEARCH and
  // 8 FETCH exchanges, LOGOUT: each a command read and its responses.
  ASSERT_GT(clean_steps, 60u);
  std::printf("a clean sync of 8 messages takes %llu steps\n",
              static_cast<unsigned long long>(clean_steps));

  // Everything a run opens (its store, its connection) is closed by its end.
  const std::size_t fds = test::open_fds();
  const auto started = std::chrono::steady_clock::now();
  for (const bool malformed : {false, true}) {
    const char* const how = malformed ? "malformed" : "disconnect";
    std::map<std::string, int> outcomes;  // by error category message, or "ok"
    int failed_messages = 0;              // recorded as failed (malformed answers only)
    for (std::uint64_t step = 1; step <= clean_steps; ++step) {
      SCOPED_TRACE(std::string(how) + " at step " + std::to_string(step));
      test::Capture c(fresh.copy(dir.path() / (std::string(how) + std::to_string(step) + ".db")));
      if (malformed) {
        server.malformed_at_step(step);
      } else {
        server.fail_at_step(step);
      }
      {
        imap::Account account(io.get_executor(), o, *c.sink);
        auto r = test::sync_guarded(io, account);
        server.clear_faults();  // (the connection took them)
        if (r) {
          ++outcomes["ok"];
        } else {
          ++outcomes[r.error().code.message()];
          EXPECT_FALSE(r.error().message.empty());
          EXPECT_EQ(&r.error().code.category(), &imap::sync_category());
          // An exception that escaped the sync (a bug) is reported as internal.
          EXPECT_NE(r.error().code, imap::make_error_code(imap::SyncErrc::internal))
              << r.error().message;
          EXPECT_EQ(r.error().retry, imap::RetryClass::retry_later) << r.error().message;
        }
        const auto problems = test::store_problems(*c.st, server, false);
        EXPECT_TRUE(problems.empty())
            << "after the faulty sync (" << test::outcome_text(r) << "):" << joined(problems);
      }
      {
        imap::Account account(io.get_executor(), o, *c.sink);
        auto r = test::sync_guarded(io, account);
        ASSERT_TRUE(r) << "the clean sync after it: " << r.error().message;
        const auto problems = test::store_problems(*c.st, server, true);
        EXPECT_TRUE(problems.empty()) << "after the clean sync:" << joined(problems);
      }
      {
        imap::Account account(io.get_executor(), o, *c.sink);
        auto r = test::sync_guarded(io, account);
        ASSERT_TRUE(r) << "the second clean sync: " << r.error().message;
        for (const auto& f : r->folders) {
          EXPECT_TRUE(f.skipped_unchanged || f.handed_over == 0)
              << f.folder << ": " << test::outcome_text(r);
        }
      }
      // One activity per message: none lost, none twice.
      const auto acts = c.st->list({}).value();
      EXPECT_EQ(acts.size(), 8u);
      for (const auto& a : acts) failed_messages += a.status == store::DecisionStatus::failed;
    }
    std::string summary;
    for (const auto& [what, n] : outcomes) summary += " " + what + ": " + std::to_string(n) + ";";
    std::printf("%s at each of %llu steps:%s messages recorded as failed: %d\n", how,
                static_cast<unsigned long long>(clean_steps), summary.c_str(), failed_messages);
  }
  // The server closes its side of the last connection once it sees the
  // client's close.
  for (int i = 0; i < 40 && (server.serving() || test::open_fds() != fds); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(test::open_fds(), fds);
  std::printf("%llu faulty syncs, each followed by two clean ones, in %lld ms\n",
              static_cast<unsigned long long>(2 * clean_steps),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()));
}

namespace {

// One sync_once() of an account of `server` (with `o`), run to its end.
struct Lingering {
  imap::SyncResult<imap::SyncReport> result;
  // How long the io_context went on running after sync_once() returned.
  std::chrono::milliseconds linger{0};
  // Whether the server still served the connection 300 ms after that.
  bool still_connected = false;
};

Lingering sync_and_linger(test::FakeImapServer& server, const imap::AccountOptions& o) {
  test::TempDir dir;
  test::Capture c(test::directory_store((dir.path() / "capture.db").string()));
  asio::io_context io;
  imap::Account account(io.get_executor(), o, *c.sink);
  std::optional<imap::SyncResult<imap::SyncReport>> out;
  std::chrono::steady_clock::time_point returned;
  bool still_connected = false;
  asio::co_spawn(
      io,
      [&]() -> imap::Awaitable<void> {
        auto op = account.sync_once();
        out.emplace(co_await std::move(op));
        returned = std::chrono::steady_clock::now();
        asio::steady_timer later(io, std::chrono::milliseconds(300));
        co_await later.async_wait(asio::use_awaitable);
        still_connected = server.serving();
      },
      asio::detached);
  io.run_for(o.transport.io_timeout + std::chrono::seconds(5));
  const auto linger = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - returned);
  if (!out) {
    ADD_FAILURE() << "sync_once() did not return";
    account.stop();
    io.run_for(std::chrono::seconds(5));
    return {imap::SyncError{}, linger, still_connected};
  }
  return {std::move(*out), linger, still_connected};
}

void expect_nothing_left(const Lingering& l) {
  // 300 ms: the wait above.
  EXPECT_LT(l.linger.count(), 1000)
      << "io_context::run() went on " << l.linger.count() << " ms after sync_once() returned";
  EXPECT_FALSE(l.still_connected) << "the connection was still open 300 ms after sync_once() "
                                     "returned";
}

}  // namespace

// A sync that fails before it reaches the folders (a refused login, an
// unreadable answer to CAPABILITY or LIST) ends as one that fails later
// does: its connection closed, nothing left waiting on the caller's
// io_context. (It did not: the connection stayed open until the Account was
// destroyed, and the transport's read deadline kept io_context::run() going
// for io_timeout, 60 s by default, so `crm-captured --once` with a wrong
// password waited that long to report. An unreadable LIST entry fails the
// pass only when a configured folder is then missing, as INBOX is here.)
TEST(ImapFault, ASyncThatFailsBeforeItsFoldersLeavesNothingWaiting) {
  test::FakeImapServer server;
  fill_small(server);
  imap::AccountOptions o = test::fake_options(server);
  o.transport.io_timeout = std::chrono::seconds(3);
  {
    SCOPED_TRACE("a refused login");
    imap::AccountOptions wrong = o;
    wrong.secret = []() -> imap::SyncResult<std::string> { return std::string("wrong"); };
    const Lingering l = sync_and_linger(server, wrong);
    ASSERT_FALSE(l.result);
    EXPECT_EQ(l.result.error().code, imap::make_error_code(imap::SyncErrc::auth_failed));
    expect_nothing_left(l);
  }
  {
    SCOPED_TRACE("an unreadable LIST answer");
    server.malformed_at_step(11);  // the first LIST entry
    const Lingering l = sync_and_linger(server, o);
    ASSERT_FALSE(l.result);
    EXPECT_EQ(l.result.error().code, imap::make_error_code(imap::SyncErrc::protocol))
        << l.result.error().message;
    expect_nothing_left(l);
  }
  {
    SCOPED_TRACE("the connection dropped during a fetch, for comparison");
    server.fail_at_step(40);
    const Lingering l = sync_and_linger(server, o);
    ASSERT_FALSE(l.result);
    expect_nothing_left(l);
  }
}
