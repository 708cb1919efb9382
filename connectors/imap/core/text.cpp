// SPDX-License-Identifier: Apache-2.0
// to_text(): the canonical one-line form of a Response (see parser.hpp and
// tests/transcripts/imap/README.md).
#include "connectors/imap/core/parser.hpp"

#include <cstdio>

namespace crmcap::imap {

namespace {

void quote(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void nstring(std::string& out, const NString& s) {
  if (s) {
    quote(out, *s);
  } else {
    out += "NIL";
  }
}

void words(std::string& out, const std::vector<std::string>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    out += v[i];
  }
}

void word_list(std::string& out, const std::vector<std::string>& v) {
  out += '(';
  words(out, v);
  out += ')';
}

void string_list(std::string& out, const std::vector<std::string>& v) {
  out += '(';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    quote(out, v[i]);
  }
  out += ')';
}

std::string_view status_name(Status s) {
  switch (s) {
    case Status::ok:
      return "OK";
    case Status::no:
      return "NO";
    case Status::bad:
      return "BAD";
    case Status::bye:
      return "BYE";
    case Status::preauth:
      return "PREAUTH";
  }
  return "?";
}

void status_text(std::string& out, Status s, const std::optional<ResponseCode>& code,
                 const std::string& text) {
  out += status_name(s);
  if (code) {
    out += " [";
    out += code->name;
    if (!code->raw.empty()) {
      out += ' ';
      out += code->raw;
    }
    out += ']';
  }
  out += ' ';
  quote(out, text);
}

void addresses(std::string& out, const std::vector<EnvelopeAddress>& v) {
  if (v.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  for (const EnvelopeAddress& a : v) {
    out += '(';
    nstring(out, a.name);
    out += ' ';
    nstring(out, a.adl);
    out += ' ';
    nstring(out, a.mailbox);
    out += ' ';
    nstring(out, a.host);
    out += ')';
  }
  out += ')';
}

void envelope(std::string& out, const Envelope& e) {
  out += '(';
  nstring(out, e.date);
  out += ' ';
  nstring(out, e.subject);
  for (const auto* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
    out += ' ';
    addresses(out, *list);
  }
  out += ' ';
  nstring(out, e.in_reply_to);
  out += ' ';
  nstring(out, e.message_id);
  out += ')';
}

void params(std::string& out, const std::vector<BodyParam>& v) {
  out += '(';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    out += v[i].name;
    out += '=';
    quote(out, v[i].value);
  }
  out += ')';
}

void body(std::string& out, const BodyStructure& b) {
  out += '(';
  out += b.type;
  out += '/';
  out += b.subtype;
  out += " part=";
  quote(out, b.section);
  if (!b.params.empty()) {
    out += " params=";
    params(out, b.params);
  }
  if (b.id) {
    out += " id=";
    quote(out, *b.id);
  }
  if (b.description) {
    out += " desc=";
    quote(out, *b.description);
  }
  if (!b.is_multipart()) {
    out += " enc=";
    out += b.encoding;
    out += " size=";
    out += std::to_string(b.size);
  }
  if (b.lines) {
    out += " lines=";
    out += std::to_string(*b.lines);
  }
  if (b.md5) {
    out += " md5=";
    quote(out, *b.md5);
  }
  if (b.disposition) {
    out += " disp=";
    out += b.disposition->type;
    params(out, b.disposition->params);
  }
  if (!b.language.empty()) {
    out += " lang=";
    string_list(out, b.language);
  }
  if (b.location) {
    out += " loc=";
    quote(out, *b.location);
  }
  if (b.envelope) {
    out += " envelope=";
    envelope(out, *b.envelope);
  }
  for (const BodyStructure& p : b.parts) {
    out += ' ';
    body(out, p);
  }
  out += ')';
}

struct Printer {
  std::string& out;

  void operator()(const TaggedStatus& t) {
    out += "tagged ";
    out += t.tag;
    out += ' ';
    status_text(out, t.status, t.code, t.text);
  }
  void operator()(const UntaggedStatus& u) {
    out += "untagged ";
    status_text(out, u.status, u.code, u.text);
  }
  void operator()(const Continuation& c) {
    out += "continuation ";
    quote(out, c.text);
  }
  void operator()(const Capabilities& c) {
    out += "capability ";
    words(out, c.names);
  }
  void operator()(const Flags& f) {
    out += "flags ";
    word_list(out, f.flags);
  }
  void operator()(const Exists& e) { out += "exists " + std::to_string(e.count); }
  void operator()(const Recent& r) { out += "recent " + std::to_string(r.count); }
  void operator()(const Expunge& e) { out += "expunge " + std::to_string(e.seq); }
  void operator()(const Vanished& v) {
    out += v.earlier ? "vanished earlier " : "vanished ";
    out += v.uids.to_string();
  }
  void operator()(const FetchItem& f) {
    out += "fetch " + std::to_string(f.seq);
    if (f.uid) out += " uid=" + std::to_string(*f.uid);
    if (f.modseq) out += " modseq=" + std::to_string(*f.modseq);
    if (f.flags) {
      out += " flags=";
      word_list(out, *f.flags);
    }
    if (f.internaldate) {
      out += " internaldate=";
      quote(out, *f.internaldate);
    }
    if (f.size) out += " size=" + std::to_string(*f.size);
    if (f.gm_msgid) out += " gm_msgid=" + std::to_string(*f.gm_msgid);
    if (f.gm_thrid) out += " gm_thrid=" + std::to_string(*f.gm_thrid);
    if (f.gm_labels) {
      out += " gm_labels=";
      string_list(out, *f.gm_labels);
    }
    if (f.envelope) {
      out += " envelope=";
      envelope(out, *f.envelope);
    }
    if (f.body) {
      out += " body=";
      body(out, *f.body);
    }
    for (const BodySection& s : f.sections) {
      out += s.binary ? " BINARY[" : " BODY[";
      out += s.section.to_string();
      out += ']';
      if (s.origin) out += "<" + std::to_string(*s.origin) + ">";
      out += '=';
      nstring(out, s.data);
    }
    if (!f.unknown.empty()) {
      out += " unknown=";
      word_list(out, f.unknown);
    }
  }
  void operator()(const Esearch& e) {
    out += "esearch";
    if (!e.tag.empty()) {
      out += " tag=";
      quote(out, e.tag);
    }
    if (e.uid) out += " uid";
    if (e.min) out += " min=" + std::to_string(*e.min);
    if (e.max) out += " max=" + std::to_string(*e.max);
    if (e.count) out += " count=" + std::to_string(*e.count);
    if (!e.all.empty()) out += " all=" + e.all.to_string();
    if (e.modseq) out += " modseq=" + std::to_string(*e.modseq);
  }
  void operator()(const Search& s) {
    out += "search";
    for (std::uint32_t id : s.ids) out += " " + std::to_string(id);
    if (s.modseq) out += " modseq=" + std::to_string(*s.modseq);
  }
  void operator()(const ListEntry& l) {
    out += l.lsub ? "lsub " : "list ";
    word_list(out, l.attributes);
    out += ' ';
    if (l.delimiter) {
      quote(out, std::string_view(&*l.delimiter, 1));
    } else {
      out += "NIL";
    }
    out += ' ';
    quote(out, l.mailbox);
    if (l.mailbox != l.mailbox_raw) {
      out += " raw=";
      quote(out, l.mailbox_raw);
    }
  }
  void operator()(const MailboxStatus& s) {
    out += "status ";
    quote(out, s.mailbox);
    if (s.mailbox != s.mailbox_raw) {
      out += " raw=";
      quote(out, s.mailbox_raw);
    }
    auto put = [&](const char* name, const auto& v) {
      if (v) out += std::string(" ") + name + "=" + std::to_string(*v);
    };
    put("messages", s.messages);
    put("recent", s.recent);
    put("uidnext", s.uidnext);
    put("uidvalidity", s.uidvalidity);
    put("unseen", s.unseen);
    put("highestmodseq", s.highestmodseq);
    put("size", s.size);
  }
  void operator()(const Enabled& e) {
    out += "enabled ";
    words(out, e.capabilities);
  }
  void operator()(const IdInfo& i) {
    out += "id ";
    if (i.fields.empty()) {
      out += "NIL";
      return;
    }
    out += '(';
    for (std::size_t k = 0; k < i.fields.size(); ++k) {
      if (k) out += ' ';
      quote(out, i.fields[k].first);
      out += ' ';
      nstring(out, i.fields[k].second);
    }
    out += ')';
  }
  void operator()(const Unrecognized& u) {
    out += "unrecognized ";
    out += u.name;
    out += ' ';
    quote(out, u.line);
  }
};

}  // namespace

std::string to_text(const Response& response) {
  std::string out;
  std::visit(Printer{out}, response);
  // Trailing spaces (e.g. "capability " with no names) are trimmed so that
  // transcript files need none.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string_view kind_name(const Response& response) noexcept {
  static constexpr std::string_view kNames[] = {
      "tagged", "untagged", "continuation", "capability", "flags",       "exists",
      "recent", "expunge",  "vanished",     "fetch",      "esearch",     "search",
      "list",   "status",   "enabled",      "id",         "unrecognized"};
  static_assert(std::size(kNames) == std::variant_size_v<Response>);
  return kNames[response.index()];
}

}  // namespace crmcap::imap
