#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A throwaway Dovecot on 127.0.0.1 filled with a generated mailbox.

Shared by the demo (packaging/demo.sh), the crash test and the IMAP benchmark:
starts tests/servers/dovecot.sh in DIR/dovecot, generates --count messages with
tests/bench/gen_mailbox.py (INBOX and Sent, plus the CRM directory CSVs in
DIR/crm), delivers them into the Maildir as the mail user, lets Dovecot index
them, and writes the password to DIR/imap.pass (mode 0600).

As a command it prints shell-sourceable lines (dovecot.sh's, plus CRM_DIR,
PASSWORD_FILE and MAILBOX_BYTES); stop the server with
`tests/servers/dovecot.sh stop DIR/dovecot`:

  loopback_mailbox.py DIR [--count 400] [--seed 1]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOVECOT_SH = os.path.join(ROOT, "tests", "servers", "dovecot.sh")


def start(work, compress=True):
    """Starts Dovecot in work/dovecot; returns dovecot.sh's variables.

    compress=False: the server does not offer COMPRESS=DEFLATE (a benchmark
    peer such as mbsync would otherwise compress over loopback)."""
    env = {}
    cmd = ["bash", DOVECOT_SH, "start", os.path.join(work, "dovecot")]
    if not compress:
        cmd.append("--no-compress")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value
    return env


def stop(work):
    subprocess.run(["bash", DOVECOT_SH, "stop", os.path.join(work, "dovecot")],
                   capture_output=True)


def fill(env, work, count, seed=1):
    """Generates and delivers `count` messages; returns (crm_dir, bytes)."""
    gen, crm = os.path.join(work, "generated"), os.path.join(work, "crm")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "gen_mailbox.py"),
                    "--out", gen, "--count", str(count), "--seed", str(seed), "--csv-dir", crm,
                    "--folders", "inbox,sent",
                    "--now", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())],
                   check=True, capture_output=True)
    maildir = env["MAILDIR"]
    total = 0
    for src, dst in ((gen, maildir), (os.path.join(gen, ".Sent"), os.path.join(maildir, ".Sent"))):
        os.makedirs(os.path.join(dst, "cur"), exist_ok=True)
        for sub in ("cur", "new"):
            d = os.path.join(src, sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                total += os.path.getsize(os.path.join(d, name))
                shutil.copy(os.path.join(d, name), os.path.join(dst, "cur", name))
    if os.geteuid() == 0:
        uid, gid = int(env["MAIL_UID"]), int(env["MAIL_GID"])
        for base, dirs, files in os.walk(maildir):
            for n in dirs + files:
                os.chown(os.path.join(base, n), uid, gid)
    # Let Dovecot index both folders before any client asks.
    subprocess.run(["doveadm", "-c", env["CONF"], "mailbox", "status", "-u", env["IMAP_USER"],
                    "messages", "INBOX", "Sent"], check=True, capture_output=True)
    return crm, total


def password_file(env, work):
    path = os.path.join(work, "imap.pass")
    with open(path, "w") as f:
        f.write(env["IMAP_PASSWORD"] + "\n")
    os.chmod(path, 0o600)
    return path


def config_text(env, db, work, password, batch_size=None):
    """A crm-captured configuration for alice@example.com on this server."""
    extra = f"batch_size = {batch_size}\n" if batch_size else ""
    return f"""[store]
path = "{db}"
[api]
socket = "{work}/api.sock"
[identity]
internal_domains = ["example.com"]
[[mailbox]]
name = "alice"
owner = ["alice@example.com"]
[mailbox.imap]
url = "imap://127.0.0.1:{env['IMAP_PORT']}"
username = "{env['IMAP_USER']}"
password_file = "{password}"
ca_file = "{env['CA_FILE']}"
{extra}"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    work = os.path.abspath(args.dir)
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    env = start(work)
    try:
        crm, total = fill(env, work, args.count, args.seed)
        env.update(CRM_DIR=crm, PASSWORD_FILE=password_file(env, work), MAILBOX_BYTES=str(total))
    except BaseException:
        stop(work)
        raise
    for key, value in env.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
