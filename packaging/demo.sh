#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, on loopback only: starts a throwaway Dovecot and a throwaway
# Radicale on 127.0.0.1, fills a demo mailbox (alice@example.com, INBOX and Sent),
# a demo calendar (meetings with CRM contacts, a weekly series, a private and an
# internal one) and a CRM directory, then runs the daemon `crm-captured` against
# both (IMAP over STARTTLS, CalDAV) and asks it over its local API (HTTP on a Unix
# socket, with `curl --unix-socket`): the activities, one explanation, the status.
# Then it delivers one new message and shows it arriving on /v1/events (the
# daemon IDLEs on INBOX), and stops the daemon and both servers.
# No real account is configured or contacted. Everything lives in a temporary
# directory, removed at the end. With KEEP=1 the daemon and the servers keep
# running, and the commands to query and to stop them are printed.
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
daemon_pid='' events_pid=''
stop_all() {
  [ -n "$events_pid" ] && kill "$events_pid" 2>/dev/null
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  fi
  bash "$root/tests/servers/dovecot.sh" stop "$work/dovecot" >/dev/null 2>&1 || true
  bash "$root/tests/servers/radicale.sh" stop "$work/radicale" >/dev/null 2>&1 || true
  rm -rf "$work"
}
kept=0
cleanup() {
  if [ "$kept" = 1 ]; then return; fi
  stop_all
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


sock="$work/api.sock"
api() { curl -sS --fail-with-body --unix-socket "$sock" "http://localhost$1"; }
echo "== Starting the daemon: crm-captured --config $work/crm-capture.toml"
"$captured" --config "$work/crm-capture.toml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
start=$(date +%s%N)
# The first sync: until the mailbox idles (IMAP IDLE on INBOX) and the
# calendar's meetings are in.
state='' meetings=0
for _ in $(seq 1 600); do
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "demo: crm-captured exited:" >&2
    cat "$work/daemon.log" >&2
    exit 1
  fi
  if [ -S "$sock" ]; then
    state=$(api /v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["mailboxes"][0]["imap"]["state"])')
    meetings=$(api '/v1/activities?kind=meeting&limit=1' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
    [ "$state" = idle ] && [ "$meetings" -gt 0 ] && break
  fi
  sleep 0.2
done
[ "$state" = idle ] || { echo "demo: the mailbox did not go idle (state: $state)" >&2; exit 1; }
echo "   pid $daemon_pid; first sync done, INBOX idling, after $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== The status: curl --unix-socket $sock http://localhost/v1/status"
api /v1/status | python3 -c "$(cat <<'PY'
import json, sys
s = json.load(sys.stdin)
print(f"   crm-captured {s['version']}, up {s['uptime_seconds']} s, store {s['store']['size_bytes'] // 1024} KiB")
for m in s["mailboxes"]:
    for side in ("imap", "caldav"):
        x = m[side]
        if x:
            c = x["counters"]
            print(f"   {m['name']} {side:6s} {x['state']:10s} captured {c['captured']:4d}  "
                  f"skipped {c['skipped']:4d}  failed {c['failed']}")
PY
)"

table='
import json, sys
items = json.load(sys.stdin)["items"]
for a in items:
    who = ",".join(p["contact_id"] for p in a["participants"] if p["contact_id"]) or "-"
    print("   %s  %-7s  %-34s  %-10s  %s" % (a["occurred_at"], a["kind"], a["subject"][:34], who[:10], a["opportunity_id"] or "-"))'
echo "== The newest activities: curl --unix-socket $sock 'http://localhost/v1/activities?limit=8'"
api '/v1/activities?limit=8' | python3 -c "$table"
echo "== The meetings: .../v1/activities?kind=meeting&limit=5"
api '/v1/activities?kind=meeting&limit=5' | python3 -c "$table"

# The newest mail with a contact and an opportunity.
id=$(api '/v1/activities?kind=email&limit=100' | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(next((a for a in items if a["opportunity_id"] and a["contact_ids"]), items[0])["id"])')
echo "== One explanation: curl --unix-socket $sock http://localhost/v1/activities/$id"
api "/v1/activities/$id" | python3 -c "$(cat <<'PY'
import json, sys
a = json.load(sys.stdin)
print(f"   {a['subject']!r}, {a['direction']}, {a['occurred_at']}")
for p in a["participants"]:
    crm = (f"contact {p['contact_id']}" if p["contact_id"] else
           f"company {p['company_id']}" if p["company_id"] else "no CRM record")
    print(f"   {p['role']:>4}: {p['address']} = {crm}")
print(f"   reason: {a['reason']}")
for x in a["sources"]:
    print(f"   seen in {x['mailbox']}/{x['folder']}, UID {x.get('uid')}")
PY
)"

echo "== A new message arrives: curl -N --unix-socket $sock http://localhost/v1/events"
curl -sSN --unix-socket "$sock" http://localhost/v1/events >"$work/events.txt" 2>/dev/null &
events_pid=$!
sleep 0.5
subject="Order confirmation $(date -u +%H:%M:%S)"
to=$(python3 -c 'import csv,sys; print(next(csv.DictReader(open(sys.argv[1])))["emails"].split(";")[0])' "$CRM_DIR/contacts.csv")
python3 - "$IMAP_PORT" "$IMAP_USER" "$(cat "$PASSWORD_FILE")" "$to" "$subject" <<'PY'
import email.utils, imaplib, sys, time
port, user, password, sender, subject = sys.argv[1:]
msg = (f"From: {sender}\r\nTo: alice@example.com\r\nSubject: {subject}\r\n"
       f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid(domain='demo.example')}\r\n"
       "\r\nWe confirm the order of 40 licences.\r\n").encode()
imap = imaplib.IMAP4("127.0.0.1", int(port))
imap.login(user, password)
imap.append("INBOX", None, None, msg)
imap.logout()
PY
sent=$(date +%s%N)
echo "   APPENDed to INBOX from $to: \"$subject\""
arrived=''
for _ in $(seq 1 100); do
  if grep -q "\"subject\":\"$subject\"" "$work/events.txt"; then arrived=$(date +%s%N); break; fi
  sleep 0.05
done
[ -n "$arrived" ] || { echo "demo: no event for the new message within 5 s" >&2; exit 1; }
grep -B2 "\"subject\":\"$subject\"" "$work/events.txt" | python3 -c "$(cat <<'PY'
import json, sys
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("data: "):
        a = json.loads(line[6:])
        short = {k: a[k] for k in ("id", "kind", "subject", "contact_ids", "opportunity_id")}
        print("   data: " + json.dumps(short)[:-1] + ', "reason": "' + a["reason"][:50] + '...", ...}')
    elif line:
        print("   " + line)
PY
)"
echo "   on /v1/events $(( (arrived - sent) / 1000000 )) ms after the APPEND (Dovecot tells an idling client after about 500 ms)"
kill "$events_pid" 2>/dev/null; events_pid=

if [ "${KEEP:-0}" = 1 ]; then
  kept=1
  cat >"$work/stop.sh" <<STOP
#!/bin/sh
kill $daemon_pid
while kill -0 $daemon_pid 2>/dev/null; do sleep 0.1; done
bash "$root/tests/servers/dovecot.sh" stop "$work/dovecot"
bash "$root/tests/servers/radicale.sh" stop "$work/radicale"
rm -rf "$work"
STOP
  cat <<KEPT
== Kept running (KEEP=1): crm-captured (pid $daemon_pid, log $work/daemon.log), Dovecot on 127.0.0.1:$IMAP_PORT, Radicale on $RADICALE_URL
   curl --unix-socket $sock http://localhost/v1/status
   curl --unix-socket $sock 'http://localhost/v1/activities?limit=5'
   curl -N --unix-socket $sock http://localhost/v1/events
   $client --socket $sock activities --limit 5
   Stop everything: sh $work/stop.sh
KEPT
else
  echo "== Stopping the daemon and both servers"
fi
