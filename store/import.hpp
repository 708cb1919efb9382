// SPDX-License-Identifier: Apache-2.0
// Importing the CRM's directory from CSV files (RFC 4180, UTF-8, header row).
#pragma once

#include "store/store.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace crmcap::store {

// One parsed CSV record and the line it starts on (1-based, counting the header).
struct CsvRecord {
  std::size_t line = 0;
  std::vector<std::string> fields;
};

struct CsvTable {
  std::vector<std::string> header;  // trimmed, lowercase
  std::vector<CsvRecord> records;
};

// Parses RFC 4180 CSV (quoted fields with "" escapes and embedded line breaks,
// CRLF or LF, a UTF-8 BOM tolerated). Fails with "name:line: what" on broken
// quoting, a record whose field count differs from the header's, or invalid UTF-8.
Result<CsvTable> parse_csv(std::string_view data, std::string_view name);

enum class ImportKind { companies, contacts, opportunities };
std::optional<ImportKind> import_kind_from_string(std::string_view s) noexcept;

// Reads `path` and upserts its rows (with `replace`, also removes rows absent
// from the file). The file is validated whole before anything is written: a
// missing required column, broken quoting, an empty or duplicate id, a bad
// address, domain, status, amount or date, or an unknown company or contact id
// fails with "path:line: what is wrong" and leaves the store as it was.
// Returns the number of rows imported.
Result<std::size_t> import_csv(Store& store, ImportKind kind, const std::string& path,
                               bool replace);

// Same, from CSV text already in memory; `name` is used in messages.
Result<std::size_t> import_csv_text(Store& store, ImportKind kind, std::string_view data,
                                    std::string_view name, bool replace);

// Normalizes an address or a domain as the store keeps them: trimmed, lowercase.
std::string normalize_address(std::string_view s);

}  // namespace crmcap::store
