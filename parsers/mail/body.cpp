// SPDX-License-Identifier: Apache-2.0
#include "parsers/mail/body.hpp"

#include "parsers/mail/alternative.hpp"

#include "parsers/text/text.hpp"

#include <mimetic/mimetic.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <new>
#include <typeinfo>

namespace crmcap::mail::detail {
namespace {

using text::iequals;
using text::to_lower_copy;
using text::trim;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The raw value of the first header field `name` of a mimetic entity. For
// Content-Type this is mimetic's own rendering ("type/subtype; p=\"v\""): its
// parser turns that one field into a typed value to find boundaries, and the
// original string is gone by the time we see the entity.
std::string field_value(const mimetic::MimeEntity& e, std::string_view name) {
  for (const mimetic::Field& f : e.header()) {
    const mimetic::istring& n = f.name();
    if (iequals(std::string_view(n.data(), n.size()), name)) return f.value();
  }
  return {};
}

// Approximate length of an entity as written: header fields, body, children.
std::uint64_t entity_size(const mimetic::MimeEntity& e, int depth) {
  std::uint64_t size = e.body().size();
  for (const mimetic::Field& f : e.header()) size += f.name().size() + f.value().size() + 4;
  if (depth < 64) {
    for (const mimetic::MimeEntity* child : e.body().parts()) {
      if (child != nullptr) size += entity_size(*child, depth + 1);
    }
  }
  return size;
}

enum class Encoding { identity, base64, quoted_printable };

struct PartInfo {
  text::HeaderParams type;
  text::HeaderParams disposition;
  Encoding encoding = Encoding::identity;
  std::string media;     // lowercase type/subtype, defaulted
  std::string filename;  // decoded, may be empty
};

class Walker {
 public:
  Walker(BodyResult& out, const BodyLimits& limits) : out_(out), limits_(limits) {}

  PartInfo describe(std::string_view content_type, std::string_view cte,
                    std::string_view disposition, bool digest_child) {
    PartInfo info;
    info.type = text::parse_params(content_type);
    info.disposition = text::parse_params(disposition);
    info.media = to_lower_copy(trim(info.type.value));
    if (info.media.find('/') == std::string::npos) {
      if (!info.media.empty()) warn("mime: unreadable content type '" + clip(content_type) + "'");
      info.media = digest_child ? "message/rfc822" : "text/plain";
    }
    const std::string enc = to_lower_copy(trim(cte));
    if (enc == "base64") {
      info.encoding = Encoding::base64;
    } else if (enc == "quoted-printable") {
      info.encoding = Encoding::quoted_printable;
    } else if (!enc.empty() && enc != "7bit" && enc != "8bit" && enc != "binary") {
      warn("mime: unknown transfer encoding '" + clip(cte) + "', read as 8bit");
    }
    if (auto it = info.disposition.params.find("filename"); it != info.disposition.params.end()) {
      info.filename = it->second;
    }
    if (info.filename.empty()) {
      if (auto it = info.type.params.find("name"); it != info.type.params.end()) {
        info.filename = it->second;
      }
    }
    info.filename = std::string(trim(info.filename));
    return info;
  }

  // Visits an entity whose header is already described. `text_ok` says whether
  // a text leaf here may become the message text.
  void visit(const mimetic::MimeEntity& e, const PartInfo& info, std::size_t depth, bool text_ok) {
    if (++parts_ > limits_.max_parts) {
      if (!parts_capped_)
        warn("mime: more than " + std::to_string(limits_.max_parts) +
             " parts; the rest is ignored");
      parts_capped_ = true;
      return;
    }
    const std::string& media = info.media;
    if (media.starts_with("multipart/")) {
      visit_multipart(e, info, depth, text_ok);
    } else if (media == "message/rfc822" || media == "message/global") {
      // A forwarded or bounced message: an attachment, never our text.
      Attachment a;
      a.filename = info.filename;
      a.media_type = media;
      a.size = entity_size(e, 0);
      out_.attachments.push_back(std::move(a));
    } else {
      visit_leaf(std::string_view(e.body()), info, text_ok);
    }
  }

  void visit_leaf(std::string_view data, const PartInfo& info, bool text_ok) {
    const std::string& media = info.media;
    const bool text_media = media == "text/plain" || media == "text/html";
    const bool calendar = media == "text/calendar" || media == "application/ics";
    const bool attachment = info.disposition.value == "attachment" || !info.filename.empty() ||
                            (!text_media && !calendar);
    if (calendar) read_calendar(data, info);
    if (attachment) {
      Attachment a;
      a.filename = info.filename;
      a.media_type = media;
      a.size = decoded_size(data, info.encoding);
      out_.attachments.push_back(std::move(a));
      return;
    }
    if (!text_ok || !text_media) return;
    std::string decoded = to_text(data, info);
    std::string& target = media == "text/plain" ? plain_ : html_;
    if (!target.empty()) target.push_back('\n');
    target += decoded;
  }

  void visit_multipart(const mimetic::MimeEntity& e, const PartInfo& info, std::size_t depth,
                       bool text_ok) {
    if (depth >= limits_.max_depth) {
      warn("mime: nesting deeper than " + std::to_string(limits_.max_depth) + "; not read");
      return;
    }
    const mimetic::MimeEntityList& children = e.body().parts();
    if (children.empty()) {
      warn("mime: " + info.media + " without parts (boundary '" + boundary(info) +
           "' not found); its text read as plain text");
      // Everything went to the preamble: it is the best text there is.
      PartInfo plain;
      plain.media = "text/plain";
      visit_leaf(e.body().preamble(), plain, text_ok);
      return;
    }
    const bool digest = info.media == "multipart/digest";
    std::vector<PartInfo> infos;
    infos.reserve(std::min<std::size_t>(children.size(), limits_.max_parts));
    for (const mimetic::MimeEntity* child : children) {
      if (infos.size() >= limits_.max_parts) break;
      infos.push_back(describe(field_value(*child, "Content-Type"),
                               field_value(*child, "Content-Transfer-Encoding"),
                               field_value(*child, "Content-Disposition"), digest));
    }
    // multipart/alternative: text comes from one alternative only, preferring
    // text/plain; the others are still walked for iMIP parts and attachments.
    std::size_t chosen = infos.size();
    if (info.media == "multipart/alternative") {
      int best = -1;
      for (std::size_t i = 0; i < infos.size(); ++i) {
        const int rank = alternative_rank(infos[i].media);
        if (rank > best) {
          best = rank;
          chosen = i;
        }
      }
    }
    std::size_t i = 0;
    for (const mimetic::MimeEntity* child : children) {
      if (i >= infos.size()) break;
      const bool child_text_ok = text_ok && (chosen == infos.size() || chosen == i);
      if (child != nullptr) visit(*child, infos[i], depth + 1, child_text_ok);
      ++i;
    }
  }

  std::string finish_text() {
    if (!trim(plain_).empty()) return std::move(plain_);
    if (!html_.empty()) return text::html_to_text(html_);
    return std::move(plain_);
  }

  void warn(std::string w) {
    if (out_.warnings.size() < 50) out_.warnings.push_back(std::move(w));
  }

 private:
  static std::string clip(std::string_view s) { return text::repair_utf8(s.substr(0, 80)); }

  static std::string boundary(const PartInfo& info) {
    auto it = info.type.params.find("boundary");
    return it == info.type.params.end() ? std::string() : clip(it->second);
  }

  std::string decode(std::string_view data, Encoding enc) {
    switch (enc) {
      case Encoding::base64: {
        bool junk = false;
        std::string out;
        text::decode_base64(data, out, text::Base64Padding::restart, &junk);
        if (junk) warn("body: invalid characters in base64 skipped");
        return out;
      }
      case Encoding::quoted_printable:
        return decode_quoted_printable(data);
      case Encoding::identity:
        break;
    }
    return std::string(data);
  }

  static std::uint64_t decoded_size(std::string_view data, Encoding enc) {
    switch (enc) {
      case Encoding::base64:
        return text::base64_decoded_size(data);
      case Encoding::quoted_printable:
        return quoted_printable_decoded_size(data);
      case Encoding::identity:
        break;
    }
    return data.size();
  }

  // Decoded bytes of a text part converted to UTF-8, with LF line ends (a
  // base64 or single-part body keeps the sender's CRLF until here).
  std::string to_text(std::string_view data, const PartInfo& info) {
    std::string utf8 = to_utf8_text(data, info);
    if (utf8.find('\r') == std::string::npos) return utf8;
    return normalize_newlines(utf8);
  }

  std::string to_utf8_text(std::string_view data, const PartInfo& info) {
    std::string bytes = decode(data, info.encoding);
    std::string charset;
    if (auto it = info.type.params.find("charset"); it != info.type.params.end()) {
      charset = to_lower_copy(trim(it->second));
    }
    if (charset.empty() || charset == "us-ascii" || charset == "ascii") {
      if (text::is_valid_utf8(bytes)) return bytes;
      // Undeclared 8-bit text: Windows-1252 is what such mail nearly always is.
      warn("body: undeclared 8-bit text read as windows-1252");
      return text::to_utf8(bytes, "windows-1252");
    }
    return text::to_utf8(bytes, charset);
  }

  void read_calendar(std::string_view data, const PartInfo& info) {
    CalendarPart part;
    part.text = to_text(data, info);
    part.method = ical_property(part.text, "METHOD", false);
    if (part.method.empty()) {
      if (auto it = info.type.params.find("method"); it != info.type.params.end()) {
        part.method = std::string(trim(it->second));
      }
    }
    if (part.method.empty()) return;  // a calendar file, not an iMIP message
    for (char& c : part.method) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    part.uid = ical_property(part.text, "UID", true);
    // Outlook sends the same invitation inline and as invite.ics: keep one.
    for (const CalendarPart& seen : out_.calendar_parts) {
      if (seen.method == part.method && seen.uid == part.uid && seen.text == part.text) return;
    }
    out_.calendar_parts.push_back(std::move(part));
  }

  BodyResult& out_;
  const BodyLimits& limits_;
  std::size_t parts_ = 0;
  bool parts_capped_ = false;
  std::string plain_, html_;
};

}  // namespace

MimeBounds mime_bounds(std::string_view buf) noexcept {
  // One pass over the bytes (this runs on every message of any size):
  // "multipart" and "rfc822" anywhere, in any case, and "--" pairs, each dash
  // in at most one pair.
  std::size_t multipart = 0, rfc822 = 0, dashes = 0;
  const std::size_t n = buf.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = buf[i];
    if (c == '-') {
      if (i + 1 < n && buf[i + 1] == '-') {
        ++dashes;
        ++i;
      }
      continue;
    }
    // c | 0x20 is 'm' or 'r' only for those letters in either case.
    const char folded = static_cast<char>(c | 0x20);
    if (folded == 'm') {
      multipart += iequals(buf.substr(i, 9), "multipart") ? 1 : 0;
    } else if (folded == 'r') {
      rfc822 += iequals(buf.substr(i, 6), "rfc822") ? 1 : 0;
    }
  }
  MimeBounds b;
  b.containers = multipart + rfc822;
  b.entities = 1 + dashes + rfc822;
  return b;
}

std::string normalize_newlines(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const void* p = std::memchr(in.data() + i, '\r', in.size() - i);
    if (p == nullptr) {
      out.append(in.data() + i, in.size() - i);
      break;
    }
    const std::size_t cr = static_cast<std::size_t>(static_cast<const char*>(p) - in.data());
    out.append(in.data() + i, cr - i);
    out.push_back('\n');
    i = cr + 1;
    if (i < in.size() && in[i] == '\n') ++i;
  }
  return out;
}

namespace {

// Shared by the decoder and the size count: calls emit(byte) for each byte.
template <class Emit>
void walk_quoted_printable(std::string_view in, Emit&& emit) {
  std::size_t i = 0;
  const std::size_t n = in.size();
  while (i < n) {
    const char c = in[i];
    if (c == '=') {
      // Soft line break: "=" then optional trailing blanks then a line end.
      std::size_t j = i + 1;
      while (j < n && (in[j] == ' ' || in[j] == '\t')) ++j;
      if (j < n && (in[j] == '\n' || in[j] == '\r')) {
        if (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n') ++j;
        i = j + 1;
        continue;
      }
      if (j == n) {  // "=" at the very end: a soft break before EOF
        i = n;
        continue;
      }
      if (i + 2 < n && hex_digit(in[i + 1]) >= 0 && hex_digit(in[i + 2]) >= 0) {
        emit(static_cast<char>(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2])));
        i += 3;
        continue;
      }
      emit('=');  // malformed: keep as written
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t') {
      // Trailing blanks before a line end are padding added in transport.
      std::size_t j = i;
      while (j < n && (in[j] == ' ' || in[j] == '\t')) ++j;
      if (j == n || in[j] == '\n' || in[j] == '\r') {
        i = j;
        continue;
      }
      for (; i < j; ++i) emit(in[i]);
      continue;
    }
    emit(c);
    ++i;
  }
}

}  // namespace

std::string decode_quoted_printable(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  walk_quoted_printable(in, [&](char c) { out.push_back(c); });
  return out;
}

std::uint64_t quoted_printable_decoded_size(std::string_view in) noexcept {
  std::uint64_t n = 0;
  walk_quoted_printable(in, [&](char) { ++n; });
  return n;
}

std::string ical_property(std::string_view ics, std::string_view name, bool in_vevent) {
  bool active = !in_vevent;
  std::size_t pos = 0;
  while (pos < ics.size()) {
    std::size_t end = ics.find('\n', pos);
    if (end == std::string_view::npos) end = ics.size();
    std::string_view line = ics.substr(pos, end - pos);
    std::size_t next = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!active) {
      if (iequals(trim(line), "BEGIN:VEVENT")) active = true;
      pos = next;
      continue;
    }
    // Property name ends at ':' or ';'.
    const std::size_t stop = line.find_first_of(":;");
    if (stop != std::string_view::npos && iequals(trim(line.substr(0, stop)), name)) {
      const std::size_t colon = line.find(':', stop);
      if (colon == std::string_view::npos) return {};
      std::string value(line.substr(colon + 1));
      // Folded continuation lines (RFC 5545 3.1) start with a space or tab.
      while (next < ics.size() && (ics[next] == ' ' || ics[next] == '\t')) {
        std::size_t e2 = ics.find('\n', next);
        if (e2 == std::string_view::npos) e2 = ics.size();
        std::string_view cont = ics.substr(next + 1, e2 - next - 1);
        if (!cont.empty() && cont.back() == '\r') cont.remove_suffix(1);
        value += cont;
        next = e2 + 1;
      }
      return std::string(trim(value));
    }
    if (in_vevent && iequals(trim(line), "END:VEVENT")) return {};
    pos = next;
  }
  return {};
}

std::string mimetic_load_error(std::string_view raw) {
  try {
    mimetic::MimeEntity entity;
    entity.load(raw.data(), raw.data() + raw.size());
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  }
  return {};
}

BodyResult read_body(const TopFields& top, std::string_view body, const BodyLimits& limits) {
  BodyResult out;
  try {
    Walker walker(out, limits);
    const PartInfo root =
        walker.describe(top.content_type, top.transfer_encoding, top.disposition, false);
    const bool container = root.media.starts_with("multipart/") || root.media == "message/rfc822" ||
                           root.media == "message/global";
    if (!container) {
      // A single part: no structure to read, so mimetic has nothing to do.
      walker.visit_leaf(body, root, true);
      out.text = walker.finish_text();
      return out;
    }
    // mimetic gets a header block of one field, the top-level Content-Type as we
    // read it, so that its view of the top level is ours (it would otherwise
    // stop at an mbox "From " line, take the first of two Content-Type fields,
    // and parse every header field a second time).
    std::string buf = "Content-Type: ";
    for (char c : top.content_type) buf.push_back(c == '\r' || c == '\n' ? ' ' : c);
    buf += "\n\n";
    buf += normalize_newlines(body);
    // Every entity needs two bytes ("--") and every container six ("rfc822"), so
    // a small body is within bounds without counting.
    const bool small = buf.size() / 2 + buf.size() / 6 + 1 <= limits.max_entities &&
                       buf.size() / 6 <= limits.max_containers;
    const MimeBounds bounds = small ? MimeBounds{} : mime_bounds(buf);
    if (bounds.containers > limits.max_containers || bounds.entities > limits.max_entities) {
      out.error = "mime: structure too large to read safely (up to " +
                  std::to_string(bounds.containers) + " nested containers, " +
                  std::to_string(bounds.entities) + " parts)";
      return out;
    }
    // Default-constructed, then load(): should mimetic throw, the destructor
    // still runs and frees the entities built so far. (The constructor that
    // parses leaks them, since a throwing constructor runs no destructor.)
    mimetic::MimeEntity entity;
    try {
      entity.load(buf.data(), buf.data() + buf.size());
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      out.error = std::string("mime: ") + e.what();
    }
    // After a failure the entities built so far are walked too: they are
    // complete objects and may hold the text.
    walker.visit(entity, root, 0, true);
    out.text = walker.finish_text();
  } catch (const std::bad_alloc&) {
    out.error = "mime: out of memory";
  } catch (const std::exception& e) {
    out.error = std::string("mime: ") + e.what();
  } catch (...) {
    out.error = "mime: unknown failure";
  }
  return out;
}

}  // namespace crmcap::mail::detail
