#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The peer for the parser benchmark: Python's `email` package on the same files.

  bench_parse_peer.py MAILDIR [--policy compat32|default] [--repeat N] [--limit N]

Reads every message file under MAILDIR (cur/ and new/ of the Maildir and of any
Maildir++ sub-folder such as .Sent) into memory first, then times, per message,
the work a capture parser does: parse the bytes, read From, To, Cc (addresses
split), Date (to a datetime), Subject (RFC 2047 decoded), Message-ID, walk the
MIME tree and decode the first text/plain part (else the first text/html part) to
str with its charset. Attachments are not decoded.

compat32 (the default) is the faster policy; `default` (EmailPolicy) decodes
headers itself and is slower; both are reasonable peers, say which in a report.

Prints one JSON line: tool, policy, python, files, messages, bytes, seconds,
messages_per_s, mb_per_s (MB = 10^6 bytes), errors. The best of --repeat runs is
reported, as a C++ benchmark reports its best or mean time.
"""

import argparse
import email
import email.policy
import json
import os
import platform
import sys
import time
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime


def message_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) in ("cur", "new"):
            for name in sorted(filenames):
                yield os.path.join(dirpath, name)


def text_of(part):
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def parse_compat32(raw):
    msg = email.message_from_bytes(raw)
    subject = msg.get("Subject", "")
    try:
        subject = str(make_header(decode_header(subject)))
    except Exception:
        pass
    people = getaddresses(msg.get_all("From", []) + msg.get_all("To", []) +
                          msg.get_all("Cc", []))
    date = msg.get("Date")
    try:
        when = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        when = None
    mid = msg.get("Message-ID", "")
    plain = html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_filename():
            continue
        sub = part.get_content_subtype()
        if sub == "plain" and plain is None:
            plain = part
            break
        if sub == "html" and html is None:
            html = part
    body = text_of(plain or html) if (plain or html) is not None else ""
    return subject, people, when, mid, body


def parse_default(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(msg.get("Subject", ""))
    people = []
    for name in ("From", "To", "Cc"):
        h = msg.get(name)
        if h is not None:
            people.extend((a.display_name, a.addr_spec) for a in h.addresses)
    h = msg.get("Date")
    when = getattr(h, "datetime", None) if h is not None else None
    mid = str(msg.get("Message-ID", ""))
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return subject, people, when, mid, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("maildir")
    ap.add_argument("--policy", choices=["compat32", "default"], default="compat32")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="parse at most N files")
    args = ap.parse_args()

    files = list(message_files(args.maildir))
    if args.limit:
        files = files[:args.limit]
    if not files:
        sys.exit(f"no message files under {args.maildir}")
    blobs = []
    for path in files:
        with open(path, "rb") as f:
            blobs.append(f.read())
    total = sum(len(b) for b in blobs)
    parse = parse_compat32 if args.policy == "compat32" else parse_default

    best, errors, chars = None, 0, 0
    for _ in range(max(1, args.repeat)):
        errors = chars = 0
        start = time.perf_counter()
        for raw in blobs:
            try:
                chars += len(parse(raw)[4])
            except Exception:
                errors += 1
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)

    print(json.dumps({
        "tool": "python-email", "policy": args.policy,
        "python": platform.python_version(), "files": len(files),
        "messages": len(blobs), "bytes": total, "seconds": round(best, 4),
        "messages_per_s": round(len(blobs) / best, 1),
        "mb_per_s": round(total / best / 1e6, 2), "errors": errors, "text_chars": chars,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
