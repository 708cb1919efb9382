// SPDX-License-Identifier: Apache-2.0
// What a server answers to UID SEARCH and to a batch's fetches, checked and
// held within limits whatever it sends (issue 21's cases 2, 3, 5 and 7).
#include "connectors/imap/core/answers.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace crmcap::imap;

namespace {
Response parsed(const std::string& line) { return parse_response(line + "\r\n").value(); }

FetchItem body_of(std::uint32_t uid, std::string bytes, std::string part = "") {
  FetchItem f;
  f.uid = uid;
  BodySection s;
  s.section.part = std::move(part);
  s.data = std::move(bytes);
  f.sections.push_back(std::move(s));
  return f;
}
}  // namespace

TEST(ImapSearchAnswer, GivesTheUidsBelowUidnextSortedAndUnique) {
  SearchAnswer a(10, 9);
  a.add(parsed("* SEARCH 7 3 5"));
  a.add(parsed("* SEARCH 5 9"));
  const auto c = a.take();
  EXPECT_EQ(c.refused, "");
  EXPECT_EQ(c.uids, (std::vector<std::uint32_t>{3, 5, 7, 9}));
}

TEST(ImapSearchAnswer, ExpandsEsearchRanges) {
  SearchAnswer a(100, 50);
  a.add(parsed("* ESEARCH (TAG \"C5\") UID ALL 2:4,9,20:21"));
  EXPECT_EQ(a.take().uids, (std::vector<std::uint32_t>{2, 3, 4, 9, 20, 21}));
}

// Case 2: a UID beyond 32 bits is a line the parser cannot read; the
// connection fails the command (Connection::Malformed::fail), so the folder
// is never taken as empty. Here: the parser refuses the line.
TEST(ImapSearchAnswer, AUidBeyondThirtyTwoBitsIsNoAnswer) {
  EXPECT_FALSE(parse_response("* SEARCH 1 2 4294967296\r\n"));
}

// Case 3: counted before anything is expanded, so one line cannot exhaust
// memory.
TEST(ImapSearchAnswer, AnEsearchOfMoreUidsThanMessagesIsRefusedUnexpanded) {
  SearchAnswer a(4294967295u, 3);
  a.add(parsed("* ESEARCH (TAG \"x\") UID ALL 1:4294967294"));
  const auto c = a.take();
  EXPECT_NE(c.refused.find("more than the folder holds"), std::string::npos) << c.refused;
  EXPECT_TRUE(c.uids.empty());
}

TEST(ImapSearchAnswer, AnEsearchOfStarIsRefused) {
  SearchAnswer a(0, 4000);
  a.add(parsed("* ESEARCH UID ALL 1:*"));
  EXPECT_NE(a.take().refused, "");
}

TEST(ImapSearchAnswer, AHugeFolderIsStillBoundedByTheLimit) {
  SearchAnswer a(0, 4294967295u);
  a.add(parsed("* ESEARCH UID ALL 1:4294967294"));
  EXPECT_NE(a.take().refused, "");
}

TEST(ImapSearchAnswer, MoreSearchUidsThanMessagesAreRefused) {
  SearchAnswer a(100, 2);
  a.add(parsed("* SEARCH 1 2"));
  a.add(parsed("* SEARCH 3"));
  EXPECT_NE(a.take().refused, "");
}

// Case 7: the mark would move past every message still to come.
TEST(ImapSearchAnswer, AUidAtOrAboveUidnextIsRefused) {
  SearchAnswer a(4, 3);
  a.add(parsed("* SEARCH 1 2 4000000000"));
  const auto c = a.take();
  EXPECT_NE(c.refused.find("UID 4000000000, at or above the UIDNEXT 4"), std::string::npos)
      << c.refused;
  EXPECT_TRUE(c.uids.empty());
  SearchAnswer at(4, 3);
  at.add(parsed("* SEARCH 1 4"));
  EXPECT_NE(at.take().refused, "");
}

// Mail that came while the search ran (EXISTS grew) is new, not an error: it
// is left for the next pass, which sees a UIDNEXT above it.
TEST(ImapSearchAnswer, NewMailAboveUidnextIsLeftForTheNextPass) {
  SearchAnswer a(4, 3);
  a.add(parsed("* 4 EXISTS"));
  a.add(parsed("* SEARCH 1 2 3 4"));
  const auto c = a.take();
  EXPECT_EQ(c.refused, "");
  EXPECT_EQ(c.uids, (std::vector<std::uint32_t>{1, 2, 3}));
}

TEST(ImapSearchAnswer, NoUidnextChecksTheCountOnly) {
  SearchAnswer a(0, 3);
  a.add(parsed("* SEARCH 1 2 4000000000"));
  EXPECT_EQ(a.take().uids, (std::vector<std::uint32_t>{1, 2, 4000000000u}));
}

// Case 5: bytes for a UID not asked for are dropped at once.
TEST(ImapFetchedMessages, KeepsOnlyTheUidsAskedFor) {
  FetchedMessages m;
  m.expect({5, 6});
  EXPECT_TRUE(m.add(body_of(5, "five")));
  EXPECT_FALSE(m.add(body_of(7, std::string(1000, 'x'))));
  FetchItem no_uid;
  EXPECT_FALSE(m.add(std::move(no_uid)));
  EXPECT_NE(m.find(5), nullptr);
  EXPECT_EQ(m.find(6), nullptr);
  EXPECT_EQ(m.find(7), nullptr);
  auto five = m.take(5);
  ASSERT_TRUE(five);
  EXPECT_EQ(*five->item.sections.at(0).data, "five");
  // Taken: no longer asked for.
  EXPECT_FALSE(m.add(body_of(5, "again")));
}

TEST(ImapFetchedMessages, MergesItemsOfOneUidFromSeveralResponses) {
  FetchedMessages m;
  m.expect({5});
  FetchItem meta;
  meta.uid = 5;
  meta.internaldate = "17-Jul-1996 02:44:25 -0700";
  EXPECT_TRUE(m.add(std::move(meta)));
  EXPECT_TRUE(m.add(body_of(5, "header", "1")));
  EXPECT_TRUE(m.add(body_of(5, "text", "2")));
  const auto* h = m.find(5);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->item.internaldate);
  EXPECT_EQ(h->item.sections.size(), 2u);
  EXPECT_EQ(h->bytes, 10u);
}

// Case 5: one UID's bytes sent in many responses do not pile up.
TEST(ImapFetchedMessages, ASectionSentAgainReplacesTheOneHeld) {
  FetchedMessages m;
  m.expect({5});
  const std::string chunk(1 << 20, 'a');
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(m.add(body_of(5, chunk)));
  const auto* h = m.find(5);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->item.sections.size(), 1u);
  EXPECT_EQ(h->bytes, chunk.size());
  EXPECT_FALSE(h->overflowed);
}

TEST(ImapFetchedMessages, AMessagesBytesAreCapped) {
  FetchedMessages m;
  m.expect({5});
  const std::string chunk(16u << 20, 'a');
  for (int part = 1; part <= 4; ++part) EXPECT_TRUE(m.add(body_of(5, chunk, std::to_string(part))));
  EXPECT_FALSE(m.find(5)->overflowed);
  EXPECT_TRUE(m.add(body_of(5, "one byte too many", "5")));
  const auto* h = m.find(5);
  EXPECT_TRUE(h->overflowed);
  EXPECT_TRUE(h->item.sections.empty());  // nothing of it kept
  EXPECT_EQ(h->bytes, 0u);
  EXPECT_TRUE(m.add(body_of(5, "more", "6")));
  EXPECT_TRUE(m.find(5)->item.sections.empty());
}
