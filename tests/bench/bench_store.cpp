// SPDX-License-Identifier: Apache-2.0
// Store benchmark (issue 2, "Tests and figures"): importing a CRM directory of
// 20,000 companies and 100,000 contacts from CSV text into a fresh SQLite store,
// and the matcher's two directory lookups on the imported store.
// Aims: the import under 3 s, a lookup under 5 us.
//
// The CSV text is generated in memory from a fixed seed, so every run imports
// the same bytes and the file system only sees SQLite's own writes. Each store
// lives in a temporary directory removed at exit.
#include "daemon/capture/directory_import.hpp"
#include "store/store.hpp"
#include "tests/bench/random_text.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using crmcap::capture::ImportKind;
using crmcap::store::Store;

namespace {

constexpr std::size_t k_companies = 20'000;
constexpr std::size_t k_contacts = 100'000;
constexpr std::uint64_t k_seed = 1;

// The directory as CSV text, plus the keys the lookup benchmarks draw from.
struct Directory {
  std::string companies_csv;
  std::string contacts_csv;
  std::vector<std::string> domains;    // every company domain
  std::vector<std::string> addresses;  // every contact address
};

// Quotes a CSV field when it needs it (RFC 4180).
void put_field(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

Directory make_directory() {
  static constexpr const char* first[] = {"james", "mary",    "john",   "patricia", "robert",
                                          "linda", "michael", "sarah",  "olivia",   "lucas",
                                          "hugo",  "lea",     "jurgen", "soren",    "jose"};
  static constexpr const char* last[] = {"smith",  "johnson", "garcia", "miller", "davis",
                                         "muller", "dubois",  "nunez",  "rossi",  "nguyen",
                                         "kim",    "okafor",  "lee",    "taylor", "moore"};
  static constexpr const char* tlds[] = {"com", "com", "com", "io", "de", "fr", "co.uk", "net"};
  static constexpr const char* free_mail[] = {"gmail.com", "yahoo.com", "outlook.com", "gmx.de"};
  static constexpr const char* titles[] = {
      "CTO", "CFO", "Head of Procurement", "Buyer", "VP Engineering, EMEA", "IT Director"};
  std::mt19937_64 rng(k_seed);
  auto pick = [&](const auto& arr) {
    return arr[std::uniform_int_distribution<std::size_t>(0, std::size(arr) - 1)(rng)];
  };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  Directory d;
  std::vector<std::vector<std::string>> domains_of(k_companies);
  d.companies_csv = "id,name,domains\n";
  for (std::size_t i = 0; i < k_companies; ++i) {
    const std::string base = "company" + std::to_string(i + 1);
    auto& doms = domains_of[i];
    doms.push_back(base + "." + pick(tlds));
    if (chance(0.3)) doms.push_back(base + "-group.com");
    d.companies_csv += "C-" + std::to_string(i + 1) + ",";
    // Some names carry a comma, as real ones do ("Acme, Inc."), so quoting is exercised.
    put_field(d.companies_csv, "Company " + std::to_string(i + 1) + (chance(0.2) ? ", Inc." : ""));
    d.companies_csv += ',';
    for (std::size_t k = 0; k < doms.size(); ++k) {
      if (k) d.companies_csv += ';';
      d.companies_csv += doms[k];
      d.domains.push_back(doms[k]);
    }
    d.companies_csv += '\n';
  }

  d.contacts_csv = "id,name,emails,company_id,title,phone\n";
  std::uniform_int_distribution<std::size_t> company(0, k_companies - 1);
  std::uniform_int_distribution<int> digits(1000000, 9999999);
  for (std::size_t i = 0; i < k_contacts; ++i) {
    const std::size_t c = company(rng);
    const std::string f = pick(first), l = pick(last);
    const std::string local = f + "." + l + std::to_string(i + 1);
    std::vector<std::string> emails{local + "@" + domains_of[c][rng() % domains_of[c].size()]};
    if (chance(0.3)) emails.push_back(local + "@" + pick(free_mail));
    d.contacts_csv += "P-" + std::to_string(i + 1) + ",";
    put_field(d.contacts_csv, f + " " + l);
    d.contacts_csv += ',';
    for (std::size_t k = 0; k < emails.size(); ++k) {
      if (k) d.contacts_csv += ';';
      d.contacts_csv += emails[k];
      d.addresses.push_back(emails[k]);
    }
    d.contacts_csv += ",C-" + std::to_string(c + 1) + ",";
    put_field(d.contacts_csv, pick(titles));
    d.contacts_csv += ",+1 555 " + std::to_string(digits(rng)) + "\n";
  }
  return d;
}

const Directory& directory() {
  static const Directory d = make_directory();
  return d;
}

// A temporary directory for the stores of this run, removed at exit.
const fs::path& temp_root() {
  static const fs::path root = [] {
    std::string tmpl = (fs::temp_directory_path() / "bench_store.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    return fs::path(tmpl);
  }();
  return root;
}

std::unique_ptr<Store> open_fresh(const std::string& name) {
  const fs::path p = temp_root() / name;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
  return Store::open(p.string()).value();
}

// Imports companies then contacts; returns false (and reports) on failure.
bool import_directory(Store& st, benchmark::State* state) {
  const Directory& d = directory();
  auto a = crmcap::capture::import_directory_csv_text(st, ImportKind::companies, d.companies_csv,
                                                      "companies.csv", false);
  auto b = a ? crmcap::capture::import_directory_csv_text(st, ImportKind::contacts, d.contacts_csv,
                                                          "contacts.csv", false)
             : a;
  if (!a || !b || *a != k_companies || *b != k_contacts) {
    const std::string msg = !a ? a.error().message : !b ? b.error().message : "wrong row count";
    if (state) state->SkipWithError(msg.c_str());
    std::fprintf(stderr, "import failed: %s\n", msg.c_str());
    return false;
  }
  return true;
}

// Whole import into a fresh store: companies, then contacts. The store is
// opened (schema created) outside the timed region.
void BM_ImportDirectory(benchmark::State& state) {
  (void)directory();  // generate the CSV text before timing
  double companies_s = 0, contacts_s = 0;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto st = open_fresh("import-" + std::to_string(n++) + ".db");
    state.ResumeTiming();
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto a = crmcap::capture::import_directory_csv_text(
        *st, ImportKind::companies, directory().companies_csv, "companies.csv", false);
    const auto t1 = clock::now();
    auto b = crmcap::capture::import_directory_csv_text(
        *st, ImportKind::contacts, directory().contacts_csv, "contacts.csv", false);
    const auto t2 = clock::now();
    if (!a || !b) {
      state.SkipWithError((!a ? a.error().message : b.error().message).c_str());
      break;
    }
    companies_s += std::chrono::duration<double>(t1 - t0).count();
    contacts_s += std::chrono::duration<double>(t2 - t1).count();
    state.PauseTiming();
    st.reset();
    state.ResumeTiming();
  }
  using benchmark::Counter;
  state.counters["rows"] = static_cast<double>(k_companies + k_contacts);
  state.counters["rows_per_s"] =
      Counter(static_cast<double>(k_companies + k_contacts), Counter::kIsIterationInvariantRate);
  state.counters["companies_s"] = Counter(companies_s, Counter::kAvgIterations);
  state.counters["contacts_s"] = Counter(contacts_s, Counter::kAvgIterations);
}
BENCHMARK(BM_ImportDirectory)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

// The imported store the lookup benchmarks share (built once, untimed; closed
// in main before the temporary directory is removed).
std::unique_ptr<Store> g_lookup_store;

Store& lookup_store() {
  if (!g_lookup_store) {
    g_lookup_store = open_fresh("lookup.db");
    if (!import_directory(*g_lookup_store, nullptr)) std::exit(1);
  }
  return *g_lookup_store;
}

// 4096 keys drawn at random (fixed seed) from `pool`, or made-up misses.
std::vector<std::string> sample(const std::vector<std::string>& pool, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out(4096);
  for (auto& k : out) k = pool[rng() % pool.size()];
  return out;
}

enum class Kind { hit, miss };

void BM_ContactByEmail(benchmark::State& state, Kind kind) {
  Store& st = lookup_store();
  std::vector<std::string> keys = sample(directory().addresses, 2);
  // A miss has a company's domain but an unknown local part: what the matcher
  // sees for a colleague of a known contact.
  if (kind == Kind::miss) {
    for (auto& k : keys) k = "nobody." + k;
  }
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    auto r = st.contact_by_email(keys[i++ & 4095], crmcap::store::PlusTags::ignored);
    if (r && r->has_value()) ++found;
    benchmark::DoNotOptimize(r);
  }
  if (found != (kind == Kind::hit ? i : 0)) state.SkipWithError("unexpected lookup result");
}
BENCHMARK_CAPTURE(BM_ContactByEmail, hit, Kind::hit);
BENCHMARK_CAPTURE(BM_ContactByEmail, miss, Kind::miss);

void BM_CompaniesByDomain(benchmark::State& state, Kind kind) {
  Store& st = lookup_store();
  std::vector<std::string> keys = sample(directory().domains, 3);
  // A miss is a domain no company lists, e.g. a parent the matcher tries next.
  if (kind == Kind::miss) {
    for (auto& k : keys) k = "unknown-" + k;
  }
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    auto r = st.companies_by_domain(keys[i++ & 4095]);
    if (r && !r->empty()) ++found;
    benchmark::DoNotOptimize(r);
  }
  if (found != (kind == Kind::hit ? i : 0)) state.SkipWithError("unexpected lookup result");
}
BENCHMARK_CAPTURE(BM_CompaniesByDomain, hit, Kind::hit);
BENCHMARK_CAPTURE(BM_CompaniesByDomain, miss, Kind::miss);

// A mailbox backfill as the IMAP sink commits it: 20,000 activities shaped
// like the loopback benchmark's (tests/servers/loopback_mailbox.py: about 2.25
// participants, four in five captured, half of those with an opportunity),
// newest first, 500 to a batch with the folder's cursor, into a fresh store.
constexpr std::size_t k_backfill = 20'000;
constexpr std::size_t k_backfill_batch = 500;

std::vector<crmcap::store::Batch> make_backfill() {
  using namespace crmcap::store;
  std::mt19937_64 rng(k_seed + 7);
  auto hex = [&](std::size_t n) { return crmcap::bench::random_hex(rng, n); };
  auto text = [&](std::size_t n) { return crmcap::bench::random_text(rng, n); };
  std::vector<Batch> out;
  for (std::size_t i = 0; i < k_backfill; ++i) {
    if (i % k_backfill_batch == 0) out.emplace_back();
    Batch& b = out.back();
    const std::int64_t uid = static_cast<std::int64_t>(k_backfill - i);
    const std::string mid =
        hex(12) + "." + std::to_string(uid) + "@company" + std::to_string(rng() % 2000) + ".com";
    Activity a;
    a.source_key = "mid:" + mid;
    a.id = "a-" + hex(32);
    const bool captured = rng() % 5 != 0;
    a.status = captured ? DecisionStatus::captured : DecisionStatus::skipped;
    a.rule = captured ? "" : "bulk";
    const std::int64_t t = 1'790'000'000 - static_cast<std::int64_t>(i) * 300;
    char when[32];
    const std::time_t tt = t;
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    a.occurred_at = when;
    a.subject = text(25);
    a.snippet = text(250);
    a.message_id = mid;
    a.thread_key = mid;
    if (captured && rng() % 2 == 0) a.opportunity_id = "O-" + std::to_string(rng() % 500);
    a.reason = text(captured ? 128 : 70);
    const std::size_t people = 2 + (rng() % 4 == 0 ? 1 : 0);
    for (std::size_t p = 0; p < people; ++p) {
      Participant part;
      part.address = "person" + std::to_string(rng() % 100000) + "@company.com";
      part.name = text(14);
      part.role = p == 0 ? "from" : "to";
      if (p == 0 && rng() % 16 != 0) {
        part.contact_id = "P-" + std::to_string(rng() % 100000);
        part.company_id = "C-" + std::to_string(rng() % 20000);
      }
      a.participants.push_back(std::move(part));
    }
    SourceRef src;
    src.mailbox = "alice";
    src.folder = "INBOX";
    src.uidvalidity = 1'795'815'027;
    src.uid = uid;
    b.items.push_back({std::move(a), std::move(src)});
    b.cursor =
        SyncCursor{"alice", "INBOX", 1'795'815'027, static_cast<std::int64_t>(k_backfill), 0, ""};
  }
  return out;
}

void BM_CommitBackfill(benchmark::State& state) {
  const std::vector<crmcap::store::Batch> batches = make_backfill();
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto st = open_fresh("backfill-" + std::to_string(n++) + ".db");
    state.ResumeTiming();
    for (const auto& b : batches) {
      if (auto r = st->commit(b); !r) {
        state.SkipWithError(r.error().message.c_str());
        return;
      }
    }
    state.PauseTiming();
    st.reset();
    state.ResumeTiming();
  }
  state.counters["activities_per_s"] = benchmark::Counter(
      static_cast<double>(k_backfill), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CommitBackfill)->Iterations(5)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const Directory& d = directory();
  std::fprintf(stderr,
               "directory: %zu companies (%zu domains, %zu bytes CSV), %zu contacts "
               "(%zu addresses, %zu bytes CSV); stores in %s\n",
               k_companies, d.domains.size(), d.companies_csv.size(), k_contacts,
               d.addresses.size(), d.contacts_csv.size(), temp_root().c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_lookup_store.reset();
  std::error_code ec;
  fs::remove_all(temp_root(), ec);
  return 0;
}
