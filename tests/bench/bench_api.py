#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Local API benchmarks: crm-captured serving its Unix socket, on loopback only.

  bench_api.py pages  --build B [--count 1000000] [--store FILE] [--clients 16]
                      [--requests 400] [--think-ms 0] [--driver h2load [--rps N]]
                      [--driver paced [--rate 20] [--seconds 20]]
                      [--callgrind PAGES [--callgrind-out FILE]]
      A store of --count generated activities (written by bench_api_fill through
      store::Store::commit; kept at --store and reused when it exists), served by
      crm-captured whose one mailbox points at a closed port (it retries; the API
      serves on). --clients processes, each on one keep-alive connection, ask
      for activity pages one after the other: a contact's (or an opportunity's)
      first page of 50, then up to 3 more pages through next_cursor. The contact
      or opportunity is drawn as the rows were (heavy ones often). With
      --think-ms, a client waits that long on average between pages; without,
      it asks again at once (the daemon always busy). Prints p50, p90, p99 and
      max of each kind, the throughput and the daemon's CPU time a page.
      With --driver h2load (nghttp2-client), the pages are read once first to
      learn their cursors, then h2load asks them over --clients connections
      (--rps: each client's pace; 0: at once), contact pages then opportunity
      pages, --clients * --requests / 2 of each. With --driver paced, the same
      pages are asked by --clients h2load processes of one connection each,
      each at --rate pages a second on average (a timing script of Poisson
      arrivals from a random phase, so that the clients do not fire on one
      tick as h2load's --rps does), for --seconds. With --callgrind PAGES, no
      timed run: the daemon runs under valgrind --tool=callgrind and the first
      PAGES of those pages are asked one at a time; prints the instructions
      (every thread) a page; --callgrind-out FILE keeps the profile.

  bench_api.py events --build B [--samples 20]
      A throwaway Dovecot (tests/servers/dovecot.sh) with a small mailbox,
      crm-captured running against it, one reader on /v1/events and one plain
      IMAP client idling on INBOX beside the daemon. --samples times a message
      is APPENDed over IMAP; from the APPEND's tagged OK, the time until the
      idling client sees EXISTS (Dovecot's own notice) and until the event is
      read from /v1/events. Prints median and worst of both and of the gap.

  bench_api.py idle --build B [--count 20000] [--seconds 60]
      crm-captured backfills --count generated messages (gen_mailbox.py) from a
      throwaway Dovecot, goes IDLE; then, for --seconds with no API client, its
      RSS and each thread's voluntary and involuntary context switches (wake-
      ups) from /proc/PID/task/*/status.

Every subcommand prints one JSON line of its figures last.
"""
import argparse
import imaplib
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import loopback_mailbox  # noqa: E402

# The generator's populations and skew (bench_api_fill.cpp).
CONTACTS, OPPORTUNITIES = 100_000, 5_000


def skewed(rng, n):
    u = rng.random()
    return int(n * u * u * u)


# ---- HTTP/1.1 over the Unix socket ---------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection to the API socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def get(self, target):
        """(status, body bytes) of GET target."""
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not m:
            raise RuntimeError("no Content-Length in " + head.decode(errors="replace"))
        n = int(m.group(1))
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, body

    def _more(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the daemon closed the connection")
        self.buf += data


def api_get(path, target):
    status, body = Client(path).get(target)
    if status != 200:
        raise RuntimeError(f"GET {target}: {status} {body[:200]!r}")
    return json.loads(body)


def wait_for_socket(path, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"crm-captured exited with {proc.returncode}")
        try:
            return api_get(path, "/v1/status")
        except (OSError, RuntimeError):
            time.sleep(0.05)
    raise RuntimeError("the API socket did not answer")


def start_daemon(build, conf, log, prefix=()):
    exe = os.path.join(build, "daemon", "crm-captured")
    return subprocess.Popen([*prefix, exe, "--config", conf], stdout=log, stderr=subprocess.STDOUT)


def stop_daemon(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---- pages -----------------------------------------------------------------

def page_client(args):
    """One client process: (kind, seconds, items) of every request."""
    sock, seed, requests, warmup, think = args
    rng = random.Random(seed)
    c = Client(sock)
    out = []
    done = 0
    while done < requests + warmup:
        kind = "contact" if rng.random() < 0.5 else "opportunity"
        key = f"P-{skewed(rng, CONTACTS)}" if kind == "contact" else f"O-{skewed(rng, OPPORTUNITIES)}"
        target = f"/v1/activities?{kind}={key}&limit=50"
        for _ in range(4):
            t0 = time.perf_counter()
            status, body = c.get(target)
            dt = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"GET {target}: {status} {body[:200]!r}")
            page = json.loads(body)
            if done >= warmup:
                out.append((kind, dt, len(page["items"])))
            done += 1
            if think:
                time.sleep(rng.uniform(0, 2 * think))
            if not page["next_cursor"] or done >= requests + warmup:
                break
            target = f"/v1/activities?{kind}={key}&limit=50&cursor={page['next_cursor']}"
    return out


def page_targets(sock, seed, pages):
    """Page targets of each kind as page_client asks them, --pages in all: a
    first page, then its next pages through next_cursor (read here, untimed)."""
    rng = random.Random(seed)
    c = Client(sock)
    out = {"contact": [], "opportunity": []}
    while sum(len(v) for v in out.values()) < pages:
        kind = "contact" if rng.random() < 0.5 else "opportunity"
        key = f"P-{skewed(rng, CONTACTS)}" if kind == "contact" else f"O-{skewed(rng, OPPORTUNITIES)}"
        target = f"/v1/activities?{kind}={key}&limit=50"
        for _ in range(4):
            status, body = c.get(target)
            if status != 200:
                raise RuntimeError(f"GET {target}: {status} {body[:200]!r}")
            out[kind].append(target)
            cursor = json.loads(body)["next_cursor"]
            if not cursor:
                break
            target = f"/v1/activities?{kind}={key}&limit=50&cursor={cursor}"
    return out


def h2load_pages(sock, targets, clients, requests, rps, work):
    """Runs h2load (HTTP/1.1, one keep-alive connection a client, one request
    in flight on each) over `targets`; the latency of each response (ms)."""
    uris = os.path.join(work, "uris.txt")
    log = os.path.join(work, "h2load.log")
    with open(uris, "w") as f:
        f.write("".join(f"http://localhost{t}\n" for t in targets))
    if os.path.exists(log):
        os.remove(log)  # h2load appends to it
    cmd = ["h2load", "--h1", "-B", f"unix:{sock}", "-c", str(clients), "-m", "1",
           "-n", str(requests), "-i", uris, f"--log-file={log}"]
    if rps:
        cmd.append(f"--rps={rps}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    if " 0 failed" not in out or " 0 errored" not in out:
        raise RuntimeError("h2load: requests failed:\n" + out)
    ms, statuses = [], set()
    with open(log) as f:
        for line in f:
            _, status, micros = line.split("\t")[:3]
            statuses.add(status)
            ms.append(int(micros) / 1000)
    if statuses != {"200"}:
        raise RuntimeError(f"h2load: statuses {statuses}")
    return ms


def paced_pages(sock, targets, clients, rate, seconds, seed, work):
    """Each of `clients` keep-alive connections asks a page at random times,
    `rate` a second on average (Poisson arrivals, each client from a random
    phase), for `seconds`: a realistic load of CRM tools rather than a
    closed loop. Each client is an h2load process of its own (one
    connection) replaying a timing script, so the clients neither fire on
    one tick (as h2load's --rps does) nor add a Python driver's latency.
    h2load starts each gap when the answer before it is in: the pace is a
    little slower than asked (the run prints the real one). (kind, seconds
    from sending to the whole response) of every request."""
    flat = [(kind, t) for kind, ts in targets.items() for t in ts]
    runs = []
    for i in range(clients):
        rng = random.Random(seed + i)
        planned, at = [], rng.uniform(0, 1 / rate)
        while at < seconds:
            planned.append((at, *rng.choice(flat)))
            at += rng.expovariate(rate)
        script = os.path.join(work, f"paced-{i}.txt")
        log = os.path.join(work, f"paced-{i}.log")
        with open(script, "w") as f:
            f.write("".join(f"{at * 1000:.3f}\thttp://localhost{t}\n" for at, _, t in planned))
        if os.path.exists(log):
            os.remove(log)  # h2load appends to it
        cmd = ["h2load", "--h1", "-B", f"unix:{sock}", "-c", "1", "-m", "1",
               f"--timing-script-file={script}", f"--log-file={log}"]
        runs.append((planned, log, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
    out = []
    for planned, log, proc in runs:
        text = proc.communicate()[0]
        if proc.returncode != 0 or " 0 failed" not in text or " 0 errored" not in text:
            raise RuntimeError("h2load: requests failed:\n" + text)
        with open(log) as f:
            # One connection, one request in flight: the log's lines come in
            # the script's order.
            lines = [line.split("\t")[:3] for line in f]
        if len(lines) != len(planned):
            raise RuntimeError(f"h2load: {len(lines)} answers to {len(planned)} requests")
        for (_, kind, _), (_, status, micros) in zip(planned, lines):
            if status != "200":
                raise RuntimeError(f"h2load: status {status}")
            out.append((kind, int(micros) / 1e6))
    return out


def callgrind_pages(sock, proc, targets, pages, out):
    """(pages, bytes of their bodies, instructions) the daemon (every thread)
    spends on `pages` pages asked one at a time on one connection, counted by
    callgrind between a reset and a dump of its counters, after 20 untimed
    pages."""
    flat = targets["contact"] + targets["opportunity"]
    c = Client(sock)
    for t in flat[:20]:
        c.get(t)
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    asked, size = flat[:pages], 0
    for t in asked:
        status, body = c.get(t)
        if status != 200:
            raise RuntimeError(f"GET {t}: {status}")
        size += len(body)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    with open(out + ".1") as f:
        total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
    return len(asked), size, total


def ensure_store(build, path, count):
    if os.path.exists(path):
        print(f"store: reusing {path}")
        return
    exe = os.path.join(build, "tests", "bench", "bench_api_fill")
    t0 = time.time()
    subprocess.run([exe, path, str(count)], check=True)
    print(f"store: {count} activities written in {time.time() - t0:.1f} s")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def cmd_pages(args):
    store = args.store or os.path.join(tempfile.gettempdir(), f"crmcap-bench-api-{args.count}.db")
    ensure_store(args.build, store, args.count)
    size = os.path.getsize(store)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as work:
        # The loopback mailbox's configuration, its server a closed port.
        env = {"IMAP_PORT": closed_port(), "IMAP_USER": "alice", "IMAP_PASSWORD": "unused",
               "CA_FILE": "/etc/ssl/certs/ca-certificates.crt"}
        conf = os.path.join(work, "capture.toml")
        sock = os.path.join(work, "api.sock")
        with open(conf, "w") as f:
            f.write(loopback_mailbox.config_text(env, store, work,
                                                 loopback_mailbox.password_file(env, work)))
        with open(os.path.join(work, "daemon.log"), "w") as log:
            grind = os.path.join(work, "callgrind.out")
            prefix = (("valgrind", "--tool=callgrind", f"--callgrind-out-file={grind}")
                      if args.callgrind else ())
            proc = start_daemon(args.build, conf, log, prefix)
            try:
                status = wait_for_socket(sock, proc, 300 if args.callgrind else 60)
                box = status["mailboxes"][0]["imap"]
                print(f"daemon up; mailbox alice: {box['state']} (its server is a closed port)")
                if args.callgrind:
                    targets = page_targets(sock, 1000, args.callgrind + 20)
                    n, size, total = callgrind_pages(sock, proc, targets, args.callgrind, grind)
                    if args.callgrind_out:
                        shutil.copyfile(grind + ".1", args.callgrind_out)
                    print(f"callgrind: {n} pages ({size:,} bytes of JSON), {total:,} "
                          f"instructions, {total / n / 1e6:.2f} M a page")
                    print(json.dumps({"pages": n, "body_bytes": size, "instructions": total,
                                      "instructions_per_page": round(total / n)}))
                    return
                if args.driver == "paced":
                    targets = page_targets(sock, 1000, args.clients * (args.requests + args.warmup))
                    t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
                    got = paced_pages(sock, targets, args.clients, args.rate, args.seconds, 1000, work)
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                    rows = [(kind, dt, 0) for kind, dt in got]
                elif args.driver == "h2load":
                    targets = page_targets(sock, 1000, args.clients * (args.requests + args.warmup))
                    rows = []
                    t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
                    for kind, ts in targets.items():
                        n = args.clients * args.requests // 2
                        rows += [(kind, ms / 1000, 0)
                                 for ms in h2load_pages(sock, ts, args.clients, n, args.rps, work)]
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                else:
                    jobs = [(sock, 1000 + i, args.requests, args.warmup, args.think_ms / 1000)
                            for i in range(args.clients)]
                    t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
                    with multiprocessing.Pool(args.clients) as pool:
                        rows = [r for part in pool.map(page_client, jobs) for r in part]
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                rss = rss_kib(proc.pid)
            finally:
                stop_daemon(proc)
    # The python clients' warm-up pages are in the daemon's CPU time too;
    # h2load's targets were read before the clock started.
    n_all = len(rows) + (args.clients * args.warmup if args.driver == "python" else 0)
    results = {"activities": args.count, "store_mb": round(size / 1e6, 1),
               "clients": args.clients, "requests": len(rows),
               "throughput_rps": round(len(rows) / wall), "daemon_rss_mib": round(rss / 1024, 1),
               "daemon_cpu_ms_per_page": round(cpu * 1000 / n_all, 2)}
    results["driver"] = args.driver
    results["think_ms"] = args.think_ms if args.driver == "python" else None
    results["rps_per_client"] = args.rps if args.driver == "h2load" else None
    if args.driver == "paced":
        results["rate_per_client"] = args.rate
    pace = (f"paced, each asked {args.rate} pages/s on average at random times"
            if args.driver == "paced"
            else f"h2load, each at most {args.rps} pages/s" if args.driver == "h2load" and args.rps
            else "h2load, each asking again at once" if args.driver == "h2load"
            else f"each waiting {args.think_ms} ms on average between pages")
    print(f"{args.count} activities ({size / 1e6:.0f} MB), {args.clients} clients ({pace}), "
          f"{len(rows)} pages in {wall:.1f} s ({len(rows) / wall:.0f}/s), daemon RSS "
          f"{rss / 1024:.1f} MiB, daemon CPU {cpu * 1000 / n_all:.2f} ms a page")
    print(f"{'pages by':<12} {'n':>6} {'items/page':>10} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8}")
    for kind in ("contact", "opportunity"):
        xs = [dt * 1000 for k, dt, _ in rows if k == kind]
        items = statistics.mean(n for k, _, n in rows if k == kind) if args.driver == "python" else 0
        fig = {p: round(percentile(xs, p), 2) for p in (50, 90, 99, 100)}
        results[kind] = {"n": len(xs), "p50_ms": fig[50], "p90_ms": fig[90], "p99_ms": fig[99],
                         "max_ms": fig[100]}
        print(f"{kind:<12} {len(xs):>6} {items:>10.1f} {fig[50]:>8.2f} {fig[90]:>8.2f} "
              f"{fig[99]:>8.2f} {fig[100]:>8.2f}")
    print(json.dumps(results))


# ---- events ----------------------------------------------------------------

class Watch(threading.Thread):
    """Reads lines from a socket in a thread and timestamps those that match."""

    def __init__(self, sock, pattern):
        super().__init__(daemon=True)
        self.sock, self.pattern = sock, re.compile(pattern)
        self.seen = []  # (time, match)
        self.cond = threading.Condition()

    def run(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                m = self.pattern.search(line.decode(errors="replace"))
                if m:
                    with self.cond:
                        self.seen.append((now, m))
                        self.cond.notify_all()

    def wait(self, pred, timeout):
        with self.cond:
            deadline = time.perf_counter() + timeout
            while True:
                for t, m in self.seen:
                    if pred(m):
                        return t
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(left)


def message(i, stamp):
    return (f"From: Jane Buyer <buyer{i}@acme-bench.example>\r\n"
            f"To: alice@example.com\r\n"
            f"Subject: event bench {stamp} {i}\r\n"
            f"Message-ID: <event-bench-{stamp}-{i}@acme-bench.example>\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"\r\nAbout the order, number {i}.\r\n").encode()


def with_dovecot(build, count, fn):
    """Runs fn(env, work, conf, socket) with a throwaway Dovecot holding
    `count` generated messages and a store with their CRM directory."""
    work = tempfile.mkdtemp(prefix="bench-api-", dir="/tmp")
    os.chmod(work, 0o755)
    try:
        env = loopback_mailbox.start(work)
        try:
            crm, _ = loopback_mailbox.fill(env, work, count)
            pw = loopback_mailbox.password_file(env, work)
            db = os.path.join(work, "capture.db")
            for kind in ("companies", "contacts", "opportunities"):
                subprocess.run([os.path.join(build, "daemon", "crm-capture"), "--store", db,
                                "import", kind, os.path.join(crm, kind + ".csv")],
                               check=True, capture_output=True)
            conf = os.path.join(work, "capture.toml")
            with open(conf, "w") as f:
                f.write(loopback_mailbox.config_text(env, db, work, pw))
            return fn(env, work, conf, os.path.join(work, "api.sock"))
        finally:
            loopback_mailbox.stop(work)
    finally:
        subprocess.run(["rm", "-rf", work])


def wait_idle(sock, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        st = api_get(sock, "/v1/status")["mailboxes"][0]["imap"]
        if st["state"] == "idle":
            return st
        if proc.poll() is not None:
            raise RuntimeError("crm-captured exited")
        time.sleep(0.2)
    raise RuntimeError(f"the mailbox did not go idle within {seconds} s: {st}")


def cmd_events(args):
    def run(env, work, conf, sock):
        with open(os.path.join(work, "daemon.log"), "w") as log:
            proc = start_daemon(args.build, conf, log)
            try:
                wait_for_socket(sock, proc)
                wait_idle(sock, proc, 120)
                # The event stream, from now on.
                sse = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sse.connect(sock)
                sse.sendall(b"GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
                events = Watch(sse, r"^data: .*\"subject\":\"event bench \d+ (\d+)\"")
                events.start()
                # An IMAP client of our own idling beside the daemon: when
                # Dovecot tells an idler of the new message.
                idler = socket.create_connection(("127.0.0.1", int(env["IMAP_PORT"])))
                notices = Watch(idler, r"^\* (\d+) EXISTS")
                notices.start()
                idler.sendall(f'a LOGIN "{env["IMAP_USER"]}" "{env["IMAP_PASSWORD"]}"\r\n'
                              f"b SELECT INBOX\r\nc IDLE\r\n".encode())
                time.sleep(1.0)
                imap = imaplib.IMAP4("127.0.0.1", int(env["IMAP_PORT"]))
                imap.login(env["IMAP_USER"], env["IMAP_PASSWORD"])
                typ, data = imap.select("INBOX")
                exists = int(data[0])
                stamp = time.time_ns()
                to_notice, to_event = [], []
                for i in range(args.samples):
                    imap.append("INBOX", None, None, message(i, stamp))
                    done = time.perf_counter()
                    exists += 1
                    n = exists
                    seen = notices.wait(lambda m: int(m.group(1)) >= n, 10)
                    got = events.wait(lambda m, i=i: int(m.group(1)) == i, 10)
                    if seen is None or got is None:
                        raise RuntimeError(f"sample {i}: notice {seen}, event {got}")
                    to_notice.append((seen - done) * 1000)
                    to_event.append((got - done) * 1000)
                    print(f"  APPEND {i:2d}: Dovecot's EXISTS after {to_notice[-1]:6.1f} ms, "
                          f"SSE event after {to_event[-1]:6.1f} ms")
                    time.sleep(0.5 + random.random() * 0.5)
                imap.logout()
                rss = rss_kib(proc.pid)
            finally:
                stop_daemon(proc)
        return to_notice, to_event, rss

    to_notice, to_event, rss = with_dovecot(args.build, args.mailbox, run)
    gap = [e - n for n, e in zip(to_notice, to_event)]
    results = {"samples": len(to_event)}
    print(f"{'from the APPEND to':<40} {'median ms':>10} {'worst ms':>10}")
    for name, xs in (("Dovecot's EXISTS to an idling client", to_notice),
                     ("the activity on /v1/events", to_event),
                     ("(difference: the daemon's share)", gap)):
        print(f"{name:<40} {statistics.median(xs):>10.1f} {max(xs):>10.1f}")
    results.update(notice_median_ms=round(statistics.median(to_notice), 1),
                   notice_max_ms=round(max(to_notice), 1),
                   event_median_ms=round(statistics.median(to_event), 1),
                   event_max_ms=round(max(to_event), 1),
                   daemon_share_median_ms=round(statistics.median(gap), 1),
                   daemon_share_max_ms=round(max(gap), 1), daemon_rss_mib=round(rss / 1024, 1))
    print(json.dumps(results))


# ---- idle ------------------------------------------------------------------

def mapped_files_kib(pid):
    """[(path, resident KiB)] of the files mapped into `pid`, largest first."""
    out, path = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                path = head[5] if len(head) > 5 and head[5].startswith("/") else None
            elif head[0] == "Rss:" and path:
                out[path] = out.get(path, 0) + int(head[1])
    return sorted(out.items(), key=lambda x: -x[1])


def rss_kib(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in KiB: VmRSS, RssAnon (the
    process's own), RssFile (mapped files: its libraries)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User and system CPU time of the process so far (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_switches(pid):
    """{tid: (name, voluntary, involuntary)} of every thread."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        get = lambda k: re.search(rf"^{k}:\s*(\S+)", text, re.M).group(1)  # noqa: E731
        out[tid] = (get("Name"), int(get("voluntary_ctxt_switches")),
                    int(get("nonvoluntary_ctxt_switches")))
    return out


def cmd_idle(args):
    def run(env, work, conf, sock):
        with open(os.path.join(work, "daemon.log"), "w") as log:
            t0 = time.time()
            proc = start_daemon(args.build, conf, log)
            try:
                wait_for_socket(sock, proc)
                st = wait_idle(sock, proc, 600)
                backfill = time.time() - t0
                print(f"backfill of {args.count} messages and IDLE after {backfill:.1f} s; "
                      f"captured {st['counters']['captured']}, skipped {st['counters']['skipped']}")
                peak = 0
                with open(f"/proc/{proc.pid}/status") as f:
                    peak = int(re.search(r"VmHWM:\s*(\d+)", f.read()).group(1))
                time.sleep(args.settle)  # the store's idle work (WAL truncation) ends
                rss0 = rss_kib(proc.pid)
                anon, files = rss_kib(proc.pid, "RssAnon"), rss_kib(proc.pid, "RssFile")
                by_file = mapped_files_kib(proc.pid)
                a = thread_switches(proc.pid)
                time.sleep(args.seconds)
                b = thread_switches(proc.pid)
                rss1 = rss_kib(proc.pid)
            finally:
                stop_daemon(proc)
            return backfill, peak, rss0, rss1, anon, files, by_file, a, b

    backfill, peak, rss0, rss1, anon, files, by_file, a, b = with_dovecot(args.build, args.count,
                                                                         run)
    per_min = 60.0 / args.seconds
    print(f"peak RSS during the backfill {peak / 1024:.1f} MiB; idle RSS {rss0 / 1024:.1f} MiB "
          f"({args.settle:.0f} s after IDLE: {anon / 1024:.1f} MiB its own, {files / 1024:.1f} MiB "
          f"mapped files), {rss1 / 1024:.1f} MiB {args.seconds:.0f} s later")
    print("mapped files, resident KiB: " + ", ".join(
        f"{os.path.basename(path)} {kib}" for path, kib in by_file[:8]))
    print(f"{'thread':<16} {'wake-ups/min':>12} {'involuntary/min':>16}")
    total = 0
    threads = []
    for tid in sorted(a, key=int):
        if tid not in b:
            continue
        vol = (b[tid][1] - a[tid][1]) * per_min
        inv = (b[tid][2] - a[tid][2]) * per_min
        total += vol
        threads.append({"name": a[tid][0], "wakeups_per_min": round(vol, 1)})
        print(f"{a[tid][0] + ' ' + tid:<16} {vol:>12.1f} {inv:>16.1f}")
    print(f"{'all threads':<16} {total:>12.1f}")
    print(json.dumps({"messages": args.count, "backfill_s": round(backfill, 1),
                      "peak_rss_mib": round(peak / 1024, 1), "idle_rss_mib": round(rss0 / 1024, 1),
                      "idle_rss_anon_mib": round(anon / 1024, 1),
                      "idle_rss_file_mib": round(files / 1024, 1),
                      "idle_rss_later_mib": round(rss1 / 1024, 1),
                      "idle_rss_file_top_kib": dict(by_file[:8]),
                      "wakeups_per_min": round(total, 1), "threads": threads}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pages")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--store", help="the generated store, reused when it exists")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=400, help="timed pages per client")
    p.add_argument("--warmup", type=int, default=20, help="untimed pages per client first")
    p.add_argument("--driver", choices=["python", "h2load", "paced"], default="python",
                   help="the clients: python processes following next_cursor, h2load "
                        "(nghttp2-client) replaying pages whose cursors were read first, or "
                        "paced: one h2load process a client asking those pages at random times")
    p.add_argument("--rate", type=float, default=20,
                   help="paced: pages a second each client asks, on average")
    p.add_argument("--seconds", type=float, default=20, help="paced: how long")
    p.add_argument("--rps", type=int, default=0,
                   help="h2load: pages a second each client asks at most; 0: at once")
    p.add_argument("--callgrind", type=int, default=0, metavar="PAGES",
                   help="instead of a timed run: the daemon under valgrind's callgrind, "
                        "PAGES pages asked one at a time; prints its instructions a page")
    p.add_argument("--callgrind-out", metavar="FILE",
                   help="with --callgrind: keep the counted pages' profile there "
                        "(for callgrind_annotate)")
    p.add_argument("--think-ms", type=float, default=0,
                   help="a client's mean wait between pages (uniform from 0 to twice it); "
                        "0: the next page at once (a closed loop: the daemon always busy)")
    e = sub.add_parser("events")
    e.add_argument("--samples", type=int, default=20)
    e.add_argument("--mailbox", type=int, default=50, help="messages in the mailbox first")
    i = sub.add_parser("idle")
    i.add_argument("--count", type=int, default=20_000)
    i.add_argument("--seconds", type=float, default=60)
    i.add_argument("--settle", type=float, default=35,
                   help="seconds between IDLE and the measurement (the WAL is cut after 30 s)")
    for s in (p, e, i):
        s.add_argument("--build", required=True)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    {"pages": cmd_pages, "events": cmd_events, "idle": cmd_idle}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
