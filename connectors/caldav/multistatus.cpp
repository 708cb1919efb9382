// SPDX-License-Identifier: Apache-2.0
// The multistatus parser (multistatus.hpp): the only file of connectors/caldav
// that includes libxml2.
#include "connectors/caldav/multistatus.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>
#include <mutex>
#include <string>

namespace crmcap::caldav {

namespace {

struct CtxtDeleter {
  void operator()(xmlParserCtxt* c) const noexcept { xmlFreeParserCtxt(c); }
};
struct DocDeleter {
  void operator()(xmlDoc* d) const noexcept { xmlFreeDoc(d); }
};
struct XmlCharDeleter {
  void operator()(xmlChar* s) const noexcept { xmlFree(s); }
};

// What the SAX hooks below learn while libxml2 builds the tree.
struct ParseFlags {
  bool dtd = false;
};

// A DOCTYPE stops the parser before its internal subset (where entities
// would be declared) is read: no entity is ever declared, so none expands.
void refuse_dtd(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* ctxt = static_cast<xmlParserCtxt*>(ctx);
  if (auto* flags = static_cast<ParseFlags*>(ctxt->_private)) flags->dtd = true;
  xmlStopParser(ctxt);
}

// libxml2 reports errors to stderr unless told otherwise; its words are read
// from the context afterwards instead.
void quiet(void*, xmlErrorPtr) {}

void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

XmlError xml_error(Errc code, std::string message) {
  return XmlError{make_error_code(code), std::move(message)};
}

bool is(const xmlNode* n, std::string_view ns, std::string_view local) {
  if (n == nullptr || n->type != XML_ELEMENT_NODE || n->ns == nullptr || n->ns->href == nullptr)
    return false;
  return ns == reinterpret_cast<const char*>(n->ns->href) &&
         local == reinterpret_cast<const char*>(n->name);
}

std::string qname(const xmlNode* n) {
  std::string out = "{";
  if (n->ns != nullptr && n->ns->href != nullptr) out += reinterpret_cast<const char*>(n->ns->href);
  out += "}";
  out += reinterpret_cast<const char*>(n->name);
  return out;
}

template <class F>
void for_children(const xmlNode* n, F&& f) {
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE) f(c);
  }
}

const xmlNode* child(const xmlNode* n, std::string_view ns, std::string_view local) {
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (is(c, ns, local)) return c;
  }
  return nullptr;
}

// The text of an element (text and CDATA of it and its descendants).
std::string text(const xmlNode* n) {
  std::unique_ptr<xmlChar, XmlCharDeleter> s(xmlNodeGetContent(n));
  if (!s) return {};
  return reinterpret_cast<const char*>(s.get());
}

std::string trim(std::string s) {
  auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), ws));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), ws).base(), s.end());
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::optional<std::string> href_in(const xmlNode* n, std::string_view base, std::size_t& bad) {
  const xmlNode* h = child(n, kNsDav, "href");
  if (h == nullptr) return std::nullopt;
  auto u = canonical_url(base, trim(text(h)));
  if (!u) {
    ++bad;
    return std::nullopt;
  }
  return *u;
}

// Reads one 2xx propstat's DAV:prop into `p`.
void read_props(const xmlNode* prop, std::string_view base, Props& p, std::size_t& bad) {
  for_children(prop, [&](const xmlNode* e) {
    if (is(e, kNsDav, "getetag")) {
      p.etag = trim(text(e));
    } else if (is(e, kNsCalDav, "calendar-data")) {
      p.calendar_data = text(e);
    } else if (is(e, kNsCalServer, "getctag")) {
      p.ctag = trim(text(e));
    } else if (is(e, kNsDav, "sync-token")) {
      p.sync_token = trim(text(e));
    } else if (is(e, kNsDav, "displayname")) {
      p.display_name = text(e);
    } else if (is(e, kNsDav, "resourcetype")) {
      p.has_resourcetype = true;
      p.collection = child(e, kNsDav, "collection") != nullptr;
      p.calendar = child(e, kNsCalDav, "calendar") != nullptr;
    } else if (is(e, kNsCalDav, "supported-calendar-component-set")) {
      std::vector<std::string> comps;
      for_children(e, [&](const xmlNode* c) {
        if (!is(c, kNsCalDav, "comp")) return;
        std::unique_ptr<xmlChar, XmlCharDeleter> name(
            xmlGetNoNsProp(c, reinterpret_cast<const xmlChar*>("name")));
        if (name) comps.push_back(upper(reinterpret_cast<const char*>(name.get())));
      });
      p.components = std::move(comps);
    } else if (is(e, kNsDav, "supported-report-set")) {
      std::vector<std::string> reports;
      for_children(e, [&](const xmlNode* sr) {
        if (!is(sr, kNsDav, "supported-report")) return;
        const xmlNode* r = child(sr, kNsDav, "report");
        if (r == nullptr) return;
        for_children(r, [&](const xmlNode* name) {
          reports.push_back(qname(name));
          if (is(name, kNsDav, "sync-collection")) p.sync_collection = true;
        });
      });
      p.reports = std::move(reports);
    } else if (is(e, kNsDav, "current-user-principal")) {
      if (auto u = href_in(e, base, bad)) p.current_user_principal = std::move(*u);
    } else if (is(e, kNsCalDav, "calendar-home-set")) {
      for_children(e, [&](const xmlNode* h) {
        if (!is(h, kNsDav, "href")) return;
        if (auto u = canonical_url(base, trim(text(h)))) {
          p.calendar_home_set.push_back(std::move(*u));
        } else {
          ++bad;
        }
      });
    }
  });
}

// Parses `body` into a tree, refusing DTDs. The document's root is checked by
// the caller.
XmlResult<std::unique_ptr<xmlDoc, DocDeleter>> parse_tree(std::string_view body,
                                                          const ParseLimits& limits) {
  if (body.size() > limits.max_bytes) {
    return xml_error(Errc::xml_too_large, "multistatus of " + std::to_string(body.size()) +
                                              " bytes, over the limit of " +
                                              std::to_string(limits.max_bytes));
  }
  if (body.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return xml_error(Errc::xml_too_large, "multistatus too large");
  }
  init_libxml();
  std::unique_ptr<xmlParserCtxt, CtxtDeleter> ctxt(xmlNewParserCtxt());
  if (!ctxt || ctxt->sax == nullptr) return xml_error(Errc::out_of_memory, "libxml2 context");
  ParseFlags flags;
  ctxt->_private = &flags;
  ctxt->sax->internalSubset = refuse_dtd;
  ctxt->sax->externalSubset = refuse_dtd;
  ctxt->sax->serror = quiet;
  // No XML_PARSE_NOENT (entities stay references), no XML_PARSE_DTDLOAD,
  // no XML_PARSE_HUGE (libxml2's own limits on depth and node size stay).
  const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
  std::unique_ptr<xmlDoc, DocDeleter> doc(xmlCtxtReadMemory(
      ctxt.get(), body.data(), static_cast<int>(body.size()), nullptr, nullptr, options));
  if (flags.dtd) return xml_error(Errc::xml_dtd, "a DOCTYPE in a WebDAV reply: refused");
  if (!doc || ctxt->wellFormed == 0) {
    std::string message = "malformed XML";
    if (const xmlError* e = xmlCtxtGetLastError(ctxt.get());
        e != nullptr && e->message != nullptr) {
      message += " (line " + std::to_string(e->line) + ": " + trim(e->message) + ")";
    }
    return xml_error(Errc::xml_malformed, std::move(message));
  }
  if (doc->intSubset != nullptr || doc->extSubset != nullptr) {
    return xml_error(Errc::xml_dtd, "a DOCTYPE in a WebDAV reply: refused");
  }
  return doc;
}

XmlResult<Multistatus> parse_multistatus_impl(std::string_view body, std::string_view request_url,
                                              const ParseLimits& limits) {
  auto doc = parse_tree(body, limits);
  if (!doc) return doc.error();
  const xmlNode* root = xmlDocGetRootElement(doc->get());
  if (!is(root, kNsDav, "multistatus")) {
    return xml_error(Errc::xml_not_multistatus,
                     root == nullptr ? "no root element" : "root is " + qname(root));
  }
  Multistatus ms;
  for_children(root, [&](const xmlNode* r) {
    if (is(r, kNsDav, "sync-token")) {
      ms.sync_token = trim(text(r));
      return;
    }
    if (!is(r, kNsDav, "response")) return;
    int status = 0;
    if (const xmlNode* s = child(r, kNsDav, "status")) status = parse_status_line(trim(text(s)));
    Props props;
    for_children(r, [&](const xmlNode* ps) {
      if (!is(ps, kNsDav, "propstat")) return;
      const xmlNode* s = child(ps, kNsDav, "status");
      // A propstat without a status is taken as 200, as most clients do.
      const int code = s == nullptr ? 200 : parse_status_line(trim(text(s)));
      const xmlNode* prop = child(ps, kNsDav, "prop");
      if (prop == nullptr) return;
      if (code >= 200 && code < 300) {
        read_props(prop, request_url, props, ms.bad_hrefs);
      } else {
        for_children(prop, [&](const xmlNode* e) {
          props.missing.push_back({reinterpret_cast<const char*>(e->name), code});
        });
      }
    });
    // The status form may name several hrefs (RFC 4918 14.24).
    for_children(r, [&](const xmlNode* h) {
      if (!is(h, kNsDav, "href")) return;
      if (status == 507) {
        ms.truncated = true;
        return;
      }
      std::string href = trim(text(h));
      auto url = canonical_url(request_url, href);
      if (!url) {
        ++ms.bad_hrefs;
        return;
      }
      ms.responses.push_back(Response{std::move(href), std::move(*url), status, props});
    });
  });
  return ms;
}

}  // namespace

XmlResult<Multistatus> parse_multistatus(std::string_view body, std::string_view request_url,
                                         const ParseLimits& limits) {
  try {
    return parse_multistatus_impl(body, request_url, limits);
  } catch (const std::bad_alloc&) {
    return xml_error(Errc::out_of_memory, "out of memory parsing a multistatus");
  } catch (const std::exception& e) {
    return xml_error(Errc::xml_malformed, e.what());
  }
}

std::vector<std::string> parse_dav_error(std::string_view body, const ParseLimits& limits) {
  std::vector<std::string> out;
  try {
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
    auto doc = parse_tree(body, limits);
    if (!doc) return out;
    const xmlNode* root = xmlDocGetRootElement(doc->get());
    if (!is(root, kNsDav, "error")) return out;
    for_children(root, [&](const xmlNode* e) { out.push_back(qname(e)); });
  } catch (...) {
    out.clear();
  }
  return out;
}

int parse_status_line(std::string_view line) {
  // "HTTP/1.1 404 Not Found": the first run of three digits after a space.
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) return 0;
  auto rest = line.substr(sp);
  const auto start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos || rest.size() - start < 3) return 0;
  int code = 0;
  for (std::size_t i = start; i < start + 3; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return 0;
    code = code * 10 + (rest[i] - '0');
  }
  if (rest.size() > start + 3 && rest[start + 3] != ' ' && rest[start + 3] != '\r' &&
      rest[start + 3] != '\n') {
    return 0;
  }
  return code;
}

bool holds_events(const Props& p) {
  if (!p.components) return true;
  return std::find(p.components->begin(), p.components->end(), "VEVENT") != p.components->end();
}

}  // namespace crmcap::caldav
