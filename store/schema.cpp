// SPDX-License-Identifier: Apache-2.0
// Numbered schema migrations. Migration N takes a store from user_version N-1 to
// N; each runs in its own transaction together with the version bump. Never edit
// a released migration: add a new one.
#include "store/schema.hpp"

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

constexpr const char* k_migrations[] = {k_v1, k_v2, k_v3};

}  // namespace

std::span<const char* const> migrations() noexcept { return k_migrations; }

}  // namespace crmcap::store::detail
