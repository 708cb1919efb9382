// SPDX-License-Identifier: Apache-2.0
// crm-capture CSV reader: a pure function from RFC 4180 text to its records.
// No I/O, no store, no exception leaves it (bar std::bad_alloc). What the
// columns mean is the caller's business (daemon/capture/directory_import.hpp
// for the CRM directory).
#pragma once

#include <boost/system/result.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::csv {

enum class Errc {
  bad_quoting = 1,  // an unterminated quoted field, or a stray quote
  field_count,      // a record whose field count differs from the header's
  not_utf8,         // a field that is not valid UTF-8
  empty,            // no header row
};
const std::error_category& csv_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

struct Error {
  std::error_code code;
  std::string message;  // "name:line: what", e.g. "in.csv:3: unterminated quoted field"
};

template <class T>
using Result = boost::system::result<T, Error>;
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

// One record and the line it starts on (1-based, counting the header).
struct Record {
  std::size_t line = 0;
  std::vector<std::string> fields;
};

struct Table {
  std::vector<std::string> header;  // the first record's fields, as written
  std::vector<Record> records;      // the records after it
};

// Reads RFC 4180 CSV: fields separated by ',', records by CRLF, LF or a lone
// CR; quoted fields with "" escapes and embedded line breaks (which count as
// lines). A leading UTF-8 BOM is skipped, and blank lines (one field of
// whitespace only) carry no record. Fails with "name:line: what" on broken
// quoting, a record whose field count differs from the header's, a field that
// is not valid UTF-8, or input without a header row; `name` (a file name) is
// used only in those messages.
Result<Table> parse(std::string_view data, std::string_view name);

}  // namespace crmcap::csv

template <>
struct std::is_error_code_enum<crmcap::csv::Errc> : std::true_type {};
