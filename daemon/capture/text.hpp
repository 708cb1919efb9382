// SPDX-License-Identifier: Apache-2.0
// Internal to daemon/capture: small string helpers the rules share (ASCII
// case and trimming are parsers/text's).
#pragma once

#include "parsers/text/text.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace crmcap::capture {

// The part after the last '@', or "" when there is none.
inline std::string_view domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

// True when `domain` is `parent` or one of its sub-domains.
inline bool within(std::string_view domain, std::string_view parent) {
  if (parent.empty() || domain.size() < parent.size()) return false;
  if (domain == parent) return true;
  return domain.ends_with(parent) && domain[domain.size() - parent.size() - 1] == '.';
}

inline std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  for (const auto& y : v) {
    if (y == x) return;
  }
  v.push_back(x);
}

}  // namespace crmcap::capture
