// SPDX-License-Identifier: Apache-2.0
// Which part of a multipart/alternative capture takes its text from: the
// first of the highest rank. Header-only, so that the IMAP connector fetches
// by the same choice the body walk (body.cpp) makes, without linking the
// parsers.
#pragma once

#include <string_view>

namespace crmcap::mail {

// The rank of an alternative by its media type (lower case "type/subtype"):
// text/plain first, then a multipart, then text/html; any other last.
inline int alternative_rank(std::string_view media) noexcept {
  if (media == "text/plain") return 3;
  if (media.starts_with("multipart/")) return 2;
  if (media == "text/html") return 1;
  return 0;
}

}  // namespace crmcap::mail
