#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks of the systemd units, run by ctest (packaging/systemd/CMakeLists.txt).

check_units.py verify --build DIR --binary PATH
    Copies the units to a scratch directory with ExecStart pointing at the
    built crm-captured, builds the man pages (their Documentation= must
    resolve: MANPATH points at them), and runs `systemd-analyze verify` on the
    system service, an instance of the template and (with --user) the user
    service. It exits 0 on unknown keys, so anything printed fails. The
    sysusers.d file is applied to an empty root with systemd-sysusers --root.

check_units.py security --max 2.0
    `systemd-analyze security --offline=true` of the system service and a
    template instance; fails when an overall exposure is above --max.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_UNITS = ["crm-captured.service", "crm-captured@.service"]
CHECKED = ["crm-captured.service", "crm-captured@test.service"]


def copy_units(scratch, binary):
    for name in SYSTEM_UNITS:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(scratch, name), "w", encoding="utf-8") as f:
            f.write(text.replace("/usr/bin/crm-captured", binary))
    user = os.path.join(scratch, "user")
    os.mkdir(user)
    with open(os.path.join(HERE, "user", "crm-captured.service"), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(user, "crm-captured.service"), "w", encoding="utf-8") as f:
        f.write(text.replace("/usr/bin/crm-captured", binary))


def run(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def verify(args):
    failed = False
    build = subprocess.run(["cmake", "--build", args.build, "--target", "man"],
                           capture_output=True, text=True)
    if build.returncode != 0:
        print("cannot build the man pages (scdoc missing?):\n" + build.stdout + build.stderr,
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        copy_units(scratch, os.path.abspath(args.binary))
        man = os.path.join(scratch, "man")
        for page in ("crm-capture.1", "crm-capture.toml.5", "crm-captured.8"):
            section = os.path.join(man, "man" + page[-1])
            os.makedirs(section, exist_ok=True)
            shutil.copy(os.path.join(args.build, "packaging", "man", page), section)
        runtime = os.path.join(scratch, "runtime")
        os.mkdir(runtime, 0o700)
        env = dict(os.environ, MANPATH=man, XDG_RUNTIME_DIR=runtime, SYSTEMD_PAGER="")
        for unit in CHECKED:
            rc, out = run(["systemd-analyze", "verify", unit], scratch, env)
            print(f"verify {unit}: exit {rc}" + (f"\n{out}" if out else ", nothing printed"))
            failed |= rc != 0 or out != ""
        rc, out = run(["systemd-analyze", "--user", "verify", "crm-captured.service"],
                      os.path.join(scratch, "user"), env)
        print(f"verify --user crm-captured.service: exit {rc}" +
              (f"\n{out}" if out else ", nothing printed"))
        failed |= rc != 0 or out != ""
        root = os.path.join(scratch, "root")
        os.makedirs(os.path.join(root, "etc"))
        rc, out = run(["systemd-sysusers", "--root=" + root,
                       os.path.join(HERE, "crm-capture.sysusers")], scratch)
        with open(os.path.join(root, "etc", "passwd"), encoding="utf-8") as f:
            passwd = f.read() if rc == 0 else ""
        ok = rc == 0 and re.search(r"^crm-capture:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
        print(f"systemd-sysusers: exit {rc}: " + ("crm-capture created" if ok else out + passwd))
        failed |= not ok
    return 1 if failed else 0


def security(args):
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        copy_units(scratch, "/usr/bin/crm-captured")
        for unit in CHECKED:
            rc, out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
                          scratch, dict(os.environ, SYSTEMD_COLORS="0"))
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
            if rc != 0 or not m:
                print(f"security {unit}: exit {rc}\n{out}", file=sys.stderr)
                failed = True
                continue
            score = float(m.group(1))
            print(f"security {unit}: exposure {score} (at most {args.max})")
            if score > args.max:
                print(out, file=sys.stderr)
                failed = True
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["verify", "security"])
    p.add_argument("--build")
    p.add_argument("--binary")
    p.add_argument("--max", type=float, default=2.0)
    args = p.parse_args()
    return verify(args) if args.what == "verify" else security(args)


if __name__ == "__main__":
    sys.exit(main())
