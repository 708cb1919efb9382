// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/caldav (and its tests): the WebDAV multistatus
// parser, the href rules and the request bodies. Pure functions: no I/O, no
// state, no exception leaves them (std::bad_alloc included).
//
// XML: libxml2, namespace-aware (DAV:, urn:ietf:params:xml:ns:caldav,
// http://calendarserver.org/ns/), whatever the prefixes. The network is never
// used (XML_PARSE_NONET), entities are never expanded, and a document with a
// DOCTYPE is refused as soon as the parser sees it, before any entity
// declaration is read. Inputs over ParseLimits::max_bytes are refused unread.
//
// URLs: Boost.URL (only the .cpp files include it). Every href is resolved
// against the URL of the request that produced it and put in a canonical
// form, so that two spellings of one resource compare equal as strings.
#pragma once

#include "connectors/caldav/caldav.hpp"

#include <boost/system/result.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::caldav {

inline constexpr std::string_view kNsDav = "DAV:";
inline constexpr std::string_view kNsCalDav = "urn:ietf:params:xml:ns:caldav";
inline constexpr std::string_view kNsCalServer = "http://calendarserver.org/ns/";

// ---------------------------------------------------------------------------
// URLs and hrefs

// `href` resolved against `base` (an absolute URL), in canonical form:
// scheme and host in lower case, dot segments removed, each path segment
// percent-decoded and encoded again the one way Boost.URL encodes it (so
// "/a%40b.ics" and "/a@b.ics" give the same string), no fragment. Errc::bad_url
// when either cannot be parsed or `base` has no scheme.
boost::system::result<std::string, std::error_code> canonical_url(std::string_view base,
                                                                  std::string_view href);
// Whether `to` (absolute) may be followed from `from`: the same host, and the
// same scheme and port or an upgrade from http to https.
bool redirect_allowed(std::string_view from, std::string_view to);
// The path (and query) of an absolute URL, percent-encoded, as an href in a
// request body; "/" when it has none.
std::string url_path(std::string_view url);
// Whether two canonical collection URLs name the same collection (a trailing
// slash ignored).
bool same_collection(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------
// Multistatus

struct ParseLimits {
  std::size_t max_bytes = 64 * 1024 * 1024;
};

struct XmlError {
  std::error_code code;  // an Errc::xml_* value, or Errc::out_of_memory
  std::string message;   // libxml2's words, with the line
};

template <class T>
using XmlResult = boost::system::result<T, XmlError>;

// The properties this connector asks for. Only those in a 2xx propstat are
// set; `missing` names (by local name) those reported with another status.
struct Props {
  std::optional<std::string> etag;           // DAV:getetag, trimmed, as sent
  std::optional<std::string> calendar_data;  // CALDAV:calendar-data, untouched
  std::optional<std::string> ctag;           // CS:getctag, trimmed
  std::optional<std::string> sync_token;     // DAV:sync-token, trimmed
  std::optional<std::string> display_name;   // DAV:displayname
  bool has_resourcetype = false;
  bool collection = false;  // DAV:resourcetype has DAV:collection
  bool calendar = false;    // DAV:resourcetype has CALDAV:calendar
  // CALDAV:supported-calendar-component-set's comp names, upper case;
  // nullopt when the property was not given (a calendar then holds all).
  std::optional<std::vector<std::string>> components;
  // DAV:supported-report-set; nullopt when not given.
  std::optional<std::vector<std::string>> reports;    // "{ns}local" of each report
  bool sync_collection = false;                       // reports lists {DAV:}sync-collection
  std::optional<std::string> current_user_principal;  // canonical URL
  std::vector<std::string> calendar_home_set;         // canonical URLs
  struct Missing {
    std::string name;  // local name, e.g. "calendar-data"
    int status = 0;
  };
  std::vector<Missing> missing;
};

// Whether a calendar with these properties holds events.
bool holds_events(const Props& p);

struct Response {
  std::string href;  // as sent
  std::string url;   // canonical (canonical_url against the request URL)
  int status = 0;    // the response's own DAV:status; 0 when in propstats
  Props props;       // merged from every 2xx propstat
};

struct Multistatus {
  std::vector<Response> responses;        // in document order, without the 507 below
  std::optional<std::string> sync_token;  // the multistatus-level DAV:sync-token
  // A response with status 507 (RFC 6578 3.6: the server cut the page short;
  // ask again from `sync_token` for the rest).
  bool truncated = false;
  std::size_t bad_hrefs = 0;  // responses skipped: their href could not be resolved
};

// Parses a 207 body. `request_url` is the absolute URL the request went to.
XmlResult<Multistatus> parse_multistatus(std::string_view body, std::string_view request_url,
                                         const ParseLimits& limits = {});

// The preconditions named in a DAV:error body (RFC 4918 16), as "{ns}local",
// e.g. "{DAV:}valid-sync-token". Empty for an empty or unparsable body.
std::vector<std::string> parse_dav_error(std::string_view body, const ParseLimits& limits = {});

// A status line's code: "HTTP/1.1 404 Not Found" -> 404; 0 when none.
int parse_status_line(std::string_view line);

// ---------------------------------------------------------------------------
// Request bodies (UTF-8, with an XML declaration)

enum class PropSet {
  probe,     // Depth 0 on a URL given for discovery
  home,      // calendar-home-set (on a principal)
  calendar,  // getctag, sync-token, supported-report-set, displayname, ...
  etags,     // getetag, resourcetype
};
std::string propfind_body(PropSet set);
// RFC 6578 sync-collection, sync-level 1, asking for getetag only; `token`
// empty for an initial sync. No DAV:limit.
std::string sync_collection_body(std::string_view token);
// RFC 4791 calendar-multiget for getetag and calendar-data of `hrefs`
// (absolute paths, percent-encoded).
std::string multiget_body(const std::vector<std::string>& hrefs);

// ---------------------------------------------------------------------------
// Small pieces

// RFC 7232 weak comparison: equal opaque tags, "W/" ignored.
bool etag_equal(std::string_view a, std::string_view b);
// The stand-in ETag of data that came without one.
std::string content_etag(std::string_view data);

// A Retry-After value (delay-seconds, or an HTTP date in any of the three
// RFC 7231 formats) as a time, clamped to [now + kMinRetryAfter, now +
// kMaxRetryAfter]; nullopt when it cannot be read.
std::optional<std::chrono::system_clock::time_point> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// The value of the first header named `name` (without case), if any.
std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                            std::string_view name);

}  // namespace crmcap::caldav
