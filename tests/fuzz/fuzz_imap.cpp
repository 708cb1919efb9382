// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the IMAP protocol core (STYLE 18): the response parser,
// modified UTF-7, UID sets and the command builder's quoting.
//
// Contract checked: nothing crashes, throws or leaks (ASan/UBSan/LSan); memory
// stays within ParserLimits; and the parser gives the same events whether the
// bytes come whole or in the chunks the input chooses (the STYLE 11 property,
// here on arbitrary bytes). A violated property calls __builtin_trap().
//
// Build with the CMake target (tests/fuzz/CMakeLists.txt, -DCRMCAP_FUZZ=ON), or
// by hand from the repository root:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I.
//     tests/fuzz/fuzz_imap.cpp connectors/imap/core/{types,parser,command,text}.cpp -o fuzz_imap
//   ./fuzz_imap -max_len=8192 CORPUS_DIR SEEDS_DIR
// Seeds: the server bytes of tests/transcripts/imap/*.txt (the S: lines).
#include "connectors/imap/core/command.hpp"
#include "connectors/imap/core/parser.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace crmcap::imap;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::vector<std::string> events(std::string_view input, const std::vector<std::size_t>& cuts,
                                const ParserLimits& limits) {
  ResponseParser parser(limits);
  std::vector<std::string> out;
  std::size_t at = 0;
  auto feed = [&](std::string_view chunk) {
    if (parser.broken()) return;  // it said so once; the transport would stop
    for (;;) {
      std::size_t before = chunk.size();
      ResponseParser::Step step = parser.feed(chunk);
      check(chunk.size() <= before);
      check(parser.buffered() <= limits.max_response);
      if (step == ResponseParser::Step::need_more) {
        check(chunk.empty());
        return;
      }
      if (step == ResponseParser::Step::error) {
        check(static_cast<bool>(parser.error()));
        out.push_back("error " + std::to_string(parser.error().value()));
        if (parser.broken()) {
          check(parser.feed(chunk) == ResponseParser::Step::error);
          return;
        }
        continue;
      }
      Response r = parser.take();
      out.push_back(to_text(r));
      check(!kind_name(r).empty());
    }
  };
  for (std::size_t cut : cuts) {
    if (cut <= at || cut > input.size()) continue;
    feed(input.substr(at, cut - at));
    at = cut;
  }
  feed(input.substr(at));
  out.push_back("buffered " + std::to_string(parser.buffered()));
  return out;
}

// Every line of a command ends in CRLF and holds no CR, LF or NUL; literal
// bytes are skipped by their announced count. Every segment but the last ends
// with a synchronizing literal's announcement or is an AUTHENTICATE line.
void check_framing(const Command& c) {
  check(!c.segments.empty());
  for (std::size_t i = 0; i + 1 < c.segments.size(); ++i) {
    std::string_view seg = c.segments[i];
    check(seg.size() >= 3 && seg.substr(seg.size() - 2) == "\r\n");
    check(seg[seg.size() - 3] == '}' || seg.find(" AUTHENTICATE ") != std::string_view::npos);
  }
  std::string all = c.bytes();
  std::size_t pos = 0;
  while (pos < all.size()) {
    std::size_t crlf = all.find("\r\n", pos);
    check(crlf != std::string::npos);
    std::string_view line(all.data() + pos, crlf - pos);
    check(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
    pos = crlf + 2;
    if (!line.empty() && line.back() == '}') {
      std::size_t open = line.rfind('{');
      check(open != std::string_view::npos);
      std::string_view digits = line.substr(open + 1, line.size() - open - 2);
      if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
      std::size_t n = 0;
      for (char d : digits) n = n * 10 + static_cast<std::size_t>(d - '0');
      pos += n;
    }
  }
  check(pos == all.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // 1. The parser, whole versus in chunks chosen by the input's own bytes.
  std::vector<std::size_t> cuts;
  if (size > 0) {
    std::size_t step = 1 + data[0] % 61;
    for (std::size_t at = step; at < size; at += step + data[at] % 7) cuts.push_back(at);
  }
  // Default limits but for the literal and response sizes: an announced
  // literal is reserved in full, and 64 MiB reservations under ASan would
  // make every run slow without reaching more code.
  ParserLimits big;
  big.max_literal = 1u << 20;
  big.max_response = 4u << 20;
  auto whole = events(input, {}, big);
  check(events(input, cuts, big) == whole);
  // Small limits reach the error paths; still no split may change the result.
  ParserLimits small;
  small.max_line = 200;
  small.max_literal = 100;
  small.max_response = 600;
  small.max_literals = 8;
  small.max_depth = 6;
  check(events(input, cuts, small) == events(input, {}, small));

  // 2. Modified UTF-7: whatever decodes re-encodes to something that decodes
  // to the same text.
  std::string_view head = input.substr(0, 256);
  if (auto decoded = mutf7_decode(head)) {
    auto encoded = mutf7_encode(*decoded);
    check(encoded.has_value());
    auto again = mutf7_decode(*encoded);
    check(again.has_value() && *again == *decoded);
  }
  if (auto encoded = mutf7_encode(head)) {
    auto decoded = mutf7_decode(*encoded);
    check(decoded.has_value() && *decoded == head);
  }

  // 3. UID sets: parse, print, parse again gives the same set.
  if (auto set = UidSet::parse(head)) {
    auto again = UidSet::parse(set->to_string());
    check(again.has_value() && *again == *set);
  }

  // 4. The command builder never emits an argument that breaks the framing.
  CommandBuilder builder;
  builder.set_options({.literal_plus = size % 2 == 0,
                       .literal_minus = size % 3 == 0,
                       .utf8_accept = size % 5 == 0});
  std::string_view a = head.substr(0, head.size() / 2);
  std::string_view b = head.substr(head.size() / 2);
  if (auto c = builder.login(a, b)) check_framing(*c);
  if (auto c = builder.examine(a, {.condstore = true})) check_framing(*c);
  if (auto c = builder.list(b, a, {.special_use = true})) check_framing(*c);
  if (auto c = builder.status(b, {.uidnext = true})) check_framing(*c);
  if (auto c = builder.authenticate_plain(a, b, size % 2 == 0)) check_framing(*c);
  std::pair<std::string_view, std::string_view> field{"name", b};
  if (auto c = builder.id({&field, 1})) check_framing(*c);
  std::vector<FetchAttr> attrs = {FetchAttr::body_peek(Section{
      std::string(a.substr(0, 8)), SectionText::header_fields, {std::string(b.substr(0, 16))}})};
  UidSet uids;
  uids.add(1, 5);
  if (auto c = builder.uid_fetch(uids, attrs)) check_framing(*c);
  return 0;
}
