// SPDX-License-Identifier: Apache-2.0
#include "daemon/cli/remote.hpp"

#include <boost/json.hpp>
#include <boost/url/url.hpp>

#include <algorithm>

namespace crmcap::cli {

namespace {

api::ClientError refused(const api::ClientReply& r) {
  std::string why = "the daemon answered " + std::to_string(r.status);
  boost::system::error_code ec;
  const auto v = boost::json::parse(r.body, ec);
  if (!ec && v.is_object() && v.as_object().contains("error")) {
    if (const auto* m = v.at("error").as_object().if_contains("message"); m && m->is_string()) {
      why += ": " + std::string(m->as_string());
    }
  }
  return api::ClientError{why, false};
}

std::string text_of(const boost::json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return boost::json::serialize(v);
}

}  // namespace

boost::system::result<std::vector<boost::json::object>, api::ClientError> remote_activities(
    const std::string& socket, const store::ActivityFilter& filter) {
  boost::urls::url target("/v1/activities");
  auto params = target.params();
  params.append({"limit", "1000"});
  if (!filter.contact_id.empty()) params.append({"contact", filter.contact_id});
  if (!filter.company_id.empty()) params.append({"company", filter.company_id});
  if (!filter.opportunity_id.empty()) params.append({"opportunity", filter.opportunity_id});
  if (!filter.since.empty()) params.append({"since", filter.since});
  std::vector<boost::json::object> items;
  std::string cursor;
  for (;;) {
    boost::urls::url page = target;
    if (!cursor.empty()) page.params().append({"cursor", cursor});
    auto r = api::call(socket, "GET", page.buffer());
    if (!r) return r.error();
    if (r->status != 200) return refused(*r);
    boost::system::error_code ec;
    auto v = boost::json::parse(r->body, ec);
    if (ec || !v.is_object()) return api::ClientError{"the daemon's answer is not JSON", false};
    for (auto& item : v.at("items").as_array()) items.push_back(std::move(item.as_object()));
    const auto& next = v.at("next_cursor");
    if (!next.is_string()) break;
    cursor = std::string(next.as_string());
  }
  // The API pages newest first; the listing is oldest first, its limit the
  // oldest that many (as offline).
  std::reverse(items.begin(), items.end());
  if (filter.limit > 0 && items.size() > filter.limit) items.resize(filter.limit);
  return items;
}

boost::system::result<std::string, api::ClientError> remote_status(const std::string& socket) {
  auto r = api::call(socket, "GET", "/v1/status");
  if (!r) return r.error();
  if (r->status != 200) return refused(*r);
  return {boost::system::in_place_value, std::move(r->body)};
}

boost::system::result<capture::DirectoryReport, api::ClientError> remote_push(
    const std::string& socket, std::string lines) {
  auto r = api::call(socket, "POST", "/v1/directory",
                     api::Body{std::move(lines), "application/x-ndjson"}, std::chrono::minutes(5));
  if (!r) return r.error();
  if (r->status != 200) return refused(*r);
  boost::system::error_code ec;
  const auto v = boost::json::parse(r->body, ec);
  if (ec || !v.is_object()) return api::ClientError{"the daemon's answer is not JSON", false};
  capture::DirectoryReport out;
  const auto& o = v.as_object();
  out.created = static_cast<std::size_t>(o.at("created").to_number<std::uint64_t>());
  out.changed = static_cast<std::size_t>(o.at("changed").to_number<std::uint64_t>());
  out.removed = static_cast<std::size_t>(o.at("removed").to_number<std::uint64_t>());
  for (const auto& id : o.at("rematched").as_array()) out.rematched.emplace_back(id.as_string());
  return out;
}

std::string describe_push(const capture::DirectoryReport& r) {
  return "created " + std::to_string(r.created) + ", changed " + std::to_string(r.changed) +
         ", removed " + std::to_string(r.removed) + "; re-matched " +
         std::to_string(r.rematched.size()) + " activities\n";
}

boost::system::result<void, api::ClientError> remote_sync(const std::string& socket,
                                                          const std::string& mailbox) {
  boost::urls::url target("/v1/sync");
  if (!mailbox.empty()) target.params().append({"mailbox", mailbox});
  auto r = api::call(socket, "POST", target.buffer());
  if (!r) return r.error();
  if (r->status != 202) return refused(*r);
  return {};
}

std::string describe_status(const std::string& status_json) {
  const auto v = boost::json::parse(status_json);
  const auto& store = v.at("store");
  std::string out =
      "crm-captured " + text_of(v.at("version")) + ", up " + text_of(v.at("uptime_seconds")) +
      " s (since " + text_of(v.at("started_at")) + ")\nstore " + text_of(store.at("path")) + ": " +
      text_of(store.at("size_bytes")) + " bytes, schema " + text_of(store.at("schema_version")) +
      ", change " + text_of(store.at("last_change_seq")) + "\n";
  for (const auto& m : v.at("mailboxes").as_array()) {
    for (const char* side : {"imap", "caldav"}) {
      const auto& s = m.at(side);
      if (s.is_null()) continue;
      out += text_of(m.at("name")) + " " + side + ": " + text_of(s.at("state")) + " since " +
             text_of(s.at("state_since"));
      if (!s.at("reason").is_null()) out += " (" + text_of(s.at("reason")) + ")";
      const auto& last = s.at("last_pass");
      if (!last.is_null()) {
        out += "; last pass " + std::string(last.at("ok").as_bool() ? "ok" : "failed") + " at " +
               text_of(last.at("at"));
      }
      const auto& c = s.at("counters");
      out += "; captured " + text_of(c.at("captured")) + ", skipped " + text_of(c.at("skipped")) +
             ", failed " + text_of(c.at("failed")) + "\n";
    }
  }
  return out;
}

}  // namespace crmcap::cli
