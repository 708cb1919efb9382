// SPDX-License-Identifier: Apache-2.0
// Rule 6: which version of a meeting occurrence stands, whether it comes from
// the owner's calendar or from iMIP mail (RFC 5546).
#include "daemon/capture/rules.hpp"

#include <string>

namespace crmcap::capture {

MeetingOrigin imip_origin(std::string_view method) {
  if (method == "REQUEST" || method == "PUBLISH" || method == "ADD") {
    return MeetingOrigin::imip_update;
  }
  if (method == "CANCEL") return MeetingOrigin::imip_cancel;
  return MeetingOrigin::imip_answer;
}

std::optional<std::string> stored_version_stands(MeetingOrigin origin, int sequence,
                                                 const store::Activity& stored) {
  if (!stored.meeting) return std::nullopt;
  const store::MeetingFields& m = *stored.meeting;
  const std::string at = "SEQUENCE " + std::to_string(m.sequence);
  if (origin == MeetingOrigin::imip_answer) {
    return "an attendee's answer changes no meeting details";
  }
  if (sequence > m.sequence) return std::nullopt;
  if (sequence < m.sequence) {
    return "the stored " + at + " is newer";
  }
  switch (origin) {
    case MeetingOrigin::calendar:
      return std::nullopt;
    case MeetingOrigin::imip_cancel:
      if (m.cancelled) return "cancelled already at " + at;
      return std::nullopt;
    case MeetingOrigin::imip_update:
      if (m.cancelled) return "cancelled at " + at + ", the same revision";
      if (stored.status == store::DecisionStatus::skipped && stored.rule == "declined") {
        return "declined by the owner at " + at + ", the same revision";
      }
      return std::nullopt;
    case MeetingOrigin::imip_answer:
      break;  // answered above
  }
  return std::nullopt;
}

AfterAnswer after_answer(const store::Activity& stored, bool declined) {
  if (!stored.meeting || stored.status == store::DecisionStatus::failed) {
    return AfterAnswer::stands;
  }
  const bool was_declined =
      stored.status == store::DecisionStatus::skipped && stored.rule == "declined";
  if (stored.status == store::DecisionStatus::skipped && stored.rule == "private") {
    return AfterAnswer::stands;
  }
  if (declined) return was_declined ? AfterAnswer::stands : AfterAnswer::decline;
  return was_declined ? AfterAnswer::match_again : AfterAnswer::stands;
}

}  // namespace crmcap::capture
