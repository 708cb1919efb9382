// SPDX-License-Identifier: Apache-2.0
// sd_notify without libsystemd, against a real AF_UNIX datagram socket bound
// as systemd binds a unit's notify socket.
#include "daemon/service/notify.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

using namespace crmcap;

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
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  bool bound() const { return bound_; }
  // The next datagram; "" after 2 s without one.
  std::string receive() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
};

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

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
