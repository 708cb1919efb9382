// SPDX-License-Identifier: Apache-2.0
#include "store/import.hpp"
#include "store/util.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace crmcap::store {

namespace {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      n = 1;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      n = 3;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  });
  return s;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto end = std::min(s.find(';', start), s.size());
    std::string item = trim(s.substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
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

// Column positions of a CSV table, by name.
class Columns {
 public:
  Columns(const CsvTable& t, std::string_view name) : name_(name) {
    for (std::size_t i = 0; i < t.header.size(); ++i) index_.emplace(t.header[i], i);
  }
  // Fails when a required column is missing: "file:1: missing required column 'x'".
  Result<void> require(std::initializer_list<std::string_view> cols) const {
    for (auto c : cols) {
      if (!index_.contains(std::string(c))) {
        return make_error(Errc::bad_input,
                          detail::cat(name_, ":1: missing required column '", c, "'"));
      }
    }
    return {};
  }
  std::string get(const CsvRecord& r, const std::string& col) const {
    auto it = index_.find(col);
    if (it == index_.end() || it->second >= r.fields.size()) return {};
    return trim(r.fields[it->second]);
  }

 private:
  std::string name_;
  std::map<std::string, std::size_t> index_;
};

Error bad(std::string_view name, std::size_t line, std::string what) {
  return make_error(Errc::bad_input, detail::cat(name, ":", line, ": ", what));
}

// Checks that every referenced id exists in the store; reports the first line
// that names an unknown one.
Result<void> check_refs(std::string_view name,
                        const std::vector<std::pair<std::size_t, std::string>>& refs,
                        Result<std::vector<std::string>> missing, std::string_view what) {
  if (!missing) return missing.error();
  if (missing->empty()) return {};
  const std::set<std::string> unknown(missing->begin(), missing->end());
  for (const auto& [line, id] : refs) {
    if (unknown.contains(id))
      return bad(name, line, detail::cat("unknown ", what, " id '", id, "'"));
  }
  return {};
}

std::vector<std::string> ids_of(const std::vector<std::pair<std::size_t, std::string>>& refs) {
  std::set<std::string> s;
  for (const auto& r : refs) s.insert(r.second);
  return {s.begin(), s.end()};
}

}  // namespace

std::string normalize_address(std::string_view s) { return lower(trim(s)); }

std::optional<ImportKind> import_kind_from_string(std::string_view s) noexcept {
  if (s == "companies") return ImportKind::companies;
  if (s == "contacts") return ImportKind::contacts;
  if (s == "opportunities") return ImportKind::opportunities;
  return std::nullopt;
}

Result<CsvTable> parse_csv(std::string_view data, std::string_view name) {
  if (data.starts_with("\xEF\xBB\xBF")) data.remove_prefix(3);
  std::vector<CsvRecord> records;
  std::size_t line = 1;
  std::size_t i = 0;
  while (i < data.size()) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool record_done = false;
    while (!record_done) {
      field.clear();
      if (i < data.size() && data[i] == '"') {
        const std::size_t start_line = line;
        ++i;
        for (;;) {
          if (i >= data.size()) {
            return bad(name, start_line, "unterminated quoted field");
          }
          const char c = data[i++];
          if (c == '"') {
            if (i < data.size() && data[i] == '"') {
              field += '"';
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            field += c;
          }
        }
        if (i < data.size() && data[i] != ',' && data[i] != '\n' && data[i] != '\r') {
          return bad(name, line,
                     "text after a closing quote (a quote inside a field must be \"\")");
        }
      } else {
        while (i < data.size() && data[i] != ',' && data[i] != '\n' && data[i] != '\r') {
          if (data[i] == '"') {
            return bad(name, line, "quote inside an unquoted field (quote the whole field)");
          }
          field += data[i++];
        }
      }
      rec.fields.push_back(field);
      if (i >= data.size()) {
        record_done = true;
      } else if (data[i] == ',') {
        ++i;
      } else {
        if (data[i] == '\r') ++i;
        if (i < data.size() && data[i] == '\n') ++i;
        ++line;
        record_done = true;
      }
    }
    for (const auto& f : rec.fields) {
      if (!valid_utf8(f)) return bad(name, rec.line, "not valid UTF-8");
    }
    // Blank lines carry no record.
    if (rec.fields.size() == 1 && trim(rec.fields[0]).empty()) continue;
    records.push_back(std::move(rec));
  }
  if (records.empty()) return bad(name, 1, "empty file: a header row is required");
  CsvTable t;
  for (auto& h : records.front().fields) t.header.push_back(lower(trim(h)));
  for (std::size_t k = 1; k < records.size(); ++k) {
    if (records[k].fields.size() != t.header.size()) {
      return bad(
          name, records[k].line,
          detail::cat(records[k].fields.size(), " fields, but the header has ", t.header.size()));
    }
    t.records.push_back(std::move(records[k]));
  }
  return t;
}

Result<std::size_t> import_csv_text(Store& store, ImportKind kind, std::string_view data,
                                    std::string_view name, bool replace) {
  auto table = parse_csv(data, name);
  if (!table) return table.error();
  const Columns cols(*table, name);
  std::set<std::string> seen;
  auto check_id = [&](const CsvRecord& r, const std::string& id) -> Result<void> {
    if (id.empty()) return bad(name, r.line, "empty id");
    if (!seen.insert(id).second) return bad(name, r.line, detail::cat("duplicate id '", id, "'"));
    return {};
  };
  std::vector<std::pair<std::size_t, std::string>> company_refs, contact_refs;

  switch (kind) {
    case ImportKind::companies: {
      if (auto r = cols.require({"id", "name"}); !r) return r.error();
      std::vector<Company> rows;
      for (const auto& rec : table->records) {
        Company c{cols.get(rec, "id"), cols.get(rec, "name"), {}};
        if (auto r = check_id(rec, c.id); !r) return r.error();
        for (auto& d : split_list(cols.get(rec, "domains"))) {
          d = normalize_address(d);
          if (d.starts_with("@")) d.erase(0, 1);
          if (!valid_domain(d)) return bad(name, rec.line, detail::cat("bad domain '", d, "'"));
          c.domains.push_back(std::move(d));
        }
        rows.push_back(std::move(c));
      }
      return store.upsert_companies(rows, replace);
    }
    case ImportKind::contacts: {
      if (auto r = cols.require({"id", "name", "emails"}); !r) return r.error();
      std::vector<Contact> rows;
      for (const auto& rec : table->records) {
        Contact c;
        c.id = cols.get(rec, "id");
        if (auto r = check_id(rec, c.id); !r) return r.error();
        c.name = cols.get(rec, "name");
        c.company_id = cols.get(rec, "company_id");
        c.title = cols.get(rec, "title");
        c.phone = cols.get(rec, "phone");
        for (auto& e : split_list(cols.get(rec, "emails"))) {
          e = normalize_address(e);
          if (!valid_address(e)) return bad(name, rec.line, detail::cat("bad address '", e, "'"));
          if (std::find(c.emails.begin(), c.emails.end(), e) == c.emails.end()) {
            c.emails.push_back(std::move(e));
          }
        }
        if (!c.company_id.empty()) company_refs.emplace_back(rec.line, c.company_id);
        rows.push_back(std::move(c));
      }
      if (auto r = check_refs(name, company_refs, store.missing_company_ids(ids_of(company_refs)),
                              "company");
          !r) {
        return r.error();
      }
      return store.upsert_contacts(rows, replace);
    }
    case ImportKind::opportunities: {
      if (auto r = cols.require({"id", "name", "status"}); !r) return r.error();
      std::vector<Opportunity> rows;
      for (const auto& rec : table->records) {
        Opportunity o;
        o.id = cols.get(rec, "id");
        if (auto r = check_id(rec, o.id); !r) return r.error();
        o.name = cols.get(rec, "name");
        o.company_id = cols.get(rec, "company_id");
        o.stage = cols.get(rec, "stage");
        const std::string status = lower(cols.get(rec, "status"));
        const auto st = opportunity_status_from_string(status);
        if (!st) {
          return bad(name, rec.line,
                     detail::cat("bad status '", status, "' (expected open, won or lost)"));
        }
        o.status = *st;
        if (const std::string amount = cols.get(rec, "amount"); !amount.empty()) {
          double v = 0;
          auto res = std::from_chars(amount.data(), amount.data() + amount.size(), v);
          if (res.ec != std::errc{} || res.ptr != amount.data() + amount.size()) {
            return bad(name, rec.line, detail::cat("bad amount '", amount, "'"));
          }
          o.amount = v;
        }
        o.close_date = cols.get(rec, "close_date");
        if (!o.close_date.empty() && !valid_date(o.close_date)) {
          return bad(name, rec.line,
                     detail::cat("bad close_date '", o.close_date, "' (expected YYYY-MM-DD)"));
        }
        for (auto& id : split_list(cols.get(rec, "contact_ids"))) {
          contact_refs.emplace_back(rec.line, id);
          o.contacts.push_back({std::move(id), ""});
        }
        if (!o.company_id.empty()) company_refs.emplace_back(rec.line, o.company_id);
        rows.push_back(std::move(o));
      }
      if (auto r = check_refs(name, company_refs, store.missing_company_ids(ids_of(company_refs)),
                              "company");
          !r) {
        return r.error();
      }
      if (auto r = check_refs(name, contact_refs, store.missing_contact_ids(ids_of(contact_refs)),
                              "contact");
          !r) {
        return r.error();
      }
      return store.upsert_opportunities(rows, replace);
    }
  }
  return make_error(Errc::bad_input, "unknown import kind");
}

Result<std::size_t> import_csv(Store& store, ImportKind kind, const std::string& path,
                               bool replace) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::bad_input, detail::cat(path, ": cannot read the file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return import_csv_text(store, kind, ss.str(), path, replace);
}

}  // namespace crmcap::store
