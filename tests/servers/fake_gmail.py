#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted fake Gmail IMAP server, for what a real server will not do here.

Gmail keeps every message once in "[Gmail]/All Mail" and shows labels as
folders ("INBOX", "[Gmail]/Sent Mail") holding the same messages again. It
offers X-GM-EXT-1 (X-GM-MSGID, X-GM-LABELS). This server speaks just enough
IMAP4rev1 for crm-captured's sync over plain TCP on 127.0.0.1: CAPABILITY,
LOGIN, LIST, STATUS, EXAMINE, UID SEARCH, UID FETCH (RFC822.SIZE, INTERNALDATE,
ENVELOPE, BODYSTRUCTURE, X-GM-MSGID, X-GM-LABELS, BODY.PEEK[HEADER.FIELDS
(MESSAGE-ID)], BODY.PEEK[]), NOOP, LOGOUT.
Every command line it receives is appended to LOG (one per line) so a test
can check which folders were opened, and so is "SERVED <X-GM-MSGID>" for every
message whose bytes it sent.

  fake_gmail.py LOG [UIDVALIDITY [UID_OFFSET [REFUSE [REFUSE_AT]]]]
      prints "PORT=n" once listening; serves until killed. UIDVALIDITY
      (default 11) and UID_OFFSET (default 0, added to every UID) let a test
      play a mailbox whose UIDs were renumbered. REFUSE, an X-GM-MSGID (default
      0, none), is a message whose bytes it never sends: a fetch of them gets
      the others, then Gmail's "NO Some messages could not be FETCHed".
      REFUSE_AT "meta" refuses it in any fetch instead (its BODYSTRUCTURE too,
      as for a message Gmail cannot read); "body" (default), its bytes only.
"""
import re
import socket
import sys
import threading

MESSAGES = {
    # uid in All Mail: (X-GM-MSGID, labels, raw)
    1: (1001, ["\\Inbox"], "From: Jane Doe <jane@acme.com>\r\nTo: user@gmail-test.example\r\n"
        "Subject: Renewal\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <g1@acme.com>\r\n\r\nHello from Acme.\r\n"),
    2: (1002, ["\\Inbox"], "From: Hank <hank@globex.com>\r\nTo: user@gmail-test.example\r\n"
        "Subject: Pilot\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <g2@globex.com>\r\n\r\nHello from Globex.\r\n"),
    # Sent from a shared address, not the owner's: the \Sent label says it
    # is the owner's mail going out.
    3: (1003, ["\\Sent"], "From: Sales <sales@gmail-test.example>\r\nTo: peter@initech.com\r\n"
        "Subject: Quote\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\n"
        "Message-ID: <g3@gmail-test.example>\r\n\r\nThe quote.\r\n"),
    # No Message-ID: only X-GM-MSGID tells it apart after a renumbering.
    4: (1004, ["\\Inbox"], "From: Jane Doe <jane@acme.com>\r\nTo: user@gmail-test.example\r\n"
        "Subject: Follow-up\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n"
        "No Message-ID here.\r\n"),
    # A draft: in All Mail, but never an activity.
    5: (1005, ["\\Draft"], "From: user@gmail-test.example\r\nTo: hank@globex.com\r\n"
        "Subject: Draft offer\r\nDate: Mon, 23 Nov 2026 13:00:00 +0000\r\n"
        "Message-ID: <g5@gmail-test.example>\r\n\r\nNot sent yet.\r\n"),
}
FOLDERS = {
    "INBOX": ("(\\HasNoChildren)", [1, 2, 4]),
    "[Gmail]/All Mail": ("(\\All \\HasNoChildren)", [1, 2, 3, 4, 5]),
    "[Gmail]/Sent Mail": ("(\\Sent \\HasNoChildren)", [3]),
    "[Gmail]/Drafts": ("(\\Drafts \\HasNoChildren)", [5]),
    "[Gmail]/Spam": ("(\\Junk \\HasNoChildren)", []),
}
UIDVALIDITY = 11
UID_OFFSET = 0
REFUSE = 0
REFUSE_AT = "body"
CAPS = "IMAP4rev1 X-GM-EXT-1 UIDPLUS SPECIAL-USE"


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def envelope(raw):
    h = {}
    for line in raw.split("\r\n\r\n", 1)[0].split("\r\n"):
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()

    def addr(v):
        m = re.search(r"<([^@>]+)@([^>]+)>", v) or re.search(r"([^\s@]+)@(\S+)", v)
        return f"((NIL NIL {quote(m.group(1))} {quote(m.group(2))}))"
    mid = quote(h["message-id"]) if "message-id" in h else "NIL"
    return (f"({quote(h['date'])} {quote(h['subject'])} {addr(h['from'])} {addr(h['from'])} "
            f"{addr(h['from'])} {addr(h['to'])} NIL NIL NIL {mid})")


def bodystructure(raw):
    body = raw.split("\r\n\r\n", 1)[1]
    return f'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" {len(body)} {body.count(chr(10))})'


def uids_of(spec, existing):
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition(":")
        lo = max(existing) if a == "*" else int(a)
        hi = lo if not b else (max(existing) if b == "*" else int(b))
        lo, hi = min(lo, hi), max(lo, hi)
        out.update(u for u in existing if lo <= u <= hi)
    return sorted(out)


def serve(conn, log):
    f = conn.makefile("rwb", buffering=0)
    selected = None

    def send(s):
        f.write(s.encode() if isinstance(s, str) else s)

    send(f"* OK [CAPABILITY {CAPS}] Gimap ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        with open(log, "a") as lf:
            lf.write(re.sub(r"^(\S+ LOGIN \S+) .*", r"\1 <pw>", text) + "\n")
        tag, _, rest = text.partition(" ")
        cmd = rest.split(" ", 1)[0].upper()
        arg = rest[len(cmd):].strip()
        if cmd == "CAPABILITY":
            send(f"* CAPABILITY {CAPS}\r\n{tag} OK done\r\n")
        elif cmd == "LOGIN":
            send(f"{tag} OK [CAPABILITY {CAPS}] user@gmail-test.example authenticated\r\n")
        elif cmd == "NOOP":
            send(f"{tag} OK done\r\n")
        elif cmd == "LOGOUT":
            send(f"* BYE LOGOUT Requested\r\n{tag} OK bye\r\n")
            return
        elif cmd == "LIST":
            for name, (attrs, _) in FOLDERS.items():
                send(f'* LIST {attrs} "/" {quote(name)}\r\n')
            send(f"{tag} OK done\r\n")
        elif cmd in ("STATUS", "EXAMINE"):
            m = re.match(r'"((?:[^"\\]|\\.)*)"|(\S+)', arg)
            name = (m.group(1) or m.group(2)).replace('\\"', '"')
            if name not in FOLDERS:
                send(f"{tag} NO [NONEXISTENT] Unknown Mailbox\r\n")
                continue
            uids = [u + UID_OFFSET for u in FOLDERS[name][1]]
            nxt = (max(uids) if uids else UID_OFFSET) + 1
            if cmd == "STATUS":
                send(f"* STATUS {quote(name)} (MESSAGES {len(uids)} UIDNEXT {nxt} "
                     f"UIDVALIDITY {UIDVALIDITY})\r\n{tag} OK done\r\n")
            else:
                selected = name
                send(f"* {len(uids)} EXISTS\r\n* OK [UIDVALIDITY {UIDVALIDITY}] UIDs valid\r\n"
                     f"* OK [UIDNEXT {nxt}] next\r\n{tag} OK [READ-ONLY] {name} selected\r\n")
        elif cmd == "UID" and selected:
            sub = arg.split(" ", 1)[0].upper()
            uids = [u + UID_OFFSET for u in FOLDERS[selected][1]]
            if sub == "SEARCH":
                m = re.search(r"UID (\S+)", arg)
                found = uids_of(m.group(1), uids) if m and uids else uids
                send(f"* SEARCH {' '.join(map(str, found))}\r\n{tag} OK done\r\n")
            elif sub == "FETCH":
                spec = arg.split(" ")[1]
                refused = False
                for u in uids_of(spec, uids) if uids else []:
                    gm, labels, raw = MESSAGES[u - UID_OFFSET]
                    seq = uids.index(u) + 1
                    if gm == REFUSE and (REFUSE_AT == "meta" or "BODY.PEEK[]" in arg):
                        refused = True
                    elif "BODY.PEEK[]" in arg:
                        data = raw.encode()
                        with open(log, "a") as lf:
                            lf.write(f"SERVED {gm}\n")
                        send(f"* {seq} FETCH (UID {u} BODY[] {{{len(data)}}}\r\n".encode() + data +
                             b")\r\n")
                    else:
                        # The items asked for, in Gmail's order.
                        items = f"UID {u}"
                        if "RFC822.SIZE" in arg:
                            items += f" RFC822.SIZE {len(raw)}"
                        if "INTERNALDATE" in arg:
                            items += ' INTERNALDATE "23-Nov-2026 09:00:00 +0000"'
                        if "X-GM-MSGID" in arg:
                            items += f" X-GM-MSGID {gm}"
                        if "X-GM-LABELS" in arg:
                            # As Gmail sends them: system labels as flags.
                            items += " X-GM-LABELS (" + " ".join(
                                x if x.startswith("\\") else quote(x) for x in labels) + ")"
                        if "ENVELOPE" in arg:
                            items += f" ENVELOPE {envelope(raw)}"
                        if "BODYSTRUCTURE" in arg:
                            items += f" BODYSTRUCTURE {bodystructure(raw)}"
                        data = b""
                        if "HEADER.FIELDS (MESSAGE-ID)" in arg.upper():
                            field = re.search(r"^Message-ID:.*\r\n", raw, re.M | re.I)
                            data = ((field.group(0) if field else "") + "\r\n").encode()
                            items += f" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{len(data)}}}\r\n"
                        send(f"* {seq} FETCH ({items}".encode() + data + b")\r\n")
                if refused:
                    send(f"{tag} NO Some messages could not be FETCHed (Failure)\r\n")
                else:
                    send(f"{tag} OK Success\r\n")
            else:
                send(f"{tag} BAD unknown UID command\r\n")
        else:
            send(f"{tag} BAD Unknown command\r\n")


def main():
    global UIDVALIDITY, UID_OFFSET, REFUSE, REFUSE_AT
    log = sys.argv[1]
    if len(sys.argv) > 2:
        UIDVALIDITY = int(sys.argv[2])
    if len(sys.argv) > 3:
        UID_OFFSET = int(sys.argv[3])
    if len(sys.argv) > 4:
        REFUSE = int(sys.argv[4])
    if len(sys.argv) > 5:
        REFUSE_AT = sys.argv[5]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print(f"PORT={srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, log), daemon=True).start()


if __name__ == "__main__":
    main()
