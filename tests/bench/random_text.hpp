// SPDX-License-Identifier: Apache-2.0
// Generated field values for the store benchmarks (bench_store,
// bench_api_fill): the same generator state gives the same text.
#pragma once

#include <cstddef>
#include <random>
#include <string>

namespace crmcap::bench {

// n hexadecimal digits (ids, Message-ID parts).
inline std::string random_hex(std::mt19937_64& rng, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = digits[rng() & 15];
  return s;
}

// n characters of words and numbers (subjects, snippets, reasons, names).
inline std::string random_text(std::mt19937_64& rng, std::size_t n) {
  std::string s;
  while (s.size() < n) s += std::to_string(rng() % 100000) + " words of text ";
  s.resize(n);
  return s;
}

}  // namespace crmcap::bench
