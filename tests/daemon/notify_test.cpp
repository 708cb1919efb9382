// SPDX-License-Identifier: Apache-2.0
// sd_notify without libsystemd, against a real AF_UNIX datagram socket bound
// as systemd binds a unit's notify socket.
#include "daemon/service/notify.hpp"
#include "daemon/api/client.hpp"
#include "tests/support/scoped_env.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace crmcap;
using crmcap::test::ScopedEnv;

namespace {

// A bound datagram socket, as systemd's; "@name" binds an abstract one.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      ++len;
    }
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  bool bound() const { return bound_; }
  // The next datagram; "" after `seconds` without one.
  std::string receive(int seconds = 2) {
    timeval tv{seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
};

// Starts args[0] with `args` and exactly `env`, its standard output and
// error to /dev/null: its pid, or -1.
pid_t spawn_quiet(std::vector<std::string> args, std::vector<std::string> env) {
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  for (auto& e : env) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

}  // namespace

TEST(SdNotify, ReadyReachesTheUnitsNotifySocket) {
  test::TempDir dir;
  const std::string path = (dir.path() / "notify").string();
  NotifySocket sock(path);
  ASSERT_TRUE(sock.bound());
  const ScopedEnv env("NOTIFY_SOCKET", path);
  EXPECT_TRUE(service::notify("READY=1\nSTATUS=running"));
  EXPECT_EQ(sock.receive(), "READY=1\nSTATUS=running");
}

TEST(SdNotify, AnAbstractNotifySocketOfTheUnitIsReached) {
  const std::string name = "@crmcap-test-" + std::to_string(::getpid());
  NotifySocket sock(name);
  ASSERT_TRUE(sock.bound());
  EXPECT_TRUE(service::notify_to(name, "READY=1"));
  EXPECT_EQ(sock.receive(), "READY=1");
}

TEST(SdNotify, OutsideAUnitNothingIsSentAndNothingFails) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(service::notify("READY=1"));
  EXPECT_FALSE(service::notify_to("relative/path", "READY=1"));
  test::TempDir dir;
  EXPECT_FALSE(service::notify_to((dir.path() / "nobody-listens").string(), "READY=1"));
}

TEST(SdNotify, WatchdogOfTheUnitIsPingedWhileTheLoopRuns) {
  test::TempDir dir;
  const std::string path = (dir.path() / "notify").string();
  NotifySocket sock(path);
  ASSERT_TRUE(sock.bound());
  const ScopedEnv socket_env("NOTIFY_SOCKET", path);
  const ScopedEnv usec_env("WATCHDOG_USEC", "100000");  // pings every 50 ms
  boost::asio::io_context io;
  auto busy = boost::asio::make_work_guard(io);  // the daemon's loop always has work
  {
    const service::Watchdog watchdog(io.get_executor());
    io.run_for(std::chrono::milliseconds(300));
  }
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");
}

TEST(SdNotify, WatchdogOfAnotherProcessIsNotOurs) {
  const ScopedEnv usec_env("WATCHDOG_USEC", "100000");
  {
    const ScopedEnv pid_env("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_EQ(service::watchdog_interval().count(), 0);
  }
  const ScopedEnv pid_env("WATCHDOG_PID", std::to_string(::getpid()));
  EXPECT_EQ(service::watchdog_interval(), std::chrono::microseconds(100000));
}

// The built daemon as systemd runs a Type=notify unit with WatchdogSec=: READY=1
// once running, WATCHDOG=1 while its loop turns, STOPPING=1 on SIGTERM, then a
// clean exit. Its one mailbox has only a calendar on a closed port, so it
// runs without a server (the pass fails and waits to be retried).
TEST(SdNotify, TheDaemonRunsAsATypeNotifyUnitWithAWatchdog) {
  test::TempDir dir;
  const std::string notify = (dir.path() / "notify").string();
  NotifySocket sock(notify);
  ASSERT_TRUE(sock.bound());
  const std::string toml = (dir.path() / "c.toml").string();
  std::ofstream(dir.path() / "alice.pass") << "secret\n";
  std::ofstream(toml) << "[store]\npath = \"capture.db\"\n[api]\nsocket = \"api.sock\"\n"
                         "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
                         "[mailbox.caldav]\nurl = \"http://127.0.0.1:9/\"\n"
                         "allow_insecure = true\nusername = \"alice\"\n"
                         "password_file = \"alice.pass\"\ninterval_seconds = 3600\n";
  const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
  std::vector<std::string> args = {exe, "--config", toml};
  std::vector<std::string> env = {"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=200000",
                                  "PATH=/usr/bin:/bin"};
  const pid_t pid = spawn_quiet(args, env);
  ASSERT_GT(pid, 0);

  // The loop turns, and pings, while the store opens too: a slow opening
  // (a migration; a sanitizer build) pings before READY=1, which systemd
  // ignores (the watchdog starts once the start-up completed).
  std::string first = sock.receive(30);
  for (int i = 0; i < 100 && first == "WATCHDOG=1"; ++i) first = sock.receive(30);
  EXPECT_EQ(first, "READY=1\nSTATUS=0 IMAP and 1 CalDAV account(s)");
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");
  ::kill(pid, SIGTERM);
  std::string got;
  for (int i = 0; i < 20 && got != "STOPPING=1"; ++i) got = sock.receive();
  EXPECT_EQ(got, "STOPPING=1");
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Socket activation as a .socket unit does it, by systemd-socket-activate:
// the daemon serves the API on the socket it is passed (fd 3, named "api")
// and binds nothing of its own; the first connection, which started it, is
// answered. SIGTERM leaves the socket's file to its owner.
TEST(SdNotify, TheDaemonServesTheApiOnTheSocketSystemdPasses) {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
    GTEST_SKIP() << "systemd-socket-activate is not installed";
  }
  test::TempDir dir;
  const std::string notify = (dir.path() / "notify").string();
  NotifySocket sock(notify);
  ASSERT_TRUE(sock.bound());
  const std::string toml = (dir.path() / "c.toml").string();
  const std::string own = (dir.path() / "own" / "api.sock").string();
  const std::string passed = (dir.path() / "passed.sock").string();
  std::ofstream(dir.path() / "alice.pass") << "secret\n";
  std::ofstream(toml) << "[store]\npath = \"capture.db\"\n[api]\nsocket = \"" << own
                      << "\"\n[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
                         "[mailbox.caldav]\nurl = \"http://127.0.0.1:9/\"\n"
                         "allow_insecure = true\nusername = \"alice\"\n"
                         "password_file = \"alice.pass\"\ninterval_seconds = 3600\n";
  const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
  std::vector<std::string> args = {"/usr/bin/systemd-socket-activate",
                                   "-l",
                                   passed,
                                   "--fdname=api",
                                   "-E",
                                   "NOTIFY_SOCKET=" + notify,
                                   exe,
                                   "--config",
                                   toml};
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  const pid_t pid = spawn_quiet(args, env);
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 200 && !std::filesystem::exists(passed); ++i) ::usleep(50'000);
  ASSERT_TRUE(std::filesystem::exists(passed));

  // The first connection starts the daemon, which answers it: 503
  // migrating while it opens its store, then the status.
  auto r = api::call(passed, "GET", "/v1/status", std::chrono::seconds(30));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(sock.receive(30), "READY=1\nSTATUS=0 IMAP and 1 CalDAV account(s)");
  if (r->status == 503) {
    EXPECT_NE(r->body.find("\"migrating\""), std::string::npos) << r->body;
    r = api::call(passed, "GET", "/v1/status");
    ASSERT_TRUE(r) << r.error().message;
  }
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"alice\""), std::string::npos) << r->body;
  EXPECT_FALSE(std::filesystem::exists(own)) << "the daemon bound a socket of its own";

  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(std::filesystem::exists(passed)) << "the socket unit's file was removed";
}
