#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, on loopback only: starts a throwaway Dovecot and a throwaway
# Radicale on 127.0.0.1, fills a demo mailbox (alice@example.com, INBOX and Sent),
# a demo calendar (meetings with CRM contacts, a weekly series, a private and an
# internal one) and a CRM directory, then runs the daemon `crm-captured --once`
# against both (IMAP over STARTTLS, CalDAV), runs it a second time (nothing new),
# and shows the activities, the decisions and one explanation.
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
  bash "$root/tests/servers/radicale.sh" stop "$work/radicale" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== Starting a throwaway Dovecot on 127.0.0.1 with $count generated messages"
eval "$(python3 "$root/tests/servers/loopback_mailbox.py" "$work" --count "$count")"
echo "   IMAP (STARTTLS) on 127.0.0.1:$IMAP_PORT, user $IMAP_USER, INBOX and Sent"

echo "== Starting a throwaway Radicale on 127.0.0.1 with a demo calendar"
# Its variables prefixed: its CA_FILE (none: plain HTTP) is not Dovecot's.
eval "$(bash "$root/tests/servers/radicale.sh" start "$work/radicale" | sed 's/^/RADICALE_/')"
printf '%s' "$RADICALE_DAV_PASSWORD" >"$work/dav.pass"
chmod 600 "$work/dav.pass"
# A calendar of meetings with the first contacts of the CRM directory: one a
# day over the last two weeks, a weekly series, a private and an internal one.
python3 - "$RADICALE_URL" "$RADICALE_DAV_USER" "$RADICALE_DAV_PASSWORD" "$CRM_DIR/contacts.csv" <<'PY'
import base64, csv, datetime, sys, urllib.request
url, user, password, contacts = sys.argv[1:]
auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
def send(method, path, body=b"", ctype="text/calendar; charset=utf-8"):
    req = urllib.request.Request(url + path, data=body, method=method,
                                 headers={"Authorization": auth, "Content-Type": ctype})
    urllib.request.urlopen(req).read()
cal = f"/{user}/work/"
send("MKCALENDAR", cal, b"", "application/xml")
people = [row["emails"].split(";")[0] for row in csv.DictReader(open(contacts))][:12]
now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
def event(uid, start, summary, attendees, extra=""):
    end = start + datetime.timedelta(hours=1)
    f = lambda t: t.strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//crm-capture demo//EN",
             "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{f(now)}", f"DTSTART:{f(start)}",
             f"DTEND:{f(end)}", f"SUMMARY:{summary}", "ORGANIZER:mailto:alice@example.com"]
    lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}" for a in attendees]
    lines += [x for x in extra.split("|") if x] + ["END:VEVENT", "END:VCALENDAR", ""]
    send("PUT", f"{cal}{uid}.ics", "\r\n".join(lines).encode())
for i, p in enumerate(people[:10]):
    event(f"demo-{i}", now - datetime.timedelta(days=14 - i), f"Call with {p}", [p])
event("demo-weekly", now - datetime.timedelta(days=21), "Weekly pipeline review",
      [people[10]], "RRULE:FREQ=WEEKLY;COUNT=6")
event("demo-private", now - datetime.timedelta(days=2), "Dentist", [people[11]], "CLASS:PRIVATE")
event("demo-internal", now - datetime.timedelta(days=1), "Team lunch", ["bob@example.com"])
PY
echo "   CalDAV on $RADICALE_URL, user $RADICALE_DAV_USER, calendar work: 13 events"

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
[mailbox.caldav]
url = "$RADICALE_URL/"
username = "$RADICALE_DAV_USER"
password_file = "$work/dav.pass"
allow_insecure = true
TOML

echo "== crm-captured --once (first sync)"
start=$(date +%s%N)
"$captured" --config "$work/crm-capture.toml" --once
echo "   took $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "== crm-captured --once (second sync: nothing new)"
"$captured" --config "$work/crm-capture.toml" --once

echo "== The first activities"
"$client" --store "$db" activities --limit 12
echo "== The meetings (from the calendar)"
"$client" --store "$db" activities --json | python3 -c '
import json, sys
for line in sys.stdin:
    a = json.loads(line)
    if a["kind"] == "meeting":
        row = (a["starts_at"], a["meeting_status"], a["subject"][:36], a["reason"][:70])
        print("   %s  %-9s  %-36s  %s" % row)'
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
