// SPDX-License-Identifier: Apache-2.0
// The HTTP exchange between the CalDAV sync core and its transport. The core
// (sans-io) says which request to make and is resumed with the response; the
// transport (libcurl) only carries bytes. The transport adds authentication
// (Basic or Bearer, from the mailbox's configuration) and never follows
// redirects: a 3xx comes back to the core, which decides where to go.
#pragma once

#include <string>
#include <vector>

namespace crmcap::caldav {

// How a failure should be handled by whoever runs the sync (isync's
// FAIL_TEMP / FAIL_WAIT / FAIL_FINAL; the same two classes as the IMAP
// connector). One type for the sync core (caldav.hpp) and the transport
// (transport.hpp), so that both headers can be included together.
enum class RetryClass {
  retry_later,  // network, timeout, 5xx, 429, a malformed reply: back off, then retry
  needs_user,   // bad credentials, an untrusted certificate, no such calendar: do not retry
};

struct Header {
  std::string name;  // compared without case
  std::string value;
};

struct HttpRequest {
  std::string method;           // "PROPFIND", "REPORT", "GET", ...
  std::string url;              // absolute (scheme, host, port, path)
  std::vector<Header> headers;  // e.g. Depth, Content-Type; no Authorization
  std::string body;             // sent as is (may be empty)
};

struct HttpResponse {
  int status = 0;  // the HTTP status code
  std::vector<Header> headers;
  std::string body;
};

}  // namespace crmcap::caldav
