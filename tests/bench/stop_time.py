#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""How long crm-captured takes from SIGTERM to its exit.

Starts the built daemon (not --once) ROUNDS times on each of three
configurations with nothing to do, waits until it runs, sends SIGTERM and
times the exit:
  retrying-imap  one IMAP mailbox whose server refuses connections, waiting to reconnect
  idle-imap  one mailbox IDLE on a throwaway Dovecot (tests/servers/dovecot.sh)
  caldav     one CalDAV account whose server refuses connections, waiting to retry
Prints the median and the worst per configuration, in milliseconds.

  python3 tests/bench/stop_time.py --build build [--rounds 10]
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def api_get(path, target, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")
    except OSError:
        return ""
    finally:
        s.close()


def one_stop(exe, config, sock, ready):
    p = subprocess.Popen([exe, "--config", config], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and ready not in api_get(sock, "/v1/status"):
            time.sleep(0.05)
        if ready not in api_get(sock, "/v1/status"):
            raise SystemExit("the daemon never got to " + ready)
        time.sleep(0.3)  # settled: IDLE begun, or the CalDAV worker waiting
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=30)
        ms = (time.monotonic() - t0) * 1000
        if code != 0:
            raise SystemExit(f"exit status {code}")
        return ms
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    exe = os.path.abspath(os.path.join(a.build, "daemon", "crm-captured"))
    work = tempfile.mkdtemp(prefix="crmcap-stop-")
    os.chmod(work, 0o755)
    dove = os.path.join(work, "dovecot")
    out = subprocess.run(["bash", os.path.join(SRC, "tests/servers/dovecot.sh"), "start", dove],
                         check=True, capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        with open(os.path.join(work, "pass"), "w") as f:
            f.write("pw-user1\n")
        os.chmod(os.path.join(work, "pass"), 0o600)
        sock = os.path.join(work, "run", "api.sock")
        head = f'[store]\npath = "{work}/capture.db"\n[api]\nsocket = "{sock}"\n' \
               '[[mailbox]]\nname = "alice"\nowner = ["user1@example.com"]\n'
        configs = {
            "retrying-imap": (head + '[mailbox.imap]\nurl = "imap://127.0.0.1:1"\n'
                              f'allow_insecure = true\nusername = "user1"\npassword_file = "{work}/pass"\n',
                              '"state":"retrying"'),
            "idle-imap": (head + f'[mailbox.imap]\nurl = "imap://127.0.0.1:{env["IMAP_PORT"]}"\n'
                          f'allow_insecure = true\nusername = "user1"\npassword_file = "{work}/pass"\n',
                          '"state":"idle"'),
            "caldav": (head + '[mailbox.caldav]\nurl = "http://127.0.0.1:9/"\nallow_insecure = true\n'
                       f'username = "alice"\npassword_file = "{work}/pass"\ninterval_seconds = 3600\n',
                       '"state":"retrying"'),
        }
        for name, (text, ready) in configs.items():
            path = os.path.join(work, name + ".toml")
            with open(path, "w") as f:
                f.write(text)
            times = [one_stop(exe, path, sock, ready) for _ in range(a.rounds)]
            print(f"{name}: SIGTERM to exit, median {statistics.median(times):.0f} ms, "
                  f"worst {max(times):.0f} ms ({a.rounds} rounds)")
    finally:
        subprocess.run(["bash", os.path.join(SRC, "tests/servers/dovecot.sh"), "stop", dove],
                       capture_output=True)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
