// SPDX-License-Identifier: Apache-2.0
// Internal to store/: the schema migrations and a test hook.
#pragma once

#include "store/store.hpp"

#include <span>

namespace SQLite {
class Database;
}

namespace crmcap::store::detail {

// One schema step: its SQL, then (when set) code for what SQL cannot say,
// both in the step's transaction.
struct Migration {
  const char* sql;
  void (*after)(SQLite::Database& db);
};

// migrations()[i] takes the schema from version i to version i + 1.
std::span<const Migration> migrations() noexcept;

// Opens like Store::open but migrates no further than `version` (tests use it
// to build an old store and check the upgrade path).
Result<std::unique_ptr<Store>> open_at_version(const std::string& path, int version,
                                               const StoreOptions& options = {});

}  // namespace crmcap::store::detail
