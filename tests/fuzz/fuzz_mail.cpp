// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for crmcap::mail::parse(). Contract checked: parse() never
// throws or crashes, and every string it returns is valid UTF-8 with the
// snippet within its bound. Seed with tests/corpora/mail.
#include "parsers/mail/mail.hpp"
#include "parsers/text/text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_mail: contract broken: %s\n", what);
    __builtin_trap();
  }
}

void require_utf8(std::string_view s, const char* what) {
  require(crmcap::text::is_valid_utf8(s), what);
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  crmcap::mail::ParseOptions options;
  options.received_at = 1795000000;
  options.snippet_chars = 280;
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const auto result = crmcap::mail::parse(raw, options);
  if (!result) {
    require(static_cast<bool>(result.error().code), "error without a code");
    require_utf8(result.error().message, "error message");
    return 0;
  }
  const crmcap::mail::MailMessage& m = *result;
  for (const auto* list : {&m.from, &m.sender, &m.reply_to, &m.to, &m.cc, &m.bcc}) {
    for (const auto& a : *list) {
      require_utf8(a.name, "address name");
      require_utf8(a.address, "address");
    }
  }
  require_utf8(m.subject, "subject");
  require_utf8(m.message_id, "message_id");
  require(!m.message_id.empty(), "empty message_id");
  require_utf8(m.in_reply_to, "in_reply_to");
  for (const auto& r : m.references) require_utf8(r, "references");
  for (const auto* s : {&m.date_raw, &m.list_id, &m.list_unsubscribe, &m.precedence,
                        &m.auto_submitted, &m.x_autoreply, &m.sensitivity, &m.importance}) {
    require_utf8(*s, "raw header value");
  }
  require_utf8(m.text, "text");
  require_utf8(m.snippet, "snippet");
  // truncate_utf8 may append "…" after max_chars code points.
  require(code_points(m.snippet) <= options.snippet_chars + 1, "snippet too long");
  for (const auto& a : m.attachments) {
    require_utf8(a.filename, "attachment filename");
    require_utf8(a.media_type, "attachment media type");
  }
  for (const auto& c : m.calendar_parts) {
    require_utf8(c.method, "calendar method");
    require_utf8(c.uid, "calendar uid");
    require_utf8(c.text, "calendar text");
  }
  for (const auto& w : m.warnings) require_utf8(w, "warning");
  require_utf8(m.body_error, "body_error");
  return 0;
}
