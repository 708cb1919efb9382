// SPDX-License-Identifier: Apache-2.0
// crm-capture mail parser: a pure function from the raw bytes of an RFC 5322
// message to a MailMessage. No I/O, no store, no exception leaves it.
//
// mimetic is used for MIME structure and bodies only. Header fields are read as
// raw strings and parsed here (addresses, RFC 2047 words, dates): mimetic's typed
// address accessors are unsafe on malformed input (see DESIGN.md).
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::mail {

struct ParseError {
  std::error_code code;
  std::string message;  // what and where, e.g. "header line 3: no colon"
};

enum class Errc {
  empty_input = 1,
  too_large,      // over ParseOptions::max_bytes
  no_header,      // no header field could be read
  bad_structure,  // MIME structure unreadable (used in MailMessage::warnings)
};
const std::error_category& parse_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

template <class T>
using Result = boost::system::result<T, ParseError>;
[[noreturn]] void throw_exception_from_error(const ParseError& e,
                                             const boost::source_location& loc);

// A mailbox from an address header. `address` is local@domain with the domain
// lowercased and the local part as written (decoded from quotes); `name` is the
// display name, RFC 2047-decoded, valid UTF-8. Group names are dropped; group
// members are listed.
struct Address {
  std::string name;
  std::string address;
  bool operator==(const Address&) const = default;
};

struct Attachment {
  std::string filename;    // RFC 2231 / RFC 2047 decoded; may be empty
  std::string media_type;  // lowercase type/subtype
  std::uint64_t size = 0;  // decoded size in bytes
  bool operator==(const Attachment&) const = default;
};

// An iMIP part (text/calendar with a METHOD), handed on to the calendar side.
struct CalendarPart {
  std::string method;  // upper case: REQUEST, REPLY, CANCEL, ...
  std::string uid;     // the first VEVENT's UID, if found
  std::string text;    // the decoded iCalendar text (kept: small)
};

struct MailMessage {
  std::vector<Address> from, sender, reply_to, to, cc, bcc;

  // Date in Unix seconds (UTC). When the Date header is missing or unreadable,
  // `date` is ParseOptions::received_at and `date_fallback` is true.
  std::int64_t date = 0;
  bool date_fallback = false;
  std::string date_raw;

  std::string subject;     // decoded, unfolded, valid UTF-8
  std::string message_id;  // without angle brackets; synthetic when missing
  bool message_id_synthetic = false;
  std::string in_reply_to;              // first msg-id, without angle brackets
  std::vector<std::string> references;  // in header order, without brackets

  // Raw (unfolded, trimmed) values of headers the policy reads; empty if absent.
  std::string list_id, list_unsubscribe, precedence, auto_submitted, x_autoreply, sensitivity,
      importance;

  std::string text;     // the chosen body text (text/plain, else HTML as text), UTF-8
  std::string snippet;  // new text only: quotes and signature removed, folded, bounded
  std::vector<Attachment> attachments;
  std::vector<CalendarPart> calendar_parts;

  // Non-fatal problems found while parsing, each "what: detail", e.g.
  // "date: unreadable 'yesterday'; using the receive time".
  std::vector<std::string> warnings;
  // Set when the MIME body could not be read; headers are still valid.
  std::string body_error;
};

struct ParseOptions {
  std::int64_t received_at = 0;     // Unix seconds; the fallback date
  std::size_t snippet_chars = 280;  // in Unicode code points
  std::size_t max_bytes = 64u << 20;
};

// Parses one message. Fails only when no header can be read at all (or the input
// is empty or over max_bytes); a broken body gives a message with body_error set.
Result<MailMessage> parse(std::string_view raw, const ParseOptions& options = {});

// The Message-ID parse() reads from a Message-ID field's value: its first
// msg-id, without angle brackets, comments or whitespace; empty when the value
// holds none (parse() then makes a synthetic one).
std::string message_id_of(std::string_view field_value);

}  // namespace crmcap::mail

template <>
struct std::is_error_code_enum<crmcap::mail::Errc> : std::true_type {};
