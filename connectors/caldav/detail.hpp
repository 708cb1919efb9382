// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/caldav: what both state machines share (requests,
// redirects, the mapping of statuses to errors).
#pragma once

#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/multistatus.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace crmcap::caldav::detail {

SyncError make_error(Errc code, std::string message, RetryClass retry);
// The transport got no response to `what`.
SyncError transport_error(const Io& io, std::string_view what);
// A reply to `what` whose body could not be read.
SyncError xml_error(const XmlError& e, std::string_view what);
// A status that is neither the expected one nor a redirect: 401/403 need the
// user; 429 and 503 are busy (with Retry-After read against `now`); other 5xx
// retry later; 404/410 are not_found; the rest refused (needs the user).
SyncError status_error(const HttpResponse& r, std::string_view what,
                       std::chrono::system_clock::time_point now);

bool is_redirect(int status);
// The request to send after the redirect `r` to `sent`: the same method,
// headers and body to the Location (resolved against sent.url). `hops` counts
// the redirects followed for this request so far and is incremented.
SyncResult<HttpRequest> follow_redirect(const HttpRequest& sent, const HttpResponse& r,
                                        unsigned& hops, unsigned max_hops);

HttpRequest propfind(const std::string& url, int depth, PropSet set);
HttpRequest report(const std::string& url, std::string body, const char* depth);

Action send_action(const HttpRequest& request);
Action error_action(SyncError error);

}  // namespace crmcap::caldav::detail
