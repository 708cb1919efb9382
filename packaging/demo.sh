#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, on loopback only: starts a throwaway Dovecot on 127.0.0.1, fills a
# demo mailbox (alice@example.com, INBOX and Sent) and a CRM directory, then runs
# the daemon `crm-captured --once` against it over STARTTLS, runs it a second time
# (nothing new), and shows the activities, the decisions and one explanation.
# No real account is configured or contacted. Everything lives in a temporary
# directory that is removed at the end (set KEEP=1 to keep it).
#
#   packaging/demo.sh [BUILD_DIR] [MESSAGES]      (defaults: build, 400)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
count=${2:-400}
captured="$build/daemon/crm-captured"
client="$build/daemon/crm-capture"
for exe in "$captured" "$client"; do
  [ -x "$exe" ] || { echo "demo: $exe is missing: build first" >&2; exit 1; }
done

work=$(mktemp -d /tmp/crm-capture-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
  bash "$root/tests/servers/dovecot.sh" stop "$work/dovecot" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== Starting a throwaway Dovecot on 127.0.0.1 with $count generated messages"
eval "$(python3 "$root/tests/servers/loopback_mailbox.py" "$work" --count "$count")"
echo "   IMAP (STARTTLS) on 127.0.0.1:$IMAP_PORT, user $IMAP_USER, INBOX and Sent"

db="$work/capture.db"
echo "== Importing the CRM directory"
for kind in companies contacts opportunities; do
  "$client" --store "$db" import "$kind" "$CRM_DIR/$kind.csv"
done
cat >"$work/crm-capture.toml" <<TOML
[store]
path = "$db"
[api]
socket = "$work/api.sock"
[identity]
internal_domains = ["example.com"]
[capture]
backfill_days = 90
[[mailbox]]
name = "alice"
owner = ["alice@example.com"]
[mailbox.imap]
url = "imap://127.0.0.1:$IMAP_PORT"
username = "$IMAP_USER"
password_file = "$PASSWORD_FILE"
ca_file = "$CA_FILE"
TOML

echo "== crm-captured --once (first sync)"
start=$(date +%s%N)
"$captured" --config "$work/crm-capture.toml" --once
echo "   took $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "== crm-captured --once (second sync: nothing new)"
"$captured" --config "$work/crm-capture.toml" --once

echo "== The first activities"
"$client" --store "$db" activities --limit 12
echo "== Decisions by outcome"
"$client" --store "$db" decisions --json | python3 -c '
import json, sys, collections
c = collections.Counter()
for line in sys.stdin:
    d = json.loads(line)
    c[d["decision"] + (" (" + d["rule"] + ")" if d["rule"] else "")] += 1
for k, v in sorted(c.items(), key=lambda kv: -kv[1]):
    print(f"   {v:6d}  {k}")'
# The first INBOX message (a glob, not ls | head: pipefail would see SIGPIPE).
files=("$MAILDIR"/cur/*)
echo "== crm-capture explain (one INBOX message)"
"$client" --store "$db" explain --owner alice@example.com --internal-domain example.com \
  --folder INBOX "${files[0]}"
