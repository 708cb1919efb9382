#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks of the systemd units, run by ctest (packaging/systemd/CMakeLists.txt).

check_units.py verify --build DIR --binary PATH
    Copies the units to a scratch directory with ExecStart pointing at the
    built crm-captured, builds the man pages (their Documentation= must
    resolve: MANPATH points at them), and runs `systemd-analyze verify` on the
    system service with its socket, an instance of the template with its
    socket and (with --user) the user service with its socket. It exits 0 on
    unknown keys, so anything printed fails. The sysusers.d file is applied
    to an empty root with systemd-sysusers --root.

    Then each service is started as systemd would start it without its
    socket unit: the built daemon with the unit's ExecStart= arguments, and
    $STATE_DIRECTORY, $RUNTIME_DIRECTORY (or, for the user unit,
    $XDG_RUNTIME_DIR) under a scratch root standing for /, as nobody when
    run as root; its mailbox points at a closed port, so it keeps retrying. It must answer GET /v1/status on
    its socket unit's ListenStream= path and make its store at the path the
    unit promises (/var/lib/crm-capture/capture.db, .../test/capture.db).

check_units.py security --max 2.0
    `systemd-analyze security --offline=true` of the system service and a
    template instance, each beside its socket unit (security rates services
    only: a socket unit has no process to expose); fails when an overall
    exposure is above --max.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_UNITS = ["crm-captured.service", "crm-captured@.service", "crm-captured.socket",
                "crm-captured@.socket"]
USER_UNITS = ["crm-captured.service", "crm-captured.socket"]
# Each verified together: a socket unit's service must exist and load.
CHECKED = [["crm-captured.socket", "crm-captured.service"],
           ["crm-captured@test.socket", "crm-captured@test.service"]]
SERVICES = ["crm-captured.service", "crm-captured@test.service"]


def copy_units(scratch, binary):
    for name in SYSTEM_UNITS:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(scratch, name), "w", encoding="utf-8") as f:
            f.write(text.replace("/usr/bin/crm-captured", binary))
    user = os.path.join(scratch, "user")
    os.mkdir(user)
    for name in USER_UNITS:
        with open(os.path.join(HERE, "user", name), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(user, name), "w", encoding="utf-8") as f:
            f.write(text.replace("/usr/bin/crm-captured", binary))


def run(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def unit_value(path, key):
    """The last value of `key` in a unit file (no drop-ins, no continuation
    lines: the units here have none)."""
    value = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + "="):
                value = line[len(key) + 1:].strip()
    return value


def http_status(sock_path):
    """The status line of GET /v1/status on a Unix socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return s.recv(4096).split(b"\r\n", 1)[0].decode()


def serve_check(scratch, binary, service, socket_unit, user, store):
    """Starts `binary` as `service` would be started without `socket_unit`;
    returns the problems found."""
    root = os.path.join(scratch, ("serve-user-" if user else "serve-") + service)
    run_dir, state_root, conf_dir = (os.path.join(root, d) for d in ("run", "lib", "etc"))
    for d in (run_dir, state_root, conf_dir):
        os.makedirs(d)
    os.chmod(run_dir, 0o700)
    instance = "test" if "@" in service else ""
    template = service.replace("@test", "@") if instance else service
    unit_dir = os.path.join(scratch, "user") if user else scratch
    unit = os.path.join(unit_dir, template)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "NOTIFY_", "LISTEN_"))}
    env["HOME"] = root
    expand = {"%i": instance, "%t": run_dir, "${CONFIGURATION_DIRECTORY}": conf_dir}
    if user:
        env["XDG_RUNTIME_DIR"] = run_dir
        env["XDG_CONFIG_HOME"] = conf_dir
        os.makedirs(os.path.join(conf_dir, "crm-capture"))
        config = os.path.join(conf_dir, "crm-capture", "crm-capture.toml")
        env["XDG_DATA_HOME"] = state_root
    else:
        runtime = os.path.join(run_dir, unit_value(unit, "RuntimeDirectory").replace("%i", instance))
        state = os.path.join(state_root, unit_value(unit, "StateDirectory").replace("%i", instance))
        for d in (runtime, state):
            os.makedirs(d, 0o750, exist_ok=True)
        env["RUNTIME_DIRECTORY"], env["STATE_DIRECTORY"] = runtime, state
        expand["${RUNTIME_DIRECTORY}"] = runtime
        config = os.path.join(conf_dir, (instance or "crm-capture") + ".toml")
    with open(os.path.join(conf_dir, "pass"), "w", encoding="utf-8") as f:
        f.write("secret\n")
    os.chmod(os.path.join(conf_dir, "pass"), 0o600)
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"""[[mailbox]]
name = "test"
owner = ["test@example.com"]
[mailbox.imap]
url = "imap://127.0.0.1:1"
allow_insecure = true
username = "test"
password_file = "{os.path.join(conf_dir, "pass")}"
""")
    argv = unit_value(unit, "ExecStart").split()
    for k, v in expand.items():
        argv = [a.replace(k, v) for a in argv]
    argv[0] = binary
    if os.geteuid() == 0:
        # The units run the daemon as crm-capture or as the user, never as
        # root (whose defaults are the system paths, which a wrong default
        # would then touch): here it runs as nobody.
        os.chmod(scratch, 0o755)
        for d, _, files in os.walk(root):
            for name in [d] + [os.path.join(d, f) for f in files]:
                os.chown(name, 65534, 65534)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
    listen = unit_value(os.path.join(unit_dir, socket_unit.replace("@test", "@")), "ListenStream")
    expected = listen.replace("%i", instance).replace("%t", run_dir)
    if not user:
        expected = os.path.join(run_dir, os.path.relpath(expected, "/run"))
    problems = []
    log = os.path.join(root, "daemon.log")
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(expected) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        status = http_status(expected) if os.path.exists(expected) else "no socket"
        # The API listens before the store is open and answers 503 (migrating)
        # until it is: asked again until it serves, or the deadline.
        while status.startswith("HTTP/1.1 503") and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http_status(expected)
        if not status.startswith("HTTP/1.1 200"):
            problems.append(f"{service}: {expected}: {status}")
        made = os.path.join(state_root, store.replace("%i", instance)) if not user else \
            os.path.join(state_root, "crm-capture", "capture.db")
        if not os.path.exists(made):
            problems.append(f"{service}: no store at {made}")
        print(f"serve {'--user ' if user else ''}{service} without {socket_unit}: {status} on "
              f"{os.path.relpath(expected, root)}, store {os.path.relpath(made, root)}")
    except OSError as e:
        problems.append(f"{service}: {expected}: {e}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if problems:
        with open(log, encoding="utf-8") as f:
            print(f.read(), file=sys.stderr)
    return problems


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
        for units in CHECKED:
            rc, out = run(["systemd-analyze", "verify"] + units, scratch, env)
            print(f"verify {' '.join(units)}: exit {rc}" +
                  (f"\n{out}" if out else ", nothing printed"))
            failed |= rc != 0 or out != ""
        rc, out = run(["systemd-analyze", "--user", "verify"] + USER_UNITS,
                      os.path.join(scratch, "user"), env)
        print(f"verify --user {' '.join(USER_UNITS)}: exit {rc}" +
              (f"\n{out}" if out else ", nothing printed"))
        failed |= rc != 0 or out != ""
        for service, socket_unit, user, store in (
                ("crm-captured.service", "crm-captured.socket", False,
                 "crm-capture/capture.db"),
                ("crm-captured@test.service", "crm-captured@test.socket", False,
                 "crm-capture/%i/capture.db"),
                ("crm-captured.service", "crm-captured.socket", True, None)):
            for p in serve_check(scratch, os.path.abspath(args.binary), service, socket_unit,
                                 user, store):
                print(p, file=sys.stderr)
                failed = True
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
        for unit in SERVICES:
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
