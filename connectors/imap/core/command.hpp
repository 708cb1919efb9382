// SPDX-License-Identifier: Apache-2.0
// crm-capture IMAP command builder (sans-io).
//
// Each call returns the exact bytes of one tagged command, ready to write, or
// an error when an argument cannot be sent safely. Arguments are never pasted:
// names and credentials become an atom, a quoted string (with \ and " escaped)
// or a literal, so no argument can end the line or start another command.
// NUL is refused everywhere; CR and LF are refused in mailbox names, user
// names, passwords, tokens and ID values (Errc::forbidden_char). Mailbox names
// are given in UTF-8 and sent modified UTF-7 encoded (as UTF-8 once
// UTF8=ACCEPT is on).
//
// Read-only by design: the builder offers EXAMINE (never SELECT), and FETCH
// only with BODY.PEEK / BINARY.PEEK, so capture never changes a mailbox.
#pragma once

#include "connectors/imap/core/types.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::imap {

// One command, split where the client must wait for the server.
//
// Write segments[0]; before writing each following segment, wait for a
// continuation request ("+ ...") from the server. A tagged NO/BAD with this
// tag instead means the command failed: write nothing more of it. A command
// with one segment is written at once (LITERAL+ literals need no wait).
// Segments split at synchronizing literals ({n}) and, for AUTHENTICATE
// without SASL-IR, before the client's response.
//
// awaits_continuation: after the last segment the server answers "+" as part
// of the normal flow and waits for the client. Only IDLE ("+ idling": then
// write CommandBuilder::done() to end it). An AUTHENTICATE may also get a "+"
// after its last segment, but only on failure (see authenticate_xoauth2).
struct Command {
  std::string tag;
  std::vector<std::string> segments;
  bool awaits_continuation = false;
  // The command for logs, one line: secrets (passwords, tokens, SASL
  // responses) replaced by "<redacted>", a literal shown as its "{n}" or
  // "{n+}" announcement only, no CRLF.
  std::string redacted;

  // All segments concatenated (for tests and LITERAL+ writers).
  std::string bytes() const;
};

// The option structs are meant for designated initializers
// (`{.condstore = true}`). Their std::optional members say `= std::nullopt`
// because GCC 12 otherwise warns (-Wmissing-field-initializers) when one is
// left out.

// EXAMINE ... (QRESYNC (uidvalidity modseq [known-uids [(seq-set uid-set)]]))
struct QresyncParams {
  std::uint32_t uidvalidity = 0;
  std::uint64_t modseq = 0;
  UidSet known_uids;  // optional: empty means not sent
  // Optional sequence match data; both empty, or both non-empty.
  UidSet known_seqs, known_seq_uids;
};

struct ExamineOptions {
  bool condstore = false;  // (CONDSTORE); implied by qresync
  std::optional<QresyncParams> qresync = std::nullopt;
};

struct StatusItems {
  bool messages = false, recent = false, uidnext = false, uidvalidity = false, unseen = false,
       highestmodseq = false, size = false;
};

struct ListOptions {
  bool special_use = false;  // RETURN (SPECIAL-USE)  (RFC 6154)
  bool children = false;     // RETURN (CHILDREN)
};

// UID SEARCH criteria, ANDed. With nothing set the key is ALL.
struct SearchCriteria {
  std::optional<std::chrono::year_month_day> since = std::nullopt;   // SINCE 1-Feb-2026
  std::optional<std::chrono::year_month_day> before = std::nullopt;  // BEFORE ...
  UidSet uids;                                                       // UID 1:5,7 (empty: not sent)
  std::optional<std::uint64_t> modseq = std::nullopt;                // MODSEQ n (CONDSTORE)
  bool not_deleted = false;                                          // UNDELETED
};

// ESEARCH result options (RFC 4731). None set: a plain SEARCH is asked.
struct SearchReturn {
  bool min = false, max = false, all = false, count = false;
  bool any() const noexcept { return min || max || all || count; }
};

// One requested FETCH attribute. Build with the factory functions.
struct FetchAttr {
  enum class Kind {
    uid,
    flags,
    internaldate,
    rfc822_size,
    envelope,
    bodystructure,
    modseq,
    gm_msgid,
    gm_thrid,
    gm_labels,
    body_peek,    // BODY.PEEK[section]<partial>
    binary_peek,  // BINARY.PEEK[section]<partial>
  };
  Kind kind = Kind::uid;
  Section section;  // body_peek / binary_peek only
  // <offset.count>: at most `count` octets from `offset` (body/binary only).
  std::optional<std::pair<std::uint32_t, std::uint32_t>> partial = std::nullopt;

  static FetchAttr of(Kind k) { return FetchAttr{k, {}, {}}; }
  static FetchAttr body_peek(Section s,
                             std::optional<std::pair<std::uint32_t, std::uint32_t>> p = {}) {
    return FetchAttr{Kind::body_peek, std::move(s), p};
  }
  static FetchAttr binary_peek(Section s,
                               std::optional<std::pair<std::uint32_t, std::uint32_t>> p = {}) {
    return FetchAttr{Kind::binary_peek, std::move(s), p};
  }
  bool operator==(const FetchAttr&) const = default;
};

struct FetchModifiers {
  std::optional<std::uint64_t> changedsince = std::nullopt;  // (CHANGEDSINCE n)
  bool vanished = false;                                     // (... VANISHED); needs changedsince
};

// What the server offered that changes how commands are encoded. Fill it
// from CAPABILITY (and ENABLED) and pass it in with set_options().
struct BuilderOptions {
  bool literal_plus = false;   // LITERAL+: {n+} everywhere, no waiting
  bool literal_minus = false;  // LITERAL-: {n+} up to 4096 bytes
  bool utf8_accept = false;    // UTF8=ACCEPT enabled: mailbox names as UTF-8
};

class CommandBuilder {
 public:
  // Tags are `prefix` followed by a counter: "A1", "A2", ... The prefix must
  // be 1-8 letters (else "A" is used).
  explicit CommandBuilder(std::string prefix = "A");

  void set_options(const BuilderOptions& options) noexcept { options_ = options; }
  const BuilderOptions& options() const noexcept { return options_; }

  // Every call below that returns a Command consumes one tag, including a call
  // that fails (so tags are never reused).
  Command capability();
  Command noop();
  Command logout();
  Command starttls();
  Command compress_deflate();  // COMPRESS DEFLATE (RFC 4978)
  Command idle();              // awaits_continuation; end it with done()
  // "DONE\r\n" (untagged): ends IDLE.
  static std::string_view done() noexcept { return "DONE\r\n"; }

  Result<Command> login(std::string_view user, std::string_view password);
  // AUTHENTICATE PLAIN. sasl_ir (the server offers SASL-IR): one segment with
  // the initial response; else two segments (the response waits for "+").
  // authzid is usually empty.
  Result<Command> authenticate_plain(std::string_view user, std::string_view password, bool sasl_ir,
                                     std::string_view authzid = {});
  // AUTHENTICATE XOAUTH2 (Google, Microsoft). On failure the server sends a
  // "+ <base64 JSON>" challenge: answer sasl_empty_response(), then the
  // tagged NO follows.
  Result<Command> authenticate_xoauth2(std::string_view user, std::string_view token, bool sasl_ir);
  // AUTHENTICATE OAUTHBEARER (RFC 7628). host/port are sent when non-empty/0.
  // On failure answer the "+" challenge with sasl_oauthbearer_abort().
  Result<Command> authenticate_oauthbearer(std::string_view user, std::string_view token,
                                           bool sasl_ir, std::string_view host = {},
                                           std::uint16_t port = 0);
  static std::string_view sasl_empty_response() noexcept { return "\r\n"; }
  static std::string_view sasl_oauthbearer_abort() noexcept { return "AQ==\r\n"; }
  static std::string_view sasl_cancel() noexcept { return "*\r\n"; }

  // ENABLE cap... (atoms only, e.g. "CONDSTORE", "QRESYNC", "UTF8=ACCEPT").
  Result<Command> enable(std::span<const std::string_view> capabilities);
  // ID (("name" "crm-capture" ...)); an empty list sends ID NIL.
  Result<Command> id(std::span<const std::pair<std::string_view, std::string_view>> fields);

  // LIST reference pattern [RETURN (...)]. `pattern` may hold the wildcards *
  // and %; both are UTF-8 like mailbox names.
  Result<Command> list(std::string_view reference, std::string_view pattern,
                       const ListOptions& options = {});
  // STATUS mailbox (items). At least one item.
  Result<Command> status(std::string_view mailbox, const StatusItems& items);
  Result<Command> examine(std::string_view mailbox, const ExamineOptions& options = {});
  // NOTIFY SET (RFC 5465): the selected mailbox as without NOTIFY (EXISTS,
  // and EXPUNGE where IMAP4rev1 allows it: selected-delayed; no unsolicited
  // FETCH, no flag changes), and an unsolicited STATUS whenever a message
  // comes to or goes from one of `mailboxes` (at least one) while another
  // is selected.
  Result<Command> notify_set(std::span<const std::string> mailboxes);
  Command unselect();  // UNSELECT (RFC 3691): leave the mailbox

  // UID SEARCH [RETURN (...)] criteria.
  Result<Command> uid_search(const SearchCriteria& criteria, const SearchReturn& ret = {});
  // UID FETCH uids (attrs) [(CHANGEDSINCE n [VANISHED])]. UID is always
  // returned by the server for UID FETCH; it need not be in `attrs`.
  Result<Command> uid_fetch(const UidSet& uids, std::span<const FetchAttr> attrs,
                            const FetchModifiers& modifiers = {});

  // The tag the next command will get.
  std::string next_tag() const;

 private:
  std::string take_tag();

  std::string prefix_;
  std::uint64_t counter_ = 1;
  BuilderOptions options_;
};

// IMAP date form of a day, "1-Feb-2026" (for SEARCH SINCE/BEFORE).
std::string format_search_date(std::chrono::year_month_day day);

// Standard base64 (RFC 4648, with padding), for SASL.
std::string base64_encode(std::string_view bytes);
// Decodes standard base64 (whitespace not allowed); Errc::invalid_argument on
// malformed input. For reading SASL challenges (e.g. XOAUTH2 error JSON).
Result<std::string> base64_decode(std::string_view text);

}  // namespace crmcap::imap
