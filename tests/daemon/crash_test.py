#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Crash test: kill -9 crm-captured at random points of a backfill, many times.

Starts a throwaway Dovecot on 127.0.0.1 (tests/servers/dovecot.sh), fills it with
a generated mailbox (tests/bench/gen_mailbox.py, INBOX and Sent), and runs
`crm-captured --once` twice against it into two stores:
  - reference: one uninterrupted run;
  - crashed:   runs killed with SIGKILL after a random delay, again and again,
               then one run left to finish.
Both stores must end with the same activities and decisions (every message once,
nothing lost, nothing duplicated). Exits 0 when they do, 1 with the first
difference otherwise.

  crash_test.py --build BUILD_DIR [--count 5000] [--kills 12] [--seed 7]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import loopback_mailbox  # noqa: E402


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def dump(client, db):
    acts = run([client, "--store", db, "activities", "--json"]).stdout.splitlines()
    decs = run([client, "--store", db, "decisions", "--json"]).stdout.splitlines()
    return sorted(acts), sorted(decs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    daemon = os.path.join(args.build, "daemon", "crm-captured")
    client = os.path.join(args.build, "daemon", "crm-capture")
    rng = random.Random(args.seed)

    work = tempfile.mkdtemp(prefix="crmcap-crash-")
    os.chmod(work, 0o755)
    try:
        env = loopback_mailbox.start(work)
        crm, _ = loopback_mailbox.fill(env, work, args.count)
        pw = loopback_mailbox.password_file(env, work)

        stores = {}
        for name in ("reference", "crashed"):
            d = os.path.join(work, name)
            os.makedirs(d)
            db = os.path.join(d, "capture.db")
            for kind in ("companies", "contacts", "opportunities"):
                run([client, "--store", db, "import", kind, os.path.join(crm, kind + ".csv")])
            conf = os.path.join(d, "crm-capture.toml")
            with open(conf, "w") as f:
                f.write(loopback_mailbox.config_text(env, db, d, pw, batch_size=100))
            stores[name] = (db, conf)

        t0 = time.monotonic()
        run([daemon, "--config", stores["reference"][1], "--once"])
        full = time.monotonic() - t0
        print(f"reference run: {full:.2f} s")

        killed = 0
        for i in range(args.kills):
            p = subprocess.Popen([daemon, "--config", stores["crashed"][1], "--once"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            delay = rng.uniform(0.02, max(0.05, full * 0.3))
            try:
                p.wait(timeout=delay)
                print(f"run {i}: finished before the kill at {delay:.2f} s")
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                killed += 1
        final = run([daemon, "--config", stores["crashed"][1], "--once"])
        print(f"killed {killed} times; final run: {final.stdout.strip()}")

        ref, got = dump(client, stores["reference"][0]), dump(client, stores["crashed"][0])
        for label, a, b in (("activities", ref[0], got[0]), ("decisions", ref[1], got[1])):
            if a != b:
                sa, sb = set(a), set(b)
                only_ref = sorted(sa - sb)[:3]
                only_got = sorted(sb - sa)[:3]
                print(f"FAIL: {label} differ: reference {len(a)} rows, crashed {len(b)} rows")
                for x in only_ref:
                    print("  only in reference:", x[:300])
                for x in only_got:
                    print("  only in crashed:  ", x[:300])
                return 1
        n = len(ref[0])
        print(f"OK: {n} activities and {len(ref[1])} decisions identical after {killed} kills")
        if killed == 0:
            print("FAIL: no run was killed: the test proved nothing")
            return 1
        return 0
    finally:
        loopback_mailbox.stop(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
