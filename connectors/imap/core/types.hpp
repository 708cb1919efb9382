// SPDX-License-Identifier: Apache-2.0
// crm-capture IMAP protocol core: the vocabulary shared by the response parser
// (parser.hpp) and the command builder (command.hpp).
//
// Sans-io: nothing in connectors/imap/core touches a socket or includes Asio.
// No exception leaves the core: failures are std::error_code values of
// imap_category() (std::bad_alloc is caught at the parser's edge too).
//
// Naming: plain aggregate structs have public fields without a suffix (as in
// parsers/mail/mail.hpp); classes keep private members with a trailing `_`.
#pragma once

#include <boost/system/result.hpp>

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::imap {

// ---------------------------------------------------------------------------
// Errors

enum class Errc {
  // Parser, framing (the byte stream can no longer be followed: the parser is
  // "broken" until reset(), the session must drop the connection):
  line_too_long = 1,   // a line (between literals) over ParserLimits::max_line
  literal_too_large,   // a {n} announcement over ParserLimits::max_literal
  response_too_large,  // one response (lines + literals) over max_response
  too_many_literals,   // one response with more than max_literals literals
  bad_literal,         // a malformed {n} announcement (e.g. more than 19 digits)
  // Parser, content (the response was framed correctly and skipped; the next
  // feed() continues with the next response):
  syntax,    // a known response kind that does not follow the grammar
  too_deep,  // lists nested deeper than ParserLimits::max_depth
  // Both:
  out_of_memory,  // std::bad_alloc caught; the parser is broken until reset()
  // Command builder and codecs:
  forbidden_char,    // NUL (always), CR or LF (in names, credentials) in an argument
  invalid_argument,  // an empty UID set, a bad atom, an empty SASL user, ...
  bad_utf8,          // input is not valid UTF-8 (mutf7_encode)
  bad_mutf7,         // input is not valid modified UTF-7 (mutf7_decode)
};
const std::error_category& imap_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

template <class T>
using Result = boost::system::result<T, std::error_code>;

// ---------------------------------------------------------------------------
// Sets of message numbers

// An inclusive range of UIDs or sequence numbers.
struct UidRange {
  std::uint32_t first = 0;
  std::uint32_t last = 0;  // >= first; UidSet::star means "*" (the largest in use)
  bool operator==(const UidRange&) const = default;
};

// A set of UIDs (or sequence numbers), kept as sorted, disjoint, non-adjacent
// ranges. to_string() gives the compact IMAP form ("1:5,7,9:12"); a range ending
// in `star` prints as "N:*". An empty set prints as "" and is refused by every
// command builder call.
class UidSet {
 public:
  static constexpr std::uint32_t star = 0xFFFFFFFFu;

  UidSet() = default;
  // Adds one number or an inclusive range (first > last is swapped). 0 is not a
  // valid UID or sequence number and is ignored.
  void add(std::uint32_t n) { add(n, n); }
  void add(std::uint32_t first, std::uint32_t last);
  void add(const UidSet& other);

  bool empty() const noexcept { return ranges_.empty(); }
  bool contains(std::uint32_t n) const noexcept;
  // How many numbers the set holds (a star range counts up to UidSet::star).
  std::uint64_t size() const noexcept;
  const std::vector<UidRange>& ranges() const noexcept { return ranges_; }
  std::optional<std::uint32_t> min() const noexcept;
  std::optional<std::uint32_t> max() const noexcept;

  std::string to_string() const;
  // Parses a sequence-set ("1:5,7,9:*"); numbers may come in any order.
  static Result<UidSet> parse(std::string_view text);

  bool operator==(const UidSet&) const = default;

 private:
  std::vector<UidRange> ranges_;
};

// ---------------------------------------------------------------------------
// Modified UTF-7 (RFC 3501 section 5.1.3) mailbox names

// UTF-8 -> modified UTF-7. Fails with Errc::bad_utf8 on invalid UTF-8.
Result<std::string> mutf7_encode(std::string_view utf8);
// Modified UTF-7 -> UTF-8. Fails with Errc::bad_mutf7 on malformed input
// (bad base64, unterminated shift, a shift encoding only printable ASCII, bad
// surrogates, 8-bit bytes).
Result<std::string> mutf7_decode(std::string_view mutf7);

// An INTERNALDATE ("17-Jul-1996 02:44:25 -0700", also with a space-padded
// day) as Unix seconds (UTC); nullopt when it does not follow RFC 3501.
std::optional<std::int64_t> internaldate_to_unix(std::string_view text);

// The value of the first `name` field (any case) in a header block, such as
// BODY[HEADER.FIELDS (MESSAGE-ID)] returns: unfolded, with the whitespace
// around it trimmed; empty when the block has no such field.
std::string header_field_value(std::string_view header_block, std::string_view name);

// The header block a message starts with: up to and with the empty line
// that ends it (CRLF or LF), or the whole text when there is none.
std::string_view header_block(std::string_view message);

// ---------------------------------------------------------------------------
// Shared by FETCH requests and FETCH responses

// What a BODY[...] / BINARY[...] section names after the part number.
enum class SectionText { none, header, header_fields, header_fields_not, text, mime };

// A section specification: the text between the brackets of BODY[...].
// Examples: {} = BODY[] (the whole message); {"", header} = BODY[HEADER];
// {"1.2", none} = BODY[1.2]; {"2", mime} = BODY[2.MIME];
// {"", header_fields, {"From", "To"}} = BODY[HEADER.FIELDS (From To)].
struct Section {
  std::string part;  // "1", "1.2", ...; empty for the message itself
  SectionText text = SectionText::none;
  std::vector<std::string> fields;  // header field names for header_fields[_not]
  // The IMAP form, e.g. "1.2.HEADER.FIELDS (FROM TO)" (keywords upper case,
  // field names as given).
  std::string to_string() const;
  bool operator==(const Section&) const = default;
};

// ---------------------------------------------------------------------------
// Response data. Strings hold the bytes as the server sent them (quoted strings
// unescaped, literals verbatim), unless a comment says "decoded".
// `NString` is an IMAP nstring: std::nullopt is NIL.

using NString = std::optional<std::string>;

enum class Status { ok, no, bad, bye, preauth };

enum class CodeKind {
  other,  // anything not listed: see ResponseCode::name / raw
  alert,
  already_exists,
  appenduid,
  authentication_failed,
  authorization_failed,
  badcharset,
  cannot,
  capability,
  client_bug,
  closed,
  contact_admin,
  copyuid,
  corruption,
  expired,
  expunge_issued,
  highestmodseq,
  in_use,
  limit,
  modified,
  nomodseq,
  noperm,
  nonexistent,
  not_saved,
  notificationoverflow,  // NOTIFY (RFC 5465): events were lost, notifications stopped
  over_quota,
  parse,
  permanentflags,
  privacy_required,
  read_only,
  read_write,
  server_bug,
  throttled,
  trycreate,
  uidnext,
  uidnotsticky,
  uidvalidity,
  unavailable,
  unknown_cte,
  unseen,
};

// A response code: the bracketed part of "* OK [UIDVALIDITY 3857529045] ...".
struct ResponseCode {
  CodeKind kind = CodeKind::other;
  std::string name;  // the code's atom, upper-cased, e.g. "UIDVALIDITY"
  std::string raw;   // the text after the atom up to "]", as sent; may be empty
  // UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ: the number. APPENDUID and
  // COPYUID: the destination UIDVALIDITY. Otherwise (or unreadable) nullopt.
  std::optional<std::uint64_t> number;
  // CAPABILITY: the capabilities; PERMANENTFLAGS: the flags (e.g. "\\*");
  // BADCHARSET: the charsets. Otherwise empty.
  std::vector<std::string> atoms;
  bool operator==(const ResponseCode&) const = default;
};

// "a1 OK [code] text": the completion of the command tagged `tag`.
struct TaggedStatus {
  std::string tag;
  Status status = Status::ok;  // ok, no or bad only
  std::optional<ResponseCode> code;
  std::string text;  // human-readable; may be empty
  bool operator==(const TaggedStatus&) const = default;
};

// "* OK|NO|BAD|BYE|PREAUTH [code] text": greetings, warnings, BYE.
struct UntaggedStatus {
  Status status = Status::ok;
  std::optional<ResponseCode> code;
  std::string text;
  bool operator==(const UntaggedStatus&) const = default;
};

// "+ text": the server waits for more from the client (a synchronizing
// literal, IDLE started, an AUTHENTICATE challenge). `text` is the rest of the
// line as sent (base64 for SASL challenges; may be empty).
struct Continuation {
  std::string text;
  bool operator==(const Continuation&) const = default;
};

// "* CAPABILITY ...". Names as sent; has() compares case-insensitively.
struct Capabilities {
  std::vector<std::string> names;
  bool has(std::string_view name) const noexcept;
  bool operator==(const Capabilities&) const = default;
};

// "* FLAGS (...)": the flags defined in the mailbox.
struct Flags {
  std::vector<std::string> flags;
  bool operator==(const Flags&) const = default;
};

struct Exists {  // "* n EXISTS"
  std::uint32_t count = 0;
  bool operator==(const Exists&) const = default;
};
struct Recent {  // "* n RECENT"
  std::uint32_t count = 0;
  bool operator==(const Recent&) const = default;
};
struct Expunge {  // "* n EXPUNGE": sequence number n is gone; later ones shift down
  std::uint32_t seq = 0;
  bool operator==(const Expunge&) const = default;
};

// "* VANISHED [(EARLIER)] uid-set" (QRESYNC, RFC 7162).
struct Vanished {
  bool earlier = false;  // true: answers a QRESYNC EXAMINE / UID FETCH VANISHED
  UidSet uids;
  bool operator==(const Vanished&) const = default;
};

// One address of an ENVELOPE (RFC 3501 section 7.4.2), raw: name may be RFC
// 2047 encoded. Group syntax appears as in the RFC: a start marker with host
// NIL and mailbox = group name, an end marker with mailbox and host NIL.
struct EnvelopeAddress {
  NString name, adl, mailbox, host;
  // "mailbox@host" (raw, not decoded); empty for group markers.
  std::string address() const;
  bool is_group_start() const noexcept { return !host && mailbox; }
  bool is_group_end() const noexcept { return !host && !mailbox; }
  bool operator==(const EnvelopeAddress&) const = default;
};

struct Envelope {
  NString date, subject;  // raw header values (subject may be RFC 2047 encoded)
  std::vector<EnvelopeAddress> from, sender, reply_to, to, cc, bcc;
  NString in_reply_to, message_id;  // raw, with angle brackets
  bool operator==(const Envelope&) const = default;
};

struct BodyParam {
  std::string name;  // as sent (compare case-insensitively)
  std::string value;
  bool operator==(const BodyParam&) const = default;
};

struct BodyDisposition {
  std::string type;  // lower-cased: "attachment", "inline", ...
  std::vector<BodyParam> params;
  bool operator==(const BodyDisposition&) const = default;
};

// One node of a BODYSTRUCTURE (or BODY) tree.
//
// `type` and `subtype` are lower-cased. A multipart node has `parts` (its
// children) and only `subtype`, `params` and extension data are meaningful. A
// message/rfc822 (or message/global) node has `envelope` and exactly one
// element in `parts`: the body of the enclosed message. Extension data that is
// not understood is skipped.
//
// `section` is the part number to fetch this node with, computed by the
// parser per RFC 3501 6.4.5: "" for a top-level multipart (BODY[] is the whole
// message), "1" for a top-level single part, "2.1" for the first child of part
// 2; the multipart body of a message/rfc822 part N has section N (its children
// are N.1, N.2), a single-part body of it has N.1.
struct BodyStructure {
  std::string type, subtype;
  std::vector<BodyParam> params;
  NString id, description;
  std::string encoding;                // lower-cased, e.g. "base64"; empty if NIL
  std::uint64_t size = 0;              // octets of the encoded body (single parts)
  std::optional<std::uint64_t> lines;  // text/* and message/rfc822
  std::optional<Envelope> envelope;    // message/rfc822 only
  std::vector<BodyStructure> parts;
  // Extension data (BODYSTRUCTURE only; absent in BODY).
  NString md5;
  std::optional<BodyDisposition> disposition;
  std::vector<std::string> language;
  NString location;
  std::string section;

  bool is_multipart() const noexcept { return type == "multipart"; }
  // A param value by case-insensitive name, or nullptr.
  const std::string* param(std::string_view name) const noexcept;
  // The attachment file name: disposition "filename", else "name" param (raw:
  // may be RFC 2231/2047 encoded). Empty if none.
  std::string filename() const;
  bool operator==(const BodyStructure&) const = default;
};

// A BODY[section]<origin> or BINARY[section]<origin> item of a FETCH response.
struct BodySection {
  bool binary = false;  // BINARY[...] (content transfer decoding done by server)
  Section section;
  std::optional<std::uint32_t> origin;  // <origin>: the first octet's offset
  // The bytes (NIL -> nullopt). Moved out of the parser's literal buffer: a
  // literal is copied exactly once, from the fed input into this string.
  NString data;
  bool operator==(const BodySection&) const = default;
};

// "* n FETCH (...)": the items returned for message number `seq`. An item the
// server did not send is nullopt / empty.
struct FetchItem {
  std::uint32_t seq = 0;
  std::optional<std::uint32_t> uid;
  std::optional<std::uint64_t> modseq;            // CONDSTORE MODSEQ (n)
  std::optional<std::vector<std::string>> flags;  // FLAGS () -> empty vector
  std::optional<std::string> internaldate;        // "17-Jul-1996 02:44:25 -0700"
  std::optional<std::uint64_t> size;              // RFC822.SIZE
  std::optional<Envelope> envelope;
  std::optional<BodyStructure> body;                // BODYSTRUCTURE or BODY
  std::vector<BodySection> sections;                // in the order sent
  std::optional<std::uint64_t> gm_msgid, gm_thrid;  // X-GM-MSGID, X-GM-THRID
  // X-GM-LABELS, raw: system labels start with "\\" ("\\Inbox", "\\Sent");
  // user labels are modified UTF-7 (see mutf7_decode).
  std::optional<std::vector<std::string>> gm_labels;
  std::vector<std::string> unknown;  // upper-cased names of skipped items
  bool operator==(const FetchItem&) const = default;
};

// "* ESEARCH (TAG "a3") UID MIN 1 MAX 9 COUNT 4 ALL 1:3,9" (RFC 4731).
struct Esearch {
  std::string tag;  // the command's tag; empty if the server sent none
  bool uid = false;
  std::optional<std::uint32_t> min, max;
  std::optional<std::uint64_t> count;
  UidSet all;  // ALL; empty when absent (a server never sends an empty ALL)
  std::optional<std::uint64_t> modseq;
  bool operator==(const Esearch&) const = default;
};

// "* SEARCH 2 84 882 [(MODSEQ 917162500)]".
struct Search {
  std::vector<std::uint32_t> ids;  // in the order sent
  std::optional<std::uint64_t> modseq;
  bool operator==(const Search&) const = default;
};

enum class SpecialUse { none, all, archive, drafts, flagged, important, junk, sent, trash };

// "* LIST (\HasNoChildren \Sent) "/" "Sent"" (also LSUB and Gmail's XLIST).
struct ListEntry {
  bool lsub = false;
  std::vector<std::string> attributes;  // as sent, e.g. "\\Noselect", "\\Sent"
  std::optional<char> delimiter;        // nullopt: NIL (flat namespace)
  // The mailbox name decoded to UTF-8 (from modified UTF-7, or as sent when
  // the parser was told UTF8=ACCEPT is on, or as sent if not valid mUTF-7).
  std::string mailbox;
  std::string mailbox_raw;  // as sent: pass this (or `mailbox`) to commands
  bool has(std::string_view attribute) const noexcept;  // case-insensitive
  bool noselect() const noexcept;                       // \Noselect or \NonExistent
  // The first special-use attribute (RFC 6154 names; Gmail's XLIST names
  // \AllMail, \Spam and \Starred map to all, junk and flagged).
  SpecialUse special_use() const noexcept;
  bool operator==(const ListEntry&) const = default;
};

// "* STATUS "INBOX" (MESSAGES 3 UIDNEXT 44 ...)".
struct MailboxStatus {
  std::string mailbox;      // decoded as in ListEntry
  std::string mailbox_raw;  // as sent
  std::optional<std::uint32_t> messages, recent, uidnext, uidvalidity, unseen;
  std::optional<std::uint64_t> highestmodseq, size;
  bool operator==(const MailboxStatus&) const = default;
};

// "* ENABLED CONDSTORE QRESYNC" (RFC 5161).
struct Enabled {
  std::vector<std::string> capabilities;
  bool operator==(const Enabled&) const = default;
};

// "* ID ("name" "Dovecot")" (RFC 2971); "* ID NIL" gives no fields.
struct IdInfo {
  std::vector<std::pair<std::string, NString>> fields;
  bool operator==(const IdInfo&) const = default;
};

// Any other response (NAMESPACE, QUOTA, METADATA, an unknown extension, ...),
// framed correctly but not interpreted. `name` is the upper-cased response
// name ("NAMESPACE", or "FOO" for "* 3 FOO"); `line` is the first line as sent
// without CRLF (literals, if any, are dropped).
struct Unrecognized {
  std::string name;
  std::string line;
  bool operator==(const Unrecognized&) const = default;
};

}  // namespace crmcap::imap

template <>
struct std::is_error_code_enum<crmcap::imap::Errc> : std::true_type {};
