#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The fuzz smoke test (ctest: fuzz_smoke, label fuzz): builds the libFuzzer
# targets with clang in a build directory of their own, then runs each for a
# few seconds on a copy of its seeds, so that the targets cannot rot unseen.
# It finds nothing a real fuzzing run would not; it proves they still build and
# run, and catches a crash on or near the seeds.
#
#   tests/fuzz/smoke.sh --source SRC --work DIR --cxx CLANGXX [--seconds N] [--jobs N]
#                       [--generator GEN]
#
# SRC is the project's source tree, which is only read. Everything is written
# under DIR: DIR/build (CXX=CLANGXX, -DCRMCAP_FUZZ=ON -DCRMCAP_SANITIZE=ON
# -DCRMCAP_BENCH=OFF; reused by the next run, so only changes are rebuilt),
# DIR/corpus/TARGET (a fresh copy of the seeds at every run, which the fuzzer
# adds to), DIR/artifacts/TARGET (crash, leak and timeout inputs) and
# DIR/TARGET.log. Seeds: tests/corpora/mail/*.eml, ics/*.ics, csv/*.csv,
# multistatus/*, the server bytes (S: lines) of tests/transcripts/imap/*.txt
# and the response bodies of tests/transcripts/caldav/*.txt.
#
# Each target runs N seconds (default 5) with -seed=1, so that a run is
# repeatable on one machine. Exit status 0 when every target built and ran
# without a crash, a leak, a timeout (10 s for one input) or a broken contract;
# else 1, with the failing fuzzer's whole output (the reproducer: its
# artifact) on standard output. A CLANGXX that is not an executable (CMake's
# CLANGXX-NOTFOUND) fails at once: CI installs clang (packaging/install-deps.sh).
set -euo pipefail

source_dir='' work='' cxx='' seconds=5 jobs=1 generator=''
while [[ $# -gt 0 ]]; do
  case $1 in
    --source) source_dir=$2 ;;
    --work) work=$2 ;;
    --cxx) cxx=$2 ;;
    --seconds) seconds=$2 ;;
    --jobs) jobs=$2 ;;
    --generator) generator=$2 ;;
    *)
      echo "fuzz smoke: unknown argument $1" >&2
      exit 2
      ;;
  esac
  shift 2
done
if [[ -z $source_dir || -z $work ]]; then
  echo "usage: $0 --source SRC --work DIR --cxx CLANGXX [--seconds N] [--jobs N] [--generator GEN]" >&2
  exit 2
fi
if [[ -z $cxx || ! -x $cxx ]]; then
  echo "fuzz smoke: FAILED: clang++ was not found when this build was configured" \
    "(CRMCAP_CLANGXX='$cxx'); the fuzz targets need clang and its libFuzzer runtime:" \
    "run packaging/install-deps.sh (clang, libclang-rt-14-dev), then reconfigure" >&2
  exit 1
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
build=$work/build
targets=(fuzz_csv fuzz_ical fuzz_imap fuzz_mail fuzz_multistatus)

start=$SECONDS
echo "== configure $build (CXX=$cxx)"
gen_args=()
if [[ -n $generator ]]; then gen_args=(-G "$generator"); fi
if ! cmake -S "$source_dir" -B "$build" "${gen_args[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCRMCAP_FUZZ=ON -DCRMCAP_SANITIZE=ON -DCRMCAP_BENCH=OFF; then
  echo "fuzz smoke: FAILED: configuring the fuzz build failed" >&2
  exit 1
fi
echo "== build ${targets[*]} (-j$jobs)"
if ! cmake --build "$build" --target "${targets[@]}" -j "$jobs"; then
  echo "fuzz smoke: FAILED: building the fuzz targets failed (clang and libclang-rt-14-dev" \
    "installed? packaging/install-deps.sh)" >&2
  exit 1
fi
echo "== built in $((SECONDS - start)) s"

# Fresh seeds for every run: what an earlier run added is not kept, so each run
# starts from the same corpus.
seed_corpus() {
  local name=$1 dir=$work/corpus/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  case $name in
    fuzz_mail) cp "$source_dir"/tests/corpora/mail/*.eml "$dir"/ ;;
    fuzz_ical) cp "$source_dir"/tests/corpora/ics/*.ics "$dir"/ ;;
    fuzz_csv) cp "$source_dir"/tests/corpora/csv/*.csv "$dir"/ ;;
    fuzz_imap)
      # What the server sent: each S: line's text plus CRLF (a bare S: is an
      # empty line), as tests/transcripts/imap/README.md describes.
      local f
      for f in "$source_dir"/tests/transcripts/imap/*.txt; do
        sed -n -e 's/^S: //p' -e 's/^S:$//p' "$f" | sed 's/$/\r/' >"$dir/$(basename "$f" .txt)"
      done
      ;;
    fuzz_multistatus)
      cp "$source_dir"/tests/corpora/multistatus/*.xml "$source_dir"/tests/corpora/multistatus/*.txt "$dir"/
      # Each response body of the recorded exchanges (after S: and its H:
      # lines, up to the "." line), as tests/transcripts/caldav/*.txt hold them.
      local t
      for t in "$source_dir"/tests/transcripts/caldav/*.txt; do
        awk -v out="$dir/$(basename "$t" .txt)" '
          /^S: / { body = 1; n++; file = sprintf("%s_%03d.xml", out, n); printf "" >file; next }
          body && /^H: / { next }
          body && /^\.$/ { body = 0; close(file); next }
          body { print >file }' "$t"
      done
      ;;
  esac
}

# The options of each target's own run command (tests/fuzz/CMakeLists.txt).
options_of() {
  case $1 in
    fuzz_mail) echo "-max_len=65536" ;;
    fuzz_ical) echo "-max_len=65536 -rss_limit_mb=2048" ;;
    fuzz_csv) echo "-max_len=4096" ;;
    fuzz_imap) echo "-max_len=8192" ;;
    fuzz_multistatus) echo "-max_len=65536" ;;
  esac
}

# A symbolizer, when the machine has one beside clang (llvm-14), makes the
# stack traces of a failure readable; without one they are addresses.
clang_dir=$(dirname "$(readlink -f "$cxx")")
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} && -x $clang_dir/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=$clang_dir/llvm-symbolizer
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

cd "$work"
failed=()
for t in "${targets[@]}"; do
  seed_corpus "$t"
  rm -rf "$work/artifacts/$t"
  mkdir -p "$work/artifacts/$t"
  log=$work/$t.log
  # shellcheck disable=SC2046  # options_of gives separate words
  if "$build/tests/fuzz/$t" $(options_of "$t") -max_total_time="$seconds" -timeout=10 \
    -seed=1 -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
    "$work/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "== $t: ok, ${runs:-?} inputs in $seconds s"
  else
    echo "== $t: FAILED (exit status $?); its output ($log):"
    cat "$log"
    failed+=("$t")
  fi
done

echo "== fuzz smoke: $((SECONDS - start)) s in all"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz smoke: FAILED: ${failed[*]}; inputs that failed are in $work/artifacts" >&2
  exit 1
fi
