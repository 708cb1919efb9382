// SPDX-License-Identifier: Apache-2.0
// The CalDAV state machines driven by scripted exchanges: each test lists the
// requests it expects, with the response to each, and checks what the sink
// got.
#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/multistatus.hpp"
#include "tests/connectors/caldav_script.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crmcap::caldav {
namespace {

using namespace std::chrono_literals;
using test::drive;
using test::Exchange;

constexpr const char* kHost = "https://dav.example.com";
constexpr const char* kCal = "https://dav.example.com/alice/cal/";

// ---------------------------------------------------------------------------
// Replies

HttpResponse multi(std::string body) {
  return HttpResponse{207, {{"Content-Type", "application/xml; charset=utf-8"}}, std::move(body)};
}
HttpResponse status(int code, std::vector<Header> headers = {}, std::string body = {}) {
  return HttpResponse{code, std::move(headers), std::move(body)};
}

std::string ms(const std::vector<std::string>& parts, const std::string& token = "",
               bool truncated = false) {
  std::string s =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:multistatus xmlns:d=\"DAV:\" "
      "xmlns:c=\"urn:ietf:params:xml:ns:caldav\" xmlns:cs=\"http://calendarserver.org/ns/\">";
  for (const auto& p : parts) s += p;
  if (truncated) {
    s += "<d:response><d:href>/alice/cal/</d:href><d:status>HTTP/1.1 507 Insufficient "
         "Storage</d:status></d:response>";
  }
  if (!token.empty()) s += "<d:sync-token>" + token + "</d:sync-token>";
  return s + "</d:multistatus>";
}
std::string ok(const std::string& href, const std::string& props) {
  return "<d:response><d:href>" + href + "</d:href><d:propstat><d:prop>" + props +
         "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>";
}
std::string gone(const std::string& href) {
  return "<d:response><d:href>" + href +
         "</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>";
}
std::string etag(const std::string& e) { return "<d:getetag>" + e + "</d:getetag>"; }
std::string ics(const std::string& uid) {
  return "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:" + uid + "\nEND:VEVENT\nEND:VCALENDAR\n";
}
std::string data(const std::string& uid) {
  return "<c:calendar-data>" + ics(uid) + "</c:calendar-data>";
}
std::string item(const std::string& name, const std::string& e) {
  return ok("/alice/cal/" + name, etag(e));
}
std::string fetched(const std::string& name, const std::string& e) {
  return ok("/alice/cal/" + name, etag(e) + data(name));
}
std::string calendar_props(const std::string& token, const std::string& ctag, bool sync) {
  std::string p = "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>";
  if (!ctag.empty()) p += "<cs:getctag>" + ctag + "</cs:getctag>";
  if (!token.empty()) p += "<d:sync-token>" + token + "</d:sync-token>";
  p += "<d:supported-report-set>";
  if (sync)
    p += "<d:supported-report><d:report><d:sync-collection/></d:report></d:supported-report>";
  p += "<d:supported-report><d:report><c:calendar-multiget/></d:report></d:supported-report>";
  return p + "</d:supported-report-set>";
}
HttpResponse probe(const std::string& token, const std::string& ctag, bool sync = true) {
  return multi(ms({ok("/alice/cal/", calendar_props(token, ctag, sync))}));
}

std::string url(const std::string& name) { return std::string(kCal) + name; }

Exchange probe_ex(HttpResponse r) {
  return {"PROPFIND", kCal, "0", {"getctag", "sync-token", "supported-report-set"}, std::move(r)};
}
Exchange sync_ex(const std::string& token, HttpResponse r) {
  return {"REPORT",
          kCal,
          "0",
          {token.empty() ? "<d:sync-token/>" : "<d:sync-token>" + token + "</d:sync-token>"},
          std::move(r)};
}
Exchange listing_ex(HttpResponse r) { return {"PROPFIND", kCal, "1", {"getetag"}, std::move(r)}; }
Exchange multiget_ex(const std::vector<std::string>& names, HttpResponse r) {
  std::vector<std::string> has = {"calendar-multiget", "calendar-data"};
  for (const auto& n : names) has.push_back("<d:href>/alice/cal/" + n + "</d:href>");
  return {"REPORT", kCal, std::nullopt, has, std::move(r)};
}

// A sink that already holds `items` (name -> etag) at `state`.
MemorySink sink_with(const std::string& token, const std::string& ctag,
                     const std::vector<std::pair<std::string, std::string>>& items) {
  MemorySink sink;
  auto& cal = sink.calendars[kCal];
  cal.state = CalendarState{kCal, token, ctag};
  for (const auto& [name, e] : items) cal.items[url(name)] = CalendarItem{url(name), e, ics(name)};
  return sink;
}

std::vector<std::string> hrefs(const std::vector<CalendarItem>& items) {
  std::vector<std::string> out;
  for (const auto& i : items) out.push_back(i.href);
  return out;
}

SyncOptions options(std::size_t batch = 100) {
  SyncOptions o;
  o.calendar_url = kCal;
  o.multiget_batch = batch;
  return o;
}

// ---------------------------------------------------------------------------
// Discovery

TEST(CaldavDiscovery, WellKnownRedirectPrincipalAndHomeSet) {
  DiscoveryOptions o;
  o.url = "https://dav.example.com";
  discovery_fsm fsm(o);
  const std::vector<Exchange> script = {
      // The root is a plain collection with no principal.
      {"PROPFIND",
       "https://dav.example.com/",
       "0",
       {"current-user-principal"},
       multi(ms({ok("/", "<d:resourcetype><d:collection/></d:resourcetype>")}))},
      // RFC 6764, answered with a 301 as Radicale does.
      {"PROPFIND",
       "https://dav.example.com/.well-known/caldav",
       "0",
       {"current-user-principal"},
       status(301, {{"Location", "/dav/"}})},
      {"PROPFIND",
       "https://dav.example.com/dav/",
       "0",
       {"current-user-principal"},
       multi(ms({ok("/dav/",
                    "<d:current-user-principal><d:href>/dav/alice/</d:href>"
                    "</d:current-user-principal>")}))},
      {"PROPFIND",
       "https://dav.example.com/dav/alice/",
       "0",
       {"calendar-home-set"},
       multi(ms({ok("/dav/alice/",
                    "<c:calendar-home-set><d:href>/dav/alice/</d:href></c:calendar-home-set>")}))},
      {"PROPFIND",
       "https://dav.example.com/dav/alice/",
       "1",
       {"supported-calendar-component-set"},
       multi(ms({ok("/dav/alice/", "<d:resourcetype><d:collection/></d:resourcetype>"),
                 ok("/dav/alice/work/",
                    "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
                    "<d:displayname>Work</d:displayname><cs:getctag>c1</cs:getctag>"
                    "<c:supported-calendar-component-set><c:comp name=\"VEVENT\"/>"
                    "</c:supported-calendar-component-set>" +
                        calendar_props("t1", "", true)),
                 ok("/dav/alice/tasks/",
                    "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
                    "<c:supported-calendar-component-set><c:comp name=\"VTODO\"/>"
                    "</c:supported-calendar-component-set>"),
                 ok("/dav/alice/contacts/", "<d:resourcetype><d:collection/></d:resourcetype>"),
                 ok("/dav/alice/any%20thing/",
                    "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>")}))},
  };
  auto run = drive(fsm, script);
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  EXPECT_EQ(fsm.principal(), "https://dav.example.com/dav/alice/");
  ASSERT_EQ(fsm.calendars().size(), 2u);
  EXPECT_EQ(fsm.calendars()[0].url, "https://dav.example.com/dav/alice/work/");
  EXPECT_EQ(fsm.calendars()[0].display_name, "Work");
  EXPECT_EQ(fsm.calendars()[0].ctag, "c1");
  EXPECT_EQ(fsm.calendars()[0].sync_token, "t1");
  EXPECT_TRUE(fsm.calendars()[0].sync_collection);
  EXPECT_EQ(fsm.calendars()[1].url, "https://dav.example.com/dav/alice/any%20thing/");
  EXPECT_FALSE(fsm.calendars()[1].sync_collection);
  EXPECT_EQ(fsm.requests(), 5u);
  // Once done, it stays done.
  EXPECT_EQ(fsm.resume({}).kind, Action::Kind::done);
}

TEST(CaldavDiscovery, ConfiguredCalendarIsOneRequest) {
  DiscoveryOptions o;
  o.url = kCal;
  discovery_fsm fsm(o);
  auto run = drive(fsm, {probe_ex(probe("t1", "c1"))});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  ASSERT_EQ(fsm.calendars().size(), 1u);
  EXPECT_EQ(fsm.calendars()[0].url, kCal);
  EXPECT_EQ(fsm.requests(), 1u);
}

TEST(CaldavDiscovery, RootWithPrincipalAndHomeSetInOne) {
  DiscoveryOptions o;
  o.url = "http://127.0.0.1:5232/";
  discovery_fsm fsm(o);
  auto run = drive(
      fsm, {{"PROPFIND",
             "http://127.0.0.1:5232/",
             "0",
             {},
             multi(ms({ok("/",
                          "<d:current-user-principal><d:href>/alice/</d:href>"
                          "</d:current-user-principal><c:calendar-home-set><d:href>/alice/"
                          "</d:href></c:calendar-home-set>")}))},
            {"PROPFIND",
             "http://127.0.0.1:5232/alice/",
             "1",
             {},
             multi(ms({ok("/alice/cal/",
                          "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>")}))}});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(fsm.calendars().size(), 1u);
  EXPECT_EQ(fsm.calendars()[0].url, "http://127.0.0.1:5232/alice/cal/");
}

TEST(CaldavDiscovery, UnauthorizedNeedsTheUser) {
  DiscoveryOptions o;
  o.url = "https://dav.example.com/";
  discovery_fsm fsm(o);
  auto run = drive(fsm, {{"PROPFIND",
                          "https://dav.example.com/",
                          "0",
                          {},
                          status(401, {{"WWW-Authenticate", "Basic realm=\"x\""}})}});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::auth_failed);
  EXPECT_EQ(run.last.error.retry, RetryClass::needs_user);
  EXPECT_FALSE(run.last.error.retry_at);
  EXPECT_EQ(fsm.resume({}).kind, Action::Kind::error);  // and stays so
}

TEST(CaldavDiscovery, ServiceUnavailableWithRetryAfter) {
  const auto now = std::chrono::system_clock::time_point{} + 1000000h;
  DiscoveryOptions o;
  o.url = "https://dav.example.com/";
  o.clock = [now] { return now; };
  discovery_fsm fsm(o);
  auto run = drive(
      fsm,
      {{"PROPFIND", "https://dav.example.com/", "0", {}, status(503, {{"retry-after", "120"}})}});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::server_busy);
  EXPECT_EQ(run.last.error.retry, RetryClass::retry_later);
  EXPECT_EQ(run.last.error.retry_at, now + 120s);
}

TEST(CaldavDiscovery, RedirectToAnotherHostIsRefused) {
  DiscoveryOptions o;
  o.url = "https://dav.example.com/";
  discovery_fsm fsm(o);
  auto run = drive(fsm, {{"PROPFIND",
                          "https://dav.example.com/",
                          "0",
                          {},
                          status(302, {{"Location", "https://evil.example.net/"}})}});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::bad_redirect);
  EXPECT_EQ(run.last.error.retry, RetryClass::needs_user);
}

TEST(CaldavDiscovery, RedirectLoopIsBounded) {
  DiscoveryOptions o;
  o.url = "http://dav.example.com/";
  o.max_redirects = 3;
  discovery_fsm fsm(o);
  const auto to = [](const char* where) { return status(308, {{"Location", where}}); };
  auto run =
      drive(fsm, {{"PROPFIND", "http://dav.example.com/", "0", {}, to("https://dav.example.com/a")},
                  {"PROPFIND", "https://dav.example.com/a", "0", {}, to("/b")},
                  {"PROPFIND", "https://dav.example.com/b", "0", {}, to("/a")},
                  {"PROPFIND", "https://dav.example.com/a", "0", {}, to("/b")}});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::too_many_redirects);
}

TEST(CaldavDiscovery, NoEventCalendars) {
  DiscoveryOptions o;
  o.url = "https://dav.example.com/alice/";
  discovery_fsm fsm(o);
  auto run = drive(fsm, {{"PROPFIND",
                          "https://dav.example.com/alice/",
                          "0",
                          {},
                          multi(ms({ok("/alice/",
                                       "<c:calendar-home-set><d:href>/alice/</d:href>"
                                       "</c:calendar-home-set>")}))},
                         {"PROPFIND", "https://dav.example.com/alice/", "1", {}, multi(ms({}))}});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::no_calendars);
}

// ---------------------------------------------------------------------------
// Sync

TEST(CaldavSync, FirstSyncWithSyncCollection) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run = drive(
      fsm, {probe_ex(probe("t1", "c1")),
            // Radicale lists deleted members even on a first sync.
            sync_ex("", multi(ms({item("a.ics", "\"1\""), gone("old.ics"), item("b.ics", "\"2\"")},
                                 "t2"))),
            multiget_ex({"a.ics", "b.ics"},
                        multi(ms({fetched("b.ics", "\"2\""), fetched("a.ics", "\"1\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(sink.commits.size(), 1u);
  const auto& c = sink.commits[0];
  EXPECT_EQ(c.state, (CalendarState{kCal, "t2", "c1"}));
  EXPECT_EQ(hrefs(c.changed), (std::vector<std::string>{url("a.ics"), url("b.ics")}));
  EXPECT_EQ(c.changed[0].data, ics("a.ics"));
  EXPECT_EQ(c.changed[0].etag, "\"1\"");
  EXPECT_TRUE(c.deleted.empty());
  EXPECT_TRUE(c.failed.empty());
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::full_sync_collection);
  EXPECT_EQ(sink.calendars[kCal].items.size(), 2u);
}

TEST(CaldavSync, NoChangeIsOneRequest) {
  MemorySink sink = sink_with("t2", "c1", {{"a.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("t2", "c2"))});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  EXPECT_EQ(fsm.report().requests, 1u);
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::unchanged);
  EXPECT_TRUE(sink.commits.empty());
}

TEST(CaldavSync, NoChangeByCtagWithoutToken) {
  MemorySink sink = sink_with("", "c1", {{"a.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("", "c1", false))});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  EXPECT_EQ(fsm.report().requests, 1u);
  EXPECT_TRUE(sink.commits.empty());
}

// Discovery's PROPFIND of the calendar already carried its token and ctag.
SyncOptions discovered(const std::string& token, const std::string& ctag, bool sync = true) {
  SyncOptions o = options();
  o.discovered = CalendarInfo{kCal, "Work", ctag, token, sync};
  return o;
}

TEST(CaldavSync, DiscoveredAndUnchangedIsNoRequest) {
  MemorySink sink = sink_with("t2", "c1", {{"a.ics", "\"1\""}});
  sync_fsm fsm(discovered("t2", "c2"), sink);
  auto run = drive(fsm, {});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  EXPECT_EQ(fsm.report().requests, 0u);
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::unchanged);
  EXPECT_TRUE(sink.commits.empty());
}

TEST(CaldavSync, DiscoveredAndChangedStartsWithTheReport) {
  MemorySink sink = sink_with("t1", "c1", {{"a.ics", "\"1\""}});
  sync_fsm fsm(discovered("t2", "c2"), sink);
  auto run = drive(fsm, {sync_ex("t1", multi(ms({item("b.ics", "\"2\"")}, "t2"))),
                         multiget_ex({"b.ics"}, multi(ms({fetched("b.ics", "\"2\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  EXPECT_EQ(fsm.report().requests, 2u);
  ASSERT_EQ(sink.commits.size(), 1u);
  EXPECT_EQ(sink.commits[0].state, (CalendarState{kCal, "t2", "c2"}));
  EXPECT_EQ(hrefs(sink.commits[0].changed), (std::vector<std::string>{url("b.ics")}));
}

TEST(CaldavSync, DiscoveredByCtagAloneWithoutTokens) {
  MemorySink sink = sink_with("", "c1", {{"a.ics", "\"1\""}});
  sync_fsm fsm(discovered("", "c1", false), sink);
  auto run = drive(fsm, {});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  EXPECT_EQ(fsm.report().requests, 0u);
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::unchanged);
}

TEST(CaldavSync, DiscoveredWithoutTheTokenTheSinkHasIsAskedAgain) {
  // A listing may leave out what a Depth 0 PROPFIND gives: ask.
  for (const auto& [token, ctag] : {std::pair<std::string, std::string>{"", ""}, {"", "c1"}}) {
    MemorySink sink = sink_with("t2", "c1", {{"a.ics", "\"1\""}});
    sync_fsm fsm(discovered(token, ctag), sink);
    auto run = drive(fsm, {probe_ex(probe("t2", "c1"))});
    ASSERT_EQ(run.last.kind, Action::Kind::done);
    EXPECT_EQ(fsm.report().requests, 1u);
    EXPECT_EQ(fsm.report().mode, SyncReport::Mode::unchanged);
  }
}

TEST(CaldavSync, TruncatedPageThenTheRest) {
  MemorySink sink =
      sink_with("t1", "c1", {{"a.ics", "\"1\""}, {"b.ics", "\"1\""}, {"c.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run = drive(
      fsm, {probe_ex(probe("t9", "c9")),
            sync_ex("t1", multi(ms({item("a.ics", "\"2\""), gone("c.ics"), item("b.ics", "\"1\"")},
                                   "t2", /*truncated=*/true))),
            multiget_ex({"a.ics"}, multi(ms({fetched("a.ics", "\"2\"")}))),
            sync_ex("t2", multi(ms({item("d.ics", "\"1\""), gone("never-seen.ics")}, "t3"))),
            multiget_ex({"d.ics"}, multi(ms({fetched("d.ics", "\"1\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(sink.commits.size(), 2u);
  // Page one: its changes with its token; the ctag only moves at the end.
  EXPECT_EQ(sink.commits[0].state, (CalendarState{kCal, "t2", "c1"}));
  EXPECT_EQ(hrefs(sink.commits[0].changed), std::vector<std::string>{url("a.ics")});
  EXPECT_EQ(sink.commits[0].deleted, std::vector<std::string>{url("c.ics")});
  EXPECT_EQ(sink.commits[1].state, (CalendarState{kCal, "t3", "c9"}));
  EXPECT_EQ(hrefs(sink.commits[1].changed), std::vector<std::string>{url("d.ics")});
  EXPECT_TRUE(sink.commits[1].deleted.empty());  // never-seen.ics: a no-op
  EXPECT_EQ(fsm.report().pages, 2u);
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::sync_collection);
  const auto& items = sink.calendars[kCal].items;
  EXPECT_EQ(items.size(), 3u);
  EXPECT_EQ(items.at(url("a.ics")).etag, "\"2\"");
}

TEST(CaldavSync, FullSyncCollectionSweepsOnlyAfterTheLastPage) {
  // State without a token (e.g. kept from ETag listings): a full listing.
  MemorySink sink = sink_with("", "c1", {{"a.ics", "\"1\""}, {"z.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("t5", "c5")),
                         sync_ex("", multi(ms({item("n.ics", "\"1\"")}, "p1", true))),
                         multiget_ex({"n.ics"}, multi(ms({fetched("n.ics", "\"1\"")}))),
                         sync_ex("p1", multi(ms({item("a.ics", "\"1\"")}, "t6")))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(sink.commits.size(), 2u);
  // The first page's items commit with the old state: a crash here must not
  // leave a token that would skip the sweep.
  EXPECT_EQ(sink.commits[0].state, (CalendarState{kCal, "", "c1"}));
  EXPECT_TRUE(sink.commits[0].deleted.empty());
  EXPECT_EQ(sink.commits[1].state, (CalendarState{kCal, "t6", "c5"}));
  EXPECT_EQ(sink.commits[1].deleted, std::vector<std::string>{url("z.ics")});
  EXPECT_TRUE(sink.commits[1].changed.empty());
}

class CaldavInvalidToken : public ::testing::TestWithParam<HttpResponse> {};

TEST_P(CaldavInvalidToken, FallsBackToAFullListingWithSweep) {
  MemorySink sink =
      sink_with("t0", "c0", {{"a.ics", "\"1\""}, {"b.ics", "\"1\""}, {"z.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run =
      drive(fsm, {probe_ex(probe("t5", "c5")), sync_ex("t0", GetParam()),
                  listing_ex(multi(ms({ok("/alice/cal/",
                                          "<d:resourcetype><d:collection/>"
                                          "<c:calendar/></d:resourcetype>"),
                                       item("a.ics", "\"1\""), item("b.ics", "\"2\""),
                                       item("n.ics", "\"1\"")}))),
                  multiget_ex({"b.ics", "n.ics"},
                              multi(ms({fetched("n.ics", "\"1\""), fetched("b.ics", "\"2\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  EXPECT_TRUE(fsm.report().fell_back);
  EXPECT_EQ(fsm.report().mode, SyncReport::Mode::etag_listing);
  ASSERT_EQ(sink.commits.size(), 1u);
  const auto& c = sink.commits[0];
  EXPECT_EQ(c.state, (CalendarState{kCal, "t5", "c5"}));
  EXPECT_EQ(hrefs(c.changed), (std::vector<std::string>{url("b.ics"), url("n.ics")}));
  EXPECT_EQ(c.deleted, std::vector<std::string>{url("z.ics")});
  EXPECT_EQ(sink.calendars[kCal].items.size(), 3u);
}

const std::string kTokenError =
    R"(<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>)";
INSTANTIATE_TEST_SUITE_P(Statuses, CaldavInvalidToken,
                         ::testing::Values(status(409, {}, kTokenError),
                                           status(412, {}, kTokenError),
                                           status(403, {}, kTokenError), status(409), status(507)));

TEST(CaldavSync, ForbiddenWithoutTokenPreconditionNeedsTheUser) {
  MemorySink sink = sink_with("t0", "c0", {});
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("t5", "c5")), sync_ex("t0", status(403))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::auth_failed);
  EXPECT_EQ(run.last.error.retry, RetryClass::needs_user);
}

// What on_progress was told, and how many commits the sink had then.
struct ProgressSeen {
  bool first_sync;
  std::size_t to_fetch, fetched, commits;
  bool operator==(const ProgressSeen&) const = default;
};
std::ostream& operator<<(std::ostream& o, const ProgressSeen& p) {
  return o << "{" << p.first_sync << ", " << p.to_fetch << ", " << p.fetched << ", " << p.commits
           << "}";
}

// Its progress too: known first, then listed, then each batch once it is
// committed (a failed item counts: its failure is committed).
TEST(CaldavSync, MultigetBatchesWithFailedEntries) {
  MemorySink sink;
  std::vector<ProgressSeen> seen;
  SyncOptions o = options(2);
  o.on_progress = [&](const SyncReport& r) {
    seen.push_back({r.first_sync, r.to_fetch, r.fetched, sink.commits.size()});
  };
  sync_fsm fsm(o, sink);
  const std::string missing_data =
      "<d:response><d:href>/alice/cal/e.ics</d:href><d:propstat><d:prop>" + etag("\"1\"") +
      "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop>"
      "<c:calendar-data/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
      "</d:response>";
  auto run = drive(
      fsm,
      {probe_ex(probe("", "c1", false)),
       listing_ex(multi(ms({item("a.ics", "\"1\""), item("b.ics", "\"1\""), item("c.ics", "\"1\""),
                            item("d.ics", "\"1\""), item("e.ics", "\"1\"")}))),
       multiget_ex({"a.ics", "b.ics"},
                   multi(ms({gone("/alice/cal/b.ics"), fetched("a.ics", "\"1\"")}))),
       // d.ics is not in the reply at all.
       multiget_ex({"c.ics", "d.ics"}, multi(ms({fetched("c.ics", "\"1\"")}))),
       multiget_ex({"e.ics"}, multi(ms({missing_data})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(sink.commits.size(), 3u);
  EXPECT_EQ(sink.commits[0].state, (CalendarState{kCal, "", ""}));
  EXPECT_EQ(hrefs(sink.commits[0].changed), std::vector<std::string>{url("a.ics")});
  EXPECT_EQ(sink.commits[0].failed, (std::vector<FailedItem>{{url("b.ics"), "status 404"}}));
  EXPECT_EQ(sink.commits[1].failed,
            (std::vector<FailedItem>{{url("d.ics"), "not in the calendar-multiget reply"}}));
  EXPECT_EQ(sink.commits[2].state, (CalendarState{kCal, "", "c1"}));
  EXPECT_EQ(
      sink.commits[2].failed,
      (std::vector<FailedItem>{{url("e.ics"), "no calendar-data in the reply (status 404)"}}));
  EXPECT_EQ(fsm.report().changed, 2u);
  EXPECT_EQ(fsm.report().failed, 3u);
  EXPECT_EQ(sink.calendars[kCal].failed.size(), 3u);
  EXPECT_EQ(
      seen,
      (std::vector<ProgressSeen>{
          {true, 0, 0, 0}, {true, 5, 0, 0}, {true, 5, 2, 1}, {true, 5, 4, 2}, {true, 5, 5, 3}}));
}

TEST(CaldavSync, ProgressOfALaterSyncGrowsWithEachPage) {
  MemorySink sink = sink_with("t1", "c1", {{"a.ics", "\"1\""}, {"b.ics", "\"1\""}});
  std::vector<ProgressSeen> seen;
  SyncOptions o = options();
  o.on_progress = [&](const SyncReport& r) {
    seen.push_back({r.first_sync, r.to_fetch, r.fetched, sink.commits.size()});
  };
  sync_fsm fsm(o, sink);
  auto run =
      drive(fsm, {probe_ex(probe("t9", "c9")),
                  sync_ex("t1", multi(ms({item("a.ics", "\"2\""), item("b.ics", "\"1\"")}, "t2",
                                         /*truncated=*/true))),
                  // Changed back meanwhile: fetched, nothing to store, done with.
                  multiget_ex({"a.ics"}, multi(ms({fetched("a.ics", "\"1\"")}))),
                  // A page with nothing to fetch says nothing.
                  sync_ex("t2", multi(ms({gone("/alice/cal/b.ics")}, "t3", true))),
                  sync_ex("t3", multi(ms({item("d.ics", "\"1\"")}, "t4"))),
                  multiget_ex({"d.ics"}, multi(ms({fetched("d.ics", "\"1\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  EXPECT_EQ(seen, (std::vector<ProgressSeen>{{false, 0, 0, 0},
                                             {false, 1, 0, 0},
                                             {false, 1, 1, 1},
                                             {false, 2, 1, 2},
                                             {false, 2, 2, 3}}));
}

TEST(CaldavSync, WeakAndMissingEtags) {
  MemorySink sink = sink_with("", "c1", {{"weak.ics", "\"1\""}});
  {
    sync_fsm fsm(options(), sink);
    auto run = drive(
        fsm, {probe_ex(probe("", "c2", false)),
              // W/"1" is "1" under weak comparison; bare.ics has no ETag.
              listing_ex(multi(ms({item("weak.ics", "W/\"1\""), ok("/alice/cal/bare.ics", "")}))),
              multiget_ex({"bare.ics"}, multi(ms({ok("/alice/cal/bare.ics", data("bare.ics"))})))});
    ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
    ASSERT_EQ(sink.commits.size(), 1u);
    ASSERT_EQ(sink.commits[0].changed.size(), 1u);
    EXPECT_EQ(sink.commits[0].changed[0].etag, content_etag(ics("bare.ics")));
    EXPECT_TRUE(sink.commits[0].deleted.empty());
  }
  {
    // Next time: still no ETag, so fetched again; the same bytes are not
    // handed over again.
    sync_fsm fsm(options(), sink);
    auto run = drive(
        fsm, {probe_ex(probe("", "c3", false)),
              listing_ex(multi(ms({item("weak.ics", "\"1\""), ok("/alice/cal/bare.ics", "")}))),
              multiget_ex({"bare.ics"}, multi(ms({ok("/alice/cal/bare.ics", data("bare.ics"))})))});
    ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
    ASSERT_EQ(sink.commits.size(), 2u);
    EXPECT_TRUE(sink.commits[1].changed.empty());
    EXPECT_EQ(sink.commits[1].state.ctag, "c3");
  }
}

TEST(CaldavSync, ListingEtagUsedWhenMultigetHasNone) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run =
      drive(fsm, {probe_ex(probe("", "c1", false)), listing_ex(multi(ms({item("a.ics", "\"7\"")}))),
                  multiget_ex({"a.ics"}, multi(ms({ok("/alice/cal/a.ics", data("a.ics"))})))});
  ASSERT_EQ(run.last.kind, Action::Kind::done);
  ASSERT_EQ(sink.commits.size(), 1u);
  EXPECT_EQ(sink.commits[0].changed.at(0).etag, "\"7\"");
}

TEST(CaldavSync, PercentEncodedHrefsMatch) {
  MemorySink sink = sink_with("t1", "c1", {{"a@b.ics", "\"1\""}});
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("t2", "c2")),
                         sync_ex("t1", multi(ms({gone("/alice/cal/a%40b.ics")}, "t2")))});
  ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
  ASSERT_EQ(sink.commits.size(), 1u);
  EXPECT_EQ(sink.commits[0].deleted, std::vector<std::string>{url("a@b.ics")});
}

TEST(CaldavSync, RetryAfterAsHttpDate) {
  using namespace std::chrono;
  const system_clock::time_point now = sys_days{2026y / December / 6} + 14h;
  SyncOptions o = options();
  o.clock = [now] { return now; };
  MemorySink sink;
  sync_fsm fsm(o, sink);
  auto run =
      drive(fsm, {probe_ex(status(429, {{"Retry-After", "Sun, 06 Dec 2026 14:05:00 GMT"}}))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::server_busy);
  EXPECT_EQ(run.last.error.retry_at, now + 5min);
}

TEST(CaldavSync, UnauthorizedNeedsTheUser) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(status(401))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::auth_failed);
  EXPECT_EQ(run.last.error.retry, RetryClass::needs_user);
}

TEST(CaldavSync, NotACalendar) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run = drive(
      fsm, {probe_ex(multi(
               ms({ok("/alice/cal/", "<d:resourcetype><d:collection/></d:resourcetype>")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::not_a_calendar);
}

TEST(CaldavSync, MalformedReplyRetriesLater) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(multi("<d:multistatus xmlns:d=\"DAV:\"><d:response>"))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::xml_malformed);
  EXPECT_EQ(run.last.error.retry, RetryClass::retry_later);
}

TEST(CaldavSync, PageWithoutTokenIsAProtocolError) {
  MemorySink sink;
  sync_fsm fsm(options(), sink);
  auto run =
      drive(fsm, {probe_ex(probe("t1", "c1")), sync_ex("", multi(ms({item("a.ics", "\"1\"")})))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::protocol);
  EXPECT_TRUE(sink.commits.empty());
}

// ---------------------------------------------------------------------------
// Failure at every step (STYLE 13)

// The exchange of TruncatedPageThenTheRest, with batches of one.
std::vector<Exchange> paged_script() {
  return {probe_ex(probe("t9", "c9")),
          sync_ex("t1", multi(ms({item("a.ics", "\"2\""), gone("c.ics"), item("b.ics", "\"2\"")},
                                 "t2", true))),
          multiget_ex({"a.ics"}, multi(ms({fetched("a.ics", "\"2\"")}))),
          multiget_ex({"b.ics"}, multi(ms({fetched("b.ics", "\"2\"")}))),
          sync_ex("t2", multi(ms({item("d.ics", "\"1\"")}, "t3"))),
          multiget_ex({"d.ics"}, multi(ms({fetched("d.ics", "\"1\"")})))};
}

MemorySink paged_sink() {
  return sink_with("t1", "c1", {{"a.ics", "\"1\""}, {"b.ics", "\"1\""}, {"c.ics", "\"1\""}});
}

TEST(CaldavSyncFailures, TransportFailsAtEveryStep) {
  const auto script = paged_script();
  {
    MemorySink sink = paged_sink();
    sync_fsm fsm(options(1), sink);
    auto run = drive(fsm, script);
    ASSERT_EQ(run.last.kind, Action::Kind::done);
    ASSERT_EQ(sink.commits.size(), 3u);
  }
  for (std::size_t i = 0; i < script.size(); ++i) {
    SCOPED_TRACE("failing request " + std::to_string(i));
    MemorySink sink = paged_sink();
    sync_fsm fsm(options(1), sink);
    auto run = drive(fsm, script, i);
    ASSERT_EQ(run.last.kind, Action::Kind::error);
    EXPECT_EQ(run.requests.size(), i + 1);
    EXPECT_EQ(run.last.error.code, Errc::transport);
    EXPECT_EQ(run.last.error.retry, RetryClass::retry_later);
    EXPECT_NE(run.last.error.message.find("operation timed out"), std::string::npos);
    EXPECT_EQ(fsm.resume({}).kind, Action::Kind::error);
    // What was committed is consistent: a token only with its page's items.
    const auto& cal = sink.calendars[kCal];
    if (cal.state.sync_token == "t1") {
      EXPECT_TRUE(cal.items.count(url("c.ics")));
    } else {
      EXPECT_EQ(cal.state.sync_token, "t2");
      EXPECT_FALSE(cal.items.count(url("c.ics")));
      EXPECT_EQ(cal.items.at(url("b.ics")).etag, "\"2\"");
    }
    // A rerun from what was committed converges on the full result.
    const std::size_t before = sink.commits.size();
    sync_fsm again(options(1), sink);
    Action a = again.resume({});
    for (int guard = 0; a.kind == Action::Kind::send && guard < 20; ++guard) {
      // Answer from the script by request: the same server, whatever the token.
      Io io;
      for (const auto& ex : script) {
        if (ex.method != a.request.method || ex.url != a.request.url) continue;
        bool match = true;
        for (const auto& s : ex.body_has)
          match = match && a.request.body.find(s) != std::string::npos;
        if (match &&
            (ex.depth.has_value() == find_header(a.request.headers, "Depth").has_value())) {
          io.response = ex.response;
          break;
        }
      }
      a = again.resume(io);
    }
    ASSERT_EQ(a.kind, Action::Kind::done) << a.error.message;
    EXPECT_GE(sink.commits.size(), before);
    const auto& end = sink.calendars[kCal];
    EXPECT_EQ(end.state.sync_token, "t3");
    EXPECT_EQ(end.items.size(), 3u);
    EXPECT_FALSE(end.items.count(url("c.ics")));
  }
}

TEST(CaldavSyncFailures, ServerErrorAtEveryStep) {
  const auto script = paged_script();
  for (std::size_t i = 0; i < script.size(); ++i) {
    SCOPED_TRACE("500 for request " + std::to_string(i));
    auto broken = script;
    broken[i].response = status(500);
    broken.resize(i + 1);
    MemorySink sink = paged_sink();
    sync_fsm fsm(options(1), sink);
    auto run = drive(fsm, broken);
    ASSERT_EQ(run.last.kind, Action::Kind::error);
    EXPECT_EQ(run.last.error.code, Errc::server_error);
    EXPECT_EQ(run.last.error.retry, RetryClass::retry_later);
  }
}

TEST(CaldavSyncFailures, SinkFailsAtEveryCommit) {
  const auto script = paged_script();
  for (std::size_t k = 0; k < 3; ++k) {
    SCOPED_TRACE("failing commit " + std::to_string(k));
    MemorySink sink = paged_sink();
    sink.fail_commit = k;
    sync_fsm fsm(options(1), sink);
    auto run = drive(fsm, script);
    ASSERT_EQ(run.last.kind, Action::Kind::error);
    EXPECT_EQ(run.last.error.code, Errc::sink);
    EXPECT_EQ(sink.commits.size(), k);
  }
}

class ThrowingSink final : public CalendarSink {
 public:
  SyncResult<StoredCalendar> stored(const std::string&) override { return StoredCalendar{}; }
  SyncResult<void> commit(const CalendarChanges&) override {
    throw std::runtime_error("disk full");
  }
};

TEST(CaldavSyncFailures, SinkExceptionStaysInside) {
  ThrowingSink sink;
  sync_fsm fsm(options(), sink);
  auto run = drive(fsm, {probe_ex(probe("t1", "c1")), sync_ex("", multi(ms({}, "t2")))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::sink);
  EXPECT_NE(run.last.error.message.find("disk full"), std::string::npos);
}

TEST(CaldavSyncFailures, ReplyOverTheLimit) {
  MemorySink sink;
  SyncOptions o = options();
  o.max_reply_bytes = 100;
  sync_fsm fsm(o, sink);
  auto run = drive(fsm, {probe_ex(probe("t1", "c1"))});
  ASSERT_EQ(run.last.kind, Action::Kind::error);
  EXPECT_EQ(run.last.error.code, Errc::xml_too_large);
}

TEST(CaldavDiscoveryFailures, TransportFailsAtEveryStep) {
  const std::vector<Exchange> script = {
      {"PROPFIND", "https://dav.example.com/", "0", {}, status(404)},
      {"PROPFIND",
       "https://dav.example.com/.well-known/caldav",
       "0",
       {},
       status(301, {{"Location", "/"}})},
      {"PROPFIND",
       "https://dav.example.com/",
       "0",
       {},
       multi(ms({ok("/",
                    "<d:current-user-principal><d:href>/alice/</d:href>"
                    "</d:current-user-principal>")}))},
      {"PROPFIND",
       "https://dav.example.com/alice/",
       "0",
       {},
       multi(ms({ok("/alice/",
                    "<c:calendar-home-set><d:href>/alice/</d:href></c:calendar-home-set>")}))},
      {"PROPFIND",
       "https://dav.example.com/alice/",
       "1",
       {},
       multi(ms(
           {ok("/alice/cal/", "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>")}))}};
  for (std::size_t i = 0; i <= script.size(); ++i) {
    SCOPED_TRACE("failing request " + std::to_string(i));
    DiscoveryOptions o;
    o.url = "https://dav.example.com/";
    discovery_fsm fsm(o);
    auto run = drive(fsm, script, i < script.size() ? std::optional<std::size_t>(i) : std::nullopt);
    if (i == script.size()) {
      ASSERT_EQ(run.last.kind, Action::Kind::done) << run.last.error.message;
      EXPECT_EQ(fsm.calendars().size(), 1u);
    } else {
      ASSERT_EQ(run.last.kind, Action::Kind::error);
      EXPECT_EQ(run.last.error.code, Errc::transport);
      EXPECT_EQ(run.requests.size(), i + 1);
    }
  }
}

}  // namespace
}  // namespace crmcap::caldav
