// SPDX-License-Identifier: Apache-2.0
#include "store/store.hpp"
#include "store/schema.hpp"
#include "tests/support/raw_sql.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

namespace fs = std::filesystem;
using namespace crmcap::store;
using crmcap::test::exec_raw;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "crmcap-store-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// Reads one integer with the plain SQLite C API, independent of the store code.
std::int64_t query_int(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  std::int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

// A small CRM directory, as the CSV import writes it (normalized addresses
// and domains). The import itself is tested in tests/daemon.
std::vector<Company> companies() {
  return {{"CO-1", "Acme Corp", {"acme.com", "acme.co.uk"}},
          {"CO-2", "Globex", {"globex.com"}},
          {"CO-3", "Initech, Inc.", {"initech.com"}}};
}
std::vector<Contact> contacts() {
  return {{"C-1", "Jane Doe", {"jane@acme.com", "jd@acme.co.uk"}, "CO-1", "CTO", "+1 555"},
          {"C-2", "Hank Scorpio", {"hank@globex.com"}, "CO-2", "", ""},
          {"C-3", "Peter Gibbons", {"peter@initech.com"}, "", "", ""}};
}
std::vector<Opportunity> opportunities() {
  std::vector<Opportunity> v(3);
  v[0] = {.id = "O-1", .name = "Acme renewal", .company_id = "CO-1", .stage = "Proposal"};
  v[0].amount = 12000.50;
  v[0].close_date = "2026-12-31";
  v[0].contacts = {{"C-1", ""}};
  v[1] = {.id = "O-2", .name = "Acme old deal", .company_id = "CO-1", .stage = "Closed"};
  v[1].amount = 5000;
  v[1].close_date = "2025-01-15";
  v[1].status = OpportunityStatus::won;
  v[2] = {.id = "O-3", .name = "Globex pilot", .company_id = "CO-2", .stage = "Qualify"};
  v[2].contacts = {{"C-2", ""}};
  return v;
}

struct Loaded {
  TempDir dir;
  std::unique_ptr<Store> store;
  Loaded() {
    store = Store::open((dir / "capture.db").string()).value();
    EXPECT_TRUE(store->upsert_companies(companies(), false));
    EXPECT_TRUE(store->upsert_contacts(contacts(), false));
    EXPECT_TRUE(store->upsert_opportunities(opportunities(), false));
  }
};

}  // namespace

TEST(StoreMigrations, FreshStoreIsAtLatestVersionWithWal) {
  TempDir dir;
  auto s = Store::open((dir / "a.db").string());
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ((*s)->schema_version(), Store::latest_schema_version());
  EXPECT_GE(Store::latest_schema_version(), 2);
  EXPECT_EQ(query_int(dir / "a.db", "PRAGMA user_version"), Store::latest_schema_version());
  EXPECT_EQ(query_int(dir / "a.db", "SELECT count(*) FROM sqlite_master WHERE name='activities'"),
            1);
}

TEST(StoreMigrations, UpgradesAnOlderStoreKeepingItsRows) {
  TempDir dir;
  const std::string path = (dir / "old.db").string();
  {
    auto s = detail::open_at_version(path, 1).value();
    EXPECT_EQ(s->schema_version(), 1);
    ASSERT_TRUE(s->upsert_companies(companies(), false));
  }
  EXPECT_EQ(query_int(dir / "old.db", "PRAGMA user_version"), 1);
  EXPECT_EQ(query_int(dir / "old.db", "SELECT count(*) FROM sqlite_master WHERE name='activities'"),
            0);
  auto s = Store::open(path).value();
  EXPECT_EQ(s->schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s->stats().value().companies, 3);
  EXPECT_EQ(query_int(dir / "old.db", "SELECT count(*) FROM sqlite_master WHERE name='activities'"),
            1);
}

// Schema 6 finds contact addresses without their +tags, and brings addresses
// stored before in another case or with spaces to the normalized form.
TEST(StoreMigrations, ContactAddressesGetTheirTagFreeKey) {
  TempDir dir;
  const std::string path = (dir / "v5.db").string();
  { auto s = detail::open_at_version(path, 5).value(); }
  exec_raw(dir / "v5.db",
           "INSERT INTO contacts (id, updated_at) VALUES ('C-1', 'x'), ('C-2', 'x');"
           "INSERT INTO contact_emails (email, contact_id, position) VALUES "
           "(' Jane+CRM@ACME.com ', 'C-1', 0), ('joe@acme.com', 'C-2', 0), "
           "('JOE@Acme.com', 'C-2', 1), ('joe+x@acme.com', 'C-2', 2);");
  auto s = Store::open(path).value();
  EXPECT_EQ(s->schema_version(), Store::latest_schema_version());
  for (const char* a : {"jane@acme.com", "jane+crm@acme.com", "jane+other@acme.com"}) {
    auto c = s->contact_by_email(a, PlusTags::ignored).value();
    ASSERT_TRUE(c) << a;
    EXPECT_EQ(c->id, "C-1");
  }
  EXPECT_EQ(s->contact_by_email("jane+crm@acme.com", PlusTags::distinct).value()->id, "C-1");
  EXPECT_FALSE(s->contact_by_email("jane@acme.com", PlusTags::distinct).value());
  // joe's two spellings of one address are one row now.
  EXPECT_EQ(query_int(dir / "v5.db", "SELECT count(*) FROM contact_emails WHERE contact_id='C-2'"),
            2);
  EXPECT_EQ(query_int(dir / "v5.db", "SELECT count(*) FROM contact_emails WHERE email_key = ''"),
            0);
}

// A contact listed with a tagged address is found by mail from it in any
// case and with any tag; one that lists the address exactly wins.
TEST(StoreDirectory, TaggedAddressesAreFoundWhenTagsAreIgnored) {
  Loaded l;
  Contact tagged{"C-8", "Sam", {"sam+sales@acme.com"}, "", "", ""};
  ASSERT_TRUE(l.store->upsert_contacts({tagged}, false));
  EXPECT_EQ(l.store->contact_by_email("sam@acme.com", PlusTags::ignored).value()->id, "C-8");
  EXPECT_EQ(l.store->contact_by_email("sam+x@acme.com", PlusTags::ignored).value()->id, "C-8");
  EXPECT_FALSE(l.store->contact_by_email("sam@acme.com", PlusTags::distinct).value());
  Contact plain{"C-9", "Sam", {"sam@acme.com"}, "", "", ""};
  ASSERT_TRUE(l.store->upsert_contacts({plain}, false));
  EXPECT_EQ(l.store->contact_by_email("sam+x@acme.com", PlusTags::ignored).value()->id, "C-9");
  EXPECT_EQ(l.store->contact_by_email("sam+sales@acme.com", PlusTags::distinct).value()->id, "C-8");
}

// The daemon and the command-line tool may open an old store at the same
// moment. Both read its version, then wait for the write lock (held here by a
// third connection until both are waiting); the one that gets it second must
// find the schema upgraded already and not run the same migration again.
TEST(StoreMigrations, TwoProcessesUpgradingOneStoreAtOnceBothSucceed) {
  TempDir dir;
  const std::string path = (dir / "old.db").string();
  {
    auto s = detail::open_at_version(path, 1).value();
    ASSERT_TRUE(s->upsert_companies(companies(), false));
  }
  sqlite3* lock = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &lock), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::optional<Result<std::unique_ptr<Store>>> first, second;
  std::thread a([&] { first.emplace(Store::open(path)); });
  std::thread b([&] { second.emplace(Store::open(path)); });
  // Both have read version 1 and wait (busy timeout 5 s) for the lock.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(sqlite3_exec(lock, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  a.join();
  b.join();
  sqlite3_close(lock);
  ASSERT_TRUE(*first) << first->error().message;
  ASSERT_TRUE(*second) << second->error().message;
  EXPECT_EQ((**first)->schema_version(), Store::latest_schema_version());
  EXPECT_EQ((**second)->schema_version(), Store::latest_schema_version());
  EXPECT_EQ((**second)->stats().value().companies, 3);
  EXPECT_EQ(query_int(dir / "old.db", "PRAGMA user_version"), Store::latest_schema_version());
}

TEST(StoreMigrations, RefusesAStoreFromANewerVersion) {
  TempDir dir;
  const std::string path = (dir / "new.db").string();
  { auto s = Store::open(path).value(); }
  exec_raw(dir / "new.db", "PRAGMA user_version = 999");
  auto s = Store::open(path);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, make_error_code(Errc::newer_schema));
  EXPECT_NE(s.error().message.find("999"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("new.db"), std::string::npos) << s.error().message;
}

TEST(StoreMigrations, RefusesAFileThatIsNotADatabase) {
  TempDir dir;
  std::ofstream(dir / "junk.db") << std::string(4096, 'x');
  auto s = Store::open((dir / "junk.db").string());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("junk.db"), std::string::npos);
}

TEST(StoreDirectory, LookupsByNormalizedAddressAndDomain) {
  Loaded l;
  auto c = l.store->contact_by_email("jane@acme.com", PlusTags::distinct).value();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, "C-1");
  EXPECT_EQ(c->company_id, "CO-1");
  EXPECT_EQ(l.store->contact_by_email("jd@acme.co.uk", PlusTags::distinct).value()->id, "C-1");
  EXPECT_FALSE(l.store->contact_by_email("nobody@acme.com", PlusTags::distinct).value());
  auto cos = l.store->companies_by_domain("acme.co.uk").value();
  ASSERT_EQ(cos.size(), 1u);
  EXPECT_EQ(cos[0].id, "CO-1");
  EXPECT_EQ(l.store->company("CO-3").value()->name, "Initech, Inc.");
  EXPECT_TRUE(l.store->companies_by_domain("example.org").value().empty());
}

TEST(StoreDirectory, OpenOpportunitiesOnlyAndRoles) {
  Loaded l;
  auto o = l.store->open_opportunities_of_company("CO-1").value();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].id, "O-1");
  EXPECT_DOUBLE_EQ(o[0].amount.value(), 12000.50);
  auto by_contact = l.store->open_opportunities_of_contact("C-2").value();
  ASSERT_EQ(by_contact.size(), 1u);
  EXPECT_EQ(by_contact[0].id, "O-3");
  EXPECT_FALSE(l.store->opportunity("O-3").value()->amount);
  EXPECT_EQ(l.store->opportunity("O-1").value()->contacts.size(), 1u);
  auto st = l.store->stats().value();
  EXPECT_EQ(st.companies, 3);
  EXPECT_EQ(st.company_domains, 4);
  EXPECT_EQ(st.contacts, 3);
  EXPECT_EQ(st.contact_emails, 4);
  EXPECT_EQ(st.opportunities, 3);
  EXPECT_EQ(st.open_opportunities, 2);
}

TEST(StoreDirectory, UpsertUpdatesInPlaceAndReplaceRemovesAbsentRows) {
  Loaded l;
  ASSERT_TRUE(l.store->upsert_contacts({{"C-1", "Jane Smith", {"jane.smith@acme.com"}, "", "", ""}},
                                       false));
  EXPECT_EQ(l.store->stats().value().contacts, 3);
  EXPECT_FALSE(l.store->contact_by_email("jane@acme.com", PlusTags::distinct).value());
  EXPECT_EQ(l.store->contact_by_email("jane.smith@acme.com", PlusTags::distinct).value()->name,
            "Jane Smith");
  ASSERT_TRUE(l.store->upsert_contacts({{"C-2", "Hank", {"hank@globex.com"}, "", "", ""}}, true));
  auto st = l.store->stats().value();
  EXPECT_EQ(st.contacts, 1);
  EXPECT_EQ(st.contact_emails, 1);
  // C-1 held a role on O-1: removing the contact removes the role, not the deal.
  EXPECT_EQ(st.opportunity_contacts, 1);
  EXPECT_EQ(st.opportunities, 3);
}

TEST(StoreDirectory, MissingIdsAreThoseNotInTheStore) {
  Loaded l;
  EXPECT_EQ(l.store->missing_company_ids({"CO-1", "CO-404", "CO-3"}).value(),
            std::vector<std::string>{"CO-404"});
  EXPECT_EQ(l.store->missing_contact_ids({"C-77", "C-2"}).value(),
            std::vector<std::string>{"C-77"});
}

namespace {
Activity make_activity(const std::string& key, const std::string& when, const std::string& opp) {
  Activity a;
  a.id = "id-" + key;
  a.source_key = key;
  a.occurred_at = when;
  a.subject = "Subject " + key;
  a.thread_key = "thread-1";
  a.opportunity_id = opp;
  a.reason = "because";
  a.participants = {{"jane@acme.com", "Jane", "from", "C-1", "CO-1"},
                    {"alice@example.com", "Alice", "to", "", ""}};
  return a;
}
}  // namespace

TEST(StoreActivities, UpsertBySourceKeyAddsSourcesAndNeverDuplicates) {
  Loaded l;
  Batch b;
  b.items.push_back({make_activity("mid:1@x", "2026-11-01T10:00:00Z", "O-1"),
                     SourceRef{"alice", "INBOX", 7, 1, ""}});
  b.cursor = SyncCursor{"alice", "INBOX", 7, 1, 0, ""};
  ASSERT_TRUE(l.store->commit(b));
  // The same message seen in Sent, with a changed snippet.
  Batch b2;
  auto again = make_activity("mid:1@x", "2026-11-01T10:00:00Z", "O-1");
  again.snippet = "new";
  b2.items.push_back({again, SourceRef{"alice", "Sent", 9, 4, ""}});
  ASSERT_TRUE(l.store->commit(b2));
  auto all = l.store->list({}).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].snippet, "new");
  EXPECT_EQ(all[0].sources.size(), 2u);
  EXPECT_EQ(all[0].contact_ids, std::vector<std::string>{"C-1"});
  EXPECT_EQ(all[0].participants.size(), 2u);
  EXPECT_EQ(l.store->cursor("alice", "INBOX").value()->highest_uid, 1);
  EXPECT_FALSE(l.store->cursor("alice", "Sent").value());
  auto known = l.store->known_uids("alice", "Sent", 9).value();
  ASSERT_EQ(known.size(), 1u);
  EXPECT_EQ(known[0].second, "mid:1@x");
  EXPECT_EQ(l.store->thread_opportunity("thread-1", "2026-11-02T00:00:00Z").value().value(), "O-1");
  EXPECT_FALSE(l.store->thread_opportunity("thread-1", "2026-11-01T10:00:00Z").value());
}

TEST(StoreMigrations, UpgradesActivitiesTheirParticipantsAndSources) {
  // Version 3 keyed participants and sources by the text id; version 4 by an
  // integer key. Every row and every way of reading it must survive.
  TempDir dir;
  const std::string path = (dir / "v3.db").string();
  {
    auto s = detail::open_at_version(path, 3).value();
    ASSERT_EQ(s->schema_version(), 3);
  }
  // Rows as version 3 wrote them (the store's code speaks the latest schema
  // only, so they are written with plain SQL).
  exec_raw(dir / "v3.db", R"sql(
    INSERT INTO activities (id, source_key, kind, direction, status, occurred_at, subject,
      snippet, message_id, thread_key, opportunity_id, reason, rule, created_at, updated_at)
    VALUES ('id-mid:1@x', 'mid:1@x', 'email', 'inbound', 'captured', '2026-11-01T10:00:00Z',
            'Subject mid:1@x', '', '', 'thread-1', 'O-1', 'because', '', 'c', 'u'),
           ('id-mid:2@x', 'mid:2@x', 'email', 'inbound', 'captured', '2026-11-03T10:00:00Z',
            'Subject mid:2@x', '', '', 'thread-1', '', 'because', '', 'c', 'u');
    INSERT INTO activity_participants (activity_id, position, address, name, role, contact_id,
      company_id)
    VALUES ('id-mid:1@x', 0, 'jane@acme.com', 'Jane', 'from', 'C-1', 'CO-1'),
           ('id-mid:1@x', 1, 'alice@example.com', 'Alice', 'to', '', ''),
           ('id-mid:2@x', 0, 'hank@globex.com', 'Hank', 'from', 'C-2', 'CO-2'),
           ('id-mid:2@x', 1, 'alice@example.com', 'Alice', 'to', '', '');
    INSERT INTO activity_sources (activity_id, mailbox, folder, uidvalidity, uid, path, seen_at)
    VALUES ('id-mid:1@x', 'alice', 'INBOX', 7, 1, '', 's'),
           ('id-mid:2@x', 'alice', 'INBOX', 7, 2, '', 's'),
           ('id-mid:1@x', 'alice', 'Sent', 3, 9, '', 's');
    INSERT INTO sync_state (mailbox, folder, uidvalidity, highest_uid, highest_modseq, extra,
      updated_at) VALUES ('alice', 'INBOX', 7, 2, 0, '', 'u');
  )sql");
  auto s = Store::open(path).value();
  EXPECT_EQ(s->schema_version(), Store::latest_schema_version());
  auto all = s->list({}).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "id-mid:1@x");
  EXPECT_EQ(all[0].participants.size(), 2u);
  EXPECT_EQ(all[0].participants[0].address, "jane@acme.com");
  EXPECT_EQ(all[0].sources.size(), 2u);
  EXPECT_EQ(all[1].contact_ids, std::vector<std::string>{"C-2"});
  EXPECT_EQ(s->get("id-mid:2@x").value()->source_key, "mid:2@x");
  EXPECT_EQ(s->by_source_key("mid:1@x").value()->sources.size(), 2u);
  EXPECT_EQ(s->known_uids("alice", "Sent", 3).value().size(), 1u);
  EXPECT_EQ(s->known_uids("alice", "INBOX", 7).value().size(), 2u);
  EXPECT_EQ(s->cursor("alice", "INBOX").value()->highest_uid, 2);
  ActivityFilter f;
  f.contact_id = "C-2";
  EXPECT_EQ(s->list(f).value().at(0).source_key, "mid:2@x");
  f = {};
  f.company_id = "CO-1";
  EXPECT_EQ(s->list(f).value().at(0).source_key, "mid:1@x");
  f = {};
  f.opportunity_id = "O-1";
  EXPECT_EQ(s->list(f).value().size(), 1u);
  EXPECT_EQ(s->thread_opportunity("thread-1", "2026-11-02T00:00:00Z").value().value(), "O-1");
  // Rows written before the upgrade are updated in place after it.
  Batch b;
  auto changed = make_activity("mid:2@x", "2026-11-03T10:00:00Z", "O-2");
  b.items.push_back({changed, SourceRef{"alice", "INBOX", 7, 2, ""}});
  auto c = s->commit(b);
  ASSERT_TRUE(c) << c.error().message;
  all = s->list({}).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].opportunity_id, "O-2");
  EXPECT_EQ(all[1].participants.size(), 2u);
  EXPECT_EQ(all[1].contact_ids, std::vector<std::string>{"C-1"});
  // Places stored before version 5 are there until the server says otherwise.
  EXPECT_TRUE(all[0].sources.at(0).removed_at.empty());
  Batch gone;
  gone.cursor = SyncCursor{"alice", "INBOX", 7, 2, 5, ""};
  gone.removed_uids = {{1, 1}};
  ASSERT_TRUE(s->commit(gone));
  const auto one = s->by_source_key("mid:1@x").value().value();
  ASSERT_EQ(one.sources.size(), 2u);
  EXPECT_EQ(one.sources[0].folder, "INBOX");
  EXPECT_FALSE(one.sources[0].removed_at.empty());
  EXPECT_TRUE(one.sources[1].removed_at.empty());  // Sent
}

// A backfill's commits do not wait for whole checkpoints: from half the
// checkpoint length (5,000 WAL frames) on, a thread of the store copies the
// WAL into the database while commits go on, so the database file grows
// before the writer's own checkpoint at 10,000 frames; and that checkpoint
// keeps the WAL from growing without bound.
namespace {

// A file's size, 0 when there is none.
std::uintmax_t size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? std::uintmax_t{0} : n;
}

// Commits 50 activities with 16 KB snippets (about 0.85 MiB of WAL),
// numbered from `n` on.
void commit_large_batch(Store& s, int& n) {
  Batch b;
  for (int i = 0; i < 50; ++i, ++n) {
    auto a = make_activity("mid:" + std::to_string(n) + "@x", "2026-11-01T10:00:00Z", "");
    a.snippet = std::string(16000, static_cast<char>('a' + n % 26));
    b.items.push_back({a, SourceRef{"alice", "INBOX", 1, n + 1}});
  }
  ASSERT_TRUE(s.commit(b));
}

}  // namespace

TEST(StoreActivities, TheWalIsCopiedInTheBackgroundAndStaysBounded) {
  TempDir d;
  const std::string path = (d / "wal.db").string();
  auto s = Store::open(path).value();
  const auto size_of = size_or_zero;
  constexpr std::uintmax_t frame = 4096 + 24;  // a page and its frame header
  const std::uintmax_t start = size_of(path);
  int n = 0;
  std::uintmax_t written = 0, most = 0;
  const auto commit_some = [&] {
    const auto before = size_of(path + "-wal");
    commit_large_batch(*s, n);
    const auto after = size_of(path + "-wal");
    written += after > before ? after - before : after;  // the WAL starts over
    most = std::max(most, after);
  };
  while (size_of(path + "-wal") < 5000 * frame) commit_some();
  ASSERT_LT(size_of(path + "-wal"), 10000 * frame);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (size_of(path) <= start && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(size_of(path), start) << "nothing was copied into the database";
  while (written < 40000 * frame) commit_some();
  EXPECT_LT(most, 25000 * frame) << "the WAL grew to " << most << " bytes";
  EXPECT_EQ(s->list({}).value().size(), static_cast<std::size_t>(n));
}

// Once commits stop (a backfill is done), the WAL is copied into the
// database and its file cut to nothing; while they go on, not; and a reader
// in the way delays the cut, without being blocked by it.
TEST(StoreActivities, AfterAQuietSpellTheWalFileIsCutToNothing) {
  TempDir d;
  const std::string path = (d / "idle.db").string();
  StoreOptions o;
  o.wal_idle_truncate = std::chrono::milliseconds(1000);
  auto s = Store::open(path, o).value();
  const auto wal_size = [&] { return size_or_zero(path + "-wal"); };
  const auto wait_for_empty_wal = [&](std::chrono::seconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (wal_size() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return wal_size() == 0;
  };
  int n = 0;
  std::uintmax_t most = 0;
  const auto commit_some = [&] {
    commit_large_batch(*s, n);
    most = std::max(most, wal_size());
  };
  for (int i = 0; i < 20; ++i) commit_some();
  ASSERT_GT(most, std::uintmax_t{4} << 20);
  EXPECT_TRUE(wait_for_empty_wal(std::chrono::seconds(10))) << "the WAL is " << wal_size();
  EXPECT_EQ(s->list({}).value().size(), static_cast<std::size_t>(n));

  // Commits closer together than the quiet spell keep putting the cut off.
  for (int i = 0; i < 8; ++i) {
    commit_some();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_GT(wal_size(), 0u) << "cut while commits went on, after commit " << i;
  }

  // A reader holding a snapshot that needs the WAL: no cut while it reads.
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM activities;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  commit_some();  // the writer is not held up by the reader
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_GT(wal_size(), 0u);
  // The reader still reads (the snapshot is intact), then ends.
  EXPECT_EQ(sqlite3_exec(reader, "SELECT count(*) FROM activity_participants; COMMIT", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close_v2(reader);
  EXPECT_TRUE(wait_for_empty_wal(std::chrono::seconds(10))) << "the WAL is " << wal_size();
  EXPECT_EQ(s->list({}).value().size(), static_cast<std::size_t>(n));
}

TEST(StoreActivities, FiltersByContactCompanyOpportunityAndTime) {
  Loaded l;
  Batch b;
  b.items.push_back({make_activity("k1", "2026-11-01T10:00:00Z", "O-1"), SourceRef{"local", "x"}});
  auto other = make_activity("k2", "2026-11-03T10:00:00Z", "");
  other.participants[0] = {"hank@globex.com", "Hank", "from", "C-2", "CO-2"};
  b.items.push_back({other, SourceRef{"local", "x", 0, 0, "/a"}});
  ASSERT_TRUE(l.store->commit(b));
  ActivityFilter f;
  f.contact_id = "C-2";
  EXPECT_EQ(l.store->list(f).value().size(), 1u);
  f = {};
  f.company_id = "CO-1";
  EXPECT_EQ(l.store->list(f).value().at(0).source_key, "k1");
  f = {};
  f.opportunity_id = "O-1";
  EXPECT_EQ(l.store->list(f).value().size(), 1u);
  f = {};
  f.since = "2026-11-02T00:00:00Z";
  EXPECT_EQ(l.store->list(f).value().at(0).source_key, "k2");
  f = {};
  f.limit = 1;
  EXPECT_EQ(l.store->list(f).value().size(), 1u);
}

TEST(StoreActivities, AFailedCommitWritesNeitherRowsNorCursor) {
  Loaded l;
  Batch b;
  b.items.push_back(
      {make_activity("k1", "2026-11-01T10:00:00Z", ""), SourceRef{"alice", "INBOX", 1, 5}});
  auto bad = make_activity("k2", "2026-11-01T10:00:00Z", "");
  bad.id = "id-k1";  // collides with the first row's primary key: the batch must fail whole
  b.items.push_back({bad, SourceRef{"alice", "INBOX", 1, 6}});
  b.cursor = SyncCursor{"alice", "INBOX", 1, 6, 0, ""};
  auto r = l.store->commit(b);
  ASSERT_FALSE(r);
  EXPECT_TRUE(l.store->list({}).value().empty());
  EXPECT_FALSE(l.store->cursor("alice", "INBOX").value());
}

TEST(StoreActivities, SeenAgainAddsOnlyAPlaceAndKnowsKeys) {
  Loaded l;
  Batch b;
  b.items.push_back({make_activity("mid:1@x", "2026-11-01T10:00:00Z", ""),
                     SourceRef{"alice", "INBOX", 7, 1, ""}});
  ASSERT_TRUE(l.store->commit(b));
  Batch b2;
  b2.seen_again.push_back({"mid:1@x", SourceRef{"alice", "Sent", 3, 9, ""}});
  b2.seen_again.push_back({"mid:unknown@x", SourceRef{"alice", "Sent", 3, 10, ""}});
  b2.cursor = SyncCursor{"alice", "Sent", 3, 10, 0, ""};
  ASSERT_TRUE(l.store->commit(b2));
  auto all = l.store->list({}).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].sources.size(), 2u);
  EXPECT_EQ(l.store->known_uids("alice", "Sent", 3).value().size(), 1u);
  EXPECT_EQ(l.store->have_source_keys({"mid:1@x", "mid:2@x"}).value(),
            (std::vector<bool>{true, false}));
  // Stored inbound (make_activity's direction), with no place in Sent yet
  // (the seen-again place is in Sent: it has one); an unknown key is not
  // stored.
  auto copies = [&](std::string_view mailbox, std::string_view folder,
                    std::vector<std::string> keys) {
    std::vector<std::optional<std::pair<Direction, bool>>> out;
    for (const auto& c : l.store->stored_copies(mailbox, folder, keys).value()) {
      out.push_back(c ? std::optional(std::pair(c->direction, c->in_folder)) : std::nullopt);
    }
    return out;
  };
  using Seen = std::vector<std::optional<std::pair<Direction, bool>>>;
  EXPECT_EQ(copies("alice", "Sent", {"mid:1@x", "mid:2@x"}),
            (Seen{std::pair(Direction::inbound, true), std::nullopt}));
  Batch sent;
  auto out = make_activity("mid:1@x", "2026-11-01T10:00:00Z", "");
  out.direction = Direction::outbound;
  sent.items.push_back({out, SourceRef{"alice", "Sent", 3, 9, ""}});
  ASSERT_TRUE(l.store->commit(sent));
  // A place in the folder asked about, of this mailbox, under any UIDVALIDITY.
  EXPECT_EQ(copies("alice", "Sent", {"mid:1@x"}), (Seen{std::pair(Direction::outbound, true)}));
  EXPECT_EQ(copies("alice", "Archive", {"mid:1@x"}), (Seen{std::pair(Direction::outbound, false)}));
  EXPECT_EQ(copies("bob", "Sent", {"mid:1@x"}), (Seen{std::pair(Direction::outbound, false)}));
  EXPECT_EQ(l.store->list({}).value().size(), 1u);
}

TEST(StoreActivities, ADecisionThatChangesOnlyItsParticipantsReplacesThem) {
  // The same decision, but for one more participant (a Bcc that only the
  // copy kept as sent mail lists).
  Loaded l;
  Batch b;
  b.items.push_back({make_activity("mid:1@x", "2026-11-01T10:00:00Z", ""),
                     SourceRef{"alice", "INBOX", 7, 1, ""}});
  ASSERT_TRUE(l.store->commit(b));
  auto more = make_activity("mid:1@x", "2026-11-01T10:00:00Z", "");
  more.participants.push_back({"bob@acme.com", "Bob", "bcc", "C-2", "CO-1"});
  Batch b2;
  b2.items.push_back({more, SourceRef{"alice", "Sent", 3, 9, ""}});
  ASSERT_TRUE(l.store->commit(b2));
  auto got = l.store->by_source_key("mid:1@x").value().value();
  ASSERT_EQ(got.participants.size(), 3u);
  EXPECT_EQ(got.participants[2].address, "bob@acme.com");
  EXPECT_EQ(got.participants[2].role, "bcc");
  EXPECT_EQ(got.contact_ids, (std::vector<std::string>{"C-1", "C-2"}));
  EXPECT_EQ(got.sources.size(), 2u);

  // A participant's field changed (matched to a contact since): replaced too.
  auto matched = more;
  matched.participants[1].contact_id = "C-3";
  Batch b3;
  b3.items.push_back({matched, SourceRef{"alice", "Sent", 3, 9, ""}});
  ASSERT_TRUE(l.store->commit(b3));
  got = l.store->by_source_key("mid:1@x").value().value();
  ASSERT_EQ(got.participants.size(), 3u);
  EXPECT_EQ(got.participants[1].contact_id, "C-3");

  // One fewer: the stored list is not kept longer than the decision's.
  Batch b4;
  b4.items.push_back(
      {make_activity("mid:1@x", "2026-11-01T10:00:00Z", ""), SourceRef{"alice", "Sent", 3, 9, ""}});
  ASSERT_TRUE(l.store->commit(b4));
  EXPECT_EQ(l.store->by_source_key("mid:1@x").value().value().participants.size(), 2u);
}

TEST(StoreActivities, RemovedUidsMarkOnlyTheirFolderAndUidValidityAndKeepTheActivity) {
  Loaded l;
  Batch b;
  // UIDs 1..4 in INBOX at UIDVALIDITY 7; UID 2 at another UIDVALIDITY, in
  // another folder and in another mailbox; and a local file.
  for (int uid = 1; uid <= 4; ++uid) {
    b.items.push_back(
        {make_activity("mid:" + std::to_string(uid) + "@x", "2026-11-01T10:00:00Z", ""),
         SourceRef{"alice", "INBOX", 7, uid, ""}});
  }
  b.seen_again.push_back({"mid:2@x", SourceRef{"alice", "INBOX", 8, 2, ""}});
  b.seen_again.push_back({"mid:2@x", SourceRef{"alice", "Sent", 7, 2, ""}});
  b.seen_again.push_back({"mid:2@x", SourceRef{"bob", "INBOX", 7, 2, ""}});
  b.items.push_back({make_activity("mid:file@x", "2026-11-01T10:00:00Z", ""),
                     SourceRef{"local", "", 0, 0, "/tmp/a.eml"}});
  // A meeting that the message at UID 3 decided (iMIP), placed in it.
  b.items.push_back({make_activity("ical:m", "2026-11-01T10:00:00Z", ""),
                     SourceRef{"alice", "INBOX", 7, 3, "#ical:m"}});
  ASSERT_TRUE(l.store->commit(b));

  Batch gone;
  gone.cursor = SyncCursor{"alice", "INBOX", 7, 4, 99, ""};
  gone.removed_uids = {{2, 3}, {10, 20}};  // 10..20 were never stored
  ASSERT_TRUE(l.store->commit(gone));
  EXPECT_EQ(l.store->cursor("alice", "INBOX").value()->highest_modseq, 99);

  std::map<std::string, std::string> removed;  // "mailbox folder uidvalidity uid" -> removed_at
  for (const auto& a : l.store->list({}).value()) {
    for (const auto& s : a.sources) {
      removed[s.mailbox + " " + s.folder + " " + std::to_string(s.uidvalidity) + " " +
              std::to_string(s.uid)] = s.removed_at;
    }
  }
  EXPECT_EQ(l.store->list({}).value().size(), 6u);  // every activity stays
  EXPECT_FALSE(l.store->by_source_key("ical:m").value().value().sources.at(0).removed_at.empty());
  EXPECT_TRUE(removed.at("alice INBOX 7 1").empty());
  EXPECT_FALSE(removed.at("alice INBOX 7 2").empty());
  EXPECT_FALSE(removed.at("alice INBOX 7 3").empty());
  EXPECT_TRUE(removed.at("alice INBOX 7 4").empty());
  EXPECT_TRUE(removed.at("alice INBOX 8 2").empty());
  EXPECT_TRUE(removed.at("alice Sent 7 2").empty());
  EXPECT_TRUE(removed.at("bob INBOX 7 2").empty());
  EXPECT_TRUE(removed.at("local  0 0").empty());

  // The first report's time is kept when the server reports it again (set
  // to a time of the past here: two commits fall in the same second).
  const std::string first = "2026-01-02T03:04:05Z";
  exec_raw(l.dir / "capture.db",
           "UPDATE activity_sources SET removed_at = '" + first + "' WHERE removed_at <> ''");
  gone.removed_uids = {{1, 2}};
  ASSERT_TRUE(l.store->commit(gone));
  auto a2 = l.store->by_source_key("mid:2@x").value().value();
  int checked = 0;
  for (const auto& s : a2.sources) {
    if (s.folder == "INBOX" && s.uidvalidity == 7 && s.mailbox == "alice") {
      EXPECT_EQ(s.removed_at, first);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1);
  // UID 1 is marked by this second report.
  EXPECT_FALSE(l.store->by_source_key("mid:1@x").value().value().sources.at(0).removed_at.empty());

  // Removed UIDs without the folder they belong to are refused, and nothing
  // of that batch is written.
  Batch orphan;
  orphan.removed_uids = {{4, 4}};
  auto r = l.store->commit(orphan);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cursor"), std::string::npos) << r.error().message;
  EXPECT_TRUE(l.store->by_source_key("mid:4@x").value().value().sources.at(0).removed_at.empty());

  // A place seen again (its UIDVALIDITY came back, as after a restore) is
  // there again.
  Batch back;
  back.seen_again.push_back({"mid:2@x", SourceRef{"alice", "INBOX", 7, 2, ""}});
  ASSERT_TRUE(l.store->commit(back));
  const Activity two = l.store->by_source_key("mid:2@x").value().value();
  int present = 0;
  for (const auto& s : two.sources) {
    if (s.mailbox == "alice" && s.folder == "INBOX" && s.uidvalidity == 7) {
      EXPECT_TRUE(s.removed_at.empty());
      ++present;
    }
  }
  EXPECT_EQ(present, 1);
}

// release_memory drops the look-up caches and SQLite's page cache: answers
// come from the file again, so a directory change written by another
// connection (the command-line tool's import) is seen, and a read hold open
// across the call keeps working.
TEST(StoreMemory, AfterReleasingMemoryAnswersComeFromTheFile) {
  Loaded l;
  ASSERT_EQ(l.store->contact_by_email("hank@globex.com", PlusTags::distinct).value()->id, "C-2");
  Batch b;
  b.items.push_back({make_activity("k1", "2026-11-01T10:00:00Z", "O-1"), SourceRef{"local", "x"}});
  ASSERT_TRUE(l.store->commit(b));
  auto other = Store::open((l.dir / "capture.db").string()).value();
  Contact moved{"C-9", "Hank Scorpio", {"hank@globex.com"}, "CO-2", "", ""};
  ASSERT_TRUE(other->upsert_contacts({moved}, false));
  ASSERT_TRUE(
      other->upsert_contacts({{"C-2", "Hank (old)", {"old@globex.com"}, "CO-2", "", ""}}, false));
  {
    auto hold = l.store->hold_reads().value();
    l.store->release_memory();
    EXPECT_EQ(l.store->list({}).value().at(0).source_key, "k1");
  }
  EXPECT_EQ(l.store->contact_by_email("hank@globex.com", PlusTags::distinct).value()->id, "C-9");
  l.store->release_memory();
  EXPECT_EQ(l.store->list({}).value().size(), 1u);
}
