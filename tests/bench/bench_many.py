#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One crm-captured, many mailboxes: what each idle mailbox costs.

Starts a throwaway Dovecot on 127.0.0.1 with --mailboxes users (each INBOX
holding --per-mailbox small messages; tests/servers/mailbox_farm.py), then runs
crm-captured twice against it, each time into a new store:
  1. serving user1 alone (the baseline);
  2. serving every user.
For each, once every mailbox is idle (GET /v1/status) and a few seconds more:
RSS (VmRSS, and its anonymous part), open file descriptors (/proc/PID/fd), and,
over --idle-seconds of nothing happening, CPU seconds (utime + stime of
/proc/PID/stat) and wake-ups (voluntary context switches of every thread, from
/proc/PID/task/*/status). The per-mailbox figures are the difference between
the two runs divided by the mailboxes added. Then, with an event stream
(GET /v1/events) open, --appends messages APPENDed over IMAP to mailboxes
picked at random: the time from sending APPEND to the message's event (median
and worst). Prints a table and one JSON line with every figure.

  bench_many.py --build BUILD_DIR [--mailboxes 200] [--per-mailbox 5]
                [--idle-seconds 60] [--appends 10] [--plain] [--seed 1]

--plain: the daemon reaches Dovecot over plain IMAP (allow_insecure) instead
of STARTTLS, which shows what the TLS sessions cost.
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import mailbox_farm  # noqa: E402


def measure(farm, conf, count, idle_seconds, settle):
    """Starts the daemon on conf, waits until `count` mailboxes are idle;
    returns its figures (and leaves it running)."""
    farm.start_daemon(conf, log_name=f"daemon-{count}.err")
    ready = farm.wait_idle(count, timeout=900)
    time.sleep(settle)
    pid = farm.proc.pid
    before = mailbox_farm.proc_figures(pid)
    time.sleep(idle_seconds)
    after = mailbox_farm.proc_figures(pid)
    per_minute = 60.0 / idle_seconds
    return {
        "mailboxes": count,
        "start_to_idle_s": round(ready, 1),
        "rss_kib": after["VmRSS"],
        "rss_anon_kib": after["RssAnon"],
        "rss_file_kib": after["RssFile"],
        "peak_rss_kib": after["VmHWM"],
        "fds": after["fds"],
        "threads": after["threads"],
        "idle_cpu_s_per_min": round((after["cpu_s"] - before["cpu_s"]) * per_minute, 3),
        "idle_wakeups_per_min": round((after["voluntary"] - before["voluntary"]) * per_minute),
    }


def latencies(farm, appends, rng):
    """Seconds from sending APPEND to the event of the message, per APPEND."""
    events = mailbox_farm.EventStream(farm.socket)
    events.start()
    if not events.wait_connected(30):
        raise SystemExit("no event stream")
    out = []
    try:
        for i in range(appends):
            user = rng.choice(farm.users)
            conn = farm.appender(user)  # the login is not timed
            mid = f"<bench-{i}-{time.time_ns()}-{user}@many.bench>"
            msg = farm.message(user, mid)
            t0 = time.monotonic()
            farm.append(conn, msg)
            arrived = events.wait_for(mid, 30)
            conn.logout()
            if arrived is None:
                raise SystemExit(f"no event 30 s after APPEND to {user}; " + farm.log_tail())
            out.append(arrived - t0)
            time.sleep(1.0)
    finally:
        events.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--mailboxes", type=int, default=200)
    ap.add_argument("--per-mailbox", type=int, default=5)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--settle", type=int, default=5)
    ap.add_argument("--appends", type=int, default=10)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.mailboxes < 2:
        raise SystemExit("--mailboxes must be at least 2 (one is the baseline)")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="crmcap-bench-many-")
    os.chmod(work, 0o755)
    farm = None
    try:
        farm = mailbox_farm.Farm(work, args.build, args.mailboxes, args.per_mailbox,
                                 tls=not args.plain)
        one = measure(farm, farm.write_config(farm.users[:1], "one"), 1, args.idle_seconds,
                      args.settle)
        farm.stop_daemon()
        many = measure(farm, farm.write_config(farm.users, "many"), args.mailboxes,
                       args.idle_seconds, args.settle)
        lat = latencies(farm, args.appends, rng)
        after = mailbox_farm.proc_figures(farm.proc.pid)
    finally:
        if farm is not None:
            farm.close()
        mailbox_farm.rmtree(work)

    added = args.mailboxes - 1
    per = {k: (many[k] - one[k]) / added for k in
           ("rss_kib", "rss_anon_kib", "fds", "idle_cpu_s_per_min", "idle_wakeups_per_min")}
    results = {"mailboxes": args.mailboxes, "per_mailbox_messages": args.per_mailbox,
               "tls": not args.plain, "idle_seconds": args.idle_seconds,
               "one": one, "many": many,
               "per_mailbox": {k: round(v, 3) for k, v in per.items()},
               "append_to_event_median_ms": round(statistics.median(lat) * 1000, 1),
               "append_to_event_worst_ms": round(max(lat) * 1000, 1),
               "rss_kib_after_appends": after["VmRSS"]}
    n = args.mailboxes
    rows = [
        ("RSS, MiB", f"{one['rss_kib'] / 1024:.1f}", f"{many['rss_kib'] / 1024:.1f}",
         f"{per['rss_kib']:.0f} KiB", "< 250 KiB"),
        ("  of it anonymous (heap), MiB", f"{one['rss_anon_kib'] / 1024:.1f}",
         f"{many['rss_anon_kib'] / 1024:.1f}", f"{per['rss_anon_kib']:.0f} KiB", ""),
        ("open file descriptors", str(one["fds"]), str(many["fds"]), f"{per['fds']:.2f}", ""),
        ("CPU while idle, s per minute", f"{one['idle_cpu_s_per_min']:.3f}",
         f"{many['idle_cpu_s_per_min']:.3f}", f"{per['idle_cpu_s_per_min'] * 1000:.2f} ms", ""),
        ("wake-ups while idle, per minute", str(one["idle_wakeups_per_min"]),
         str(many["idle_wakeups_per_min"]), f"{per['idle_wakeups_per_min']:.1f}", ""),
        ("start to all idle, s", f"{one['start_to_idle_s']:.1f}",
         f"{many['start_to_idle_s']:.1f}", "", ""),
    ]
    print(f"| | 1 mailbox | {n} mailboxes | per added mailbox | aim |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nnew mail (IMAP APPEND) to its event on /v1/events, {n} mailboxes idle: "
          f"median {results['append_to_event_median_ms']} ms, "
          f"worst {results['append_to_event_worst_ms']} ms over {len(lat)} APPENDs "
          f"(aim: within 1 s)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
