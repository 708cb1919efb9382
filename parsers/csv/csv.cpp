// SPDX-License-Identifier: Apache-2.0
#include "parsers/csv/csv.hpp"

#include "parsers/text/text.hpp"

#include <utility>

namespace crmcap::csv {

namespace {

class CsvCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.csv"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::bad_quoting:
        return "broken quoting";
      case Errc::field_count:
        return "field count differs from the header's";
      case Errc::not_utf8:
        return "not valid UTF-8";
      case Errc::empty:
        return "no header row";
    }
    return "unknown CSV error";
  }
};

Error bad(Errc code, std::string_view name, std::size_t line, std::string_view what) {
  std::string message(name);
  message += ':';
  message += std::to_string(line);
  message += ": ";
  message += what;
  return Error{make_error_code(code), std::move(message)};
}

}  // namespace

const std::error_category& csv_category() noexcept {
  static const CsvCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), csv_category()}; }

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::system_error(e.code, e.message);
}

Result<Table> parse(std::string_view data, std::string_view name) {
  if (data.starts_with("\xEF\xBB\xBF")) data.remove_prefix(3);
  std::vector<Record> records;
  std::size_t line = 1;
  std::size_t i = 0;
  while (i < data.size()) {
    Record rec;
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
            return bad(Errc::bad_quoting, name, start_line, "unterminated quoted field");
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
          return bad(Errc::bad_quoting, name, line,
                     "text after a closing quote (a quote inside a field must be \"\")");
        }
      } else {
        while (i < data.size() && data[i] != ',' && data[i] != '\n' && data[i] != '\r') {
          if (data[i] == '"') {
            return bad(Errc::bad_quoting, name, line,
                       "quote inside an unquoted field (quote the whole field)");
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
      if (!text::is_valid_utf8(f)) return bad(Errc::not_utf8, name, rec.line, "not valid UTF-8");
    }
    // Blank lines carry no record.
    if (rec.fields.size() == 1 && text::trim(rec.fields[0]).empty()) continue;
    records.push_back(std::move(rec));
  }
  if (records.empty()) return bad(Errc::empty, name, 1, "empty file: a header row is required");
  Table t;
  t.header = std::move(records.front().fields);
  for (std::size_t k = 1; k < records.size(); ++k) {
    if (records[k].fields.size() != t.header.size()) {
      return bad(Errc::field_count, name, records[k].line,
                 std::to_string(records[k].fields.size()) + " fields, but the header has " +
                     std::to_string(t.header.size()));
    }
    t.records.push_back(std::move(records[k]));
  }
  return t;
}

}  // namespace crmcap::csv
