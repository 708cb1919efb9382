#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reproduces the benchmark figures of issues 2 and 3 in one run.
#
#   tests/bench/run_capture_bench.sh [BUILD_DIR]     (default: build)
#
# Builds nothing: BUILD_DIR must already hold tests/bench/bench_mail and
# tests/bench/bench_store, ideally from a Release build:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-bench --target bench_store bench_mail -j2
#   tests/bench/run_capture_bench.sh build-bench
#
# Generates a 20,000-message Maildir++ tree and its CRM directory CSVs with
# tests/bench/gen_mailbox.py (seed 1) in a temporary directory, runs bench_mail
# on it and, in the same run, tests/bench/bench_parse_peer.py (Python's email,
# compat32 policy) over the same files; then bench_store. Prints a table of the
# figures. Rates are given against wall-clock time (what Google Benchmark's
# items_per_second reports with UseRealTime) and against the CPU time of the
# measuring thread: on a shared machine the second is the fairer "one core"
# figure. Exits non-zero when a step fails.
# Environment: CRMCAP_BENCH_COUNT (default 20000), CRMCAP_BENCH_SEED (default 1),
# CRMCAP_BENCH_KEEP=1 keeps the temporary directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
count=${CRMCAP_BENCH_COUNT:-20000}
seed=${CRMCAP_BENCH_SEED:-1}

for exe in bench_mail bench_store; do
  if [[ ! -x $build/tests/bench/$exe ]]; then
    echo "run_capture_bench: $build/tests/bench/$exe not found; build it first:" >&2
    echo "  cmake --build $build --target bench_store bench_mail" >&2
    exit 2
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/crmcap-bench.XXXXXX")
if [[ ${CRMCAP_BENCH_KEEP:-0} != 1 ]]; then
  trap 'rm -rf "$work"' EXIT
else
  echo "run_capture_bench: keeping $work" >&2
fi

echo "== generating $count messages (seed $seed) in $work" >&2
python3 "$here/gen_mailbox.py" --out "$work/Maildir" --csv-dir "$work/csv" \
  --count "$count" --seed "$seed" >"$work/gen.json"
cat "$work/gen.json" >&2

echo "== bench_mail" >&2
CRMCAP_BENCH_MAILDIR="$work/Maildir" CRMCAP_BENCH_CSV="$work/csv" \
  "$build/tests/bench/bench_mail" --benchmark_format=json --benchmark_out="$work/mail.json" \
  --benchmark_out_format=json >/dev/null

echo "== bench_parse_peer.py (wall clock, as the script reports)" >&2
python3 "$here/bench_parse_peer.py" "$work/Maildir" >"$work/peer.json"
cat "$work/peer.json" >&2
# The same script with its timer switched to the process's CPU time, for a
# CPU-to-CPU comparison (the script itself is unchanged).
echo "== bench_parse_peer.py (CPU time)" >&2
python3 -c 'import runpy, sys, time
time.perf_counter = time.process_time
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' \
  "$here/bench_parse_peer.py" "$work/Maildir" >"$work/peer_cpu.json"
cat "$work/peer_cpu.json" >&2

echo "== bench_store" >&2
"$build/tests/bench/bench_store" --benchmark_format=json --benchmark_out="$work/store.json" \
  --benchmark_out_format=json >/dev/null

python3 - "$work" <<'EOF'
import json, os, sys

work = sys.argv[1]
gen = json.load(open(os.path.join(work, "gen.json")))
mail = json.load(open(os.path.join(work, "mail.json")))
store = json.load(open(os.path.join(work, "store.json")))
peer = json.load(open(os.path.join(work, "peer.json")))
peer_cpu = json.load(open(os.path.join(work, "peer_cpu.json")))
ctx = mail["context"]


def bench(doc, prefix):
    for b in doc["benchmarks"]:
        if b["name"].startswith(prefix):
            if b.get("error_occurred"):
                sys.exit(f"{b['name']}: {b.get('error_message')}")
            return b
    sys.exit(f"benchmark {prefix} missing from the output")


def seconds(b, key):
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b[key] * unit  # per iteration


n, nbytes = gen["messages"], gen["bytes"]
parse, pipe = bench(mail, "BM_Parse"), bench(mail, "BM_Pipeline")
ingest = bench(mail, "BM_IngestFiles")
rows = []


def row(name, wall_s, cpu_s, with_mb=True):
    rows.append((name, n / wall_s, nbytes / wall_s / 1e6 if with_mb else None, n / cpu_s,
                 nbytes / cpu_s / 1e6 if with_mb else None))


row("C++ parse (mail::parse)", seconds(parse, "real_time"), seconds(parse, "cpu_time"))
row("C++ pipeline (parse+decide+match+commit)", seconds(pipe, "real_time"),
    seconds(pipe, "cpu_time"))
row("C++ cli::ingest (same, reading files)", seconds(ingest, "real_time"),
    seconds(ingest, "cpu_time"))
row(f"Python {peer['python']} email ({peer['policy']})", peer["seconds"], peer_cpu["seconds"])

print()
print(f"Mailbox: {n} messages, {nbytes / 1e6:.1f} MB (gen_mailbox.py --seed {gen['seed']}); "
      f"{ctx['num_cpus']} CPUs at {ctx['mhz_per_cpu']} MHz, load average "
      f"{', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))} at start")
print(f"{'':44} {'wall msgs/s':>12} {'wall MB/s':>10} {'CPU msgs/s':>11} {'CPU MB/s':>9}")
for name, m, mb, cm, cmb in rows:
    print(f"{name:44} {m:12,.0f} {mb:10.1f} {cm:11,.0f} {cmb:9.1f}")
ratio_wall = rows[0][1] / rows[3][1]
ratio_cpu = rows[0][3] / rows[3][3]
print(f"{'parse ratio C++ / Python':44} {ratio_wall:12.1f}x {'':10} {ratio_cpu:10.1f}x"
      f"   (aim >= 10x)")
print(f"{'pipeline aim: >= 5,000 msgs/s on one core':44} {rows[1][1]:12,.0f} {'':10} "
      f"{rows[1][3]:11,.0f}")
print(f"Pipeline decisions: captured {pipe['captured']:.0f}, skipped {pipe['skipped']:.0f}, "
      f"failed {pipe['failed']:.0f} (cli::ingest: captured {ingest['captured']:.0f}, "
      f"skipped {ingest['skipped']:.0f}, failed {ingest['failed']:.0f})")
if peer["errors"]:
    print(f"Python peer errors: {peer['errors']}")

print()
imp = bench(store, "BM_ImportDirectory")
print("Store: 20,000 companies + 100,000 contacts from CSV text into a fresh store "
      "(aim < 3 s); lookups on it (aim < 5 us)")
print(f"{'':44} {'wall':>12} {'CPU':>10}")
print(f"{'import (companies then contacts)':44} {seconds(imp, 'real_time'):11.2f}s "
      f"{seconds(imp, 'cpu_time'):9.2f}s   ({imp['rows_per_s']:,.0f} rows/s wall; "
      f"companies {imp['companies_s']:.2f}s, contacts {imp['contacts_s']:.2f}s)")
for prefix, label in [("BM_ContactByEmail/hit", "contact_by_email, hit"),
                      ("BM_ContactByEmail/miss", "contact_by_email, miss"),
                      ("BM_CompaniesByDomain/hit", "companies_by_domain, hit"),
                      ("BM_CompaniesByDomain/miss", "companies_by_domain, miss")]:
    b = bench(store, prefix)
    print(f"{label:44} {seconds(b, 'real_time') * 1e6:10.2f}us {seconds(b, 'cpu_time') * 1e6:8.2f}us")
commit = bench(store, "BM_CommitBackfill")
print(f"{'commit of a 20,000-message backfill (500/batch)':44} "
      f"{seconds(commit, 'real_time'):11.2f}s {seconds(commit, 'cpu_time'):9.2f}s   "
      f"({commit['activities_per_s']:,.0f} activities/s wall)")
EOF
