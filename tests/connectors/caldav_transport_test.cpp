// SPDX-License-Identifier: Apache-2.0
// The CalDAV transport (libcurl) against a real Radicale (tests/servers/
// radicale.sh), and against a scripted fake HTTP server on loopback for what
// Radicale will not do on demand: stall mid-body, trickle, send too much, keep
// a connection open for a second request.
#include "connectors/caldav/transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/servers/radicale_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using crmcap::caldav::Header;
using crmcap::caldav::HttpRequest;
using crmcap::caldav::HttpResponse;
using crmcap::caldav::RetryClass;
using crmcap::caldav::Transport;
using crmcap::caldav::TransportErrc;
using crmcap::caldav::TransportOptions;
using crmcap::test::RadicaleServer;

std::optional<std::string> header(const HttpResponse& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (h.name.size() == name.size() &&
        strncasecmp(h.name.c_str(), name.data(), name.size()) == 0) {
      return h.value;
    }
  }
  return std::nullopt;
}

constexpr std::string_view kPropfindPrincipal =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:current-user-principal/></D:prop></D:propfind>";

// ---------------------------------------------------------------------------
// A scripted HTTP server on 127.0.0.1: one thread accepts connections one at a
// time and runs `script` on each. The script reads requests and writes bytes
// through Conn; Conn::stall() waits until the server is destroyed (or 30 s).
class FakeServer {
 public:
  class Conn {
   public:
    Conn(int fd, int stop_fd) : fd_(fd), stop_fd_(stop_fd) {}
    // The next request (head and Content-Length body), or nullopt at EOF or stop.
    std::optional<std::string> read_request() {
      for (;;) {
        const auto end = buf_.find("\r\n\r\n");
        if (end != std::string::npos) {
          std::size_t length = 0;
          const std::string head = buf_.substr(0, end + 4);
          std::string lower = head;
          for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          const auto cl = lower.find("\r\ncontent-length:");
          if (cl != std::string::npos) length = std::stoul(head.substr(cl + 17));
          if (buf_.size() >= end + 4 + length) {
            std::string request = buf_.substr(0, end + 4 + length);
            buf_.erase(0, end + 4 + length);
            return request;
          }
        }
        if (!wait_readable(10'000)) return std::nullopt;
        char chunk[4096];
        const ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n <= 0) return std::nullopt;
        buf_.append(chunk, static_cast<std::size_t>(n));
      }
    }
    void send(std::string_view bytes) {
      while (!bytes.empty()) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        bytes.remove_prefix(static_cast<std::size_t>(n));
      }
    }
    // Waits until the server stops, or `limit` passes; false when stopped.
    bool stall(std::chrono::milliseconds limit = 30s) {
      pollfd p{stop_fd_, POLLIN, 0};
      return ::poll(&p, 1, static_cast<int>(limit.count())) == 0;
    }

   private:
    bool wait_readable(int ms) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      return ::poll(p, 2, ms) > 0 && (p[0].revents != 0) && p[1].revents == 0;
    }
    int fd_, stop_fd_;
    std::string buf_;
  };

  explicit FakeServer(std::function<void(Conn&)> script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::pipe2(stop_, O_CLOEXEC) != 0) {
      throw std::runtime_error("fake server: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeServer() {
    (void)::write(stop_[1], "x", 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int accepted() const { return accepted_; }
  // Every request the script read, in order.
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  void record(std::string r) {
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(r));
  }

 private:
  void run() {
    for (;;) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents != 0) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      Conn c(fd, stop_[0]);
      script_(c);
      ::close(fd);
    }
  }
  std::function<void(Conn&)> script_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

TransportOptions fake_options() {
  TransportOptions o;
  o.allow_insecure = true;
  o.connect_timeout = 5s;
  o.total_timeout = 10s;
  o.low_speed_time = 1s;
  return o;
}

// A port on 127.0.0.1 where nothing listens (bound, then closed).
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

#define SKIP_WITHOUT_RADICALE()                                                          \
  if (!RadicaleServer::available()) {                                                    \
    GTEST_SKIP() << "radicale is not installed (packaging/install-deps.sh installs it)"; \
  }

// ---------------------------------------------------------------------------
// Against Radicale.

TEST(CaldavTransportRadicale, PropfindRootAndWellKnownRedirectIsNotFollowed) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav;
  Transport t(dav.transport_options());

  auto root = t.perform({"PROPFIND",
                         dav.url() + "/",
                         {{"Depth", "0"}, {"Content-Type", "application/xml; charset=utf-8"}},
                         std::string(kPropfindPrincipal)});
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->status, 207);
  EXPECT_NE(header(*root, "Content-Type").value_or("").find("xml"), std::string::npos);
  EXPECT_NE(root->body.find("current-user-principal"), std::string::npos) << root->body;
  EXPECT_NE(root->body.find("/" + dav.user() + "/"), std::string::npos) << root->body;

  auto well_known = t.perform({"PROPFIND",
                               dav.url() + "/.well-known/caldav",
                               {{"Depth", "0"}, {"Content-Type", "application/xml"}},
                               std::string(kPropfindPrincipal)});
  ASSERT_TRUE(well_known) << well_known.error().message;
  EXPECT_EQ(well_known->status, 301);
  EXPECT_EQ(header(*well_known, "Location"), "/");
}

TEST(CaldavTransportRadicale, MkcalendarPutThenMultigetReturnsTheEvent) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav;
  const std::string cal = dav.make_calendar("work", "Work & meetings");
  const std::string ics = RadicaleServer::event("uid-multiget-1", "Quarterly review");
  const std::string etag = dav.put_event("work", "uid-multiget-1.ics", ics);
  EXPECT_FALSE(etag.empty());

  Transport t(dav.transport_options());
  const std::string href = dav.calendar_path("work") + "uid-multiget-1.ics";
  const std::string multiget =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
      "<C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
      "<D:prop><D:getetag/><C:calendar-data/></D:prop><D:href>" +
      href + "</D:href></C:calendar-multiget>";
  auto r = t.perform({"REPORT",
                      cal,
                      {{"Depth", "1"}, {"Content-Type", "application/xml; charset=utf-8"}},
                      multiget});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 207) << r->body;
  EXPECT_NE(r->body.find(href), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("UID:uid-multiget-1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("SUMMARY:Quarterly review"), std::string::npos) << r->body;
  // The ETag of the PUT, quotes included (maybe written as &quot;).
  const std::string bare =
      etag.substr(etag.find_first_not_of("W/\""),
                  etag.find_last_not_of('"') - etag.find_first_not_of("W/\"") + 1);
  EXPECT_NE(r->body.find(bare), std::string::npos) << etag << "\n" << r->body;

  // GET returns the object as stored, with the same ETag.
  auto got = t.perform({"GET", cal + "uid-multiget-1.ics", {}, {}});
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(header(*got, "ETag"), etag);
  EXPECT_NE(got->body.find("UID:uid-multiget-1"), std::string::npos);

  dav.delete_event("work", "uid-multiget-1.ics");
  auto gone = t.perform({"GET", cal + "uid-multiget-1.ics", {}, {}});
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(gone->status, 404);
}

TEST(CaldavTransportRadicale, WrongPasswordIsA401Response) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav;
  auto o = dav.transport_options();
  o.password = "not-the-password";
  Transport t(o);
  auto r = t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, {}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(header(*r, "WWW-Authenticate").has_value());
}

TEST(CaldavTransportRadicale, BodyOverTheCapFails) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav;
  auto o = dav.transport_options();
  o.max_response_bytes = 64;  // Radicale sends a Content-Length well above
  Transport t(o);
  auto r =
      t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, std::string(kPropfindPrincipal)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::response_too_large) << r.error().message;
  EXPECT_EQ(r.error().retry(), RetryClass::retry_later);
}

TEST(CaldavTransportRadicale, HttpIsRefusedWithoutAllowInsecure) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav;
  auto o = dav.transport_options();
  o.allow_insecure = false;
  Transport t(o);
  auto r = t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::insecure_refused);
  EXPECT_EQ(r.error().retry(), RetryClass::needs_user);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(dav.port())), std::string::npos)
      << r.error().message;
}

TEST(CaldavTransportRadicale, TlsWithTheExtraCaAndWithoutIt) {
  SKIP_WITHOUT_RADICALE();
  RadicaleServer dav(/*tls=*/true);
  {
    Transport t(dav.transport_options());
    auto r = t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, {}});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 207);
  }
  {
    auto o = dav.transport_options();
    o.ca_file.clear();
    Transport t(o);
    auto r = t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, TransportErrc::certificate_rejected) << r.error().message;
    EXPECT_EQ(r.error().retry(), RetryClass::needs_user);
    EXPECT_NE(r.error().message.find("localhost:" + std::to_string(dav.port())), std::string::npos)
        << r.error().message;
  }
  {
    auto o = dav.transport_options();
    o.ca_file = dav.dir() + "/no-such-ca.pem";
    Transport t(o);
    auto r = t.perform({"PROPFIND", dav.url() + "/", {{"Depth", "0"}}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, TransportErrc::tls_setup_failed) << r.error().message;
    EXPECT_EQ(r.error().retry(), RetryClass::needs_user);
  }
}

// ---------------------------------------------------------------------------
// Against the scripted fake server.

TEST(CaldavTransportFake, StallMidBodyFailsWithinTheLowSpeedTime) {
  FakeServer server([](FakeServer::Conn& c) {
    if (!c.read_request()) return;
    c.send(
        "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\n"
        "Content-Length: 1000\r\n\r\n<?xml version=");
    c.stall();
  });
  // libcurl averages the speed over the last 5 s, so the burst before the
  // stall keeps it above the limit for a few seconds: the stall is noticed
  // within about 5 s + low_speed_time, long before the total timeout.
  auto o = fake_options();
  o.low_speed_time = 1s;
  o.total_timeout = 30s;
  Transport t(o);
  const auto start = std::chrono::steady_clock::now();
  auto r = t.perform({"PROPFIND", server.url(), {{"Depth", "1"}}, std::string(kPropfindPrincipal)});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::timeout) << r.error().message;
  EXPECT_EQ(r.error().retry(), RetryClass::retry_later);
  EXPECT_NE(r.error().message.find("PROPFIND http://127.0.0.1:"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("too slow"), std::string::npos) << r.error().message;
  EXPECT_LT(took, 10s);
}

TEST(CaldavTransportFake, TrickleFailsAtTheTotalTimeout) {
  // One byte every 100 ms is above the low-speed limit (1 byte/s): only the
  // total timeout ends it.
  FakeServer server([](FakeServer::Conn& c) {
    if (!c.read_request()) return;
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    for (int i = 0; i < 600 && c.stall(100ms); ++i) c.send("x");
  });
  auto o = fake_options();
  o.total_timeout = 1500ms;
  Transport t(o);
  const auto start = std::chrono::steady_clock::now();
  auto r = t.perform({"GET", server.url("/cal/a.ics"), {}, {}});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::timeout) << r.error().message;
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 5s);
}

TEST(CaldavTransportFake, SilentServerFailsWithinTheLowSpeedTime) {
  FakeServer server([](FakeServer::Conn& c) {
    if (!c.read_request()) return;
    c.stall();
  });
  Transport t(fake_options());
  auto r = t.perform({"GET", server.url(), {}, {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::timeout) << r.error().message;
}

TEST(CaldavTransportFake, CloseDelimitedBodyOverTheCapFails) {
  // No Content-Length: only counting the bytes as they come can catch it.
  FakeServer server([](FakeServer::Conn& c) {
    if (!c.read_request()) return;
    c.send("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    c.send(std::string(64 * 1024, 'x'));
  });
  auto o = fake_options();
  o.max_response_bytes = 1024;
  Transport t(o);
  auto r = t.perform({"GET", server.url(), {}, {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::response_too_large) << r.error().message;
}

TEST(CaldavTransportFake, SendsMethodBodyAndAuthAndCollectsHeaders) {
  FakeServer* self = nullptr;
  FakeServer server([&self](FakeServer::Conn& c) {
    while (auto req = c.read_request()) {
      self->record(*req);
      c.send(
          "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
          "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n"
          "ETag: \"e1\"\r\nX-Folded: a\r\n b\r\nContent-Length: 4\r\n\r\nbusy");
    }
  });
  self = &server;
  auto o = fake_options();
  o.auth = TransportOptions::Auth::bearer;
  o.bearer_token = "tok-123";
  Transport t(o);
  const std::string body = "<C:calendar-query xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>";
  auto r = t.perform({"REPORT", server.url("/cal/"), {{"Depth", "1"}}, body});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "busy");
  EXPECT_EQ(header(*r, "Retry-After"), "120");
  EXPECT_EQ(header(*r, "ETag"), "\"e1\"");
  EXPECT_EQ(header(*r, "X-Folded"), "a b");
  EXPECT_FALSE(header(*r, "X-Interim").has_value());

  // A second request goes over the same connection, and may be bodiless.
  auto again = t.perform({"DELETE", server.url("/cal/a.ics"), {{"If-Match", "\"e1\""}}, {}});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(server.accepted(), 1);

  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(reqs[0].starts_with("REPORT /cal/ HTTP/1.1\r\n")) << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nAuthorization: Bearer tok-123\r\n"), std::string::npos) << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nDepth: 1\r\n"), std::string::npos);
  EXPECT_NE(reqs[0].find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(reqs[0].find("Expect:"), std::string::npos) << reqs[0];
  EXPECT_EQ(reqs[0].find("x-www-form-urlencoded"), std::string::npos) << reqs[0];
  EXPECT_TRUE(reqs[0].ends_with("\r\n\r\n" + body));
  EXPECT_TRUE(reqs[1].starts_with("DELETE /cal/a.ics HTTP/1.1\r\n")) << reqs[1];
  EXPECT_EQ(reqs[1].find("Content-Length"), std::string::npos) << reqs[1];
  EXPECT_NE(reqs[1].find("\r\nIf-Match: \"e1\"\r\n"), std::string::npos) << reqs[1];
}

TEST(CaldavTransportFake, BasicAuthIsSentUpFront) {
  FakeServer* self = nullptr;
  FakeServer server([&self](FakeServer::Conn& c) {
    if (auto req = c.read_request()) {
      self->record(*req);
      c.send("HTTP/1.1 204 No Content\r\n\r\n");
    }
  });
  self = &server;
  auto o = fake_options();
  o.auth = TransportOptions::Auth::basic;
  o.username = "user1";
  o.password = "pw-user1";
  Transport t(o);
  auto r = t.perform({"PUT", server.url("/cal/a.ics"), {{"Content-Type", "text/calendar"}}, {}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 204);
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  // base64("user1:pw-user1")
  EXPECT_NE(reqs[0].find("\r\nAuthorization: Basic dXNlcjE6cHctdXNlcjE=\r\n"), std::string::npos)
      << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nContent-Length: 0\r\n"), std::string::npos) << reqs[0];
}

// ---------------------------------------------------------------------------
// Without a server.

TEST(CaldavTransport, ConnectionRefusedIsRetryLater) {
  Transport t(fake_options());
  const auto port = closed_port();
  auto r = t.perform({"PROPFIND", "http://127.0.0.1:" + std::to_string(port) + "/", {}, {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::connect_failed) << r.error().message;
  EXPECT_EQ(r.error().retry(), RetryClass::retry_later);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error().message;
}

TEST(CaldavTransport, InvalidRequestsAreRefusedBeforeAnyConnection) {
  auto o = fake_options();
  o.auth = TransportOptions::Auth::basic;
  o.username = "user1";
  o.password = "secret-password";
  Transport t(o);
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/";
  const std::vector<HttpRequest> bad = {
      {"PROPFIND", url, {{"Authorization", "Basic eDp5"}}, {}},
      {"PROPFIND", url, {{"Depth", "0\r\nX-Injected: 1"}}, {}},
      {"PROPFIND", url, {{"Bad Name", "1"}}, {}},
      {"PROP FIND", url, {}, {}},
      {"GET", "http://user:secret@127.0.0.1:1/", {}, {}},
      {"GET", "ftp://127.0.0.1/", {}, {}},
      {"GET", "not a url", {}, {}},
  };
  for (const auto& req : bad) {
    auto r = t.perform(req);
    ASSERT_FALSE(r) << req.method << " " << req.url;
    EXPECT_EQ(r.error().code, TransportErrc::invalid_request) << r.error().message;
    EXPECT_EQ(r.error().retry(), RetryClass::needs_user);
    EXPECT_EQ(r.error().message.find("secret"), std::string::npos) << r.error().message;
  }
  o.username = "user:1";
  Transport colon(o);
  auto r = colon.perform({"GET", url, {}, {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TransportErrc::invalid_request);
}

TEST(CaldavTransport, ErrorCategoryAndRetryClasses) {
  const std::error_code e = TransportErrc::certificate_rejected;
  EXPECT_STREQ(e.category().name(), "crmcap.caldav.transport");
  EXPECT_EQ(crmcap::caldav::retry_class(e), RetryClass::needs_user);
  EXPECT_EQ(crmcap::caldav::retry_class(TransportErrc::timeout), RetryClass::retry_later);
  EXPECT_EQ(crmcap::caldav::retry_class(TransportErrc::connect_timeout), RetryClass::retry_later);
  EXPECT_FALSE(e.message().empty());
}

}  // namespace
