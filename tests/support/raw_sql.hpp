// SPDX-License-Identifier: Apache-2.0
// For store tests: SQL run on a store's file with the plain SQLite C API,
// apart from the store's own code (rows an older version wrote, say).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

namespace crmcap::test {

// Runs `sql` (one statement or several) on the database at `db`; a failure
// is a fatal failure of the test (wrap the call in ASSERT_NO_FATAL_FAILURE
// to stop there).
inline void exec_raw(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

}  // namespace crmcap::test
