// SPDX-License-Identifier: Apache-2.0
#include "daemon/api/json.hpp"

#include "daemon/capture/capture.hpp"

#include <boost/json.hpp>

namespace crmcap::api {

namespace {

boost::json::value id_or_null(const std::string& id) {
  return id.empty() ? boost::json::value(nullptr) : boost::json::value(id);
}

}  // namespace

boost::json::object activity_json(const store::Activity& a, std::int64_t now) {
  boost::json::array participants;
  for (const auto& p : a.participants) {
    participants.push_back({{"address", p.address},
                            {"name", p.name},
                            {"role", p.role},
                            {"contact_id", id_or_null(p.contact_id)},
                            {"company_id", id_or_null(p.company_id)}});
    if (!p.partstat.empty()) participants.back().as_object()["partstat"] = p.partstat;
  }
  boost::json::array contacts(a.contact_ids.begin(), a.contact_ids.end());
  boost::json::array companies(a.company_ids.begin(), a.company_ids.end());
  boost::json::array sources;
  for (const auto& s : a.sources) {
    boost::json::object o{{"mailbox", s.mailbox}, {"folder", s.folder}};
    if (s.uid) {
      o["uidvalidity"] = s.uidvalidity;
      o["uid"] = s.uid;
    }
    if (!s.path.empty()) o["path"] = s.path;
    if (!s.remote_id.empty()) o["remote_id"] = s.remote_id;
    if (!s.removed_at.empty()) o["removed_at"] = s.removed_at;
    sources.push_back(std::move(o));
  }
  boost::json::object out{{"id", a.id},
                          {"kind", store::to_string(a.kind)},
                          {"direction", store::to_string(a.direction)},
                          {"occurred_at", a.occurred_at},
                          {"subject", a.subject},
                          {"snippet", a.snippet},
                          {"message_id", a.message_id},
                          {"thread_key", a.thread_key},
                          {"participants", std::move(participants)},
                          {"contact_ids", std::move(contacts)},
                          {"company_ids", std::move(companies)},
                          {"opportunity_id", id_or_null(a.opportunity_id)},
                          {"status", store::to_string(a.status)},
                          {"reason", a.reason},
                          {"sources", std::move(sources)}};
  if (const auto& m = a.meeting) {
    out["event_uid"] = m->event_uid;
    out["starts_at"] = m->starts_at;
    out["ends_at"] = m->ends_at;
    out["all_day"] = m->all_day;
    out["location"] = m->location;
    out["meeting_status"] = capture::meeting_status(*m, now);
  }
  return out;
}

boost::json::object decision_json(const store::Activity& a, const store::SourceRef& s) {
  boost::json::object o{{"message_id", a.message_id},
                        {"activity_id", a.id},
                        {"occurred_at", a.occurred_at},
                        {"mailbox", s.mailbox},
                        {"folder", s.folder},
                        {"decision", store::to_string(a.status)},
                        {"rule", a.rule},
                        {"reason", a.reason}};
  if (!s.path.empty()) o["path"] = s.path;
  if (s.uid) o["uid"] = s.uid;
  if (!s.removed_at.empty()) o["removed_at"] = s.removed_at;
  if (a.meeting) o["event_uid"] = a.meeting->event_uid;
  return o;
}

}  // namespace crmcap::api
