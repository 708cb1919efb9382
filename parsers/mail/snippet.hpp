// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/mail: the "new text" snippet of a message body.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace crmcap::mail::detail {

// Returns the part of `body` (UTF-8, LF or CRLF line ends) that the sender wrote
// in this message: everything from the first quoted-reply marker on is dropped
// ("On ... wrote:" and its German, French, Spanish, Italian, Dutch, Portuguese,
// Scandinavian, Polish and Russian forms; "-----Original Message-----"; Outlook's
// "From: ... Sent: ..." block; a line of underscores; "Begin forwarded message:"),
// lines starting with '>' are dropped wherever they are, and the signature is
// dropped (a "-- " line, a mobile "Sent from my ..." line, or a short sign-off
// line such as "Best regards," that follows some text). The rest has its
// whitespace folded to single spaces and is cut to at most `max_chars` code
// points. The result is valid UTF-8 when `body` is; it may be empty.
std::string make_snippet(std::string_view body, std::size_t max_chars);

// The same cut without folding or truncation: the kept lines joined by '\n'.
// With `enough`, it stops after the first line that brings the kept text past
// `enough` characters that folding keeps (make_snippet cuts there anyway, so
// the rest of a long body is not checked line by line; it is still split into
// lines first). Exposed for tests.
std::string strip_quotes_and_signature(std::string_view body,
                                       std::size_t enough = std::string::npos);

}  // namespace crmcap::mail::detail
