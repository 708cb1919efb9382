#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Many mailboxes on one throwaway Dovecot, and one crm-captured serving them all.

Shared by the many-mailbox benchmark (tests/bench/bench_many.py) and the soak
(tests/api/soak.py). Everything lives in one work directory:

  farm = Farm(work, build, users=200, per_user=2)   # Dovecot with user1..user200
  farm.start_daemon(farm.write_config(farm.users))  # one crm-captured, all of them
  farm.wait_idle(timeout=300)                       # GET /v1/status: all idle
  events = EventStream(farm.socket); events.start() # GET /v1/events in a thread
  farm.append("user7", farm.message("user7", "<id@x>"))  # IMAP APPEND as user7
  farm.close()                                      # daemon and Dovecot stopped

Each user's INBOX is filled with `per_user` small messages from a contact of the
store's one company (acme-farm.example), so that every message is captured, not
skipped. Mailbox K of the configuration is named as its user ("userK"), owned by
userK@example.com (example.com is internal), and reaches Dovecot with STARTTLS
(or plain IMAP with tls=False).
"""
import http.client
import imaplib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOVECOT_SH = os.path.join(ROOT, "tests", "servers", "dovecot.sh")
COMPANY_DOMAIN = "acme-farm.example"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over the API's Unix socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Api:
    """A keep-alive client of the local API; reconnects when the server closed."""

    def __init__(self, path, timeout=10.0):
        self.path, self.timeout, self.conn = path, timeout, None

    def get(self, target):
        """(HTTP status, parsed JSON body) of GET target."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.path, self.timeout)
            try:
                self.conn.request("GET", target)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, json.loads(body) if body else None
            except (http.client.HTTPException, OSError):
                # A kept-alive connection the server ended (its idle deadline)
                # fails on first use: once more on a new one.
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def all_activities(self, query=""):
        """Every activity the filter `query` ("mailbox=user1") selects, all pages."""
        items, cursor = [], None
        while True:
            target = "/v1/activities?limit=1000" + ("&" + query if query else "")
            if cursor:
                target += "&cursor=" + cursor
            status, page = self.get(target)
            if status != 200:
                raise RuntimeError(f"GET {target}: {status} {page}")
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def bare_id(message_id):
    return message_id.strip().strip("<>")


class EventStream(threading.Thread):
    """GET /v1/events in a thread of its own; every event kept with the
    monotonic time it arrived. Reconnects with Last-Event-ID when the stream
    ends (the daemon drops a reader it finds too slow), so nothing is missed."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.cond = threading.Condition()
        self.events = []          # (arrival, id, activity JSON)
        self.first_seen = {}      # bare Message-ID -> arrival of its first event
        self.connected = False    # the first response head has come
        self.reconnects = 0
        self.last_id = None
        self.stopping = False
        self.sock = None

    def run(self):
        while not self.stopping:
            try:
                self._stream()
            except OSError:
                pass
            if self.stopping:
                return
            self.reconnects += 1
            time.sleep(0.2)

    def _stream(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s
        head = "GET /v1/events HTTP/1.1\r\nHost: localhost\r\n"
        if self.last_id is not None:
            head += f"Last-Event-ID: {self.last_id}\r\n"
        s.sendall((head + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
        status_line, _, buf = buf.partition(b"\r\n\r\n")
        if b" 200 " not in status_line.split(b"\r\n")[0]:
            raise OSError("events: " + status_line.decode(errors="replace"))
        with self.cond:
            self.connected = True
            self.cond.notify_all()
        while not self.stopping:
            while b"\n\n" in buf:
                block, _, buf = buf.partition(b"\n\n")
                self._event(block.decode())
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk

    def _event(self, block):
        ev_id, data = None, None
        for line in block.split("\n"):
            if line.startswith("id: "):
                ev_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if ev_id is None or data is None:
            return  # a keep-alive comment
        now = time.monotonic()
        with self.cond:
            self.last_id = ev_id
            self.events.append((now, ev_id, data))
            self.first_seen.setdefault(bare_id(data.get("message_id", "")), now)
            self.cond.notify_all()

    def wait_connected(self, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.connected, timeout)

    def wait_for(self, message_id, timeout):
        """Arrival time of the first event of message_id, or None after timeout."""
        mid = bare_id(message_id)
        with self.cond:
            self.cond.wait_for(lambda: mid in self.first_seen, timeout)
            return self.first_seen.get(mid)

    def stop(self):
        self.stopping = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proc_figures(pid):
    """RSS (KiB), its anonymous and file parts, open fds, CPU seconds
    (utime + stime), voluntary and involuntary context switches summed over
    every thread, and the thread count of process pid."""
    f = {}
    with open(f"/proc/{pid}/status") as st:
        for line in st:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                f[key] = int(value.split()[0])
    f["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as st:
        fields = st.read().rpartition(")")[2].split()
    # Fields 14 and 15 (utime, stime) of proc(5); the split starts at field 3.
    f["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    vol = invol = threads = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as st:
                for line in st:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
            threads += 1
        except FileNotFoundError:
            pass  # a thread that just ended
    f.update(voluntary=vol, involuntary=invol, threads=threads)
    return f


class Farm:
    def __init__(self, work, build, users, per_user=2, tls=True):
        self.work = work
        self.daemon_exe = os.path.join(build, "daemon", "crm-captured")
        self.client_exe = os.path.join(build, "daemon", "crm-capture")
        self.tls = tls
        self.proc = None
        self.socket = os.path.join(work, "run", "api.sock")
        self._counter = 0
        out = subprocess.run(["bash", DOVECOT_SH, "start", os.path.join(work, "dovecot"),
                              "--users", str(users)], check=True, capture_output=True,
                             text=True).stdout
        self.env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.users = self.env["IMAP_USERS"].split(",")
        self.port = int(self.env["IMAP_PORT"])
        os.makedirs(os.path.join(work, "secrets"), mode=0o700, exist_ok=True)
        for u in self.users:
            p = self.password_file(u)
            with open(p, "w") as f:
                f.write(self.password(u) + "\n")
            os.chmod(p, 0o400)
            self.fill(u, per_user)

    @staticmethod
    def password(user):
        return "pw-" + user

    def password_file(self, user):
        return os.path.join(self.work, "secrets", user + ".pass")

    def message(self, user, message_id, subject=None):
        """A small message from a contact of the directory's company to user."""
        self._counter += 1
        n = self._counter
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return (f"From: Buyer {n % 50} <buyer{n % 50}@{COMPANY_DOMAIN}>\r\n"
                f"To: {user} <{user}@example.com>\r\n"
                f"Subject: {subject or 'Quote ' + str(n)}\r\n"
                f"Date: {date}\r\nMessage-ID: {message_id}\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"Hello {user},\r\n\r\nplease find our quote {n} below.\r\n")

    def fill(self, user, count):
        """Writes `count` messages into user's INBOX (cur/), as an MDA would."""
        cur = os.path.join(self.env["MAILDIR"].rsplit("/", 1)[0], user, "cur")
        for i in range(count):
            name = f"{int(time.time())}.M{i}P{os.getpid()}.farm-{user}-{i}:2,"
            path = os.path.join(cur, name)
            with open(path, "w", newline="") as f:
                f.write(self.message(user, f"<fill-{i}-{user}@farm.test>"))
            if os.geteuid() == 0:
                os.chown(path, int(self.env["MAIL_UID"]), int(self.env["MAIL_GID"]))

    def new_store(self, name):
        """A store path with the directory (one company) imported."""
        db = os.path.join(self.work, name + ".db")
        csv = os.path.join(self.work, "companies.csv")
        with open(csv, "w") as f:
            f.write(f"id,name,domains\nCO-FARM,Acme Farm,{COMPANY_DOMAIN}\n")
        subprocess.run([self.client_exe, "--store", db, "import", "companies", csv], check=True,
                       capture_output=True)
        return db

    def write_config(self, users, name="farm", db=None):
        """A configuration serving `users`, with a new store; returns its path."""
        db = db or self.new_store(name)
        conf = os.path.join(self.work, name + ".toml")
        parts = [f'[store]\npath = "{db}"\n[api]\nsocket = "{self.socket}"\n'
                 '[identity]\ninternal_domains = ["example.com"]\n']
        for u in users:
            parts.append(f'[[mailbox]]\nname = "{u}"\nowner = ["{u}@example.com"]\n'
                         f'[mailbox.imap]\nurl = "imap://127.0.0.1:{self.port}"\n'
                         f'username = "{u}"\npassword_file = "{self.password_file(u)}"\n'
                         f'ca_file = "{self.env["CA_FILE"]}"\n'
                         + ("" if self.tls else "allow_insecure = true\n"))
        with open(conf, "w") as f:
            f.write("".join(parts))
        return conf

    def start_daemon(self, conf, log_name="daemon.err"):
        """Starts crm-captured with conf; its soft fd limit raised to the hard one."""
        def raise_nofile():
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.log = os.path.join(self.work, log_name)
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([self.daemon_exe, "--config", conf],
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=raise_nofile)
        self.api = Api(self.socket)
        return self.proc

    def stop_daemon(self):
        if self.proc is None:
            return None
        self.api.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def states(self):
        """{mailbox: imap state} from GET /v1/status; {} while the socket is not up."""
        try:
            status, body = self.api.get("/v1/status")
        except OSError:
            return {}
        if status != 200:
            return {}
        return {m["name"]: (m["imap"] or {}).get("state") for m in body["mailboxes"]}

    def wait_idle(self, count, timeout):
        """Waits until `count` mailboxes are idle; returns the seconds it took.
        Raises RuntimeError naming the states seen and the log's tail."""
        t0 = time.monotonic()
        states = {}
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"crm-captured exited ({self.proc.returncode}): "
                                   + self.log_tail())
            states = self.states()
            if len(states) == count and all(s == "idle" for s in states.values()):
                return time.monotonic() - t0
            time.sleep(0.2)
        tally = {}
        for s in states.values():
            tally[s] = tally.get(s, 0) + 1
        raise RuntimeError(f"not all {count} mailboxes idle after {timeout} s: {tally}; "
                           + self.log_tail())

    def log_tail(self, lines=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def appender(self, user):
        """A logged-in IMAP connection as user (plain IMAP on loopback)."""
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        c.login(user, self.password(user))
        return c

    def append(self, conn, message, folder="INBOX"):
        typ, data = conn.append(folder, None, None, message.encode())
        if typ != "OK":
            raise RuntimeError(f"APPEND: {typ} {data}")

    def close(self):
        try:
            self.stop_daemon()
        finally:
            subprocess.run(["bash", DOVECOT_SH, "stop", os.path.join(self.work, "dovecot")],
                           capture_output=True)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
