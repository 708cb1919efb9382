# SPDX-License-Identifier: Apache-2.0
# Records Radicale 3's answers to the requests the CalDAV core makes, as a
# transcript (format at the top of radicale_3.1.8.txt). Not part of the
# build. Start Radicale first, with an empty storage folder and htpasswd
# user alice:pw on 127.0.0.1:5299; then: python3 capture.py > radicale_X.txt
# and put the format header back on top.
import base64, re, urllib.request, urllib.error
B = "http://127.0.0.1:5299"
AUTH = "Basic " + base64.b64encode(b"alice:pw").decode()
out = []

def req(method, url, body=None, depth=None, record=True, ctype="application/xml; charset=utf-8"):
    r = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    r.add_header("Authorization", AUTH)
    if depth is not None: r.add_header("Depth", depth)
    if body: r.add_header("Content-Type", ctype)
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k): return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        resp = opener.open(r); status = resp.status; headers = resp.headers; data = resp.read()
    except urllib.error.HTTPError as e:
        status = e.code; headers = e.headers; data = e.read()
    if record:
        out.append(f"C: {method} {url}" + (f" Depth: {depth}" if depth is not None else ""))
        out.append(f"S: {status}")
        for h in ("Location", "Retry-After"):
            if headers.get(h): out.append(f"H: {h}: {headers.get(h)}")
        text = data.decode()
        if text and not text.endswith("\n"): text += "\n"
        out.append(text + ".")
    return status, data.decode()

PF_PROBE = '<?xml version="1.0" encoding="utf-8"?>\n<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:resourcetype/><d:current-user-principal/><c:calendar-home-set/><d:displayname/><c:supported-calendar-component-set/><cs:getctag/><d:sync-token/><d:supported-report-set/></d:prop></d:propfind>\n'
PF_HOME = PF_PROBE.replace('<d:current-user-principal/><c:calendar-home-set/><d:displayname/><c:supported-calendar-component-set/><cs:getctag/><d:sync-token/><d:supported-report-set/>', '<c:calendar-home-set/>')
PF_CAL = PF_PROBE.replace('<d:current-user-principal/><c:calendar-home-set/>', '')
PF_ETAGS = '<?xml version="1.0" encoding="utf-8"?>\n<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/></d:prop></d:propfind>\n'
def SC(tok): return '<?xml version="1.0" encoding="utf-8"?>\n<d:sync-collection xmlns:d="DAV:">' + ('<d:sync-token>%s</d:sync-token>' % tok if tok else '<d:sync-token/>') + '<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>\n'
def MG(hrefs): return '<?xml version="1.0" encoding="utf-8"?>\n<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>' + ''.join('<d:href>%s</d:href>' % h for h in hrefs) + '</c:calendar-multiget>\n'
def ev(uid): return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crm-capture//test//EN\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261202T100000Z\r\nDTEND:20261202T110000Z\r\nSUMMARY:Meeting %s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n" % (uid, uid))
def token(x): return re.search(r"<sync-token>([^<]*)</sync-token>", x).group(1)

CAL = B + "/alice/work/"
req("PROPFIND", B + "/", PF_PROBE, "0", record=False)  # creates the principal
req("MKCALENDAR", CAL, record=False)
req("MKCOL", B + "/alice/book/", '<?xml version="1.0"?><mkcol xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><set><prop><resourcetype><collection/><C:addressbook/></resourcetype></prop></set></mkcol>', record=False)
for u, path in (("a", "a.ics"), ("b", "b.ics"), ("c d@x", "c%20d%40x.ics")):
    req("PUT", CAL + path, ev(u), record=False, ctype="text/calendar")

out.append("=== discover " + B + "/.well-known/caldav")
req("PROPFIND", B + "/.well-known/caldav", PF_PROBE, "0")
req("PROPFIND", B + "/", PF_PROBE, "0")
req("PROPFIND", B + "/alice/", PF_HOME, "0")
req("PROPFIND", B + "/alice/", PF_CAL, "1")
out.append("EXPECT calendar " + CAL)

out.append("=== sync " + CAL + " (first: sync-collection from no token)")
req("PROPFIND", CAL, PF_CAL, "0")
_, s0 = req("REPORT", CAL, SC(""), "0")
req("REPORT", CAL, MG(["/alice/work/a.ics", "/alice/work/b.ics", "/alice/work/c%20d@x.ics"]))
out.append("EXPECT commits 1")
out.append("EXPECT changed " + CAL + "a.ics")
out.append("EXPECT changed " + CAL + "b.ics")
out.append("EXPECT changed " + CAL + "c%20d@x.ics")
out.append("EXPECT token " + token(s0))

out.append("=== sync " + CAL + " (unchanged)")
req("PROPFIND", CAL, PF_CAL, "0")
out.append("EXPECT commits 1")

req("DELETE", CAL + "a.ics", record=False)
req("PUT", CAL + "b.ics", ev("b").replace("Meeting b", "Meeting b moved"), record=False, ctype="text/calendar")
out.append("=== sync " + CAL + " (a deleted, b changed)")
_, p1 = req("PROPFIND", CAL, PF_CAL, "0")
_, s1 = req("REPORT", CAL, SC(token(s0)), "0")
req("REPORT", CAL, MG(["/alice/work/b.ics"]))
out.append("EXPECT commits 2")
out.append("EXPECT deleted " + CAL + "a.ics")
out.append("EXPECT changed " + CAL + "b.ics")
out.append("EXPECT token " + token(s1))
req("PUT", CAL + "d.ics", ev("d"), record=False, ctype="text/calendar")
req("DELETE", CAL + "c%20d%40x.ics", record=False)
out.append("=== sync " + CAL + " (a token the server refuses: 403, then a listing)")
out.append("STATE token http://radicale.org/ns/sync/0000")
_, p2 = req("PROPFIND", CAL, PF_CAL, "0")
req("REPORT", CAL, SC("http://radicale.org/ns/sync/0000"), "0")
req("PROPFIND", CAL, PF_ETAGS, "1")
req("REPORT", CAL, MG(["/alice/work/d.ics"]))
out.append("EXPECT commits 3")
out.append("EXPECT changed " + CAL + "d.ics")
out.append("EXPECT deleted " + CAL + "c%20d@x.ics")
out.append("EXPECT token " + token(p2))
out.append("EXPECT mode etag_listing")
print("\n".join(out))
