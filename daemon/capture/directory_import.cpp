// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/directory_import.hpp"

#include "parsers/csv/csv.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

namespace crmcap::capture {

namespace {

using store::Errc;
using store::make_error;
using store::Result;

// An address or a domain as the store keeps them: trimmed, lowercase.
std::string normalized(std::string_view s) { return text::to_lower_copy(text::trim(s)); }

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto end = std::min(s.find(';', start), s.size());
    std::string_view item = text::trim(s.substr(start, end - start));
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' ||
      d.find('.') == std::string_view::npos || d.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(d.begin(), d.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c >= 0x80;
  });
}

bool valid_address(std::string_view a) {
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  if (a.find_first_of(" \t<>,;\"") != std::string_view::npos) return false;
  return valid_domain(a.substr(at + 1));
}

bool valid_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  int y = 0, m = 0, d = 0;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    auto r = std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return r.ec == std::errc{} && r.ptr == s.data() + pos + len;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return false;
  if (m < 1 || m > 12 || d < 1) return false;
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + ((m == 2 && leap) ? 1 : 0);
}

store::Error bad(std::string_view name, std::size_t line, std::string_view what) {
  std::string message(name);
  message += ':';
  message += std::to_string(line);
  message += ": ";
  message += what;
  return make_error(Errc::bad_input, std::move(message));
}

// Column positions of a CSV table, by name (trimmed, lowercase).
class Columns {
 public:
  Columns(const csv::Table& t, std::string_view name) : name_(name) {
    for (std::size_t i = 0; i < t.header.size(); ++i) index_.emplace(normalized(t.header[i]), i);
  }
  // Fails when a required column is missing: "file:1: missing required column 'x'".
  Result<void> require(std::initializer_list<std::string_view> cols) const {
    for (auto c : cols) {
      if (!index_.contains(std::string(c))) {
        return bad(name_, 1, "missing required column '" + std::string(c) + "'");
      }
    }
    return {};
  }
  std::string get(const csv::Record& r, const std::string& col) const {
    auto it = index_.find(col);
    if (it == index_.end() || it->second >= r.fields.size()) return {};
    return std::string(text::trim(r.fields[it->second]));
  }

 private:
  std::string name_;
  std::map<std::string, std::size_t> index_;
};

using Refs = std::vector<std::pair<std::size_t, std::string>>;  // line, id

// Checks that every referenced id exists in the store; reports the first line
// that names an unknown one.
Result<void> check_refs(std::string_view name, const Refs& refs,
                        Result<std::vector<std::string>> missing, std::string_view what) {
  if (!missing) return missing.error();
  if (missing->empty()) return {};
  const std::set<std::string> unknown(missing->begin(), missing->end());
  for (const auto& [line, id] : refs) {
    if (unknown.contains(id)) {
      return bad(name, line, "unknown " + std::string(what) + " id '" + id + "'");
    }
  }
  return {};
}

std::vector<std::string> ids_of(const Refs& refs) {
  std::set<std::string> s;
  for (const auto& r : refs) s.insert(r.second);
  return {s.begin(), s.end()};
}

}  // namespace

std::optional<ImportKind> import_kind_from_string(std::string_view s) noexcept {
  if (s == "companies") return ImportKind::companies;
  if (s == "contacts") return ImportKind::contacts;
  if (s == "opportunities") return ImportKind::opportunities;
  return std::nullopt;
}

Result<std::size_t> import_directory_csv_text(store::DirectoryWriter& writer, ImportKind kind,
                                              std::string_view data, std::string_view name,
                                              bool replace) {
  auto table = csv::parse(data, name);
  if (!table) return make_error(Errc::bad_input, std::move(table.error().message));
  const Columns cols(*table, name);
  std::set<std::string> seen;
  // The id (not empty, not seen before in this file) and name of a row.
  auto id_and_name = [&](const csv::Record& rec, auto& row) -> Result<void> {
    row.id = cols.get(rec, "id");
    if (row.id.empty()) return bad(name, rec.line, "empty id");
    if (!seen.insert(row.id).second) return bad(name, rec.line, "duplicate id '" + row.id + "'");
    row.name = cols.get(rec, "name");
    return {};
  };
  // Ids of other rows, with the line naming them; checked against the store
  // once the whole file is read.
  Refs company_refs, contact_refs;
  auto company_of = [&](const csv::Record& rec) {
    std::string id = cols.get(rec, "company_id");
    if (!id.empty()) company_refs.emplace_back(rec.line, id);
    return id;
  };
  auto companies_known = [&] {
    return check_refs(name, company_refs, writer.missing_company_ids(ids_of(company_refs)),
                      "company");
  };

  switch (kind) {
    case ImportKind::companies: {
      if (auto r = cols.require({"id", "name"}); !r) return r.error();
      std::vector<store::Company> rows;
      for (const auto& rec : table->records) {
        store::Company c;
        if (auto r = id_and_name(rec, c); !r) return r.error();
        for (auto& d : split_list(cols.get(rec, "domains"))) {
          d = normalized(d);
          if (d.starts_with("@")) d.erase(0, 1);
          if (!valid_domain(d)) return bad(name, rec.line, "bad domain '" + d + "'");
          c.domains.push_back(std::move(d));
        }
        rows.push_back(std::move(c));
      }
      return writer.upsert_companies(rows, replace);
    }
    case ImportKind::contacts: {
      if (auto r = cols.require({"id", "name", "emails"}); !r) return r.error();
      std::vector<store::Contact> rows;
      for (const auto& rec : table->records) {
        store::Contact c;
        if (auto r = id_and_name(rec, c); !r) return r.error();
        c.company_id = company_of(rec);
        c.title = cols.get(rec, "title");
        c.phone = cols.get(rec, "phone");
        for (auto& e : split_list(cols.get(rec, "emails"))) {
          e = normalized(e);
          if (!valid_address(e)) return bad(name, rec.line, "bad address '" + e + "'");
          if (std::find(c.emails.begin(), c.emails.end(), e) == c.emails.end()) {
            c.emails.push_back(std::move(e));
          }
        }
        rows.push_back(std::move(c));
      }
      if (auto r = companies_known(); !r) return r.error();
      return writer.upsert_contacts(rows, replace);
    }
    case ImportKind::opportunities: {
      if (auto r = cols.require({"id", "name", "status"}); !r) return r.error();
      std::vector<store::Opportunity> rows;
      for (const auto& rec : table->records) {
        store::Opportunity o;
        if (auto r = id_and_name(rec, o); !r) return r.error();
        o.company_id = company_of(rec);
        o.stage = cols.get(rec, "stage");
        const std::string status = text::to_lower_copy(cols.get(rec, "status"));
        const auto st = store::opportunity_status_from_string(status);
        if (!st) {
          return bad(name, rec.line, "bad status '" + status + "' (expected open, won or lost)");
        }
        o.status = *st;
        if (const std::string amount = cols.get(rec, "amount"); !amount.empty()) {
          double v = 0;
          auto res = std::from_chars(amount.data(), amount.data() + amount.size(), v);
          if (res.ec != std::errc{} || res.ptr != amount.data() + amount.size()) {
            return bad(name, rec.line, "bad amount '" + amount + "'");
          }
          o.amount = v;
        }
        o.close_date = cols.get(rec, "close_date");
        if (!o.close_date.empty() && !valid_date(o.close_date)) {
          return bad(name, rec.line, "bad close_date '" + o.close_date + "' (expected YYYY-MM-DD)");
        }
        for (auto& id : split_list(cols.get(rec, "contact_ids"))) {
          contact_refs.emplace_back(rec.line, id);
          o.contacts.push_back({std::move(id), ""});
        }
        rows.push_back(std::move(o));
      }
      if (auto r = companies_known(); !r) return r.error();
      if (auto r = check_refs(name, contact_refs, writer.missing_contact_ids(ids_of(contact_refs)),
                              "contact");
          !r) {
        return r.error();
      }
      return writer.upsert_opportunities(rows, replace);
    }
  }
  return make_error(Errc::bad_input, "unknown import kind");
}

Result<std::size_t> import_directory_csv(store::DirectoryWriter& writer, ImportKind kind,
                                         const std::string& path, bool replace) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::bad_input, path + ": cannot read the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return import_directory_csv_text(writer, kind, ss.str(), path, replace);
}

}  // namespace crmcap::capture
