#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A bounded soak of crm-captured (issue 19, "Tests and figures").

One daemon, --mailboxes mailboxes of one throwaway Dovecot
(tests/servers/mailbox_farm.py). For --seconds:
  - mail is APPENDed over IMAP to the mailboxes in turn, --rate messages a second;
  - the API is asked continuously: GET /v1/status, and every page of
    GET /v1/activities (all, or one mailbox's), each page checked;
  - an event stream (GET /v1/events) is connected;
  - the daemon's RSS is sampled every second.
Then, appending stopped, it waits (up to --drain seconds) until the API holds
every appended message, and checks:
  - completeness: each mailbox's activities (GET /v1/activities?mailbox=) are
    exactly its filled and appended messages: none missing, none extra, and no
    Message-ID twice anywhere;
  - every appended message came on the event stream;
  - RSS is flat: the median RSS of the last minute is within the tolerance
    (below) of the median of the first minute after --warmup seconds.
Exits 0 when all hold, 1 naming what failed. Assertions are about eventual
completeness with generous timeouts, never about speed: it runs in CI beside
other tests.

  soak.py --build BUILD_DIR [--mailboxes 10] [--seconds 180] [--rate 4]

The RSS tolerance: what may grow with the store is SQLite's page cache, one
per store connection (the capture thread's and the API's; cache_size is 64 MiB,
so each may hold every page of the store): RSS may grow by twice the store's
growth (its logical size, PRAGMA page_count), plus 2 MiB for malloc's arenas
settling on a long run's allocation sizes, and no more. On the project's
machine (10 mailboxes, 180 s, 4 messages a second): 721 messages, 49,000 API
requests, store +576 KiB, RSS +826 KiB, tolerance 3,200 KiB. The medians
compared are 90 s apart, so a leak of 7 KiB per message (360 messages) or of
100 bytes per API request (24,000) fails it; the soak does not find smaller.
"""
import argparse
import collections
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import mailbox_farm  # noqa: E402

PER_MAILBOX = 2  # filled before the daemon starts: its backfill


class Soak:
    def __init__(self, farm):
        self.farm = farm
        self.stop = threading.Event()
        self.appended = collections.defaultdict(list)  # user -> bare Message-IDs, APPEND OK
        self.uncertain = set()  # APPENDs whose answer was lost: in the store at most once
        self.errors = []
        self.requests = 0
        self.rss = []  # (monotonic, KiB)

    def appender(self, rate):
        conns = {}
        seq = 0
        next_at = time.monotonic()
        try:
            while not self.stop.is_set():
                user = self.farm.users[seq % len(self.farm.users)]
                seq += 1
                mid = f"soak-{seq}-{user}@soak.test"
                try:
                    if user not in conns:
                        conns[user] = self.farm.appender(user)
                    self.farm.append(conns[user], self.farm.message(user, f"<{mid}>"))
                    self.appended[user].append(mid)
                except Exception as e:  # noqa: BLE001 - any failure: reconnect, go on
                    self.uncertain.add(mid)
                    self.errors.append(f"APPEND {mid}: {e!r}")
                    conns.pop(user, None)
                next_at += 1.0 / rate
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            for c in conns.values():
                try:
                    c.logout()
                except Exception:  # noqa: BLE001
                    pass

    def querier(self):
        api = mailbox_farm.Api(self.farm.socket)
        users = self.farm.users
        turn = 0
        while not self.stop.is_set():
            try:
                status, body = api.get("/v1/status")
                self.requests += 1
                if status != 200 or len(body["mailboxes"]) != len(users):
                    self.errors.append(f"GET /v1/status: {status} {str(body)[:200]}")
                query = "" if turn % 2 == 0 else "mailbox=" + users[turn // 2 % len(users)]
                turn += 1
                cursor, seen = None, set()
                while True:
                    target = "/v1/activities?limit=50" + ("&" + query if query else "")
                    if cursor:
                        target += "&cursor=" + cursor
                    status, page = api.get(target)
                    self.requests += 1
                    if status != 200:
                        self.errors.append(f"GET {target}: {status} {str(page)[:200]}")
                        break
                    for a in page["items"]:
                        if a["id"] in seen:
                            self.errors.append(f"GET {target}: {a['id']} twice in one walk")
                        seen.add(a["id"])
                    cursor = page["next_cursor"]
                    if not cursor:
                        break
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"API: {e!r}")
                time.sleep(0.5)
        api.close()

    def sampler(self):
        pid = self.farm.proc.pid
        while not self.stop.is_set():
            self.rss.append((time.monotonic(), mailbox_farm.proc_figures(pid)["VmRSS"]))
            self.stop.wait(1.0)


def store_kib(path):
    """The store's logical size (its pages, whether in the file or the WAL)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        return pages * size / 1024
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--mailboxes", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--drain", type=int, default=240)
    args = ap.parse_args()
    if args.seconds < args.warmup + 2 * args.window:
        raise SystemExit("--seconds must hold --warmup and two windows")
    work = tempfile.mkdtemp(prefix="crmcap-soak-")
    os.chmod(work, 0o755)
    farm = None
    failures = []
    try:
        farm = mailbox_farm.Farm(work, args.build, args.mailboxes, PER_MAILBOX)
        db = farm.new_store("soak")
        farm.start_daemon(farm.write_config(farm.users, "soak", db))
        took = farm.wait_idle(args.mailboxes, timeout=300)
        print(f"{args.mailboxes} mailboxes idle after {took:.1f} s")
        size_before = store_kib(db)

        events = mailbox_farm.EventStream(farm.socket)
        events.start()
        if not events.wait_connected(30):
            raise SystemExit("no event stream")
        soak = Soak(farm)
        threads = [threading.Thread(target=soak.appender, args=(args.rate,)),
                   threading.Thread(target=soak.querier),
                   threading.Thread(target=soak.sampler)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        soak.stop.wait(args.seconds)
        soak.stop.set()
        for t in threads:
            t.join()
        appended = sum(len(v) for v in soak.appended.values())
        print(f"{args.seconds} s: {appended} messages appended, {soak.requests} API requests, "
              f"{len(events.events)} events, {events.reconnects} event stream reconnects")

        # Eventually complete: poll the API until every mailbox holds its messages.
        want = {u: {f"fill-{i}-{u}@farm.test" for i in range(PER_MAILBOX)} | set(soak.appended[u])
                for u in farm.users}
        deadline = time.monotonic() + args.drain
        while True:
            got = {u: [a["message_id"] for a in farm.api.all_activities("mailbox=" + u)]
                   for u in farm.users}
            missing = {u: want[u] - set(got[u]) for u in farm.users}
            if not any(missing.values()) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        drained = time.monotonic() - t0 - args.seconds
        for u in farm.users:
            extra = set(got[u]) - want[u] - soak.uncertain
            dup = [m for m, c in collections.Counter(got[u]).items() if c > 1]
            if missing[u]:
                failures.append(f"{u}: {len(missing[u])} appended messages never captured, "
                                f"e.g. {sorted(missing[u])[:3]}")
            if extra:
                failures.append(f"{u}: activities of messages never appended: {sorted(extra)[:3]}")
            if dup:
                failures.append(f"{u}: Message-IDs captured twice: {dup[:3]}")
        everywhere = collections.Counter(m for ids in got.values() for m in ids)
        twice = [m for m, c in everywhere.items() if c > 1]
        if twice:
            failures.append(f"Message-IDs in more than one activity: {twice[:3]}")
        def without_event():
            return [m for ids in soak.appended.values() for m in ids
                    if m not in events.first_seen]
        deadline = time.monotonic() + 30
        while without_event() and time.monotonic() < deadline:
            time.sleep(0.5)
        no_event = without_event()
        if no_event:
            failures.append(f"{len(no_event)} appended messages never on /v1/events, "
                            f"e.g. {no_event[:3]}")
        events.stop()
        print(f"all captured {drained:.1f} s after appending stopped" if not any(missing.values())
              else f"still incomplete {args.drain} s after appending stopped")

        # RSS: first minute after warm-up against the last minute.
        first = [k for t, k in soak.rss if args.warmup <= t - t0 < args.warmup + args.window]
        last = [k for t, k in soak.rss if args.seconds - args.window <= t - t0 < args.seconds]
        growth_kib = store_kib(db) - size_before
        tolerance = 2 * max(growth_kib, 0) + 2048
        rss_first, rss_last = statistics.median(first), statistics.median(last)
        print(f"RSS median, first minute after {args.warmup} s: {rss_first / 1024:.1f} MiB; "
              f"last minute: {rss_last / 1024:.1f} MiB; growth {rss_last - rss_first:+.0f} KiB, "
              f"tolerance {tolerance:.0f} KiB (store grew {growth_kib:.0f} KiB); "
              f"least {min(k for _, k in soak.rss) / 1024:.1f}, "
              f"most {max(k for _, k in soak.rss) / 1024:.1f} MiB")
        if rss_last - rss_first > tolerance:
            failures.append(f"RSS grew by {rss_last - rss_first:.0f} KiB "
                            f"(tolerance {tolerance:.0f} KiB)")
        api_errors = [e for e in soak.errors if not e.startswith("APPEND")]
        if api_errors:
            failures.append(f"{len(api_errors)} API errors, e.g. {api_errors[:3]}")
        if len(soak.uncertain) > appended // 100:
            failures.append(f"{len(soak.uncertain)} APPENDs failed: {soak.errors[:3]}")
        if farm.proc.poll() is not None:
            failures.append(f"crm-captured exited ({farm.proc.returncode})")
        rc = farm.stop_daemon()
        if rc != 0:
            failures.append(f"crm-captured exited {rc} on SIGTERM: {farm.log_tail()}")
    finally:
        if farm is not None:
            farm.close()
        mailbox_farm.rmtree(work)
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
