// SPDX-License-Identifier: Apache-2.0
// RFC 5322 date-time and the broken forms seen in real mail, to Unix seconds.
// Our own calendar arithmetic: no TZ environment, no locale, no libc time calls.
#include "parsers/mail/headers.hpp"

#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <array>

namespace crmcap::mail::detail {
namespace {

using text::to_lower;
using text::detail::is_alpha;
using text::detail::is_digit;

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (Howard Hinnant's days_from_civil algorithm).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);

constexpr bool is_leap(std::int64_t y) noexcept {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
  constexpr std::array<unsigned, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

enum class Tok : unsigned char { number, word, sign, colon, sep };

struct Token {
  Tok kind;
  char ch;                // the sign or separator character
  std::string_view text;  // number digits or word letters
  long value;             // for numbers (capped)
};

// Month from a name or prefix of at least three letters ("Jan", "January",
// "Sept"), 1..12, or 0.
// True when `w` (any case) is a prefix of the lowercase name `n`: "Sept",
// "sep" and "September" all abbreviate "september".
bool abbreviates(std::string_view w, std::string_view n) noexcept {
  if (w.size() > n.size()) return false;
  for (std::size_t k = 0; k < w.size(); ++k) {
    if (to_lower(w[k]) != n[k]) return false;
  }
  return true;
}

unsigned month_from(std::string_view w) noexcept {
  static constexpr std::array<std::string_view, 12> names = {
      "january", "february", "march",     "april",   "may",      "june",
      "july",    "august",   "september", "october", "november", "december"};
  if (w.size() < 3 || w.size() > 9) return 0;
  for (unsigned m = 0; m < 12; ++m) {
    std::string_view n = names[m];
    if (w.size() > n.size()) continue;
    bool ok = true;
    for (std::size_t k = 0; k < w.size(); ++k) {
      if (to_lower(w[k]) != n[k]) {
        ok = false;
        break;
      }
    }
    if (ok) return m + 1;
  }
  return 0;
}

bool is_weekday(std::string_view w) noexcept {
  static constexpr std::array<std::string_view, 7> names = {
      "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
  if (w.size() < 3) return false;
  for (std::string_view n : names) {
    if (abbreviates(w, n)) return true;
  }
  return false;
}

// Named zones: RFC 5322's obsolete set plus the ones mailers commonly write.
// Offsets in minutes east of UTC.
bool zone_from(std::string_view w, int* minutes) noexcept {
  struct Zone {
    std::string_view name;
    int minutes;
  };
  static constexpr std::array<Zone, 33> zones = {{
      {"ut", 0},      {"utc", 0},     {"gmt", 0},    {"z", 0},      {"est", -300}, {"edt", -240},
      {"cst", -360},  {"cdt", -300},  {"mst", -420}, {"mdt", -360}, {"pst", -480}, {"pdt", -420},
      {"akst", -540}, {"akdt", -480}, {"hst", -600}, {"ast", -240}, {"adt", -180}, {"wet", 0},
      {"west", 60},   {"bst", 60},    {"cet", 60},   {"cest", 120}, {"met", 60},   {"mest", 120},
      {"eet", 120},   {"eest", 180},  {"msk", 180},  {"ist", 330},  {"jst", 540},  {"kst", 540},
      {"hkt", 480},   {"aest", 600},  {"aedt", 660},
  }};
  if (w.size() > 4) return false;
  char lower[4];
  for (std::size_t k = 0; k < w.size(); ++k) lower[k] = to_lower(w[k]);
  const std::string_view l(lower, w.size());
  for (const Zone& z : zones) {
    if (z.name == l) {
      *minutes = z.minutes;
      return true;
    }
  }
  return false;
}

// A fixed token buffer: no date needs more tokens, it bounds the work on junk,
// and it keeps parse_date free of allocation.
struct Tokens {
  static constexpr std::size_t capacity = 48;
  std::array<Token, capacity> items;
  std::size_t count = 0;
  void push_back(const Token& t) noexcept {
    if (count < capacity) items[count++] = t;
  }
  std::size_t size() const noexcept { return count; }
  const Token& operator[](std::size_t i) const noexcept { return items[i]; }
};

void tokenize(std::string_view v, Tokens& out) {
  std::size_t i = 0;
  while (i < v.size()) {
    const char c = v[i];
    if (text::is_space(c)) {
      ++i;  // words and numbers are told apart without it
      continue;
    }
    if (c == '(') {
      // Comments ("+0000 (UTC)") carry nothing we trust over the offset.
      int depth = 0;
      while (i < v.size()) {
        const char d = v[i++];
        if (d == '\\') {
          ++i;
          continue;
        }
        if (d == '(') ++depth;
        if (d == ')' && --depth == 0) break;
      }
      out.push_back({Tok::sep, ' ', {}, 0});
    } else if (is_digit(c)) {
      const std::size_t b = i;
      long value = 0;
      while (i < v.size() && is_digit(v[i])) {
        if (value < 100000000) value = value * 10 + (v[i] - '0');
        ++i;
      }
      out.push_back({Tok::number, 0, v.substr(b, i - b), value});
    } else if (is_alpha(c)) {
      const std::size_t b = i;
      while (i < v.size() && is_alpha(v[i])) ++i;
      out.push_back({Tok::word, 0, v.substr(b, i - b), 0});
    } else if (c == '+' || c == '-') {
      out.push_back({Tok::sign, c, {}, 0});
      ++i;
    } else if (c == ':') {
      out.push_back({Tok::colon, c, {}, 0});
      ++i;
    } else {
      out.push_back({Tok::sep, c, {}, 0});
      ++i;
    }
    if (out.size() == Tokens::capacity) return;
  }
}

}  // namespace

std::optional<std::int64_t> parse_date(std::string_view value) {
  Tokens t;
  tokenize(value, t);
  const std::size_t n = t.size();

  long day = -1, month = -1, year = -1;
  int year_digits = 0;
  long hour = -1, minute = -1, second = 0;
  int zone_minutes = 0;
  bool have_zone = false;
  bool named_utc_zone = false;     // "GMT+0100": a numeric offset may follow and wins
  int ampm = 0;                    // 1 AM, 2 PM
  bool numeric_dmy_order = false;  // "15.01.2024" (day first) vs "01/15/2024"

  auto is_num = [&](std::size_t k) { return k < n && t[k].kind == Tok::number; };
  auto is_sep = [&](std::size_t k, char c) {
    return k < n && (t[k].kind == Tok::sep || t[k].kind == Tok::sign) && t[k].ch == c;
  };

  for (std::size_t i = 0; i < n; ++i) {
    const Token& tok = t[i];
    if (tok.kind == Tok::number) {
      // A time: H:M[:S][.fraction].
      if (hour < 0 && i + 2 < n && t[i + 1].kind == Tok::colon && is_num(i + 2) &&
          tok.text.size() <= 2) {
        hour = tok.value;
        minute = t[i + 2].value;
        i += 2;
        if (i + 2 < n && t[i + 1].kind == Tok::colon && is_num(i + 2)) {
          second = t[i + 2].value;
          i += 2;
          if (i + 2 < n && (is_sep(i + 1, '.') || is_sep(i + 1, ',')) && is_num(i + 2)) i += 2;
        }
        continue;
      }
      // A numeric date: Y-M-D (ISO 8601, or with '/' or '.'), D.M.Y, M/D/Y.
      if (day < 0 && month < 0 && i + 4 < n && is_num(i + 2) && is_num(i + 4) &&
          (t[i + 1].kind == Tok::sep || t[i + 1].kind == Tok::sign) && t[i + 3].ch == t[i + 1].ch &&
          (t[i + 3].kind == Tok::sep || t[i + 3].kind == Tok::sign)) {
        const char s = t[i + 1].ch;
        if (s == '-' || s == '/' || s == '.') {
          if (tok.text.size() == 4) {
            year = tok.value;
            year_digits = 4;
            month = t[i + 2].value;
            day = t[i + 4].value;
          } else {
            numeric_dmy_order = s != '/';
            const long a = tok.value;
            const long b = t[i + 2].value;
            // Whichever order the sender meant, a number over 12 is the day.
            if (a > 12 || (numeric_dmy_order && b <= 12)) {
              day = a;
              month = b;
            } else {
              month = a;
              day = b;
            }
            year = t[i + 4].value;
            year_digits = static_cast<int>(t[i + 4].text.size());
          }
          i += 4;
          continue;
        }
      }
      // A numeric zone after the time: +HHMM, -HH:MM, +HH.
      if (i > 0 && t[i - 1].kind == Tok::sign && hour >= 0 && (!have_zone || named_utc_zone)) {
        const int sign = t[i - 1].ch == '-' ? -1 : 1;
        long hh;
        long mm = 0;
        if (tok.text.size() == 4) {
          hh = tok.value / 100;
          mm = tok.value % 100;
        } else if (tok.text.size() <= 2) {
          hh = tok.value;
          if (i + 2 < n && t[i + 1].kind == Tok::colon && is_num(i + 2) &&
              t[i + 2].text.size() == 2) {
            mm = t[i + 2].value;
            i += 2;
          }
        } else {
          continue;  // junk
        }
        if (hh <= 23 && mm <= 59) {
          zone_minutes = static_cast<int>(hh * 60 + mm) * sign;
          have_zone = true;
          named_utc_zone = false;
        }
        continue;
      }
      if (tok.text.size() >= 3) {
        if (year < 0) {
          year = tok.value;
          year_digits = static_cast<int>(tok.text.size());
        }
        continue;
      }
      if (day < 0) {
        day = tok.value;
      } else if (year < 0 && month > 0) {
        // A second small number is a two-digit year only once the month is
        // known ("15 Jan 24"); before that it is noise.
        year = tok.value;
        year_digits = static_cast<int>(tok.text.size());
      }
      continue;
    }
    if (tok.kind == Tok::word) {
      if (const unsigned m = month_from(tok.text); m != 0 && month < 0) {
        month = m;
        continue;
      }
      if (is_weekday(tok.text)) continue;
      if (hour >= 0 && tok.text.size() == 2) {
        const char a = to_lower(tok.text[0]);
        if (to_lower(tok.text[1]) == 'm' && (a == 'a' || a == 'p')) {
          ampm = a == 'a' ? 1 : 2;
          continue;
        }
      }
      if (hour >= 0 && !have_zone) {
        int z;
        if (zone_from(tok.text, &z)) {
          zone_minutes = z;
          have_zone = true;
          named_utc_zone = z == 0;
        } else if (tok.text.size() == 1) {
          // Military zones: RFC 5322 4.3 says their sign was used backwards so
          // often that they mean -0000, unknown; we take UTC.
          have_zone = true;
        }
      }
      continue;  // ordinals ("15th"), 'T' of ISO 8601, "at", unknown words
    }
  }

  if (day < 0 || month < 0 || year < 0) return std::nullopt;
  if (year_digits <= 2) {
    year += year < 50 ? 2000 : 1900;  // RFC 5322 4.3
  } else if (year_digits == 3) {
    year += 1900;
  }
  if (year < 1900 || year > 9999 || month < 1 || month > 12 || day < 1) return std::nullopt;
  if (day > static_cast<long>(days_in_month(year, static_cast<unsigned>(month))))
    return std::nullopt;
  if (hour < 0) {
    hour = 0;  // a date without a time: midnight
    minute = 0;
  }
  if (ampm != 0) {
    if (hour < 1 || hour > 12) return std::nullopt;
    if (ampm == 1 && hour == 12) hour = 0;
    if (ampm == 2 && hour != 12) hour += 12;
  }
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  if (second == 60) second = 59;  // a leap second; Unix time has none
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return days * 86400 + hour * 3600 + minute * 60 + second -
         static_cast<std::int64_t>(zone_minutes) * 60;
}

}  // namespace crmcap::mail::detail
