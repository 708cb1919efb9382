// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/parts.hpp"

#include "connectors/imap/core/detail.hpp"
#include "parsers/mail/alternative.hpp"

#include <algorithm>
#include <utility>

namespace crmcap::imap::detail {

namespace {
// Which part of a multipart/alternative capture takes its text from: the
// first of the highest mail::alternative_rank(), the parser's own choice. The
// other alternatives it reads for calendar parts (iMIP) only. npos: not an
// alternative.
std::size_t chosen_alternative(const BodyStructure& b) {
  if (!b.is_multipart() || b.subtype != "alternative") return std::string::npos;
  std::size_t chosen = std::string::npos;
  int best = -1;
  for (std::size_t i = 0; i < b.parts.size(); ++i) {
    const int rank = mail::alternative_rank(b.parts[i].type + "/" + b.parts[i].subtype);
    if (rank > best) {
      best = rank;
      chosen = i;
    }
  }
  return chosen;
}

// Whether capture takes the text of part `i` of a multipart from elsewhere:
// an alternative above it was not chosen (`above`), or it is an alternative
// other than the `chosen` one (npos: the multipart is no alternative).
bool text_elsewhere(std::size_t chosen, std::size_t i, bool above) {
  return above || (chosen != std::string::npos && i != chosen);
}

// Whether capture needs a leaf part's bytes: readable text that is not an
// attachment (and not an alternative whose text capture takes from another,
// `elsewhere`: the HTML beside a text/plain), and small calendar parts
// (iMIP), wherever they are.
bool wanted_leaf(const BodyStructure& b, std::uint32_t max_part, bool elsewhere = false) {
  if (b.type != "text") return false;
  const bool attachment = b.disposition && b.disposition->type == "attachment";
  if (b.subtype == "calendar") return b.size <= max_part;
  if (attachment || elsewhere) return false;
  return b.subtype == "plain" || b.subtype == "html";
}

void collect_sections(const BodyStructure& b, bool root, std::uint32_t max_part, bool elsewhere,
                      std::vector<FetchAttr>& attrs) {
  if (!root) attrs.push_back(FetchAttr::body_peek(Section{b.section, SectionText::mime, {}}));
  if (b.is_multipart()) {
    const std::size_t chosen = chosen_alternative(b);
    for (std::size_t i = 0; i < b.parts.size(); ++i) {
      collect_sections(b.parts[i], false, max_part, text_elsewhere(chosen, i, elsewhere), attrs);
    }
  } else if (wanted_leaf(b, max_part, elsewhere)) {
    attrs.push_back(FetchAttr::body_peek(Section{b.section, SectionText::none, {}},
                                         std::make_pair(0u, max_part)));
  }
}

// Unread alternatives (the HTML beside a text/plain) up to this size in all
// do not keep a message from coming whole. A message fetched part by part
// costs the server a walk of its MIME structure and a response item per
// part, more than the few kilobytes of a typical HTML alternative are worth;
// past this size (a newsletter's HTML runs to 50 KB and more) leaving them
// out is worth that cost.
constexpr std::uint64_t k_whole_despite_alternatives = 16 * 1024;

// What a structure holds that capture does not read.
struct Unread {
  bool attachment_or_cut = false;  // an attachment, or a part longer than the cut
  std::uint64_t alternatives = 0;  // octets of text capture takes from another alternative
};

void find_unread(const BodyStructure& b, std::uint32_t max_part, bool elsewhere, Unread& u) {
  if (b.is_multipart()) {
    const std::size_t chosen = chosen_alternative(b);
    for (std::size_t i = 0; i < b.parts.size(); ++i) {
      find_unread(b.parts[i], max_part, text_elsewhere(chosen, i, elsewhere), u);
    }
  } else if (wanted_leaf(b, max_part, elsewhere)) {
    if (b.size > max_part) u.attachment_or_cut = true;
  } else if (elsewhere && wanted_leaf(b, max_part)) {
    u.alternatives += b.size;
  } else {
    u.attachment_or_cut = true;
  }
}

}  // namespace

bool has_gmail_label(const FetchItem& f, std::string_view label) {
  if (!f.gm_labels) return false;
  return std::any_of(f.gm_labels->begin(), f.gm_labels->end(),
                     [&](const std::string& l) { return iequals(l, label); });
}

bool comes_whole(const BodyStructure& b, std::uint32_t max_part) {
  Unread u;
  find_unread(b, max_part, false, u);
  return !u.attachment_or_cut && u.alternatives <= k_whole_despite_alternatives;
}

std::vector<FetchAttr> part_by_part(const BodyStructure* b, std::uint32_t max_part) {
  std::vector<FetchAttr> a = {FetchAttr::body_peek(Section{"", SectionText::header, {}})};
  if (b && b->is_multipart()) {
    collect_sections(*b, true, max_part, false, a);
  } else if (!b || wanted_leaf(*b, max_part)) {
    a.push_back(
        FetchAttr::body_peek(Section{"", SectionText::text, {}}, std::make_pair(0u, max_part)));
  }
  return a;
}

const std::string* find_section(const FetchItem& f, const std::string& part, SectionText text) {
  for (const auto& s : f.sections) {
    if (s.section.part == part && s.section.text == text && s.data) return &*s.data;
  }
  return nullptr;
}
std::string* find_section(FetchItem& f, const std::string& part, SectionText text) {
  return const_cast<std::string*>(find_section(std::as_const(f), part, text));
}

void emit_part(const BodyStructure& b, const FetchItem& f, std::string& out, bool& partial) {
  if (b.is_multipart()) {
    const std::string* boundary = b.param("boundary");
    if (!boundary) {
      partial = true;
      return;
    }
    for (const auto& p : b.parts) {
      out += "--" + *boundary + "\r\n";
      if (const std::string* h = find_section(f, p.section, SectionText::mime)) {
        out += *h;
      } else {
        out += "\r\n";
      }
      emit_part(p, f, out, partial);
      out += "\r\n";
    }
    out += "--" + *boundary + "--\r\n";
    return;
  }
  if (const std::string* body = find_section(f, b.section, SectionText::none)) {
    out += *body;
    if (body->size() < b.size) partial = true;
  } else if (b.size > 0) {
    partial = true;
  }
}

}  // namespace crmcap::imap::detail
