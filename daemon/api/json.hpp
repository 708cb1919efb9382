// SPDX-License-Identifier: Apache-2.0
// The JSON of an activity and of a decision: one serializer for the local API
// (daemon/api/openapi.yaml, schemas Activity and Decision) and for
// `crm-capture activities --json` and `decisions --json`, so the two cannot
// differ. A header of its own, beside the server's (api.hpp), because the
// command-line tool uses it without the server.
#pragma once

#include "store/store.hpp"

#include <boost/json/fwd.hpp>

#include <cstdint>

namespace crmcap::api {

// An activity: its fields, participants, contact and company ids, places
// (sources), status and reason; a meeting's time, place and status at `now`
// (Unix seconds). Ids that are unset are null.
boost::json::object activity_json(const store::Activity& a, std::int64_t now);

// What capture decided of the message of `a` seen at the place `s`: one object
// per place, with the rule (empty when captured) and the reason.
boost::json::object decision_json(const store::Activity& a, const store::SourceRef& s);

}  // namespace crmcap::api
