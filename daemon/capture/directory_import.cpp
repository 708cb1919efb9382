// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/directory_import.hpp"

#include "daemon/capture/directory_edit.hpp"

#include "parsers/csv/csv.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>
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

namespace {

// The rows of a CSV file, checked, as puts ("file:line" their `where`), and
// the ids of other rows they name, with the line naming each.
struct CsvRows {
  std::vector<store::DirectoryEdit> edits;
  Refs company_refs, contact_refs;
};

Result<CsvRows> read_csv_rows(ImportKind kind, std::string_view data, std::string_view name) {
  auto table = csv::parse(data, name);
  if (!table) return make_error(Errc::bad_input, std::move(table.error().message));
  const Columns cols(*table, name);
  CsvRows out;
  std::set<std::string> seen;
  // The id (not empty, not seen before in this file) and name of a row.
  auto id_and_name = [&](const csv::Record& rec, auto& row) -> Result<void> {
    row.id = cols.get(rec, "id");
    if (row.id.empty()) return bad(name, rec.line, "empty id");
    if (!seen.insert(row.id).second) return bad(name, rec.line, "duplicate id '" + row.id + "'");
    row.name = cols.get(rec, "name");
    return {};
  };
  auto company_of = [&](const csv::Record& rec) {
    std::string id = cols.get(rec, "company_id");
    if (!id.empty()) out.company_refs.emplace_back(rec.line, id);
    return id;
  };
  auto edit = [&](const csv::Record& rec, store::DirectoryKind k) -> store::DirectoryEdit& {
    store::DirectoryEdit& e = out.edits.emplace_back();
    e.kind = k;
    e.where = std::string(name) + ":" + std::to_string(rec.line);
    return e;
  };

  switch (kind) {
    case ImportKind::companies: {
      if (auto r = cols.require({"id", "name"}); !r) return r.error();
      for (const auto& rec : table->records) {
        store::DirectoryEdit& e = edit(rec, store::DirectoryKind::company);
        store::Company& c = e.company;
        if (auto r = id_and_name(rec, c); !r) return r.error();
        c.domains = split_list(cols.get(rec, "domains"));
        if (auto p = check_row(c)) return bad(name, rec.line, p->what);
        e.id = c.id;
      }
      return out;
    }
    case ImportKind::contacts: {
      if (auto r = cols.require({"id", "name", "emails"}); !r) return r.error();
      for (const auto& rec : table->records) {
        store::DirectoryEdit& e = edit(rec, store::DirectoryKind::contact);
        store::Contact& c = e.contact;
        if (auto r = id_and_name(rec, c); !r) return r.error();
        c.company_id = company_of(rec);
        c.title = cols.get(rec, "title");
        c.phone = cols.get(rec, "phone");
        c.emails = split_list(cols.get(rec, "emails"));
        if (auto p = check_row(c)) return bad(name, rec.line, p->what);
        e.id = c.id;
      }
      return out;
    }
    case ImportKind::opportunities: {
      if (auto r = cols.require({"id", "name", "status"}); !r) return r.error();
      for (const auto& rec : table->records) {
        store::DirectoryEdit& e = edit(rec, store::DirectoryKind::opportunity);
        store::Opportunity& o = e.opportunity;
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
        for (auto& id : split_list(cols.get(rec, "contact_ids"))) {
          out.contact_refs.emplace_back(rec.line, id);
          o.contacts.push_back({std::move(id), ""});
        }
        if (auto p = check_row(o)) return bad(name, rec.line, p->what);
        e.id = o.id;
      }
      return out;
    }
  }
  return make_error(Errc::bad_input, "unknown import kind");
}

}  // namespace

Result<std::vector<store::DirectoryEdit>> directory_csv_edits(ImportKind kind,
                                                              std::string_view data,
                                                              std::string_view name) {
  auto rows = read_csv_rows(kind, data, name);
  if (!rows) return rows.error();
  return std::move(rows->edits);
}

Result<std::size_t> import_directory_csv_text(store::DirectoryWriter& writer, ImportKind kind,
                                              std::string_view data, std::string_view name,
                                              bool replace) {
  auto rows = read_csv_rows(kind, data, name);
  if (!rows) return rows.error();
  // Ids of other rows are checked against the store once the whole file is read.
  if (auto r = check_refs(name, rows->company_refs,
                          writer.missing_company_ids(ids_of(rows->company_refs)), "company");
      !r) {
    return r.error();
  }
  if (auto r = check_refs(name, rows->contact_refs,
                          writer.missing_contact_ids(ids_of(rows->contact_refs)), "contact");
      !r) {
    return r.error();
  }
  auto rows_of = [&](auto member) {
    std::vector<std::remove_cvref_t<decltype(rows->edits.front().*member)>> v;
    v.reserve(rows->edits.size());
    for (auto& e : rows->edits) v.push_back(std::move(e.*member));
    return v;
  };
  switch (kind) {
    case ImportKind::companies:
      return writer.upsert_companies(rows_of(&store::DirectoryEdit::company), replace);
    case ImportKind::contacts:
      return writer.upsert_contacts(rows_of(&store::DirectoryEdit::contact), replace);
    case ImportKind::opportunities:
      return writer.upsert_opportunities(rows_of(&store::DirectoryEdit::opportunity), replace);
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
