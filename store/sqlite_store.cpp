// SPDX-License-Identifier: Apache-2.0
// The SQLite implementation of the store interfaces (SQLiteCpp). Every public
// call catches SQLite::Exception and returns it as an Error: nothing throws out.
#include "store/schema.hpp"
#include "store/store.hpp"
#include "store/util.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace crmcap::store {

namespace {

ActivityKind kind_from(std::string_view s) {
  return s == "meeting" ? ActivityKind::meeting : ActivityKind::email;
}
Direction direction_from(std::string_view s) {
  if (s == "outbound") return Direction::outbound;
  if (s == "internal") return Direction::internal;
  return Direction::inbound;
}
DecisionStatus status_from(std::string_view s) {
  if (s == "skipped") return DecisionStatus::skipped;
  if (s == "failed") return DecisionStatus::failed;
  return DecisionStatus::captured;
}

std::string now_iso() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The WAL's length, in frames (pages), at which it is copied into the
// database: ~40 MiB instead of SQLite's 4 MiB, so that a page many batches
// touch (an index leaf) is copied once per checkpoint, not once per few
// commits. SQLite's automatic checkpoint keeps it during the migrations,
// SqliteStore::on_wal_commit after them.
constexpr int k_checkpoint_frames = 10000;

Error sql_error(std::string_view what, const std::exception& e) {
  return make_error(Errc::sql_failed, detail::cat(what, ": ", e.what()));
}

// Copies the WAL into the database on a thread and connection of its own
// (a PASSIVE checkpoint, which never blocks the writer) when asked; and once
// no commit has come for `idle_truncate`, copies all of it and cuts the file
// to nothing (TRUNCATE). The connection has no busy handler: a TRUNCATE that
// a reader or the writer is in the way of fails at once, without blocking
// them, and is tried again after another quiet spell. The connection is
// opened at the first use.
class Checkpointer {
 public:
  using clock = std::chrono::steady_clock;
  Checkpointer(std::string path, std::chrono::milliseconds idle_truncate)
      : path_(std::move(path)),
        idle_truncate_(std::max(idle_truncate, std::chrono::milliseconds(50))),
        thread_([this] { run(); }) {}
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  ~Checkpointer() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  void request() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      wanted_ = true;
    }
    wake_.notify_one();
  }

  // After each commit: moves the TRUNCATE an idle spell further. The thread
  // is woken only when none was due (it wakes at the old time otherwise, and
  // waits on to the new one).
  void committed() {
    bool wake = false;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      truncate_at_ = clock::now() + idle_truncate_;
      wake = !truncate_due_;
      truncate_due_ = true;
    }
    if (wake) wake_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      if (wanted_) {
        wanted_ = false;
        lock.unlock();
        checkpoint(SQLITE_CHECKPOINT_PASSIVE);
        lock.lock();
      } else if (truncate_due_ && clock::now() >= truncate_at_) {
        truncate_due_ = false;
        lock.unlock();
        // What is left to copy first, without the write lock; the TRUNCATE
        // then holds that lock (a commit waits, within its busy timeout)
        // only to find the copy done and cut the file.
        checkpoint(SQLITE_CHECKPOINT_PASSIVE);
        const bool done = checkpoint(SQLITE_CHECKPOINT_TRUNCATE);
        lock.lock();
        if (!done && !truncate_due_) {
          truncate_due_ = true;
          truncate_at_ = clock::now() + idle_truncate_;
        }
      } else if (truncate_due_) {
        wake_.wait_until(lock, truncate_at_);
      } else {
        wake_.wait(lock);
      }
    }
  }

  // Whether the checkpoint ran to its end. A failure (the file gone, another
  // checkpoint running, a reader in the way of a TRUNCATE) leaves the copy to
  // a later one, or to the writer's own.
  bool checkpoint(int mode) {
    if (db_ == nullptr &&
        sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      return false;
    }
    // A connection that has read nothing yet does not know the WAL, and its
    // checkpoint would do nothing: read the journal mode first.
    if (!wal_open_) {
      wal_open_ = sqlite3_exec(db_, "PRAGMA journal_mode", nullptr, nullptr, nullptr) == SQLITE_OK;
      if (!wal_open_) return false;
    }
    return sqlite3_wal_checkpoint_v2(db_, nullptr, mode, nullptr, nullptr) == SQLITE_OK;
  }

  std::string path_;
  std::chrono::milliseconds idle_truncate_;
  sqlite3* db_ = nullptr;  // used by thread_ only
  bool wal_open_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool wanted_ = false;
  bool truncate_due_ = false;  // a TRUNCATE waits for truncate_at_
  clock::time_point truncate_at_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

// ---- the store ----------------------------------------------------------------

class SqliteStore final : public Store {
 public:
  SqliteStore(SQLite::Database db, int version, const std::string& path,
              const StoreOptions& options)
      : db_(std::move(db)), version_(version), on_change_(options.on_change) {
    if (options.reader) return;
    checkpointer_.emplace(path, options.wal_idle_truncate);
    sqlite3_wal_hook(db_.getHandle(), &SqliteStore::on_wal_commit, this);
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override { sqlite3_wal_hook(db_.getHandle(), nullptr, nullptr); }

  int schema_version() const override { return version_; }

  void release_memory() override {
    // Assigning an empty map frees its buckets too (clear() keeps them).
    for (auto& cache : contact_cache_) cache = {};
    domain_cache_ = {};
    opp_of_company_cache_ = {};
    opp_of_contact_cache_ = {};
    company_cache_ = {};
    sqlite3_db_release_memory(db_.getHandle());
  }

  // Directory ---------------------------------------------------------------

  Result<std::optional<Contact>> contact_by_email(std::string_view email, PlusTags tags) override
      try {
    // The matcher asks for the same few hundred addresses again and again: a
    // hit costs a hash lookup instead of two SQLite steps. Any directory write
    // clears the cache.
    const bool ignored = tags == PlusTags::ignored;
    const std::string key = ignored ? without_plus_tag(email) : std::string(email);
    auto& cache = contact_cache_[ignored ? 1 : 0];
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    auto& st = ignored ? stmt(
                             "SELECT e.position, c.id, c.name, COALESCE(c.company_id, ''), "
                             "c.title, c.phone, e.email = ? FROM contact_emails e "
                             "JOIN contacts c ON c.id = e.contact_id WHERE e.email_key = ?")
                       : stmt(
                             "SELECT e.position, c.id, c.name, COALESCE(c.company_id, ''), "
                             "c.title, c.phone, 1, ? FROM contact_emails e "
                             "JOIN contacts c ON c.id = e.contact_id WHERE e.email = ?");
    st.bind(1, key);
    st.bind(2, key);
    std::optional<Contact> out;
    std::int64_t best_position = 0;
    bool best_exact = false;
    // Several contacts may share an address: the one that lists it exactly
    // (not with another tag) wins, then the one that lists it first, then the
    // smallest id (chosen here, so SQLite builds no sorter).
    while (st.executeStep()) {
      const bool exact = st.getColumn(6).getInt() != 0;
      const std::int64_t position = st.getColumn(0).getInt64();
      std::string id = st.getColumn(1).getString();
      if (out && (best_exact > exact ||
                  (best_exact == exact &&
                   (position > best_position || (position == best_position && id >= out->id))))) {
        continue;
      }
      best_exact = exact;
      best_position = position;
      out = Contact{std::move(id),
                    st.getColumn(2).getString(),
                    {key},
                    st.getColumn(3).getString(),
                    st.getColumn(4).getString(),
                    st.getColumn(5).getString()};
    }
    st.reset();
    if (cache.size() >= k_cache_limit) cache.clear();
    cache.emplace(key, out);
    return out;
  } catch (const std::exception& e) {
    return sql_error("contact lookup", e);
  }

  Result<std::vector<Company>> companies_by_domain(std::string_view domain) override try {
    const std::string key(domain);
    if (auto it = domain_cache_.find(key); it != domain_cache_.end()) return it->second;
    // company_domains' primary key (domain, company_id) already yields company
    // order: no sorter.
    auto& st = stmt(
        "SELECT c.id, c.name FROM company_domains d JOIN companies c ON c.id = d.company_id "
        "WHERE d.domain = ? ORDER BY d.company_id");
    st.bind(1, key);
    std::vector<Company> out;
    while (st.executeStep()) {
      out.push_back(Company{st.getColumn(0).getString(), st.getColumn(1).getString(), {key}});
    }
    st.reset();
    if (domain_cache_.size() >= k_cache_limit) domain_cache_.clear();
    domain_cache_.emplace(key, out);
    return out;
  } catch (const std::exception& e) {
    return sql_error("domain lookup", e);
  }

  Result<std::vector<Opportunity>> open_opportunities_of_company(
      std::string_view company_id) override try {
    const std::string key(company_id);
    if (auto it = opp_of_company_cache_.find(key); it != opp_of_company_cache_.end()) {
      return it->second;
    }
    auto& st = stmt(std::string(k_opp_select) +
                    " WHERE o.company_id = ? AND o.status = 'open' ORDER BY o.id");
    st.bind(1, key);
    auto out = read_opportunities(st);
    st.reset();
    if (opp_of_company_cache_.size() >= k_cache_limit) opp_of_company_cache_.clear();
    opp_of_company_cache_.emplace(key, out);
    return out;
  } catch (const std::exception& e) {
    return sql_error("opportunity lookup", e);
  }

  Result<std::vector<Opportunity>> open_opportunities_of_contact(
      std::string_view contact_id) override try {
    const std::string key(contact_id);
    if (auto it = opp_of_contact_cache_.find(key); it != opp_of_contact_cache_.end()) {
      return it->second;
    }
    auto& st = stmt(std::string(k_opp_select) +
                    " JOIN opportunity_contacts oc ON oc.opportunity_id = o.id"
                    " WHERE oc.contact_id = ? AND o.status = 'open' ORDER BY oc.opportunity_id");
    st.bind(1, key);
    auto out = read_opportunities(st);
    st.reset();
    if (opp_of_contact_cache_.size() >= k_cache_limit) opp_of_contact_cache_.clear();
    opp_of_contact_cache_.emplace(key, out);
    return out;
  } catch (const std::exception& e) {
    return sql_error("opportunity lookup", e);
  }

  Result<std::optional<Company>> company(std::string_view id) override try {
    if (auto it = company_cache_.find(std::string(id)); it != company_cache_.end()) {
      return it->second;
    }
    auto& st = stmt("SELECT id, name FROM companies WHERE id = ?");
    st.bind(1, std::string(id));
    std::optional<Company> out;
    if (st.executeStep()) {
      out = Company{st.getColumn(0).getString(), st.getColumn(1).getString(), {}};
      st.reset();
      auto& d = stmt("SELECT domain FROM company_domains WHERE company_id = ? ORDER BY domain");
      d.bind(1, std::string(id));
      while (d.executeStep()) out->domains.push_back(d.getColumn(0).getString());
    }
    if (company_cache_.size() >= k_cache_limit) company_cache_.clear();
    company_cache_.emplace(std::string(id), out);
    return out;
  } catch (const std::exception& e) {
    return sql_error("company lookup", e);
  }

  Result<std::optional<Opportunity>> opportunity(std::string_view id) override try {
    auto& st = stmt(std::string(k_opp_select) + " WHERE o.id = ?");
    st.bind(1, std::string(id));
    auto rows = read_opportunities(st);
    std::optional<Opportunity> out;
    if (!rows.empty()) {
      out = std::move(rows.front());
      auto& c = stmt(
          "SELECT contact_id, role FROM opportunity_contacts WHERE opportunity_id = ? "
          "ORDER BY contact_id");
      c.bind(1, std::string(id));
      while (c.executeStep()) {
        out->contacts.push_back({c.getColumn(0).getString(), c.getColumn(1).getString()});
      }
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("opportunity lookup", e);
  }

  Result<DirectoryStats> stats() override try {
    DirectoryStats s;
    auto count = [&](const char* sql) {
      SQLite::Statement st(db_, sql);
      st.executeStep();
      return st.getColumn(0).getInt64();
    };
    s.companies = count("SELECT count(*) FROM companies");
    s.company_domains = count("SELECT count(*) FROM company_domains");
    s.contacts = count("SELECT count(*) FROM contacts");
    s.contact_emails = count("SELECT count(*) FROM contact_emails");
    s.opportunities = count("SELECT count(*) FROM opportunities");
    s.open_opportunities = count("SELECT count(*) FROM opportunities WHERE status = 'open'");
    s.opportunity_contacts = count("SELECT count(*) FROM opportunity_contacts");
    return s;
  } catch (const std::exception& e) {
    return sql_error("directory stats", e);
  }

  // DirectoryWriter -----------------------------------------------------------

  Result<std::size_t> upsert_companies(const std::vector<Company>& rows, bool replace) override
      try {
    clear_caches();
    SQLite::Transaction tx(db_);
    const std::string now = now_iso();
    for (const auto& c : rows) put_company(c, now);
    if (replace) delete_absent("companies", rows);
    tx.commit();
    return rows.size();
  } catch (const std::exception& e) {
    return sql_error("importing companies", e);
  }

  Result<std::size_t> upsert_contacts(const std::vector<Contact>& rows, bool replace) override try {
    clear_caches();
    SQLite::Transaction tx(db_);
    const std::string now = now_iso();
    for (const auto& c : rows) put_contact(c, now);
    if (replace) delete_absent("contacts", rows);
    tx.commit();
    return rows.size();
  } catch (const std::exception& e) {
    return sql_error("importing contacts", e);
  }

  Result<std::size_t> upsert_opportunities(const std::vector<Opportunity>& rows,
                                           bool replace) override try {
    clear_caches();
    SQLite::Transaction tx(db_);
    const std::string now = now_iso();
    for (const auto& o : rows) put_opportunity(o, now);
    if (replace) delete_absent("opportunities", rows);
    tx.commit();
    return rows.size();
  } catch (const std::exception& e) {
    return sql_error("importing opportunities", e);
  }

  Result<std::vector<EditApplied>> apply(
      const std::vector<DirectoryEdit>& edits,
      const std::function<Result<Batch>(const std::vector<EditApplied>&)>& then) override {
    // The look-up caches may hold rows of a transaction rolled back: none
    // survives this call.
    struct ClearCaches {
      SqliteStore& s;
      ~ClearCaches() { s.clear_caches(); }
    } clear_after{*this};
    clear_caches();
    try {
      SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
      const std::string now = now_iso();
      std::vector<EditApplied> done;
      done.reserve(edits.size());
      for (const auto& e : edits) {
        auto r = apply_edit(e, now);
        clear_caches();
        if (!r) return r.error();
        done.push_back(std::move(*r));
      }
      auto batch = then(done);
      if (!batch) return batch.error();
      const std::int64_t last = write_batch(*batch);
      tx.commit();
      if (last > 0 && on_change_) on_change_(last);
      return done;
    } catch (const std::exception& e) {
      return sql_error("applying directory changes", e);
    }
  }

  Result<std::vector<std::string>> missing_company_ids(
      const std::vector<std::string>& ids) override {
    return missing_ids("SELECT 1 FROM companies WHERE id = ?", ids);
  }
  Result<std::vector<std::string>> missing_contact_ids(
      const std::vector<std::string>& ids) override {
    return missing_ids("SELECT 1 FROM contacts WHERE id = ?", ids);
  }

  // Activities --------------------------------------------------------------

  Result<void> commit(const Batch& batch) override try {
    if (!batch.removed_uids.empty() && !batch.cursor) {
      return make_error(Errc::bad_input, "removed UIDs given without the cursor of their folder");
    }
    // IMMEDIATE: the write lock is taken first, so the look-ups below cannot
    // be overtaken by another writer before this transaction writes.
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    const std::int64_t last = write_batch(batch);
    tx.commit();
    if (last > 0 && on_change_) on_change_(last);
    return {};
  } catch (const std::exception& e) {
    return sql_error("committing activities", e);
  }

  Result<std::vector<Activity>> list(const ActivityFilter& f) override try {
    // A contact's or a company's rows are read from its participants'
    // index, which holds occurred_at (v11), in the page's order: the page
    // stops after its rows instead of reading and sorting all of them.
    // Other listings read the activities' own indexes.
    const bool by_contact = !f.contact_id.empty();
    const char* driver = by_contact ? "contact_id" : !f.company_id.empty() ? "company_id" : nullptr;
    std::string sql = k_act_columns;
    std::vector<std::string> args;
    std::string at = "a.occurred_at";  // the sort key's time, as the driving index holds it
    if (driver) {
      // "<> ''" lets SQLite use the partial index of matched participants.
      sql += detail::cat(
          " FROM activity_participants p JOIN activities a ON a.seq = p.activity_seq WHERE p.",
          driver, " = ? AND p.", driver, " <> ''");
      args.push_back(by_contact ? f.contact_id : f.company_id);
      at = "p.occurred_at";
    } else {
      sql += " FROM activities a WHERE 1 = 1";
    }
    if (!f.company_id.empty() && !f.contact_id.empty()) {
      sql +=
          " AND a.seq IN (SELECT activity_seq FROM activity_participants "
          "WHERE company_id = ? AND company_id <> '')";
      args.push_back(f.company_id);
    }
    if (!f.opportunity_id.empty()) {
      sql += " AND a.opportunity_id = ? AND a.opportunity_id <> ''";
      args.push_back(f.opportunity_id);
    }
    if (!f.mailbox.empty()) {
      sql += " AND a.seq IN (SELECT activity_seq FROM activity_sources WHERE mailbox = ?)";
      args.push_back(f.mailbox);
    }
    if (!f.since.empty()) {
      sql += detail::cat(" AND ", at, " >= ?");
      args.push_back(f.since);
    }
    if (!f.until.empty()) {
      sql += detail::cat(" AND ", at, " < ?");
      args.push_back(f.until);
    }
    if (f.kind) {
      sql += " AND a.kind = ?";
      args.emplace_back(to_string(*f.kind));
    }
    if (!f.statuses.empty()) {
      sql += " AND a.status IN (";
      for (std::size_t i = 0; i < f.statuses.size(); ++i) {
        sql += i ? ", ?" : "?";
        args.emplace_back(to_string(f.statuses[i]));
      }
      sql += ")";
    }
    if (f.after) {
      // The time alone bounds the index range; the row value then places
      // the key exactly (SQLite and PostgreSQL seek an index to a row value
      // of its own columns only).
      sql += detail::cat(" AND ", at, f.newest_first ? " <= ?" : " >= ?", " AND (", at, ", a.id) ",
                         f.newest_first ? "<" : ">", " (?, ?)");
      args.push_back(f.after->occurred_at);
      args.push_back(f.after->occurred_at);
      args.push_back(f.after->id);
    }
    // Ordered by the time alone, as the driving index holds the rows: an
    // order by (time, id) made SQLite copy every row through a sorter (the
    // opportunity and participant indexes do not hold the id), a third of
    // the statement's cost. read_page orders the rows of one time by id.
    // Driven by participants, an activity comes once per participant that
    // matched (a contact with two addresses on one message), within the run
    // of its time but not always next to itself, and read_page keeps the
    // first, so SQL cannot count the page; nor can it cut a run of one time
    // before the ids have ordered it. read_page stops stepping at the page's
    // end instead of a LIMIT.
    sql += detail::cat(" ORDER BY ", at, f.newest_first ? " DESC" : "");
    // One snapshot for the rows and their participants and places.
    const ReadScope scope(db_);
    auto& st = stmt(sql);
    for (std::size_t i = 0; i < args.size(); ++i) st.bind(static_cast<int>(i + 1), args[i]);
    return read_page(st, f.limit, f.newest_first);
  } catch (const std::exception& e) {
    return sql_error("listing activities", e);
  }

  Result<std::vector<Activity>> changes_after(std::int64_t after, std::size_t limit) override try {
    std::string sql = k_act_select + " WHERE a.change_seq > ? ORDER BY a.change_seq";
    if (limit > 0) sql += detail::cat(" LIMIT ", limit);
    const ReadScope scope(db_);
    SQLite::Statement st(db_, sql);
    st.bind(1, after);
    return read_filled(st);
  } catch (const std::exception& e) {
    return sql_error("reading changed activities", e);
  }

  Result<std::int64_t> last_change_seq() override try {
    auto& st = stmt("SELECT last_seq FROM changes WHERE id = 1");
    return first_row(st, [](SQLite::Statement& r) { return r.getColumn(0).getInt64(); })
        .value_or(0);
  } catch (const std::exception& e) {
    return sql_error("reading the change sequence", e);
  }

  Result<std::optional<Activity>> get(std::string_view id) override {
    return get_one(" WHERE a.id = ?", id);
  }
  Result<std::optional<Activity>> by_source_key(std::string_view key) override {
    return get_one(" WHERE a.source_key = ?", key);
  }

  Result<std::unique_ptr<ReadHold>> hold_reads() override try {
    return std::unique_ptr<ReadHold>(std::make_unique<ReadScope>(db_));
  } catch (const std::exception& e) {
    return sql_error("starting a read transaction", e);
  }

  Result<std::vector<bool>> have_source_keys(const std::vector<std::string>& keys) override try {
    std::vector<bool> out;
    out.reserve(keys.size());
    const ReadScope scope(db_);
    auto& st = stmt("SELECT 1 FROM activities WHERE source_key = ?");
    for (const auto& k : keys) {
      st.bind(1, k);
      out.push_back(first_row(st, [](SQLite::Statement&) { return true; }).has_value());
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("looking up source keys", e);
  }

  Result<std::vector<std::string>> meeting_keys(std::string_view event_uid) override try {
    auto& st = stmt(
        "SELECT a.source_key FROM activity_meetings m JOIN activities a ON a.seq = "
        "m.activity_seq WHERE m.event_uid = ? ORDER BY a.source_key");
    st.bind(1, std::string(event_uid));
    std::vector<std::string> out;
    while (st.executeStep()) out.push_back(st.getColumn(0).getString());
    st.reset();
    return out;
  } catch (const std::exception& e) {
    return sql_error("looking up the meetings of an event", e);
  }

  Result<std::vector<std::optional<StoredCopy>>> stored_copies(
      std::string_view mailbox, std::string_view folder,
      const std::vector<std::string>& keys) override try {
    std::vector<std::optional<StoredCopy>> out;
    out.reserve(keys.size());
    const ReadScope scope(db_);
    auto& st = stmt(
        "SELECT a.direction, EXISTS (SELECT 1 FROM activity_sources s "
        "WHERE s.activity_seq = a.seq AND s.mailbox = ? AND s.folder = ?) "
        "FROM activities a WHERE a.source_key = ?");
    st.bind(1, std::string(mailbox));
    st.bind(2, std::string(folder));
    for (const auto& k : keys) {
      st.bind(3, k);
      out.push_back(first_row(st, [](SQLite::Statement& r) {
        return StoredCopy{direction_from(r.getColumn(0).getText()), r.getColumn(1).getInt() != 0};
      }));
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("looking up stored copies", e);
  }

  Result<std::vector<std::string>> source_keys_by_remote_id(
      std::string_view mailbox, const std::vector<std::string>& remote_ids) override try {
    std::vector<std::string> out;
    out.reserve(remote_ids.size());
    const ReadScope scope(db_);
    // "<> ''" lets SQLite use the partial index of sources with a remote id.
    auto& st = stmt(
        "SELECT a.source_key FROM activity_sources s JOIN activities a ON a.seq = "
        "s.activity_seq WHERE s.mailbox = ? AND s.remote_id = ? AND s.remote_id <> '' LIMIT 1");
    st.bind(1, std::string(mailbox));
    for (const auto& r : remote_ids) {
      st.bind(2, r);
      out.push_back(r.empty() ? std::string() : first_row(st, column_text<0>).value_or(""));
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("looking up remote ids", e);
  }

  Result<std::vector<Placement>> placed_under(std::string_view mailbox, std::string_view folder,
                                              std::string_view path_prefix) override try {
    // A range on the key's last column: the paths from the prefix up to
    // the prefix with its last byte one higher.
    std::string upper(path_prefix);
    if (upper.empty() || static_cast<unsigned char>(upper.back()) == 0xff) {
      return make_error(Errc::bad_input, "placed_under: a prefix must end below byte 0xff");
    }
    upper.back() = static_cast<char>(upper.back() + 1);
    auto& st = stmt(
        "SELECT s.path, a.source_key FROM activity_sources s JOIN activities a "
        "ON a.seq = s.activity_seq WHERE s.mailbox = ? AND s.folder = ? AND s.uidvalidity = 0 "
        "AND s.uid = 0 AND s.path >= ? AND s.path < ? AND s.removed_at = '' ORDER BY s.path");
    st.bind(1, std::string(mailbox));
    st.bind(2, std::string(folder));
    st.bind(3, std::string(path_prefix));
    st.bind(4, upper);
    std::vector<Placement> out;
    while (st.executeStep()) {
      out.push_back({st.getColumn(0).getString(), st.getColumn(1).getString()});
    }
    st.reset();
    return out;
  } catch (const std::exception& e) {
    return sql_error("reading a calendar item's places", e);
  }

  Result<std::vector<Activity>> involving(const Involving& keys, std::string_view since) override
      try {
    // One pass over the window's participants; only the activities found
    // are read whole.
    const ReadScope scope(db_);
    SQLite::Statement st(
        db_,
        "SELECT a.seq, a.opportunity_id, p.address, p.contact_id, p.company_id FROM activities a "
        "LEFT JOIN activity_participants p ON p.activity_seq = a.seq WHERE a.occurred_at >= ?");
    st.bind(1, std::string(since));
    std::vector<std::int64_t> hits;
    std::int64_t seq = -1;
    Activity probe;  // the opportunity and participants of the row `seq`
    auto decide = [&] {
      if (seq >= 0 && involves(keys, probe)) hits.push_back(seq);
    };
    while (st.executeStep()) {
      const std::int64_t s = st.getColumn(0).getInt64();
      if (s != seq) {
        decide();
        seq = s;
        probe.opportunity_id = st.getColumn(1).getString();
        probe.participants.clear();
      }
      if (!st.getColumn(2).isNull()) {
        Participant p;
        p.address = st.getColumn(2).getString();
        p.contact_id = st.getColumn(3).getString();
        p.company_id = st.getColumn(4).getString();
        probe.participants.push_back(std::move(p));
      }
    }
    decide();
    st.reset();
    auto& involved = stmt(k_act_select + " WHERE a.seq IN (SELECT value FROM json_each(?))");
    involved.bind(1, key_array(hits));
    std::vector<Activity> out = read_filled(involved);
    std::sort(out.begin(), out.end(), [](const Activity& x, const Activity& y) {
      return std::tie(x.occurred_at, x.id) < std::tie(y.occurred_at, y.id);
    });
    return out;
  } catch (const std::exception& e) {
    return sql_error("finding activities a directory change involves", e);
  }

  Result<std::optional<std::string>> thread_opportunity(std::string_view thread_key,
                                                        std::string_view before) override try {
    auto& st = stmt(
        "SELECT opportunity_id FROM activities WHERE thread_key = ? AND status = 'captured' "
        "AND opportunity_id <> '' AND occurred_at < ? ORDER BY occurred_at DESC, id DESC LIMIT 1");
    st.bind(1, std::string(thread_key));
    st.bind(2, std::string(before));
    return first_row(st, column_text<0>);
  } catch (const std::exception& e) {
    return sql_error("thread lookup", e);
  }

  // SyncState -----------------------------------------------------------------

  Result<std::optional<SyncCursor>> cursor(std::string_view mailbox,
                                           std::string_view folder) override try {
    auto& st = stmt(std::string(k_cursor_select) + " WHERE mailbox = ? AND folder = ?");
    st.bind(1, std::string(mailbox));
    st.bind(2, std::string(folder));
    return first_row(st, read_cursor);
  } catch (const std::exception& e) {
    return sql_error("reading sync state", e);
  }

  Result<std::vector<SyncCursor>> cursors(std::string_view mailbox) override try {
    auto& st = stmt(std::string(k_cursor_select) + " WHERE mailbox = ? ORDER BY folder");
    st.bind(1, std::string(mailbox));
    std::vector<SyncCursor> out;
    while (st.executeStep()) out.push_back(read_cursor(st));
    return out;
  } catch (const std::exception& e) {
    return sql_error("reading sync state", e);
  }

  Result<void> put_cursor(const SyncCursor& c) override try {
    write_cursor(c, now_iso());
    return {};
  } catch (const std::exception& e) {
    return sql_error("writing sync state", e);
  }

  Result<std::optional<CalendarRecord>> calendar(std::string_view mailbox,
                                                 std::string_view url) override try {
    const ReadScope scope(db_);
    auto& st = stmt("SELECT sync_token, ctag FROM calendars WHERE mailbox = ? AND url = ?");
    st.bind(1, std::string(mailbox));
    st.bind(2, std::string(url));
    auto out = first_row(st, [](SQLite::Statement& r) {
      CalendarRecord c;
      c.sync_token = r.getColumn(0).getString();
      c.ctag = r.getColumn(1).getString();
      return c;
    });
    if (!out) return out;
    auto& items = stmt("SELECT href, etag FROM calendar_items WHERE mailbox = ? AND calendar = ?");
    items.bind(1, std::string(mailbox));
    items.bind(2, std::string(url));
    while (items.executeStep()) {
      out->items.emplace(items.getColumn(0).getString(), items.getColumn(1).getString());
    }
    items.reset();
    return out;
  } catch (const std::exception& e) {
    return sql_error("reading a calendar's state", e);
  }

  Result<std::vector<std::pair<std::int64_t, std::string>>> known_uids(
      std::string_view mailbox, std::string_view folder, std::int64_t uidvalidity) override try {
    auto& st = stmt(
        "SELECT s.uid, a.source_key FROM activity_sources s JOIN activities a "
        "ON a.seq = s.activity_seq WHERE s.mailbox = ? AND s.folder = ? AND s.uidvalidity = ? "
        "ORDER BY s.uid");
    st.bind(1, std::string(mailbox));
    st.bind(2, std::string(folder));
    st.bind(3, uidvalidity);
    std::vector<std::pair<std::int64_t, std::string>> out;
    while (st.executeStep()) {
      out.emplace_back(st.getColumn(0).getInt64(), st.getColumn(1).getString());
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("reading known uids", e);
  }

 private:
  static constexpr const char* k_opp_select =
      "SELECT o.id, o.name, COALESCE(o.company_id, ''), o.stage, o.amount, o.close_date, "
      "o.status FROM opportunities o";
  // An activity's columns, as read_activity reads them; then with its table.
  static constexpr const char* k_act_columns =
      "SELECT a.id, a.source_key, a.kind, a.direction, a.status, a.occurred_at, a.subject, "
      "a.snippet, a.message_id, a.thread_key, a.opportunity_id, a.reason, a.rule, a.updated_at, "
      "a.seq, a.change_seq";
  static inline const std::string k_act_select = std::string(k_act_columns) + " FROM activities a";
  static constexpr const char* k_cursor_select =
      "SELECT mailbox, folder, uidvalidity, highest_uid, highest_modseq, extra FROM sync_state";

  // One read transaction around a run of look-ups, unless a transaction is
  // already open: each statement outside one takes and drops the WAL read
  // lock on its own (several system calls per statement).
  class ReadScope final : public ReadHold {
   public:
    explicit ReadScope(SQLite::Database& db) {
      if (sqlite3_get_autocommit(db.getHandle()) != 0) tx_.emplace(db);
    }

   private:
    // Rolled back on destruction: nothing was written.
    std::optional<SQLite::Transaction> tx_;
  };

  // The row a statement gives, if any, read by `read`. The statement is
  // reset before this returns: one left on a row keeps its read snapshot
  // open, past any ReadScope, and a later BEGIN IMMEDIATE could then fail
  // (SQLITE_BUSY_SNAPSHOT) once another connection has written.
  template <class Read>
  static auto first_row(SQLite::Statement& st, Read read)
      -> std::optional<std::invoke_result_t<Read&, SQLite::Statement&>> {
    std::optional<std::invoke_result_t<Read&, SQLite::Statement&>> out;
    if (st.executeStep()) out = read(st);
    st.reset();
    return out;
  }

  template <int I>
  static std::string column_text(SQLite::Statement& st) {
    return st.getColumn(I).getString();
  }

  // Statements are prepared once and kept; each use starts from a reset one.
  SQLite::Statement& stmt(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db_, sql)).first;
    }
    it->second->reset();
    it->second->clearBindings();
    return *it->second;
  }

  // Text is bound without a copy: the arguments outlive the statement's one
  // step, and the bindings are cleared before run() returns. (A backfill
  // binds about a million strings; copying them was a tenth of its commits.)
  static void bind_one(SQLite::Statement& st, int i, const std::string& v) { st.bindNoCopy(i, v); }
  template <class T>
  static void bind_one(SQLite::Statement& st, int i, const T& v) {
    st.bind(i, v);
  }

  template <class... Args>
  static void run(SQLite::Statement& st, const Args&... args) {
    int i = 0;
    (bind_one(st, ++i, args), ...);
    st.exec();
    st.reset();
    st.clearBindings();
  }

  void put_company(const Company& c, const std::string& now) {
    run(stmt("INSERT INTO companies (id, name, updated_at) VALUES (?, ?, ?) "
             "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
             "updated_at = excluded.updated_at"),
        c.id, c.name, now);
    run(stmt("DELETE FROM company_domains WHERE company_id = ?"), c.id);
    auto& dom = stmt("INSERT OR IGNORE INTO company_domains (domain, company_id) VALUES (?, ?)");
    for (const auto& d : c.domains) run(dom, d, c.id);
  }

  void put_contact(const Contact& c, const std::string& now) {
    run(stmt("INSERT INTO contacts (id, name, company_id, title, phone, updated_at) "
             "VALUES (?, ?, NULLIF(?, ''), ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
             "name = excluded.name, company_id = excluded.company_id, title = excluded.title, "
             "phone = excluded.phone, updated_at = excluded.updated_at"),
        c.id, c.name, c.company_id, c.title, c.phone, now);
    run(stmt("DELETE FROM contact_emails WHERE contact_id = ?"), c.id);
    auto& em = stmt(
        "INSERT OR IGNORE INTO contact_emails (email, contact_id, position, email_key) "
        "VALUES (?, ?, ?, ?)");
    for (std::size_t i = 0; i < c.emails.size(); ++i) {
      run(em, c.emails[i], c.id, static_cast<std::int64_t>(i), without_plus_tag(c.emails[i]));
    }
  }

  void put_opportunity(const Opportunity& o, const std::string& now) {
    auto& up = stmt(
        "INSERT INTO opportunities (id, name, company_id, stage, amount, close_date, status, "
        "updated_at) VALUES (?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, company_id = excluded.company_id, stage = excluded.stage, "
        "amount = excluded.amount, close_date = excluded.close_date, status = excluded.status, "
        "updated_at = excluded.updated_at");
    up.bind(1, o.id);
    up.bind(2, o.name);
    up.bind(3, o.company_id);
    up.bind(4, o.stage);
    if (o.amount) {
      up.bind(5, *o.amount);
    } else {
      up.bind(5);
    }
    up.bind(6, o.close_date);
    up.bind(7, std::string(to_string(o.status)));
    up.bind(8, now);
    up.exec();
    up.reset();
    run(stmt("DELETE FROM opportunity_contacts WHERE opportunity_id = ?"), o.id);
    auto& oc = stmt(
        "INSERT OR IGNORE INTO opportunity_contacts (opportunity_id, contact_id, role) "
        "VALUES (?, ?, ?)");
    for (const auto& c : o.contacts) run(oc, o.id, c.contact_id, c.role);
  }

  bool row_exists(const std::string& sql, const std::string& id) {
    auto& st = stmt(sql);
    st.bind(1, id);
    return first_row(st, [](SQLite::Statement&) { return true; }).has_value();
  }

  // One edit of apply(), inside its transaction.
  Result<EditApplied> apply_edit(const DirectoryEdit& e, const std::string& now) {
    auto fail = [&](Errc c, const std::string& what) {
      return make_error(c, e.where.empty() ? what : e.where + ": " + what);
    };
    const std::string noun(to_string(e.kind));
    auto unknown = [&](std::string_view field, std::string_view kind, const std::string& id) {
      return fail(Errc::bad_input,
                  std::string(field) + ": unknown " + std::string(kind) + " id '" + id + "'");
    };
    const char* company_exists = "SELECT 1 FROM companies WHERE id = ?";
    const char* contact_exists = "SELECT 1 FROM contacts WHERE id = ?";
    EditApplied r;
    Involving& keys = r.involving;
    bool existed = false;
    switch (e.kind) {
      case DirectoryKind::company: {
        if (!e.remove && e.company.id != e.id) return fail(Errc::bad_input, "id: differs");
        auto old = company(e.id);
        if (!old) return old.error();
        existed = old->has_value();
        keys.company_ids.insert(e.id);
        if (existed) keys.domains.insert((*old)->domains.begin(), (*old)->domains.end());
        if (!e.remove) {
          keys.domains.insert(e.company.domains.begin(), e.company.domains.end());
          put_company(e.company, now);
        } else if (existed) {
          run(stmt("DELETE FROM companies WHERE id = ?"), e.id);
        }
        break;
      }
      case DirectoryKind::contact: {
        if (!e.remove && e.contact.id != e.id) return fail(Errc::bad_input, "id: differs");
        existed = row_exists(contact_exists, e.id);
        keys.contact_ids.insert(e.id);
        auto& em = stmt("SELECT email FROM contact_emails WHERE contact_id = ?");
        em.bind(1, e.id);
        std::vector<std::string> emails;
        while (em.executeStep()) emails.push_back(em.getColumn(0).getString());
        em.reset();
        if (!e.remove) {
          const std::string& company_id = e.contact.company_id;
          if (!company_id.empty() && !row_exists(company_exists, company_id)) {
            return unknown("company_id", "company", company_id);
          }
          emails.insert(emails.end(), e.contact.emails.begin(), e.contact.emails.end());
          put_contact(e.contact, now);
        } else if (existed) {
          run(stmt("DELETE FROM contacts WHERE id = ?"), e.id);
        }
        // Either form of an address: a participant's is stored with its
        // +tag or without it, as the settings of its capture said.
        for (const auto& a : emails) {
          keys.addresses.insert(a);
          keys.addresses.insert(without_plus_tag(a));
        }
        break;
      }
      case DirectoryKind::opportunity: {
        if (!e.remove && e.opportunity.id != e.id) return fail(Errc::bad_input, "id: differs");
        auto old = opportunity(e.id);
        if (!old) return old.error();
        existed = old->has_value();
        keys.opportunity_ids.insert(e.id);
        auto involve = [&](const Opportunity& o) {
          if (!o.company_id.empty()) keys.company_ids.insert(o.company_id);
          for (const auto& c : o.contacts) keys.contact_ids.insert(c.contact_id);
        };
        if (existed) involve(**old);
        if (!e.remove) {
          const Opportunity& o = e.opportunity;
          if (!o.company_id.empty() && !row_exists(company_exists, o.company_id)) {
            return unknown("company_id", "company", o.company_id);
          }
          for (const auto& c : o.contacts) {
            if (!row_exists(contact_exists, c.contact_id)) {
              return unknown("contact_ids", "contact", c.contact_id);
            }
          }
          involve(o);
          put_opportunity(o, now);
        } else if (existed) {
          run(stmt("DELETE FROM opportunities WHERE id = ?"), e.id);
        }
        break;
      }
    }
    if (e.remove && !existed) return fail(Errc::not_found, "no " + noun + " '" + e.id + "'");
    r.what = e.remove  ? EditApplied::What::removed
             : existed ? EditApplied::What::changed
                       : EditApplied::What::created;
    return r;
  }

  template <class Row>
  void delete_absent(const std::string& table, const std::vector<Row>& rows) {
    db_.exec("CREATE TEMP TABLE IF NOT EXISTS keep_ids (id TEXT PRIMARY KEY)");
    db_.exec("DELETE FROM temp.keep_ids");
    auto& ins = stmt("INSERT OR IGNORE INTO temp.keep_ids (id) VALUES (?)");
    for (const auto& r : rows) run(ins, r.id);
    db_.exec("DELETE FROM " + table + " WHERE id NOT IN (SELECT id FROM temp.keep_ids)");
    db_.exec("DELETE FROM temp.keep_ids");
  }

  Result<std::vector<std::string>> missing_ids(const std::string& sql,
                                               const std::vector<std::string>& ids) try {
    std::vector<std::string> out;
    for (const auto& id : ids) {
      auto& st = stmt(sql);
      st.bind(1, id);
      if (!first_row(st, [](SQLite::Statement&) { return true; })) out.push_back(id);
    }
    return out;
  } catch (const std::exception& e) {
    return sql_error("checking ids", e);
  }

  static std::vector<Opportunity> read_opportunities(SQLite::Statement& st) {
    std::vector<Opportunity> out;
    while (st.executeStep()) {
      Opportunity o;
      o.id = st.getColumn(0).getString();
      o.name = st.getColumn(1).getString();
      o.company_id = st.getColumn(2).getString();
      o.stage = st.getColumn(3).getString();
      if (!st.getColumn(4).isNull()) o.amount = st.getColumn(4).getDouble();
      o.close_date = st.getColumn(5).getString();
      o.status = opportunity_status_from_string(st.getColumn(6).getString())
                     .value_or(OpportunityStatus::open);
      out.push_back(std::move(o));
    }
    return out;
  }

  // Writes `batch` inside the open write transaction; returns the greatest
  // change sequence number it gave, 0 when it gave none.
  std::int64_t write_batch(const Batch& batch) {
    const std::string now = now_iso();
    // The change numbers of this commit follow the counter's last; the
    // counter is read and written under the write lock taken above.
    auto& last_change = stmt("SELECT last_seq FROM changes WHERE id = 1");
    const std::int64_t first_change =
        first_row(last_change, [](SQLite::Statement& r) { return r.getColumn(0).getInt64(); })
            .value_or(0) +
        1;
    std::int64_t next_change = first_change;
    // An INSERT that does nothing on a stored key, then, only for such a key,
    // a look-up and a plain UPDATE, rather than one INSERT ... ON CONFLICT DO
    // UPDATE ... RETURNING: SQLite builds a temporary table for every
    // RETURNING and an undo journal for every upsert, which cost more than the
    // statements themselves on a backfill.
    auto& find = stmt(
        "SELECT seq, kind, direction, status, occurred_at, subject, snippet, thread_key, "
        "opportunity_id, reason, rule FROM activities WHERE source_key = ?");
    auto& ins_a = stmt(
        "INSERT INTO activities (id, source_key, kind, direction, status, occurred_at, subject, "
        "snippet, message_id, thread_key, opportunity_id, reason, rule, created_at, updated_at, "
        "change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING");
    auto& upd_a = stmt(
        "UPDATE activities SET kind = ?, direction = ?, status = ?, occurred_at = ?, subject = ?, "
        "snippet = ?, message_id = ?, thread_key = ?, opportunity_id = ?, reason = ?, rule = ?, "
        "updated_at = ?, change_seq = ? WHERE seq = ?");
    auto& del_p = stmt("DELETE FROM activity_participants WHERE activity_seq = ?");
    auto& del_m = stmt("DELETE FROM activity_meetings WHERE activity_seq = ?");
    auto& ins_m = stmt(
        "INSERT INTO activity_meetings (activity_seq, event_uid, starts_at, ends_at, all_day, "
        "location, cancelled, sequence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    auto& ins_p = stmt(
        "INSERT INTO activity_participants (activity_seq, position, address, name, role, "
        "contact_id, company_id, partstat, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    auto& ins_s = stmt(
        "INSERT INTO activity_sources (activity_seq, mailbox, folder, uidvalidity, uid, path, "
        "seen_at, remote_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
        "activity_seq = excluded.activity_seq, remote_id = excluded.remote_id, removed_at = ''");
    // Writes `a` (inserted with `insert` when its key is new, else only
    // compared and updated); returns its row's key, 0 when not stored.
    auto write = [&](const Activity& a, bool insert) -> std::int64_t {
      const std::string kind(to_string(a.kind)), direction(to_string(a.direction)),
          status(to_string(a.status));
      std::int64_t seq = 0;
      bool changed = true, inserted = false;
      // Most activities are new: the INSERT's own unique check is the
      // look-up, and only a key already stored is read back and compared.
      if (insert) {
        run(ins_a, a.id, a.source_key, kind, direction, status, a.occurred_at, a.subject, a.snippet,
            a.message_id, a.thread_key, a.opportunity_id, a.reason, a.rule, now, now, next_change);
      }
      if (insert && db_.getChanges() > 0) {
        seq = db_.getLastInsertRowid();
        inserted = true;
        ++next_change;
      } else if (find.bind(1, a.source_key); find.executeStep()) {
        seq = find.getColumn(0).getInt64();
        // A row identical in every field capture decides is left alone, so
        // updated_at says when capture last changed its mind. (The Message-ID
        // of an iMIP update is not such a field: it is written along when
        // something else changed.)
        changed =
            find.getColumn(1).getString() != kind || find.getColumn(2).getString() != direction ||
            find.getColumn(3).getString() != status ||
            find.getColumn(4).getString() != a.occurred_at ||
            find.getColumn(5).getString() != a.subject ||
            find.getColumn(6).getString() != a.snippet ||
            find.getColumn(7).getString() != a.thread_key ||
            find.getColumn(8).getString() != a.opportunity_id ||
            find.getColumn(9).getString() != a.reason || find.getColumn(10).getString() != a.rule;
        find.reset();
        // Participants too: a copy kept as sent mail lists the Bcc its
        // first copy lacked, and a participant may match a contact
        // imported since the first decision.
        if (!changed) changed = participants_of(seq) != a.participants;
        if (!changed && a.kind == ActivityKind::meeting) changed = meeting_of(seq) != a.meeting;
        if (changed) {
          run(upd_a, kind, direction, status, a.occurred_at, a.subject, a.snippet, a.message_id,
              a.thread_key, a.opportunity_id, a.reason, a.rule, now, next_change++, seq);
        }
      } else {
        find.reset();
        if (!insert) return 0;
        // Not inserted, yet not there: the id is another key's (a hash
        // collision), which the store cannot hold.
        throw std::runtime_error("activity id " + a.id + " is taken by another source key");
      }
      if (changed) {
        if (!inserted) run(del_m, seq);
        if (const auto& m = a.meeting) {
          run(ins_m, seq, m->event_uid, m->starts_at, m->ends_at, m->all_day ? 1 : 0, m->location,
              m->cancelled ? 1 : 0, m->sequence);
        }
        if (!inserted) run(del_p, seq);
        for (std::size_t i = 0; i < a.participants.size(); ++i) {
          const Participant& p = a.participants[i];
          // The sort key of the contact's and company's indexes (v11).
          const bool matched = !p.contact_id.empty() || !p.company_id.empty();
          run(ins_p, seq, static_cast<std::int64_t>(i), p.address, p.name, p.role, p.contact_id,
              p.company_id, p.partstat, matched ? a.occurred_at : std::string());
        }
      }
      return seq;
    };
    for (const auto& item : batch.items) {
      const std::int64_t seq = write(item.activity, true);
      const SourceRef& s = item.source;
      run(ins_s, seq, s.mailbox, s.folder, s.uidvalidity, s.uid, s.path, now, s.remote_id);
    }
    for (const auto& a : batch.decided_again) write(a, false);
    auto& again = stmt(
        "INSERT INTO activity_sources (activity_seq, mailbox, folder, uidvalidity, uid, path, "
        "seen_at, remote_id) SELECT seq, ?, ?, ?, ?, ?, ?, ? FROM activities WHERE source_key = ? "
        "ON CONFLICT DO UPDATE SET activity_seq = excluded.activity_seq, "
        "remote_id = excluded.remote_id, removed_at = ''");
    for (const auto& seen : batch.seen_again) {
      const SourceRef& s = seen.source;
      run(again, s.mailbox, s.folder, s.uidvalidity, s.uid, s.path, now, s.remote_id,
          seen.source_key);
    }
    if (!batch.removed_uids.empty()) {
      const SyncCursor& c = *batch.cursor;  // checked above
      // IMAP places only (a calendar's and a file's have UIDVALIDITY 0): a
      // message's own, and those of the meetings it decided (their path "#"
      // and a key). Only the first report counts.
      auto& gone = stmt(
          "UPDATE activity_sources SET removed_at = ? WHERE mailbox = ? AND folder = ? AND "
          "uidvalidity = ? AND uid BETWEEN ? AND ? AND removed_at = ''");
      for (const auto& [first, last] : batch.removed_uids) {
        run(gone, now, c.mailbox, c.folder, c.uidvalidity, first, last);
      }
    }
    if (batch.cursor) write_cursor(*batch.cursor, now);
    if (batch.calendar) write_calendar(*batch.calendar, now);
    const std::int64_t last = next_change - 1;
    if (last < first_change) return 0;
    run(stmt("UPDATE changes SET last_seq = ? WHERE id = 1"), last);
    return last;
  }

  static Activity read_activity(SQLite::Statement& st) {
    Activity a;
    a.id = st.getColumn(0).getString();
    a.source_key = st.getColumn(1).getString();
    a.kind = kind_from(st.getColumn(2).getString());
    a.direction = direction_from(st.getColumn(3).getString());
    a.status = status_from(st.getColumn(4).getString());
    a.occurred_at = st.getColumn(5).getString();
    a.subject = st.getColumn(6).getString();
    a.snippet = st.getColumn(7).getString();
    a.message_id = st.getColumn(8).getString();
    a.thread_key = st.getColumn(9).getString();
    a.opportunity_id = st.getColumn(10).getString();
    a.reason = st.getColumn(11).getString();
    a.rule = st.getColumn(12).getString();
    a.updated_at = st.getColumn(13).getString();
    a.change_seq = st.getColumn(15).getInt64();
    return a;
  }

  // A participant from columns first..first+5 of `st` (address, name, role,
  // contact_id, company_id, partstat).
  static Participant read_participant(SQLite::Statement& st, int first) {
    return {st.getColumn(first).getString(),     st.getColumn(first + 1).getString(),
            st.getColumn(first + 2).getString(), st.getColumn(first + 3).getString(),
            st.getColumn(first + 4).getString(), st.getColumn(first + 5).getString()};
  }

  // The participants stored for the activity `seq`, in order.
  std::vector<Participant> participants_of(std::int64_t seq) {
    auto& p = stmt(
        "SELECT address, name, role, contact_id, company_id, partstat FROM "
        "activity_participants WHERE activity_seq = ? ORDER BY position");
    p.bind(1, seq);
    std::vector<Participant> out;
    while (p.executeStep()) out.push_back(read_participant(p, 0));
    p.reset();
    return out;
  }

  // The meeting fields from columns first..first+6 of `st`.
  static MeetingFields read_meeting(SQLite::Statement& st, int first) {
    return MeetingFields{st.getColumn(first).getString(),     st.getColumn(first + 1).getString(),
                         st.getColumn(first + 2).getString(), st.getColumn(first + 3).getInt() != 0,
                         st.getColumn(first + 4).getString(), st.getColumn(first + 5).getInt() != 0,
                         st.getColumn(first + 6).getInt()};
  }

  // The meeting fields stored for the activity `seq`, if any.
  std::optional<MeetingFields> meeting_of(std::int64_t seq) {
    auto& m = stmt(
        "SELECT event_uid, starts_at, ends_at, all_day, location, cancelled, sequence "
        "FROM activity_meetings WHERE activity_seq = ?");
    m.bind(1, seq);
    return first_row(m, [](SQLite::Statement& r) { return read_meeting(r, 0); });
  }

  // Row keys as a JSON array ("[3,17]"), bound to json_each(?): one
  // statement for any number of rows.
  static std::string key_array(const std::vector<std::int64_t>& seqs) {
    std::string out = "[";
    for (const std::int64_t seq : seqs) {
      if (out.size() > 1) out += ',';
      out += std::to_string(seq);
    }
    return out + ']';
  }

  // Adds to each of `rows` (its row key, the activity) its participants,
  // contact and company ids, meeting fields and places: one statement for
  // each kind of row, whatever the number of activities (the keys go in as
  // a JSON array), so a page of 50 costs three statements, not 150.
  void fill(std::span<std::pair<std::int64_t, Activity>> rows) {
    if (rows.empty()) return;
    std::vector<std::int64_t> seqs;
    std::unordered_map<std::int64_t, Activity*> by_seq;
    seqs.reserve(rows.size());
    by_seq.reserve(rows.size());
    for (auto& [seq, a] : rows) {
      // Each key once: the statements below would give a key named twice
      // its rows twice.
      if (by_seq.emplace(seq, &a).second) seqs.push_back(seq);
    }
    const std::string keys = key_array(seqs);
    // Each statement walks the keys as given (json_each, the outer loop: no
    // list of them is built and sorted first) and seeks each one's rows,
    // which come in the order of the index it seeks: participants by
    // position, places by their key (both plans are checked by
    // Listing.PlacesAreReadFromTheirIndexAloneAndSurviveTheUpgrade).
    const auto each = [&](const char* sql, auto add) {
      auto& st = stmt(sql);
      st.bind(1, keys);
      while (st.executeStep()) add(*by_seq.at(st.getColumn(0).getInt64()), st);
      st.reset();
    };
    each(
        "SELECT p.activity_seq, p.address, p.name, p.role, p.contact_id, p.company_id, "
        "p.partstat FROM json_each(?) k CROSS JOIN activity_participants p "
        "ON p.activity_seq = k.value",
        [](Activity& a, SQLite::Statement& st) {
          a.participants.push_back(read_participant(st, 1));
        });
    // Only meetings have meeting fields: a page of mail skips their table.
    const bool meetings = std::any_of(rows.begin(), rows.end(), [](const auto& r) {
      return r.second.kind == ActivityKind::meeting;
    });
    if (meetings) {
      each(
          "SELECT m.activity_seq, m.event_uid, m.starts_at, m.ends_at, m.all_day, m.location, "
          "m.cancelled, m.sequence FROM json_each(?) k CROSS JOIN activity_meetings m "
          "ON m.activity_seq = k.value",
          [](Activity& a, SQLite::Statement& st) { a.meeting = read_meeting(st, 1); });
    }
    // Read from the places' index alone (v12).
    each(
        "SELECT s.activity_seq, s.mailbox, s.folder, s.uidvalidity, s.uid, s.path, s.remote_id, "
        "s.removed_at FROM json_each(?) k CROSS JOIN activity_sources s "
        "ON s.activity_seq = k.value",
        [](Activity& a, SQLite::Statement& st) {
          a.sources.push_back(SourceRef{st.getColumn(1).getString(), st.getColumn(2).getString(),
                                        st.getColumn(3).getInt64(), st.getColumn(4).getInt64(),
                                        st.getColumn(5).getString(), st.getColumn(6).getString(),
                                        st.getColumn(7).getString()});
        });
    const auto add_unique = [](std::vector<std::string>& v, const std::string& s) {
      if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
    };
    for (auto& [seq, a] : rows) {
      for (const auto& x : a.participants) {
        add_unique(a.contact_ids, x.contact_id);
        add_unique(a.company_ids, x.company_id);
      }
    }
  }

  // The rows of `st` (a k_act_select), at most `limit` (0: all), a row of
  // the same activity as the one before it skipped; filled (fill()).
  std::vector<Activity> read_filled(SQLite::Statement& st, std::size_t limit = 0) {
    std::vector<std::pair<std::int64_t, Activity>> rows;
    while ((limit == 0 || rows.size() < limit) && st.executeStep()) {
      const std::int64_t seq = st.getColumn(14).getInt64();
      if (!rows.empty() && rows.back().first == seq) continue;
      rows.emplace_back(seq, read_activity(st));
    }
    st.reset();
    return filled(rows);
  }

  // The activities of `rows`, filled (fill()).
  std::vector<Activity> filled(std::vector<std::pair<std::int64_t, Activity>>& rows) {
    fill(rows);
    std::vector<Activity> out;
    out.reserve(rows.size());
    for (auto& [seq, a] : rows) out.push_back(std::move(a));
    return out;
  }

  // The rows of a listing's statement `st` (a k_act_select ordered by
  // occurred_at alone), at most `limit` (0: all), in (occurred_at, id)
  // order, descending when `newest_first`; a row of an activity already
  // read at that time skipped; filled (fill()). Rows of one time are put in
  // id order here, and a run of one time at the page's end is read whole
  // before the page is cut.
  std::vector<Activity> read_page(SQLite::Statement& st, std::size_t limit, bool newest_first) {
    std::vector<std::pair<std::int64_t, Activity>> rows;
    // Room for the API's largest page and the row after it (which tells
    // whether another page exists) without moving rows as they come; a
    // larger limit (the command line's) grows as it goes.
    rows.reserve(std::min<std::size_t>(limit, 1000) + 1);
    std::unordered_set<std::int64_t> in_run;  // the activities of the last row's time
    while (st.executeStep()) {
      const std::int64_t seq = st.getColumn(14).getInt64();
      const bool same_time =
          !rows.empty() && rows.back().second.occurred_at == st.getColumn(5).getText();
      if (same_time && in_run.count(seq) != 0) continue;
      if (limit > 0 && rows.size() >= limit && !same_time) break;
      if (!same_time) in_run.clear();
      in_run.insert(seq);
      rows.emplace_back(seq, read_activity(st));
    }
    st.reset();
    const auto by_id = [newest_first](const auto& x, const auto& y) {
      return newest_first ? x.second.id > y.second.id : x.second.id < y.second.id;
    };
    for (auto run = rows.begin(); run != rows.end();) {
      const auto end = std::find_if(run, rows.end(), [&](const auto& r) {
        return r.second.occurred_at != run->second.occurred_at;
      });
      if (end - run > 1) std::sort(run, end, by_id);
      run = end;
    }
    if (limit > 0 && rows.size() > limit) rows.resize(limit);
    return filled(rows);
  }

  Result<std::optional<Activity>> get_one(const char* where, std::string_view key) try {
    const ReadScope scope(db_);  // the row and its participants and places: one snapshot
    auto& st = stmt(k_act_select + where);
    st.bind(1, std::string(key));
    auto rows = read_filled(st, 1);
    if (rows.empty()) return std::optional<Activity>();
    return std::optional<Activity>(std::move(rows.front()));
  } catch (const std::exception& e) {
    return sql_error("reading an activity", e);
  }

  static SyncCursor read_cursor(SQLite::Statement& st) {
    return SyncCursor{st.getColumn(0).getString(), st.getColumn(1).getString(),
                      st.getColumn(2).getInt64(),  st.getColumn(3).getInt64(),
                      st.getColumn(4).getInt64(),  st.getColumn(5).getString()};
  }

  void write_cursor(const SyncCursor& c, const std::string& now) {
    auto& st = stmt(
        "INSERT INTO sync_state (mailbox, folder, uidvalidity, highest_uid, highest_modseq, "
        "extra, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox, folder) DO UPDATE "
        "SET uidvalidity = excluded.uidvalidity, highest_uid = excluded.highest_uid, "
        "highest_modseq = excluded.highest_modseq, extra = excluded.extra, "
        "updated_at = excluded.updated_at");
    run(st, c.mailbox, c.folder, c.uidvalidity, c.highest_uid, c.highest_modseq, c.extra, now);
  }

  void write_calendar(const Batch::Calendar& c, const std::string& now) {
    run(stmt("INSERT INTO calendars (mailbox, url, sync_token, ctag, updated_at) "
             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mailbox, url) DO UPDATE SET "
             "sync_token = excluded.sync_token, ctag = excluded.ctag, "
             "updated_at = excluded.updated_at"),
        c.mailbox, c.url, c.sync_token, c.ctag, now);
    auto& up = stmt(
        "INSERT INTO calendar_items (mailbox, calendar, href, etag, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mailbox, calendar, href) DO UPDATE SET "
        "etag = excluded.etag, updated_at = excluded.updated_at");
    for (const auto& [href, etag] : c.items) run(up, c.mailbox, c.url, href, etag, now);
    auto& del = stmt("DELETE FROM calendar_items WHERE mailbox = ? AND calendar = ? AND href = ?");
    for (const auto& href : c.deleted) run(del, c.mailbox, c.url, href);
    // Only the first report counts (as for IMAP's removed UIDs).
    auto& gone = stmt(
        "UPDATE activity_sources SET removed_at = ? WHERE mailbox = ? AND folder = ? AND "
        "uidvalidity = 0 AND uid = 0 AND path = ? AND removed_at = ''");
    for (const auto& path : c.removed_paths) run(gone, now, c.mailbox, c.url, path);
  }

  void clear_caches() {
    for (auto& cache : contact_cache_) cache.clear();
    domain_cache_.clear();
    opp_of_company_cache_.clear();
    opp_of_contact_cache_.clear();
    company_cache_.clear();
  }

  // After each commit, with the WAL's length in frames (pages). While the
  // WAL is between half the checkpoint length and the full length, each
  // commit asks the checkpointer to copy it into the database, so that it
  // keeps up in the background; at the full length the writer checkpoints
  // itself, as SQLite's automatic checkpoint (which this hook replaces) did,
  // and finds little left to copy. The writer being idle then, that
  // checkpoint reaches the WAL's end, so that the next commit starts the WAL
  // over. (The checkpointer alone never catches up while commits go on: the
  // WAL grew to 102 MB in a 20,000-message backfill.) While a copy of the
  // checkpointer's is still running, the writer's try waits for a later
  // commit; none asks the checkpointer again by then.
  static int on_wal_commit(void* self, sqlite3* db, const char*, int frames) {
    auto& checkpointer = *static_cast<SqliteStore*>(self)->checkpointer_;
    if (frames >= k_checkpoint_frames) {
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= k_checkpoint_frames / 2) {
      checkpointer.request();
    }
    checkpointer.committed();
    return SQLITE_OK;
  }

  static constexpr std::size_t k_cache_limit = 100000;
  SQLite::Database db_;
  int version_;
  std::function<void(std::int64_t)> on_change_;
  // The writer's (none for a StoreOptions::reader); after db_: closed
  // before it, so db_ closes last.
  std::optional<Checkpointer> checkpointer_;
  // By PlusTags: [0] distinct, [1] ignored (keys without their tags).
  std::unordered_map<std::string, std::optional<Contact>> contact_cache_[2];
  std::unordered_map<std::string, std::vector<Company>> domain_cache_;
  std::unordered_map<std::string, std::vector<Opportunity>> opp_of_company_cache_;
  std::unordered_map<std::string, std::vector<Opportunity>> opp_of_contact_cache_;
  std::unordered_map<std::string, std::optional<Company>> company_cache_;
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

}  // namespace

int Store::latest_schema_version() noexcept {
  return static_cast<int>(detail::migrations().size());
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path, const StoreOptions& options) {
  return detail::open_at_version(path, latest_schema_version(), options);
}

namespace detail {

Result<std::unique_ptr<Store>> open_at_version(const std::string& path, int target,
                                               const StoreOptions& options) {
  // SQLite counts every allocation under a process-wide mutex, for statistics
  // nothing here reads. Off before SQLite starts up; later it refuses, which
  // changes nothing.
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  std::optional<SQLite::Database> db;
  try {
    // No mutex on the connection: a Store is used by one thread at a time
    // (store.hpp), so SQLite's own locking would be pure cost on every call.
    db.emplace(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX, 5000);
    // journal_mode returns a row; exec() would complain about it.
    SQLite::Statement wal(*db, "PRAGMA journal_mode = WAL");
    wal.executeStep();
    db->exec("PRAGMA foreign_keys = ON");
    db->exec("PRAGMA synchronous = NORMAL");
    // Statement journals (an upsert's undo log inside a batch) and temporary
    // indexes stay in memory: on disk, every page an upsert touched was
    // written to a temporary file first, three times the WAL's own writes.
    db->exec("PRAGMA temp_store = MEMORY");
    // 64 MiB of page cache (the default 2 MiB is smaller than a CRM directory:
    // pages would go out to the kernel and come back on every batch).
    db->exec(options.reader ? "PRAGMA cache_size = -8192" : "PRAGMA cache_size = -65536");
    // Checkpoint at k_checkpoint_frames (until the store's own hook takes over).
    {
      SQLite::Statement ckpt(*db, detail::cat("PRAGMA wal_autocheckpoint = ", k_checkpoint_frames));
      ckpt.executeStep();
    }
  } catch (const std::exception& e) {
    return make_error(Errc::open_failed, detail::cat(path, ": cannot open store: ", e.what()));
  }
  int version = 0;
  try {
    version = db->execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    return make_error(Errc::open_failed,
                      detail::cat(path, ": not a crm-capture store: ", e.what()));
  }
  const int latest = Store::latest_schema_version();
  const auto newer = [&](int v) {
    return make_error(Errc::newer_schema,
                      detail::cat(path, ": store schema version ", v,
                                  " is newer than this crm-capture supports (", latest,
                                  "); upgrade crm-capture or use another store"));
  };
  if (version > latest) return newer(version);
  const auto steps = migrations();
  while (version < target && version < latest) {
    try {
      // The write lock first, then the version again: another process (the
      // daemon and the command-line tool starting together) may have run
      // this step while this one waited for the lock.
      SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
      const int now = db->execAndGet("PRAGMA user_version").getInt();
      if (now != version) {
        if (now > latest) return newer(now);
        version = now;
        continue;
      }
      const Migration& step = steps[static_cast<std::size_t>(version)];
      db->exec(step.sql);
      if (step.after) step.after(*db);
      db->exec(detail::cat("PRAGMA user_version = ", version + 1));
      tx.commit();
      ++version;
    } catch (const std::exception& e) {
      return make_error(Errc::sql_failed, detail::cat(path, ": migration to schema version ",
                                                      version + 1, " failed: ", e.what()));
    }
  }
  return std::unique_ptr<Store>(new SqliteStore(std::move(*db), version, path, options));
}

}  // namespace detail

}  // namespace crmcap::store
