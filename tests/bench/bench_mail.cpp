// SPDX-License-Identifier: Apache-2.0
// Mail capture benchmark (issue 3, "Tests and figures"), over a Maildir given in
// CRMCAP_BENCH_MAILDIR (tests/bench/gen_mailbox.py makes one) and the CRM
// directory CSVs in CRMCAP_BENCH_CSV (companies.csv, contacts.csv,
// opportunities.csv). Without CRMCAP_BENCH_MAILDIR it prints why and exits 0.
//
// Every message file is read into memory before any benchmark runs, so disk
// reads are not measured:
//  - BM_Parse: mail::parse over every message (messages/s, MB/s).
//  - BM_Pipeline: parse + decide + match + commit in batches of 1000 into a
//    fresh SQLite store in a temporary directory (the directory imported first,
//    untimed), one thread: the work of `crm-capture ingest` minus the file reads.
//  - BM_IngestFiles: cli::ingest itself on the same files (page-cached reads
//    included), as a cross-check that BM_Pipeline does the command's work.
// Aims: parse at least 10 times faster than Python's email (bench_parse_peer.py);
// the whole pipeline at least 5,000 messages/s on one core.
#include "connectors/maildir/maildir.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/directory_import.hpp"
#include "daemon/cli/ingest.hpp"
#include "parsers/mail/mail.hpp"
#include "store/store.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

constexpr std::size_t k_batch = 1000;  // as `crm-capture ingest`

struct Message {
  const crmcap::maildir::LocalMessage* file;
  std::string raw;
};

struct Corpus {
  std::string maildir, csv_dir;
  std::vector<crmcap::maildir::LocalMessage> files;
  std::vector<Message> messages;
  std::size_t bytes = 0;
  std::optional<capture::FreeMailDomains> free_mail;
  fs::path temp;
};
Corpus g;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// The settings `crm-capture ingest --owner alice@example.com
// --internal-domain example.com` uses on the generated mailbox.
capture::Settings settings() {
  capture::Settings s;
  s.owner_addresses = {"alice@example.com"};
  s.internal_domains = {"example.com"};
  return s;
}

// A fresh store with the CRM directory imported.
std::unique_ptr<store::Store> fresh_store(const std::string& name) {
  const fs::path p = g.temp / name;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
  auto st = store::Store::open(p.string()).value();
  for (auto [kind, file] : {std::pair{capture::ImportKind::companies, "companies.csv"},
                            std::pair{capture::ImportKind::contacts, "contacts.csv"},
                            std::pair{capture::ImportKind::opportunities, "opportunities.csv"}}) {
    capture::import_directory_csv(*st, kind, (fs::path(g.csv_dir) / file).string(), false).value();
  }
  return st;
}

void set_rates(benchmark::State& state) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * g.messages.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * g.bytes));
}

void BM_Parse(benchmark::State& state) {
  mail::ParseOptions opt;
  std::size_t failed = 0;
  for (auto _ : state) {
    failed = 0;
    for (const auto& m : g.messages) {
      opt.received_at = m.file->received_at;
      auto r = mail::parse(m.raw, opt);
      if (!r) ++failed;
      benchmark::DoNotOptimize(r);
    }
  }
  set_rates(state);
  state.counters["messages"] = static_cast<double>(g.messages.size());
  state.counters["failed"] = static_cast<double>(failed);
}

struct Tally {
  std::size_t captured = 0, skipped = 0, failed = 0;
};

// What cli::ingest does, from the in-memory bytes: parse all, decide in date
// order, commit in batches (see daemon/cli/ingest.cpp).
Tally run_pipeline(store::Store& st) {
  capture::Pipeline pipeline(st, st, settings(), *g.free_mail);
  struct Parsed {
    const Message* m;
    std::optional<mail::MailMessage> message;
  };
  std::vector<Parsed> parsed;
  parsed.reserve(g.messages.size());
  mail::ParseOptions opt;
  opt.snippet_chars = pipeline.settings().snippet_chars;
  for (const auto& m : g.messages) {
    opt.received_at = m.file->received_at;
    auto r = mail::parse(m.raw, opt);
    parsed.push_back({&m, r ? std::optional(std::move(*r)) : std::nullopt});
  }
  std::stable_sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) {
    const std::int64_t da = a.message ? a.message->date : a.m->file->received_at;
    const std::int64_t db = b.message ? b.message->date : b.m->file->received_at;
    if (da != db) return da < db;
    const std::string_view ma = a.message ? std::string_view(a.message->message_id) : "";
    const std::string_view mb = b.message ? std::string_view(b.message->message_id) : "";
    if (ma != mb) return ma < mb;
    return a.m->file->path < b.m->file->path;
  });
  Tally t;
  store::Batch batch;
  auto flush = [&] {
    if (batch.items.empty()) return;
    st.commit(batch).value();
    batch.items.clear();
    pipeline.clear_pending();
  };
  for (auto& p : parsed) {
    capture::MessageSource src{{"local", p.m->file->folder, 0, 0, p.m->file->path},
                               p.m->file->received_at};
    capture::Outcome o =
        p.message ? pipeline.decide(std::move(*p.message), src) : pipeline.process(p.m->raw, src);
    switch (o.activity.status) {
      case store::DecisionStatus::captured:
        ++t.captured;
        break;
      case store::DecisionStatus::skipped:
        ++t.skipped;
        break;
      case store::DecisionStatus::failed:
        ++t.failed;
        break;
    }
    pipeline.remember(o.activity);
    batch.items.push_back({std::move(o.activity), src.ref});
    if (batch.items.size() >= k_batch) flush();
  }
  flush();
  return t;
}

void report(benchmark::State& state, const Tally& t) {
  set_rates(state);
  state.counters["captured"] = static_cast<double>(t.captured);
  state.counters["skipped"] = static_cast<double>(t.skipped);
  state.counters["failed"] = static_cast<double>(t.failed);
}

void BM_Pipeline(benchmark::State& state) {
  Tally t;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto st = fresh_store("pipeline-" + std::to_string(n++) + ".db");
    state.ResumeTiming();
    t = run_pipeline(*st);
    // Closing checkpoints the WAL into the database file: part of the cost.
    st.reset();
  }
  report(state, t);
}

void BM_IngestFiles(benchmark::State& state) {
  Tally t;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto st = fresh_store("ingest-" + std::to_string(n++) + ".db");
    capture::Pipeline pipeline(*st, *st, settings(), *g.free_mail);
    state.ResumeTiming();
    auto sum = cli::ingest(g.files, pipeline, *st, k_batch).value();
    st.reset();
    t = {sum.captured, sum.skipped, sum.failed};
  }
  report(state, t);
}

bool load() {
  const char* maildir = std::getenv("CRMCAP_BENCH_MAILDIR");
  const char* csv = std::getenv("CRMCAP_BENCH_CSV");
  if (maildir == nullptr || *maildir == '\0') {
    std::fprintf(stderr,
                 "bench_mail: skipped: set CRMCAP_BENCH_MAILDIR to a Maildir (and "
                 "CRMCAP_BENCH_CSV to its directory CSVs); tests/bench/run_capture_bench.sh "
                 "generates both\n");
    return false;
  }
  g.maildir = maildir;
  g.csv_dir = csv != nullptr ? csv : "";
  auto files = crmcap::maildir::find_messages({g.maildir});
  if (!files) {
    std::fprintf(stderr, "bench_mail: %s\n", files.error().c_str());
    std::exit(1);
  }
  g.files = std::move(*files);
  // CRMCAP_BENCH_LIMIT=N keeps the first N files (for profiling under callgrind).
  if (const char* limit = std::getenv("CRMCAP_BENCH_LIMIT")) {
    const auto n = static_cast<std::size_t>(std::strtoull(limit, nullptr, 10));
    if (n > 0 && n < g.files.size()) g.files.resize(n);
  }
  g.messages.reserve(g.files.size());
  for (const auto& f : g.files) {
    g.messages.push_back({&f, read_file(f.path)});
    g.bytes += g.messages.back().raw.size();
  }
  const std::string fm = read_file(CRMCAP_DATA_DIR "/free-mail-domains.txt");
  if (fm.empty()) {
    std::fprintf(stderr, "bench_mail: cannot read %s\n", CRMCAP_DATA_DIR "/free-mail-domains.txt");
    std::exit(1);
  }
  g.free_mail = capture::FreeMailDomains::from_text(fm);
  std::fprintf(stderr, "bench_mail: %zu messages, %zu bytes from %s\n", g.messages.size(), g.bytes,
               g.maildir.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!load()) return 0;

  benchmark::RegisterBenchmark("BM_Parse", BM_Parse)->UseRealTime()->Unit(benchmark::kMillisecond);
  if (g.csv_dir.empty()) {
    std::fprintf(stderr, "bench_mail: CRMCAP_BENCH_CSV unset: pipeline benchmarks skipped\n");
  } else {
    std::string tmpl = (fs::temp_directory_path() / "bench_mail.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    g.temp = tmpl;
    benchmark::RegisterBenchmark("BM_Pipeline", BM_Pipeline)
        ->Iterations(3)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_IngestFiles", BM_IngestFiles)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (!g.temp.empty()) {
    std::error_code ec;
    fs::remove_all(g.temp, ec);
  }
  return 0;
}
