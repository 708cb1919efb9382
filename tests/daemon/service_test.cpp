// SPDX-License-Identifier: Apache-2.0
// crm-captured as a service: the built daemon (not --once) against a real
// Dovecot on 127.0.0.1, asked over its API socket; signals sent as systemd
// and an administrator send them; socket activation by
// systemd-socket-activate.
#include "daemon/api/client.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/dovecot_fixture.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace crmcap;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Polls `f` every 50 ms until it is true or `limit` passed.
bool eventually(const std::function<bool()>& f, std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

// The built crm-captured (or `argv` before it, e.g. systemd-socket-activate)
// as a child, its standard output and error in `dir`/daemon.log, with the
// test's environment plus `env`.
class Daemon {
 public:
  Daemon(const fs::path& dir, const fs::path& config, std::vector<std::string> env = {},
         std::vector<std::string> argv = {})
      : log_(dir / "daemon.log") {
    const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
    argv.insert(argv.end(), {exe, "--config", config.string()});
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> a, e;
      for (auto& s : argv) a.push_back(s.data());
      for (auto& s : env) e.push_back(s.data());
      a.push_back(nullptr);
      e.push_back(nullptr);
      ::execvpe(a[0], a.data(), e.data());
      ::_exit(127);
    }
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return test::read_file(log_); }
  bool logged(const std::string& needle, std::chrono::seconds limit = 30s) const {
    return eventually([&] { return log().find(needle) != std::string::npos; }, limit);
  }
  // Sends `sig` and waits up to `limit` for the exit; its wait status, or -1
  // when it had to be killed.
  int stop(int sig = SIGTERM, std::chrono::seconds limit = 20s) {
    ::kill(pid_, sig);
    int st = 0;
    const bool exited = eventually([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, limit);
    if (!exited) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      st = -1;
    }
    pid_ = -1;
    return st;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

// GET /v1/status as JSON; null when the daemon does not answer.
boost::json::value status_of(const std::string& socket) {
  auto r = api::call(socket, "GET", "/v1/status", 2000ms);
  if (!r || r->status != 200) return nullptr;
  return boost::json::parse(r->body);
}

// That side of the named mailbox in `status`; null when absent.
const boost::json::value* side_of(const boost::json::value& status, const std::string& mailbox,
                                  const char* side) {
  if (!status.is_object()) return nullptr;
  for (const auto& m : status.at("mailboxes").as_array()) {
    if (m.at("name").as_string() == mailbox) return &m.at(side);
  }
  return nullptr;
}

std::string state_of(const std::string& socket, const std::string& mailbox,
                     const char* side = "imap") {
  const auto st = status_of(socket);
  const auto* s = side_of(st, mailbox, side);
  if (!s || !s->is_object()) return "";
  return std::string(s->at("state").as_string());
}

std::size_t activities_via_api(const std::string& socket) {
  auto r = api::call(socket, "GET", "/v1/activities?limit=1000", 2000ms);
  if (!r || r->status != 200) return 0;
  return boost::json::parse(r->body).at("items").as_array().size();
}

std::string message_from_jane(const std::string& mid, const std::string& subject = "Hello") {
  return test::message("From: jane@acme.com\nTo: user1@example.com\nSubject: " + subject +
                       "\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <" + mid + ">\n");
}

// Binds `fd` (a TCP socket) to a free port of 127.0.0.1 and returns that
// port; empty when it could not.
std::string bind_loopback(int fd) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "";
  }
  return std::to_string(ntohs(addr.sin_port));
}

class Service : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::DovecotServer::available()) GTEST_SKIP() << "dovecot is not installed";
    dovecot = std::make_unique<test::DovecotServer>(3);
    test::directory_store(db().string());
  }

  fs::path db() const { return dir.path() / "capture.db"; }
  std::string socket() const { return (dir.path() / "run" / "api.sock").string(); }

  // A [[mailbox]] named `name` for Dovecot's `user`, with `extra` lines in
  // its [mailbox.imap] table.
  std::string mailbox(const std::string& name, const std::string& user,
                      const std::string& extra = "") const {
    const fs::path pass = dir.path() / (user + ".pass");
    if (!fs::exists(pass)) {
      std::ofstream(pass) << test::DovecotServer::password_of(user) << "\n";
      fs::permissions(pass, fs::perms::owner_read | fs::perms::owner_write);
    }
    return "[[mailbox]]\nname = \"" + name + "\"\nowner = [\"" + user +
           "@example.com\"]\n[mailbox.imap]\nurl = \"imap://127.0.0.1:" +
           std::to_string(dovecot->imap_port()) + "\"\nallow_insecure = true\nusername = \"" +
           user + "\"\npassword_file = \"" + pass.string() +
           "\"\nfolders = [\"INBOX\", \"Sent\"]\n" + extra;
  }

  // `mailbox` (a table of mailbox()) with its server on `port` instead.
  std::string on_port(std::string mailbox, const std::string& port) const {
    const std::string ours = std::to_string(dovecot->imap_port());
    return mailbox.replace(mailbox.find(ours), ours.size(), port);
  }

  // Writes the configuration file with `mailboxes` and returns its path.
  fs::path config(const std::string& mailboxes, const fs::path& store = {}) const {
    const fs::path c = dir.path() / "c.toml";
    std::ofstream(c) << "[store]\npath = \"" << (store.empty() ? db() : store).string()
                     << "\"\n[api]\nsocket = \"" << socket()
                     << "\"\n[identity]\ninternal_domains = [\"example.com\"]\n"
                     << mailboxes;
    return c;
  }

  test::TempDir dir;
  std::unique_ptr<test::DovecotServer> dovecot;
};

}  // namespace

// POST /v1/sync starts a pass now: mail put in Sent is never announced by
// IDLE on INBOX, and the next poll is an hour away; only the asked pass can
// capture it. Through the API and through `crm-capture sync`.
TEST_F(Service, SyncNowStartsAPassAndAnUnknownMailboxIs404) {
  Daemon d(dir.path(), config(mailbox("alice", "user1", "poll_seconds = 3600\n")));
  ASSERT_TRUE(eventually([&] { return state_of(socket(), "alice") == "idle"; })) << d.log();
  // IDLE has begun once the state is idle and a moment passed.
  std::this_thread::sleep_for(300ms);
  dovecot->deliver_doveadm(
      "Sent",
      test::message("From: user1@example.com\nTo: jane@acme.com\nSubject: Quote\n"
                    "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <s1@example.com>\n"));
  auto asked = api::call(socket(), "POST", "/v1/sync?mailbox=alice");
  ASSERT_TRUE(asked) << asked.error().message;
  EXPECT_EQ(asked->status, 202) << asked->body;
  EXPECT_TRUE(eventually([&] { return activities_via_api(socket()) == 1; }, 20s)) << d.log();

  auto unknown = api::call(socket(), "POST", "/v1/sync?mailbox=nobody");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(unknown->body.find("nobody"), std::string::npos);

  // The CLI: every mailbox, then one; an unknown one fails with the reason.
  dovecot->deliver_doveadm(
      "Sent",
      test::message("From: user1@example.com\nTo: jane@acme.com\nSubject: Again\n"
                    "Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <s2@example.com>\n"));
  auto all = test::run("crm-capture", "--socket " + socket() + " sync");
  EXPECT_EQ(all.status, 0) << all.out;
  EXPECT_EQ(all.out, "sync started: every mailbox\n");
  EXPECT_TRUE(eventually([&] { return activities_via_api(socket()) == 2; }, 20s)) << d.log();
  auto one = test::run("crm-capture", "--socket " + socket() + " sync --mailbox alice");
  EXPECT_EQ(one.status, 0) << one.out;
  auto none = test::run("crm-capture", "--socket " + socket() + " sync --mailbox nobody");
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.out.find("404"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("no mailbox nobody"), std::string::npos) << none.out;
  const int st = d.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << d.log();
}

// SIGTERM in the middle of a backfill: exit status 0, the socket file gone,
// and the store consistent: a later run captures every message exactly
// once (nothing half-committed, nothing lost, nothing doubled).
TEST_F(Service, SigtermDuringABackfillExitsCleanlyAndTheStoreStaysWhole) {
  constexpr int kCount = 600;
  for (int i = 0; i < kCount; ++i) {
    dovecot->deliver_file("INBOX", message_from_jane("m" + std::to_string(i) + "@acme.com"));
  }
  const fs::path c = config(mailbox("alice", "user1", "batch_size = 50\n"));
  {
    Daemon d(dir.path(), c);
    ASSERT_TRUE(eventually([&] { return activities_via_api(socket()) > 0; })) << d.log();
    const int st = d.stop(SIGTERM, 60s);
    ASSERT_TRUE(WIFEXITED(st)) << st << d.log();
    EXPECT_EQ(WEXITSTATUS(st), 0) << d.log();
    EXPECT_NE(d.log().find("crm-captured: stopping"), std::string::npos) << d.log();
    EXPECT_FALSE(fs::exists(socket()));
  }
  auto again = test::run("crm-captured", "--once --config " + c.string());
  EXPECT_EQ(again.status, 0) << again.out;
  auto st = store::Store::open(db().string()).value();
  const auto all = st->list({}).value();
  std::set<std::string> ids;
  for (const auto& a : all) ids.insert(a.message_id);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kCount));
}

// SIGHUP: a mailbox added starts, one removed stops, one changed restarts,
// one unchanged keeps its connection (its pass count and state_since go on);
// a broken file is refused with file:line and the running set stays.
TEST_F(Service, SighupRestartsOnlyTheMailboxesThatChanged) {
  config(mailbox("alice", "user1") + mailbox("bob", "user2"));
  Daemon d(dir.path(), dir.path() / "c.toml");
  ASSERT_TRUE(eventually([&] {
    return state_of(socket(), "alice") == "idle" && state_of(socket(), "bob") == "idle";
  })) << d.log();
  const auto before = status_of(socket());
  const auto alice_since = side_of(before, "alice", "imap")->at("state_since");
  const auto bob_since = side_of(before, "bob", "imap")->at("state_since");
  // Old enough that a restart could not keep the same second.
  std::this_thread::sleep_for(1100ms);

  // alice unchanged, bob changed (poll_seconds), carol added.
  config(mailbox("alice", "user1") + mailbox("bob", "user2", "poll_seconds = 120\n") +
         mailbox("carol", "user3"));
  ::kill(d.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return state_of(socket(), "carol") == "idle"; })) << d.log();
  // The new bob's first pass, not the old one's state.
  ASSERT_TRUE(eventually([&] {
    const auto s = status_of(socket());
    const auto* bob = side_of(s, "bob", "imap");
    return bob && bob->is_object() && bob->at("state") == "idle" &&
           bob->at("state_since") != bob_since;
  })) << d.log();
  auto after = status_of(socket());
  EXPECT_EQ(side_of(after, "alice", "imap")->at("state_since"), alice_since) << after;
  EXPECT_NE(side_of(after, "bob", "imap")->at("state_since"), bob_since) << after;
  EXPECT_TRUE(d.logged("bob: its settings changed; restarting")) << d.log();
  EXPECT_EQ(d.log().find("alice: its settings changed"), std::string::npos) << d.log();

  // bob removed.
  config(mailbox("alice", "user1") + mailbox("carol", "user3"));
  ::kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.logged("bob: removed from the configuration; stopping")) << d.log();
  EXPECT_TRUE(eventually([&] {
    const auto s = status_of(socket());
    return s.is_object() && side_of(s, "bob", "imap") == nullptr;
  })) << d.log();

  // A broken file: refused with its file and line, and the running set stays.
  { std::ofstream(dir.path() / "c.toml", std::ios::app) << "[capture]\nbackfil_days = 3\n"; }
  const std::size_t lines = std::count(
      std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(dir.path() / "c.toml")),
      std::istreambuf_iterator<char>(), '\n');
  ::kill(d.pid(), SIGHUP);
  const std::string where = (dir.path() / "c.toml").string() + ":" + std::to_string(lines) + ":";
  EXPECT_TRUE(d.logged("reload refused, the running configuration stays: " + where)) << d.log();
  const auto kept = status_of(socket());
  EXPECT_EQ(side_of(kept, "alice", "imap")->at("state_since"), alice_since) << kept;
  EXPECT_NE(side_of(kept, "carol", "imap"), nullptr) << kept;

  // New mail still reaches a mailbox that lived through all of it.
  dovecot->deliver_doveadm("INBOX", message_from_jane("after-reload@acme.com"));
  EXPECT_TRUE(eventually([&] { return activities_via_api(socket()) == 1; })) << d.log();
  const int st = d.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << d.log();
}

// A mailbox whose server accepts the connection and never says a word is
// stuck in its greeting (for timeout_seconds); the mailbox beside it captures
// all the same, and the API answers throughout.
TEST_F(Service, AMailboxStuckOnASilentServerHoldsUpNoOther) {
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  const std::string port = bind_loopback(silent);
  ASSERT_NE(port, "");
  // The kernel completes the handshakes; nobody ever accepts or answers.
  ASSERT_EQ(::listen(silent, 16), 0);
  const std::string stuck = on_port(mailbox("stuck", "user2", "timeout_seconds = 3600\n"), port);
  dovecot->deliver_doveadm("INBOX", message_from_jane("beside@acme.com"));
  Daemon d(dir.path(), config(stuck + mailbox("alice", "user1")));
  EXPECT_TRUE(eventually([&] { return activities_via_api(socket()) == 1; })) << d.log();
  EXPECT_TRUE(eventually([&] { return state_of(socket(), "alice") == "idle"; })) << d.log();
  // Connected, and waiting for a greeting that never comes.
  EXPECT_EQ(state_of(socket(), "stuck"), "connecting") << status_of(socket());
  // Asking the stuck one to sync does not hold up the API either.
  auto asked = api::call(socket(), "POST", "/v1/sync", 2000ms);
  ASSERT_TRUE(asked) << asked.error().message;
  EXPECT_EQ(asked->status, 202);
  dovecot->deliver_doveadm("INBOX", message_from_jane("later@acme.com"));
  EXPECT_TRUE(eventually([&] { return activities_via_api(socket()) == 2; })) << d.log();
  const int st = d.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << d.log();
  ::close(silent);
}

// An IMAP backfill says so on /v1/status while it runs, with its progress:
// messages committed of those listed, the total being the messages of the
// window; then the mailbox idles.
TEST_F(Service, AnImapBackfillShowsItsProgressThenIdles) {
  constexpr std::int64_t kCount = 3000;
  for (std::int64_t i = 0; i < kCount; ++i) {
    dovecot->deliver_file("INBOX", message_from_jane("p" + std::to_string(i) + "@acme.com"));
  }
  Daemon d(dir.path(), config(mailbox("alice", "user1", "batch_size = 100\n")));
  std::vector<std::string> states;  // each state seen, once per run of it
  std::vector<std::pair<std::int64_t, std::int64_t>> progress;  // done, total, as seen
  std::string odd;  // the first observation that breaks the contract
  const bool idle = eventually(
      [&] {
        const auto st = status_of(socket());
        const auto* s = side_of(st, "alice", "imap");
        if (!s || !s->is_object()) return false;
        const std::string state(s->at("state").as_string());
        if (states.empty() || states.back() != state) states.push_back(state);
        const auto& p = s->at("progress");
        if (state == "backfilling" && p.is_object()) {
          const auto done = p.at("done").to_number<std::int64_t>();
          const auto total = p.at("total").to_number<std::int64_t>();
          if (done > total || total != kCount) odd = boost::json::serialize(*s);
          if (!progress.empty() && done < progress.back().first) {
            odd = "done went back: " + boost::json::serialize(*s);
          }
          progress.emplace_back(done, total);
        } else if (!p.is_null() && odd.empty()) {
          odd = "progress outside a backfill: " + boost::json::serialize(*s);
        }
        return state == "idle";
      },
      120s);
  std::string seen;
  for (const auto& s : states) seen += s + " ";
  ASSERT_TRUE(idle) << seen << d.log();
  EXPECT_EQ(odd, "") << seen;
  // Never idle or failed before the end; a backfill seen with a count in
  // between its start and its end.
  ASSERT_GE(states.size(), 2u) << seen;
  EXPECT_EQ(states.back(), "idle");
  for (std::size_t i = 0; i + 1 < states.size(); ++i) {
    EXPECT_TRUE(states[i] == "starting" || states[i] == "connecting" || states[i] == "backfilling")
        << seen;
  }
  EXPECT_NE(std::find(states.begin(), states.end(), "backfilling"), states.end()) << seen;
  EXPECT_TRUE(std::any_of(progress.begin(), progress.end(),
                          [](const auto& p) { return p.first < p.second; }))
      << seen << progress.size() << " observations";
  const auto st = status_of(socket());
  const auto& alice = *side_of(st, "alice", "imap");
  EXPECT_TRUE(alice.at("progress").is_null()) << alice;
  EXPECT_EQ(alice.at("counters").at("seen").to_number<std::int64_t>(), kCount) << alice;
  // A later pass (asked for) is a sync, not a backfill.
  dovecot->deliver_doveadm("INBOX", message_from_jane("after@acme.com"));
  auto asked = api::call(socket(), "POST", "/v1/sync?mailbox=alice");
  ASSERT_TRUE(asked);
  EXPECT_TRUE(eventually([&] {
    const auto now = status_of(socket());
    const auto* s = side_of(now, "alice", "imap");
    return s && s->at("counters").at("seen").to_number<std::int64_t>() == kCount + 1;
  })) << d.log();
  const int code = d.stop();
  EXPECT_TRUE(WIFEXITED(code) && WEXITSTATUS(code) == 0) << code << d.log();
}

// An IMAP server whose port is closed: the side connects, fails, says it is
// retrying and when, and connects again; never left `starting`.
TEST_F(Service, AnImapSideWhoseServerIsClosedSaysItIsRetryingAndWhen) {
  // A port nobody listens on: bound, then closed.
  const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(probe, 0);
  const std::string port = bind_loopback(probe);
  ::close(probe);
  ASSERT_NE(port, "");
  const std::string closed = on_port(mailbox("closed", "user1"), port);
  Daemon d(dir.path(), config(closed));
  ASSERT_TRUE(eventually([&] { return state_of(socket(), "closed") == "retrying"; }, 10s))
      << status_of(socket()) << d.log();
  const auto st = status_of(socket());
  const auto& side = *side_of(st, "closed", "imap");
  EXPECT_TRUE(side.at("next_attempt_at").is_string()) << side;
  EXPECT_NE(std::string(side.at("reason").as_string()).find("127.0.0.1:" + port), std::string::npos)
      << side;
  EXPECT_FALSE(side.at("last_pass").at("ok").as_bool()) << side;
  EXPECT_TRUE(side.at("progress").is_null()) << side;
  // A sync now is one more attempt at once: it connects, and fails again.
  auto asked = api::call(socket(), "POST", "/v1/sync?mailbox=closed");
  ASSERT_TRUE(asked);
  EXPECT_EQ(asked->status, 202);
  std::set<std::string> seen;
  EXPECT_TRUE(eventually(
      [&] {
        const auto now = status_of(socket());
        const auto* s = side_of(now, "closed", "imap");
        if (!s) return false;
        seen.insert(std::string(s->at("state").as_string()));
        return s->at("counters").at("failed_passes").to_number<std::int64_t>() >= 2;
      },
      10s))
      << status_of(socket());
  for (const auto& s : seen) EXPECT_TRUE(s == "connecting" || s == "retrying") << s;
  const int code = d.stop();
  EXPECT_TRUE(WIFEXITED(code) && WEXITSTATUS(code) == 0) << code << d.log();
}

// A CalDAV side reports its passes like the IMAP side: a server that
// refuses connections leaves it retrying, with the time of the next attempt.
TEST_F(Service, ACaldavSideSaysItIsRetryingAndWhen) {
  std::ofstream(dir.path() / "dav.pass") << "secret\n";
  fs::permissions(dir.path() / "dav.pass", fs::perms::owner_read | fs::perms::owner_write);
  Daemon d(dir.path(),
           config("[[mailbox]]\nname = \"cal\"\nowner = [\"user1@example.com\"]\n"
                  "[mailbox.caldav]\nurl = \"http://127.0.0.1:9/\"\nallow_insecure = true\n"
                  "username = \"alice\"\npassword_file = \"" +
                  (dir.path() / "dav.pass").string() + "\"\ninterval_seconds = 3600\n"));
  ASSERT_TRUE(eventually([&] { return state_of(socket(), "cal", "caldav") == "retrying"; }))
      << d.log();
  const auto st = status_of(socket());
  const auto& cal = *side_of(st, "cal", "caldav");
  EXPECT_TRUE(cal.at("next_attempt_at").is_string()) << cal;
  EXPECT_NE(std::string(cal.at("reason").as_string()).find("127.0.0.1:9"), std::string::npos)
      << cal;
  EXPECT_FALSE(cal.at("last_pass").at("ok").as_bool());
  // A sync now is one more pass at once, not after the backoff (30 s).
  auto asked = api::call(socket(), "POST", "/v1/sync?mailbox=cal");
  ASSERT_TRUE(asked);
  EXPECT_EQ(asked->status, 202);
  EXPECT_TRUE(eventually(
      [&] {
        const auto now = status_of(socket());
        const auto* c = side_of(now, "cal", "caldav");
        return c && c->at("counters").at("failed_passes").to_number<std::int64_t>() >= 2;
      },
      10s))
      << status_of(socket());
  const int code = d.stop();
  EXPECT_TRUE(WIFEXITED(code) && WEXITSTATUS(code) == 0) << code << d.log();
}

// Under systemd, standard error is the journal ($JOURNAL_STREAM names it):
// each line then starts with its syslog level.
TEST_F(Service, LinesToTheJournalCarryTheirLevel) {
  const fs::path log = dir.path() / "daemon.log";
  std::ofstream(log).close();
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  // The Daemon reopens the same file (same inode) as its standard error.
  Daemon d(dir.path(), config(mailbox("alice", "user1")),
           {"JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)});
  ASSERT_TRUE(d.logged("<6>crm-captured: running 1 IMAP and 0 CalDAV account(s)")) << d.log();
  ASSERT_TRUE(d.logged("<6>crm-captured: alice: INBOX: ")) << d.log();
  d.stop();
  for (std::size_t at = 0; at < d.log().size();) {
    const std::size_t end = d.log().find('\n', at);
    const std::string line = d.log().substr(at, end - at);
    EXPECT_TRUE(line.starts_with("<3>") || line.starts_with("<4>") || line.starts_with("<6>"))
        << line;
    at = end == std::string::npos ? end : end + 1;
  }
}

// The API listens before the store is open: while the daemon's open waits
// (a migration; here another process holds the new store's lock for 3 s),
// every request is answered 503 `migrating`; then it serves.
TEST_F(Service, TheApiAnswers503MigratingUntilTheStoreIsOpen) {
  const fs::path fresh = dir.path() / "fresh.db";
  std::ofstream(dir.path() / "lock.py")
      << "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nc.execute('CREATE TABLE t(x)')\n"
         "print('locked', flush=True)\ntime.sleep(3)\nc.execute('ROLLBACK')\n";
  FILE* lock =
      ::popen(("python3 " + (dir.path() / "lock.py").string() + " " + fresh.string()).c_str(), "r");
  ASSERT_NE(lock, nullptr);
  char line[16] = {};
  ASSERT_NE(std::fgets(line, sizeof line, lock), nullptr);
  EXPECT_STREQ(line, "locked\n");
  Daemon d(dir.path(), config(mailbox("alice", "user1"), fresh));
  std::string seen;
  EXPECT_TRUE(eventually(
      [&] {
        auto r = api::call(socket(), "GET", "/v1/status", 1000ms);
        if (r) seen = std::to_string(r->status) + " " + r->body;
        return r && r->status == 503;
      },
      10s))
      << seen << d.log();
  EXPECT_NE(seen.find("\"migrating\""), std::string::npos) << seen;
  ::pclose(lock);
  EXPECT_TRUE(eventually([&] { return state_of(socket(), "alice") == "idle"; })) << d.log();
  const int st = d.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << d.log();
}

// Many mailboxes start staggered (kStaggerStep, 25 ms, apart past 8
// mailboxes): the first connections of ten mailboxes reach their server
// spread over at least 9 steps, not at once.
TEST_F(Service, ManyMailboxesStartStaggered) {
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(server, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(server, 64), 0);
  std::vector<std::chrono::steady_clock::time_point> accepted;
  std::thread acceptor([&] {
    // The first ten connections, each closed at once (the account retries
    // after its backoff, a second later).
    while (accepted.size() < 10) {
      const int c = ::accept(server, nullptr, nullptr);
      if (c < 0) return;
      accepted.push_back(std::chrono::steady_clock::now());
      ::close(c);
    }
  });
  std::string boxes;
  for (int i = 0; i < 10; ++i) {
    std::string b = mailbox("m" + std::to_string(i), "user1");
    b.replace(b.find(std::to_string(dovecot->imap_port())),
              std::to_string(dovecot->imap_port()).size(), std::to_string(ntohs(addr.sin_port)));
    boxes += b;
  }
  Daemon d(dir.path(), config(boxes));
  const bool all = eventually([&] { return d.log().find("m9: ") != std::string::npos; });
  ::shutdown(server, SHUT_RDWR);
  acceptor.join();
  ::close(server);
  ASSERT_TRUE(all) << d.log();
  ASSERT_EQ(accepted.size(), 10u) << d.log();
  // Started at once they would come within a few ms; staggered, about 9 x
  // 25 ms apart. The accepts are seen late by up to a scheduling delay each,
  // so a fifth is allowed off.
  EXPECT_GE(accepted.back() - accepted.front(), 9 * 20ms) << d.log();
  const int st = d.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << d.log();
}
