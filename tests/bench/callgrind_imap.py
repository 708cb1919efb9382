#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Instructions of a crm-captured --once backfill, counted by callgrind: builds side by side.

Where this machine has no hardware counters (perf stat: instructions <not
supported>) and its wall time drifts by more than a change's effect, a count
of instructions compares two builds of the same code path. Callgrind is too
slow for bench_imap.py's 20,000 messages; 2,000 take about 15 s a run.

One throwaway Dovecot on 127.0.0.1 (tests/servers/loopback_mailbox.py, without
COMPRESS, as bench_imap.py), filled once and warmed by one run of the first
build; then, --rounds times (the order reversed every other round), each
build backfills into a new store under valgrind --tool=callgrind. Prints each
run's total instructions (Ir, every thread) and their self cost by part
(IMAP connector, its parser, Asio, TLS, SQLite, malloc, ...).

  callgrind_imap.py BUILD_DIR [BUILD_DIR...] [--count 2000] [--rounds 2] [--keep DIR]
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import loopback_mailbox  # noqa: E402


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


# Self cost by part, first match wins (callgrind_annotate's symbols).
PARTS = [
    ("IMAP parser", r"crmcap::imap::(detail::Reader|ResponseParser|parse_)"),
    ("IMAP connector", r"crmcap::imap::"),
    ("Asio", r"boost::asio"),
    ("malloc/free", r"\b(malloc|free|_int_malloc|_int_free|cfree|realloc|calloc|"
                    r"malloc_consolidate|unlink_chunk|operator new|operator delete)\b"),
    ("TLS", r"(?i)ssl|crypto|aes|sha|gcm"),
    ("SQLite", r"(?i)sqlite"),
    ("mimetic", r"mimetic"),
    ("mem*/str*", r"\b__(mem|str)\w+|\b(mem(cpy|move|set|cmp|chr)|str(len|cmp|chr))\b"),
]


def parts(callgrind_out):
    text = run(["callgrind_annotate", "--threshold=100", callgrind_out]).stdout
    total, by = 0, collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        n, sym = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in sym:
            total = n
            continue
        by[next((name for name, pat in PARTS if re.search(pat, sym)), "other")] += n
    return total, by


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", help="a directory to copy the callgrind files into")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed")
    work = tempfile.mkdtemp(prefix="crmcap-callgrind-")
    os.chmod(work, 0o755)
    try:
        env = loopback_mailbox.start(work, compress=False)
        crm, _ = loopback_mailbox.fill(env, work, args.count)
        pw = loopback_mailbox.password_file(env, work)

        def new_store(build, name):
            client = os.path.join(build, "daemon", "crm-capture")
            db = os.path.join(work, name + ".db")
            for kind in ("companies", "contacts", "opportunities"):
                run([client, "--store", db, "import", kind, os.path.join(crm, kind + ".csv")])
            conf = os.path.join(work, name + ".toml")
            with open(conf, "w") as f:
                f.write(loopback_mailbox.config_text(env, db, work, pw))
            return conf

        run([os.path.join(args.builds[0], "daemon", "crm-captured"), "--config",
             new_store(args.builds[0], "warm"), "--once"])
        totals = collections.defaultdict(list)
        for r in range(args.rounds):
            for i, build in enumerate(args.builds if r % 2 == 0 else reversed(args.builds)):
                name = f"round{r}-{abs(hash(os.path.abspath(build))) % 10000}"
                out = os.path.join(work, name + ".callgrind")
                p = run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                         os.path.join(build, "daemon", "crm-captured"), "--config",
                         new_store(build, name), "--once"])
                total, by = parts(out)
                totals[build].append(total)
                print(f"{build}, round {r + 1}: {total:,} instructions ({p.stdout.strip()})")
                for part, n in sorted(by.items(), key=lambda kv: -kv[1]):
                    print(f"    {part:16s} {n:>14,}")
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(out, args.keep)
        for build, t in totals.items():
            print(f"{build}: {', '.join(f'{n:,}' for n in t)}")
    finally:
        loopback_mailbox.stop(work)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
