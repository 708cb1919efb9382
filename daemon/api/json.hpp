// SPDX-License-Identifier: Apache-2.0
// The JSON of an activity and of a decision: one serializer for the local API
// (daemon/api/openapi.yaml, schemas Activity and Decision) and for
// `crm-capture activities --json` and `decisions --json`, so the two cannot
// differ. A header of its own, beside the server's (api.hpp), because the
// command-line tool uses it without the server.
#pragma once

#include "store/store.hpp"

#include <boost/json/fwd.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::api {

// Appends the JSON of an activity to `out`: its fields, participants,
// contact and company ids, places (sources), status and reason; a meeting's
// time, place and status at `now` (Unix seconds). Ids that are unset are
// null. Written straight as text, compact, byte for byte as
// boost::json::serialize would write the same object (a page of 50 costs
// no value tree).
void append_activity_json(std::string& out, const store::Activity& a, std::int64_t now);

// Appends what capture decided of the message of `a` seen at the place `s`:
// one object per place, with the rule (empty when captured) and the reason.
void append_decision_json(std::string& out, const store::Activity& a, const store::SourceRef& s);

// A line of a directory batch (POST /v1/directory, openapi.yaml's
// DirectoryLine): {"kind", "op", "id"} and, for a put, the row's fields,
// read into an edit whose row is checked (capture::check_row); else "field:
// what is wrong".
boost::system::result<store::DirectoryEdit, std::string> edit_from_json(std::string_view line);
// The lines of a batch (JSON lines; blank ones are skipped), each edit's
// `where` its line number ("line 3"); else "line 3: field: what is wrong".
boost::system::result<std::vector<store::DirectoryEdit>, std::string> edits_from_lines(
    std::string_view text);
// An edit as one line of a batch, without a newline.
std::string edit_line(const store::DirectoryEdit& e);

}  // namespace crmcap::api
