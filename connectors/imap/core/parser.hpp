// SPDX-License-Identifier: Apache-2.0
// crm-capture IMAP response parser (sans-io).
//
// The parser is fed the bytes read from the server in chunks of any size; a
// chunk may end anywhere (inside a line, a quoted string, a literal's
// announcement or a literal's bytes). It never reads: the transport reads and
// calls feed(). Its explicit state is either "reading a line" or "inside a
// literal, N bytes left" (see literal_remaining()).
//
// Usage (the session's read loop):
//
//   std::string_view in{buffer, n};
//   for (;;) {
//     ResponseParser::Step s = parser.feed(in);   // advances `in`
//     if (s == ResponseParser::Step::need_more) break;   // read more bytes
//     if (s == ResponseParser::Step::error) {
//       if (parser.broken()) { /* drop the connection */ }
//       log(parser.error(), parser.error_detail());  // then keep going
//       continue;
//     }
//     handle(parser.take());  // Step::event
//   }
//
// Memory is bounded by ParserLimits: a line over max_line, a literal over
// max_literal or a response over max_response is an error, never a crash or
// an unbounded allocation. A literal's bytes are copied once, from the fed
// chunk into the std::string that ends up in the Response (BodySection::data
// and friends); nothing else copies them.
#pragma once

#include "connectors/imap/core/types.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace crmcap::imap {

// One complete server response.
using Response = std::variant<TaggedStatus, UntaggedStatus, Continuation, Capabilities, Flags,
                              Exists, Recent, Expunge, Vanished, FetchItem, Esearch, Search,
                              ListEntry, MailboxStatus, Enabled, IdInfo, Unrecognized>;

struct ParserLimits {
  // Longest line, in bytes, between CRLFs and literals (CRLF included). SEARCH
  // results and X-GM-LABELS lines can be long: keep this generous.
  std::size_t max_line = 1u << 20;
  // Largest literal announced by {n} or ~{n}.
  std::size_t max_literal = 64u << 20;
  // Largest response: all its lines and literals together.
  std::size_t max_response = 128u << 20;
  // Most literals in one response (bounds "{0}" floods).
  std::size_t max_literals = 100000;
  // Deepest nesting of parenthesised lists (BODYSTRUCTURE recursion).
  std::size_t max_depth = 64;
};

class ResponseParser {
 public:
  enum class Step {
    event,      // a response is complete: call take() before feeding again
    need_more,  // all of `input` was consumed; feed more bytes
    error,      // see error(), error_detail() and broken()
  };

  explicit ResponseParser(ParserLimits limits = {}) : limits_(limits) {}

  // Consumes bytes from the front of `input` (advancing it) up to the end of at
  // most one response. The bytes are copied (literal bytes exactly once) as
  // needed: the caller may reuse its buffer as soon as feed() returns.
  //
  // Returns Step::event when a response is complete (`input` then holds the
  // bytes after it, possibly more responses: call feed() again after take());
  // Step::need_more when `input` is exhausted without completing one;
  // Step::error on a bad response. After a content error (Errc::syntax,
  // Errc::too_deep) the bad response has been consumed and skipped and the
  // next feed() goes on with the next one. After a framing error
  // (line_too_long, literal_too_large, response_too_large, too_many_literals,
  // bad_literal, out_of_memory) broken() is true and every feed() returns
  // Step::error without consuming anything until reset().
  // Feeding again after Step::event without take() drops that response.
  Step feed(std::string_view& input);

  // The response completed by the last feed() that returned Step::event,
  // moved out. Calling it at any other time returns an Unrecognized{} with
  // empty fields.
  Response take();

  // The last error (empty after a successful feed()).
  std::error_code error() const noexcept { return error_; }
  // The last error in words, with the response kind and byte offset where
  // known, e.g. "FETCH: expected ')' at offset 57". Never contains literal
  // contents; may quote up to 40 bytes of the offending line.
  const std::string& error_detail() const noexcept { return error_detail_; }
  // True after a framing error: the connection cannot be followed any more.
  bool broken() const noexcept { return broken_; }

  // Inside a literal: how many of its bytes are still to come; else 0.
  std::uint64_t literal_remaining() const noexcept;
  // Bytes of the current, incomplete response held by the parser.
  std::size_t buffered() const noexcept;

  // After ENABLE UTF8=ACCEPT succeeded: mailbox names are UTF-8, not modified
  // UTF-7, so ListEntry::mailbox / MailboxStatus::mailbox are taken as sent.
  void set_utf8_accept(bool on) noexcept { utf8_accept_ = on; }

  // Forgets everything (use after reconnecting); the limits stay.
  void reset();

 private:
  Step fail(std::error_code ec, std::string detail, bool broken);
  Step finish_response();

  ParserLimits limits_;
  // Framing state. A response is lines_[0] literals_[0] lines_[1] ...
  // lines_[k]: every line but the last ended with a literal announcement.
  // in_literal_: the bytes go to literals_.back() and literal_left_ are
  // still to come. Otherwise they go to lines_.back(); only the new bytes
  // are searched for LF (so byte-by-byte feeding stays linear).
  bool in_literal_ = false;
  std::uint64_t literal_left_ = 0;
  std::vector<std::string> lines_;
  std::vector<std::string> literals_;
  std::size_t total_ = 0;   // bytes of the current response so far
  bool text_only_ = false;  // status or "+" response: no literals, per RFC 3501
  Response response_;
  bool has_response_ = false;
  bool broken_ = false;
  bool utf8_accept_ = false;
  std::error_code error_;
  std::string error_detail_;
};

// Parses one complete response given as its exact bytes (lines with CRLF,
// literals inline) and nothing after it. A convenience for tests and tools;
// fails with Errc::syntax if `bytes` holds less or more than one response.
Result<Response> parse_response(std::string_view bytes, ParserLimits limits = {});

// A canonical one-line text form of a response, used by the transcript tests
// (tests/transcripts/imap/*.txt, "E:" lines) and for debug logs. It includes
// literal contents (message bytes): do not log it above debug level. The
// format is documented in tests/transcripts/imap/README.md.
std::string to_text(const Response& response);

// The lower-case name of a Response alternative ("tagged", "fetch", ...).
std::string_view kind_name(const Response& response) noexcept;

}  // namespace crmcap::imap
