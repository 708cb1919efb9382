#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted hostile IMAP server: one misbehaviour per MODE (issue 21).

It speaks just enough IMAP4rev1 for crm-captured's sync over plain TCP on
127.0.0.1: CAPABILITY, LOGIN, LIST (INBOX only), STATUS, EXAMINE/SELECT,
UID SEARCH (ESEARCH's RETURN (ALL) when it advertises ESEARCH), UID FETCH
(UID, FLAGS, RFC822.SIZE, INTERNALDATE, ENVELOPE, BODY, BODYSTRUCTURE,
RFC822[.HEADER|.TEXT], BODY[.PEEK][...] of any section: "", HEADER, TEXT,
HEADER.FIELDS (...), numeric parts and their MIME headers, each with an
optional <start.count>), NOOP, LOGOUT.

  hostile_imap.py LOG MODE CONTROL
      prints "PORT=n" once listening; serves until killed. Every command line
      received is appended to LOG (the password replaced by <pw>), and so is
      a line "HOSTILE <what>" whenever the server misbehaves, so a test can
      tell that its pass met the misbehaviour. The server is hostile while
      the file CONTROL does not exist; once it does, it serves the same
      mailbox well, plus one new message (UID 4, "<h4@acme.com>").

The mailbox: INBOX, UIDVALIDITY 7, three messages from jane@acme.com to
alice@example.com (UIDs 1-3, Message-IDs <hN@acme.com>, dated a day or two
ago). MODE is one of:

  malformed_fetch    message 2 is a real multipart/mixed nested 70 levels
                     deep (a text/plain at the bottom): its BODYSTRUCTURE
                     nests deeper than a client's parser may allow (64).
                     Hostile or not, the server tells the truth about it.
  garbage_fetch      while hostile, every FETCH response for message 2 is
                     syntactically broken.
  search_overflow    while hostile, UID SEARCH also answers 4294967296, a
                     UID beyond 32 bits.
  esearch_flood      advertises ESEARCH; while hostile, UID SEARCH answers
                     "UID ALL 1:4294967294".
  tag_flood          while hostile, before answering the first UID FETCH of
                     a connection, sends ~50 MB of tagged completions for
                     tags never sent, each tag different.
  body_flood         while hostile, a fetch of BODY.PEEK[] is answered with
                     ~400 MB of BODY[] responses of 4 MB each: 90 for the
                     first UID asked, 10 for UIDs never asked for, then the
                     real answers.
  trickle            while hostile, every UID FETCH is answered one byte a
                     second, forever (the real answer, then untagged OKs).
  uid_above_uidnext  while hostile, EXAMINE and STATUS say UIDNEXT 4 but
                     SEARCH and FETCH call message 3 UID 4000000000.
  uidnext_max        while hostile, EXAMINE and STATUS say UIDNEXT
                     4294967295 (the messages keep UIDs 1-3).
"""
import datetime
import email.utils
import os
import re
import socket
import sys
import threading
import time

UIDVALIDITY = 7
MODES = ("malformed_fetch", "garbage_fetch", "search_overflow", "esearch_flood", "tag_flood",
         "body_flood", "trickle", "uid_above_uidnext", "uidnext_max")
NESTING = 70
FLOOD_TAG_BYTES = 50 << 20
FLOOD_BODY_BYTES = 4 << 20
FLOOD_BODY_SAME = 90
FLOOD_BODY_UNASKED = 10
BIG_UID = 4000000000


class Part:
    """A MIME entity: its header block (CRLF-terminated lines, no blank line)
    and either a body or, for a multipart, its children."""

    def __init__(self, header, body="", children=None, boundary=None):
        self.header, self.body, self.children, self.boundary = header, body, children, boundary

    def content(self):
        """The bytes after the entity's header and its blank line."""
        if self.children is None:
            return self.body
        out = ""
        for c in self.children:
            out += f"--{self.boundary}\r\n{c.header}\r\n{c.content()}\r\n"
        return out + f"--{self.boundary}--\r\n"

    def raw(self):
        return self.header + "\r\n" + self.content()

    def structure(self, extensible=True):
        """BODYSTRUCTURE; BODY without `extensible` (no multipart parameters)."""
        if self.children is None:
            body = self.content()
            return (f'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" {len(body)} '
                    f'{body.count(chr(10))})')
        ext = f' ("BOUNDARY" "{self.boundary}")' if extensible else ""
        return ("(" + "".join(c.structure(extensible) for c in self.children) +
                f' "MIXED"{ext})')

    def part(self, path):
        """The entity at a section path ("1.1.2"); a single part's "1" is
        itself. None when there is none."""
        node = self
        for n in path.split("."):
            i = int(n)
            if node.children is None:
                if i != 1:
                    return None
                continue
            if not 1 <= i <= len(node.children):
                return None
            node = node.children[i - 1]
        return node


STARTED = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def when(uid):
    """A message's date: the same in every answer, within any backfill window."""
    return STARTED - datetime.timedelta(days=1, hours=uid)


def message(uid):
    header = (f"From: Jane Doe <jane@acme.com>\r\nTo: Alice <alice@example.com>\r\n"
              f"Subject: Hostile {uid}\r\nDate: {email.utils.format_datetime(when(uid))}\r\n"
              f"Message-ID: <h{uid}@acme.com>\r\nMIME-Version: 1.0\r\n")
    text = f"Hello from Acme, message {uid}.\r\n"
    if uid != 2 or MODE != "malformed_fetch":
        return Part(header + "Content-Type: text/plain; charset=us-ascii\r\n", text)
    node = Part("Content-Type: text/plain; charset=us-ascii\r\n", text)
    for level in range(NESTING, 0, -1):
        b = f"nest{level}"
        h = header if level == 1 else ""
        node = Part(h + f'Content-Type: multipart/mixed; boundary="{b}"\r\n', children=[node],
                    boundary=b)
    return node


def log_line(text):
    with open(LOG, "a") as lf:
        lf.write(text + "\n")


def hostile():
    return not os.path.exists(CONTROL)


def mailbox():
    """{uid: Part} as the server shows it now, and its UIDNEXT."""
    if not hostile():
        return {u: message(u) for u in (1, 2, 3, 4)}, 5
    msgs = {u: message(u) for u in (1, 2, 3)}
    if MODE == "uid_above_uidnext":
        return {1: msgs[1], 2: msgs[2], BIG_UID: msgs[3]}, 4
    if MODE == "uidnext_max":
        return msgs, 4294967295
    return msgs, 4


def uids_of(spec, existing):
    """The UIDs of `existing` in a UID set ("1:3,7", "4:*"); as RFC 3501 has
    it, "n:*" holds the highest UID even when n is above it."""
    out = set()
    top = max(existing) if existing else 0
    for part in spec.split(","):
        a, _, b = part.partition(":")
        lo = top if a == "*" else int(a)
        hi = lo if not b else (top if b == "*" else int(b))
        lo, hi = min(lo, hi), max(lo, hi)
        out.update(u for u in existing if lo <= u <= hi)
    return sorted(out)


def uid_ranges(uids):
    out, run = [], []
    for u in uids:
        if run and u == run[-1] + 1:
            run.append(u)
            continue
        if run:
            out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [u]
    if run:
        out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


ITEM = re.compile(r"BODY(?:\.PEEK)?\[[^\]]*\](?:<\d+\.\d+>)?|[A-Z0-9.\-]+", re.I)


def section_bytes(part, section):
    """The bytes of a section of a message, or None."""
    s = section.upper()
    raw = part.raw()
    if s == "":
        return raw
    if s == "HEADER":
        return part.header + "\r\n"
    if s == "TEXT":
        return part.content()
    if s.startswith("HEADER.FIELDS"):
        names = re.findall(r"[A-Z0-9\-]+", s[len("HEADER.FIELDS"):])
        out = ""
        for line in re.findall(r"^[^\r\n]*\r\n", part.header, re.M):
            if line.split(":", 1)[0].strip().upper() in names:
                out += line
        return out + "\r\n"
    m = re.fullmatch(r"([0-9.]+?)(?:\.(MIME))?", s)
    if not m:
        return None
    sub = part.part(m.group(1))
    if sub is None:
        return None
    if m.group(2):
        return sub.header + "\r\n"
    return sub.content()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def envelope(part):
    h = {}
    for line in part.header.split("\r\n"):
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()

    def addr(v):
        m = re.search(r"<([^@>]+)@([^>]+)>", v)
        return f"((NIL NIL {quote(m.group(1))} {quote(m.group(2))}))"
    return (f"({quote(h['date'])} {quote(h['subject'])} {addr(h['from'])} {addr(h['from'])} "
            f"{addr(h['from'])} {addr(h['to'])} NIL NIL NIL {quote(h['message-id'])})")


def fetch_response(seq, uid, part, items):
    """One FETCH response (bytes) answering `items` for a message."""
    out = [f"* {seq} FETCH (UID {uid}".encode()]
    for item in items:
        up = item.upper()
        if up == "UID":
            continue
        if up == "FLAGS":
            out.append(b" FLAGS (\\Seen)")
        elif up == "RFC822.SIZE":
            out.append(f" RFC822.SIZE {len(part.raw())}".encode())
        elif up == "INTERNALDATE":
            out.append(f' INTERNALDATE "{when(uid % 1000).strftime("%d-%b-%Y %H:%M:%S +0000")}"'
                       .encode())
        elif up == "BODYSTRUCTURE":
            out.append(f" BODYSTRUCTURE {part.structure()}".encode())
        elif up == "BODY":
            out.append(f" BODY {part.structure(False)}".encode())
        elif up == "ENVELOPE":
            out.append(f" ENVELOPE {envelope(part)}".encode())
        elif up in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
            data = section_bytes(part, {"RFC822": "", "RFC822.HEADER": "HEADER",
                                        "RFC822.TEXT": "TEXT"}[up]).encode()
            out.append(f" {up} {{{len(data)}}}\r\n".encode() + data)
        elif up.startswith("BODY"):
            m = re.fullmatch(r"BODY(?:\.PEEK)?\[([^\]]*)\](?:<(\d+)\.(\d+)>)?", item, re.I)
            if not m:
                continue
            data = section_bytes(part, m.group(1))
            name = f"BODY[{m.group(1)}]"
            if data is None:
                out.append(f" {name} NIL".encode())
                continue
            data = data.encode()
            if m.group(2) is not None:
                start, count = int(m.group(2)), int(m.group(3))
                data = data[start:start + count]
                name += f"<{start}>"
            out.append(f" {name} {{{len(data)}}}\r\n".encode() + data)
    out.append(b")\r\n")
    return b"".join(out)


_tag_flood = None
_body_flood = None


def tag_flood_chunks():
    """~50 MB of tagged OKs, every tag different: chunks of one template in
    which each chunk puts its own two letters after the X."""
    global _tag_flood
    if _tag_flood is None:
        _tag_flood = b"".join(b"XQQ%05d OK done\r\n" % i for i in range(58000))
    chunks = FLOOD_TAG_BYTES // len(_tag_flood) + 1
    for k in range(chunks):
        code = bytes([65 + k // 26, 65 + k % 26])
        yield _tag_flood.replace(b"XQQ", b"X" + code)


def body_flood_literal():
    """A 4 MB message: message 1's header and a long text."""
    global _body_flood
    if _body_flood is None:
        head = message(1).header.encode() + b"\r\n"
        line = b"x" * 78 + b"\r\n"
        body = line * ((FLOOD_BODY_BYTES - len(head)) // len(line))
        data = head + body
        data += b"y" * (FLOOD_BODY_BYTES - len(data))
        _body_flood = data
    return _body_flood


def trickle(send, data):
    log_line("HOSTILE trickle")
    while True:
        for i in range(len(data)):
            send(data[i:i + 1])
            time.sleep(1)
        data = b"* OK still fetching\r\n"


def serve(conn):
    selected = False
    flooded_tags = False
    rf = conn.makefile("rb")

    def send(b):
        conn.sendall(b.encode() if isinstance(b, str) else b)

    caps = "IMAP4rev1" + (" ESEARCH" if MODE == "esearch_flood" else "")
    send(f"* OK [CAPABILITY {caps}] hostile server ready\r\n")
    while True:
        line = rf.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        log_line(re.sub(r"^(\S+ LOGIN \S+) .*", r"\1 <pw>", text))
        tag, _, rest = text.partition(" ")
        cmd = rest.split(" ", 1)[0].upper()
        arg = rest[len(cmd):].strip()
        msgs, uidnext = mailbox()
        uids = sorted(msgs)
        if cmd == "CAPABILITY":
            send(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n")
        elif cmd == "LOGIN":
            send(f"{tag} OK [CAPABILITY {caps}] logged in\r\n")
        elif cmd == "NOOP":
            send(f"{tag} OK done\r\n")
        elif cmd == "LOGOUT":
            send(f"* BYE logging out\r\n{tag} OK bye\r\n")
            return
        elif cmd == "LIST":
            send(f'* LIST () "/" INBOX\r\n{tag} OK done\r\n')
        elif cmd in ("STATUS", "EXAMINE", "SELECT"):
            name = arg.split(" ", 1)[0].strip('"')
            if name.upper() != "INBOX":
                send(f"{tag} NO [NONEXISTENT] no such folder\r\n")
                continue
            if MODE in ("uid_above_uidnext", "uidnext_max") and hostile():
                log_line(f"HOSTILE UIDNEXT {uidnext} with UIDs {' '.join(map(str, uids))}")
            if cmd == "STATUS":
                send(f"* STATUS INBOX (MESSAGES {len(uids)} UIDNEXT {uidnext} "
                     f"UIDVALIDITY {UIDVALIDITY})\r\n{tag} OK done\r\n")
            else:
                selected = True
                send(f"* FLAGS (\\Seen)\r\n* {len(uids)} EXISTS\r\n* 0 RECENT\r\n"
                     f"* OK [UIDVALIDITY {UIDVALIDITY}] UIDs valid\r\n"
                     f"* OK [UIDNEXT {uidnext}] next\r\n"
                     f"{tag} OK [{'READ-ONLY' if cmd == 'EXAMINE' else 'READ-WRITE'}] done\r\n")
        elif cmd == "UID" and selected:
            sub = arg.split(" ", 1)[0].upper()
            if sub == "SEARCH":
                m = re.search(r"\bUID (\S+)", arg, re.I)
                found = uids_of(m.group(1), uids) if m else uids
                esearch = re.search(r"\bRETURN \(", arg, re.I) is not None
                if MODE == "esearch_flood" and hostile():
                    log_line("HOSTILE ESEARCH ALL 1:4294967294")
                    send(f'* ESEARCH (TAG "{tag}") UID ALL 1:4294967294\r\n{tag} OK done\r\n')
                elif MODE == "search_overflow" and hostile():
                    log_line("HOSTILE SEARCH 4294967296")
                    send(f"* SEARCH {' '.join(map(str, found))} 4294967296\r\n{tag} OK done\r\n")
                elif esearch:
                    all_ = f" ALL {uid_ranges(found)}" if found else ""
                    send(f'* ESEARCH (TAG "{tag}") UID{all_}\r\n{tag} OK done\r\n')
                else:
                    send(f"* SEARCH {' '.join(map(str, found))}\r\n{tag} OK done\r\n")
            elif sub == "FETCH":
                _, spec, items_text = (arg.split(" ", 2) + [""])[:3]
                items = ITEM.findall(items_text)
                asked = uids_of(spec, uids) if uids else []
                out = []
                if MODE == "tag_flood" and hostile() and not flooded_tags:
                    flooded_tags = True
                    log_line("HOSTILE tag flood")
                    for chunk in tag_flood_chunks():
                        send(chunk)
                whole = any(re.fullmatch(r"BODY\.PEEK\[\]", i, re.I) for i in items)
                if MODE == "body_flood" and hostile() and whole and asked:
                    log_line(f"HOSTILE body flood of UID {asked[0]}")
                    data = body_flood_literal()
                    for i in range(FLOOD_BODY_SAME + FLOOD_BODY_UNASKED):
                        u = asked[0] if i < FLOOD_BODY_SAME else 900 + i
                        send(f"* {uids.index(asked[0]) + 1} FETCH (UID {u} BODY[] "
                             f"{{{len(data)}}}\r\n".encode())
                        send(data)
                        send(b")\r\n")
                for u in asked:
                    seq = uids.index(u) + 1
                    if MODE == "garbage_fetch" and hostile() and u == 2:
                        log_line("HOSTILE garbage for UID 2")
                        out.append(f'* {seq} FETCH (UID {u} BODYSTRUCTURE ("TEXT" ))))\r\n'
                                   .encode())
                        continue
                    if MODE == "malformed_fetch" and u == 2 and "BODYSTRUCTURE" in \
                            (i.upper() for i in items):
                        log_line(f"HOSTILE {NESTING}-level BODYSTRUCTURE for UID 2")
                    out.append(fetch_response(seq, u, msgs[u], items))
                out.append(f"{tag} OK done\r\n".encode())
                if MODE == "trickle" and hostile():
                    trickle(send, b"".join(out))
                send(b"".join(out))
            else:
                send(f"{tag} BAD unknown UID command\r\n")
        else:
            send(f"{tag} BAD unknown command\r\n")


def serve_safely(conn):
    try:
        serve(conn)
    except OSError:
        pass  # the client went away (or was killed) mid-answer
    finally:
        conn.close()


def main():
    global LOG, MODE, CONTROL
    if len(sys.argv) != 4 or sys.argv[2] not in MODES:
        sys.exit("usage: hostile_imap.py LOG MODE CONTROL; MODE one of " + ", ".join(MODES))
    LOG, MODE, CONTROL = sys.argv[1:4]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print(f"PORT={srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_safely, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
