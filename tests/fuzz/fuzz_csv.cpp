// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for crmcap::csv::parse(). Contract checked: parse() never
// throws or crashes; a table's records each have the header's field count,
// rising line numbers, and valid UTF-8 fields; an error has a code and a
// "name:line: " message. Seed with tests/corpora/csv.
#include "parsers/csv/csv.hpp"
#include "parsers/text/text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_csv: contract broken: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const auto result = crmcap::csv::parse(raw, "f.csv");
  if (!result) {
    require(static_cast<bool>(result.error().code), "error without a code");
    require(result.error().message.starts_with("f.csv:"), "error without the name");
    return 0;
  }
  const crmcap::csv::Table& t = *result;
  require(!t.header.empty(), "empty header");
  for (const auto& h : t.header) require(crmcap::text::is_valid_utf8(h), "header not UTF-8");
  std::size_t line = 1;
  for (const auto& r : t.records) {
    require(r.fields.size() == t.header.size(), "field count");
    require(r.line > line, "line numbers not rising");
    require(r.line <= size + 1, "line beyond the input");
    line = r.line;
    for (const auto& f : r.fields) require(crmcap::text::is_valid_utf8(f), "field not UTF-8");
  }
  return 0;
}
