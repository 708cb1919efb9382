// SPDX-License-Identifier: Apache-2.0
// Internal to store/. GCC 12 has no std::format; cat() joins text and numbers.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>

namespace crmcap::store::detail {

template <class T>
void append_one(std::string& out, const T& v) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, char>) {
    out += std::to_string(v);
  } else {
    out += v;
  }
}

template <class... Args>
std::string cat(const Args&... args) {
  std::string out;
  (append_one(out, args), ...);
  return out;
}

}  // namespace crmcap::store::detail
