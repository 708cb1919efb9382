// SPDX-License-Identifier: Apache-2.0
// Importing the CRM's directory (companies, contacts, opportunities) from CSV
// files: the rows of csv::parse() checked, normalized as the matcher compares
// them, and written with the store's DirectoryWriter. No SQL here, no CSV
// syntax in store/.
#pragma once

#include "store/store.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::capture {

enum class ImportKind { companies, contacts, opportunities };
// "companies", "contacts" or "opportunities"; nullopt otherwise.
std::optional<ImportKind> import_kind_from_string(std::string_view s) noexcept;

// Reads `path` (RFC 4180, UTF-8, a header row naming the columns in any case)
// and upserts its rows (with `replace`, also removes rows absent from the
// file). The file is checked whole before anything is written: a missing
// required column, broken quoting, an empty or duplicate id, a bad address,
// domain, status, amount or date, or an unknown company or contact id fails
// with store::Errc::bad_input and "path:line: what is wrong", and leaves the
// store as it was. Addresses and domains are stored trimmed and lowercase.
// Returns the number of rows imported.
store::Result<std::size_t> import_directory_csv(store::DirectoryWriter& writer, ImportKind kind,
                                                const std::string& path, bool replace);

// The rows of CSV text, checked as above but not their references to other
// rows, as puts whose `where` is "name:line" (for DirectoryEditor::apply,
// where the store checks the references).
store::Result<std::vector<store::DirectoryEdit>> directory_csv_edits(ImportKind kind,
                                                                     std::string_view data,
                                                                     std::string_view name);

// Same, from CSV text already in memory; `name` is used in messages.
store::Result<std::size_t> import_directory_csv_text(store::DirectoryWriter& writer,
                                                     ImportKind kind, std::string_view data,
                                                     std::string_view name, bool replace);

}  // namespace crmcap::capture
