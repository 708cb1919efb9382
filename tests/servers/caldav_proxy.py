#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A logging HTTP proxy in front of a real CalDAV server (Radicale), for what
that server will not do on demand: fail the requests of one collection while
the others go through, then recover.

  caldav_proxy.py UPSTREAM DIR
      UPSTREAM is the server root (http://127.0.0.1:PORT). Prints "PORT=n"
      once listening on 127.0.0.1; serves until killed. Each request is
      forwarded as it came (method, path, headers, body) and answered with the
      server's answer, one request per connection.
      Appends "METHOD PATH STATUS" to DIR/requests.log for every request.
      While DIR/fail exists, a request whose "METHOD PATH" starts with the
      file's first line (e.g. "REPORT /user1/home/") is not forwarded: it is
      answered with the status on the second line (e.g. "503"), the header
      lines that follow (e.g. "Retry-After: 1") and an empty body.
      While DIR/delay exists, a request whose "METHOD PATH" starts with the
      file's first line waits the seconds on its second line (e.g. "0.5")
      before it is forwarded or failed: a slow server, for watching a sync
      under way.
"""
import http.client
import http.server
import os
import sys
import threading
import time
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
DIR = sys.argv[2]
LOG_LOCK = threading.Lock()
# Hop-by-hop fields, and the length this proxy sets itself.
DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def log(line):
    with LOG_LOCK, open(os.path.join(DIR, "requests.log"), "a") as f:
        f.write(line + "\n")


def control(name, method, path):
    """The lines of DIR/name when it exists and its first line is a prefix of
    "METHOD PATH" (and a second line follows), else None."""
    try:
        with open(os.path.join(DIR, name)) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 2 or not (method + " " + path).startswith(lines[0]):
        return None
    return lines


def failure(method, path):
    """(status, [(name, value)]) when DIR/fail names this request, else None."""
    lines = control("fail", method, path)
    if lines is None:
        return None
    headers = [tuple(part.strip() for part in h.split(":", 1)) for h in lines[2:] if ":" in h]
    return int(lines[1]), headers


class Proxy(http.server.BaseHTTPRequestHandler):
    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        delay = control("delay", self.command, self.path)
        if delay is not None:
            time.sleep(float(delay[1]))
        failed = failure(self.command, self.path)
        if failed:
            status, headers = failed
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            log(f"{self.command} {self.path} {status}")
            return
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in DROPPED}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in DROPPED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        log(f"{self.command} {self.path} {resp.status}")

    def __getattr__(self, name):
        # do_PROPFIND, do_REPORT, do_GET, ...: every method is forwarded.
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
