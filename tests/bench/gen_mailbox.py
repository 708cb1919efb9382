#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate a realistic, reproducible mailbox for benchmarks and end-to-end tests.

The mailbox belongs to alice@example.com, a salesperson at Example Corp. It holds
business correspondence with contacts at a few hundred companies: plain text, HTML,
multipart/alternative, replies with quoted text (Gmail "On ... wrote:" and Outlook
"-----Original Message-----" shapes) and signatures, small attachments, mailing-list
mail, newsletters, auto-replies, internal mail, and non-ASCII (RFC 2047 subjects,
ISO-8859-1 quoted-printable and UTF-8 base64 bodies). Dates lie within the 60 days
before --now. The same --seed, --count and --now always give the same bytes.

  gen_mailbox.py --out DIR [--count 20000] [--seed 1] [--now 2026-11-25T12:00:00Z]
                 [--folders inbox,sent] [--csv-dir DIR]

--folders inbox,sent writes a Maildir++ tree: DIR/{cur,new,tmp} is INBOX and
DIR/.Sent is Sent (alice's outgoing mail goes there). --folders inbox writes one
Maildir with every message in it. --csv-dir writes the CRM directory the messages
refer to: companies.csv (id,name,domains with ';'-separated domains), contacts.csv
(id,name,emails,company_id,title,phone with ';'-separated emails) and
opportunities.csv (id,name,company_id,stage,amount,close_date,status,contact_ids;
status open/won/lost). Prints one JSON summary line on stdout.
"""

import argparse
import base64
import csv
import datetime as dt
import json
import os
import quopri
import random
import sys

OWNER = ("Alice Martin", "alice@example.com")
COLLEAGUES = [
    ("Bob Chen", "bob@example.com"),
    ("Carla Diaz", "carla@example.com"),
    ("Dev Patel", "dev@sales.example.com"),
    ("Emma Novak", "emma@example.com"),
]
FREE_MAIL = ["gmail.com", "yahoo.com", "outlook.com", "gmx.de", "hotmail.com"]

PREFIX = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
          "Soylent", "Tyrell", "Cyberdyne", "Aperture", "Massive", "Wonka", "Gringotts",
          "Oscorp", "Nakatomi", "Monarch", "Pied", "Dunder", "Blue", "Red", "North", "South",
          "Alpine", "Cedar", "Summit", "Harbor", "Quantum", "Vertex", "Nimbus", "Orion",
          "Polar", "Sterling", "Atlas", "Beacon", "Crescent", "Delta", "Evergreen", "Falcon"]
SUFFIX = ["Systems", "Logistics", "Foods", "Analytics", "Labs", "Industries", "Retail",
          "Energy", "Health", "Robotics", "Media", "Capital", "Software", "Motors",
          "Pharma", "Textiles", "Networks", "Consulting", "Aerospace", "Holdings"]
TLDS = ["com", "com", "com", "io", "de", "fr", "co.uk", "net", "es", "it"]
FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
         "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
         "Thomas", "Sarah", "Charles", "Karen", "Olivia", "Liam", "Noah", "Emma", "Sophia",
         "Lucas", "Mia", "Hugo", "Léa", "Zoé", "Jürgen", "Søren", "José", "François",
         "Małgorzata", "Björn", "Chloé", "Renée", "Ines", "Mateo"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
        "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor",
        "Moore", "Jackson", "Lee", "Müller", "Schäfer", "Dubois", "Lefèvre", "Núñez",
        "Østergaard", "Kowalski", "Rossi", "Bianchi", "Nguyen", "Kim", "Okafor"]
TITLES = ["CTO", "VP Engineering", "Head of Procurement", "Purchasing Manager", "CFO",
          "IT Director", "Operations Manager", "CEO", "Product Manager", "Buyer"]
STAGES_OPEN = ["qualification", "discovery", "proposal", "negotiation"]
PRODUCTS = ["platform licence", "support renewal", "pilot", "expansion", "integration",
            "training package", "enterprise plan", "data migration"]
TOPICS = ["pricing", "the proposal", "next steps", "the contract", "our call", "the demo",
          "the pilot results", "renewal terms", "the security questionnaire", "onboarding",
          "the invoice", "the statement of work", "licence counts", "the roadmap"]
SENTENCES = [
    "Thanks for the quick turnaround on this.",
    "Could you send over the updated figures by Friday?",
    "I have attached the revised proposal for your review.",
    "Our legal team has a few comments on section 4.",
    "We would like to move forward with the pilot in the next quarter.",
    "Let me know which time works best for a call next week.",
    "The budget was approved yesterday, so we are good to go.",
    "Can we include two additional seats in the quote?",
    "I spoke with our CFO and she is supportive of the plan.",
    "Please find the signed NDA attached.",
    "We are evaluating two other vendors, so timing matters.",
    "Following up on my previous email regarding the renewal.",
    "The integration tests passed on our staging environment.",
    "I will be out of office until Monday, back after that.",
    "Could you clarify the support terms for weekends?",
    "Happy to set up a workshop with our engineering team.",
    "The discount you proposed works for us if we sign this month.",
    "We noticed a discrepancy in the last invoice, can you check?",
]
NON_ASCII_SUBJECTS = [
    "Réunion de suivi – proposition commerciale",
    "Angebot für die Erweiterung (Änderungen)",
    "Presupuesto revisado: señal y próximos pasos",
    "Ödeme planı hakkında",
    "Ofertă actualizată — licențe",
    "契約更新のご案内",
    "Счёт на оплату",
    "Café meeting ☕ next week?",
]
LATIN1_BODIES = [
    "Bonjour,\n\nVoici le résumé de notre réunion : les délais sont confirmés et le "
    "budget est validé. Merci de votre réactivité.\n\nCordialement,\n",
    "Hallo,\n\nanbei die überarbeitete Preisübersicht. Die Änderungen betreffen nur "
    "die Lizenzgebühren für größere Teams.\n\nViele Grüße\n",
    "Hola,\n\nle envío la propuesta con el descuento acordado. ¿Podría confirmar la "
    "fecha de firma?\n\nSaludos,\n",
]
LISTS = [("announce@lists.opensource.org", "Open Source Announce", "announce.lists.opensource.org"),
         ("sales-tips@newsletters.salesweekly.com", "Sales Weekly", "sales-tips.salesweekly.com"),
         ("devops@googlegroups.com", "DevOps Discussion", "devops.googlegroups.com"),
         ("team@example.com", "Example Corp team", "team.example.com")]


def slug(s):
    out = []
    for ch in s.lower():
        if ch.isascii() and ch.isalnum():
            out.append(ch)
    return "".join(out) or "x"


def ascii_fold(s):
    table = str.maketrans({"é": "e", "è": "e", "ü": "u", "ö": "o", "ä": "a", "ø": "o",
                           "Ø": "O", "ñ": "n", "ú": "u", "ç": "c", "ł": "l", "Ł": "L",
                           "ß": "ss", "é": "e", "à": "a", "ó": "o", "Ö": "O", "Ü": "U",
                           "É": "E"})
    return s.translate(table)


def header_phrase(name):
    """A display name for a header: RFC 2047 encoded when it is not ASCII."""
    if name.isascii():
        if any(c in name for c in ',.;:"()<>@'):
            return '"' + name.replace('"', '\\"') + '"'
        return name
    return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def mailbox(name, addr):
    return f"{header_phrase(name)} <{addr}>"


def encode_subject(subject, rng):
    if subject.isascii():
        return subject
    raw = subject.encode("utf-8")
    if rng.random() < 0.5:
        # Q encoding, split into adjacent words as mail clients do.
        q = "".join(
            chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else
            ("_" if b == 32 else f"={b:02X}") for b in raw)
        words, cur = [], ""
        i = 0
        while i < len(q):
            step = 3 if q[i] == "=" else 1
            if len(cur) + step > 45:
                words.append(cur)
                cur = ""
            cur += q[i:i + step]
            i += step
        words.append(cur)
        return "\r\n ".join(f"=?UTF-8?Q?{w}?=" for w in words)
    return "=?UTF-8?B?" + base64.b64encode(raw).decode() + "?="


def wrap76(b64):
    return "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


class Directory:
    def __init__(self, rng):
        self.companies, self.contacts, self.opps = [], [], []
        used_names, used_domains = set(), set()
        n_companies = 300
        while len(self.companies) < n_companies:
            name = f"{rng.choice(PREFIX)} {rng.choice(SUFFIX)}"
            if name in used_names:
                name += f" {rng.choice(['Group', 'GmbH', 'SA', 'Ltd', 'Inc', 'AG', 'BV'])}"
            if name in used_names:
                continue
            base = slug(name)
            domains = [f"{base}.{rng.choice(TLDS)}"]
            if rng.random() < 0.2:
                domains.append(f"{base}-group.com")
            if rng.random() < 0.1:
                domains.append(f"mail.{domains[0]}")  # a sub-domain used by some staff
            if any(d in used_domains for d in domains):
                continue
            used_names.add(name)
            used_domains.update(domains)
            cid = f"C-{len(self.companies) + 1}"
            self.companies.append({"id": cid, "name": name, "domains": domains, "contacts": []})
        for comp in self.companies:
            for _ in range(rng.randint(2, 8)):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                local = f"{slug(ascii_fold(first))}.{slug(ascii_fold(last))}"
                emails = [f"{local}@{rng.choice(comp['domains'])}"]
                if rng.random() < 0.08:
                    emails.append(f"{local}{rng.randint(1, 99)}@{rng.choice(FREE_MAIL)}")
                if any(e == x for c in comp["contacts"] for x in c["emails"] for e in emails):
                    continue
                pid = f"P-{len(self.contacts) + 1}"
                phone = f"+{rng.randint(1, 49)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}"
                contact = {"id": pid, "name": f"{first} {last}", "emails": emails,
                           "company": comp, "title": rng.choice(TITLES), "phone": phone}
                self.contacts.append(contact)
                comp["contacts"].append(contact)
        for comp in self.companies:
            for _ in range(rng.choices([0, 1, 2, 3], [25, 45, 20, 10])[0]):
                status = rng.choices(["open", "won", "lost"], [60, 25, 15])[0]
                stage = rng.choice(STAGES_OPEN) if status == "open" else (
                    "closed won" if status == "won" else "closed lost")
                roles = rng.sample(comp["contacts"], k=min(len(comp["contacts"]), rng.randint(0, 3)))
                self.opps.append({
                    "id": f"O-{len(self.opps) + 1}",
                    "name": f"{comp['name']} {rng.choice(PRODUCTS)}",
                    "company_id": comp["id"], "stage": stage,
                    "amount": rng.randrange(5000, 500000, 500),
                    "close_date": None, "status": status,
                    "contact_ids": [c["id"] for c in roles]})

    def write_csv(self, out, now):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "companies.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "domains"])
            for c in self.companies:
                w.writerow([c["id"], c["name"], ";".join(c["domains"])])
        with open(os.path.join(out, "contacts.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "emails", "company_id", "title", "phone"])
            for c in self.contacts:
                w.writerow([c["id"], c["name"], ";".join(c["emails"]), c["company"]["id"],
                            c["title"], c["phone"]])
        rng = random.Random(len(self.opps))
        with open(os.path.join(out, "opportunities.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "company_id", "stage", "amount", "close_date", "status",
                        "contact_ids"])
            for o in self.opps:
                days = rng.randint(-90, -1) if o["status"] != "open" else rng.randint(5, 180)
                close = (now + dt.timedelta(days=days)).date().isoformat()
                w.writerow([o["id"], o["name"], o["company_id"], o["stage"], o["amount"], close,
                            o["status"], ";".join(o["contact_ids"])])


class Generator:
    def __init__(self, rng, directory, now, count):
        self.rng, self.dir, self.now, self.count = rng, directory, now, count
        self.threads = []  # (subject, [message-ids], contact, last body text, date)
        self.seq = 0

    def date(self):
        # Later messages are newer, with jitter: threads then move forward in time.
        span = 60 * 86400
        base = self.now - dt.timedelta(seconds=span)
        frac = (self.seq + self.rng.random()) / max(self.count, 1)
        when = base + dt.timedelta(seconds=int(frac * span))
        self.last_when = when
        return when

    def fmt_date(self, when):
        off = self.rng.choice([0, 60, 120, -300, -240, 330, 540, 60])
        local = when.astimezone(dt.timezone(dt.timedelta(minutes=off)))
        s = local.strftime("%a, %d %b %Y %H:%M:%S ") + local.strftime("%z")
        if self.rng.random() < 0.1:
            s += " (UTC)" if off == 0 else ""
        return s

    def msgid(self, domain):
        self.seq_id = getattr(self, "seq_id", 0) + 1
        return f"<{self.rng.getrandbits(48):012x}.{self.seq_id}@{domain}>"

    def signature(self, name, title, company, phone):
        shape = self.rng.random()
        if shape < 0.5:
            return f"\n-- \n{name}\n{title}, {company}\n{phone}\n"
        if shape < 0.8:
            return f"\nBest regards,\n{name}\n{title} | {company}\nT: {phone}\n"
        return f"\nThanks,\n{name.split()[0]}\n\nSent from my iPhone\n"

    def paragraph(self, k=None):
        k = k or self.rng.randint(2, 6)
        return " ".join(self.rng.choice(SENTENCES) for _ in range(k))

    def body_text(self, greeting, sign):
        paras = [self.paragraph() for _ in range(self.rng.randint(1, 3))]
        return f"{greeting},\n\n" + "\n\n".join(paras) + "\n" + sign

    def quote(self, prev_text, prev_from, prev_date):
        if self.rng.random() < 0.6:
            head = f"On {prev_date}, {prev_from[0]} <{prev_from[1]}> wrote:\n"
            return "\n" + head + "".join("> " + l + "\n" for l in prev_text.splitlines())
        return ("\n-----Original Message-----\n"
                f"From: {prev_from[0]} <{prev_from[1]}>\nSent: {prev_date}\n"
                f"To: {OWNER[0]} <{OWNER[1]}>\nSubject: {self.rng.choice(TOPICS)}\n\n"
                + prev_text)

    def html_of(self, text):
        esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        paras = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>\n" for p in esc.split("\n\n"))
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><style>p{margin:0 0 1em}"
                "</style></head>\n<body style=\"font-family:Arial\">\n" + paras +
                "<div class=\"footer\">&copy; 2026 &nbsp;&mdash;&nbsp; Confidential</div>\n"
                "</body></html>\n")

    def text_part(self, text, subtype="plain"):
        """Headers + body lines of a text part, in a charset and encoding chosen at random."""
        r = self.rng.random()
        if text.isascii():
            if r < 0.7:
                return (f"Content-Type: text/{subtype}; charset=us-ascii\r\n"
                        "Content-Transfer-Encoding: 7bit\r\n", crlf(text))
            return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n",
                    crlf(quopri.encodestring(text.encode()).decode("ascii")))
        try:
            latin = text.encode("iso-8859-1")
        except UnicodeEncodeError:
            latin = None
        if latin is not None and r < 0.5:
            return (f"Content-Type: text/{subtype}; charset=ISO-8859-1\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n",
                    crlf(quopri.encodestring(latin).decode("ascii")))
        if r < 0.75:
            return (f"Content-Type: text/{subtype}; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: base64\r\n",
                    wrap76(base64.b64encode(text.encode()).decode()) + "\r\n")
        return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n", crlf(text))

    def attachment(self):
        kind = self.rng.choice([("application/pdf", "pdf"), ("image/png", "png"),
                                ("application/vnd.openxmlformats-officedocument."
                                 "spreadsheetml.sheet", "xlsx"), ("text/csv", "csv")])
        size = self.rng.randint(1500, 6000)
        name = self.rng.choice(["proposal", "quote", "invoice", "NDA", "SoW", "roadmap",
                                "Preisübersicht", "résumé_réunion"]) + "." + kind[1]
        data = self.rng.randbytes(size)
        if name.isascii():
            disp = f'attachment; filename="{name}"'
            ctname = f'; name="{name}"'
        else:
            enc = "".join(c if c.isascii() and c.isalnum() or c in "._-" else
                          "".join(f"%{b:02X}" for b in c.encode()) for c in name)
            disp = f"attachment; filename*=UTF-8''{enc}"
            ctname = ""
        head = (f"Content-Type: {kind[0]}{ctname}\r\nContent-Disposition: {disp}\r\n"
                "Content-Transfer-Encoding: base64\r\n")
        return head, wrap76(base64.b64encode(data).decode()) + "\r\n"

    def boundary(self):
        return f"----=_Part_{self.rng.getrandbits(40):010x}"

    def body(self, text, shape):
        """Returns (top-level content headers, body) for a shape."""
        if shape == "plain":
            return self.text_part(text)
        if shape == "html":
            return self.text_part(self.html_of(text), "html")
        alt_b = self.boundary()
        th, tb = self.text_part(text)
        hh, hb = self.text_part(self.html_of(text), "html")
        alt = (f"--{alt_b}\r\n{th}\r\n{tb}\r\n--{alt_b}\r\n{hh}\r\n{hb}\r\n--{alt_b}--\r\n")
        alt_head = f"Content-Type: multipart/alternative;\r\n boundary=\"{alt_b}\"\r\n"
        if shape == "alternative":
            return alt_head, alt
        # mixed: the text (plain, or alternative) then one to three attachments.
        mix_b = self.boundary()
        first_h, first_b = (alt_head, alt) if self.rng.random() < 0.5 else (th, tb)
        parts = [f"--{mix_b}\r\n{first_h}\r\n{first_b}\r\n"]
        for _ in range(self.rng.choices([1, 2, 3], [70, 20, 10])[0]):
            ah, ab = self.attachment()
            parts.append(f"--{mix_b}\r\n{ah}\r\n{ab}\r\n")
        return (f"Content-Type: multipart/mixed;\r\n boundary=\"{mix_b}\"\r\n",
                "".join(parts) + f"--{mix_b}--\r\n")

    def assemble(self, headers, content):
        ch, cb = content
        head = "".join(f"{k}: {v}\r\n" for k, v in headers) + "MIME-Version: 1.0\r\n" + ch
        return (head + "\r\n" + cb).encode("utf-8")

    def pick_shape(self):
        return self.rng.choices(["plain", "html", "alternative", "mixed"], [35, 10, 40, 15])[0]

    def business(self):
        """A message between alice and a contact: new thread or reply. Returns (folder, bytes)."""
        rng = self.rng
        when = self.date()
        reply = self.threads and rng.random() < 0.45
        if reply:
            th = rng.choice(self.threads[-400:])
            contact, subject = th["contact"], th["subject"]
            subject = subject if subject.lower().startswith(("re:", "aw:")) else "Re: " + subject
        else:
            contact = rng.choice(self.dir.contacts)
            if rng.random() < 0.07:
                subject = rng.choice(NON_ASCII_SUBJECTS)
            else:
                subject = (f"{rng.choice(['Question about', 'Update on', 'Follow-up:', 'About'])}"
                           f" {rng.choice(TOPICS)}")
            th = None
        comp = contact["company"]
        outbound = rng.random() < 0.45
        caddr = rng.choice(contact["emails"])
        cc = []
        if rng.random() < 0.25 and len(comp["contacts"]) > 1:
            other = rng.choice(comp["contacts"])
            if other is not contact:
                cc.append(mailbox(other["name"], other["emails"][0]))
        if rng.random() < 0.1:
            cc.append(mailbox(*rng.choice(COLLEAGUES)))
        if outbound:
            frm = OWNER
            to = [mailbox(contact["name"], caddr)]
            greeting = f"Hi {contact['name'].split()[0]}"
            sign = self.signature(OWNER[0], "Account Executive", "Example Corp", "+1 555 0100")
            mid_domain = "example.com"
        else:
            frm = (contact["name"], caddr)
            to = [mailbox(*OWNER)]
            if rng.random() < 0.15:
                to.append(mailbox(*rng.choice(COLLEAGUES)))
            greeting = rng.choice(["Hi Alice", "Hello Alice", "Dear Ms. Martin", "Alice"])
            sign = self.signature(contact["name"], contact["title"], comp["name"], contact["phone"])
            mid_domain = caddr.split("@", 1)[1]
        if not outbound and rng.random() < 0.08:
            text = rng.choice(LATIN1_BODIES) + sign
        else:
            text = self.body_text(greeting, sign)
        if th is not None:
            text += self.quote(th["text"], th["from"], th["date"])
        date_s = self.fmt_date(when)
        mid = self.msgid(mid_domain)
        headers = []
        if not outbound:
            headers.append(("Return-Path", f"<{caddr}>"))
            headers.append(("Received", f"from mail.{mid_domain} (mail.{mid_domain} "
                                        f"[203.0.113.{rng.randint(1, 254)}])\r\n\tby mx.example.com "
                                        f"with ESMTPS id {rng.getrandbits(32):08X}\r\n\tfor "
                                        f"<{OWNER[1]}>; {date_s}"))
        headers += [("From", mailbox(*frm)), ("To", ", ".join(to))]
        if cc:
            headers.append(("Cc", ", ".join(cc)))
        headers += [("Subject", encode_subject(subject, rng)), ("Date", date_s),
                    ("Message-ID", mid)]
        if th is not None:
            headers.append(("In-Reply-To", th["ids"][-1]))
            headers.append(("References", "\r\n ".join(th["ids"][-8:])))
        if rng.random() < 0.3:
            headers.append(("X-Mailer", rng.choice(["Microsoft Outlook 16.0", "Apple Mail (2.3731)",
                                                    "Thunderbird 115.4"])))
        if rng.random() < 0.05:
            headers.append(("Importance", "high"))
        raw = self.assemble(headers, self.body(text, self.pick_shape()))
        entry = {"contact": contact, "subject": subject, "text": text, "from": frm,
                 "date": date_s, "ids": (th["ids"] if th else []) + [mid]}
        if th is not None:
            th.update(entry)
        else:
            self.threads.append(entry)
        return ("sent" if outbound else "inbox"), raw

    def mailing_list(self):
        rng = self.rng
        addr, name, list_id = rng.choice(LISTS)
        sender = rng.choice(self.dir.contacts) if rng.random() < 0.5 else None
        frm = mailbox(sender["name"], sender["emails"][0]) if sender else mailbox(name, addr)
        subject = f"[{name.split()[0]}] {rng.choice(['Weekly digest', 'Release 4.2 announced', 'Webinar: ' + rng.choice(TOPICS), 'Question about CI caching', 'Meetup next Thursday'])}"
        text = self.paragraph(8) + f"\n\n_______________________________________________\n{name} mailing list\n{addr}\nhttps://lists.example.org/{list_id}\n"
        headers = [("From", frm), ("To", mailbox(name, addr)), ("Subject", subject),
                   ("Date", self.fmt_date(self.date())), ("Message-ID", self.msgid(list_id)),
                   ("List-Id", f"{name} <{list_id}>"),
                   ("List-Unsubscribe", f"<mailto:{addr.replace('@', '-unsubscribe@')}>, "
                                        f"<https://lists.example.org/unsub/{list_id}>"),
                   ("Precedence", rng.choice(["list", "bulk"]))]
        shape = "html" if "salesweekly" in addr else rng.choice(["plain", "alternative"])
        return "inbox", self.assemble(headers, self.body(text, shape))

    def auto_reply(self):
        rng = self.rng
        contact = rng.choice(self.dir.contacts)
        subject = rng.choice(["Automatic reply: ", "Out of Office: ", "Abwesenheitsnotiz: ",
                              "Réponse automatique : "]) + rng.choice(TOPICS)
        text = (f"I am out of the office until {(self.now + dt.timedelta(days=rng.randint(1, 20))).strftime('%d %B')} "
                "with limited access to email. For urgent matters please contact my colleague.\n")
        headers = [("From", mailbox(contact["name"], contact["emails"][0])),
                   ("To", mailbox(*OWNER)), ("Subject", encode_subject(subject, rng)),
                   ("Date", self.fmt_date(self.date())),
                   ("Message-ID", self.msgid(contact["emails"][0].split("@")[1])),
                   ("Auto-Submitted", "auto-replied")]
        if rng.random() < 0.5:
            headers.append(("X-Autoreply", "yes"))
        return "inbox", self.assemble(headers, self.body(text, "plain"))

    def internal(self):
        rng = self.rng
        a = rng.choice(COLLEAGUES)
        outbound = rng.random() < 0.4
        frm, to = (OWNER, a) if outbound else (a, OWNER)
        text = self.body_text(f"Hi {to[0].split()[0]}", f"\n{frm[0].split()[0]}\n")
        headers = [("From", mailbox(*frm)), ("To", mailbox(*to)),
                   ("Subject", f"{rng.choice(['Pipeline review', 'Forecast', 'Lunch?', 'Q4 targets', 'Deal desk'])}"),
                   ("Date", self.fmt_date(self.date())), ("Message-ID", self.msgid("example.com"))]
        return ("sent" if outbound else "inbox"), self.assemble(headers, self.body(text, self.pick_shape()))

    def message(self):
        kind = self.rng.choices(["business", "list", "auto", "internal"], [78, 10, 5, 7])[0]
        out = {"business": self.business, "list": self.mailing_list, "auto": self.auto_reply,
               "internal": self.internal}[kind]()
        self.seq += 1
        return kind, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="Maildir (tree) to create")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv-dir", help="write companies.csv, contacts.csv, opportunities.csv here")
    ap.add_argument("--now", default="2026-11-25T12:00:00Z",
                    help="ISO 8601 time; messages are dated in the 60 days before it")
    ap.add_argument("--folders", default="inbox,sent", help="inbox,sent (Maildir++) or inbox")
    args = ap.parse_args()

    now = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    folders = {f.strip().lower() for f in args.folders.split(",") if f.strip()}
    if not folders <= {"inbox", "sent"} or "inbox" not in folders:
        sys.exit("--folders must be inbox or inbox,sent")

    rng = random.Random(args.seed)
    directory = Directory(rng)
    if args.csv_dir:
        directory.write_csv(args.csv_dir, now)

    dirs = {"inbox": args.out, "sent": os.path.join(args.out, ".Sent") if "sent" in folders
            else args.out}
    for d in set(dirs.values()):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
    if "sent" in folders:
        open(os.path.join(dirs["sent"], "maildirfolder"), "a").close()

    gen = Generator(rng, directory, now, args.count)
    total_bytes, per_kind, per_folder = 0, {}, {}
    for i in range(args.count):
        kind, (folder, raw) = gen.message()
        ts = int(gen.last_when.timestamp())
        # Most mail has been read (cur/, flag S); the newest few are in new/.
        if folder == "inbox" and i >= args.count - max(1, args.count // 200):
            sub, name = "new", f"{ts}.M{i}P1.gen,S={len(raw)}"
        else:
            flags = "S" if rng.random() < 0.9 else ""
            if kind == "business" and rng.random() < 0.05:
                flags = "FS"
            sub, name = "cur", f"{ts}.M{i}P1.gen,S={len(raw)}:2,{flags}"
        path = os.path.join(dirs[folder], sub, name)
        with open(path, "wb") as f:
            f.write(raw)
        os.utime(path, (ts, ts))
        total_bytes += len(raw)
        per_kind[kind] = per_kind.get(kind, 0) + 1
        per_folder[folder] = per_folder.get(folder, 0) + 1

    print(json.dumps({"out": args.out, "messages": args.count, "bytes": total_bytes,
                      "seed": args.seed, "now": now.isoformat(), "kinds": per_kind,
                      "folders": per_folder, "companies": len(directory.companies),
                      "contacts": len(directory.contacts),
                      "opportunities": len(directory.opps)}, sort_keys=True))


if __name__ == "__main__":
    main()
