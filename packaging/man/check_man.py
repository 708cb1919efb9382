#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks of the man pages, run by ctest (packaging/man/CMakeLists.txt).

check_man.py warnings --build DIR --scdoc PATH PAGE...
    Builds the `man` target, then renders each built PAGE with
    `man --warnings -l` (MANWIDTH=80, LC_ALL=C.UTF-8, output to /dev/null).
    Fails on anything printed to standard error, or a non-zero exit.

check_man.py keys --config-source config.cpp PAGE.scd
    Every key that config.cpp accepts (the lists given to its check_keys()
    calls, one per table) is documented in PAGE.scd: each table has a
    section "## [table]" ("## [[mailbox]]" for the array of tables), and each
    key is written bold (*key*) inside its table's section.
"""
import argparse
import os
import re
import subprocess
import sys


def warnings(args):
    if not args.scdoc:
        print("scdoc was not found when configuring: install it "
              "(packaging/install-deps.sh) and configure again", file=sys.stderr)
        return 1
    build = subprocess.run(["cmake", "--build", args.build, "--target", "man"],
                           capture_output=True, text=True)
    if build.returncode != 0:
        print(build.stdout + build.stderr, file=sys.stderr)
        return 1
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    failed = 0
    for page in args.pages:
        r = subprocess.run(["man", "--warnings", "-l", page], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or r.stderr:
            failed += 1
            print(f"{page}: man exited {r.returncode}:\n{r.stderr}", file=sys.stderr)
        else:
            print(f"{page}: no warnings")
    return 1 if failed else 0


# check_keys(t, "mailbox.imap", label, {"url", "username", ...});
CHECK_KEYS = re.compile(r'check_keys\(\s*[^,]+,\s*"([^"]*)"\s*,\s*[^,]+,\s*\{([^}]*)\}\s*\)',
                        re.S)


def accepted_keys(source):
    """{table: [keys]} from config.cpp; "" is the top level."""
    tables = {}
    for m in CHECK_KEYS.finditer(source):
        tables[m.group(1)] = re.findall(r'"([^"]+)"', m.group(2))
    return tables


def sections(page):
    """{heading: text} of the page's "## " sections."""
    out, name, lines = {}, None, []
    for line in page.splitlines():
        if line.startswith("#"):
            if name is not None:
                out[name] = "\n".join(lines)
            name = line[3:].strip() if line.startswith("## ") else None
            lines = []
        elif name is not None:
            lines.append(line)
    if name is not None:
        out[name] = "\n".join(lines)
    return out


def keys(args):
    with open(args.config_source, encoding="utf-8") as f:
        tables = accepted_keys(f.read())
    with open(args.pages[0], encoding="utf-8") as f:
        page = sections(f.read())
    # The parser's own tables, so that a change of its shape that the pattern
    # no longer sees fails here instead of checking nothing.
    expected = {"", "store", "api", "identity", "capture", "mailbox", "mailbox.imap",
                "mailbox.caldav"}
    problems = []
    if not expected <= set(tables):
        problems.append("config.cpp: check_keys() calls not found for " +
                        ", ".join(sorted(repr(t) for t in expected - set(tables))) +
                        " (update check_man.py's pattern)")
    count = 0
    for table, names in sorted(tables.items()):
        for key in names:
            full = f"{table}.{key}" if table else key
            if full in tables:
                continue  # a table: it has a section of its own
            heading = "[[mailbox]]" if table == "mailbox" else f"[{table}]"
            if heading not in page:
                problems.append(f"{args.pages[0]}: no section \"## {heading}\" for {full}")
                continue
            count += 1
            if not re.search(r"\*" + re.escape(key) + r"\*", page[heading]):
                problems.append(f"{args.pages[0]}: {full} is not documented in \"## {heading}\"")
    for table in tables:
        if table and table != "mailbox" and f"[{table}]" not in page:
            problems.append(f"{args.pages[0]}: no section \"## [{table}]\"")
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{count} keys of {len(tables)} tables documented")
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["warnings", "keys"])
    p.add_argument("--build")
    p.add_argument("--scdoc", default="")
    p.add_argument("--config-source")
    p.add_argument("pages", nargs="+")
    args = p.parse_args()
    return warnings(args) if args.what == "warnings" else keys(args)


if __name__ == "__main__":
    sys.exit(main())
