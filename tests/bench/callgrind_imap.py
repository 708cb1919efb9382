#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Instructions of an IMAP backfill, for builds side by side.

Fills a throwaway Dovecot on 127.0.0.1 with a generated mailbox (--count
messages in INBOX and Sent, gen_mailbox's seed 1), then runs each build's
`crm-captured --once` into a new store under valgrind's callgrind, --rounds
times in turns, and prints the instructions executed (Ir, all threads) with
what the run captured. Wall time on a shared machine varies by more than a
change to the connector is worth; the instruction count does not (rounds
differ by well under 1 %), so this is how two builds are compared.

  callgrind_imap.py --count 2000 [--rounds 2] BUILD_DIR [BUILD_DIR ...]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import loopback_mailbox  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="callgrind-imap-")
    os.chmod(work, 0o755)
    env = loopback_mailbox.start(work, compress=False)
    try:
        crm, _ = loopback_mailbox.fill(env, work, args.count)
        pw = loopback_mailbox.password_file(env, work)
        for rnd in range(args.rounds):
            for i, build in enumerate(args.builds):
                name = f"r{rnd}b{i}"
                db = os.path.join(work, name + ".db")
                for kind in ("companies", "contacts", "opportunities"):
                    subprocess.run([os.path.join(build, "daemon", "crm-capture"), "--store", db,
                                    "import", kind, os.path.join(crm, kind + ".csv")],
                                   check=True, capture_output=True)
                conf = os.path.join(work, name + ".toml")
                with open(conf, "w") as f:
                    f.write(loopback_mailbox.config_text(env, db, work, pw))
                p = subprocess.run(["valgrind", "--tool=callgrind",
                                    "--callgrind-out-file=" + os.path.join(work, name + ".out"),
                                    os.path.join(build, "daemon", "crm-captured"), "--once",
                                    "--config", conf], capture_output=True, text=True)
                ir = re.findall(r"Collected : (\d+)", p.stderr)
                count = f"{int(ir[0]):,}" if ir else "?"
                print(f"round {rnd + 1} {build}: exit {p.returncode}, Ir {count} |",
                      p.stdout.strip(), flush=True)
    finally:
        loopback_mailbox.stop(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
