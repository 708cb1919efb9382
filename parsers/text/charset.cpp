// SPDX-License-Identifier: Apache-2.0
// Charset conversion to UTF-8: fast paths for UTF-8, ASCII and Latin-1/
// Windows-1252, glibc's iconv for everything else, with one cached descriptor
// per charset per thread (iconv_open loads a gconv module and is slow).
#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <iconv.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

namespace crmcap::text {
namespace {

// Windows-1252 0x80..0x9F. The five holes map to the C1 controls, as WHATWG's
// encoding standard does, so no byte is lost.
constexpr std::array<std::uint16_t, 32> cp1252_high = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

std::string from_cp1252(std::string_view bytes) {
  // At most three bytes per input byte; written through a pointer because
  // push_back per byte costs several times more on long bodies.
  std::string out(bytes.size() * 3, '\0');
  char* o = out.data();
  for (char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    std::uint32_t cp = b;
    if (b < 0x80) {
      *o++ = ch;
      continue;
    }
    if (b < 0xA0) cp = cp1252_high[b - 0x80];
    if (cp < 0x800) {
      *o++ = static_cast<char>(0xC0 | (cp >> 6));
      *o++ = static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *o++ = static_cast<char>(0xE0 | (cp >> 12));
      *o++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *o++ = static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  out.resize(static_cast<std::size_t>(o - out.data()));
  return out;
}

bool is_ascii(std::string_view s) noexcept {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// True when every byte is printable ASCII or a line-format control: such text
// means the same in every ASCII-compatible charset, the ISO-2022 family
// included (their shifts need ESC, SO or SI).
bool is_plain_ascii(std::string_view s) noexcept {
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x7F || (b < 0x20 && (b < 0x09 || b > 0x0D))) return false;
  }
  return true;
}

enum class Kind { utf8, ascii, cp1252, iso2022jp, iconv, unknown };

struct Resolved {
  Kind kind = Kind::unknown;
  std::string name;  // the name given to iconv_open
  bool ascii_compatible = false;
};

bool starts_with(std::string_view s, std::string_view p) noexcept {
  return s.substr(0, p.size()) == p;
}

// Maps a charset label (lowercase, trimmed) to how we decode it. Aliases follow
// what mail clients actually send; supersets are chosen where a label is
// commonly used for its Microsoft superset (as browsers do).
Resolved resolve(std::string_view label) {
  Resolved r;
  if (label.empty() || label.size() > 40) return r;
  for (char c : label) {
    const bool ok = detail::is_alpha(c) || detail::is_digit(c) || c == '-' || c == '_' ||
                    c == '.' || c == ':' || c == '+' || c == '(' || c == ')';
    // '/' and ',' would pass iconv flags ("//TRANSLIT") or odd module paths.
    if (!ok) return r;
  }
  auto set = [&](Kind k, std::string_view name, bool compat) {
    r.kind = k;
    r.name = std::string(name);
    r.ascii_compatible = compat;
    return r;
  };
  if (label == "utf-8" || label == "utf8" || label == "unicode-1-1-utf-8" ||
      label == "x-unicode20utf8" || label == "x-utf-8")
    return set(Kind::utf8, "UTF-8", true);
  if (label == "us-ascii" || label == "ascii" || label == "ansi_x3.4-1968" ||
      label == "iso646-us" || label == "us" || label == "cp367" || label == "ibm367" ||
      label == "csascii")
    return set(Kind::ascii, "ASCII", true);
  if (label == "iso-8859-1" || label == "iso8859-1" || label == "iso_8859-1" ||
      label == "iso_8859-1:1987" || label == "latin1" || label == "latin-1" || label == "l1" ||
      label == "cp819" || label == "ibm819" || label == "csisolatin1" || label == "iso-ir-100" ||
      label == "windows-1252" || label == "cp1252" || label == "x-cp1252" || label == "cp-1252" ||
      label == "win-1252")
    return set(Kind::cp1252, "CP1252", true);
  if (label == "x-sjis" || label == "shift_jis" || label == "shift-jis" || label == "sjis" ||
      label == "ms_kanji" || label == "csshiftjis" || label == "windows-31j" || label == "cp932" ||
      label == "ms932" || label == "x-ms-cp932")
    return set(Kind::iconv, "CP932", true);
  if (label == "ks_c_5601-1987" || label == "ks_c_5601-1989" || label == "ks_c_5601" ||
      label == "ksc5601" || label == "ksc_5601" || label == "euc-kr" || label == "euckr" ||
      label == "korean" || label == "cseuckr" || label == "cp949" || label == "windows-949" ||
      label == "uhc")
    return set(Kind::iconv, "CP949", true);
  if (label == "gb2312" || label == "gbk" || label == "x-gbk" || label == "cp936" ||
      label == "ms936" || label == "windows-936" || label == "chinese" || label == "csgb2312" ||
      label == "euc-cn" || label == "euccn" || label == "gb_2312-80" || label == "gb18030" ||
      label == "x-euc-cn")
    return set(Kind::iconv, "GB18030", true);
  if (label == "big5" || label == "big-5" || label == "x-x-big5" || label == "cn-big5" ||
      label == "csbig5" || label == "big5-hkscs" || label == "cp950" || label == "x-big5")
    return set(Kind::iconv, "BIG5-HKSCS", true);
  if (label == "euc-jp" || label == "x-euc-jp" || label == "eucjp" ||
      label == "cseucpkdfmtjapanese")
    return set(Kind::iconv, "EUC-JP-MS", true);
  if (label == "iso-2022-jp" || label == "csiso2022jp" || label == "iso-2022-jp-1" ||
      label == "iso-2022-jp-2")
    return set(Kind::iso2022jp, "ISO-2022-JP-2", true);
  if (label == "iso-8859-8-i" || label == "iso_8859-8-i" || label == "csiso88598i")
    return set(Kind::iconv, "ISO-8859-8", true);
  if (label == "macintosh" || label == "mac" || label == "x-mac-roman" || label == "csmacintosh")
    return set(Kind::iconv, "MACINTOSH", true);
  if (label == "windows-874" || label == "cp874" || label == "x-windows-874")
    return set(Kind::iconv, "CP874", true);
  if (label == "unicode-1-1-utf-7" || label == "utf7" || label == "x-utf-7")
    return set(Kind::iconv, "UTF-7", false);
  // "windows-125x", "x-cp125x", "cp-125x" → CP125x.
  for (std::string_view p : {"windows-", "x-cp", "cp-", "win-"}) {
    if (starts_with(label, p) && label.size() == p.size() + 4 &&
        label.substr(p.size(), 3) == "125") {
      std::string name = "CP";
      name.append(label.substr(p.size()));
      return set(Kind::iconv, name, true);
    }
  }
  // "iso8859-2", "iso_8859-2" and "iso-8859-2" all name ISO-8859-2.
  for (std::string_view p : {"iso8859-", "iso_8859-", "iso-8859-", "iso8859_"}) {
    if (starts_with(label, p)) {
      std::string_view rest = label.substr(p.size());
      std::size_t d = 0;
      while (d < rest.size() && detail::is_digit(rest[d])) ++d;
      if (d == 0) return r;
      std::string name = "ISO-8859-";
      name.append(rest.substr(0, d));
      return set(Kind::iconv, name, true);
    }
  }
  if (label == "unknown" || label == "unknown-8bit" || label == "x-unknown" || label == "default" ||
      label == "charset" || label == "x-user-defined" || label == "8bit" || label == "7bit" ||
      label == "binary")
    return r;
  r.kind = Kind::iconv;
  r.name = std::string(label);
  for (char& c : r.name) c = detail::to_upper(c);
  r.ascii_compatible = starts_with(label, "iso-8859") || starts_with(label, "koi8") ||
                       starts_with(label, "iso-2022") || starts_with(label, "windows-") ||
                       starts_with(label, "cp125") || starts_with(label, "tis-620") ||
                       starts_with(label, "euc-") || starts_with(label, "latin");
  return r;
}

// Per-thread iconv descriptors, keyed by iconv name. A failed iconv_open is
// cached too. Bounded: fuzzed input invents charset names without end.
class IconvCache {
 public:
  IconvCache() = default;
  IconvCache(const IconvCache&) = delete;
  IconvCache& operator=(const IconvCache&) = delete;
  ~IconvCache() {
    for (auto& e : entries_) {
      if (e.cd != invalid()) iconv_close(e.cd);
    }
  }

  // The descriptor for `name`, or invalid() when iconv does not know it.
  iconv_t get(const std::string& name) {
    for (auto& e : entries_) {
      if (e.name == name) return e.cd;
    }
    iconv_t cd = iconv_open("UTF-8", name.c_str());
    if (entries_.size() >= max_entries) {
      // Evict the oldest entry; the common charsets are re-opened cheaply
      // enough when this rare case happens.
      if (entries_.front().cd != invalid()) iconv_close(entries_.front().cd);
      entries_.erase(entries_.begin());
    }
    entries_.push_back({name, cd});
    return cd;
  }

  static iconv_t invalid() noexcept { return reinterpret_cast<iconv_t>(-1); }

 private:
  static constexpr std::size_t max_entries = 32;
  struct Entry {
    std::string name;
    iconv_t cd;
  };
  std::vector<Entry> entries_;
};

std::string convert_iconv(iconv_t cd, std::string_view bytes) {
  iconv(cd, nullptr, nullptr, nullptr, nullptr);  // back to the initial shift state
  std::string out;
  out.resize(bytes.size() * 2 + 16);
  std::size_t used = 0;
  // iconv's API takes char**, not const char**; it does not write the input.
  char* in = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  auto room = [&](std::size_t need) {
    if (out.size() - used < need) out.resize(out.size() * 2 + need);
  };
  while (in_left > 0) {
    room(16);
    char* o = out.data() + used;
    std::size_t o_left = out.size() - used;
    const std::size_t rc = iconv(cd, &in, &in_left, &o, &o_left);
    used = out.size() - o_left;
    if (rc != static_cast<std::size_t>(-1)) break;
    if (errno == E2BIG) {
      room(out.size());
      continue;
    }
    // EILSEQ: an invalid sequence; EINVAL: one cut short by the end. Either way
    // one U+FFFD stands for the byte and conversion resumes after it.
    room(3);
    std::memcpy(out.data() + used, detail::replacement_char.data(), 3);
    used += 3;
    if (errno == EINVAL) break;
    ++in;
    --in_left;
  }
  // Flush a pending shift state (stateful charsets only write it here).
  for (;;) {
    room(16);
    char* o = out.data() + used;
    std::size_t o_left = out.size() - used;
    const std::size_t rc = iconv(cd, nullptr, nullptr, &o, &o_left);
    used = out.size() - o_left;
    if (rc != static_cast<std::size_t>(-1) || errno != E2BIG) break;
    room(out.size());
  }
  out.resize(used);
  // glibc emits valid UTF-8, but the contract must not hang on that.
  if (!is_valid_utf8(out)) return repair_utf8(out);
  return out;
}

// ISO-2022-JP as Japanese mailers write it is Microsoft's CP50220/50221: JIS
// X 0208 plus the NEC and IBM rows (circled digits, Roman numerals), half-width
// katakana by ESC ( I or SO/SI. glibc's ISO-2022-JP decoders reject those rows,
// and one rejected pair puts the rest of the text out of step. So the escapes
// are undone here into EUC-JP, which glibc's EUC-JP-MS decodes with the
// Microsoft rows. Returns false for escapes beyond that set (ISO-2022-JP-2's
// other charsets, JIS X 0213); the caller then uses glibc's own decoder.
bool iso2022jp_to_eucjp(std::string_view in, std::string& out) {
  enum class Mode { ascii, jis0208, kana, jis0212 };
  Mode mode = Mode::ascii;
  out.reserve(in.size());
  auto is_94 = [](unsigned char b) { return b >= 0x21 && b <= 0x7E; };
  std::size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b == 0x1B) {
      const std::string_view esc = in.substr(i);
      auto starts = [&](std::string_view p) { return esc.substr(0, p.size()) == p; };
      if (starts("\x1B(B") || starts("\x1B(J") || starts("\x1B(H")) {
        mode = Mode::ascii;
        i += 3;
      } else if (starts("\x1B$B") || starts("\x1B$@")) {
        mode = Mode::jis0208;
        i += 3;
      } else if (starts("\x1B&@")) {
        i += 3;  // JIS X 0208-1990 announcer; ESC $ B follows
      } else if (starts("\x1B(I")) {
        mode = Mode::kana;
        i += 3;
      } else if (starts("\x1B$(D")) {
        mode = Mode::jis0212;
        i += 4;
      } else if (starts("\x1B$(B") || starts("\x1B$(@")) {
        mode = Mode::jis0208;
        i += 4;
      } else {
        return false;
      }
      continue;
    }
    if (b == 0x0E || b == 0x0F) {  // SO/SI: CP50221's katakana shift
      mode = b == 0x0E ? Mode::kana : Mode::ascii;
      ++i;
      continue;
    }
    const bool pair = i + 1 < in.size() && is_94(b) && is_94(static_cast<unsigned char>(in[i + 1]));
    switch (mode) {
      case Mode::ascii:
        out.push_back(static_cast<char>(b));
        ++i;
        break;
      case Mode::kana:
        if (b >= 0x21 && b <= 0x5F) {
          out.push_back('\x8E');
          out.push_back(static_cast<char>(b | 0x80));
        } else {
          out.push_back(static_cast<char>(b));
        }
        ++i;
        break;
      case Mode::jis0208:
      case Mode::jis0212:
        if (pair) {
          if (mode == Mode::jis0212) out.push_back('\x8F');
          out.push_back(static_cast<char>(b | 0x80));
          out.push_back(static_cast<char>(static_cast<unsigned char>(in[i + 1]) | 0x80));
          i += 2;
        } else {
          // Line ends and spaces inside a double-byte run (broken, but seen)
          // pass; any other lone byte is invalid and becomes U+FFFD.
          out.push_back(b < 0x21 ? static_cast<char>(b) : '\xFF');
          ++i;
        }
        break;
    }
  }
  return true;
}

}  // namespace

std::string to_utf8(std::string_view bytes, std::string_view charset) {
  std::string label = to_lower_copy(trim(charset));
  // Labels arrive quoted sometimes ("utf-8") or with a trailing ';'.
  while (!label.empty() && (label.back() == '"' || label.back() == '\'' || label.back() == ';'))
    label.pop_back();
  std::size_t start = 0;
  while (start < label.size() && (label[start] == '"' || label[start] == '\'')) ++start;
  if (start > 0) label.erase(0, start);

  const Resolved r = resolve(label);
  switch (r.kind) {
    case Kind::utf8:
    case Kind::unknown:
      return repair_utf8(bytes);
    case Kind::ascii:
      // Mail labelled US-ASCII with 8-bit bytes is mislabelled, nearly always
      // UTF-8 or Windows-1252; guessing beats a row of U+FFFD.
      if (is_valid_utf8(bytes)) return std::string(bytes);
      return from_cp1252(bytes);
    case Kind::cp1252:
      if (is_ascii(bytes)) return std::string(bytes);
      return from_cp1252(bytes);
    case Kind::iso2022jp:
    case Kind::iconv:
      break;
  }
  if (r.ascii_compatible && is_plain_ascii(bytes)) return std::string(bytes);
  thread_local IconvCache cache;
  if (r.kind == Kind::iso2022jp) {
    // 8-bit text without escapes labelled ISO-2022-JP is mislabelled UTF-8.
    if (bytes.find('\x1B') == std::string_view::npos && !is_ascii(bytes) && is_valid_utf8(bytes))
      return std::string(bytes);
    std::string euc;
    if (iso2022jp_to_eucjp(bytes, euc)) {
      iconv_t cd = cache.get("EUC-JP-MS");
      if (cd != IconvCache::invalid()) return convert_iconv(cd, euc);
    }
  }
  iconv_t cd = cache.get(r.name);
  if (cd == IconvCache::invalid()) return repair_utf8(bytes);
  return convert_iconv(cd, bytes);
}

}  // namespace crmcap::text
