#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Debian package's life on this machine, run by ctest as root
(packaging/CMakeLists.txt, test `package`).

check_package.py --workdir DIR

1. Builds the package with packaging/build-deb.sh (DIR/src kept, so a
   compiler cache can hit next time; the .deb lands in DIR).
2. lintian on the .deb: fails on any error or warning (those left are
   explained in debian/crm-capture.lintian-overrides and not printed).
3. `apt-get install ./crm-capture_VERSION_amd64.deb`; then:
   - crm-captured --check on a copy of the shipped example
     (/usr/share/doc/crm-capture/examples/crm-capture.toml) beside the
     password file it names;
   - `systemd-analyze verify` of the installed units (system service and
     socket, an instance of the template and its socket, the user units)
     prints nothing: their ExecStart= and Documentation= must resolve;
   - `man -w` finds the three pages;
   - systemd-sysusers made the system user crm-capture (no login shell);
   - no unit is enabled (debian/rules: nothing starts before a config).
4. `apt-get purge crm-capture`: no file of `dpkg -L` is left (directories
   other packages own excepted), nor any enablement state of
   deb-systemd-helper; the user crm-capture stays, as Debian does with system
   users (a uid freed could be reused and inherit files left behind, such
   as the store under /var/lib/crm-capture that the administrator keeps).

A machine where crm-capture is installed already is refused: the test would
remove what someone installed.
"""
import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


class Failed(Exception):
    pass


def run(cmd, env=None, check=True, cwd=None):
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       cwd=cwd)
    if r.stdout:
        print(r.stdout.rstrip(), flush=True)
    if check and r.returncode != 0:
        raise Failed(f"{cmd[0]} exited {r.returncode}")
    return r


def status():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "crm-capture"],
                       capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else []


def installed():
    return "installed" in status()


def known_to_dpkg():
    """Installed, half-installed or with its configuration left."""
    return status() not in ([], ["unknown", "ok", "not-installed"])


def check_installed(failures):
    # crm-captured --check on the shipped example, beside the password file it
    # names (alice.pass, relative to the file).
    example = "/usr/share/doc/crm-capture/examples/crm-capture.toml"
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "crm-capture.toml")
        shutil.copy(example, config)
        with open(os.path.join(scratch, "alice.pass"), "w", encoding="utf-8") as f:
            f.write("secret\n")
        os.chmod(os.path.join(scratch, "alice.pass"), 0o600)
        r = run(["/usr/bin/crm-captured", "--check", "--config", config], check=False)
        if r.returncode != 0 or ": OK: 1 mailbox (1 IMAP, 1 CalDAV), 2 secrets" not in r.stdout:
            failures.append(f"crm-captured --check on the example: exit {r.returncode}")
    r = run(["/usr/bin/crm-capture", "--version"], check=False)
    if r.returncode != 0:
        failures.append("crm-capture --version failed")

    # The installed units, as systemd would load them: any output fails.
    with tempfile.TemporaryDirectory() as runtime:
        env = dict(os.environ, SYSTEMD_PAGER="", XDG_RUNTIME_DIR=runtime)
        for units in (["crm-captured.socket", "crm-captured.service"],
                      ["crm-captured@test.socket", "crm-captured@test.service"]):
            r = run(["systemd-analyze", "verify"] + units, env=env, check=False)
            if r.returncode != 0 or r.stdout:
                failures.append(f"systemd-analyze verify {' '.join(units)}: exit {r.returncode}, "
                                f"{len(r.stdout.splitlines())} line(s)")
        r = run(["systemd-analyze", "--user", "verify", "crm-captured.socket",
                 "crm-captured.service"], env=env, check=False, cwd="/")
        if r.returncode != 0 or r.stdout:
            failures.append(f"systemd-analyze --user verify: exit {r.returncode}")

    for page in (["8", "crm-captured"], ["1", "crm-capture"], ["5", "crm-capture.toml"]):
        r = run(["man", "-w"] + page, check=False)
        if r.returncode != 0 or not r.stdout.strip().startswith("/usr/share/man/"):
            failures.append(f"man -w {' '.join(page)}: not installed")

    try:
        user = pwd.getpwnam("crm-capture")
        print(f"user crm-capture: uid {user.pw_uid}, home {user.pw_dir}, shell {user.pw_shell}")
        if user.pw_uid >= 1000 or not user.pw_shell.endswith("nologin"):
            failures.append("crm-capture is not a system user without a login shell")
    except KeyError:
        failures.append("systemd-sysusers did not create the user crm-capture")

    enabled = [p for p in glob.glob("/etc/systemd/system/*/crm-captured*") +
               glob.glob("/etc/systemd/user/*/crm-captured*")]
    if enabled:
        failures.append("units enabled on installation: " + ", ".join(enabled))


def leftovers(paths):
    """The package's paths still present after purge: files and links, and
    directories no other package owns."""
    left = []
    for p in paths:
        if p == "/." or not os.path.lexists(p):
            continue
        if os.path.isdir(p):  # a directory, or /lib, a link to one on /usr-merged systems
            if subprocess.run(["dpkg-query", "-S", p], capture_output=True).returncode == 0:
                continue  # /usr/bin and the like
        left.append(p)
    return left


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("package: needs root (apt-get install)", file=sys.stderr)
        return 1
    if known_to_dpkg():
        print("package: crm-capture is installed on this machine already; not touching it",
              file=sys.stderr)
        return 1
    failures = []
    os.makedirs(args.workdir, exist_ok=True)
    for old in glob.glob(os.path.join(args.workdir, "crm-capture_*")):
        os.remove(old)

    started = time.monotonic()
    r = run([os.path.join(HERE, "build-deb.sh"), "--workdir", os.path.join(args.workdir, "src"),
             args.workdir])
    deb = r.stdout.strip().splitlines()[-1]
    print(f"package: built {deb} in {time.monotonic() - started:.0f} s")

    r = run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb],
            check=False)
    tags = [line for line in r.stdout.splitlines() if line.startswith(("E: ", "W: "))]
    if r.returncode != 0 or tags:
        failures.append(f"lintian: exit {r.returncode}, {len(tags)} error(s) and warning(s)")

    paths = []
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", deb], env=APT_ENV)
        paths = run(["dpkg", "-L", "crm-capture"]).stdout.split("\n")
        paths = [p for p in paths if p.startswith("/")]
        check_installed(failures)
    finally:
        if known_to_dpkg():
            run(["apt-get", "purge", "-y", "crm-capture"], env=APT_ENV)

    left = leftovers(paths)
    left += glob.glob("/etc/systemd/system/*/crm-captured*")
    left += glob.glob("/etc/systemd/user/*/crm-captured*")
    left += glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/**/crm-captured*",
                      recursive=True)
    left += glob.glob("/var/lib/systemd/deb-systemd-user-helper-enabled/**/crm-captured*",
                      recursive=True)
    left += glob.glob("/var/lib/dpkg/info/crm-capture.*")
    if left:
        failures.append("left after purge: " + ", ".join(left))
    else:
        print(f"purge: none of the {len(paths)} paths of dpkg -L is left")
    try:
        pwd.getpwnam("crm-capture")
        print("purge: the system user crm-capture stays (Debian keeps system users)")
    except KeyError:
        failures.append("purge removed the user crm-capture")

    for f in failures:
        print("FAILED: " + f, file=sys.stderr)
    print(f"package: {time.monotonic() - started:.0f} s in all")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        print("FAILED: " + str(e), file=sys.stderr)
        sys.exit(1)
