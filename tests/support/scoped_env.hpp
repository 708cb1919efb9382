// SPDX-License-Identifier: Apache-2.0
// For tests of any library: an environment variable set (or unset) for one
// scope, and given back its earlier value (or absence) when the object goes.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace crmcap::test {

class ScopedEnv {
 public:
  // Sets `name` to `value`, or unsets it when `value` is nullopt.
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* was = std::getenv(name)) was_ = was;
    set(value);
  }
  ~ScopedEnv() { set(was_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> was_;
};

}  // namespace crmcap::test
