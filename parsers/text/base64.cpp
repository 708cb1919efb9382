// SPDX-License-Identifier: Apache-2.0
// Lenient base64, for MIME bodies and RFC 2047 words.
#include "parsers/text/text.hpp"

#include <array>

namespace crmcap::text {
namespace {

// The value of each byte in the base64 alphabet, or -1. One table lookup per
// byte: bodies of several megabytes go through here.
constexpr std::array<signed char, 256> make_table() {
  std::array<signed char, 256> t{};
  for (auto& v : t) v = -1;
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
  }
  // The URL-safe alphabet, seen in mail from some web clients.
  t[static_cast<unsigned char>('-')] = 62;
  t[static_cast<unsigned char>('_')] = 63;
  return t;
}
constexpr std::array<signed char, 256> table = make_table();

}  // namespace

void decode_base64(std::string_view in, std::string& out, Base64Padding padding, bool* junk) {
  out.reserve(out.size() + in.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    const signed char v = table[c];
    if (v < 0) {
      if (c == '=') {
        if (padding == Base64Padding::stop) break;
        acc = 0;
        bits = 0;
      } else if (junk != nullptr && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        *junk = true;
      }
      continue;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
}

std::uint64_t base64_decoded_size(std::string_view in) noexcept {
  std::uint64_t n = 0;
  int bits = 0;
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (table[c] < 0) {
      if (c == '=') bits = 0;
      continue;
    }
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      ++n;
    }
  }
  return n;
}

}  // namespace crmcap::text
