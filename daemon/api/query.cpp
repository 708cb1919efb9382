// SPDX-License-Identifier: Apache-2.0
#include "daemon/api/query.hpp"

#include "daemon/api/json.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <stdexcept>

namespace crmcap::api::detail {

namespace {

constexpr std::size_t k_default_limit = 50;
constexpr std::size_t k_max_limit = 1000;

ApiError bad(std::string message) { return ApiError{400, "bad_parameter", std::move(message)}; }

bool digits(std::string_view s, std::size_t from, std::size_t n) {
  if (s.size() < from + n) return false;
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from),
                     s.begin() + static_cast<std::ptrdiff_t>(from + n),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ": the forms occurred_at compares with.
bool is_time(std::string_view s) {
  const bool date =
      digits(s, 0, 4) && s[4] == '-' && digits(s, 5, 2) && s[7] == '-' && digits(s, 8, 2);
  if (!date) return false;
  if (s.size() == 10) return true;
  return s.size() == 20 && s[10] == 'T' && digits(s, 11, 2) && s[13] == ':' && digits(s, 14, 2) &&
         s[16] == ':' && digits(s, 17, 2) && s[19] == 'Z';
}

std::string shown(std::string_view v) {
  std::string out = "\"";
  out += v.substr(0, 60);
  if (v.size() > 60) out += "...";
  return out + "\"";
}

// The parameters each endpoint takes.
const std::set<std::string_view>& parameters_of(Endpoint e) {
  static const std::set<std::string_view> none;
  static const std::set<std::string_view> activities{"contact", "company", "opportunity", "mailbox",
                                                     "kind",    "since",   "until",       "status",
                                                     "limit",   "cursor"};
  static const std::set<std::string_view> decisions{"mailbox", "kind",  "since", "until",
                                                    "status",  "limit", "cursor"};
  static const std::set<std::string_view> sync{"mailbox"};
  switch (e) {
    case Endpoint::activities:
      return activities;
    case Endpoint::decisions:
      return decisions;
    case Endpoint::sync:
      return sync;
    default:
      return none;
  }
}

Parsed<void> apply(Request& r, std::string_view key, std::string_view value) {
  auto& f = r.filter;
  const std::string k(key);
  if (value.empty()) return bad(k + ": must not be empty");
  if (key == "contact") {
    f.contact_id = value;
  } else if (key == "company") {
    f.company_id = value;
  } else if (key == "opportunity") {
    f.opportunity_id = value;
  } else if (key == "mailbox") {
    if (r.endpoint == Endpoint::sync) {
      r.mailbox = value;
    } else {
      f.mailbox = value;
    }
  } else if (key == "kind") {
    if (value == "email") {
      f.kind = store::ActivityKind::email;
    } else if (value == "meeting") {
      f.kind = store::ActivityKind::meeting;
    } else {
      return bad("kind: expected email or meeting, got " + shown(value));
    }
  } else if (key == "since" || key == "until") {
    if (!is_time(value)) {
      return bad(k + ": expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC), got " + shown(value));
    }
    (key == "since" ? f.since : f.until) = value;
  } else if (key == "status") {
    if (value == "captured") {
      f.statuses = {store::DecisionStatus::captured};
    } else if (value == "skipped") {
      f.statuses = {store::DecisionStatus::skipped};
    } else if (value == "failed") {
      f.statuses = {store::DecisionStatus::failed};
    } else {
      return bad("status: expected captured, skipped or failed, got " + shown(value));
    }
  } else if (key == "limit") {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > k_max_limit) {
      return bad("limit: expected a whole number from 1 to " + std::to_string(k_max_limit) +
                 ", got " + shown(value));
    }
    f.limit = n;
  } else if (key == "cursor") {
    auto c = decode_cursor(value);
    if (!c) return bad("cursor: not a cursor this API gave (use next_cursor as it is)");
    f.after = std::move(*c);
  }
  return {};
}

char hex_digit(unsigned v) { return "0123456789abcdef"[v & 15]; }

}  // namespace

void throw_exception_from_error(const ApiError& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

Parsed<Request> parse_target(std::string_view target) {
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return ApiError{400, "bad_target", "the request target is not a path and query"};
  std::vector<std::string> segs(u->segments().begin(), u->segments().end());
  Request r;
  const auto not_found = [&] {
    return ApiError{404, "not_found", "no resource at " + std::string(u->encoded_path())};
  };
  if (segs.size() < 2 || segs[0] != "v1") return not_found();
  static const std::pair<std::string_view, store::DirectoryKind> rows[] = {
      {"contacts", store::DirectoryKind::contact},
      {"companies", store::DirectoryKind::company},
      {"opportunities", store::DirectoryKind::opportunity}};
  const auto row = std::find_if(std::begin(rows), std::end(rows), [&](const auto& x) {
    return segs.size() > 1 && segs[1] == x.first;
  });
  if (segs.size() == 3 && segs[1] == "activities" && !segs[2].empty()) {
    r.endpoint = Endpoint::activity;
    r.id = segs[2];
  } else if (segs.size() == 3 && row != std::end(rows) && !segs[2].empty()) {
    r.endpoint = Endpoint::directory_row;
    r.row_kind = row->second;
    r.id = segs[2];
  } else if (segs.size() != 2) {
    return not_found();
  } else if (segs[1] == "status") {
    r.endpoint = Endpoint::status;
  } else if (segs[1] == "activities") {
    r.endpoint = Endpoint::activities;
  } else if (segs[1] == "decisions") {
    r.endpoint = Endpoint::decisions;
  } else if (segs[1] == "events") {
    r.endpoint = Endpoint::events;
  } else if (segs[1] == "sync") {
    r.endpoint = Endpoint::sync;
  } else if (segs[1] == "directory") {
    r.endpoint = Endpoint::directory_batch;
  } else {
    return not_found();
  }
  r.filter.limit = k_default_limit;
  r.filter.newest_first = true;
  if (r.endpoint == Endpoint::activities) {
    r.filter.statuses = {store::DecisionStatus::captured};
  } else if (r.endpoint == Endpoint::decisions) {
    r.filter.statuses = {store::DecisionStatus::skipped, store::DecisionStatus::failed};
  }
  const auto& allowed = parameters_of(r.endpoint);
  std::set<std::string> seen;
  for (const auto& p : u->params()) {
    if (!allowed.count(p.key)) {
      return bad(p.key.empty() ? std::string("an empty parameter name")
                               : "unknown parameter " + shown(p.key));
    }
    if (!seen.insert(p.key).second) return bad(p.key + ": given more than once");
    if (auto a = apply(r, p.key, p.value); !a) return a.error();
  }
  return r;
}

std::string_view allowed_methods(Endpoint e) noexcept {
  switch (e) {
    case Endpoint::sync:
    case Endpoint::directory_batch:
      return "POST";
    case Endpoint::directory_row:
      return "PUT, DELETE";
    default:
      return "GET";
  }
}

bool method_allowed(Endpoint e, std::string_view method) noexcept {
  if (e == Endpoint::directory_row) return method == "PUT" || method == "DELETE";
  return method == allowed_methods(e);
}

std::string error_body(std::string_view code, std::string_view message) {
  boost::json::object o{{"error", {{"code", code}, {"message", message}}}};
  return boost::json::serialize(o);
}

// "1" (the format), then the hex of occurred_at, "-", the hex of the id:
// opaque, URL-safe, and checked on the way back.
std::string encode_cursor(const store::ActivityKey& key) {
  std::string out = "1";
  auto hex = [&](std::string_view s) {
    for (unsigned char c : s) {
      out += hex_digit(c >> 4);
      out += hex_digit(c);
    }
  };
  hex(key.occurred_at);
  out += '-';
  hex(key.id);
  return out;
}

std::optional<store::ActivityKey> decode_cursor(std::string_view c) {
  if (c.size() < 2 || c[0] != '1' || c.size() > 4096) return std::nullopt;
  c.remove_prefix(1);
  const auto dash = c.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto unhex = [](std::string_view s) -> std::optional<std::string> {
    if (s.size() % 2) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
      unsigned v = 0;
      const auto [end, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
      if (ec != std::errc() || end != s.data() + i + 2) return std::nullopt;
      out += static_cast<char>(v);
    }
    return out;
  };
  auto at = unhex(c.substr(0, dash));
  auto id = unhex(c.substr(dash + 1));
  if (!at || !id || id->empty()) return std::nullopt;
  return store::ActivityKey{std::move(*at), std::move(*id)};
}

std::optional<std::int64_t> parse_event_id(std::string_view s) {
  std::int64_t n = 0;
  if (s.empty() || s.size() > 18) return std::nullopt;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || n < 0) return std::nullopt;
  return n;
}

namespace {

boost::json::value time_or_null(const std::string& t) {
  return t.empty() ? boost::json::value(nullptr) : boost::json::value(t);
}

boost::json::value side_json(const std::optional<SourceStatus>& s) {
  if (!s) return nullptr;
  boost::json::object o{
      {"state", to_string(s->state)},
      {"state_since", s->state_since},
      {"next_attempt_at", time_or_null(s->next_attempt_at)},
      {"reason", s->reason.empty() ? boost::json::value(nullptr) : boost::json::value(s->reason)},
      {"last_pass", s->last_pass_at.empty()
                        ? boost::json::value(nullptr)
                        : boost::json::value(boost::json::object{{"at", s->last_pass_at},
                                                                 {"ok", s->last_pass_ok}})},
      {"last_success_at", time_or_null(s->last_success_at)},
      {"counters",
       {{"passes", s->passes},
        {"failed_passes", s->failed_passes},
        {"seen", s->seen},
        {"captured", s->captured},
        {"skipped", s->skipped},
        {"failed", s->failed},
        {"known", s->known}}}};
  if (s->progress_done && s->progress_total) {
    o["progress"] = {{"done", *s->progress_done}, {"total", *s->progress_total}};
  } else {
    o["progress"] = nullptr;
  }
  return o;
}

std::uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

}  // namespace

Body status_body(store::Store& s, const StatusFacts& facts) {
  auto last = s.last_change_seq();
  if (!last) return StoreFailure{last.error().message};
  boost::json::array boxes;
  for (const auto& m : facts.mailboxes) {
    boxes.push_back(
        {{"name", m.name}, {"imap", side_json(m.imap)}, {"caldav", side_json(m.caldav)}});
  }
  boost::json::object o{{"version", facts.version},
                        {"started_at", facts.started_at},
                        {"uptime_seconds", facts.uptime_seconds},
                        {"store",
                         {{"path", facts.store_path},
                          {"size_bytes", file_size_or_zero(facts.store_path) +
                                             file_size_or_zero(facts.store_path + "-wal")},
                          {"schema_version", s.schema_version()},
                          {"last_change_seq", *last}}},
                        {"mailboxes", std::move(boxes)}};
  return Body(boost::system::in_place_value, boost::json::serialize(o));
}

Body list_body(store::Store& s, const Request& r, std::int64_t now) {
  store::ActivityFilter f = r.filter;
  const std::size_t limit = f.limit;
  f.limit = limit + 1;  // one more: whether a next page exists
  auto rows = s.list(f);
  if (!rows) return StoreFailure{rows.error().message};
  const std::size_t n = std::min(rows->size(), limit);
  std::string out;
  out.reserve(64 + n * 1024);  // an activity of mail takes about 800 bytes
  out += "{\"items\":[";
  bool first = true;
  const auto next = [&] {
    if (!first) out += ',';
    first = false;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const auto& a = (*rows)[i];
    if (r.endpoint == Endpoint::decisions) {
      for (const auto& place : a.sources) {
        next();
        append_decision_json(out, a, place);
      }
    } else {
      next();
      append_activity_json(out, a, now);
    }
  }
  out += "],\"next_cursor\":";
  if (rows->size() > limit) {
    // The cursor is hex digits and '-': no escapes.
    const auto& a = (*rows)[limit - 1];
    out += '"';
    out += encode_cursor({a.occurred_at, a.id});
    out += '"';
  } else {
    out += "null";
  }
  out += '}';
  return Body(boost::system::in_place_value, std::move(out));
}

boost::system::result<EventsPage, StoreFailure> events_page(store::Store& s, std::int64_t after,
                                                            std::size_t limit, std::int64_t now) {
  auto rows = s.changes_after(after, limit);
  if (!rows) return StoreFailure{rows.error().message};
  EventsPage page;
  page.last = after;
  page.count = rows->size();
  for (const auto& a : *rows) {
    page.text += "id: " + std::to_string(a.change_seq) + "\nevent: activity\ndata: ";
    append_activity_json(page.text, a, now);
    page.text += "\n\n";
    page.last = a.change_seq;
  }
  return page;
}

}  // namespace crmcap::api::detail
