// SPDX-License-Identifier: Apache-2.0
// Shared by the corpus tests (tests/corpora/<kind>/NAME.<ext> with NAME.json
// beside it): the corpus folder, its inputs, file reads and civil dates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace crmcap::test {

inline std::filesystem::path corpus_dir(const std::string& kind) {
  return std::filesystem::path(CRMCAP_SOURCE_DIR) / "tests" / "corpora" / kind;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The names (without extension) of the files in `dir` ending in `ext`, sorted.
inline std::vector<std::string> corpus_names(const std::filesystem::path& dir,
                                             const std::string& ext) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ext) names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
inline std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace crmcap::test
