// SPDX-License-Identifier: Apache-2.0
// The CalDAV transport: performs one HttpRequest (connectors/caldav/http.hpp)
// with libcurl and returns the HttpResponse, or a TransportError. It carries
// bytes only: it never parses WebDAV, never follows a redirect (a 3xx is a
// response, with its Location header, for the sync core to judge), and never
// logs. Any HTTP status (401, 404, 500, ...) is a response, not an error.
//
// Threads: perform() blocks until the exchange is over, bounded by the
// timeouts in TransportOptions. The daemon calls it on a worker thread, never on
// the Asio loop. A Transport is not thread-safe: one thread at a time uses it
// (distinct Transports may be used on distinct threads at once). It keeps one
// curl easy handle, so a later request to the same server reuses the
// connection when the server keeps it open.
//
// Security: TLS certificates and host names are always verified. http:// is
// refused unless TransportOptions::allow_insecure is set. The credentials in
// TransportOptions are added to every request by the transport (the request
// must carry no Authorization header of its own) and appear in no message.
//
// libcurl is initialised once per process (curl_global_init, on the first
// Transport constructed; thread-safe) and never cleaned up.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "connectors/caldav/http.hpp"

namespace crmcap::caldav {

struct TransportOptions {
  enum class Auth {
    none,    // no Authorization header
    basic,   // username + password (RFC 7617), sent with the first request
    bearer,  // bearer_token (RFC 6750), e.g. an OAuth 2 access token
  };
  Auth auth = Auth::none;
  std::string username;      // basic; must not contain ':'
  std::string password;      // basic
  std::string bearer_token;  // bearer; must not contain CR or LF
  // PEM file with extra trusted CA certificates, used in addition to the
  // system trust store. Empty: the system store only.
  std::string ca_file;
  // Allows http:// URLs (no TLS). https:// is always allowed.
  bool allow_insecure = false;
  // Name resolution plus TCP connect plus TLS handshake.
  std::chrono::milliseconds connect_timeout{15'000};
  // The whole exchange, from the start of connect to the last body byte.
  std::chrono::milliseconds total_timeout{120'000};
  // A transfer slower than low_speed_bytes per second for low_speed_time
  // fails: a server that stalls mid-response is given up well before
  // total_timeout. libcurl counts whole seconds and averages the speed over
  // the last 5 s, so a stall right after a burst is noticed up to about
  // 5 s + low_speed_time after it began.
  std::size_t low_speed_bytes = 1;
  std::chrono::seconds low_speed_time{30};
  // Largest response body accepted (after any Content-Encoding is undone); a
  // larger one fails with response_too_large. The response headers are capped
  // separately at 256 KiB.
  std::size_t max_response_bytes = 64 * 1024 * 1024;
  std::string user_agent = "crm-capture";
  // Asked while a request runs (libcurl's progress callback: at each step
  // of the transfer, and about once a second while nothing moves, connects
  // included); true ends the request with TransportErrc::aborted. Called on
  // the thread that called perform(). Empty: never.
  std::function<bool()> abort;
};

// Which step failed. The retry class follows from it (retry_class()).
enum class TransportErrc {
  init_failed = 1,       // libcurl could not be initialised or set up
  invalid_request,       // bad URL or header, credentials unusable (e.g. ':' in a user name)
  insecure_refused,      // an http:// URL without allow_insecure
  resolve_failed,        // the host name did not resolve
  connect_failed,        // the TCP connection was refused or failed
  connect_timeout,       // no connection (TCP + TLS) within connect_timeout
  tls_setup_failed,      // the TLS setup failed here (e.g. an unreadable ca_file)
  certificate_rejected,  // the server's certificate is untrusted or names another host
  tls_failed,            // the TLS handshake failed for a reason other than trust
  connection_lost,       // a send or receive failed, or the server closed early
  timeout,               // total_timeout passed, or the transfer stalled (low speed)
  bad_response,          // the server's bytes are not HTTP as libcurl knows it
  response_too_large,    // body over max_response_bytes, or headers over 256 KiB
  transfer_failed,       // any other libcurl failure (see the message)
  aborted,               // TransportOptions::abort said so
};
const std::error_category& transport_category() noexcept;
std::error_code make_error_code(TransportErrc e) noexcept;

// How a failure should be handled: RetryClass (http.hpp).

// needs_user for invalid_request, insecure_refused, tls_setup_failed and
// certificate_rejected; retry_later for every other code, including
// response_too_large (the sync core may ask for less, e.g. smaller multiget
// batches).
RetryClass retry_class(std::error_code code) noexcept;

struct TransportError {
  std::error_code code;  // a TransportErrc
  // One sentence naming the method, the host and port, and what failed, e.g.
  // "PROPFIND https://dav.example.com:443: server certificate rejected: SSL
  // certificate problem: self-signed certificate". Never a credential, never
  // payload bytes.
  std::string message;
  RetryClass retry() const noexcept { return retry_class(code); }
};
[[noreturn]] void throw_exception_from_error(const TransportError& e,
                                             const boost::source_location& loc);

template <class T>
using TransportResult = boost::system::result<T, TransportError>;

class Transport {
 public:
  // Initialises libcurl for the process on first use; never fails (a failure
  // to set up is reported by perform()). A moved-from Transport may only be
  // destroyed or assigned to.
  explicit Transport(TransportOptions options);
  ~Transport();
  Transport(Transport&&) noexcept;
  Transport& operator=(Transport&&) noexcept;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sends `request` (its method, URL, headers and body as given; a body is sent
  // with Content-Length) and waits for the whole response. Returns the final
  // response: its status, the headers of that response only (an interim 100
  // Continue's are dropped; names as the server sent them, values without
  // surrounding blanks), and its body (decoded when the server used a
  // Content-Encoding). Blocks; see the threading note above.
  // The request must use an absolute http(s) URL without user info, and carry
  // no Authorization header and no CR or LF in any header.
  TransportResult<HttpResponse> perform(const HttpRequest& request);

  const TransportOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmcap::caldav

template <>
struct std::is_error_code_enum<crmcap::caldav::TransportErrc> : std::true_type {};
