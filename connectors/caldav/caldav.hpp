// SPDX-License-Identifier: Apache-2.0
// The CalDAV connector's public interface: a sans-io core that discovers the
// calendars of an account and syncs one calendar at a time, handing raw
// iCalendar bytes plus their source reference (calendar URL, href, ETag) to a
// CalendarSink. It knows the protocol, never CRM rules, and never parses
// iCalendar; it never writes to the server (PROPFIND and REPORT only).
//
// Sans-io: nothing here touches a socket or libcurl. A state machine says
// which HttpRequest to make (http.hpp) and is resumed with the HttpResponse or
// with the transport's failure; the transport adds authentication and never
// follows redirects (the core does, within limits). The multistatus XML is
// parsed by pure functions (multistatus.hpp).
//
// No exception leaves this module: failures are std::error_code values of
// caldav_category() in a SyncError that carries its RetryClass.
//
// This header includes neither libxml2 nor Boost.URL; the .cpp files do.
#pragma once

#include "connectors/caldav/http.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace crmcap::caldav {

// ---------------------------------------------------------------------------
// Errors

// How a failure is handled: RetryClass (http.hpp). A SyncError with
// `retry_at` set says when to retry instead of backing off.

enum class Errc {
  // The exchange:
  transport = 1,       // the transport could not get a response (see message)
  auth_failed,         // 401 or 403: the server refused the credentials
  server_busy,         // 429 or 503 (Retry-After, when sent, is in retry_at)
  server_error,        // another 5xx
  not_found,           // 404 or 410 for a calendar or a principal
  refused,             // another status the sync cannot work around (400, 405, ...)
  bad_redirect,        // a 3xx without a usable Location, or to another host
  too_many_redirects,  // more than the allowed hops for one request
  protocol,            // a reply that cannot be followed (no sync-token, no progress)
  no_calendars,        // discovery found no calendar that holds events
  not_a_calendar,      // the configured URL is no calendar collection
  sink,                // the sink failed; what it was given is not committed
  bad_url,             // a URL that cannot be parsed
  out_of_memory,       // std::bad_alloc caught at the module's edge
  // The multistatus parser:
  xml_malformed,        // not well-formed XML (or truncated)
  xml_dtd,              // a DOCTYPE (entity declarations are never processed)
  xml_too_large,        // over ParseLimits::max_bytes
  xml_not_multistatus,  // the root is not DAV:multistatus (or DAV:error)
};
const std::error_category& caldav_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

struct SyncError {
  std::error_code code;
  std::string message;  // what failed, with the server's status; never a credential
  RetryClass retry = RetryClass::retry_later;
  // Set from a Retry-After header (seconds or an HTTP date), clamped to
  // [kMinRetryAfter, kMaxRetryAfter] from the moment it was read.
  std::optional<std::chrono::system_clock::time_point> retry_at;
};
inline constexpr std::chrono::seconds kMinRetryAfter{1};
inline constexpr std::chrono::seconds kMaxRetryAfter{6 * 60 * 60};

template <class T>
using SyncResult = boost::system::result<T, SyncError>;

// ---------------------------------------------------------------------------
// The exchange with the transport

// What the transport reports for the request it was asked to make: a response
// (any status, 3xx included), or `error` set when it got none (connection,
// TLS, timeout). `message` is the transport's words for the failure.
struct Io {
  std::error_code error;
  std::string message;
  HttpResponse response;
};

// What a state machine wants next.
struct Action {
  enum class Kind {
    send,   // make `request`, then call resume() with what came back
    done,   // finished; results are in the machine's accessors
    error,  // finished with `error`; resume() answers the same from then on
  };
  Kind kind = Kind::done;
  HttpRequest request;  // kind == send
  SyncError error;      // kind == error
};

// ---------------------------------------------------------------------------
// Discovery

struct CalendarInfo {
  std::string url;  // absolute, canonical (see multistatus.hpp canonical_url)
  std::string display_name;
  std::string ctag;              // CalendarServer's getctag, if given
  std::string sync_token;        // DAV:sync-token, if given
  bool sync_collection = false;  // supported-report-set lists DAV:sync-collection
};

struct DiscoveryOptions {
  // A calendar collection, a principal, or the server's root
  // ("https://host/"): whatever the user configured.
  std::string url;
  unsigned max_redirects = 5;  // 3xx followed per request
  // Now, for a Retry-After given as an HTTP date.
  std::function<std::chrono::system_clock::time_point()> clock = std::chrono::system_clock::now;
};

// Finds the calendars that hold events: the configured URL when it is one;
// else its current-user-principal, else /.well-known/caldav's (RFC 6764);
// then the principal's calendar-home-set, listed with Depth 1. Redirects
// (any 3xx with a Location) are followed to the same host, or from http to
// https on it, at most max_redirects times per request.
//
// Usage: call resume({}) first (its argument is ignored), make every request
// it returns and resume with the outcome, until done or error.
class discovery_fsm {
 public:
  explicit discovery_fsm(DiscoveryOptions options);
  Action resume(const Io& io);

  // After done: the calendars that hold VEVENTs (a calendar without a
  // supported-calendar-component-set holds everything), in server order.
  const std::vector<CalendarInfo>& calendars() const { return calendars_; }
  const std::string& principal() const { return principal_; }  // may be empty
  const std::vector<std::string>& home_sets() const { return home_sets_; }
  unsigned requests() const { return requests_; }

 private:
  enum class Step { start, probe, well_known, principal, home, done };
  Action send_propfind(const std::string& url, int depth, Step step);
  Action on_response(const Io& io);
  Action next_home();
  Action fail(SyncError e);

  DiscoveryOptions options_;
  Step step_ = Step::start;
  HttpRequest request_;  // the last one sent (resent on a redirect)
  unsigned hops_ = 0;    // redirects followed for request_
  unsigned requests_ = 0;
  bool tried_well_known_ = false;
  std::string principal_;
  std::vector<std::string> home_sets_;
  std::size_t next_home_ = 0;
  std::vector<CalendarInfo> calendars_;
  Action finished_;  // what resume() answers once done
};

// ---------------------------------------------------------------------------
// The sink's state and interface

// Where a calendar's sync stands; the sink stores it in the same transaction
// as the changes it comes with.
struct CalendarState {
  std::string url;         // the calendar collection, absolute and canonical
  std::string sync_token;  // RFC 6578; empty: none yet (or the server has none)
  std::string ctag;        // CalendarServer's getctag; empty: none
  bool operator==(const CalendarState&) const = default;
};

// What the sink has of a calendar: its state and the ETag of every item it
// holds, by href (the item's absolute, canonical URL).
struct StoredCalendar {
  CalendarState state;
  std::map<std::string, std::string> items;  // href -> ETag
};

// One calendar object resource handed to the sink.
struct CalendarItem {
  std::string href;  // absolute, canonical URL of the .ics resource
  // The server's ETag as sent (weak "W/..." or strong), or, when the server
  // gave none, "crmcap-fnv1a64:" and a hash of `data`.
  std::string etag;
  std::string data;  // the raw iCalendar bytes (calendar-data), unparsed
  bool operator==(const CalendarItem&) const = default;
};

// An item listed by the server whose bytes could not be had (404 in the
// multiget, no calendar-data). Its stored ETag (if any) stays, so a listing
// by ETag asks for it again; a sync-collection lists it again once it changes.
struct FailedItem {
  std::string href;
  std::string reason;  // e.g. "404 Not Found", "no calendar-data in the reply"
  bool operator==(const FailedItem&) const = default;
};

// One commit: a multiget batch, a sync-collection page, or the end of a
// listing. `state` is the state after these changes.
struct CalendarChanges {
  CalendarState state;
  std::vector<CalendarItem> changed;  // new or changed items
  std::vector<std::string> deleted;   // hrefs the sink had, gone from the server
  std::vector<FailedItem> failed;
};

// The receiving end (capture and the store). Calls come from within
// sync_fsm::resume(), one at a time.
class CalendarSink {
 public:
  virtual ~CalendarSink() = default;
  // What the sink holds for the calendar at `url`: an empty StoredCalendar
  // (empty state.url) when none.
  virtual SyncResult<StoredCalendar> stored(const std::string& url) = 0;
  // Stores the changed items (their ETags become the known ones), removes
  // the deleted ones, records the failed ones and stores `changes.state`, all
  // in one transaction: after an error nothing of it is kept, and the sync
  // stops with that error.
  virtual SyncResult<void> commit(const CalendarChanges& changes) = 0;
};

// An in-memory sink: the first-class stand-in for the store in tests.
class MemorySink final : public CalendarSink {
 public:
  struct Calendar {
    CalendarState state;
    std::map<std::string, CalendarItem> items;  // by href
    std::map<std::string, std::string> failed;  // href -> reason (latest)
  };
  SyncResult<StoredCalendar> stored(const std::string& url) override;
  SyncResult<void> commit(const CalendarChanges& changes) override;

  std::map<std::string, Calendar> calendars;  // by URL
  std::vector<CalendarChanges> commits;       // every successful commit, in order
  // When set, the commit with this 0-based index (counting failed ones) fails.
  std::optional<std::size_t> fail_commit;
  std::size_t commit_calls = 0;
};

// ---------------------------------------------------------------------------
// Sync of one calendar

struct SyncReport;

struct SyncOptions {
  std::string calendar_url;          // absolute; canonicalized by the machine
  std::size_t multiget_batch = 100;  // most hrefs per calendar-multiget REPORT
  // Use sync-collection where the server lists it; off forces ETag listings.
  bool use_sync_collection = true;
  unsigned max_redirects = 5;
  unsigned max_pages = 10000;  // sync-collection pages in one sync
  // The largest multistatus read; a multiget reply is about
  // multiget_batch events.
  std::size_t max_reply_bytes = 64 * 1024 * 1024;
  std::function<std::chrono::system_clock::time_point()> clock = std::chrono::system_clock::now;
  // The calendar as discovery_fsm read it a moment ago: its getctag,
  // sync-token and supported-report-set came in the same properties that
  // step 1 below asks for. When given with a sync-token (or with a ctag while
  // neither it nor the sink holds a token), step 1 is not sent: the sync
  // starts from these, so an unchanged calendar costs no request of its own.
  // Anything else (no token, no ctag) is asked again by step 1.
  std::optional<CalendarInfo> discovered;
  // Called from within resume() with report() as it stands: once the sink's
  // state has been read (first_sync is known then), after each listing or
  // sync-collection page that names items to fetch (to_fetch grew), and
  // after each commit of multiget results (fetched grew). It must not
  // resume the machine.
  std::function<void(const SyncReport&)> on_progress;
};

struct SyncReport {
  enum class Mode { unchanged, sync_collection, full_sync_collection, etag_listing };
  Mode mode = Mode::unchanged;
  // The sink held neither a sync-token nor a ctag for the calendar: it was
  // never synced to the end (a sync cut short before its last commit is
  // first still).
  bool first_sync = false;
  // Items to fetch: the hrefs that the listings and sync-collection pages
  // answered so far named as new or changed, and of those the ones whose
  // multiget results (an item, or its failure) are committed; fetched never
  // passes to_fetch.
  std::size_t to_fetch = 0;
  std::size_t fetched = 0;
  bool fell_back = false;  // sync-collection refused (bad token, 507): listed by ETag
  unsigned requests = 0;
  unsigned pages = 0;  // sync-collection pages
  unsigned commits = 0;
  std::size_t changed = 0;
  std::size_t deleted = 0;
  std::size_t failed = 0;
};

// Syncs one calendar into the sink:
// 1. PROPFIND Depth 0 (getctag, sync-token, supported-report-set), unless
//    SyncOptions::discovered already holds them: a sync token (else a ctag)
//    equal to the stored one ends the sync there.
// 2. Where the server lists sync-collection: the REPORT from the stored token
//    (or from none: a full listing), page by page (a 507 response inside the
//    multistatus means more pages). Each page's changed items are fetched by
//    calendar-multiget and committed with that page's token, so a crash
//    resumes from the last committed page. A full listing commits its items
//    with the old state and its token only at its end, with the deletion of
//    every stored item it did not list (mark and sweep).
// 3. A refused token (403/409/412 with DAV:valid-sync-token, or any 409/412)
//    or a 507 status, or no sync-collection at all: PROPFIND Depth 1 for the
//    ETags, calendar-multiget for what changed, and the same mark and sweep;
//    the state then committed has the token and ctag of step 1.
//
// Usage as for discovery_fsm: resume({}) first.
class sync_fsm {
 public:
  sync_fsm(SyncOptions options, CalendarSink& sink);
  Action resume(const Io& io);
  const SyncReport& report() const { return report_; }

 private:
  enum class Step { start, probe, sync_page, listing, multiget, done };
  struct Pending {
    std::string href;
    std::string listed_etag;  // from the listing or the sync page; may be empty
  };
  Action on_response(const Io& io);
  Action on_probe(const HttpResponse& r);
  // Step 1's decision, from the server's token and ctag in server_.
  Action from_server_state(bool sync_collection);
  Action on_sync_page(const HttpResponse& r);
  Action on_listing(const HttpResponse& r);
  Action on_multiget(const HttpResponse& r);
  Action send(HttpRequest request, Step step);
  Action send_sync_page();
  Action start_listing();
  Action next_batch();
  // Ends a sync page or the listing with `changes` (the last batch's).
  Action finish_page(CalendarChanges changes);
  SyncResult<void> commit(CalendarChanges changes);
  // Counts pending_ as to fetch, and reports it.
  void pending_listed();
  // Counts the uncommitted items as fetched once their commit went through
  // (or had nothing to store), and reports it.
  void batches_committed();
  void progress();
  Action fail(SyncError e);
  Action done();

  SyncOptions options_;
  CalendarSink& sink_;
  Step step_ = Step::start;
  HttpRequest request_;
  unsigned hops_ = 0;
  SyncReport report_;

  StoredCalendar stored_;   // as the sink holds it (kept up to date by commits)
  CalendarState server_;    // token and ctag of the depth-0 PROPFIND
  bool full_ = false;       // a full listing: sweep at its end
  std::string page_token_;  // the token to ask the next page from
  bool more_pages_ = false;
  std::set<std::string> seen_;    // hrefs listed (full listings)
  std::vector<Pending> pending_;  // to fetch for this page or listing
  std::size_t next_pending_ = 0;
  std::vector<std::string> page_deleted_;
  std::string page_new_token_;   // the token the current page ends with
  std::size_t batch_end_ = 0;    // pending_ index after the batch in flight
  std::size_t uncommitted_ = 0;  // items of fetched batches not yet committed
  Action finished_;
};

}  // namespace crmcap::caldav

template <>
struct std::is_error_code_enum<crmcap::caldav::Errc> : std::true_type {};
