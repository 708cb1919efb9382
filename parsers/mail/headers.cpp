// SPDX-License-Identifier: Apache-2.0
// Splitting the header block into fields, and msg-id lists.
#include "parsers/mail/headers.hpp"

#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace crmcap::mail::detail {
namespace {

using text::iequals;
using text::is_space;
using text::detail::is_wsp;
using text::detail::skip_comment;

// Reported problems are capped: a binary blob fed as a message would otherwise
// yield one per line.
constexpr std::size_t max_problems = 50;

void add_problem(HeaderBlock& block, std::size_t line_no, std::string_view what) {
  if (block.problems.size() > max_problems) return;
  if (block.problems.size() == max_problems) {
    block.problems.push_back("header: further problems not listed");
    return;
  }
  std::string p = "header line ";
  p += std::to_string(line_no);
  p += ": ";
  p += what;
  block.problems.push_back(std::move(p));
}

void trim_trailing_wsp(std::string& s) {
  while (!s.empty() && is_wsp(s.back())) s.pop_back();
}

// A field name is printable ASCII without ':' (RFC 5322 ftext), with obsolete
// whitespace before the colon tolerated.
bool valid_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char c : name) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 33 || b > 126) return false;
  }
  return true;
}

// Builds block.index (see HeaderBlock).
void index_fields(HeaderBlock& block) {
  block.index.resize(block.fields.size());
  for (std::size_t i = 0; i < block.fields.size(); ++i) {
    block.index[i] =
        std::uint64_t{field_name_key(block.fields[i].name)} << 32 | static_cast<std::uint32_t>(i);
  }
  std::sort(block.index.begin(), block.index.end());
}

}  // namespace

HeaderBlock split_header(std::string_view raw) {
  HeaderBlock block;
  block.fields.reserve(32);
  std::size_t pos = 0;
  std::size_t line_no = 0;
  bool first = true;
  bool have_field = false;  // a continuation line may extend the last field
  while (pos < raw.size()) {
    std::size_t eol = raw.find('\n', pos);
    const std::size_t next = eol == std::string_view::npos ? raw.size() : eol + 1;
    if (eol == std::string_view::npos) eol = raw.size();
    std::string_view line = raw.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    pos = next;

    if (line.empty()) {
      block.body_offset = pos;
      index_fields(block);
      return block;
    }
    if (first) {
      first = false;
      // An mbox "From " separator line, left on by some exporters.
      if (line.substr(0, 5) == "From ") continue;
    }
    if (is_wsp(line[0])) {
      if (!have_field) {
        add_problem(block, line_no, "continuation line without a field");
        continue;
      }
      // Unfolding keeps the leading WSP and drops the line break.
      std::string& value = block.fields.back().value;
      if (value.empty()) {
        // The value started on this line: the leading WSP is not part of it.
        std::size_t k = 0;
        while (k < line.size() && is_wsp(line[k])) ++k;
        value.append(line.substr(k));
      } else {
        value.append(line);
      }
      trim_trailing_wsp(value);
      continue;
    }
    const std::size_t colon = line.find(':');
    std::string_view name =
        colon == std::string_view::npos ? std::string_view{} : line.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    if (colon == std::string_view::npos || !valid_name(name)) {
      add_problem(block, line_no, colon == std::string_view::npos ? "no colon" : "bad field name");
      have_field = false;
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front())) value.remove_prefix(1);
    HeaderField& f = block.fields.emplace_back();
    f.name = std::string(name);
    f.value = std::string(value);
    trim_trailing_wsp(f.value);
    have_field = true;
  }
  // No empty line: the message is all header.
  block.body_offset = raw.size();
  index_fields(block);
  return block;
}

std::pair<const std::uint64_t*, const std::uint64_t*> index_range(const HeaderBlock& block,
                                                                  std::uint32_t key) noexcept {
  const std::uint64_t* const begin = block.index.data();
  const std::uint64_t* const end = begin + block.index.size();
  const std::uint64_t low = std::uint64_t{key} << 32;
  const std::uint64_t* const first = std::lower_bound(begin, end, low);
  const std::uint64_t* last = first;
  while (last != end && (*last >> 32) == key) ++last;
  return {first, last};
}

const HeaderField* find_field(const HeaderBlock& block, const FieldName& name) noexcept {
  const auto [first, last] = index_range(block, name.key());
  for (const std::uint64_t* e = first; e != last; ++e) {
    const HeaderField& f = block.fields[static_cast<std::uint32_t>(*e)];
    if (name.matches(f.name)) return &f;
  }
  return nullptr;
}

std::vector<const HeaderField*> find_fields(const HeaderBlock& block, const FieldName& name) {
  std::vector<const HeaderField*> out;
  for_each_field(block, name, [&](const HeaderField& f) { out.push_back(&f); });
  return out;
}

std::vector<std::string> parse_msg_ids(std::string_view value) {
  std::vector<std::string> ids;
  auto add = [&](std::string_view id) {
    std::string s;
    s.reserve(id.size());
    // Folding or broken mailers put whitespace inside ids; it is never part of one.
    for (char c : id) {
      if (!is_space(c)) s.push_back(c);
    }
    if (!s.empty()) ids.push_back(text::repair_utf8(s));
  };
  bool bracketed = false;
  std::size_t i = 0;
  while (i < value.size()) {
    const char c = value[i];
    if (c == '(') {
      // Comments ("(message from Jane)") are skipped, nested ones too.
      i = skip_comment(value, i);
    } else if (c == '"') {
      // Quoted text in the old "In-Reply-To: "Jane" <id>" phrase form.
      ++i;
      while (i < value.size() && value[i] != '"') i += value[i] == '\\' ? 2 : 1;
      ++i;
    } else if (c == '<') {
      bracketed = true;
      // A missing '>' ends the id at the next '<', or at whitespace when no
      // '>' follows at all.
      std::size_t end = i + 1;
      while (end < value.size() && value[end] != '>' && value[end] != '<') ++end;
      if (end < value.size() && value[end] == '>') {
        add(value.substr(i + 1, end - i - 1));
        i = end + 1;
      } else {
        std::size_t stop = i + 1;
        while (stop < end && !is_space(value[stop])) ++stop;
        add(value.substr(i + 1, stop - i - 1));
        i = end;
      }
    } else {
      ++i;
    }
  }
  if (bracketed) return ids;
  // No brackets at all: whitespace- or comma-separated ids. A lone token is an
  // id as is; among several, only those with an '@' are.
  std::vector<std::string_view> tokens;
  i = 0;
  while (i < value.size()) {
    while (i < value.size() && (is_space(value[i]) || value[i] == ',')) ++i;
    if (i < value.size() && value[i] == '(') {
      i = skip_comment(value, i);
      continue;
    }
    const std::size_t b = i;
    while (i < value.size() && !is_space(value[i]) && value[i] != ',' && value[i] != '(') ++i;
    if (i > b) tokens.push_back(value.substr(b, i - b));
  }
  if (tokens.size() == 1) {
    add(tokens[0]);
  } else {
    for (std::string_view t : tokens) {
      if (t.find('@') != std::string_view::npos) add(t);
    }
  }
  return ids;
}

}  // namespace crmcap::mail::detail
