// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/mail: our own readers for RFC 5322 header fields. mimetic
// is never asked to interpret a header (see DESIGN.md); these functions are
// fuzzed with the parser and never throw.
#pragma once

#include "parsers/mail/mail.hpp"
#include "parsers/text/text.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::mail::detail {

struct HeaderField {
  std::string name;   // as written (compare case-insensitively)
  std::string value;  // unfolded, leading/trailing whitespace trimmed, raw bytes
};

// The key of a field name in HeaderBlock::index: its length (at most 255) and
// its first, middle and last bytes, ASCII letters lowered. Equal for names
// equal but for case, and a few instructions to compute; different names may
// share a key (none of the usual ones do), so a lookup compares the names too.
constexpr std::uint32_t field_name_key(std::string_view name) noexcept {
  if (name.empty()) return 0;
  const auto byte = [](char c) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(text::to_lower(c)));
  };
  const auto size = static_cast<std::uint32_t>(name.size() < 255 ? name.size() : 255);
  return size << 24 | byte(name.front()) << 16 | byte(name[name.size() / 2]) << 8 |
         byte(name.back());
}

// A field name to look up, with its key, made from a literal at compile time
// (so a lookup computes nothing for it). The literal may hold only ASCII
// letters, digits and '-', which is what lets matches() compare cheaply.
class FieldName {
 public:
  consteval FieldName(const char* name) noexcept : name_(name), key_(field_name_key(name_)) {
    for (char c : name_) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) not_a_plain_field_name();  // not constexpr: a compile-time error
    }
  }

  constexpr std::string_view name() const noexcept { return name_; }
  constexpr std::uint32_t key() const noexcept { return key_; }

  // Whether `field_name`, a name as split_header keeps it (bytes 33 to 126),
  // is this one, ASCII letters compared without case. Setting bit 0x20 lowers
  // a letter and leaves digits and '-' as they are; the only other bytes it
  // would map onto those (0x0D, 0x10 to 0x19) are not in a field name. So the
  // bytes are compared eight or four at a time, a word's bits 0x20 set.
  bool matches(std::string_view field_name) const noexcept {
    const std::size_t n = name_.size();
    if (field_name.size() != n) return false;
    const char* const a = field_name.data();
    const char* const b = name_.data();
    if (n >= 8) {
      for (std::size_t i = 0; i + 8 < n; i += 8) {
        if (!same<std::uint64_t>(a + i, b + i)) return false;
      }
      return same<std::uint64_t>(a + n - 8, b + n - 8);  // the last 8, overlapping
    }
    if (n >= 4) return same<std::uint32_t>(a, b) && same<std::uint32_t>(a + n - 4, b + n - 4);
    for (std::size_t i = 0; i < n; ++i) {
      if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
    }
    return true;
  }

 private:
  static void not_a_plain_field_name() noexcept {}
  template <class Word>
  static bool same(const char* a, const char* b) noexcept {
    Word x, y;
    std::memcpy(&x, a, sizeof x);
    std::memcpy(&y, b, sizeof y);
    constexpr Word bits = static_cast<Word>(0x2020202020202020u);
    return (x | bits) == (y | bits);
  }
  std::string_view name_;
  std::uint32_t key_;
};

struct HeaderBlock {
  std::vector<HeaderField> fields;    // in order
  std::size_t body_offset = 0;        // offset of the body in the raw message
  std::vector<std::string> problems;  // "header line N: ..." for skipped lines
  // The fields by name, built once with them by split_header: one entry per
  // field, its name's field_name_key() in the high 32 bits and its position in
  // `fields` in the low 32, in ascending order. So the fields of a name are
  // adjacent and in header order, and a lookup is a binary search. The
  // lookups below read only this: a block is made by split_header, and one
  // whose fields were changed afterwards must not be looked up in.
  std::vector<std::uint64_t> index;
};

// Splits the header block off a raw message (CRLF or LF line ends, a leading
// "From " mbox line tolerated) and indexes its fields by name. Lines without a
// colon are skipped and reported.
HeaderBlock split_header(std::string_view raw);

// The entries of block.index whose key is `key`: the fields of that name, and
// of any other name with the same key, in header order.
std::pair<const std::uint64_t*, const std::uint64_t*> index_range(const HeaderBlock& block,
                                                                  std::uint32_t key) noexcept;

// Calls f(const HeaderField&) for every field with that name (case-insensitive),
// in header order, without allocating.
template <class F>
void for_each_field(const HeaderBlock& block, const FieldName& name, F&& f) {
  const auto [first, last] = index_range(block, name.key());
  for (const std::uint64_t* e = first; e != last; ++e) {
    const HeaderField& field = block.fields[static_cast<std::uint32_t>(*e)];
    if (name.matches(field.name)) f(field);
  }
}

// The first field with that name (case-insensitive), or nullptr.
const HeaderField* find_field(const HeaderBlock& block, const FieldName& name) noexcept;
// Every field with that name, in order (To: may appear more than once).
std::vector<const HeaderField*> find_fields(const HeaderBlock& block, const FieldName& name);

// Parses an address-list (RFC 5322 3.4 plus obsolete syntax): groups, comments,
// quoted display names, route addresses, RFC 2047 words in names, bare
// addresses, missing brackets, trailing junk. Entries that hold no usable
// address are skipped and described in `problems` when it is not null.
std::vector<Address> parse_address_list(std::string_view value,
                                        std::vector<std::string>* problems = nullptr);
// The same, with raw 8-bit bytes in display names that are not valid UTF-8
// read as `fallback_charset` (as decode_words does), e.g. the message's
// Content-Type charset for old mailers that wrote Latin-1 names unencoded.
std::vector<Address> parse_address_list(std::string_view value, std::vector<std::string>* problems,
                                        std::string_view fallback_charset);

// Parses an RFC 5322 date-time and the common broken forms (missing weekday or
// seconds, two-digit years, named zones like EST/PDT/UT/GMT, "+0000 (UTC)", ISO
// 8601, asctime). Returns Unix seconds UTC, or nullopt when unreadable.
std::optional<std::int64_t> parse_date(std::string_view value);

// Extracts msg-ids ("<a@b>") from Message-ID, In-Reply-To or References,
// without brackets; tolerates a missing bracket pair for a lone id.
std::vector<std::string> parse_msg_ids(std::string_view value);

}  // namespace crmcap::mail::detail
