// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/mail: the MIME body walk (mimetic for structure only),
// transfer decoding, body text choice, attachments and iMIP parts.
#pragma once

#include "parsers/mail/mail.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::mail::detail {

struct BodyLimits {
  std::size_t max_depth = 32;    // multipart / message nesting we descend into
  std::size_t max_parts = 1000;  // MIME entities we look at; the rest is ignored
  // Guards for mimetic itself, checked on the raw body before it is handed over:
  // mimetic recurses once per nesting level and allocates one entity per
  // boundary line, so we bound both from the bytes (see mime_bounds).
  std::size_t max_containers = 1000;
  std::size_t max_entities = 20000;
};

// The top-level fields that shape the body, raw (unfolded, trimmed) values as
// split_header returns them; empty when absent.
struct TopFields {
  std::string_view content_type;
  std::string_view transfer_encoding;
  std::string_view disposition;
};

struct BodyResult {
  std::string text;  // chosen body text, valid UTF-8 (text/plain, else HTML as text)
  std::vector<Attachment> attachments;
  std::vector<CalendarPart> calendar_parts;
  std::vector<std::string> warnings;  // "mime: ...", "body: ..."
  std::string error;                  // non-empty when the structure could not be read
};

// Reads the body `body` (the bytes after the header block) of a message whose
// top-level fields are `top`. Never throws: a mimetic failure (or an exception of
// ours) is caught and reported in `error`, with whatever was read before it kept.
// Line ends are normalised to LF before mimetic sees the bytes; besides making
// text simpler this removes the input shape on which Debian's mimetic 0.9.8
// computes a negative length and throws std::length_error (a one-byte block made
// of a CR or LF preceded by the other one, right before a boundary).
BodyResult read_body(const TopFields& top, std::string_view body, const BodyLimits& limits = {});

// Upper bounds, computed from bytes alone, of what mimetic would build from
// `buf`: `containers` bounds the nesting depth (every nesting level needs its own
// "multipart" or "rfc822" Content-Type); `entities` bounds the number of MIME
// entities (every entity but the root and message/rfc822 children starts at a
// boundary match, and matches are disjoint runs beginning with "--").
struct MimeBounds {
  std::size_t containers = 0;
  std::size_t entities = 0;
};
MimeBounds mime_bounds(std::string_view buf) noexcept;

// CRLF and lone CR become LF. Returns a copy.
std::string normalize_newlines(std::string_view in);

// Lenient quoted-printable (base64 is text::decode_base64): keeps malformed "="
// sequences as written and joins soft line breaks.
std::string decode_quoted_printable(std::string_view in);
// Decoded length without building the decoded bytes.
std::uint64_t quoted_printable_decoded_size(std::string_view in) noexcept;

// The value of the first iCalendar property `name` (case-insensitive) found by a
// line scan of `ics` (folded lines joined); when `in_vevent` is true only lines
// after the first "BEGIN:VEVENT" count. Empty when absent.
std::string ical_property(std::string_view ics, std::string_view name, bool in_vevent);

// For tests and the leak measurement only: loads `raw` into mimetic exactly as
// given (no newline normalisation, no bounds check; keep inputs small), the way
// read_body would without its guards. Returns the text of what mimetic threw,
// or an empty string.
std::string mimetic_load_error(std::string_view raw);

}  // namespace crmcap::mail::detail
