#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# IMAP backfill benchmark on loopback: fills a throwaway Dovecot with a generated
# mailbox (gen_mailbox.py: INBOX and Sent) and times, in the same run, mbsync
# pulling INBOX and Sent over implicit TLS, and crm-captured --once syncing the
# same folders (when its binary is given or found), each twice: the backfill and
# a second, no-change run. Reports wall time and peak RSS, one JSON line per run.
#
#   tests/bench/bench_imap.sh [--count 20000] [--seed 1] [--crm-captured PATH]
#                             [--keep]   (keep the work directory and server data)
#
# Everything lives in a mktemp directory under /tmp (or $TMPDIR), removed at the
# end; generated data is never written into the source tree.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
count=20000 seed=1 keep=0 captured=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --crm-captured) captured=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "bench_imap.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -z $captured ]]; then
  for c in "$root"/build*/daemon/crm-captured; do
    [[ -x $c ]] && captured=$c && break
  done
fi
command -v mbsync >/dev/null || { echo "bench_imap.sh: mbsync (isync) not installed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench_imap.sh: /usr/bin/time not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/crmcap-bench-imap.XXXXXX")
chmod 0755 "$work"
cleanup() {
  "$root/tests/servers/dovecot.sh" stop "$work/dovecot" --keep >/dev/null 2>&1 || true
  if [[ $keep -eq 0 ]]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

server_env=$("$root/tests/servers/dovecot.sh" start "$work/dovecot")
eval "$server_env"

# Generate straight into user1's Maildir++ root: INBOX is its cur/new, Sent its .Sent.
gen=$(python3 "$here/gen_mailbox.py" --out "$MAILDIR" --count "$count" --seed "$seed" \
  --csv-dir "$work/csv" --folders inbox,sent)
if [[ $(id -u) -eq 0 ]]; then chown -R "$MAIL_UID:$MAIL_GID" "$MAILDIR"; fi
# Let Dovecot list the new files once, so that neither client pays for the scan.
doveadm -c "$CONF" mailbox status -u "$IMAP_USER" 'messages vsize' INBOX Sent >&2
echo "$gen" >&2

result() {  # tool run seconds rss_kb
  printf '{"tool":"%s","run":"%s","messages":%s,"seconds":%s,"peak_rss_kb":%s}\n' \
    "$1" "$2" "$count" "$3" "$4"
}

timed() {  # tool run command...
  local tool=$1 run=$2 t
  shift 2
  if ! /usr/bin/time -o "$work/$tool-$run.time" -f '%e %M' "$@" >"$work/$tool-$run.log" 2>&1; then
    echo "bench_imap.sh: $tool $run failed:" >&2
    tail -20 "$work/$tool-$run.log" >&2
    return 1
  fi
  read -r -a t <"$work/$tool-$run.time"
  result "$tool" "$run" "${t[0]}" "${t[1]}"
}

# mbsync: full messages of INBOX and Sent into a local Maildir tree. FSync off:
# by default mbsync fsyncs every message (28 s for 2,000 here), which measures the
# disk, not the protocol; crm-captured commits a batch per transaction.
mkdir -p "$work/mbsync"
cat >"$work/mbsyncrc" <<EOF
FSync no

IMAPAccount bench
Host localhost
Port $IMAPS_PORT
SSLType IMAPS
CertificateFile $CA_FILE
User $IMAP_USER
Pass $IMAP_PASSWORD

IMAPStore remote
Account bench

MaildirStore local
Path $work/mbsync/
Inbox $work/mbsync/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns INBOX Sent
Create Near
Sync Pull
SyncState *
EOF
timed mbsync first mbsync -q -c "$work/mbsyncrc" -a
timed mbsync second mbsync -q -c "$work/mbsyncrc" -a

if [[ -n $captured ]]; then
  printf '%s' "$IMAP_PASSWORD" >"$work/password"
  chmod 0600 "$work/password"
  cat >"$work/crm-capture.toml" <<EOF
[store]
path = "$work/capture.db"
[api]
socket = "$work/api.sock"
[identity]
internal_domains = ["example.com"]
[[mailbox]]
name = "alice"
owner = ["alice@example.com"]
[mailbox.imap]
url = "imaps://localhost:$IMAPS_PORT"
username = "$IMAP_USER"
password_file = "$work/password"
ca_file = "$CA_FILE"
folders = ["INBOX", "\\\\Sent"]
EOF
  timed crm-captured first "$captured" --config "$work/crm-capture.toml" --once
  timed crm-captured second "$captured" --config "$work/crm-capture.toml" --once
else
  echo "bench_imap.sh: no crm-captured binary found (build it or pass --crm-captured)" >&2
fi
