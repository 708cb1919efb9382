#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian 12 package that crm-capture's build, tests, benchmarks
# and demo need, and nothing more. Idempotent: packages already present are
# left alone and apt is not touched at all when nothing is missing.
# Boost is 1.81 (libboost1.81-dev and friends), never libboost-all-dev (1.74).
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev libmimetic-dev libsqlitecpp-dev libsqlite3-dev
  libical-dev libicu-dev tzdata libxml2-dev libtomlplusplus-dev libcli11-dev libsystemd-dev
  libssl-dev zlib1g-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  dovecot-imapd isync openssl python3 sqlite3
  # the API tests: openapi.yaml read and every response checked against it
  python3-yaml python3-jsonschema curl util-linux
  radicale
  # the CalDAV benchmark's peer (tests/bench/bench_caldav.py)
  vdirsyncer
  # h2load, the API page benchmark's clients (tests/bench/bench_api.py pages)
  nghttp2-client
  # the fuzz_smoke test and sanitizer builds: clang, and libclang-rt-14-dev for
  # libFuzzer and the sanitizer runtimes (clang only recommends it, and
  # recommends are not installed below)
  clang libclang-rt-14-dev
  # the man pages (packaging/man/): scdoc builds them, man-db's man checks them
  scdoc man-db
  # the units' tests (packaging/systemd/): systemd-analyze verify and security
  systemd
  # the Debian package (packaging/build-deb.sh) and its test: dpkg-buildpackage,
  # dh with dh_installsystemd/-systemduser/-sysusers, lintian
  dpkg-dev debhelper fakeroot lintian
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
# Dovecot's and Radicale's maintainer scripts start the system services; our
# tests start their own private instances, so the packaged ones are stopped.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
for service in dovecot radicale; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    $SUDO systemctl stop "$service" || true
  fi
done
