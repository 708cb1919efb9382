#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""IMAP benchmark: crm-captured against mbsync (isync), side by side, on loopback.

Fills a throwaway Dovecot on 127.0.0.1 with a generated mailbox (INBOX and Sent,
--count messages), then, in the same run:
  1. crm-captured --once: first (backfill) run and second (no-change) run, and
     after the mbsync runs a first run again into a new store (the server then
     warm, as it was for mbsync);
  2. mbsync pulling the same folders into a local Maildir: first and second run,
     once into a Maildir on the store's disk and once into one on tmpfs
     (/dev/shm: no disk at all, the peer's best case);
  the server-warm first runs (crm-captured into a new store, and both mbsync
  runs) are repeated --rounds times in turns, and summed up as median, least
  and most, and as crm-captured's round-by-round difference to each mbsync
  run (median, and rounds won): this machine's speed varies by more than the
  gap between them;
  3. new mail to stored activity with IDLE: crm-captured running as a daemon,
     a message delivered with doveadm, the time until its row is in the store
     (--idle-samples times; median and max).
Prints wall time and peak RSS of each run and one JSON line with every figure.

  bench_imap.py --build BUILD_DIR [--count 20000] [--idle-samples 5] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import loopback_mailbox  # noqa: E402


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed_rss(cmd):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout).

    The peak is the child's own VmHWM, sampled from /proc every 5 ms while it
    runs: getrusage() would report this Python process's size for any child
    smaller than it (a forked child starts with the parent's resident pages).
    """
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    status_path = f"/proc/{p.pid}/status"
    while p.poll() is None:
        try:
            with open(status_path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.005)
    dt = time.monotonic() - t0
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {err[-2000:]}")
    return dt, peak_kb / 1024.0, out


def shm_dir():
    """A fresh directory on tmpfs, or None when /dev/shm is not usable."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        return None
    return tempfile.mkdtemp(prefix="crmcap-bench-mbsync-", dir="/dev/shm")


def run_mbsync(label, base, env, pw, results):
    """First and second run of mbsync into a new Maildir in a new directory
    under `base` (removed afterwards)."""
    mbsync = shutil.which("mbsync")
    base = tempfile.mkdtemp(prefix="mbsync-", dir=base)
    local = os.path.join(base, "mbsync-local")
    os.makedirs(local)
    rc = os.path.join(base, "mbsyncrc")
    try:
        with open(rc, "w") as f:
            # mbsync 1.4 checks certificates against DNS names only: use localhost
            # (the test certificate carries DNS:localhost and IP:127.0.0.1).
            # FSync no: crm-captured's store does not fsync each message either
            # (SQLite WAL, synchronous=NORMAL); without it mbsync measures the disk.
            f.write(f"""FSync no

IMAPAccount bench
Host localhost
Port {env['IMAP_PORT']}
User {env['IMAP_USER']}
PassCmd "cat {pw}"
SSLType STARTTLS
CertificateFile {env['CA_FILE']}

IMAPStore remote
Account bench

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX Sent
Create Near
Sync Pull
SyncState *
""")
        for run_name in ("first", "second"):
            t, rss, _ = timed_rss([mbsync, "-c", rc, "-q", "bench"])
            record(results, f"{label}_{run_name}", t, rss)
            print(f"{label + ', ' + run_name + ' run:':33s}{t:7.2f} s  peak RSS {rss:6.1f} MiB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def record(results, name, seconds, rss_mb):
    """Adds one run's figures to `results[name + "_runs"]`."""
    results.setdefault(name + "_runs", []).append((round(seconds, 3), round(rss_mb, 1)))


def summarize(results):
    """Median, least and most of every figure recorded more than once, and
    the median wall time and peak RSS of each in the flat keys."""
    lines = []
    for key in sorted(k for k in results if k.endswith("_runs")):
        name = key[:-len("_runs")]
        secs = [t for t, _ in results[key]]
        results[name + "_s"] = statistics.median(secs)
        results[name + "_rss_mb"] = max(r for _, r in results[key])
        if len(secs) > 1:
            lines.append(f"  {name:28s} median {statistics.median(secs):6.2f} s  "
                         f"(least {min(secs):.2f}, most {max(secs):.2f}, {len(secs)} runs)")
    return lines


def paired(results, ours, peers):
    """Round by round (the same round ran both, minutes apart at most), how
    much faster `ours` was than each peer: the median of those differences
    and how many rounds it won, in the flat keys `<ours>_minus_<peer>_s` and
    `<ours>_won_against_<peer>`. Such pairs see less of the machine's drift
    than two medians taken apart."""
    lines = []
    mine = [t for t, _ in results.get(ours + "_runs", [])]
    for peer in peers:
        theirs = [t for t, _ in results.get(peer + "_runs", [])]
        diffs = [a - b for a, b in zip(mine, theirs)]
        if not diffs:
            continue
        won = sum(1 for d in diffs if d < 0)
        results[f"{ours}_minus_{peer}_s"] = round(statistics.median(diffs), 3)
        results[f"{ours}_won_against_{peer}"] = f"{won}/{len(diffs)}"
        lines.append(f"  {ours} - {peer}: median {statistics.median(diffs):+.2f} s per round, "
                     f"faster in {won} of {len(diffs)} rounds")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--idle-samples", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    # A shared library preloaded into crm-captured's runs only, such as another
    # malloc (/usr/lib/x86_64-linux-gnu/libjemalloc.so.2, package libjemalloc2):
    # to measure a change of allocator before the project takes it.
    ap.add_argument("--preload", default="")
    args = ap.parse_args()
    daemon = os.path.join(args.build, "daemon", "crm-captured")
    # env execs crm-captured in its own process: the RSS sampled is its own.
    crm_cmd = (["env", "LD_PRELOAD=" + args.preload] if args.preload else []) + [daemon]
    client = os.path.join(args.build, "daemon", "crm-capture")
    mbsync = shutil.which("mbsync")
    if not mbsync:
        raise SystemExit("mbsync (package isync) is not installed")

    work = tempfile.mkdtemp(prefix="crmcap-bench-imap-")
    os.chmod(work, 0o755)
    daemon_proc = None
    try:
        # No COMPRESS=DEFLATE: mbsync 1.4 uses it whenever offered, which on
        # loopback only costs CPU; crm-captured does not compress to loopback.
        env = loopback_mailbox.start(work, compress=False)
        crm, total_bytes = loopback_mailbox.fill(env, work, args.count)
        pw = loopback_mailbox.password_file(env, work)

        def new_store(name):
            """A store with the CRM directory imported, and a configuration
            for it; returns (store path, configuration path)."""
            db = os.path.join(work, name + ".db")
            for kind in ("companies", "contacts", "opportunities"):
                run([client, "--store", db, "import", kind, os.path.join(crm, kind + ".csv")])
            conf = os.path.join(work, name + ".toml")
            with open(conf, "w") as f:
                f.write(loopback_mailbox.config_text(env, db, work, pw))
            return db, conf

        db, conf = new_store("capture")
        results = {"messages": args.count, "mailbox_mb": round(total_bytes / 1e6, 1)}
        if args.preload:
            results["crm_preload"] = args.preload
            print(f"crm-captured runs with LD_PRELOAD={args.preload}")
        # Filling the server wrote 20,000 files: let the kernel write them
        # back before anything is timed.
        os.sync()
        time.sleep(2.0)
        t, rss, out = timed_rss(crm_cmd + ["--config", conf, "--once"])
        record(results, "crm_first", t, rss)
        print(f"crm-captured --once, first run:  {t:7.2f} s  peak RSS {rss:6.1f} MiB  ({out.strip()})")
        t, rss, out = timed_rss(crm_cmd + ["--config", conf, "--once"])
        record(results, "crm_second", t, rss)
        print(f"crm-captured --once, second run: {t:7.2f} s  peak RSS {rss:6.1f} MiB  ({out.strip()})")

        # Then, --rounds times, each contender's first run against the warm
        # server, in turns (the order reversed every other round), so that a
        # slow spell of this shared machine falls on all of them alike:
        #  - crm-captured into a new store (the server has seen every message
        #    once, as it had for mbsync: its first reads and index building
        #    are out of the figure);
        #  - mbsync into a new Maildir beside the store (same disk), and into
        #    one on tmpfs (/dev/shm, no disk at all: the peer's best case).
        # mbsync writes one file per message: on this machine's ext4, after
        # many files were created and deleted (filling the test server does
        # that), its inode allocation can cost seconds.
        def crm_warm(r):
            warm_db, warm_conf = new_store(f"capture-warm-{r}")
            t, rss, _ = timed_rss(crm_cmd + ["--config", warm_conf, "--once"])
            record(results, "crm_first_warm", t, rss)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(warm_db + suffix):
                    os.remove(warm_db + suffix)
            print(f"crm-captured --once, first run, new store, server warm: {t:7.2f} s  "
                  f"peak RSS {rss:6.1f} MiB")

        contenders = [crm_warm, lambda r: run_mbsync("mbsync", work, env, pw, results)]
        shm = shm_dir()
        if shm is not None:
            contenders.append(lambda r: run_mbsync("mbsync_tmpfs", shm, env, pw, results))
        try:
            for r in range(args.rounds):
                for c in contenders if r % 2 == 0 else reversed(contenders):
                    c(r)
        finally:
            if shm is not None:
                shutil.rmtree(shm, ignore_errors=True)

        # New mail to stored activity, with IDLE.
        daemon_proc = subprocess.Popen(crm_cmd + ["--config", conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
        con = sqlite3.connect(db, timeout=5)
        import csv
        with open(os.path.join(crm, "contacts.csv"), newline="") as f:
            sender = next(csv.DictReader(f))["emails"].split(";")[0].strip()
        latencies = []
        time.sleep(2.0)  # the startup pass (nothing new) and IDLE begin
        for i in range(args.idle_samples):
            mid = f"idle-bench-{i}-{time.time_ns()}@acme-bench.example"
            msg = (f"From: {sender}\r\nTo: alice@example.com\r\n"
                   f"Subject: IDLE sample {i}\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
                   f"Message-ID: <{mid}>\r\n\r\nHello\r\n")
            run(["doveadm", "-c", env["CONF"], "save", "-u", env["IMAP_USER"], "-m", "INBOX"],
                input=msg)
            t0 = time.monotonic()  # the message is in the mailbox from here on
            while True:
                row = con.execute("SELECT 1 FROM activities WHERE message_id = ?", (mid,)).fetchone()
                if row:
                    break
                if time.monotonic() - t0 > 30:
                    raise SystemExit("no activity 30 s after delivery")
                time.sleep(0.005)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.5)
        results.update(idle_median_ms=round(statistics.median(latencies) * 1000, 1),
                       idle_max_ms=round(max(latencies) * 1000, 1))
        print(f"new mail -> stored activity (IDLE): median {results['idle_median_ms']} ms, "
              f"max {results['idle_max_ms']} ms over {len(latencies)} samples")
        for line in summarize(results):
            print(line)
        for line in paired(results, "crm_first_warm", ["mbsync_first", "mbsync_tmpfs_first"]):
            print(line)
        print(json.dumps(results))
        return 0
    finally:
        if daemon_proc:
            daemon_proc.terminate()
            daemon_proc.wait(timeout=10)
        loopback_mailbox.stop(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
