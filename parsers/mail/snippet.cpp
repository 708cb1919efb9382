// SPDX-License-Identifier: Apache-2.0
#include "parsers/mail/snippet.hpp"

#include "parsers/text/text.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

namespace crmcap::mail::detail {
namespace {

// A line without its surrounding whitespace, nor the non-breaking spaces
// (U+00A0) that often pad lines converted from HTML.
std::string_view trim_line(std::string_view s) {
  s = text::trim(s);
  while (s.size() >= 2 && s.substr(0, 2) == "\u00a0") s.remove_prefix(2);
  while (s.size() >= 2 && s.substr(s.size() - 2) == "\u00a0") s.remove_suffix(2);
  return s;
}

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return s.starts_with(p); });
}

bool contains_any(std::string_view s, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return s.find(n) != std::string_view::npos; });
}

// Lowers ASCII letters and drops '*' into `out` (reused across lines): Outlook
// and Word render bold header labels as "*From:*" in text.
void lower_without_stars(std::string_view s, std::string& out) {
  out.clear();
  for (char c : s) {
    if (c == '*') continue;
    out.push_back(text::to_lower(c));
  }
}

// Verbs of the reply attribution line in the languages we meet most.
bool has_attribution_verb(std::string_view l) {
  return contains_any(l, {"wrote", "writes", "schrieb", "a \u00e9crit", "escribi\u00f3",
                          "ha scritto", "schreef", "escreveu", "skrev", "napisa\u0142",
                          "\u043d\u0430\u043f\u0438\u0441\u0430\u043b",  // написал
                          "\u043f\u0438\u0448\u0435\u0442",              // пишет
                          "kirjoitti", "\u5199\u9053"});                 // 写道
}

// "On <date>, <name> wrote:" and friends, given the lowered, trimmed text of one
// line or of a line joined with its continuation.
bool is_attribution(std::string_view l) {
  if (l.empty() || l.back() != ':') return false;
  if (l.size() > 400) return false;
  if (!has_attribution_verb(l)) return false;
  // A date, an address or an opener word tells the attribution from prose such
  // as "Here is what she wrote:".
  const bool opener = starts_with_any(
      l, {"on ", "am ", "le ", "el ", "il ", "op ", "em ", "den ", "p\u00e5 ", "w dniu ", "dnia "});
  const bool has_digit =
      std::any_of(l.begin(), l.end(), [](char c) { return c >= '0' && c <= '9'; });
  const bool has_at = l.find('@') != std::string_view::npos;
  return opener || (has_digit && has_at);
}

bool is_original_message_marker(std::string_view l) {
  if (l.empty()) return false;
  if (l.front() == '-') {
    std::string_view core = l;
    while (!core.empty() && (core.front() == '-' || core.front() == ' ')) core.remove_prefix(1);
    while (!core.empty() && (core.back() == '-' || core.back() == ' ')) core.remove_suffix(1);
    return contains_any(core,
                        {"original message", "urspr\u00fcngliche nachricht", "message d'origine",
                         "mensaje original", "messaggio originale", "oorspronkelijk bericht",
                         "mensagem original", "forwarded message", "weitergeleitete nachricht",
                         "message transf\u00e9r\u00e9", "original-nachricht"});
  }
  return starts_with_any(l, {"begin forwarded message:", "anfang der weitergeleiteten nachricht:",
                             "d\u00e9but du message r\u00e9exp\u00e9di\u00e9"});
}

bool is_from_label(std::string_view l) {
  return starts_with_any(
      l, {"from:", "von:", "de :", "de:", "da:", "van:", "fra:", "od:", "\u043e\u0442:"});  // от:
}

bool is_sent_label(std::string_view l) {
  return starts_with_any(
      l, {"sent:", "date:", "gesendet:", "datum:", "envoy\u00e9 :", "envoy\u00e9:", "enviado el:",
          "enviado:", "fecha:", "inviato:", "data:", "verzonden:", "sendt:", "skickat:",
          "wys\u0142ano:",
          "\u043e\u0442\u043f\u0440\u0430\u0432\u043b\u0435\u043d\u043e:"});  // отправлено:
}

bool is_underscore_separator(std::string_view l) {
  return l.size() >= 10 && std::all_of(l.begin(), l.end(), [](char c) { return c == '_'; });
}

bool is_mobile_signature(std::string_view l) {
  return starts_with_any(
      l,
      {"sent from my ", "sent from outlook", "get outlook for ", "sent from mail for windows",
       "sent from yahoo mail", "sent from samsung", "sent from proton mail", "sent via ",
       "von meinem iphone gesendet", "von meinem ipad gesendet", "von meinem mobiltelefon gesendet",
       "envoy\u00e9 de mon ", "enviado desde mi ", "inviato da "});
}

bool is_sign_off(std::string_view l) {
  while (!l.empty() && (l.back() == ',' || l.back() == '.' || l.back() == '!' || l.back() == ' ' ||
                        l.back() == '-')) {
    l.remove_suffix(1);
  }
  if (l.empty()) return false;
  static constexpr std::string_view sign_offs[] = {
      "best regards",
      "kind regards",
      "regards",
      "warm regards",
      "warmest regards",
      "best wishes",
      "thanks",
      "thank you",
      "thanks again",
      "many thanks",
      "thanks in advance",
      "thanks so much",
      "thank you very much",
      "cheers",
      "best",
      "all the best",
      "sincerely",
      "yours sincerely",
      "yours truly",
      "br",
      "rgds",
      "mit freundlichen gr\u00fc\u00dfen",
      "mit freundlichen gruessen",
      "mit freundlichem gru\u00df",
      "viele gr\u00fc\u00dfe",
      "beste gr\u00fc\u00dfe",
      "liebe gr\u00fc\u00dfe",
      "gru\u00df",
      "gr\u00fc\u00dfe",
      "cordialement",
      "bien cordialement",
      "bien \u00e0 vous",
      "salutations",
      "saludos",
      "un saludo",
      "atentamente",
      "cordiali saluti",
      "saluti",
      "met vriendelijke groet",
      "met vriendelijke groeten",
      "groeten",
      "mvg",
      "atenciosamente",
      "abra\u00e7os",
      "med v\u00e4nlig h\u00e4lsning",
      "vennlig hilsen",
      "med venlig hilsen",
      "pozdrawiam",
      "\u0421 \u0443\u0432\u0430\u0436\u0435\u043d\u0438\u0435\u043c",   // С уважением
      "\u0441 \u0443\u0432\u0430\u0436\u0435\u043d\u0438\u0435\u043c"};  // с уважением
  return std::find(std::begin(sign_offs), std::end(sign_offs), l) != std::end(sign_offs);
}

std::vector<std::string_view> split_lines(std::string_view body) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= body.size()) {
    const std::size_t nl = body.find('\n', start);
    std::string_view line =
        body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return lines;
}

// A lower bound of the code points `line` adds to the folded text: its bytes
// that start one, leaving out spaces and controls (folded away), the bytes
// after a lead byte, and a no-break space (U+00A0 folds like a space).
std::size_t kept_chars(std::string_view line) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c <= 0x20 || (c >= 0x80 && c <= 0xBF)) continue;
    if (c == 0xC2 && i + 1 < line.size() && static_cast<unsigned char>(line[i + 1]) == 0xA0) {
      ++i;
      continue;
    }
    ++n;
  }
  return n;
}

}  // namespace

std::string strip_quotes_and_signature(std::string_view body, std::size_t enough) {
  const std::vector<std::string_view> lines = split_lines(body);
  std::string out;
  out.reserve(std::min<std::size_t>(body.size(), 1u << 16));
  bool have_content = false;
  std::size_t kept = 0;
  std::string l, next_lowered;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view raw = lines[i];
    const std::string_view t = trim_line(raw);
    if (!t.empty() && t.front() == '>') continue;          // a quoted line, wherever it is
    if (raw == "-- " || raw == "--" || t == "-- ") break;  // RFC 3676 signature separator
    lower_without_stars(t, l);
    if (is_original_message_marker(l) || is_underscore_separator(l) || is_mobile_signature(l)) {
      break;
    }
    if (is_attribution(l)) break;
    // Attributions wrapped by the sender's client over two or three lines.
    if (!l.empty() && l.back() != ':' && l.size() < 200 &&
        (starts_with_any(l, {"on ", "am ", "le ", "el ", "il ", "op ", "em ", "den "}) ||
         l.find('@') != std::string::npos)) {
      std::string joined = l;
      bool found = false;
      for (std::size_t j = i + 1; j < lines.size() && j <= i + 2; ++j) {
        const std::string_view next = trim_line(lines[j]);
        if (next.empty()) break;
        joined += ' ';
        // ASCII-only lowering: the markers are matched on their ASCII
        // letters; non-ASCII letters in them are written in the case mail
        // clients use.
        joined += text::to_lower_copy(next);
        if (is_attribution(joined)) {
          found = true;
          break;
        }
      }
      if (found) break;
    }
    if (is_from_label(l)) {
      if (l.find(" sent: ") != std::string::npos || l.find(" gesendet: ") != std::string::npos) {
        break;  // the header block flattened into one line by an HTML conversion
      }
      bool block = false;
      for (std::size_t j = i + 1, seen = 0; j < lines.size() && seen < 5; ++j) {
        const std::string_view next = trim_line(lines[j]);
        if (next.empty()) continue;
        ++seen;
        lower_without_stars(next, next_lowered);
        if (is_sent_label(next_lowered)) {
          block = true;
          break;
        }
      }
      if (block) break;
    }
    // A sign-off ends the new text, but only after some text: a message that is
    // just "Thanks!" keeps it.
    if (have_content && t.size() <= 40 && is_sign_off(l)) break;
    if (!t.empty()) have_content = true;
    out.append(raw);
    out.push_back('\n');
    kept += kept_chars(raw);
    if (kept > enough) break;
  }
  return out;
}

std::string make_snippet(std::string_view body, std::size_t max_chars) {
  // Past max_chars kept characters the cut is known: truncate_utf8 looks only
  // at the first max_chars + 1 of them.
  return text::truncate_utf8(text::fold_whitespace(strip_quotes_and_signature(body, max_chars)),
                             max_chars);
}

}  // namespace crmcap::mail::detail
