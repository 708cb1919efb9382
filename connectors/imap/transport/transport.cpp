// SPDX-License-Identifier: Apache-2.0
// The only translation unit of the IMAP connector that includes Asio and OpenSSL.
#include "connectors/imap/transport/transport.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/throw_exception.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace crmcap::imap {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

// The header forward-declares awaitable with the default executor spelled out;
// this checks that it names the same type as Asio's default.
static_assert(std::is_same_v<Awaitable<int>, asio::awaitable<int>>);

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr milliseconds kCloseNotifyWait{2'000};

class TransportCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.imap.transport"; }
  std::string message(int v) const override {
    switch (static_cast<TransportErrc>(v)) {
      case TransportErrc::not_connected:
        return "not connected";
      case TransportErrc::resolve_failed:
        return "host name resolution failed";
      case TransportErrc::connect_failed:
        return "TCP connect failed";
      case TransportErrc::connect_timeout:
        return "connect timed out";
      case TransportErrc::tls_setup_failed:
        return "TLS setup failed";
      case TransportErrc::tls_handshake_failed:
        return "TLS handshake failed";
      case TransportErrc::certificate_rejected:
        return "server certificate rejected";
      case TransportErrc::handshake_timeout:
        return "TLS handshake timed out";
      case TransportErrc::read_failed:
        return "read failed";
      case TransportErrc::read_timeout:
        return "read timed out";
      case TransportErrc::write_failed:
        return "write failed";
      case TransportErrc::write_timeout:
        return "write timed out";
      case TransportErrc::closed_by_peer:
        return "connection closed by the server";
      case TransportErrc::bad_state:
        return "call not allowed in this state";
    }
    return "unknown transport error";
  }
};

// Runs `op` against `timer`: the result of `op`, or nullopt when the deadline
// passed first (the operation is then cancelled, and this returns once it has
// completed, so nothing refers to the caller's buffers afterwards).
template <class T>
Awaitable<std::optional<T>> with_deadline(asio::steady_timer& timer, milliseconds deadline,
                                          asio::awaitable<T> op) {
  using namespace asio::experimental::awaitable_operators;
  timer.expires_after(deadline);
  auto r = co_await (std::move(op) || timer.async_wait(tuple_awaitable));
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  co_return std::nullopt;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

std::string subject_of(X509* cert) {
  if (!cert) return {};
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  std::string s(buf);
  // "/CN=localhost/O=x" reads better as "CN=localhost, O=x".
  if (!s.empty() && s[0] == '/') s.erase(0, 1);
  for (std::size_t i = 0; (i = s.find('/', i)) != std::string::npos; i += 2) s.replace(i, 1, ", ");
  return s;
}

// A TLS client context that trusts the system store and, when given, a CA
// file. One per CA file for the whole process, shared by every connection. A
// context is built anew when either file has changed since (size or
// modification time), or a certificate directory of the system store
// (SSL_CERT_DIR, else OpenSSL's default) has had an entry added, removed or
// renamed (its modification time), so a renewed trust store is read without
// a restart, and a CA taken out of it is no longer trusted.
struct TrustedContext {
  std::shared_ptr<ssl::context> context;
  std::string error;  // what failed, when context is null
  boost::system::error_code ec;
};

std::string file_stamp(const char* path) {
  struct stat st {};
  if (path == nullptr || ::stat(path, &st) != 0) return "-";
  return std::to_string(st.st_size) + "/" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The system store's bundle: SSL_CERT_FILE, else OpenSSL's default.
const char* system_cert_file() {
  const char* file = std::getenv(X509_get_default_cert_file_env());
  return file != nullptr ? file : X509_get_default_cert_file();
}

// The system store's directories: SSL_CERT_DIR, a list as OpenSSL reads it,
// else OpenSSL's default.
std::vector<std::string> system_cert_dirs() {
  const char* env = std::getenv(X509_get_default_cert_dir_env());
  const std::string_view list = env != nullptr ? env : X509_get_default_cert_dir();
  std::vector<std::string> dirs;
  for (std::size_t at = 0; at <= list.size();) {
    std::size_t end = list.find(':', at);
    if (end == std::string_view::npos) end = list.size();
    if (end > at) dirs.emplace_back(list.substr(at, end - at));
    at = end + 1;
  }
  return dirs;
}

// Whether `dir` holds a certificate under OpenSSL's hashed name (8 hex
// digits, a dot, a number), as update-ca-certificates and `openssl rehash`
// lay a store out.
bool has_hashed_names(const std::string& dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
    if (name.size() >= 10 && std::all_of(name.begin(), name.begin() + 8, hex) && name[8] == '.' &&
        std::all_of(name.begin() + 9, name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return true;
    }
  }
  return false;
}

// The names and stamps of the system store's file and directories, then the
// stamp of `ca_file`.
std::string trust_stamp(const std::string& ca_file) {
  const char* file = system_cert_file();
  const bool named = std::getenv(X509_get_default_cert_file_env()) != nullptr;
  std::string stamp = (named ? "SSL_CERT_FILE=" : "") + std::string(file) + " " + file_stamp(file);
  for (const std::string& dir : system_cert_dirs())
    stamp += " " + dir + " " + file_stamp(dir.c_str());
  return stamp + " " + (ca_file.empty() ? "" : file_stamp(ca_file.c_str()));
}

// The system store is trusted through OpenSSL's default directory alone
// when it has hashed names and neither SSL_CERT_FILE nor SSL_CERT_DIR is set
// (Debian's and Ubuntu's layout): an issuer is read from there when a chain
// needs it. Loading the bundle instead parses all of its ~140 certificates
// up front, which cost 1 MiB of heap for as long as the daemon ran and 0.1 s
// of CPU for each context. Otherwise (a bundle-only store, as Fedora's, or
// either variable set: a directory named may hold only private CAs) OpenSSL's
// defaults are kept: the bundle, and the directories.
boost::system::error_code trust_system_store(ssl::context& ctx) {
  boost::system::error_code ec;
  const std::string dir = X509_get_default_cert_dir();
  if (std::getenv(X509_get_default_cert_file_env()) != nullptr ||
      std::getenv(X509_get_default_cert_dir_env()) != nullptr || !has_hashed_names(dir)) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.add_verify_path(dir, ec);
  }
  return ec;
}

TrustedContext trusted_context(const std::string& ca_file) {
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::string, std::shared_ptr<ssl::context>>> cache;
  const std::string stamp = trust_stamp(ca_file);
  const std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(ca_file); it != cache.end() && it->second.first == stamp) {
    return {it->second.second, {}, {}};
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec = trust_system_store(*ctx);
  if (ec) return {nullptr, "cannot load the system trust store: " + ec.message(), ec};
  if (!ca_file.empty()) {
    ctx->load_verify_file(ca_file, ec);
    if (ec) return {nullptr, "cannot load CA file " + ca_file + ": " + ec.message(), ec};
  }
  ctx->set_verify_mode(ssl::verify_peer);
  cache[ca_file] = {stamp, ctx};
  return {ctx, {}, {}};
}

}  // namespace

const std::error_category& transport_category() noexcept {
  static const TransportCategory category;
  return category;
}

std::error_code make_error_code(TransportErrc e) noexcept {
  return {static_cast<int>(e), transport_category()};
}

void throw_exception_from_error(const TransportError& e, const boost::source_location& loc) {
  boost::throw_exception(std::system_error(e.code, e.message), loc);
}

// The deadline of one direction's outstanding operation (read, or write),
// kept by a timer that is re-armed only when a deadline comes earlier than the
// one it waits for. A read or write then costs no timer system call and no
// extra coroutine: with a timer raced against each operation, the ~16,000
// small TLS reads of a 20,000-message backfill armed and cancelled a timer and
// spawned two coroutines each.
struct Watchdog {
  using clock = std::chrono::steady_clock;
  explicit Watchdog(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  clock::time_point deadline = clock::time_point::max();  // max: nothing outstanding
  milliseconds armed_for{0};                              // the outstanding operation's timeout
  bool waiting = false;  // a wait is outstanding on `timer` (it may end before `deadline`)
  bool expired = false;  // the outstanding operation's deadline passed
};

struct Transport::Impl {
  Impl(const asio::any_io_executor& ex, TransportOptions o)
      : executor(ex), opts(std::move(o)), read_dog(ex), write_dog(ex), step_timer(ex) {}

  asio::any_io_executor executor;
  TransportOptions opts;
  std::shared_ptr<ssl::context> context;  // shared by connections (trusted_context)
  // Recreated by every connect: an SSL object cannot be reused after a shutdown.
  std::unique_ptr<ssl::stream<tcp::socket>> stream;
  // Expires with the Impl (see wait()).
  std::shared_ptr<void> alive_token = std::make_shared<char>(0);
  Watchdog read_dog;              // deadline of the outstanding read
  Watchdog write_dog;             // deadline of the outstanding write
  asio::steady_timer step_timer;  // deadline of a connect, handshake or close
  bool tls = false;
  // Set when this side ended the connection after an error: an operation that
  // then completes with "aborted" reports not_connected instead.
  bool failed = false;
  // The first reason the certificate check gave, filled by the verify callback.
  std::string verify_failure;

  tcp::socket& socket() { return stream->next_layer(); }
  bool open() const { return stream && stream->next_layer().is_open() && !failed; }

  std::string peer() const {
    const bool v6 = opts.host.find(':') != std::string::npos;
    return (v6 ? "[" + opts.host + "]" : opts.host) + ":" + std::to_string(opts.port);
  }

  void close_now() noexcept {
    // A connection's watchdogs wait no longer than the connection, so that
    // they never keep the executor's run() from returning.
    for (Watchdog* w : {&read_dog, &write_dog}) {
      w->timer.cancel();
      w->waiting = false;
    }
    if (!stream) return;
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
    tls = false;
  }

  // Starts the deadline of an operation in `w`'s direction.
  void arm(Watchdog& w, milliseconds timeout) {
    w.expired = false;
    w.armed_for = timeout;
    w.deadline = Watchdog::clock::now() + timeout;
    if (w.waiting && w.timer.expiry() <= w.deadline) return;  // it wakes in time and waits on
    // Re-arming cancels a wait for a later time; that wait's handler then
    // does nothing, and this one takes over.
    w.timer.expires_at(w.deadline);
    wait(w);
  }

  // The operation completed: its deadline no longer counts. Returns whether it
  // had already passed (the connection then ended with a timeout).
  static bool disarm(Watchdog& w) {
    w.deadline = Watchdog::clock::time_point::max();
    return w.expired;
  }

  void wait(Watchdog& w) {
    w.waiting = true;
    // An aborted wait touches nothing: it was re-armed, or the connection
    // ended. A wait that fired may still be queued when the Impl is
    // destroyed: `alive` tells it.
    w.timer.async_wait([this, &w, alive = std::weak_ptr<void>(alive_token)](error_code ec) {
      if (!ec && !alive.expired()) on_wake(w);
    });
  }

  void on_wake(Watchdog& w) {
    if (!open()) {
      w.waiting = false;  // ended since the wait fired; a new connection arms anew
    } else if (w.deadline == Watchdog::clock::time_point::max()) {
      w.waiting = false;  // nothing outstanding; the next arm() starts a wait
    } else if (Watchdog::clock::now() < w.deadline) {
      w.timer.expires_at(w.deadline);  // operations since the last wake moved it later
      wait(w);
    } else {
      // The operation is still outstanding: closing the socket makes it (and
      // one in the other direction) complete with an error, which the caller
      // reports as the timeout (`expired`) or as not_connected.
      w.waiting = false;
      w.expired = true;
      failed = true;
      close_now();
    }
  }

  TransportError timed_out(const Watchdog& w, TransportErrc code, std::string_view step) {
    return TransportError{make_error_code(code), asio::error::timed_out,
                          std::string(step) + " " + peer() + " timed out after " +
                              std::to_string(w.armed_for.count()) + " ms"};
  }

  // Ends the connection and describes the failure.
  TransportError fail(TransportErrc code, error_code cause, std::string message) {
    if (code != TransportErrc::bad_state && code != TransportErrc::not_connected) {
      failed = true;
      close_now();
    }
    return TransportError{make_error_code(code), cause, std::move(message)};
  }

  TransportError not_connected(std::string_view what) {
    return TransportError{make_error_code(TransportErrc::not_connected),
                          {},
                          std::string(what) + " " + peer() + ": not connected"};
  }

  TransportResult<void> make_context() {
    if (opts.tls == TlsMode::none) {
      // Plain text: the stream's context is never used for a handshake.
      context = std::make_shared<ssl::context>(ssl::context::tls_client);
      return {};
    }
    TrustedContext t = trusted_context(opts.ca_file);
    if (!t.context) return fail(TransportErrc::tls_setup_failed, t.ec, t.error);
    context = std::move(t.context);
    return {};
  }

  Awaitable<TransportResult<void>> handshake() {
    SSL* ssl_handle = stream->native_handle();
    // SNI carries DNS names only (RFC 6066, section 3).
    if (!is_ip_literal(opts.host) && SSL_set_tlsext_host_name(ssl_handle, opts.host.c_str()) != 1) {
      co_return fail(TransportErrc::tls_setup_failed, {},
                     "cannot set the TLS server name " + opts.host);
    }
    verify_failure.clear();
    stream->set_verify_mode(ssl::verify_peer);
    stream->set_verify_callback([this, check = ssl::host_name_verification(opts.host)](
                                    bool preverified, ssl::verify_context& vc) {
      X509_STORE_CTX* store = vc.native_handle();
      if (!preverified) {
        if (verify_failure.empty()) {
          const int err = X509_STORE_CTX_get_error(store);
          const int depth = X509_STORE_CTX_get_error_depth(store);
          verify_failure = std::string(X509_verify_cert_error_string(err)) + " (depth " +
                           std::to_string(depth) + ", " +
                           subject_of(X509_STORE_CTX_get_current_cert(store)) + ")";
        }
        return false;
      }
      if (!check(preverified, vc)) {
        if (verify_failure.empty()) {
          verify_failure = "the certificate (" +
                           subject_of(X509_STORE_CTX_get_current_cert(store)) +
                           ") does not name host " + opts.host;
        }
        return false;
      }
      return true;
    });
    auto r =
        co_await with_deadline(step_timer, opts.connect_timeout,
                               stream->async_handshake(ssl::stream_base::client, tuple_awaitable));
    if (!r) {
      co_return fail(TransportErrc::handshake_timeout, asio::error::timed_out,
                     "TLS handshake with " + peer() + " timed out after " +
                         std::to_string(opts.connect_timeout.count()) + " ms");
    }
    auto [ec] = *r;
    if (ec) {
      if (!verify_failure.empty()) {
        co_return fail(TransportErrc::certificate_rejected, ec,
                       "TLS handshake with " + peer() +
                           " failed: certificate verify failed: " + verify_failure);
      }
      co_return fail(TransportErrc::tls_handshake_failed, ec,
                     "TLS handshake with " + peer() + " failed: " + ec.message());
    }
    tls = true;
    co_return TransportResult<void>{};
  }
};

Transport::Transport(const asio::any_io_executor& executor, TransportOptions options)
    : impl_(std::make_unique<Impl>(executor, std::move(options))) {}
Transport::~Transport() {
  if (impl_) impl_->close_now();
}
Transport::Transport(Transport&&) noexcept = default;
Transport& Transport::operator=(Transport&&) noexcept = default;

Awaitable<TransportResult<void>> Transport::async_connect() {
  Impl* s = impl_.get();  // stable if *this is moved while suspended
  s->close_now();
  s->failed = false;
  s->stream.reset();
  if (auto r = s->make_context(); !r) co_return r;
  s->stream = std::make_unique<ssl::stream<tcp::socket>>(s->executor, *s->context);

  const auto started = std::chrono::steady_clock::now();
  const auto timeout = s->opts.connect_timeout;
  auto timed_out = [&] {
    return s->fail(
        TransportErrc::connect_timeout, asio::error::timed_out,
        "connect to " + s->peer() + " timed out after " + std::to_string(timeout.count()) + " ms");
  };
  tcp::resolver resolver(s->executor);
  auto resolved = co_await with_deadline(
      s->step_timer, timeout,
      resolver.async_resolve(s->opts.host, std::to_string(s->opts.port), tuple_awaitable));
  if (!resolved) co_return timed_out();
  auto [rec, endpoints] = std::move(*resolved);
  if (rec) {
    co_return s->fail(TransportErrc::resolve_failed, rec,
                      "resolving " + s->opts.host + " failed: " + rec.message());
  }

  auto left = timeout -
              std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
  auto connected =
      co_await with_deadline(s->step_timer, std::max(left, milliseconds(1)),
                             asio::async_connect(s->socket(), endpoints, tuple_awaitable));
  if (!connected) co_return timed_out();
  auto [cec, endpoint] = *connected;
  if (cec) {
    co_return s->fail(TransportErrc::connect_failed, cec,
                      "connect to " + s->peer() + " failed: " + cec.message());
  }
  error_code ignored;
  // IMAP commands are small and pipelined; do not hold them back.
  s->socket().set_option(tcp::no_delay(true), ignored);

  if (s->opts.tls == TlsMode::implicit) co_return co_await s->handshake();
  co_return TransportResult<void>{};
}

Awaitable<TransportResult<void>> Transport::async_start_tls() {
  Impl* s = impl_.get();
  if (!s->open()) co_return s->not_connected("STARTTLS with");
  if (s->opts.tls != TlsMode::starttls || s->tls) {
    co_return TransportError{
        make_error_code(TransportErrc::bad_state),
        {},
        "STARTTLS with " + s->peer() + ": " +
            (s->tls ? "TLS is already active" : "the connection is not in STARTTLS mode")};
  }
  co_return co_await s->handshake();
}

Awaitable<TransportResult<void>> Transport::async_write(std::string_view bytes) {
  return async_write(bytes, impl_->opts.io_timeout);
}

Awaitable<TransportResult<void>> Transport::async_write(std::string_view bytes,
                                                        milliseconds timeout) {
  Impl* s = impl_.get();
  if (!s->open()) co_return s->not_connected("write to");
  auto buf = asio::buffer(bytes.data(), bytes.size());
  s->arm(s->write_dog, timeout);
  auto [ec, n] = s->tls ? co_await asio::async_write(*s->stream, buf, tuple_awaitable)
                        : co_await asio::async_write(s->socket(), buf, tuple_awaitable);
  if (Impl::disarm(s->write_dog)) {
    co_return s->timed_out(s->write_dog, TransportErrc::write_timeout, "write to");
  }
  if (ec) {
    if (s->failed) co_return s->not_connected("write to");
    co_return s->fail(TransportErrc::write_failed, ec,
                      "write to " + s->peer() + " failed: " + ec.message());
  }
  co_return TransportResult<void>{};
}

Awaitable<TransportResult<std::size_t>> Transport::async_read_some(std::string& buffer,
                                                                   std::size_t max_bytes) {
  return async_read_some(buffer, impl_->opts.io_timeout, max_bytes);
}

Awaitable<TransportResult<std::size_t>> Transport::async_read_some(std::string& buffer,
                                                                   milliseconds timeout,
                                                                   std::size_t max_bytes) {
  max_bytes = std::max<std::size_t>(max_bytes, 1);
  const std::size_t old = buffer.size();
  buffer.resize(old + max_bytes);
  auto n = co_await async_read_some(std::span<char>(buffer.data() + old, max_bytes), timeout);
  buffer.resize(n ? old + *n : old);
  co_return n;
}

Awaitable<TransportResult<std::size_t>> Transport::async_read_some(std::span<char> into,
                                                                   milliseconds timeout) {
  Impl* s = impl_.get();
  if (!s->open()) co_return s->not_connected("read from");
  if (into.empty()) co_return std::size_t{0};
  auto buf = asio::buffer(into.data(), into.size());
  s->arm(s->read_dog, timeout);
  auto [ec, n] = s->tls ? co_await s->stream->async_read_some(buf, tuple_awaitable)
                        : co_await s->socket().async_read_some(buf, tuple_awaitable);
  if (Impl::disarm(s->read_dog)) {
    co_return s->timed_out(s->read_dog, TransportErrc::read_timeout, "read from");
  }
  if (ec) {
    if (s->failed) co_return s->not_connected("read from");
    // A server that closes TCP without a TLS close_notify (stream_truncated) is
    // common after BYE; the IMAP layer decides whether the close was expected.
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      co_return s->fail(TransportErrc::closed_by_peer, ec, "connection closed by " + s->peer());
    }
    co_return s->fail(TransportErrc::read_failed, ec,
                      "read from " + s->peer() + " failed: " + ec.message());
  }
  co_return n;
}

Awaitable<void> Transport::async_close() {
  Impl* s = impl_.get();
  if (!s->stream) co_return;
  if (s->tls && s->open()) {
    // close_notify both ways; a server that just drops the connection ends it
    // too (eof or stream_truncated). Either way the socket closes below.
    (void)co_await with_deadline(s->step_timer, std::min(kCloseNotifyWait, s->opts.io_timeout),
                                 s->stream->async_shutdown(tuple_awaitable));
  }
  s->close_now();
}

void Transport::close() noexcept {
  if (impl_) impl_->close_now();
}

bool Transport::is_open() const noexcept { return impl_ && impl_->open(); }
bool Transport::is_tls() const noexcept { return impl_ && impl_->open() && impl_->tls; }

std::string Transport::tls_version() const {
  if (!is_tls()) return {};
  return SSL_get_version(impl_->stream->native_handle());
}

std::string Transport::peer() const { return impl_->peer(); }
const TransportOptions& Transport::options() const noexcept { return impl_->opts; }

}  // namespace crmcap::imap
