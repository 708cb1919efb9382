// SPDX-License-Identifier: Apache-2.0
// The CalDAV multistatus parser, href rules and small protocol pieces, on
// literal XML (hostile inputs included).
#include "connectors/caldav/multistatus.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace crmcap::caldav {
namespace {

constexpr const char* kCal = "https://dav.example.com/alice/cal/";

TEST(CaldavMultistatus, RadicaleStyleWithPropstatsPerStatus) {
  const std::string xml = R"(<?xml version="1.0" encoding="utf-8"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/">
  <response>
    <href>/alice/cal/</href>
    <propstat><prop><resourcetype><collection/><C:calendar/></resourcetype>
      <CS:getctag>"ctag-1"</CS:getctag><sync-token>http://radicale.org/ns/sync/abc</sync-token>
      <supported-report-set><supported-report><report><expand-property/></report></supported-report>
        <supported-report><report><sync-collection/></report></supported-report>
        <supported-report><report><C:calendar-multiget/></report></supported-report></supported-report-set>
      </prop><status>HTTP/1.1 200 OK</status></propstat>
    <propstat><prop><displayname/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
  </response>
</multistatus>)";
  auto ms = parse_multistatus(xml, kCal);
  ASSERT_TRUE(ms) << ms.error().message;
  ASSERT_EQ(ms->responses.size(), 1u);
  const auto& r = ms->responses[0];
  EXPECT_EQ(r.href, "/alice/cal/");
  EXPECT_EQ(r.url, "https://dav.example.com/alice/cal/");
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.props.collection);
  EXPECT_TRUE(r.props.calendar);
  EXPECT_EQ(r.props.ctag, "\"ctag-1\"");
  EXPECT_EQ(r.props.sync_token, "http://radicale.org/ns/sync/abc");
  EXPECT_TRUE(r.props.sync_collection);
  ASSERT_TRUE(r.props.reports);
  EXPECT_EQ(r.props.reports->size(), 3u);
  EXPECT_EQ((*r.props.reports)[2], "{urn:ietf:params:xml:ns:caldav}calendar-multiget");
  EXPECT_FALSE(r.props.display_name);
  ASSERT_EQ(r.props.missing.size(), 1u);
  EXPECT_EQ(r.props.missing[0].name, "displayname");
  EXPECT_EQ(r.props.missing[0].status, 404);
  EXPECT_TRUE(holds_events(r.props));  // no component set: holds everything
}

TEST(CaldavMultistatus, OddPrefixesAndUnrelatedSameNames) {
  // "DAV:" under prefix x, CalDAV under "D" (!), and a getetag in another
  // namespace that must be ignored.
  const std::string xml = R"(<x:multistatus xmlns:x="DAV:" xmlns:D="urn:ietf:params:xml:ns:caldav"
      xmlns:o="http://example.com/other">
  <x:response><x:href>ev1.ics</x:href>
    <x:propstat><x:prop><o:getetag>wrong</o:getetag><x:getetag> "e1" </x:getetag>
      <D:calendar-data>BEGIN:VCALENDAR&#13;
END:VCALENDAR&#13;
</D:calendar-data></x:prop><x:status>HTTP/1.1 200 OK</x:status></x:propstat>
  </x:response>
</x:multistatus>)";
  auto ms = parse_multistatus(xml, kCal);
  ASSERT_TRUE(ms) << ms.error().message;
  ASSERT_EQ(ms->responses.size(), 1u);
  const auto& r = ms->responses[0];
  EXPECT_EQ(r.url, "https://dav.example.com/alice/cal/ev1.ics");
  EXPECT_EQ(r.props.etag, "\"e1\"");
  EXPECT_EQ(r.props.calendar_data, "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n");
}

TEST(CaldavMultistatus, CdataCalendarData) {
  const std::string xml = R"(<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:response><d:href>/alice/cal/a.ics</d:href><d:propstat><d:prop>
  <c:calendar-data><![CDATA[BEGIN:VCALENDAR
SUMMARY:a <b> & c
END:VCALENDAR
]]></c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>)";
  auto ms = parse_multistatus(xml, kCal);
  ASSERT_TRUE(ms) << ms.error().message;
  EXPECT_EQ(ms->responses.at(0).props.calendar_data,
            "BEGIN:VCALENDAR\nSUMMARY:a <b> & c\nEND:VCALENDAR\n");
}

TEST(CaldavMultistatus, SyncPageWithDeletedEntriesTokenAndTruncation) {
  const std::string xml = R"(<?xml version="1.0"?>
<D:multistatus xmlns:D="DAV:">
  <D:response><D:href>/alice/cal/new.ics</D:href>
    <D:propstat><D:prop><D:getetag>W/"n1"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response><D:href>/alice/cal/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
  <D:response><D:href>/alice/cal/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status>
    <D:error><D:number-of-matches-within-limits/></D:error></D:response>
  <D:sync-token>tok-2</D:sync-token>
</D:multistatus>)";
  auto ms = parse_multistatus(xml, kCal);
  ASSERT_TRUE(ms) << ms.error().message;
  EXPECT_TRUE(ms->truncated);
  EXPECT_EQ(ms->sync_token, "tok-2");
  ASSERT_EQ(ms->responses.size(), 2u);
  EXPECT_EQ(ms->responses[0].props.etag, "W/\"n1\"");
  EXPECT_EQ(ms->responses[1].status, 404);
  EXPECT_EQ(ms->responses[1].url, "https://dav.example.com/alice/cal/gone.ics");
}

TEST(CaldavMultistatus, DiscoveryProperties) {
  const std::string xml = R"(<multistatus xmlns="DAV:">
 <response><href>/</href><propstat><prop>
   <current-user-principal><href>/alice/</href></current-user-principal>
   <C:calendar-home-set xmlns:C="urn:ietf:params:xml:ns:caldav"><href>cals/</href><href>https://DAV.example.com:443/shared/</href></C:calendar-home-set>
 </prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/alice/tasks/</href><propstat><prop>
   <displayname>Tasks</displayname>
   <resourcetype><collection/><calendar xmlns="urn:ietf:params:xml:ns:caldav"/></resourcetype>
   <supported-calendar-component-set xmlns="urn:ietf:params:xml:ns:caldav"><comp name="vtodo"/></supported-calendar-component-set>
 </prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/alice/work/</href><propstat><prop>
   <resourcetype><collection/><calendar xmlns="urn:ietf:params:xml:ns:caldav"/></resourcetype>
   <supported-calendar-component-set xmlns="urn:ietf:params:xml:ns:caldav"><comp name="VEVENT"/><comp name="VTODO"/></supported-calendar-component-set>
 </prop><status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>)";
  auto ms = parse_multistatus(xml, "https://dav.example.com/");
  ASSERT_TRUE(ms) << ms.error().message;
  ASSERT_EQ(ms->responses.size(), 3u);
  const auto& root = ms->responses[0].props;
  EXPECT_EQ(root.current_user_principal, "https://dav.example.com/alice/");
  ASSERT_EQ(root.calendar_home_set.size(), 2u);
  EXPECT_EQ(root.calendar_home_set[0], "https://dav.example.com/cals/");
  EXPECT_EQ(root.calendar_home_set[1], "https://dav.example.com/shared/");
  EXPECT_FALSE(root.has_resourcetype);
  EXPECT_EQ(ms->responses[1].props.display_name, "Tasks");
  EXPECT_TRUE(ms->responses[1].props.calendar);
  EXPECT_FALSE(holds_events(ms->responses[1].props));
  EXPECT_TRUE(holds_events(ms->responses[2].props));
}

TEST(CaldavMultistatus, StatusFormWithSeveralHrefs) {
  const std::string xml = R"(<d:multistatus xmlns:d="DAV:"><d:response>
  <d:href>/alice/cal/a.ics</d:href><d:href>/alice/cal/b.ics</d:href>
  <d:status>HTTP/1.1 404 Not Found</d:status></d:response></d:multistatus>)";
  auto ms = parse_multistatus(xml, kCal);
  ASSERT_TRUE(ms);
  ASSERT_EQ(ms->responses.size(), 2u);
  EXPECT_EQ(ms->responses[1].url, "https://dav.example.com/alice/cal/b.ics");
  EXPECT_EQ(ms->responses[1].status, 404);
}

TEST(CaldavMultistatus, EmptyMultistatus) {
  auto ms = parse_multistatus(R"(<multistatus xmlns="DAV:"/>)", kCal);
  ASSERT_TRUE(ms);
  EXPECT_TRUE(ms->responses.empty());
  EXPECT_FALSE(ms->truncated);
  EXPECT_FALSE(ms->sync_token);
}

// --- hostile and broken input

void expect_error(const std::string& xml, Errc code, const ParseLimits& limits = {}) {
  auto ms = parse_multistatus(xml, kCal, limits);
  ASSERT_FALSE(ms) << xml.substr(0, 80);
  EXPECT_EQ(ms.error().code, make_error_code(code)) << ms.error().message;
}

TEST(CaldavMultistatusHostile, BillionLaughsIsRefused) {
  std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n";
  for (int i = 1; i < 10; ++i) {
    xml += "<!ENTITY lol" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j)
      xml += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
    xml += "\">\n";
  }
  xml += "]>\n<multistatus xmlns=\"DAV:\"><response><href>&lol9;</href></response></multistatus>";
  expect_error(xml, Errc::xml_dtd);
}

TEST(CaldavMultistatusHostile, ExternalEntityIsRefused) {
  expect_error(R"(<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<multistatus xmlns="DAV:"><response><href>&xxe;</href></response></multistatus>)",
               Errc::xml_dtd);
  expect_error(R"(<!DOCTYPE multistatus SYSTEM "http://127.0.0.1:1/evil.dtd">
<multistatus xmlns="DAV:"/>)",
               Errc::xml_dtd);
  expect_error("<!DOCTYPE multistatus><multistatus xmlns=\"DAV:\"/>", Errc::xml_dtd);
}

TEST(CaldavMultistatusHostile, UndeclaredEntityIsMalformed) {
  expect_error(R"(<multistatus xmlns="DAV:"><response><href>&xxe;</href></response></multistatus>)",
               Errc::xml_malformed);
}

TEST(CaldavMultistatusHostile, HugeIsRefusedUnread) {
  std::string xml = "<multistatus xmlns=\"DAV:\">";
  xml.append(2000, ' ');
  xml += "</multistatus>";
  ParseLimits limits;
  limits.max_bytes = 1024;
  expect_error(xml, Errc::xml_too_large, limits);
  limits.max_bytes = xml.size();
  EXPECT_TRUE(parse_multistatus(xml, kCal, limits));
}

TEST(CaldavMultistatusHostile, TruncatedAtEveryByteFailsCleanly) {
  const std::string xml = R"(<d:multistatus xmlns:d="DAV:"><d:response><d:href>/a.ics</d:href>
<d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status>
</d:propstat></d:response><d:sync-token>t</d:sync-token></d:multistatus>)";
  ASSERT_TRUE(parse_multistatus(xml, kCal));
  for (std::size_t n = 0; n < xml.size(); ++n) {
    auto ms = parse_multistatus(xml.substr(0, n), kCal);
    EXPECT_FALSE(ms) << n;
  }
}

TEST(CaldavMultistatusHostile, DeepNestingFails) {
  std::string xml = "<multistatus xmlns=\"DAV:\">";
  for (int i = 0; i < 5000; ++i) xml += "<a>";
  for (int i = 0; i < 5000; ++i) xml += "</a>";
  xml += "</multistatus>";
  expect_error(xml, Errc::xml_malformed);
}

TEST(CaldavMultistatusHostile, WrongRootOrNamespace) {
  expect_error("<multistatus/>", Errc::xml_not_multistatus);
  expect_error("<html><body>Bad gateway</body></html>", Errc::xml_not_multistatus);
  expect_error("", Errc::xml_malformed);
  expect_error("not xml at all", Errc::xml_malformed);
}

TEST(CaldavMultistatusHostile, BadHrefIsSkippedAndCounted) {
  auto ms = parse_multistatus(R"(<multistatus xmlns="DAV:">
    <response><href>http://[bad</href><status>HTTP/1.1 200 OK</status></response>
    <response><href>ok.ics</href><status>HTTP/1.1 200 OK</status></response></multistatus>)",
                              kCal);
  ASSERT_TRUE(ms);
  EXPECT_EQ(ms->bad_hrefs, 1u);
  ASSERT_EQ(ms->responses.size(), 1u);
}

TEST(CaldavDavError, Preconditions) {
  EXPECT_EQ(parse_dav_error(
                R"(<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>)"),
            std::vector<std::string>{"{DAV:}valid-sync-token"});
  EXPECT_TRUE(parse_dav_error("").empty());
  EXPECT_TRUE(parse_dav_error("<html/>").empty());
  EXPECT_TRUE(
      parse_dav_error("<!DOCTYPE e><error xmlns=\"DAV:\"><valid-sync-token/></error>").empty());
}

TEST(CaldavStatusLine, Codes) {
  EXPECT_EQ(parse_status_line("HTTP/1.1 404 Not Found"), 404);
  EXPECT_EQ(parse_status_line("HTTP/1.1 200"), 200);
  EXPECT_EQ(parse_status_line("HTTP/1.1 2000 OK"), 0);
  EXPECT_EQ(parse_status_line("garbage"), 0);
  EXPECT_EQ(parse_status_line(""), 0);
}

// --- hrefs

TEST(CaldavHref, PercentDecodedAndResolvedCompareEqual) {
  auto a = canonical_url(kCal, "/alice/cal/a%40b%20c.ics");
  auto b = canonical_url(kCal, "a@b c.ics");
  auto c = canonical_url("HTTPS://Dav.Example.com:443/alice/x/", "../cal/./a%40b%20c.ics#frag");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  EXPECT_EQ(url_path(*a), "/alice/cal/a@b%20c.ics");
  // An encoded slash stays inside its segment.
  auto d = canonical_url(kCal, "x%2Fy.ics");
  ASSERT_TRUE(d);
  EXPECT_NE(*d, *canonical_url(kCal, "x/y.ics"));
  EXPECT_FALSE(canonical_url("/relative/base", "x.ics"));
  // The root stays "/" (Boost 1.81's set_encoded_path("/") gives "/./").
  EXPECT_EQ(*canonical_url("https://h.example", ""), "https://h.example/");
  EXPECT_EQ(*canonical_url("https://h.example/a/", "/"), "https://h.example/");
  EXPECT_EQ(*canonical_url("http://h.example:80/a/", "b?x=1"), "http://h.example/a/b?x=1");
}

TEST(CaldavHref, Redirects) {
  EXPECT_TRUE(redirect_allowed("http://h/.well-known/caldav", "http://h/"));
  EXPECT_TRUE(redirect_allowed("http://h/.well-known/caldav", "https://h/dav/"));
  EXPECT_TRUE(redirect_allowed("https://h:8443/a", "https://H:8443/b"));
  EXPECT_FALSE(redirect_allowed("https://h/a", "http://h/a"));
  EXPECT_FALSE(redirect_allowed("https://h/a", "https://evil/a"));
  EXPECT_FALSE(redirect_allowed("https://h/a", "https://h:8443/a"));
  EXPECT_FALSE(redirect_allowed("https://h/a", "ftp://h/a"));
}

TEST(CaldavEtag, WeakComparisonAndContentHash) {
  EXPECT_TRUE(etag_equal("W/\"1\"", "\"1\""));
  EXPECT_TRUE(etag_equal("\"1\"", "\"1\""));
  EXPECT_FALSE(etag_equal("\"1\"", "\"2\""));
  EXPECT_EQ(content_etag("abc"), content_etag("abc"));
  EXPECT_NE(content_etag("abc"), content_etag("abd"));
  EXPECT_EQ(content_etag("").rfind("crmcap-fnv1a64:", 0), 0u);
}

TEST(CaldavRetryAfter, SecondsDatesAndClamp) {
  using namespace std::chrono;
  // Sun, 06 Nov 1994 08:49:37 GMT
  const system_clock::time_point now = sys_days{1994y / November / 6} + 8h + 49min + 7s;
  EXPECT_EQ(parse_retry_after("120", now), now + 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", now), now + kMinRetryAfter);
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), now + kMaxRetryAfter);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), now + 30s);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), now + 30s);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), now + 30s);
  EXPECT_EQ(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), now + kMinRetryAfter);
  EXPECT_EQ(parse_retry_after("Fri, 06 Nov 2099 08:49:37 GMT", now), now + kMaxRetryAfter);
  // Past what system_clock holds (found by fuzz_multistatus): clamped, no overflow.
  EXPECT_EQ(parse_retry_after("Sun, 06 Dec 4052 20:00:00 GMT", now), now + kMaxRetryAfter);
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), now + kMaxRetryAfter);
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("Sun, 31 Feb 1994 08:49:37 GMT", now));
}

TEST(CaldavBodies, EscapedAndWellFormed) {
  const auto body = sync_collection_body("a<&>\"b");
  EXPECT_NE(body.find("<d:sync-token>a&lt;&amp;&gt;&quot;b</d:sync-token>"), std::string::npos);
  EXPECT_NE(sync_collection_body("").find("<d:sync-token/>"), std::string::npos);
  EXPECT_EQ(sync_collection_body("").find("limit"), std::string::npos);
  const auto mg = multiget_body({"/a/b.ics", "/a/c&d.ics"});
  EXPECT_NE(mg.find("<d:href>/a/c&amp;d.ics</d:href>"), std::string::npos);
}

}  // namespace
}  // namespace crmcap::caldav
