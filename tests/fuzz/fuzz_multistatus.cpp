// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the CalDAV connector's pure XML and header functions
// (connectors/caldav/multistatus.hpp): parse_multistatus() on the whole input
// as a 207 body, parse_dav_error() on it as a 403/409 body, and
// parse_status_line() and parse_retry_after() on its first line. Contract
// checked: none throws or crashes; an error has an xml_* (or out_of_memory)
// code and a message; an input over ParseLimits::max_bytes is refused; every
// response's URL is canonical (canonical_url() leaves it as it is, so two
// spellings of one href compare equal); a status is a three-digit code or 0; a
// Retry-After stays within its clamp. Seeds: tests/corpora/multistatus and
// the 207 bodies of tests/transcripts/caldav/*.txt (tests/fuzz/smoke.sh).
#include "connectors/caldav/multistatus.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace {

using namespace crmcap::caldav;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_multistatus: contract broken: %s\n", what);
    __builtin_trap();
  }
}

bool is_xml_error(const std::error_code& code) {
  if (code.category() != caldav_category()) return false;
  const auto e = static_cast<Errc>(code.value());
  return e == Errc::xml_malformed || e == Errc::xml_dtd || e == Errc::xml_too_large ||
         e == Errc::xml_not_multistatus || e == Errc::out_of_memory;
}

constexpr std::string_view kRequestUrl = "http://127.0.0.1:5232/alice/work/";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  ParseLimits limits;
  // Small enough that the fuzzer's inputs (-max_len=65536) reach it.
  limits.max_bytes = 32 * 1024;

  const auto ms = parse_multistatus(body, kRequestUrl, limits);
  if (!ms) {
    require(is_xml_error(ms.error().code), "an error that is not an XML one");
    require(!ms.error().message.empty(), "an error without a message");
  } else {
    require(size <= limits.max_bytes, "an input over max_bytes was parsed");
    for (const auto& r : ms->responses) {
      require(!r.url.empty(), "a response without a URL");
      const auto again = canonical_url(kRequestUrl, r.url);
      require(again.has_value(), "a canonical URL that cannot be parsed again");
      require(*again == r.url, "a URL that is not canonical");
      require(r.status >= 0 && r.status <= 999, "a status out of range");
      for (const auto& m : r.props.missing) {
        require(m.status >= 0 && m.status <= 999, "a propstat status out of range");
      }
      if (r.props.current_user_principal) {
        require(!r.props.current_user_principal->empty(), "an empty principal URL");
      }
    }
  }
  if (size > limits.max_bytes) require(!ms, "an input over max_bytes was not refused");

  for (const auto& name : parse_dav_error(body, limits)) {
    require(!name.empty(), "an empty precondition name");
  }

  const std::string_view first = body.substr(0, body.find('\n'));
  const int status = parse_status_line(first);
  require(status >= 0 && status <= 999, "a status line's code out of range");
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1795996800));
  if (const auto at = parse_retry_after(first, now)) {
    require(*at >= now + kMinRetryAfter && *at <= now + kMaxRetryAfter,
            "a Retry-After outside its clamp");
  }
  return 0;
}
