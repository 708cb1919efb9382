// SPDX-License-Identifier: Apache-2.0
// Fills a new store with N generated activities through store::Store::commit,
// the path capture writes by, so the file has the schema, indexes and change
// sequence of a real one. tests/bench/bench_api.py serves it with
// crm-captured and measures the API's activity pages on it.
//
//   bench_api_fill STORE [COUNT]        (COUNT default 1,000,000)
//
// The activities run back in time from 2026-11-01, one every 90 s on average
// (1,000,000 span about 2.9 years). Four in five are captured. The first
// participant of nearly every one is a contact "P-<n>" of 100,000 (company
// "C-<n mod 20,000>"), half of the captured ones have an opportunity "O-<m>"
// of 5,000; n and m are skewed (n = 100,000 u^3 for u uniform in [0, 1)), so
// that a few contacts and opportunities have tens of thousands of activities
// and most a handful: pages are asked of both. The seed is fixed: two runs
// write the same rows.
#include "store/store.hpp"
#include "tests/bench/random_text.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

namespace {

using namespace crmcap::store;

constexpr std::size_t k_batch = 10'000;
constexpr std::int64_t k_contacts = 100'000;
constexpr std::int64_t k_companies = 20'000;
constexpr std::int64_t k_opportunities = 5'000;
constexpr std::int64_t k_newest = 1'793'491'200;  // 2026-11-01T00:00:00Z

std::string iso(std::int64_t t) {
  char when[32];
  const std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return when;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: bench_api_fill STORE [COUNT]\n";
    return 2;
  }
  const std::string path = argv[1];
  const std::size_t count = argc == 3 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
  if (std::filesystem::exists(path)) {
    std::cerr << "bench_api_fill: " << path << " exists; give a new file\n";
    return 2;
  }
  auto st = Store::open(path);
  if (!st) {
    std::cerr << "bench_api_fill: " << st.error().message << "\n";
    return 1;
  }
  std::mt19937_64 rng(20261101);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto skewed = [&](std::int64_t n) {
    const double u = unit(rng);
    return static_cast<std::int64_t>(static_cast<double>(n) * u * u * u);
  };
  auto hex = [&](std::size_t n) { return crmcap::bench::random_hex(rng, n); };
  auto text = [&](std::size_t n) { return crmcap::bench::random_text(rng, n); };
  const auto t0 = std::chrono::steady_clock::now();
  std::int64_t t = k_newest;
  for (std::size_t done = 0; done < count;) {
    Batch b;
    const std::size_t n = std::min(k_batch, count - done);
    b.items.reserve(n);
    for (std::size_t i = 0; i < n; ++i, ++done) {
      t -= 1 + static_cast<std::int64_t>(rng() % 179);
      const std::string mid = hex(16) + "." + std::to_string(done) + "@bench.example";
      Activity a;
      a.source_key = "mid:" + mid;
      a.id = "a-" + hex(32);
      const bool captured = rng() % 5 != 0;
      a.status = captured ? DecisionStatus::captured : DecisionStatus::skipped;
      a.rule = captured ? "" : "bulk";
      a.direction = rng() % 3 == 0 ? Direction::outbound : Direction::inbound;
      a.occurred_at = iso(t);
      a.subject = text(40);
      a.snippet = text(250);
      a.message_id = mid;
      a.thread_key = mid;
      if (captured && rng() % 2 == 0)
        a.opportunity_id = "O-" + std::to_string(skewed(k_opportunities));
      a.reason = text(captured ? 128 : 70);
      const std::size_t people = 2 + (rng() % 4 == 0 ? 1 : 0);
      for (std::size_t p = 0; p < people; ++p) {
        Participant part;
        part.role = p == 0 ? "from" : "to";
        part.name = text(14);
        if (p == 0 && rng() % 16 != 0) {
          const std::int64_t c = skewed(k_contacts);
          part.address =
              "p" + std::to_string(c) + "@company" + std::to_string(c % k_companies) + ".example";
          part.contact_id = "P-" + std::to_string(c);
          part.company_id = "C-" + std::to_string(c % k_companies);
          a.contact_ids.push_back(part.contact_id);
          a.company_ids.push_back(part.company_id);
        } else {
          part.address = "alice@example.com";
        }
        a.participants.push_back(std::move(part));
      }
      SourceRef src;
      src.mailbox = "alice";
      src.folder = "INBOX";
      src.uidvalidity = 1;
      src.uid = static_cast<std::int64_t>(done) + 1;
      b.items.push_back({std::move(a), std::move(src)});
    }
    b.cursor = SyncCursor{"alice", "INBOX", 1, static_cast<std::int64_t>(done), 0, ""};
    if (auto r = (*st)->commit(b); !r) {
      std::cerr << "bench_api_fill: " << r.error().message << "\n";
      return 1;
    }
    if (done % 100'000 == 0) {
      const std::chrono::duration<double> s = std::chrono::steady_clock::now() - t0;
      std::cerr << "bench_api_fill: " << done << " activities, " << s.count() << " s\n";
    }
  }
  return 0;
}
