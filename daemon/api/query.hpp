// SPDX-License-Identifier: Apache-2.0
// Internal to daemon/api: the requests the server understands and the
// bodies it answers with, without any I/O (server.cpp does the HTTP; these
// are tested on their own).
#pragma once

#include "daemon/api/api.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "store/store.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::api::detail {

enum class Endpoint {
  status,
  activities,
  activity,
  decisions,
  events,
  sync,
  directory_row,    // /v1/contacts/{id}, /v1/companies/{id}, /v1/opportunities/{id}
  directory_batch,  // /v1/directory
};

// Why a request is refused: the HTTP status, a stable code and a message
// that names what is wrong (the parameter, the path).
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
};
template <class T>
using Parsed = boost::system::result<T, ApiError>;
// Lets Parsed<T>::value() throw std::runtime_error(message) (tests).
[[noreturn]] void throw_exception_from_error(const ApiError& e, const boost::source_location& loc);

struct Request {
  Endpoint endpoint = Endpoint::status;
  std::string id;  // /v1/activities/{id}, a directory row's
  store::DirectoryKind row_kind = store::DirectoryKind::contact;  // directory_row
  // activities, decisions: the filter, page size and position.
  store::ActivityFilter filter;
  // sync: the mailbox asked for; empty: every one.
  std::string mailbox;
};

// The request for an origin-form target ("/v1/activities?limit=5"): 400
// for a malformed target, an unknown, repeated or malformed parameter
// (named); 404 for a path that names nothing.
Parsed<Request> parse_target(std::string_view target);

// The methods an endpoint takes, as an Allow header lists them ("GET",
// "PUT, DELETE").
std::string_view allowed_methods(Endpoint e) noexcept;
bool method_allowed(Endpoint e, std::string_view method) noexcept;

// {"error": {"code": ..., "message": ...}}
std::string error_body(std::string_view code, std::string_view message);

// A page's position, opaque to clients: the last row's sort key.
std::string encode_cursor(const store::ActivityKey& key);
std::optional<store::ActivityKey> decode_cursor(std::string_view cursor);

// A Last-Event-ID: a change sequence number, digits only.
std::optional<std::int64_t> parse_event_id(std::string_view s);

// The directory edits a request asks for: a PUT's body (a JSON object,
// `body`) or a DELETE of the row at `r`'s path, or a batch's lines (JSON
// lines, each {"kind", "op", "id", and for "put" the row's fields}),
// checked with capture::check_row. 400 "bad_field" naming the field, or
// "bad_line" naming the line number and the field.
Parsed<std::vector<store::DirectoryEdit>> directory_edits(const Request& r, std::string_view method,
                                                          std::string_view body);

// What the media type (Content-Type without parameters) of a directory
// request's body must be: "application/json" for a row,
// "application/x-ndjson" (or "application/jsonl") for a batch.
bool directory_media_type_ok(Endpoint e, std::string_view media_type) noexcept;

// The answer to an applied directory change: {"created", "changed",
// "removed", "rematched"}; what the store's refusal means (400, 404, 500).
std::string directory_result_body(const capture::DirectoryReport& report);
ApiError directory_error(const Request& r, const store::Error& e);

// What /v1/status says besides the store's figures.
struct StatusFacts {
  std::string version;
  std::string started_at;
  std::int64_t uptime_seconds = 0;
  std::string store_path;
  std::vector<MailboxStatus> mailboxes;
};
struct StoreFailure {
  std::string message;
};
using Body = boost::system::result<std::string, StoreFailure>;  // JSON, or why the store failed
Body status_body(store::Store& s, const StatusFacts& facts);

// The page of activities or decisions `r` asks for: {"items", "next_cursor"}.
// `now` (Unix seconds) decides meeting_status.
Body list_body(store::Store& s, const Request& r, std::int64_t now);

// The events after change `after`, at most `limit`, as Server-Sent Events:
// "id: N\nevent: activity\ndata: {...}\n\n" each.
struct EventsPage {
  std::string text;
  std::int64_t last = 0;  // the last event's id; `after` when none
  std::size_t count = 0;
};
boost::system::result<EventsPage, StoreFailure> events_page(store::Store& s, std::int64_t after,
                                                            std::size_t limit, std::int64_t now);

}  // namespace crmcap::api::detail
