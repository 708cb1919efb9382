// SPDX-License-Identifier: Apache-2.0
// parse(): header fields through our own readers (headers.hpp), the body through
// body.cpp (mimetic for structure), the snippet through snippet.cpp.
#include "parsers/mail/mail.hpp"

#include "parsers/mail/body.hpp"
#include "parsers/mail/headers.hpp"
#include "parsers/mail/snippet.hpp"
#include "parsers/text/text.hpp"

#include <openssl/evp.h>

#include <array>
#include <exception>
#include <new>
#include <system_error>

namespace crmcap::mail {
namespace {

class ParseCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.mail.parse"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::empty_input:
        return "empty input";
      case Errc::too_large:
        return "message larger than the size limit";
      case Errc::no_header:
        return "no header field could be read";
      case Errc::bad_structure:
        return "MIME structure unreadable";
    }
    return "unknown mail parse error";
  }
};

constexpr std::size_t max_warnings = 64;

void add_warning(MailMessage& m, std::string w) {
  if (m.warnings.size() < max_warnings) m.warnings.push_back(std::move(w));
}

std::string_view raw_value(const detail::HeaderBlock& block, const detail::FieldName& name) {
  const detail::HeaderField* f = detail::find_field(block, name);
  return f == nullptr ? std::string_view() : std::string_view(f->value);
}

std::vector<Address> read_addresses(const detail::HeaderBlock& block, const detail::FieldName& name,
                                    std::string_view label, std::string_view fallback_charset,
                                    MailMessage& m) {
  std::vector<Address> out;
  detail::for_each_field(block, name, [&](const detail::HeaderField& f) {
    std::vector<std::string> problems;
    std::vector<Address> part = detail::parse_address_list(f.value, &problems, fallback_charset);
    out.insert(out.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
    for (std::string& p : problems) add_warning(m, std::string(label) + ": " + p);
  });
  return out;
}

// The synthetic key of a message without a Message-ID: SHA-256 over the raw
// From, To, Cc, Date and Subject values (each preceded by its name and ended by
// a NUL, so that moving text between fields changes the key), plus the raw body
// when neither From nor Date is present. Raw values, not our decoded ones, so
// the key does not change when the readers improve; header order, Received
// lines and the folder do not enter it, so INBOX and Sent copies agree. Shape:
// "syn-" + the first 32 hex digits (128 bits) + "@crm-capture.invalid".
std::string synthetic_message_id(const detail::HeaderBlock& block, std::string_view body) {
  static constexpr detail::FieldName names[] = {"From", "To", "Cc", "Date", "Subject"};
  std::string input;
  for (const detail::FieldName& name : names) {
    input += name.name();
    input += ':';
    input += raw_value(block, name);
    input.push_back('\0');
  }
  if (raw_value(block, "From").empty() && raw_value(block, "Date").empty()) input += body;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) {
    len = 0;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "syn-";
  for (unsigned int i = 0; i < len && i < 16; ++i) {
    id.push_back(hex[digest[i] >> 4]);
    id.push_back(hex[digest[i] & 0xF]);
  }
  if (len == 0) id += "0";  // OpenSSL failed: still a well-formed key
  id += "@crm-capture.invalid";
  return id;
}

Result<MailMessage> parse_impl(std::string_view raw, const ParseOptions& options) {
  if (raw.empty()) return ParseError{make_error_code(Errc::empty_input), "empty input"};
  if (raw.size() > options.max_bytes) {
    return ParseError{
        make_error_code(Errc::too_large),
        std::to_string(raw.size()) + " bytes, limit " + std::to_string(options.max_bytes)};
  }
  const detail::HeaderBlock block = detail::split_header(raw);
  if (block.fields.empty()) {
    std::string why = "no header field";
    if (!block.problems.empty()) why += ": " + block.problems.front();
    return ParseError{make_error_code(Errc::no_header), text::repair_utf8(why)};
  }
  const std::string_view body =
      block.body_offset < raw.size() ? raw.substr(block.body_offset) : std::string_view();

  MailMessage m;
  for (const std::string& p : block.problems) add_warning(m, text::repair_utf8(p));

  // Raw 8-bit bytes in a Subject or a display name are most often in the body's charset.
  const std::string_view content_type = raw_value(block, "Content-Type");
  const text::HeaderParams top_type = text::parse_params(content_type);
  std::string fallback_charset;
  if (auto it = top_type.params.find("charset"); it != top_type.params.end()) {
    fallback_charset = it->second;
  }
  m.from = read_addresses(block, "From", "from", fallback_charset, m);
  m.sender = read_addresses(block, "Sender", "sender", fallback_charset, m);
  m.reply_to = read_addresses(block, "Reply-To", "reply-to", fallback_charset, m);
  m.to = read_addresses(block, "To", "to", fallback_charset, m);
  m.cc = read_addresses(block, "Cc", "cc", fallback_charset, m);
  m.bcc = read_addresses(block, "Bcc", "bcc", fallback_charset, m);

  const detail::HeaderField* date = detail::find_field(block, "Date");
  std::optional<std::int64_t> when;
  if (date != nullptr) {
    m.date_raw = text::repair_utf8(date->value);
    when = detail::parse_date(date->value);
  }
  if (when) {
    m.date = *when;
  } else {
    m.date = options.received_at;
    m.date_fallback = true;
    add_warning(m, date == nullptr
                       ? std::string("date: missing; using the receive time")
                       : "date: unreadable '" +
                             text::repair_utf8(std::string_view(date->value).substr(0, 80)) +
                             "'; using the receive time");
  }

  m.subject = text::decode_words(raw_value(block, "Subject"), fallback_charset);

  if (const detail::HeaderField* f = detail::find_field(block, "Message-ID")) {
    m.message_id = message_id_of(f->value);
    if (m.message_id.empty()) {
      add_warning(m, "message-id: unreadable '" + text::repair_utf8(f->value.substr(0, 80)) +
                         "'; using a synthetic key");
    }
  }
  if (m.message_id.empty()) {
    m.message_id = synthetic_message_id(block, body);
    m.message_id_synthetic = true;
  }
  if (const detail::HeaderField* f = detail::find_field(block, "In-Reply-To")) {
    std::vector<std::string> ids = detail::parse_msg_ids(f->value);
    if (!ids.empty()) m.in_reply_to = text::repair_utf8(ids.front());
  }
  detail::for_each_field(block, "References", [&](const detail::HeaderField& f) {
    for (std::string& id : detail::parse_msg_ids(f.value)) {
      m.references.push_back(text::repair_utf8(id));
    }
  });

  m.list_id = text::repair_utf8(raw_value(block, "List-Id"));
  m.list_unsubscribe = text::repair_utf8(raw_value(block, "List-Unsubscribe"));
  m.precedence = text::repair_utf8(raw_value(block, "Precedence"));
  m.auto_submitted = text::repair_utf8(raw_value(block, "Auto-Submitted"));
  m.x_autoreply = text::repair_utf8(raw_value(block, "X-Autoreply"));
  m.sensitivity = text::repair_utf8(raw_value(block, "Sensitivity"));
  m.importance = text::repair_utf8(raw_value(block, "Importance"));

  detail::TopFields top;
  top.content_type = content_type;
  top.transfer_encoding = raw_value(block, "Content-Transfer-Encoding");
  top.disposition = raw_value(block, "Content-Disposition");
  detail::BodyResult b = detail::read_body(top, body);
  m.text = std::move(b.text);
  m.attachments = std::move(b.attachments);
  m.calendar_parts = std::move(b.calendar_parts);
  for (std::string& w : b.warnings) add_warning(m, std::move(w));
  if (!b.error.empty()) {
    m.body_error = b.error;
    add_warning(m, std::move(b.error));
  }
  m.snippet = detail::make_snippet(m.text, options.snippet_chars);
  return m;
}

}  // namespace

const std::error_category& parse_category() noexcept {
  static const ParseCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), parse_category()}; }

void throw_exception_from_error(const ParseError& e, const boost::source_location&) {
  throw std::system_error(e.code, e.message);
}

Result<MailMessage> parse(std::string_view raw, const ParseOptions& options) {
  // The readers do not throw; this is the last line for std::bad_alloc and for
  // anything a library might still raise.
  try {
    return parse_impl(raw, options);
  } catch (const std::bad_alloc&) {
    return ParseError{make_error_code(Errc::too_large), "out of memory"};
  } catch (const std::exception& e) {
    return ParseError{make_error_code(Errc::bad_structure),
                      text::repair_utf8(std::string("internal: ") + e.what())};
  } catch (...) {
    return ParseError{make_error_code(Errc::bad_structure), "internal: unknown failure"};
  }
}

std::string message_id_of(std::string_view field_value) {
  std::vector<std::string> ids = detail::parse_msg_ids(field_value);
  return ids.empty() ? std::string() : text::repair_utf8(ids.front());
}

}  // namespace crmcap::mail
