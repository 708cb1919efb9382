// SPDX-License-Identifier: Apache-2.0
// Numbered schema migrations. Migration N takes a store from user_version N-1 to
// N; each runs in its own transaction together with the version bump. Never edit
// a released migration: add a new one.
#include "store/schema.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <string>
#include <utility>
#include <vector>

namespace crmcap::store::detail {

namespace {

// v1: the CRM directory.
constexpr const char* k_v1 = R"sql(
CREATE TABLE companies (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  updated_at  TEXT NOT NULL
);
CREATE TABLE company_domains (
  domain      TEXT NOT NULL,
  company_id  TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  PRIMARY KEY (domain, company_id)
) WITHOUT ROWID;
CREATE INDEX company_domains_by_company ON company_domains(company_id);
CREATE TABLE contacts (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  company_id  TEXT REFERENCES companies(id) ON DELETE SET NULL,
  title       TEXT NOT NULL DEFAULT '',
  phone       TEXT NOT NULL DEFAULT '',
  updated_at  TEXT NOT NULL
);
CREATE INDEX contacts_by_company ON contacts(company_id);
CREATE TABLE contact_emails (
  email       TEXT NOT NULL,
  contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
  position    INTEGER NOT NULL,
  PRIMARY KEY (email, contact_id)
) WITHOUT ROWID;
CREATE INDEX contact_emails_by_contact ON contact_emails(contact_id);
CREATE TABLE opportunities (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  company_id  TEXT REFERENCES companies(id) ON DELETE SET NULL,
  stage       TEXT NOT NULL DEFAULT '',
  amount      REAL,
  close_date  TEXT NOT NULL DEFAULT '',
  status      TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
  updated_at  TEXT NOT NULL
);
CREATE INDEX opportunities_by_company_status ON opportunities(company_id, status);
CREATE TABLE opportunity_contacts (
  opportunity_id TEXT NOT NULL REFERENCES opportunities(id) ON DELETE CASCADE,
  contact_id     TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
  role           TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (opportunity_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX opportunity_contacts_by_contact ON opportunity_contacts(contact_id);
)sql";

// v2: activities, where they were seen, mailboxes and sync cursors.
// opportunity_id and contact ids are kept as given, without foreign keys: the
// CRM may delete a record that old activities still name.
constexpr const char* k_v2 = R"sql(
CREATE TABLE mailboxes (
  name        TEXT PRIMARY KEY,
  owner       TEXT NOT NULL DEFAULT '',
  updated_at  TEXT NOT NULL
);
CREATE TABLE activities (
  id             TEXT PRIMARY KEY,
  source_key     TEXT NOT NULL UNIQUE,
  kind           TEXT NOT NULL CHECK (kind IN ('email', 'meeting')),
  direction      TEXT NOT NULL,
  status         TEXT NOT NULL CHECK (status IN ('captured', 'skipped', 'failed')),
  occurred_at    TEXT NOT NULL,
  subject        TEXT NOT NULL DEFAULT '',
  snippet        TEXT NOT NULL DEFAULT '',
  message_id     TEXT NOT NULL DEFAULT '',
  thread_key     TEXT NOT NULL DEFAULT '',
  opportunity_id TEXT NOT NULL DEFAULT '',
  reason         TEXT NOT NULL DEFAULT '',
  rule           TEXT NOT NULL DEFAULT '',
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);
CREATE INDEX activities_by_time ON activities(occurred_at);
CREATE INDEX activities_by_opportunity ON activities(opportunity_id, occurred_at);
CREATE INDEX activities_by_thread ON activities(thread_key, occurred_at);
CREATE TABLE activity_participants (
  activity_id TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
  position    INTEGER NOT NULL,
  address     TEXT NOT NULL,
  name        TEXT NOT NULL DEFAULT '',
  role        TEXT NOT NULL,
  contact_id  TEXT NOT NULL DEFAULT '',
  company_id  TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (activity_id, position)
) WITHOUT ROWID;
CREATE INDEX activity_participants_by_contact ON activity_participants(contact_id);
CREATE INDEX activity_participants_by_company ON activity_participants(company_id);
CREATE TABLE activity_sources (
  activity_id TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
  mailbox     TEXT NOT NULL,
  folder      TEXT NOT NULL,
  uidvalidity INTEGER NOT NULL,
  uid         INTEGER NOT NULL,
  path        TEXT NOT NULL DEFAULT '',
  seen_at     TEXT NOT NULL,
  PRIMARY KEY (mailbox, folder, uidvalidity, uid, path)
) WITHOUT ROWID;
CREATE INDEX activity_sources_by_activity ON activity_sources(activity_id);
CREATE TABLE sync_state (
  mailbox        TEXT NOT NULL,
  folder         TEXT NOT NULL,
  uidvalidity    INTEGER NOT NULL,
  highest_uid    INTEGER NOT NULL,
  highest_modseq INTEGER NOT NULL DEFAULT 0,
  extra          TEXT NOT NULL DEFAULT '',
  updated_at     TEXT NOT NULL,
  PRIMARY KEY (mailbox, folder)
) WITHOUT ROWID;
)sql";

// v3: indexes that let the matcher's ordered lookups read rows in order
// instead of sorting them.
constexpr const char* k_v3 = R"sql(
DROP INDEX opportunities_by_company_status;
CREATE INDEX opportunities_by_company_status ON opportunities(company_id, status, id);
CREATE INDEX opportunity_contacts_by_contact_opportunity
  ON opportunity_contacts(contact_id, opportunity_id);
DROP INDEX opportunity_contacts_by_contact;
DROP INDEX activities_by_thread;
CREATE INDEX activities_by_thread ON activities(thread_key, occurred_at, id);
)sql";

// v4: an integer key for activities (seq, the rowid) that the participant and
// source rows reference, so the rows of a new activity are appended instead of
// landing at random places under a hashed text id; and indexes that cover only
// the rows they are searched for (participants that matched a contact or a
// company, activities with an opportunity), and the server's own id of a
// message where it has one (Gmail's X-GM-MSGID), which outlives UIDVALIDITY.
// Appending, and smaller indexes, keep the pages a backfill writes few.
// The CHECKs are written with OR, not IN: SQLite evaluates an IN list by
// building a temporary table, for every row inserted.
// Children are copied and dropped before their parent: with foreign keys on,
// dropping a parent first would cascade into them.
constexpr const char* k_v4 = R"sql(
CREATE TABLE activities_v4 (
  seq            INTEGER PRIMARY KEY,
  id             TEXT NOT NULL UNIQUE,
  source_key     TEXT NOT NULL UNIQUE,
  kind           TEXT NOT NULL CHECK (kind = 'email' OR kind = 'meeting'),
  direction      TEXT NOT NULL,
  status         TEXT NOT NULL
                 CHECK (status = 'captured' OR status = 'skipped' OR status = 'failed'),
  occurred_at    TEXT NOT NULL,
  subject        TEXT NOT NULL DEFAULT '',
  snippet        TEXT NOT NULL DEFAULT '',
  message_id     TEXT NOT NULL DEFAULT '',
  thread_key     TEXT NOT NULL DEFAULT '',
  opportunity_id TEXT NOT NULL DEFAULT '',
  reason         TEXT NOT NULL DEFAULT '',
  rule           TEXT NOT NULL DEFAULT '',
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);
INSERT INTO activities_v4 (id, source_key, kind, direction, status, occurred_at, subject,
  snippet, message_id, thread_key, opportunity_id, reason, rule, created_at, updated_at)
SELECT id, source_key, kind, direction, status, occurred_at, subject, snippet, message_id,
  thread_key, opportunity_id, reason, rule, created_at, updated_at
FROM activities ORDER BY rowid;
CREATE TABLE activity_participants_v4 (
  activity_seq INTEGER NOT NULL REFERENCES activities_v4(seq) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  address      TEXT NOT NULL,
  name         TEXT NOT NULL DEFAULT '',
  role         TEXT NOT NULL,
  contact_id   TEXT NOT NULL DEFAULT '',
  company_id   TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (activity_seq, position)
) WITHOUT ROWID;
INSERT INTO activity_participants_v4 (activity_seq, position, address, name, role, contact_id,
  company_id)
SELECT a.seq, p.position, p.address, p.name, p.role, p.contact_id, p.company_id
FROM activity_participants p JOIN activities_v4 a ON a.id = p.activity_id;
CREATE TABLE activity_sources_v4 (
  activity_seq INTEGER NOT NULL REFERENCES activities_v4(seq) ON DELETE CASCADE,
  mailbox      TEXT NOT NULL,
  folder       TEXT NOT NULL,
  uidvalidity  INTEGER NOT NULL,
  uid          INTEGER NOT NULL,
  path         TEXT NOT NULL DEFAULT '',
  seen_at      TEXT NOT NULL,
  remote_id    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (mailbox, folder, uidvalidity, uid, path)
) WITHOUT ROWID;
INSERT INTO activity_sources_v4 (activity_seq, mailbox, folder, uidvalidity, uid, path, seen_at)
SELECT a.seq, s.mailbox, s.folder, s.uidvalidity, s.uid, s.path, s.seen_at
FROM activity_sources s JOIN activities_v4 a ON a.id = s.activity_id;
DROP TABLE activity_participants;
DROP TABLE activity_sources;
DROP TABLE activities;
ALTER TABLE activities_v4 RENAME TO activities;
ALTER TABLE activity_participants_v4 RENAME TO activity_participants;
ALTER TABLE activity_sources_v4 RENAME TO activity_sources;
CREATE INDEX activities_by_time ON activities(occurred_at);
CREATE INDEX activities_by_opportunity ON activities(opportunity_id, occurred_at)
  WHERE opportunity_id <> '';
CREATE INDEX activities_by_thread ON activities(thread_key, occurred_at, id)
  WHERE status = 'captured' AND opportunity_id <> '';
CREATE INDEX activity_participants_by_contact ON activity_participants(contact_id)
  WHERE contact_id <> '';
CREATE INDEX activity_participants_by_company ON activity_participants(company_id)
  WHERE company_id <> '';
CREATE INDEX activity_sources_by_activity ON activity_sources(activity_seq);
CREATE INDEX activity_sources_by_remote_id ON activity_sources(mailbox, remote_id)
  WHERE remote_id <> '';
)sql";

// v5: a source remembers when the server reported its message gone from that
// place (IMAP QRESYNC's VANISHED); '' while it is there.
constexpr const char* k_v5 = R"sql(
ALTER TABLE activity_sources ADD COLUMN removed_at TEXT NOT NULL DEFAULT '';
)sql";

// v6: a contact address is found by its key without a +tag too
// (email_key, filled by fill_email_keys), and addresses written before the
// store normalized every one are trimmed and lower-cased. The index holds
// every column the lookup reads (with the table's key, email and
// contact_id), so a lookup by key reads no row.
constexpr const char* k_v6 = R"sql(
ALTER TABLE contact_emails ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
UPDATE OR IGNORE contact_emails SET email = lower(trim(email, ' ' || char(9, 10, 13)));
DELETE FROM contact_emails WHERE email <> lower(trim(email, ' ' || char(9, 10, 13)));
CREATE INDEX contact_emails_by_key ON contact_emails(email_key, position);
)sql";

// v7: a meeting activity's own fields, one row per meeting activity.
constexpr const char* k_v7 = R"sql(
CREATE TABLE activity_meetings (
  activity_seq INTEGER PRIMARY KEY REFERENCES activities(seq) ON DELETE CASCADE,
  event_uid    TEXT NOT NULL,
  starts_at    TEXT NOT NULL,
  ends_at      TEXT NOT NULL,
  all_day      INTEGER NOT NULL DEFAULT 0,
  location     TEXT NOT NULL DEFAULT '',
  cancelled    INTEGER NOT NULL DEFAULT 0,
  sequence     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX activity_meetings_by_uid ON activity_meetings(event_uid);
)sql";

// v8: CalDAV calendars: each one's sync state, and the ETag of every item
// (calendar object resource) whose activities are stored, by href.
constexpr const char* k_v8 = R"sql(
CREATE TABLE calendars (
  mailbox    TEXT NOT NULL,
  url        TEXT NOT NULL,
  sync_token TEXT NOT NULL DEFAULT '',
  ctag       TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL,
  PRIMARY KEY (mailbox, url)
) WITHOUT ROWID;
CREATE TABLE calendar_items (
  mailbox    TEXT NOT NULL,
  calendar   TEXT NOT NULL,
  href       TEXT NOT NULL,
  etag       TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (mailbox, calendar, href)
) WITHOUT ROWID;
)sql";

// v9: a change sequence number per activity (change_seq: the number of the
// commit that last created or changed it), from one counter (changes) that
// only grows, so that a reader of the API's event stream resumes after the
// last number it saw, across restarts; rows already stored take their seq.
// Listings page newest first by (occurred_at, id): the time index holds id,
// so that a page is read in index order, not sorted.
constexpr const char* k_v9 = R"sql(
ALTER TABLE activities ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE activities SET change_seq = seq;
CREATE INDEX activities_by_change ON activities(change_seq);
CREATE TABLE changes (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  last_seq INTEGER NOT NULL
);
INSERT INTO changes (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM activities;
DROP INDEX activities_by_time;
CREATE INDEX activities_by_time ON activities(occurred_at, id);
)sql";

// v10: a meeting attendee's answer (PARTSTAT), '' when none.
constexpr const char* k_v10 = R"sql(
ALTER TABLE activity_participants ADD COLUMN partstat TEXT NOT NULL DEFAULT '';
)sql";

// v11: a participant that matched a contact or a company carries its
// activity's occurred_at, and the indexes of such participants hold it, so
// that a contact's or a company's activities are read newest first from the
// index and a page stops after its rows, instead of reading and sorting all
// of them. The indexes had one entry per matched participant before: a
// commit writes no more entries than it did, each one 20 bytes longer.
// Unmatched participants keep '' (no index holds them).
constexpr const char* k_v11 = R"sql(
ALTER TABLE activity_participants ADD COLUMN occurred_at TEXT NOT NULL DEFAULT '';
UPDATE activity_participants
SET occurred_at = (SELECT occurred_at FROM activities WHERE seq = activity_seq)
WHERE contact_id <> '' OR company_id <> '';
DROP INDEX activity_participants_by_contact;
CREATE INDEX activity_participants_by_contact ON activity_participants(contact_id, occurred_at)
  WHERE contact_id <> '';
DROP INDEX activity_participants_by_company;
CREATE INDEX activity_participants_by_company ON activity_participants(company_id, occurred_at)
  WHERE company_id <> '';
)sql";

// v12: the index of an activity's places holds every column a page reads of
// them (the table's key, listed so that it keeps its order, then remote_id
// and removed_at), so a page reads no row of the table itself: one seek an
// activity fewer, and one leaf page fewer, of a table as large as the
// activities'. An IMAP place's entry grows by two bytes (both '').
constexpr const char* k_v12 = R"sql(
DROP INDEX activity_sources_by_activity;
CREATE INDEX activity_sources_by_activity ON activity_sources(activity_seq, mailbox, folder,
  uidvalidity, uid, path, remote_id, removed_at);
)sql";

// Fills email_key of every contact address (v6).
void fill_email_keys(SQLite::Database& db) {
  std::vector<std::pair<std::string, std::string>> rows;  // (email, contact_id)
  {
    SQLite::Statement q(db, "SELECT email, contact_id FROM contact_emails");
    while (q.executeStep())
      rows.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getString());
  }
  SQLite::Statement up(
      db, "UPDATE contact_emails SET email_key = ? WHERE email = ? AND contact_id = ?");
  for (const auto& [email, contact] : rows) {
    up.bind(1, without_plus_tag(email));
    up.bind(2, email);
    up.bind(3, contact);
    up.exec();
    up.reset();
  }
}

constexpr Migration k_migrations[] = {{k_v1, nullptr},  {k_v2, nullptr},  {k_v3, nullptr},
                                      {k_v4, nullptr},  {k_v5, nullptr},  {k_v6, fill_email_keys},
                                      {k_v7, nullptr},  {k_v8, nullptr},  {k_v9, nullptr},
                                      {k_v10, nullptr}, {k_v11, nullptr}, {k_v12, nullptr}};

}  // namespace

std::span<const Migration> migrations() noexcept { return k_migrations; }

}  // namespace crmcap::store::detail
