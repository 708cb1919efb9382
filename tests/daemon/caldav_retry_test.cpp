// SPDX-License-Identifier: Apache-2.0
// When a CalDAV account's next pass starts: capture::next_pass_delay on its
// own, then crm-captured against a fake HTTP server on 127.0.0.1 that answers
// every request the same way, counting them.
#include "daemon/capture/caldav_account.hpp"
#include "tests/daemon/test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace crmcap;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1795996800));
constexpr std::uint64_t kNoJitter = 5000;  // the middle of next_pass_delay's spread

caldav::SyncError failure(caldav::RetryClass retry,
                          std::optional<std::chrono::system_clock::time_point> at = {}) {
  return caldav::SyncError{caldav::make_error_code(caldav::Errc::server_busy), "m: busy", retry,
                           at};
}

capture::CaldavPass calendar_failures(std::vector<caldav::SyncError> errors) {
  capture::CaldavPass pass;
  for (auto& e : errors) pass.calendars.push_back({{}, std::nullopt, std::move(e)});
  return pass;
}

TEST(CaldavNextPass, TheIntervalWithoutARetryableFailure) {
  capture::CaldavPass ok;
  ok.calendars.push_back({{}, caldav::SyncReport{}, std::nullopt});
  EXPECT_EQ(capture::next_pass_delay(ok, 0, 300s, kNow, kNoJitter), 300s);
  // A refused password is not retried sooner: its calendar is left out.
  auto refused = calendar_failures({failure(caldav::RetryClass::needs_user, kNow + 5s)});
  EXPECT_FALSE(refused.retryable_failure());
  EXPECT_EQ(capture::next_pass_delay(refused, 0, 300s, kNow, kNoJitter), 300s);
}

TEST(CaldavNextPass, BacksOffExponentiallyUpToACap) {
  capture::CaldavPass pass;
  pass.error = failure(caldav::RetryClass::retry_later);
  ASSERT_TRUE(pass.retryable_failure());
  const milliseconds expected[] = {30s, 60s, 120s, 240s, 480s, 960s, 1800s, 1800s};
  for (unsigned n = 1; n <= 8; ++n) {
    EXPECT_EQ(capture::next_pass_delay(pass, n, 300s, kNow, kNoJitter), expected[n - 1]) << n;
  }
  EXPECT_EQ(capture::next_pass_delay(pass, 4'000'000'000u, 300s, kNow, kNoJitter), 1800s);
  // A short interval starts lower; a long one is the cap.
  EXPECT_EQ(capture::next_pass_delay(pass, 1, 10s, kNow, kNoJitter), 10s);
  EXPECT_EQ(capture::next_pass_delay(pass, 2, 10s, kNow, kNoJitter), 20s);
  EXPECT_EQ(capture::next_pass_delay(pass, 30, 7200s, kNow, kNoJitter), 7200s);
}

TEST(CaldavNextPass, JitterSpreadsByAFifthEitherWay) {
  capture::CaldavPass pass;
  pass.error = failure(caldav::RetryClass::retry_later);
  EXPECT_EQ(capture::next_pass_delay(pass, 2, 300s, kNow, 0), 48s);
  EXPECT_EQ(capture::next_pass_delay(pass, 2, 300s, kNow, 10000), 72s);
  for (std::uint64_t bits : {1ull, 123456789ull, ~0ull}) {
    const auto d = capture::next_pass_delay(pass, 2, 300s, kNow, bits);
    EXPECT_GE(d, 48s) << bits;
    EXPECT_LE(d, 72s) << bits;
  }
}

TEST(CaldavNextPass, RetryAfterIsHonoured) {
  // The latest Retry-After of the pass wins over the backoff, either way.
  auto pass = calendar_failures({failure(caldav::RetryClass::retry_later, kNow + 5s),
                                 failure(caldav::RetryClass::retry_later, kNow + 2h),
                                 failure(caldav::RetryClass::retry_later)});
  EXPECT_EQ(capture::next_pass_delay(pass, 1, 300s, kNow, kNoJitter), 2h);
  pass = calendar_failures({failure(caldav::RetryClass::retry_later, kNow + 5s)});
  EXPECT_EQ(capture::next_pass_delay(pass, 9, 300s, kNow, kNoJitter), 5s);
  // A time already past (the pass took long): the least delay still.
  EXPECT_EQ(capture::next_pass_delay(pass, 1, 300s, kNow + 1min, kNoJitter), 1s);
  // A needs_user error's Retry-After does not count.
  pass = calendar_failures({failure(caldav::RetryClass::needs_user, kNow + 1h),
                            failure(caldav::RetryClass::retry_later)});
  EXPECT_EQ(capture::next_pass_delay(pass, 1, 300s, kNow, kNoJitter), 30s);
}

// An HTTP server on 127.0.0.1 that answers every request with `reply` and
// closes the connection, counting the requests.
class AnsweringServer {
 public:
  explicit AnsweringServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 8) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("answering server: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~AnsweringServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  int requests() const { return requests_; }
  // When the `n`th request (from 1) was answered; nullopt before it came.
  std::optional<std::chrono::steady_clock::time_point> answered(int n) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (n < 1 || static_cast<std::size_t>(n) > times_.size()) return std::nullopt;
    return times_[static_cast<std::size_t>(n - 1)];
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // The request's head is enough to answer; its body is never looked at.
      std::string head;
      char buf[4096];
      pollfd r{c, POLLIN, 0};
      while (head.find("\r\n\r\n") == std::string::npos && ::poll(&r, 1, 2000) > 0) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      if (head.find("\r\n\r\n") != std::string::npos) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          times_.push_back(std::chrono::steady_clock::now());
        }
        ++requests_;
        (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }
  std::string reply_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  std::vector<std::chrono::steady_clock::time_point> times_;
  std::thread thread_;
};

// crm-captured running (not --once) on a configuration whose one mailbox has
// only CalDAV at `url`, until stop().
class RunningDaemon {
 public:
  RunningDaemon(const fs::path& dir, const std::string& url) : out_(dir / "daemon.out") {
    const fs::path pass = dir / "dav.pass", conf = dir / "crm-capture.toml";
    std::ofstream(pass) << "secret\n";
    fs::permissions(pass, fs::perms::owner_read | fs::perms::owner_write);
    // A socket of the test's own: the default one is shared by every daemon.
    std::ofstream(conf) << "[store]\npath = \"" << (dir / "s.db").string()
                        << "\"\n[api]\nsocket = \"" << (dir / "api.sock").string()
                        << "\"\n[identity]\ninternal_domains = [\"example.com\"]\n"
                           "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
                           "[mailbox.caldav]\nurl = \""
                        << url << "\"\nusername = \"alice\"\npassword_file = \"" << pass.string()
                        << "\"\ninterval_seconds = 300\nallow_insecure = true\n";
    const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(exe.c_str(), exe.c_str(), "--config", conf.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~RunningDaemon() { stop(); }
  // SIGTERM, then what it printed; its exit status in status().
  std::string stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, &status_, 0);
      pid_ = -1;
    }
    return test::read_file(out_);
  }
  int status() const { return status_; }

 private:
  fs::path out_;
  pid_t pid_ = -1;
  int status_ = -1;
};

TEST(CaldavDaemonRetry, A503WithRetryAfterIsRetriedThenAndNotEarlier) {
  AnsweringServer server(
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n");
  test::TempDir tmp;
  RunningDaemon d(tmp.path(), server.url());
  // Asked again after the second the server asked for, not after
  // interval_seconds (300), and never sooner: a loaded machine may be late
  // (the 30 s bound), never early.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server.requests() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  const std::string out = d.stop();
  ASSERT_GE(server.requests(), 3) << out;
  EXPECT_GE(*server.answered(2) - *server.answered(1), 950ms) << out;
  EXPECT_GE(*server.answered(3) - *server.answered(2), 950ms) << out;
  EXPECT_NE(out.find("HTTP status 503"), std::string::npos) << out;
  EXPECT_NE(out.find("(will retry in 1 s)"), std::string::npos) << out;
  EXPECT_TRUE(WIFEXITED(d.status()) && WEXITSTATUS(d.status()) == 0) << out;
}

TEST(CaldavDaemonRetry, ARefusedPasswordIsNotTriedAgain) {
  AnsweringServer server(
      "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"
      "Content-Length: 0\r\nConnection: close\r\n\r\n");
  test::TempDir tmp;
  RunningDaemon d(tmp.path(), server.url());
  // Its first pass (late on a loaded machine), then time for a retry that
  // must not come: a failing 503 pass retries after 1 s.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server.requests() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(2500ms);
  const int seen = server.requests();
  const std::string out = d.stop();
  EXPECT_GE(seen, 1) << out;
  EXPECT_LE(seen, 2) << out;  // libcurl may ask once without credentials
  EXPECT_NE(out.find("refused the username and password"), std::string::npos) << out;
  EXPECT_NE(out.find("not retrying"), std::string::npos) << out;
}

}  // namespace
