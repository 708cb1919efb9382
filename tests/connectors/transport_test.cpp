// SPDX-License-Identifier: Apache-2.0
// The IMAP transport against a real Dovecot (tests/servers/dovecot.sh) and against
// loopback sockets that refuse or never speak. Also checks the Dovecot fixture's
// delivery and UIDVALIDITY helpers, through IMAP.
#include "connectors/imap/transport/transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/servers/dovecot_fixture.hpp"
#include "tests/support/scoped_env.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using crmcap::imap::Awaitable;
using crmcap::imap::TlsMode;
using crmcap::imap::Transport;
using crmcap::imap::TransportErrc;
using crmcap::imap::TransportOptions;
using crmcap::imap::TransportResult;
using crmcap::test::DovecotServer;
using crmcap::test::ScopedEnv;
namespace fs = std::filesystem;

// ASSERT_* returns from the function, which a coroutine cannot do.
#define CO_ASSERT(cond)                          \
  if (!(cond)) {                                 \
    ADD_FAILURE() << "assertion failed: " #cond; \
    co_return;                                   \
  }

// Runs one coroutine on a fresh io_context to completion; rethrows its exception.
template <class F>
void run(F&& body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

// Reads until `buf` holds a complete line; removes and returns it (without CRLF).
Awaitable<TransportResult<std::string>> read_line(Transport& t, std::string& buf) {
  for (;;) {
    if (auto eol = buf.find("\r\n"); eol != std::string::npos) {
      std::string line = buf.substr(0, eol);
      buf.erase(0, eol + 2);
      co_return line;
    }
    auto r = co_await t.async_read_some(buf);
    if (!r) co_return r.error();
  }
}

// Reads lines until the one tagged `tag`; returns every line read, joined by "\n".
Awaitable<TransportResult<std::string>> read_tagged(Transport& t, std::string& buf,
                                                    const std::string& tag) {
  std::string all;
  for (;;) {
    auto line = co_await read_line(t, buf);
    if (!line) co_return line;
    all += *line + "\n";
    if (line->rfind(tag + " ", 0) == 0) co_return all;
  }
}

// Sends one command and returns its whole response; an empty string on failure.
Awaitable<std::string> command(Transport& t, std::string& buf, const std::string& tag,
                               const std::string& text) {
  auto w = co_await t.async_write(tag + " " + text + "\r\n");
  if (!w) {
    ADD_FAILURE() << w.error().message;
    co_return std::string();
  }
  auto r = co_await read_tagged(t, buf, tag);
  if (!r) {
    ADD_FAILURE() << r.error().message;
    co_return std::string();
  }
  co_return *r;
}

// A TCP socket on 127.0.0.1 that listens but never accepts or speaks: connects
// complete (the kernel queues them), reads wait forever.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A port on 127.0.0.1 where nothing listens (bound, then released).
std::uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TransportOptions local(std::uint16_t port, TlsMode tls) {
  TransportOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.tls = tls;
  o.connect_timeout = 5s;
  o.io_timeout = 5s;
  return o;
}

// ---------------------------------------------------------------- no server

TEST(TransportLocal, ClosedPortFailsCleanly) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, local(closed_port(), TlsMode::none));
    auto r = co_await t.async_connect();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::connect_failed);
    EXPECT_EQ(r.error().cause, asio::error::connection_refused);
    EXPECT_NE(r.error().message.find("connect to 127.0.0.1:"), std::string::npos)
        << r.error().message;
    EXPECT_FALSE(t.is_open());
    std::string buf;
    auto read = co_await t.async_read_some(buf);
    CO_ASSERT(!read);
    EXPECT_EQ(read.error().code, TransportErrc::not_connected);
  });
}

TEST(TransportLocal, ReadTimeoutOnSilentServer) {
  SilentListener silent;
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, local(silent.port(), TlsMode::none));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    std::string buf = "kept";
    const auto start = std::chrono::steady_clock::now();
    auto r = co_await t.async_read_some(buf, 200ms);
    const auto took = std::chrono::steady_clock::now() - start;
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::read_timeout);
    EXPECT_EQ(r.error().cause, asio::error::timed_out);
    EXPECT_NE(r.error().message.find("timed out after 200 ms"), std::string::npos)
        << r.error().message;
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 3s);
    EXPECT_EQ(buf, "kept");
    // A timeout ends the connection.
    EXPECT_FALSE(t.is_open());
    auto again = co_await t.async_write("a1 NOOP\r\n");
    CO_ASSERT(!again);
    EXPECT_EQ(again.error().code, TransportErrc::not_connected);
  });
}

// Accepts one connection on 127.0.0.1 and writes `count` bytes to it, one
// every `every`, then keeps it open without a word until the test ends.
class DrippingServer {
 public:
  DrippingServer(asio::any_io_executor ex, int count, std::chrono::milliseconds every)
      : acceptor_(ex, {asio::ip::make_address("127.0.0.1"), 0}), socket_(ex), timer_(ex) {
    asio::co_spawn(ex, serve(count, every), asio::detached);
  }
  ~DrippingServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    socket_.close(ignored);
    timer_.cancel();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  Awaitable<void> serve(int count, std::chrono::milliseconds every) {
    constexpr auto quiet = asio::as_tuple(asio::use_awaitable);
    auto [aec] = co_await acceptor_.async_accept(socket_, quiet);
    for (int i = 0; !aec && i < count; ++i) {
      timer_.expires_after(every);
      auto [tec] = co_await timer_.async_wait(quiet);
      if (tec) co_return;
      auto [wec, n] = co_await asio::async_write(socket_, asio::buffer("x", 1), quiet);
      if (wec) co_return;
    }
  }

  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
};

// Each read has a deadline of its own: reads that each finish in time never
// time out, however long they take together, and the read that waits too
// long times out after its own timeout.
TEST(TransportLocal, EachReadHasItsOwnDeadline) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    DrippingServer server(ex, 8, 100ms);
    Transport t(ex, local(server.port(), TlsMode::none));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    std::string buf;
    const auto start = std::chrono::steady_clock::now();
    while (buf.size() < 8) {
      auto r = co_await t.async_read_some(buf, 300ms);
      CO_ASSERT(r);
    }
    EXPECT_GE(std::chrono::steady_clock::now() - start, 700ms);  // longer than one timeout
    const auto silent = std::chrono::steady_clock::now();
    auto r = co_await t.async_read_some(buf, 300ms);
    const auto took = std::chrono::steady_clock::now() - silent;
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::read_timeout);
    EXPECT_NE(r.error().message.find("timed out after 300 ms"), std::string::npos)
        << r.error().message;
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 3s);
    EXPECT_EQ(buf, "xxxxxxxx");
  });
}

// The deadline's timer ends with the connection: a Transport that outlives
// its closed connection does not keep the executor's run() going until the
// last read's deadline.
TEST(TransportLocal, AClosedConnectionKeepsNoTimerWaiting) {
  asio::io_context io;
  DrippingServer server(io.get_executor(), 1, 10ms);
  Transport t(io.get_executor(), local(server.port(), TlsMode::none));
  bool read = false;
  asio::co_spawn(
      io,
      [&]() -> Awaitable<void> {
        auto c = co_await t.async_connect();
        CO_ASSERT(c);
        std::string buf;
        auto r = co_await t.async_read_some(buf, 60s);
        read = r.has_value();
        co_await t.async_close();
      },
      asio::detached);
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_TRUE(read);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

// A short deadline after a long one (a read after IDLE's) is kept, not the
// long one the transport was waiting for.
TEST(TransportLocal, AShortDeadlineAfterALongOneIsKept) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    DrippingServer server(ex, 1, 10ms);
    Transport t(ex, local(server.port(), TlsMode::none));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    std::string buf;
    auto first = co_await t.async_read_some(buf, 60s);
    CO_ASSERT(first);
    const auto start = std::chrono::steady_clock::now();
    auto r = co_await t.async_read_some(buf, 200ms);
    const auto took = std::chrono::steady_clock::now() - start;
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::read_timeout);
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 3s);
  });
}

// A write the server never reads times out and ends the connection; the read
// waiting beside it (as in IDLE) then fails as not connected, not as a
// timeout of its own or a cancelled read.
TEST(TransportLocal, AWriteTimeoutEndsTheReadBesideIt) {
  SilentListener silent;
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, local(silent.port(), TlsMode::none));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    std::string buf;
    std::optional<TransportResult<std::size_t>> read;
    asio::co_spawn(
        ex, [&]() -> Awaitable<void> { read = co_await t.async_read_some(buf, 60s); },
        asio::detached);
    const std::string big(64 << 20, 'a');  // more than the socket buffers hold
    const auto start = std::chrono::steady_clock::now();
    auto w = co_await t.async_write(big, 300ms);
    const auto took = std::chrono::steady_clock::now() - start;
    CO_ASSERT(!w);
    EXPECT_EQ(w.error().code, TransportErrc::write_timeout) << w.error().message;
    EXPECT_NE(w.error().message.find("write to 127.0.0.1:"), std::string::npos)
        << w.error().message;
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 3s);
    asio::steady_timer settle(ex, 50ms);
    co_await settle.async_wait(asio::use_awaitable);
    CO_ASSERT(read.has_value());
    CO_ASSERT(!*read);
    EXPECT_EQ(read->error().code, TransportErrc::not_connected) << read->error().message;
    EXPECT_FALSE(t.is_open());
  });
}

TEST(TransportLocal, HandshakeTimeoutOnSilentServer) {
  SilentListener silent;
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    auto o = local(silent.port(), TlsMode::implicit);
    o.connect_timeout = 300ms;
    Transport t(ex, o);
    auto r = co_await t.async_connect();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::handshake_timeout) << r.error().message;
  });
}

TEST(TransportLocal, WriteBeforeConnectIsNotConnected) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, local(1, TlsMode::none));
    auto r = co_await t.async_write("x");
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::not_connected);
    EXPECT_EQ(r.error().code.category().name(), std::string("crmcap.imap.transport"));
    co_await t.async_close();  // harmless when never connected
  });
}

TEST(TransportLocal, UnreadableCaFileIsASetupError) {
  SilentListener silent;
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    auto o = local(silent.port(), TlsMode::implicit);
    o.ca_file = "/nonexistent/ca.pem";
    Transport t(ex, o);
    auto r = co_await t.async_connect();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::tls_setup_failed);
    EXPECT_NE(r.error().message.find("/nonexistent/ca.pem"), std::string::npos);
  });
}

// ---------------------------------------------------------------- Dovecot

class TransportDovecot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (DovecotServer::available()) server_ = std::make_unique<DovecotServer>();
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "dovecot-imapd is not installed";
  }

  static TransportOptions options(std::string host, TlsMode tls, bool with_ca = true) {
    TransportOptions o;
    o.host = std::move(host);
    o.port = tls == TlsMode::implicit ? server_->imaps_port() : server_->imap_port();
    o.tls = tls;
    if (with_ca) o.ca_file = server_->ca_file();
    o.connect_timeout = 10s;
    o.io_timeout = 10s;
    return o;
  }

  static std::string login() { return "LOGIN " + server_->user() + " " + server_->password(); }

  // Connects over implicit TLS to localhost, trusting `ca_file` (besides the
  // system's): "connected", "rejected" (the certificate), or the error's message.
  static std::string connect_outcome(const std::string& ca_file) {
    std::string outcome;
    run([&](asio::any_io_executor ex) -> Awaitable<void> {
      auto o = options("localhost", TlsMode::implicit, false);
      o.ca_file = ca_file;
      Transport t(ex, o);
      auto r = co_await t.async_connect();
      outcome = r                                                       ? "connected"
                : r.error().code == TransportErrc::certificate_rejected ? "rejected"
                                                                        : r.error().message;
      co_await t.async_close();
    });
    return outcome;
  }

  static inline std::unique_ptr<DovecotServer> server_;
};

TEST_F(TransportDovecot, PlainConnectReadsGreetingAndLogsOut) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, options("127.0.0.1", TlsMode::none));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    EXPECT_TRUE(t.is_open());
    EXPECT_FALSE(t.is_tls());
    EXPECT_EQ(t.tls_version(), "");
    std::string buf;
    auto greeting = co_await read_line(t, buf);
    CO_ASSERT(greeting);
    EXPECT_EQ(greeting->rfind("* OK", 0), 0u) << *greeting;
    EXPECT_NE(greeting->find("STARTTLS"), std::string::npos) << *greeting;
    std::string out = co_await command(t, buf, "a1", login());
    EXPECT_NE(out.find("a1 OK"), std::string::npos) << out;
    out = co_await command(t, buf, "a2", "LOGOUT");
    EXPECT_NE(out.find("* BYE"), std::string::npos) << out;
    // The server closes after LOGOUT.
    auto eof = co_await t.async_read_some(buf);
    CO_ASSERT(!eof);
    EXPECT_EQ(eof.error().code, TransportErrc::closed_by_peer) << eof.error().message;
    co_await t.async_close();
    EXPECT_FALSE(t.is_open());
  });
}

TEST_F(TransportDovecot, StartTlsVerifiesAgainstTheFixtureCa) {
  for (const char* host : {"localhost", "127.0.0.1"}) {
    SCOPED_TRACE(host);
    run([&](asio::any_io_executor ex) -> Awaitable<void> {
      Transport t(ex, options(host, TlsMode::starttls));
      CO_ASSERT(co_await t.async_connect());
      EXPECT_FALSE(t.is_tls());
      std::string buf;
      CO_ASSERT(co_await read_line(t, buf));
      std::string out = co_await command(t, buf, "a1", "STARTTLS");
      CO_ASSERT(out.find("a1 OK") != std::string::npos);
      CO_ASSERT(buf.empty());  // nothing may follow the OK in the clear
      auto tls = co_await t.async_start_tls();
      CO_ASSERT(tls);
      EXPECT_TRUE(t.is_tls());
      EXPECT_EQ(t.tls_version().rfind("TLSv1.", 0), 0u) << t.tls_version();
      out = co_await command(t, buf, "a2", "CAPABILITY");
      EXPECT_NE(out.find("AUTH=PLAIN"), std::string::npos) << out;
      out = co_await command(t, buf, "a3", login());
      EXPECT_NE(out.find("a3 OK"), std::string::npos) << out;
      // STARTTLS a second time is refused by the transport itself.
      auto twice = co_await t.async_start_tls();
      CO_ASSERT(!twice);
      EXPECT_EQ(twice.error().code, TransportErrc::bad_state);
      out = co_await command(t, buf, "a4", "LOGOUT");
      EXPECT_NE(out.find("a4 OK"), std::string::npos) << out;
      co_await t.async_close();
      EXPECT_FALSE(t.is_open());
    });
  }
}

TEST_F(TransportDovecot, ImplicitTlsSucceeds) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, options("localhost", TlsMode::implicit));
    auto c = co_await t.async_connect();
    CO_ASSERT(c);
    EXPECT_TRUE(t.is_tls());
    std::string buf;
    auto greeting = co_await read_line(t, buf);
    CO_ASSERT(greeting);
    EXPECT_EQ(greeting->rfind("* OK", 0), 0u) << *greeting;
    std::string out = co_await command(t, buf, "a1", login());
    EXPECT_NE(out.find("a1 OK"), std::string::npos) << out;
    // Closing while the session is still logged in: close_notify, then TCP close.
    co_await t.async_close();
    EXPECT_FALSE(t.is_open());
    // The same Transport connects again.
    CO_ASSERT(co_await t.async_connect());
    CO_ASSERT(co_await read_line(t, buf));
    co_await t.async_close();
  });
}

TEST_F(TransportDovecot, ReadsWhileWritingOverTls) {
  // The IDLE pattern: a read waits while the session writes (DONE, or here NOOP).
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    Transport t(ex, options("localhost", TlsMode::implicit));
    CO_ASSERT(co_await t.async_connect());
    std::string buf;
    CO_ASSERT(co_await read_line(t, buf));
    CO_ASSERT((co_await command(t, buf, "a1", login())).find("a1 OK") != std::string::npos);
    auto [read, write] = co_await (read_tagged(t, buf, "a2") && t.async_write("a2 NOOP\r\n"));
    CO_ASSERT(write);
    CO_ASSERT(read);
    EXPECT_NE(read->find("a2 OK"), std::string::npos) << *read;
    co_await t.async_close();
  });
}

TEST_F(TransportDovecot, ImplicitTlsWithoutCaFileIsRejected) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, options("localhost", TlsMode::implicit, /*with_ca=*/false));
    auto r = co_await t.async_connect();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::certificate_rejected);
    const std::string& m = r.error().message;
    EXPECT_NE(m.find("certificate verify failed"), std::string::npos) << m;
    EXPECT_NE(m.find("local issuer"), std::string::npos) << m;
    EXPECT_NE(m.find("localhost:"), std::string::npos) << m;
    EXPECT_FALSE(t.is_open());
  });
}

TEST_F(TransportDovecot, StartTlsWithoutCaFileIsRejected) {
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, options("localhost", TlsMode::starttls, /*with_ca=*/false));
    CO_ASSERT(co_await t.async_connect());
    std::string buf;
    CO_ASSERT(co_await read_line(t, buf));
    std::string out = co_await command(t, buf, "a1", "STARTTLS");
    CO_ASSERT(out.find("a1 OK") != std::string::npos);
    auto r = co_await t.async_start_tls();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::certificate_rejected) << r.error().message;
    EXPECT_FALSE(t.is_open());
  });
}

TEST_F(TransportDovecot, CertificateForAnotherHostIsRejected) {
  // "127.1" resolves to 127.0.0.1 but is neither DNS:localhost nor IP:127.0.0.1.
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, options("127.1", TlsMode::implicit));
    auto r = co_await t.async_connect();
    CO_ASSERT(!r);
    EXPECT_EQ(r.error().code, TransportErrc::certificate_rejected) << r.error().message;
    EXPECT_NE(r.error().message.find("does not name host 127.1"), std::string::npos)
        << r.error().message;
  });
}

TEST_F(TransportDovecot, ACaFileChangedOnDiskIsReadAgain) {
  // Trust is loaded once per process and CA file; a file rewritten in place
  // (a renewed CA) is read again, in both directions.
  const fs::path dir = fs::temp_directory_path() / ("crmcap-ca-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string other = (dir / "other.pem").string(), ca = (dir / "ca.pem").string();
  const std::string make_other =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj '/CN=an unrelated authority of another length' -keyout " +
      (dir / "other.key").string() + " -out " + other + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(make_other.c_str()), 0);
  auto connect_with = [&](const std::string& from) {
    fs::copy_file(from, ca, fs::copy_options::overwrite_existing);
    return connect_outcome(ca);
  };
  EXPECT_EQ(connect_with(other), "rejected");
  EXPECT_EQ(connect_with(server_->ca_file()), "connected");
  EXPECT_EQ(connect_with(other), "rejected");
  fs::remove_all(dir);
}

// The system store's directory (SSL_CERT_DIR here) in OpenSSL's hashed
// layout, a CA's file named by its subject's hash: a new directory holding
// `ca_file`'s certificate under that name, removed when the object goes.
class HashedCertDir {
 public:
  explicit HashedCertDir(const std::string& ca_file) {
    dir_ = fs::temp_directory_path() / ("crmcap-certdir-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const fs::path hash_file = dir_ / "hash";
    const std::string hash_cmd =
        "openssl x509 -hash -noout -in " + ca_file + " > " + hash_file.string();
    if (std::system(hash_cmd.c_str()) != 0) return;
    std::string hash;
    std::ifstream(hash_file) >> hash;
    fs::remove(hash_file);
    if (!hash.empty()) named_ = dir_ / (hash + ".0");
  }
  ~HashedCertDir() { fs::remove_all(dir_); }
  HashedCertDir(const HashedCertDir&) = delete;
  HashedCertDir& operator=(const HashedCertDir&) = delete;
  const fs::path& dir() const { return dir_; }
  // Where the CA's certificate goes; empty when its hash could not be read.
  const fs::path& named() const { return named_; }

 private:
  fs::path dir_, named_;
};

TEST_F(TransportDovecot, ACaTakenOutOfTheCertDirectoryIsNoLongerTrusted) {
  // Once a CA is trusted from the directory, the process's shared context
  // knows it; taking the file out must still end that trust, without a
  // restart; whether SSL_CERT_FILE names a bundle beside it or not.
  for (const bool with_bundle : {false, true}) {
    SCOPED_TRACE(with_bundle ? "with SSL_CERT_FILE" : "without SSL_CERT_FILE");
    const HashedCertDir store(server_->ca_file());
    ASSERT_FALSE(store.named().empty());
    const ScopedEnv dir_env("SSL_CERT_DIR", store.dir().string());
    const ScopedEnv file_env("SSL_CERT_FILE", with_bundle ? std::optional<std::string>(
                                                                (store.dir() / "none.pem").string())
                                                          : std::nullopt);
    auto connect = [] { return connect_outcome(""); };  // no CA file: the system's
    EXPECT_EQ(connect(), "rejected");
    fs::copy_file(server_->ca_file(), store.named());
    EXPECT_EQ(connect(), "connected");
    fs::remove(store.named());
    EXPECT_EQ(connect(), "rejected");
  }
}

TEST_F(TransportDovecot, TheBundleSslCertFileNamesIsTrustedBesideAHashedDirectory) {
  // OpenSSL's default directory, hashed, is read lazily instead of the
  // default bundle; a bundle SSL_CERT_FILE names is still read beside a
  // hashed directory SSL_CERT_DIR names.
  const HashedCertDir store(server_->ca_file());
  ASSERT_FALSE(store.named().empty());
  fs::copy_file(server_->ca_file(), store.dir() / "bundle.pem");
  // A hashed name for another certificate: the directory is a hashed store.
  const std::string other = (store.dir() / "other.pem").string();
  const std::string make_other = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " +
                                 (store.dir() / "other.key").string() + " -out " + other +
                                 " -days 1 -subj /CN=other 2>/dev/null";
  ASSERT_EQ(std::system(make_other.c_str()), 0);
  fs::rename(other, store.dir() / "00000000.0");
  const ScopedEnv dir_env("SSL_CERT_DIR", store.dir().string());
  {
    const ScopedEnv file_env("SSL_CERT_FILE", (store.dir() / "bundle.pem").string());
    EXPECT_EQ(connect_outcome(""), "connected");
  }
  const ScopedEnv file_env("SSL_CERT_FILE", std::nullopt);
  EXPECT_EQ(connect_outcome(""), "rejected");
}

// ---------------------------------------------------------------- the fixture

// Logs in over STARTTLS, runs `commands` in order (tagged c1, c2, ...) and returns
// their responses, joined.
std::string imap_session(const TransportOptions& o, const std::string& login,
                         const std::vector<std::string>& commands) {
  std::string out;
  run([&](asio::any_io_executor ex) -> Awaitable<void> {
    Transport t(ex, o);
    CO_ASSERT(co_await t.async_connect());
    std::string buf;
    CO_ASSERT(co_await read_line(t, buf));
    CO_ASSERT((co_await command(t, buf, "a1", "STARTTLS")).find("a1 OK") != std::string::npos);
    CO_ASSERT(co_await t.async_start_tls());
    CO_ASSERT((co_await command(t, buf, "a2", login)).find("a2 OK") != std::string::npos);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      out += co_await command(t, buf, "c" + std::to_string(i + 1), commands[i]);
    }
    (void)co_await command(t, buf, "z", "LOGOUT");
    co_await t.async_close();
  });
  return out;
}

std::string message(const std::string& subject) {
  return "From: Jane <jane@acme.test>\r\nTo: user1@example.com\r\nSubject: " + subject +
         "\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + subject +
         "@acme.test>\r\n\r\nHello.\r\n";
}

TEST_F(TransportDovecot, FixtureDeliversByDoveadmAndByFile) {
  server_->deliver_doveadm("INBOX", message("by-doveadm-1"));
  server_->deliver_file("INBOX", message("by-file-1"));
  server_->deliver_file("INBOX", message("by-file-2"));
  server_->deliver_doveadm("Junk", message("by-doveadm-2"));
  server_->deliver_file("Junk", message("by-file-3"));
  const auto o = options("localhost", TlsMode::starttls);
  std::string out = imap_session(o, login(), {"STATUS INBOX (MESSAGES)"});
  EXPECT_NE(out.find("* STATUS INBOX (MESSAGES 3)"), std::string::npos) << out;
  out = imap_session(o, login(), {"STATUS Junk (MESSAGES)"});
  EXPECT_NE(out.find("* STATUS Junk (MESSAGES 2)"), std::string::npos) << out;
  // Both kinds are served with their content.
  out = imap_session(o, login(),
                     {"EXAMINE INBOX", "SEARCH HEADER Subject by-file-2",
                      "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"});
  // Dovecot numbers the two files in new/ in directory order: one of them is 3.
  EXPECT_TRUE(out.find("* SEARCH 2\n") != std::string::npos ||
              out.find("* SEARCH 3\n") != std::string::npos)
      << out;
  for (const char* s : {"by-doveadm-1", "by-file-1", "by-file-2"}) {
    EXPECT_NE(out.find(std::string("Subject: ") + s), std::string::npos) << s << "\n" << out;
  }
  out = imap_session(o, login(), {"LIST \"\" \"*\" RETURN (SPECIAL-USE)"});
  for (const char* box : {"(\\Sent) \"/\" Sent", "(\\Trash) \"/\" Trash", "(\\Junk) \"/\" Junk",
                          "(\\Drafts) \"/\" Drafts"}) {
    EXPECT_NE(out.find(box), std::string::npos) << box << "\n" << out;
  }
}

TEST_F(TransportDovecot, FixtureChangesUidValidity) {
  const auto o = options("localhost", TlsMode::starttls);
  server_->deliver_file("Drafts", message("draft-1"));
  server_->set_uid_validity("Drafts", 4242);
  EXPECT_EQ(server_->uid_validity("Drafts"), 4242u);
  std::string out = imap_session(o, login(), {"STATUS Drafts (UIDVALIDITY MESSAGES)"});
  EXPECT_NE(out.find("UIDVALIDITY 4242"), std::string::npos) << out;
  EXPECT_NE(out.find("MESSAGES 1"), std::string::npos) << out;

  server_->deliver_doveadm("Trash", message("trash-1"));
  const std::uint32_t before = server_->uid_validity("Trash");
  server_->reset_uidlist("Trash");
  const std::uint32_t after = server_->uid_validity("Trash");
  EXPECT_NE(before, after);
  out = imap_session(o, login(), {"STATUS Trash (UIDVALIDITY MESSAGES)"});
  EXPECT_NE(out.find("UIDVALIDITY " + std::to_string(after)), std::string::npos) << out;
  EXPECT_NE(out.find("MESSAGES 1"), std::string::npos) << out;
}

}  // namespace
