// SPDX-License-Identifier: Apache-2.0
// Tests of the date reader (parsers/mail/headers.hpp).
#include "parsers/mail/headers.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

using crmcap::mail::detail::parse_date;

// 2024-01-15 10:20:30 UTC.
constexpr std::int64_t t0 = 1705314030;

TEST(DateRfc5322, StandardForms) {
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 11:20:30 +0100"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 05:20:30 -0500"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 15:50:30 +0530"), t0);
  EXPECT_EQ(parse_date("15 Jan 2024 10:20:30 +0000"), t0);         // no weekday
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20 +0000"), t0 - 30);  // no seconds
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 -0000"), t0);
  EXPECT_EQ(parse_date("  Mon,\r\n 15 Jan 2024\t10:20:30 +0000  "), t0);
}

TEST(DateRfc5322, EpochAndCalendarEdges) {
  EXPECT_EQ(parse_date("Thu, 1 Jan 1970 00:00:00 +0000"), 0);
  EXPECT_EQ(parse_date("Wed, 31 Dec 1969 23:59:59 +0000"), -1);
  EXPECT_EQ(parse_date("29 Feb 2024 00:00:00 +0000"), 1709164800);
  EXPECT_EQ(parse_date("29 Feb 2000 00:00:00 +0000"), 951782400);
  EXPECT_EQ(parse_date("29 Feb 2023 00:00:00 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("29 Feb 1900 00:00:00 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("31 Dec 2099 23:59:59 +0000"), 4102444799);
  EXPECT_EQ(parse_date("Tue, 19 Jan 2038 03:14:08 +0000"), 2147483648);  // past 32 bits
  // A leap second is read as :59.
  EXPECT_EQ(parse_date("31 Dec 2016 23:59:60 +0000"), 1483228799);
  // Date crossing by the offset.
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 00:30:00 +0100"), t0 - 10 * 3600 - 20 * 60 - 30 - 1800);
}

TEST(DateRfc5322, NamedZones) {
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 GMT"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 UT"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 UTC"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 05:20:30 EST"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 06:20:30 EDT"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 02:20:30 PST"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 03:20:30 pdt"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 11:20:30 CET"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 Z"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 A"), t0);    // military: taken as UTC
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 XYZ"), t0);  // unknown: UTC
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 +0000 (UTC)"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 11:20:30 +0100 (CET)"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 11:20:30 GMT+0100"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 11:20:30 GMT+01:00"), t0);
}

TEST(DateBroken, TwoAndThreeDigitYears) {
  EXPECT_EQ(parse_date("Mon, 15 Jan 24 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("Fri, 15 Jan 99 10:20:30 +0000"), 916395630);
  EXPECT_EQ(parse_date("Mon, 15 Jan 124 10:20:30 +0000"), t0);
}

TEST(DateBroken, OtherCommonForms) {
  EXPECT_EQ(parse_date("Mon, 15-Jan-2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("Monday, 15 January 2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("Monday, January 15, 2024 10:20:30 AM +0000"), t0);
  EXPECT_EQ(parse_date("January 15, 2024 10:20:30 PM GMT"), t0 + 12 * 3600);
  EXPECT_EQ(parse_date("15 Jan 2024 12:05 AM +0000"), 1705277100);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30.123 +0000"), t0);
  EXPECT_EQ(parse_date("Mon 15 Jan 2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("Mon,15 Jan 2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("15 Jan 2024"), 1705276800);  // no time: midnight UTC
  EXPECT_EQ(parse_date("Mon, 15th Jan 2024 10:20:30 +0000"), t0);
  EXPECT_EQ(parse_date("15.01.2024 11:20:30 +0100"), t0);
  EXPECT_EQ(parse_date("01/15/2024 10:20:30"), t0);
  EXPECT_EQ(parse_date("2024/01/15 10:20:30"), t0);
}

TEST(DateBroken, Iso8601) {
  EXPECT_EQ(parse_date("2024-01-15T10:20:30Z"), t0);
  EXPECT_EQ(parse_date("2024-01-15T11:20:30+01:00"), t0);
  EXPECT_EQ(parse_date("2024-01-15 05:20:30-0500"), t0);
  EXPECT_EQ(parse_date("2024-01-15T10:20:30.5Z"), t0);
  EXPECT_EQ(parse_date("2024-01-15T10:20:30"), t0);
}

TEST(DateBroken, Asctime) {
  EXPECT_EQ(parse_date("Mon Jan 15 10:20:30 2024"), t0);
  EXPECT_EQ(parse_date("Mon Jan 15 05:20:30 EST 2024"), t0);
  EXPECT_EQ(parse_date("Mon Jan  5 10:20:30 2024"), t0 - 10 * 86400);
}

TEST(DateBroken, Unreadable) {
  EXPECT_EQ(parse_date(""), std::nullopt);
  EXPECT_EQ(parse_date("yesterday"), std::nullopt);
  EXPECT_EQ(parse_date("Mon, 15 Foo 2024 10:20:30 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("Mon, 32 Jan 2024 10:20:30 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 25:20:30 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:61:30 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("Mon, 15 Jan 10:20:30 +0000"), std::nullopt);  // no year
  EXPECT_EQ(parse_date("Mon, 0 Jan 2024 10:20:30 +0000"), std::nullopt);
  EXPECT_EQ(parse_date("15 Jan 99999999999999999999 10:20:30"), std::nullopt);
  EXPECT_EQ(parse_date("15 Jan 1850 10:20:30"), std::nullopt);
}

TEST(DateBroken, BadZoneIsIgnored) {
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 +9999"), t0);
  EXPECT_EQ(parse_date("Mon, 15 Jan 2024 10:20:30 +123456"), t0);
}

TEST(DateRobustness, RandomInputNeverBreaks) {
  std::mt19937 rng(1970);
  static const std::string alphabet = "0123456789 ,:+-./()JanFebMonGMTESTZAPMT\\\xFF";
  std::uniform_int_distribution<std::size_t> len(0, 60);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 50000; ++i) {
    std::string s(len(rng), ' ');
    for (char& c : s) c = alphabet[pick(rng)];
    const auto d = parse_date(s);
    if (d) {
      ASSERT_GE(*d, -2208988800 - 100 * 3600) << s;  // 1900, less a day of offset
      ASSERT_LE(*d, 253402300799 + 100 * 3600) << s;
    }
  }
}

}  // namespace
