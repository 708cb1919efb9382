// SPDX-License-Identifier: Apache-2.0
#include "connectors/caldav/detail.hpp"

#include <string>
#include <utility>

namespace crmcap::caldav::detail {

SyncError make_error(Errc code, std::string message, RetryClass retry) {
  return SyncError{make_error_code(code), std::move(message), retry, std::nullopt};
}

SyncError transport_error(const Io& io, std::string_view what) {
  std::string message = std::string(what) + ": no response";
  if (!io.message.empty()) {
    message += " (" + io.message + ")";
  } else if (io.error) {
    message += " (" + io.error.message() + ")";
  }
  return make_error(Errc::transport, std::move(message), RetryClass::retry_later);
}

SyncError xml_error(const XmlError& e, std::string_view what) {
  // A reply that cannot be read is most likely a server in trouble (a
  // truncated body, a proxy's error page): retried later, like a 5xx.
  return SyncError{e.code, std::string(what) + ": " + e.message, RetryClass::retry_later,
                   std::nullopt};
}

SyncError status_error(const HttpResponse& r, std::string_view what,
                       std::chrono::system_clock::time_point now) {
  const std::string message = std::string(what) + ": HTTP status " + std::to_string(r.status);
  const int s = r.status;
  if (s == 401 || s == 403) return make_error(Errc::auth_failed, message, RetryClass::needs_user);
  if (s == 429 || s == 503) {
    SyncError e = make_error(Errc::server_busy, message, RetryClass::retry_later);
    if (auto v = find_header(r.headers, "Retry-After")) e.retry_at = parse_retry_after(*v, now);
    return e;
  }
  if (s == 408) return make_error(Errc::server_busy, message, RetryClass::retry_later);
  if (s >= 500 && s < 600) return make_error(Errc::server_error, message, RetryClass::retry_later);
  if (s == 404 || s == 410) return make_error(Errc::not_found, message, RetryClass::needs_user);
  return make_error(Errc::refused, message, RetryClass::needs_user);
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

SyncResult<HttpRequest> follow_redirect(const HttpRequest& sent, const HttpResponse& r,
                                        unsigned& hops, unsigned max_hops) {
  auto location = find_header(r.headers, "Location");
  if (!location || location->empty()) {
    return make_error(
        Errc::bad_redirect,
        sent.url + ": HTTP status " + std::to_string(r.status) + " without a Location",
        RetryClass::retry_later);
  }
  if (hops >= max_hops) {
    return make_error(Errc::too_many_redirects,
                      sent.url + ": more than " + std::to_string(max_hops) + " redirects",
                      RetryClass::needs_user);
  }
  auto to = canonical_url(sent.url, *location);
  if (!to) {
    return make_error(Errc::bad_redirect, sent.url + ": a Location that cannot be parsed",
                      RetryClass::needs_user);
  }
  if (!redirect_allowed(sent.url, *to)) {
    return make_error(Errc::bad_redirect,
                      sent.url + ": redirected to " + *to +
                          " (only the same host, or http to https, is followed)",
                      RetryClass::needs_user);
  }
  ++hops;
  HttpRequest next = sent;
  next.url = std::move(*to);
  return next;
}

HttpRequest propfind(const std::string& url, int depth, PropSet set) {
  return HttpRequest{
      "PROPFIND",
      url,
      {{"Depth", std::to_string(depth)}, {"Content-Type", "application/xml; charset=utf-8"}},
      propfind_body(set)};
}

HttpRequest report(const std::string& url, std::string body, const char* depth) {
  HttpRequest r{"REPORT", url, {}, std::move(body)};
  if (depth != nullptr) r.headers.push_back({"Depth", depth});
  r.headers.push_back({"Content-Type", "application/xml; charset=utf-8"});
  return r;
}

Action send_action(const HttpRequest& request) {
  Action a;
  a.kind = Action::Kind::send;
  a.request = request;
  return a;
}

Action error_action(SyncError error) {
  Action a;
  a.kind = Action::Kind::error;
  a.error = std::move(error);
  return a;
}

}  // namespace crmcap::caldav::detail
