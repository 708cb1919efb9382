// SPDX-License-Identifier: Apache-2.0
// Property test of IMAP sync (STYLE 16), after vdirsyncer's SyncMachine: for
// each seed, random changes to the fake server's mailbox (new mail in INBOX
// or Sent, long mail that comes part by part, mail without a Message-ID,
// copies of a message in the other folder, expunges, a UIDVALIDITY reset, a
// message the server refuses to send, one it never answers readably) and a
// random fault in the pass after them (the connection dropped at a random
// step, an unparseable response at a random step, a commit of the store that
// fails, or that is stored and then the pass dies: a crash between two
// steps). After every pass no folder's mark may
// pass a message the store does not hold; a pass that succeeds without a
// pause leaves every folder synced to its end. Then, faults off, clean
// passes must converge: every message the server holds is an activity, or
// failed with a reason where the server gave one, and one more pass does
// nothing.
//
// The seeds are 1 to 20. CRMCAP_IMAP_SEED=n runs seed n alone (a failure
// names its seed, and prints what happened); CRMCAP_IMAP_SEEDS=n runs seeds
// 1 to n. Seed 16 fails for now: two messages the server will not send, in
// one batch, stop their folder for good. The tests at the end hold that case
// and another the seeds found, each at its smallest.
#include "tests/daemon/imap_fake_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace crmcap;

namespace {

constexpr std::uint64_t k_seeds = 20;
constexpr int k_steps = 8;  // changes and a pass, each

std::uint64_t env_number(const char* name, std::uint64_t otherwise) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : otherwise;
}

// Counts over all seeds, for the summary line.
struct Totals {
  int passes = 0, failed_passes = 0, final_passes = 0;
  int disconnects = 0, malformed = 0, failed_commits = 0;  // faults that took effect
};

class Machine {
 public:
  Machine(std::uint64_t seed, const std::filesystem::path& dir, Totals& totals)
      : seed_(seed),
        rng_(seed),
        capture_(test::directory_store((dir / "capture.db").string())),
        flaky_(*capture_.sink),
        options_(test::fake_options(server_)),
        totals_(totals) {
    const std::uint32_t batches[] = {1, 2, 3, 4, 8};
    options_.batch_size = batches[pick(5)];
    // Small parts: a long message comes part by part (its header, then its
    // text cut), not whole.
    options_.max_part_bytes = chance(0.5) ? 512 : 65536;
    options_.refusals_before_failed = static_cast<unsigned>(1 + pick(3));
    options_.refusals_span = std::chrono::seconds(0);
    note("options: batch_size " + std::to_string(options_.batch_size) + ", max_part_bytes " +
         std::to_string(options_.max_part_bytes) + ", refusals_before_failed " +
         std::to_string(options_.refusals_before_failed));
  }

  // Runs the steps and the clean passes; the first property broken fails the
  // test with the seed and what happened, and ends the run.
  void run() {
    for (int step = 1; step <= k_steps; ++step) {
      const std::uint64_t changes = 1 + pick(3);
      for (std::uint64_t i = 0; i < changes; ++i) change();
      if (!faulty_pass("pass " + std::to_string(step))) return;
    }
    converge();
  }

 private:
  std::uint64_t pick(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  void note(std::string line) { trail_.push_back(std::move(line)); }

  void fail(const std::string& what) {
    std::string trail;
    for (const auto& l : trail_) trail += "\n  " + l;
    ADD_FAILURE() << "seed " << seed_ << " (rerun alone with CRMCAP_IMAP_SEED=" << seed_
                  << "): " << what << "\nwhat happened:" << trail;
    broken_ = true;
  }

  bool check(const std::string& when, bool at_end) {
    const auto problems = test::store_problems(*capture_.st, server_, at_end);
    if (problems.empty()) return true;
    std::string s = when + ":";
    for (const auto& p : problems) s += "\n    " + p;
    fail(s);
    return false;
  }

  // Adds a message to `folder` and returns its UID.
  std::uint32_t add(const std::string& folder, const std::string& what, std::size_t body = 0,
                    bool with_id = true) {
    const std::uint64_t n = next_mail_++;
    const std::uint32_t uid =
        server_.add(folder, test::fake_mail(n, folder == "Sent", body, with_id));
    note("  add " + what + " m" + std::to_string(n) + " to " + folder + " as UID " +
         std::to_string(uid));
    return uid;
  }

  void change() {
    const std::string folder = chance(0.7) ? "INBOX" : "Sent";
    const std::string other = folder == "INBOX" ? "Sent" : "INBOX";
    const std::uint64_t roll = pick(100);
    if (roll < 40) {
      for (std::uint64_t i = 1 + pick(4); i > 0; --i) add(folder, "mail");
    } else if (roll < 48) {
      add(folder, "long mail", 3000);
    } else if (roll < 53) {
      add(folder, "mail without a Message-ID", 0, false);
    } else if (roll < 68) {
      for (std::uint64_t i = 1 + pick(2); i > 0; --i) {
        const test::FakeFolder f = server_.folder(folder);
        if (f.messages.empty()) break;
        const test::FakeMessage& m = f.messages[pick(f.messages.size())];
        server_.expunge(folder, m.uid);
        note("  expunge UID " + std::to_string(m.uid) + " of " + folder);
      }
    } else if (roll < 75) {
      const std::uint32_t v = server_.reset_uidvalidity(folder);
      note("  reset the UIDVALIDITY of " + folder + " to " + std::to_string(v) +
           " (UIDs renumbered)");
    } else if (roll < 83) {
      server_.refuse(folder, add(folder, "refused mail"));
      ++troubled_;
    } else if (roll < 90) {
      server_.unreadable(folder, add(folder, "unreadable mail"));
      ++troubled_;
    } else {
      const test::FakeFolder f = server_.folder(other);
      if (f.messages.empty()) return;
      const test::FakeMessage& m = f.messages[pick(f.messages.size())];
      const std::uint32_t uid = server_.add(folder, m.raw);
      note("  copy UID " + std::to_string(m.uid) + " of " + other + " to " + folder + " as UID " +
           std::to_string(uid));
    }
  }

  // The refusals the store counts for each folder (FolderState::refused),
  // as " [INBOX: UID 7 refused on 2 passes]"; empty when none.
  std::string refusal_counts() {
    std::string out;
    for (const test::FakeFolder& f : server_.folders()) {
      const auto state = capture_.sink->folder_state(f.name);
      if (!state || state->refused.uid == 0) continue;
      out += " [" + f.name + ": UID " + std::to_string(state->refused.uid) + " refused on " +
             std::to_string(state->refused.passes) + " passes]";
    }
    return out;
  }

  imap::SyncResult<imap::SyncReport> pass() {
    imap::Account account(io_.get_executor(), options_, flaky_);
    auto r = test::sync_guarded(io_, account);
    ++totals_.passes;
    totals_.failed_passes += r ? 0 : 1;
    return r;
  }

  // A pass with a random fault; false when a property broke.
  bool faulty_pass(const std::string& name) {
    const std::uint64_t roll = pick(100);
    std::string fault = "no fault";
    std::uint64_t step = 0;
    if (roll < 22) {
      step = 1 + pick(last_steps_ + 5);
      server_.fail_at_step(step);
      fault = "disconnect at step " + std::to_string(step);
    } else if (roll < 38) {
      step = 1 + pick(last_steps_ + 5);
      server_.malformed_at_step(step);
      fault = "malformed response at step " + std::to_string(step);
    } else if (roll < 55) {
      const int k = 1 + static_cast<int>(pick(3));
      const bool stored = chance(0.5);
      flaky_.fail_commit(k, stored);
      fault = "commit " + std::to_string(k) +
              (stored ? " stored, then the pass dies (a crash)" : " fails (a full disk)");
    }
    const std::size_t glitched_before = server_.glitched().size();
    auto r = pass();
    server_.clear_faults();
    const std::uint64_t steps = server_.steps();
    const bool commit_failed = flaky_.failed();
    flaky_.fail_commit(0);
    if (roll < 22 && step <= steps) ++totals_.disconnects;
    if (roll >= 22 && roll < 38 && step <= steps) ++totals_.malformed;
    if (commit_failed) ++totals_.failed_commits;
    if (roll >= 55) last_steps_ = std::max<std::uint64_t>(steps, 10);
    note(name + ", " + fault + " (" + std::to_string(steps) + " steps): " + test::outcome_text(r) +
         (server_.glitched().size() > glitched_before ? " [a message's answer made malformed]"
                                                      : "") +
         refusal_counts());
    if (!r) {
      if (r.error().message.empty()) fail(name + ": an error without a message");
      if (r.error().code == imap::make_error_code(imap::SyncErrc::internal)) {
        fail(name + ": an exception escaped the sync: " + r.error().message);
      }
    }
    if (commit_failed && r) fail(name + ": a commit failed, yet the pass succeeded");
    if (broken_) return false;
    const bool paused = r && std::any_of(r->folders.begin(), r->folders.end(),
                                         [](const imap::FolderReport& f) { return f.paused; });
    // A pass that succeeded without a pause synced every folder to its end.
    return check("after " + name, r && !paused);
  }

  void converge() {
    // A message refused (or unreadable) alone in its batch fails its pass
    // until it was refused on refusals_before_failed passes; a folder that
    // shrank by half pauses one pass.
    const int bound = 4 + static_cast<int>(options_.refusals_before_failed) * troubled_;
    for (int n = 1;; ++n) {
      auto r = pass();
      ++totals_.final_passes;
      note("clean pass " + std::to_string(n) + ": " + test::outcome_text(r) + refusal_counts());
      const bool paused = r && std::any_of(r->folders.begin(), r->folders.end(),
                                           [](const imap::FolderReport& f) { return f.paused; });
      if (r && !paused) break;
      if (n >= bound) {
        fail("no clean pass succeeded in " + std::to_string(n));
        return;
      }
    }
    if (!check("after the clean passes", true)) return;
    const auto before = capture_.st->list({}).value().size();
    auto again = pass();
    note("one more clean pass: " + test::outcome_text(again));
    if (!again) {
      fail("one more clean pass failed");
      return;
    }
    for (const auto& f : again->folders) {
      if (!f.skipped_unchanged && f.handed_over != 0) {
        fail("one more clean pass still handed over messages of " + f.folder);
        return;
      }
    }
    if (capture_.st->list({}).value().size() != before) {
      fail("one more clean pass changed the number of activities");
      return;
    }
    check("after one more clean pass", true);
  }

  std::uint64_t seed_;
  std::mt19937_64 rng_;
  test::FakeImapServer server_;
  test::Capture capture_;
  test::FlakySink flaky_;
  asio::io_context io_;
  imap::AccountOptions options_;
  Totals& totals_;
  std::vector<std::string> trail_;
  std::uint64_t next_mail_ = 1;
  std::uint64_t last_steps_ = 40;  // of the last pass without a fault
  int troubled_ = 0;               // refused and unreadable messages added
  bool broken_ = false;
};

}  // namespace

TEST(ImapProperty, RandomChangesAndFaultsBetweenPassesConvergeAndOneMorePassDoesNothing) {
  const std::uint64_t only = env_number("CRMCAP_IMAP_SEED", 0);
  const std::uint64_t first = only != 0 ? only : 1;
  const std::uint64_t last = only != 0 ? only : env_number("CRMCAP_IMAP_SEEDS", k_seeds);
  Totals totals;
  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    test::TempDir dir;
    Machine(seed, dir.path(), totals).run();
  }
  std::printf(
      "seeds %llu-%llu: %d passes (%d failed), %d clean passes at the end; faults that took "
      "effect: %d disconnects, %d malformed responses, %d failed commits; %lld ms\n",
      static_cast<unsigned long long>(first), static_cast<unsigned long long>(last), totals.passes,
      totals.failed_passes, totals.final_passes, totals.disconnects, totals.malformed,
      totals.failed_commits,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count()));
}

// The smallest cases of what the property test found, each on its own.
namespace {

// Syncs `server` into `c` until a pass succeeds, at most `passes` times;
// returns whether one did, and each pass's outcome in `trail`.
bool sync_until_success(test::FakeImapServer& server, test::Capture& c,
                        const imap::AccountOptions& o, int passes, std::string& trail) {
  asio::io_context io;
  for (int n = 1; n <= passes; ++n) {
    imap::Account account(io.get_executor(), o, *c.sink);
    auto r = test::sync_guarded(io, account);
    trail += "\n  pass " + std::to_string(n) + ": " + test::outcome_text(r);
    if (const auto cur = c.st->cursor(test::k_fake_mailbox, "INBOX").value()) {
      trail += "\n    INBOX stored: mark " + std::to_string(cur->highest_uid) + ", " + cur->extra;
    }
    if (r) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n  " + l;
  return s;
}

}  // namespace

// Seeds 16, 31, 72, 86, 98, 162 and 182 of 1-200, among others, found this:
// a batch every message of which the server refuses (or never answers
// readably) fails its pass, and a refusal is taken as the message's own
// after refusals_before_failed passes only in a batch of one. Two such
// messages that arrived together (one batch with the default batch_size),
// or the second while the first was still being counted (seed 182),
// stopped their folder for good, and every folder after it. Now such a
// batch names its first message, which the next pass asks for alone.
TEST(ImapProperty, TwoMessagesTheServerWillNotSendInOneBatchDoNotStopTheFolderForGood) {
  test::TempDir dir;
  test::FakeImapServer server;
  test::Capture c(test::directory_store((dir.path() / "capture.db").string()));
  imap::AccountOptions o = test::fake_options(server);
  o.refusals_span = std::chrono::seconds(0);  // refusals_before_failed: the default, 3
  server.add("INBOX", test::fake_mail(1, false));
  std::string first, trail;
  ASSERT_TRUE(sync_until_success(server, c, o, 1, first)) << first;
  server.refuse("INBOX", server.add("INBOX", test::fake_mail(2, false)));
  server.unreadable("INBOX", server.add("INBOX", test::fake_mail(3, false)));
  server.add("Sent", test::fake_mail(4, true));
  EXPECT_TRUE(sync_until_success(server, c, o, 3 + 3, trail))
      << "no pass got past the two messages:" << trail;
  const auto problems = test::store_problems(*c.st, server, true);
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

// Seeds 50, 62, 101, 107, 149, 153 and 166 of 1-200 found this: two such
// messages in consecutive batches of one. The pass that took the first as
// refused for good read the second's first fetch before it committed the
// first (batches overlap); the second's refusal, counted in the folder's one
// count, failed the pass. The first's decision was lost and its count began
// again on the next pass, over the second's: the passes alternated between
// the two for ever. Now a batch read is committed before the pass fails.
TEST(ImapProperty, TwoMessagesTheServerWillNotSendInBatchesOfOneAreEachCountedToTheEnd) {
  test::TempDir dir;
  test::FakeImapServer server;
  test::Capture c(test::directory_store((dir.path() / "capture.db").string()));
  imap::AccountOptions o = test::fake_options(server);
  o.batch_size = 1;
  o.refusals_before_failed = 2;
  o.refusals_span = std::chrono::seconds(0);
  server.add("INBOX", test::fake_mail(1, false));
  std::string first, trail;
  ASSERT_TRUE(sync_until_success(server, c, o, 1, first)) << first;
  server.refuse("INBOX", server.add("INBOX", test::fake_mail(2, false)));
  server.refuse("INBOX", server.add("INBOX", test::fake_mail(3, false)));
  EXPECT_TRUE(sync_until_success(server, c, o, 2 * 2 + 2, trail))
      << "no pass got past the two messages:" << trail;
  const auto problems = test::store_problems(*c.st, server, true);
  EXPECT_TRUE(problems.empty()) << joined(problems);
}
