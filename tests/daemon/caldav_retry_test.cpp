// SPDX-License-Identifier: Apache-2.0
// When a CalDAV account's next pass starts: capture::next_pass_delay on its
// own, then crm-captured against a fake HTTP server on 127.0.0.1 that answers
// every request the same way, counting them, and against a real Radicale
// behind tests/servers/caldav_proxy.py (failing or slowing some requests),
// asked over its API socket what it is doing.
#include "daemon/api/client.hpp"
#include "daemon/capture/caldav_account.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/radicale_fixture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
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
// only CalDAV at `url` (as `user` with `password`), until stop().
class RunningDaemon {
 public:
  RunningDaemon(const fs::path& dir, const std::string& url, const std::string& user = "alice",
                const std::string& password = "secret")
      : out_(dir / "daemon.out"), socket_(dir / "api.sock") {
    const fs::path pass = dir / "dav.pass", conf = dir / "crm-capture.toml";
    std::ofstream(pass) << password << "\n";
    fs::permissions(pass, fs::perms::owner_read | fs::perms::owner_write);
    // A socket of the test's own: the default one is shared by every daemon.
    std::ofstream(conf) << "[store]\npath = \"" << (dir / "s.db").string()
                        << "\"\n[api]\nsocket = \"" << (dir / "api.sock").string()
                        << "\"\n[identity]\ninternal_domains = [\"example.com\"]\n"
                           "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
                           "[mailbox.caldav]\nurl = \""
                        << url << "\"\nusername = \"" << user << "\"\npassword_file = \""
                        << pass.string() << "\"\ninterval_seconds = 300\nallow_insecure = true\n";
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
  // What it printed so far.
  std::string output() const { return test::read_file(out_); }
  const fs::path& socket() const { return socket_; }

 private:
  fs::path out_, socket_;
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

// tests/servers/caldav_proxy.py in front of `upstream`, logging every
// request to DIR/requests.log and failing those DIR/fail names; killed at the
// end of the test.
class CaldavProxy {
 public:
  CaldavProxy(const std::string& upstream, fs::path dir) : dir_(std::move(dir)) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Not left behind by a test that dies without its destructors.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      const std::string script = std::string(CRMCAP_SOURCE_DIR) + "/tests/servers/caldav_proxy.py";
      ::execlp("python3", "python3", script.c_str(), upstream.c_str(), dir_.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[64] = {0};
    if (!f || !std::fgets(line, sizeof line, f))
      throw std::runtime_error("caldav_proxy.py: no port");
    std::fclose(f);
    port_ = std::stoi(std::string(line).substr(5));
  }
  ~CaldavProxy() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Requests whose "METHOD PATH" starts with `prefix` get `status` and
  // `header` (a "Name: value" line) until recover().
  void fail(const std::string& prefix, int status, const std::string& header) {
    std::ofstream(dir_ / "fail") << prefix << "\n" << status << "\n" << header << "\n";
  }
  void recover() { fs::remove(dir_ / "fail"); }
  // Requests whose "METHOD PATH" starts with `prefix` (every request when
  // empty) wait `seconds` before they are forwarded.
  void delay(const std::string& prefix, double seconds) {
    std::ofstream(dir_ / "delay") << prefix << "\n" << seconds << "\n";
  }
  // The "METHOD PATH STATUS" lines logged so far that start with `prefix`.
  std::vector<std::string> requests(const std::string& prefix) const {
    std::vector<std::string> out;
    std::istringstream in(test::read_file(dir_ / "requests.log"));
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(prefix)) out.push_back(line);
    }
    return out;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Until `done` holds or `limit` passed (a loaded machine is slow, never early).
template <class F>
bool eventually(F done, std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// How many lines of `text` hold both `a` and `b`.
int lines_with(const std::string& text, const std::string& a, const std::string& b) {
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    n += line.find(a) != std::string::npos && line.find(b) != std::string::npos;
  }
  return n;
}

// Two calendars of a real Radicale, one failing (503, Retry-After: 1, for its
// REPORTs, through a proxy): the good one is captured in the first pass; the
// retries ask for the failing one only, even though the good one changed
// meanwhile (no REPORT on it again); once the failing one recovers its event
// is captured. A sync asked for then takes every calendar again. (Radicale
// names a calendar without a displayname by its path: "user1/bad".)
TEST(CaldavDaemonRetry, OnlyTheFailedCalendarIsRetried) {
  if (!test::RadicaleServer::available()) GTEST_SKIP() << "radicale is not installed";
  test::RadicaleServer dav;
  dav.make_calendar("good");
  dav.make_calendar("bad");
  const auto event = [](const std::string& uid) {
    return test::RadicaleServer::event(uid, "Meeting " + uid);
  };
  dav.put_event("good", "a.ics", event("ev-good"));
  dav.put_event("bad", "b.ics", event("ev-bad"));
  test::TempDir tmp;
  CaldavProxy proxy(dav.url(), tmp.path());
  const std::string good = "REPORT " + dav.calendar_path("good"),
                    bad = "REPORT " + dav.calendar_path("bad");
  proxy.fail(bad, 503, "Retry-After: 1");
  RunningDaemon d(tmp.path(), proxy.url() + "/", dav.user(), dav.password());
  // The first pass, and a retry that failed again.
  ASSERT_TRUE(eventually([&] { return proxy.requests(bad + " 503").size() >= 2; })) << d.output();
  const std::size_t first = proxy.requests(good + " 207").size();
  ASSERT_GE(first, 1u) << d.output();
  EXPECT_EQ(proxy.requests(good).size(), first) << d.output();
  // Changed now: only a pass of every calendar would ask for it.
  dav.put_event("good", "c.ics", event("ev-good-2"));
  ASSERT_TRUE(eventually([&] { return proxy.requests(bad + " 503").size() >= 3; })) << d.output();
  proxy.recover();
  ASSERT_TRUE(eventually([&] {
    return lines_with(d.output(),
                      "caldav: 1 calendar(s): ", dav.user() + "/bad 1 changed, 0 deleted") == 1;
  })) << d.output();
  EXPECT_EQ(proxy.requests(good).size(), first);
  EXPECT_GE(proxy.requests(bad + " 207").size(), 1u);
  EXPECT_NE(d.output().find("HTTP status 503"), std::string::npos) << d.output();

  // Asked for: every calendar, the good one's change included.
  auto asked = test::run("crm-capture", "--socket " + d.socket().string() + " sync");
  EXPECT_EQ(asked.status, 0) << asked.out;
  ASSERT_TRUE(eventually([&] {
    // The first pass's line, then this one's.
    return lines_with(d.output(),
                      "caldav: 2 calendar(s): ", dav.user() + "/good 1 changed, 0 deleted") == 2;
  })) << d.output();
  EXPECT_GT(proxy.requests(good).size(), first);
  const std::string out = d.stop();
  EXPECT_TRUE(WIFEXITED(d.status()) && WEXITSTATUS(d.status()) == 0) << out;
  std::set<std::string> keys;
  auto st = store::Store::open((tmp.path() / "s.db").string()).value();
  for (const auto& a : st->list({}).value()) keys.insert(a.source_key);
  EXPECT_EQ(keys, (std::set<std::string>{"ical:ev-bad", "ical:ev-good", "ical:ev-good-2"})) << out;
}

}  // namespace

namespace {

// "20261206T093000Z": `t` in UTC, as iCalendar writes it.
std::string ical_utc(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// A meeting of alice's with Jane (a contact of test::directory_store) at
// `start`, half an hour long.
std::string meeting_with_jane(const std::string& uid, std::time_t start) {
  return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crm-capture//tests//EN\r\n"
         "BEGIN:VEVENT\r\nUID:" +
         uid + "\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:" + ical_utc(start) +
         "\r\nDTEND:" + ical_utc(start + 1800) + "\r\nSUMMARY:Meeting " + uid +
         "\r\nORGANIZER:mailto:alice@example.com\r\n"
         "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
}

// GET /v1/status as JSON; null when the daemon does not answer (yet).
boost::json::value status_of(const fs::path& socket) {
  auto r = api::call(socket.string(), "GET", "/v1/status", 2000ms);
  if (!r || r->status != 200) return nullptr;
  return boost::json::parse(r->body);
}

// The CalDAV side of mailbox alice in `status`; null when absent.
const boost::json::value* caldav_side(const boost::json::value& status) {
  if (!status.is_object()) return nullptr;
  for (const auto& m : status.at("mailboxes").as_array()) {
    if (m.at("name").as_string() == "alice") return &m.at("caldav");
  }
  return nullptr;
}

// Checks `bodies` (GET /v1/status answers) against daemon/api/openapi.yaml
// with tests/api/validate_openapi.py; its complaints, empty when none.
std::string openapi_mismatches(const fs::path& dir, const std::vector<boost::json::value>& bodies) {
  const fs::path file = dir / "status.jsonl";
  {
    std::ofstream out(file);
    for (const auto& b : bodies) {
      out << boost::json::serialize(boost::json::object{
                 {"method", "GET"}, {"path", "/v1/status"}, {"status", 200}, {"body", b}})
          << "\n";
    }
  }
  const std::string src = CRMCAP_SOURCE_DIR;
  auto r = test::detail::run({"python3", src + "/tests/api/validate_openapi.py",
                              src + "/daemon/api/openapi.yaml", file.string()});
  return r.status == 0 ? "" : "status " + std::to_string(r.status) + ": " + r.out;
}

}  // namespace

// A first sync of a calendar of 300 events (three calendar-multiget batches
// of 100) through a proxy that answers every request a second late: while
// discovery runs the side says connecting; then backfilling, with progress
// in calendar objects (done of total, total being the events listed, done
// moving once per committed batch and never back); then idle with every
// event captured, and no progress. A later pass, with the calendar's token
// stored, is no backfill. Every status seen matches openapi.yaml.
TEST(CaldavDaemonStatus, ABackfillShowsItsProgressThenIdles) {
  if (!test::RadicaleServer::available()) GTEST_SKIP() << "radicale is not installed";
  constexpr std::int64_t kEvents = 300, kBatch = 100;  // caldav::SyncOptions::multiget_batch
  test::RadicaleServer dav;
  dav.make_calendar("work");
  // Written straight into Radicale's storage: 300 PUTs would take long.
  const fs::path work =
      fs::path(dav.dir()) / "collections" / "collection-root" / dav.user() / "work";
  const std::time_t now = std::time(nullptr);
  for (std::int64_t i = 0; i < kEvents; ++i) {
    // Within the backfill window (90 days): the last 30 days.
    std::ofstream(work / ("ev" + std::to_string(i) + ".ics"))
        << meeting_with_jane("ev-" + std::to_string(i), now - (1 + i % 30) * 86400 - i * 60);
  }
  test::TempDir tmp;
  test::directory_store((tmp.path() / "s.db").string());
  CaldavProxy proxy(dav.url(), tmp.path());
  proxy.delay("", 1.0);
  RunningDaemon d(tmp.path(), proxy.url() + "/", dav.user(), dav.password());

  std::vector<boost::json::value> bodies;
  std::vector<std::string> states;  // each state seen, once per run of it
  std::vector<std::int64_t> done;   // progress.done as seen
  std::string odd;                  // the first observation that breaks the contract
  // The CalDAV side now, and its state; its status body kept for
  // openapi.yaml, its state for `states`. Null before the daemon answers.
  const auto look = [&](std::string& state) -> std::optional<boost::json::object> {
    auto st = status_of(d.socket());
    const auto* s = caldav_side(st);
    if (!s || !s->is_object()) return std::nullopt;
    bodies.push_back(st);
    state = s->at("state").as_string();
    if (states.empty() || states.back() != state) states.push_back(state);
    return s->as_object();
  };
  const bool idle = eventually(
      [&] {
        std::string state;
        const auto s = look(state);
        if (!s) return false;
        const auto& p = s->at("progress");
        if (state == "backfilling" && p.is_object()) {
          const auto n = p.at("done").to_number<std::int64_t>();
          const auto total = p.at("total").to_number<std::int64_t>();
          if (odd.empty() && (n > total || total != kEvents || (n % kBatch != 0 && n != total))) {
            odd = boost::json::serialize(*s);
          }
          if (odd.empty() && !done.empty() && n < done.back()) {
            odd = "done went back: " + boost::json::serialize(*s);
          }
          done.push_back(n);
        } else if (!p.is_null() && odd.empty()) {
          odd = "progress outside a backfill: " + boost::json::serialize(*s);
        }
        return state == "idle";
      },
      120s);
  const auto has = [](const auto& v, const auto& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::string seen;
  for (const auto& s : states) seen += s + " ";
  seen += "; done:";
  for (const auto n : done) seen += " " + std::to_string(n);
  ASSERT_TRUE(idle) << seen << d.output();
  EXPECT_EQ(odd, "") << seen;
  // starting (maybe), connecting, backfilling, idle: never idle or failed
  // before the end.
  EXPECT_TRUE(has(states, "connecting")) << seen;
  EXPECT_TRUE(has(states, "backfilling")) << seen;
  for (std::size_t i = 0; i + 1 < states.size(); ++i) {
    EXPECT_TRUE(states[i] == "starting" || states[i] == "connecting" || states[i] == "backfilling")
        << seen;
  }
  // Each batch's commit shows, a second apart: 0, 100 and 200 of 300.
  for (std::int64_t n : {std::int64_t{0}, kBatch, 2 * kBatch}) {
    EXPECT_TRUE(has(done, n)) << n << " not seen; " << seen;
  }
  const auto st = status_of(d.socket());
  const auto& side = *caldav_side(st);
  EXPECT_TRUE(side.at("progress").is_null()) << side;
  EXPECT_TRUE(side.at("last_pass").at("ok").as_bool()) << side;
  EXPECT_EQ(side.at("counters").at("captured").to_number<std::int64_t>(), kEvents) << side;

  // A later pass (asked for): the calendar has its token, so no backfill.
  proxy.delay("", 0.2);
  states.clear();
  auto asked = api::call(d.socket().string(), "POST", "/v1/sync?mailbox=alice");
  ASSERT_TRUE(asked);
  EXPECT_EQ(asked->status, 202);
  EXPECT_TRUE(eventually(
      [&] {
        std::string state;
        const auto s = look(state);
        return s && s->at("counters").at("passes").to_number<std::int64_t>() == 2 &&
               state == "idle";
      },
      60s))
      << d.output();
  seen.clear();
  for (const auto& s : states) seen += s + " ";
  EXPECT_FALSE(has(states, "backfilling")) << seen;
  EXPECT_EQ(openapi_mismatches(tmp.path(), bodies), "");

  const std::string out = d.stop();
  EXPECT_TRUE(WIFEXITED(d.status()) && WEXITSTATUS(d.status()) == 0) << out;
  auto store = store::Store::open((tmp.path() / "s.db").string()).value();
  const auto all = store->list({}).value();
  EXPECT_EQ(static_cast<std::int64_t>(all.size()), kEvents);
  EXPECT_TRUE(std::all_of(all.begin(), all.end(), [](const store::Activity& a) {
    return a.status == store::DecisionStatus::captured;
  }));
}
