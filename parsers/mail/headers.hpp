// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/mail: our own readers for RFC 5322 header fields. mimetic
// is never asked to interpret a header (see DESIGN.md); these functions are
// fuzzed with the parser and never throw.
#pragma once

#include "parsers/mail/mail.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::mail::detail {

struct HeaderField {
  std::string name;   // as written (compare case-insensitively)
  std::string value;  // unfolded, leading/trailing whitespace trimmed, raw bytes
};

struct HeaderBlock {
  std::vector<HeaderField> fields;    // in order
  std::size_t body_offset = 0;        // offset of the body in the raw message
  std::vector<std::string> problems;  // "header line N: ..." for skipped lines
};

// Splits the header block off a raw message (CRLF or LF line ends, a leading
// "From " mbox line tolerated). Lines without a colon are skipped and reported.
HeaderBlock split_header(std::string_view raw);

// The first field with that name (case-insensitive), or nullptr.
const HeaderField* find_field(const HeaderBlock& block, std::string_view name);
// Every field with that name, in order (To: may appear more than once).
std::vector<const HeaderField*> find_fields(const HeaderBlock& block, std::string_view name);

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
