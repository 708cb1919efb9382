// SPDX-License-Identifier: Apache-2.0
#include "connectors/caldav/transport.hpp"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/throw_exception.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

namespace crmcap::caldav {

namespace {

// Response headers beyond this many bytes (all lines together) fail the
// exchange: no CalDAV server needs more, and a hostile one must not grow them
// without bound (libcurl only caps each header line).
constexpr std::size_t kMaxHeaderBytes = 256 * 1024;

class TransportCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.caldav.transport"; }
  std::string message(int v) const override {
    switch (static_cast<TransportErrc>(v)) {
      case TransportErrc::init_failed:
        return "libcurl setup failed";
      case TransportErrc::invalid_request:
        return "invalid request";
      case TransportErrc::insecure_refused:
        return "http:// refused (allow_insecure is off)";
      case TransportErrc::resolve_failed:
        return "host name resolution failed";
      case TransportErrc::connect_failed:
        return "connect failed";
      case TransportErrc::connect_timeout:
        return "connect timed out";
      case TransportErrc::tls_setup_failed:
        return "TLS setup failed";
      case TransportErrc::certificate_rejected:
        return "server certificate rejected";
      case TransportErrc::tls_failed:
        return "TLS handshake failed";
      case TransportErrc::connection_lost:
        return "connection lost";
      case TransportErrc::timeout:
        return "timed out";
      case TransportErrc::bad_response:
        return "malformed response";
      case TransportErrc::response_too_large:
        return "response too large";
      case TransportErrc::transfer_failed:
        return "transfer failed";
      case TransportErrc::aborted:
        return "aborted";
    }
    return "unknown transport error";
  }
};

// libcurl's global state, set up once per process. Since 7.84 curl_global_init
// is thread-safe, and a function-local static is initialised once anyway.
CURLcode global_init() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  return rc;
}

bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

// RFC 9110 token characters (method and header names).
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
    if (std::strchr("\"(),/:;<=>?@[\\]{}", c)) return false;
  }
  return true;
}

bool has_line_break(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

long clamp_long(long long v, long lowest) {
  return static_cast<long>(std::clamp<long long>(v, lowest, LONG_MAX));
}

// What one perform() collects through libcurl's callbacks.
struct Exchange {
  HttpResponse response;
  std::size_t max_body = 0;
  std::size_t header_bytes = 0;
  bool body_too_large = false;
  bool headers_too_large = false;
  const std::string* ca_file = nullptr;
  bool ca_file_failed = false;
  const std::function<bool()>* abort = nullptr;  // TransportOptions::abort, when set
  bool aborted = false;
};

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* x = static_cast<Exchange*>(user);
  if (!(*x->abort)()) return 0;
  x->aborted = true;
  return 1;  // libcurl stops with CURLE_ABORTED_BY_CALLBACK
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const std::size_t n = size * count;
  if (n > x->max_body - std::min(x->max_body, x->response.body.size())) {
    x->body_too_large = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  x->response.body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const std::size_t n = size * count;
  x->header_bytes += n;
  if (x->header_bytes > kMaxHeaderBytes) {
    x->headers_too_large = true;
    return 0;
  }
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    // A new status line: what came before belonged to an interim response
    // (100 Continue) or to a proxy's CONNECT answer.
    x->response.headers.clear();
    return n;
  }
  auto& headers = x->response.headers;
  if ((line.starts_with(' ') || line.starts_with('\t')) && !headers.empty()) {
    // obs-fold (RFC 9112 5.2): a continuation of the previous value.
    const auto more = trim(line);
    if (!more.empty()) (headers.back().value += ' ') += more;
    return n;
  }
  line = trim(line);
  const auto colon = line.find(':');
  if (line.empty() || colon == std::string_view::npos || colon == 0) return n;
  headers.push_back(
      {std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
  return n;
}

// Adds options.ca_file to the trust store libcurl set up (the system's), so
// that it is trusted in addition to, not instead of, the system CAs
// (CURLOPT_CAINFO would replace the bundle). Loading the same file into a
// store twice is harmless: OpenSSL 3 skips certificates it already holds.
CURLcode add_extra_ca(CURL*, void* ssl_ctx, void* user) {
  auto* x = static_cast<Exchange*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  if (!store || X509_STORE_load_file(store, x->ca_file->c_str()) != 1) {
    ERR_clear_error();
    x->ca_file_failed = true;
    return CURLE_SSL_CACERT_BADFILE;
  }
  return CURLE_OK;
}

TransportErrc map_curl_code(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return TransportErrc::invalid_request;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportErrc::resolve_failed;
    case CURLE_COULDNT_CONNECT:
      return TransportErrc::connect_failed;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportErrc::timeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ISSUER_ERROR:
      return TransportErrc::certificate_rejected;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
      return TransportErrc::tls_setup_failed;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_SHUTDOWN_FAILED:
      return TransportErrc::tls_failed;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
      return TransportErrc::connection_lost;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP3:
      return TransportErrc::bad_response;
    case CURLE_FILESIZE_EXCEEDED:
      return TransportErrc::response_too_large;
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_FAILED_INIT:
      return TransportErrc::init_failed;
    default:
      return TransportErrc::transfer_failed;
  }
}

struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};

// One part of a parsed URL; empty when absent.
std::string url_part(CURLU* url, CURLUPart part, unsigned flags = 0) {
  char* s = nullptr;
  if (curl_url_get(url, part, &s, flags) != CURLUE_OK || !s) return {};
  std::string out(s);
  curl_free(s);
  return out;
}

}  // namespace

const std::error_category& transport_category() noexcept {
  static const TransportCategory category;
  return category;
}

std::error_code make_error_code(TransportErrc e) noexcept {
  return {static_cast<int>(e), transport_category()};
}

RetryClass retry_class(std::error_code code) noexcept {
  if (code.category() != transport_category()) return RetryClass::retry_later;
  switch (static_cast<TransportErrc>(code.value())) {
    case TransportErrc::invalid_request:
    case TransportErrc::insecure_refused:
    case TransportErrc::tls_setup_failed:
    case TransportErrc::certificate_rejected:
      return RetryClass::needs_user;
    default:
      return RetryClass::retry_later;
  }
}

void throw_exception_from_error(const TransportError& e, const boost::source_location& loc) {
  boost::throw_exception(std::system_error(e.code, e.message), loc);
}

struct Transport::Impl {
  explicit Impl(TransportOptions o) : options(std::move(o)) {
    if (global_init() == CURLE_OK) easy = curl_easy_init();
  }
  ~Impl() {
    if (easy) curl_easy_cleanup(easy);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  TransportResult<HttpResponse> perform(const HttpRequest& request);

  TransportOptions options;
  CURL* easy = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
};

TransportResult<HttpResponse> Transport::Impl::perform(const HttpRequest& request) {
  // Names the exchange in messages: method, scheme, host and port only (no
  // path or query, which could carry tokens; no user info, which is refused).
  std::string where = request.method;
  auto fail = [&](TransportErrc e, std::string_view detail) {
    std::string message = where + ": " + make_error_code(e).message();
    if (!detail.empty()) (message += ": ") += detail;
    return TransportError{make_error_code(e), std::move(message)};
  };

  // The URL: parsed by libcurl itself, so that what is checked here is what it
  // will connect to.
  std::unique_ptr<CURLU, UrlDeleter> url(curl_url());
  if (!url) return fail(TransportErrc::init_failed, "out of memory");
  if (const auto rc = curl_url_set(url.get(), CURLUPART_URL, request.url.c_str(), 0);
      rc != CURLUE_OK) {
    return fail(TransportErrc::invalid_request, std::string("bad URL: ") + curl_url_strerror(rc));
  }
  const std::string scheme = url_part(url.get(), CURLUPART_SCHEME);
  const std::string host = url_part(url.get(), CURLUPART_HOST);
  const std::string port = url_part(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  where += " " + scheme + "://" + host + ":" + port;
  if (scheme != "https" && scheme != "http") {
    return fail(TransportErrc::invalid_request, "the URL scheme is not http or https");
  }
  if (scheme == "http" && !options.allow_insecure) {
    return fail(TransportErrc::insecure_refused, {});
  }
  if (!url_part(url.get(), CURLUPART_USER).empty() ||
      !url_part(url.get(), CURLUPART_PASSWORD).empty()) {
    return fail(TransportErrc::invalid_request, "the URL carries user info");
  }
  if (!is_token(request.method)) return fail(TransportErrc::invalid_request, "bad method");
  if (!easy) {
    return fail(TransportErrc::init_failed, global_init() != CURLE_OK
                                                ? curl_easy_strerror(global_init())
                                                : "curl_easy_init failed");
  }

  // Headers. An empty value is sent as "Name;" (libcurl's spelling: "Name:"
  // would remove the header).
  Slist headers;
  auto add_header = [&](const std::string& line) {
    curl_slist* l = curl_slist_append(headers.get(), line.c_str());
    if (!l) return false;
    (void)headers.release();
    headers.reset(l);
    return true;
  };
  bool has_content_type = false, has_expect = false;
  for (const auto& h : request.headers) {
    if (!is_token(h.name) || has_line_break(h.value)) {
      return fail(TransportErrc::invalid_request, "bad header " + h.name);
    }
    if (iequals(h.name, "Authorization")) {
      return fail(TransportErrc::invalid_request, "the request carries its own Authorization");
    }
    has_content_type |= iequals(h.name, "Content-Type");
    has_expect |= iequals(h.name, "Expect");
    if (!add_header(h.value.empty() ? h.name + ";" : h.name + ": " + h.value)) {
      return fail(TransportErrc::init_failed, "out of memory");
    }
  }
  const bool head = request.method == "HEAD";
  const bool send_body = !head && (!request.body.empty() || request.method == "PUT" ||
                                   request.method == "POST" || request.method == "PATCH");
  // libcurl would add "Expect: 100-continue" to large bodies and wait up to 1 s
  // for a server that never answers it; CalDAV servers do not need it.
  if (!has_expect && !add_header("Expect:"))
    return fail(TransportErrc::init_failed, "out of memory");
  // libcurl would label a body application/x-www-form-urlencoded.
  if (send_body && !has_content_type && !add_header("Content-Type:")) {
    return fail(TransportErrc::init_failed, "out of memory");
  }

  switch (options.auth) {
    case TransportOptions::Auth::none:
      break;
    case TransportOptions::Auth::basic:
      if (options.username.find(':') != std::string::npos || has_line_break(options.username)) {
        return fail(TransportErrc::invalid_request, "the user name contains ':' or a line break");
      }
      break;
    case TransportOptions::Auth::bearer:
      if (options.bearer_token.empty() || has_line_break(options.bearer_token)) {
        return fail(TransportErrc::invalid_request,
                    "the bearer token is empty or has a line break");
      }
      break;
  }

  // Every option is set again on each request: curl_easy_reset() forgets them
  // but keeps the handle's open connections, TLS sessions and DNS cache.
  curl_easy_reset(easy);
  Exchange x;
  x.max_body = options.max_response_bytes;
  x.ca_file = &options.ca_file;
  errbuf[0] = '\0';
  CURLcode set = CURLE_OK;
  auto opt = [&](CURLoption o, auto v) {
    if (set == CURLE_OK) set = curl_easy_setopt(easy, o, v);
  };
  opt(CURLOPT_ERRORBUFFER, errbuf);
  opt(CURLOPT_NOSIGNAL, 1L);
  opt(CURLOPT_URL, request.url.c_str());
  opt(CURLOPT_PROTOCOLS_STR, options.allow_insecure ? "http,https" : "https");
  opt(CURLOPT_FOLLOWLOCATION, 0L);
  if (head) {
    opt(CURLOPT_NOBODY, 1L);
  } else {
    opt(CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (send_body) {
    opt(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    opt(CURLOPT_POSTFIELDS, request.body.data());
  }
  opt(CURLOPT_HTTPHEADER, headers.get());
  opt(CURLOPT_USERAGENT, options.user_agent.c_str());
  if (options.auth == TransportOptions::Auth::basic) {
    opt(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    opt(CURLOPT_USERNAME, options.username.c_str());
    opt(CURLOPT_PASSWORD, options.password.c_str());
  } else if (options.auth == TransportOptions::Auth::bearer) {
    opt(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BEARER));
    opt(CURLOPT_XOAUTH2_BEARER, options.bearer_token.c_str());
  }
  opt(CURLOPT_SSL_VERIFYPEER, 1L);
  opt(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) {
    opt(CURLOPT_SSL_CTX_FUNCTION, &add_extra_ca);
    opt(CURLOPT_SSL_CTX_DATA, static_cast<void*>(&x));
  }
  opt(CURLOPT_CONNECTTIMEOUT_MS, clamp_long(options.connect_timeout.count(), 1));
  opt(CURLOPT_TIMEOUT_MS, clamp_long(options.total_timeout.count(), 1));
  opt(CURLOPT_LOW_SPEED_LIMIT, clamp_long(static_cast<long long>(options.low_speed_bytes), 1));
  opt(CURLOPT_LOW_SPEED_TIME, clamp_long(options.low_speed_time.count(), 1));
  opt(CURLOPT_MAXFILESIZE_LARGE,
      static_cast<curl_off_t>(std::min<std::size_t>(options.max_response_bytes,
                                                    std::numeric_limits<curl_off_t>::max())));
  opt(CURLOPT_ACCEPT_ENCODING, "");  // every encoding this libcurl can undo
  opt(CURLOPT_TCP_KEEPALIVE, 1L);
  opt(CURLOPT_WRITEFUNCTION, &on_body);
  opt(CURLOPT_WRITEDATA, static_cast<void*>(&x));
  opt(CURLOPT_HEADERFUNCTION, &on_header);
  opt(CURLOPT_HEADERDATA, static_cast<void*>(&x));
  if (options.abort) {
    x.abort = &options.abort;
    opt(CURLOPT_XFERINFOFUNCTION, &on_progress);
    opt(CURLOPT_XFERINFODATA, static_cast<void*>(&x));
    opt(CURLOPT_NOPROGRESS, 0L);
  }
  if (set != CURLE_OK) return fail(TransportErrc::init_failed, curl_easy_strerror(set));

  const CURLcode rc = curl_easy_perform(easy);
  // Nothing below may point into this call's request or Exchange once it returns.
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));

  if (rc != CURLE_OK) {
    const std::string detail = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc);
    if (x.aborted) return fail(TransportErrc::aborted, "asked to stop");
    if (x.body_too_large) {
      return fail(TransportErrc::response_too_large,
                  "body over " + std::to_string(options.max_response_bytes) + " bytes");
    }
    if (x.headers_too_large) {
      return fail(TransportErrc::response_too_large,
                  "headers over " + std::to_string(kMaxHeaderBytes) + " bytes");
    }
    if (x.ca_file_failed) {
      return fail(TransportErrc::tls_setup_failed, "cannot load CA file " + options.ca_file);
    }
    if (rc == CURLE_FILESIZE_EXCEEDED) {
      return fail(TransportErrc::response_too_large,
                  "body over " + std::to_string(options.max_response_bytes) + " bytes");
    }
    TransportErrc e = map_curl_code(rc);
    if (e == TransportErrc::timeout) {
      // Still connecting (TCP, or the TLS handshake) when time ran out?
      curl_off_t connect = 0, app_connect = 0;
      curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
      curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &app_connect);
      if (connect == 0 || (scheme == "https" && app_connect == 0)) {
        e = TransportErrc::connect_timeout;
      }
    }
    return fail(e, detail);
  }

  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  x.response.status = static_cast<int>(status);
  return std::move(x.response);
}

Transport::Transport(TransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
Transport::~Transport() = default;
Transport::Transport(Transport&&) noexcept = default;
Transport& Transport::operator=(Transport&&) noexcept = default;

TransportResult<HttpResponse> Transport::perform(const HttpRequest& request) {
  return impl_->perform(request);
}

const TransportOptions& Transport::options() const noexcept { return impl_->options; }

}  // namespace crmcap::caldav
