// SPDX-License-Identifier: Apache-2.0
// Internal to store/: the schema migrations and a test hook.
#pragma once

#include "store/store.hpp"

#include <span>

namespace crmcap::store::detail {

// migrations()[i] takes the schema from version i to version i + 1.
std::span<const char* const> migrations() noexcept;

// Opens like Store::open but migrates no further than `version` (tests use it
// to build an old store and check the upgrade path).
Result<std::unique_ptr<Store>> open_at_version(const std::string& path, int version,
                                               const StoreOptions& options = {});

}  // namespace crmcap::store::detail
