// SPDX-License-Identifier: Apache-2.0
// The API's request parsing, cursors and peer check, without a socket.
#include "daemon/api/query.hpp"
#include "daemon/api/api.hpp"

#include <gtest/gtest.h>

using namespace crmcap::api;
using namespace crmcap::api::detail;
using crmcap::store::ActivityKey;
using crmcap::store::DecisionStatus;

namespace {

ApiError refused(std::string_view target) {
  auto r = parse_target(target);
  EXPECT_FALSE(r) << target;
  return r ? ApiError{} : r.error();
}

}  // namespace

TEST(Query, RoutesAndDefaults) {
  auto r = parse_target("/v1/activities").value();
  EXPECT_EQ(r.endpoint, Endpoint::activities);
  EXPECT_EQ(r.filter.limit, 50u);
  EXPECT_TRUE(r.filter.newest_first);
  EXPECT_EQ(r.filter.statuses, std::vector<DecisionStatus>{DecisionStatus::captured});
  r = parse_target("/v1/decisions").value();
  EXPECT_EQ(r.filter.statuses,
            (std::vector<DecisionStatus>{DecisionStatus::skipped, DecisionStatus::failed}));
  r = parse_target("/v1/activities/id%2Fwith%20slash").value();
  EXPECT_EQ(r.endpoint, Endpoint::activity);
  EXPECT_EQ(r.id, "id/with slash");
  EXPECT_EQ(parse_target("/v1/sync?mailbox=alice").value().mailbox, "alice");
  EXPECT_EQ(parse_target("/v1/events").value().endpoint, Endpoint::events);
  EXPECT_EQ(allowed_methods(Endpoint::sync), "POST");
  EXPECT_EQ(allowed_methods(Endpoint::status), "GET");
  r = parse_target("/v1/contacts/C%2F9").value();
  EXPECT_EQ(r.endpoint, Endpoint::directory_row);
  EXPECT_EQ(r.row_kind, crmcap::store::DirectoryKind::contact);
  EXPECT_EQ(r.id, "C/9");
  EXPECT_EQ(parse_target("/v1/opportunities/O-1").value().row_kind,
            crmcap::store::DirectoryKind::opportunity);
  EXPECT_EQ(parse_target("/v1/directory").value().endpoint, Endpoint::directory_batch);
  EXPECT_EQ(parse_target("/v1/directory/x").error().status, 404);
  EXPECT_EQ(parse_target("/v1/companies").error().status, 404);
  EXPECT_TRUE(method_allowed(Endpoint::directory_row, "DELETE"));
  EXPECT_FALSE(method_allowed(Endpoint::directory_row, "POST"));
  EXPECT_EQ(allowed_methods(Endpoint::directory_row), "PUT, DELETE");
}

TEST(Query, FiltersAreRead) {
  auto r = parse_target(
               "/v1/activities?contact=C-1&company=CO-1&opportunity=O-1&mailbox=alice&kind=meeting"
               "&since=2026-11-01&until=2026-12-01T00:00:00Z&status=skipped&limit=1000")
               .value();
  const auto& f = r.filter;
  EXPECT_EQ(f.contact_id, "C-1");
  EXPECT_EQ(f.company_id, "CO-1");
  EXPECT_EQ(f.opportunity_id, "O-1");
  EXPECT_EQ(f.mailbox, "alice");
  EXPECT_EQ(f.kind, crmcap::store::ActivityKind::meeting);
  EXPECT_EQ(f.since, "2026-11-01");
  EXPECT_EQ(f.until, "2026-12-01T00:00:00Z");
  EXPECT_EQ(f.statuses, std::vector<DecisionStatus>{DecisionStatus::skipped});
  EXPECT_EQ(f.limit, 1000u);
}

TEST(Query, BadParametersAreNamed) {
  for (const char* t : {"/v1/activities?limit=0", "/v1/activities?limit=1001",
                        "/v1/activities?limit=5x", "/v1/activities?limit=-1"}) {
    const auto e = refused(t);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "bad_parameter");
    EXPECT_EQ(e.message.rfind("limit: ", 0), 0u) << e.message;
  }
  EXPECT_EQ(refused("/v1/activities?kind=fax").message.rfind("kind: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?since=yesterday").message.rfind("since: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?until=2026-11-01T10:00:00").message.rfind("until: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?status=maybe").message.rfind("status: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?cursor=zz").message.rfind("cursor: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?contact=").message.rfind("contact: ", 0), 0u);
  EXPECT_EQ(refused("/v1/activities?limit=5&limit=6").message, "limit: given more than once");
  EXPECT_EQ(refused("/v1/activities?color=red").message, "unknown parameter \"color\"");
  EXPECT_EQ(refused("/v1/decisions?contact=C-1").message, "unknown parameter \"contact\"");
  EXPECT_EQ(refused("/v1/status?x=1").status, 400);
  EXPECT_EQ(refused("/v1/nothing").status, 404);
  EXPECT_EQ(refused("/v2/status").status, 404);
  EXPECT_EQ(refused("/v1/activities/").status, 404);
  EXPECT_EQ(refused("/v1/activities/a/b").status, 404);
  EXPECT_EQ(refused("http://x/v1/status").status, 400);
}

TEST(Query, CursorsRoundTripAndRefuseForgeries) {
  const ActivityKey k{"2026-11-01T10:00:00Z", "id-mid:a&b=c@x"};
  const std::string c = encode_cursor(k);
  EXPECT_EQ(c.find_first_not_of("0123456789abcdef-"), std::string::npos) << c;
  EXPECT_EQ(decode_cursor(c), k);
  auto r = parse_target("/v1/activities?cursor=" + c).value();
  EXPECT_EQ(r.filter.after, k);
  EXPECT_FALSE(decode_cursor(""));
  EXPECT_FALSE(decode_cursor("2abc-00"));
  EXPECT_FALSE(decode_cursor("1abc-00"));  // odd length
  EXPECT_FALSE(decode_cursor("1ab-"));     // no id
  EXPECT_FALSE(decode_cursor("1zz-61"));
}

TEST(Query, EventIds) {
  EXPECT_EQ(parse_event_id("0"), 0);
  EXPECT_EQ(parse_event_id("123"), 123);
  EXPECT_FALSE(parse_event_id(""));
  EXPECT_FALSE(parse_event_id("-1"));
  EXPECT_FALSE(parse_event_id("12a"));
  EXPECT_FALSE(parse_event_id("9999999999999999999"));
}

TEST(Access, OwnerGroupAllowedUidsAndRoot) {
  const Access a{1000, 500, 0660, {2000}};
  EXPECT_TRUE(peer_allowed({1, 1000, 1000, {}}, a));        // the owner
  EXPECT_TRUE(peer_allowed({1, 0, 0, {}}, a));              // root
  EXPECT_TRUE(peer_allowed({1, 2000, 2000, {}}, a));        // allow_uids
  EXPECT_TRUE(peer_allowed({1, 3000, 500, {}}, a));         // the socket's group, primary
  EXPECT_TRUE(peer_allowed({1, 3000, 3000, {7, 500}}, a));  // supplementary
  EXPECT_FALSE(peer_allowed({1, 3000, 3000, {7}}, a));      // a stranger
  EXPECT_FALSE(peer_allowed({1, 65534, 65534, {}}, a));
  // A mode that does not grant the group: its members are strangers.
  const Access owner_only{1000, 500, 0600, {}};
  EXPECT_FALSE(peer_allowed({1, 3000, 500, {500}}, owner_only));
  EXPECT_TRUE(peer_allowed({1, 1000, 1000, {}}, owner_only));
}

TEST(Errors, Body) {
  EXPECT_EQ(error_body("not_found", "no \"x\""),
            R"({"error":{"code":"not_found","message":"no \"x\""}})");
}
