// SPDX-License-Identifier: Apache-2.0
// The href rules (multistatus.hpp): the only file of connectors/caldav that
// includes Boost.URL.
#include "connectors/caldav/multistatus.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/url.hpp>

#include <string>
#include <vector>

namespace crmcap::caldav {

namespace urls = boost::urls;

namespace {

std::error_code bad_url() { return make_error_code(Errc::bad_url); }

// Lower-case scheme and host, segments decoded and encoded again, no fragment.
void canonicalize(urls::url& u) {
  u.normalize_scheme();
  u.normalize_authority();
  u.remove_fragment();
  if (u.has_port() && ((u.scheme_id() == urls::scheme::https && u.port_number() == 443) ||
                       (u.scheme_id() == urls::scheme::http && u.port_number() == 80))) {
    u.remove_port();
  }
  // segments() decodes each segment; each is encoded again the one way
  // Boost.URL encodes a path character. A "%2F" inside a segment stays
  // inside it.
  std::string path;
  for (auto seg : u.segments()) {
    path += '/';
    path += urls::encode(seg, urls::pchars);
  }
  if (!u.is_path_absolute() && !path.empty()) path.erase(0, 1);
  if (path.empty() && u.has_authority()) path = "/";
  if (path == u.encoded_path()) return;
  if (u.has_scheme() && u.has_authority()) {
    // Rebuilt as a string: Boost 1.81's set_encoded_path("/") on a URL with
    // an authority gives "/./".
    std::string s = std::string(u.scheme()) + "://" + std::string(u.encoded_authority()) + path;
    if (u.has_query()) s += "?" + std::string(u.encoded_query());
    u = urls::url(s);
    return;
  }
  u.set_encoded_path(path);
}

// Some servers send hrefs with bytes a URI may not hold (a space, UTF-8):
// those bytes are percent-encoded, the rest is left as sent.
std::string escape_invalid(std::string_view href) {
  static constexpr std::string_view kAllowed =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : href) {
    if (kAllowed.find(c) != std::string_view::npos) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
  return out;
}

}  // namespace

boost::system::result<std::string, std::error_code> canonical_url(std::string_view base,
                                                                  std::string_view href) {
  try {
    auto b = urls::parse_uri(base);
    if (!b) return bad_url();
    std::string escaped;
    auto r = urls::parse_uri_reference(href);
    if (!r) {
      escaped = escape_invalid(href);
      r = urls::parse_uri_reference(escaped);
    }
    if (!r) return bad_url();
    urls::url dest;
    if (!urls::resolve(*b, *r, dest)) return bad_url();
    canonicalize(dest);
    return std::string(dest.buffer());
  } catch (const std::bad_alloc&) {
    return make_error_code(Errc::out_of_memory);
  } catch (...) {
    return bad_url();
  }
}

bool redirect_allowed(std::string_view from, std::string_view to) {
  try {
    auto f = urls::parse_uri(from);
    auto t = urls::parse_uri(to);
    if (!f || !t) return false;
    urls::url a(*f);
    urls::url b(*t);
    canonicalize(a);
    canonicalize(b);
    if (a.encoded_host() != b.encoded_host()) return false;
    const auto sa = a.scheme_id();
    const auto sb = b.scheme_id();
    if (sb != urls::scheme::http && sb != urls::scheme::https) return false;
    if (sa == sb) return a.port() == b.port();
    return sa == urls::scheme::http && sb == urls::scheme::https;
  } catch (...) {
    return false;
  }
}

std::string url_path(std::string_view url) {
  try {
    auto u = urls::parse_uri_reference(url);
    if (!u) return "/";
    std::string path(u->encoded_path());
    if (u->has_query()) path += "?" + std::string(u->encoded_query());
    return path;
  } catch (...) {
    return "/";
  }
}

bool same_collection(std::string_view a, std::string_view b) {
  auto strip = [](std::string_view s) {
    while (!s.empty() && s.back() == '/') s.remove_suffix(1);
    return s;
  };
  return strip(a) == strip(b);
}

}  // namespace crmcap::caldav
