// SPDX-License-Identifier: Apache-2.0
// crm-capture store: the only module that speaks SQL.
//
// Callers see three small interfaces (Directory, Activities, SyncState) whose
// declarations name no SQLite type, so another backend can sit beside the SQLite
// one later. Every call returns a Result; no exception leaves this module.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace crmcap::store {

// Error of a store operation: a code of store_category() and a message that
// names what failed and where (file, line, table, id).
struct Error {
  std::error_code code;
  std::string message;
};

enum class Errc {
  open_failed = 1,  // the file cannot be opened or is not a database
  newer_schema,     // written by a newer crm-capture; refuse rather than guess
  sql_failed,       // a statement failed (constraint, I/O, busy past the timeout)
  bad_input,        // an import file is malformed; message is "file:line: what"
  not_found,
};
const std::error_category& store_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;
Error make_error(Errc e, std::string message);

template <class T>
using Result = boost::system::result<T, Error>;

// Lets Result<T>::value() throw a readable exception at the top level (tests, CLI).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

// ---- CRM directory ---------------------------------------------------------

enum class OpportunityStatus { open, won, lost };
std::string_view to_string(OpportunityStatus s) noexcept;
std::optional<OpportunityStatus> opportunity_status_from_string(std::string_view s) noexcept;

struct Company {
  std::string id;  // the CRM's own id, kept as given
  std::string name;
  std::vector<std::string> domains;  // normalized: trimmed, lowercase
};

struct Contact {
  std::string id;
  std::string name;
  std::vector<std::string> emails;  // normalized; the first is the primary one
  std::string company_id;           // empty when none
  std::string title;
  std::string phone;
};

struct OpportunityContact {
  std::string contact_id;
  std::string role;  // may be empty: being linked is itself a role
};

struct Opportunity {
  std::string id;
  std::string name;
  std::string company_id;
  std::string stage;
  std::optional<double> amount;
  std::string close_date;  // ISO 8601 date (YYYY-MM-DD) or empty
  OpportunityStatus status = OpportunityStatus::open;
  std::vector<OpportunityContact> contacts;
};

struct DirectoryStats {
  std::int64_t companies = 0, company_domains = 0, contacts = 0, contact_emails = 0,
               opportunities = 0, open_opportunities = 0, opportunity_contacts = 0;
};

// An address without the "+tag" of its local part ("jane+crm@acme.com" ->
// "jane@acme.com"); other addresses unchanged. Expects a trimmed, lowercase
// address. It is the directory's key for a contact address when tags are
// ignored, and capture strips a participant's address with it, so both sides
// of a lookup give the same key.
std::string without_plus_tag(std::string_view address);

// Whether a directory lookup tells "jane+crm@acme.com" from "jane@acme.com".
enum class PlusTags { distinct, ignored };

// Read side of the directory, used by the matcher. Lookups take normalized
// (lowercase) input and return CRM ids; they are cheap (indexed, statements
// prepared once) and may be called on the hot path.
class Directory {
 public:
  virtual ~Directory() = default;
  // The contact owning this address, if any. With PlusTags::ignored, stored
  // addresses are compared without their +tags (`email` may carry one or
  // not); a contact listing the address exactly wins over one that lists it
  // with another tag, then the contact listing it first, then the smallest id.
  virtual Result<std::optional<Contact>> contact_by_email(std::string_view email,
                                                          PlusTags tags) = 0;
  // Companies that list exactly this domain.
  virtual Result<std::vector<Company>> companies_by_domain(std::string_view domain) = 0;
  // Open opportunities of a company.
  virtual Result<std::vector<Opportunity>> open_opportunities_of_company(
      std::string_view company_id) = 0;
  // Open opportunities on which the contact has a role.
  virtual Result<std::vector<Opportunity>> open_opportunities_of_contact(
      std::string_view contact_id) = 0;
  virtual Result<std::optional<Company>> company(std::string_view id) = 0;
  virtual Result<std::optional<Opportunity>> opportunity(std::string_view id) = 0;
  virtual Result<DirectoryStats> stats() = 0;
};

// One change to the directory: a row put (created, or replaced whole) or
// removed, as the local API's PUT, DELETE and directory batches give them.
enum class DirectoryKind { company, contact, opportunity };
std::string_view to_string(DirectoryKind k) noexcept;  // "company", "contact", "opportunity"

struct DirectoryEdit {
  DirectoryKind kind = DirectoryKind::contact;
  bool remove = false;  // false: put the row of `kind` below
  std::string id;       // the row's id (a put's row carries it too)
  Company company;
  Contact contact;
  Opportunity opportunity;
  // Where the edit came from ("line 3"); the prefix of its error messages
  // ("line 3: company_id: unknown company id 'CO-9'"), none when empty.
  std::string where;
};

struct Activity;

// What activities a directory change may decide differently: those with a
// participant whose address is one of `addresses`, whose address's domain
// is one of `domains` or a sub-domain of one, or who was matched to one of
// `contact_ids` or `company_ids`; or whose opportunity is one of
// `opportunity_ids`.
struct Involving {
  std::set<std::string> addresses, domains, contact_ids, company_ids, opportunity_ids;
  void add(const Involving& o);
};
bool involves(const Involving& keys, const Activity& a);

// An edit as applied: whether it created, changed or removed its row, and
// what the row was and is now involves (Involving of the old and the new row).
struct EditApplied {
  enum class What { created, changed, removed };
  What what = What::created;
  Involving involving;
};

struct Batch;

// Write side of the directory: the CSV import (upsert_*) and the local API
// (apply). Each call is one transaction: all rows or none. With `replace`,
// rows of that kind absent from `rows` are deleted too.
class DirectoryWriter {
 public:
  virtual ~DirectoryWriter() = default;
  virtual Result<std::size_t> upsert_companies(const std::vector<Company>& rows, bool replace) = 0;
  virtual Result<std::size_t> upsert_contacts(const std::vector<Contact>& rows, bool replace) = 0;
  virtual Result<std::size_t> upsert_opportunities(const std::vector<Opportunity>& rows,
                                                   bool replace) = 0;
  // Which of these company/contact ids exist (for validating an import).
  virtual Result<std::vector<std::string>> missing_company_ids(
      const std::vector<std::string>& ids) = 0;
  virtual Result<std::vector<std::string>> missing_contact_ids(
      const std::vector<std::string>& ids) = 0;
  // Applies `edits` in order in one transaction, then calls `then` with what
  // each did (same order), still inside it: `then`'s reads see the new
  // directory, and the batch it returns commits in the same transaction
  // (announced through StoreOptions::on_change). Any failure, `then`'s
  // included, leaves the store as it was. A put whose company_id or
  // contact_ids name no row (stored, or put earlier in `edits` and not
  // removed since) fails with Errc::bad_input, a removal of an unknown id
  // with Errc::not_found; each message starts with the edit's `where`. The
  // rows are stored as given: check them first (capture::check_row).
  virtual Result<std::vector<EditApplied>> apply(
      const std::vector<DirectoryEdit>& edits,
      const std::function<Result<Batch>(const std::vector<EditApplied>&)>& then) = 0;
};

// ---- Activities and decisions ---------------------------------------------

enum class ActivityKind { email, meeting };
enum class Direction { inbound, outbound, internal };
// Every message seen gets a row; status says what capture decided.
enum class DecisionStatus { captured, skipped, failed };
std::string_view to_string(ActivityKind k) noexcept;
std::string_view to_string(Direction d) noexcept;
std::string_view to_string(DecisionStatus s) noexcept;

struct Participant {
  std::string address;  // normalized
  std::string name;
  std::string role;        // from, to, cc, bcc, organizer, attendee
  std::string contact_id;  // empty when not matched
  std::string company_id;  // empty when not matched
  // A meeting attendee's answer as last known (PARTSTAT: ACCEPTED, DECLINED,
  // TENTATIVE, NEEDS-ACTION, ...), from the event or an iMIP REPLY; empty
  // when none was given, and for mail.
  std::string partstat;
  bool operator==(const Participant&) const = default;
};

// Where a message was seen: one row per (mailbox, folder, uidvalidity, uid).
struct SourceRef {
  std::string mailbox;  // configured mailbox name, or "local" for ingest
  std::string folder;
  std::int64_t uidvalidity = 0;  // 0 for local files
  std::int64_t uid = 0;          // 0 for local files
  std::string path;              // local file path, empty for IMAP
  // The server's own id of the message, stable across UIDVALIDITY changes
  // ("gm:<X-GM-MSGID>" on Gmail); empty when the server has none.
  std::string remote_id;
  // Filled on read: when the server reported the message gone from this place
  // (ISO 8601 UTC); empty while it is there.
  std::string removed_at;
};

// What a meeting activity (one occurrence) holds beyond an activity's fields.
struct MeetingFields {
  std::string event_uid;  // the calendar object's UID
  // ISO 8601 UTC ("2026-12-01T14:00:00Z"), or a date ("2026-12-01") for an
  // all-day occurrence, whose end date is exclusive.
  std::string starts_at, ends_at;
  bool all_day = false;
  std::string location;
  bool cancelled = false;  // the event or this occurrence was cancelled
  int sequence = 0;        // the event's SEQUENCE as last decided
  bool operator==(const MeetingFields&) const = default;
};

struct Activity {
  std::string id;          // stable: derived from source_key
  std::string source_key;  // "mid:<message-id>" or "syn:<hash>"; unique
  ActivityKind kind = ActivityKind::email;
  Direction direction = Direction::inbound;
  DecisionStatus status = DecisionStatus::captured;
  std::string occurred_at;  // ISO 8601 UTC, "YYYY-MM-DDTHH:MM:SSZ"
  std::string subject;
  std::string snippet;
  std::string message_id;
  std::string thread_key;
  std::string opportunity_id;  // empty when none
  std::string reason;          // the human-readable explanation
  std::string rule;            // skip rule or failure class; empty when captured
  std::vector<Participant> participants;
  std::vector<std::string> contact_ids;  // distinct, in participant order
  std::vector<std::string> company_ids;
  std::vector<SourceRef> sources;  // filled on read
  std::string updated_at;
  std::optional<MeetingFields> meeting;  // set for kind meeting when known
  // Filled on read: the store's change sequence number of the commit that
  // last created or changed this activity (see Activities::changes_after).
  std::int64_t change_seq = 0;
};

// A folder's (or calendar's) sync cursor. Committed together with the batch of
// activities that it covers.
struct SyncCursor {
  std::string mailbox;
  std::string folder;
  std::int64_t uidvalidity = 0;
  std::int64_t highest_uid = 0;
  std::int64_t highest_modseq = 0;
  std::string extra;  // connector-specific state (JSON), opaque to the store
};

// Where a listing stands: the sort key of the last row a page returned.
struct ActivityKey {
  std::string occurred_at;
  std::string id;
  bool operator==(const ActivityKey&) const = default;
};

struct ActivityFilter {
  std::string contact_id, company_id, opportunity_id;
  std::string mailbox;  // only activities seen (with a place) in this mailbox
  // ISO 8601 UTC times or dates, compared as text with occurred_at: `since`
  // inclusive, `until` exclusive (so a date as `until` excludes that day).
  std::string since, until;
  std::optional<ActivityKind> kind;
  std::vector<DecisionStatus> statuses;  // any of these; empty: every status
  // Rows are sorted by (occurred_at, id), oldest first unless newest_first.
  bool newest_first = false;
  // Only rows after this key in the sort order: the next page of a listing.
  // Rows inserted meanwhile before the key are not seen, and none is seen
  // twice, as long as an activity's occurred_at does not change.
  std::optional<ActivityKey> after;
  std::size_t limit = 0;  // 0: no limit
};

// A batch is what one commit covers. The rows upsert by source_key: the same
// message seen again (another folder, another run) updates its row and adds its
// source; the cursor, when given, commits in the same transaction.
struct Batch {
  struct Item {
    Activity activity;
    SourceRef source;
  };
  std::vector<Item> items;
  // Messages already stored under this source key, seen at another place (a
  // copy in Sent, a folder after a UIDVALIDITY change): only the place is added.
  // A key with no stored activity is ignored.
  struct SeenAgain {
    std::string source_key;
    SourceRef source;
  };
  std::vector<SeenAgain> seen_again;
  // Stored activities decided again without a new place (after a directory
  // change): each updates the row of its source key as an item would; a
  // key with no stored activity is ignored.
  std::vector<Activity> decided_again;
  std::optional<SyncCursor> cursor;
  // Inclusive UID ranges the server reports gone from the cursor's folder, at
  // the cursor's UIDVALIDITY (needs `cursor`): the sources there are marked
  // removed; their activities stay.
  std::vector<std::pair<std::int64_t, std::int64_t>> removed_uids;
  // A CalDAV calendar's part of the batch: its new state, the ETags of the
  // items it brings and the hrefs gone from the server. Committed with the
  // activities, so that an item's ETag is never stored without its rows.
  struct Calendar {
    std::string mailbox;
    std::string url;  // the calendar collection; the folder of its places
    std::string sync_token, ctag;
    std::vector<std::pair<std::string, std::string>> items;  // (href, ETag) upserted
    std::vector<std::string> deleted;                        // hrefs removed
    // Places at this calendar (SourceRef::path, uidvalidity and uid 0) the
    // server no longer gives: marked removed once the items above are in.
    std::vector<std::string> removed_paths;
  };
  std::optional<Calendar> calendar;
};

// What the store holds of a CalDAV calendar (Batch::Calendar).
struct CalendarRecord {
  std::string sync_token, ctag;
  std::map<std::string, std::string> items;  // href -> ETag
};

// A read transaction held around a run of look-ups: they see one snapshot and
// take the store's read lock once, instead of once each (several system calls
// per look-up in WAL mode). It ends when destroyed; commit() fails while one is
// held, so end it first.
class ReadHold {
 public:
  virtual ~ReadHold() = default;
};

class Activities {
 public:
  virtual ~Activities() = default;
  virtual Result<void> commit(const Batch& batch) = 0;
  // Holds reads until the returned object is destroyed (see ReadHold). Inside
  // an open transaction it holds nothing more.
  virtual Result<std::unique_ptr<ReadHold>> hold_reads() = 0;
  virtual Result<std::vector<Activity>> list(const ActivityFilter& filter) = 0;
  virtual Result<std::optional<Activity>> get(std::string_view id) = 0;
  // Activities created or changed by commits after the change sequence
  // number `after`, in the order of their latest change, at most `limit`
  // (0: no limit); each with change_seq set. Every commit that creates an
  // activity, or changes a field capture decides (its participants and
  // meeting fields included), gives it a new number, greater than every
  // number given before, in this file: a reader that saw up to N misses
  // nothing by asking for what came after N, across restarts. A new place of
  // a known message, or a place marked removed, changes no number.
  virtual Result<std::vector<Activity>> changes_after(std::int64_t after, std::size_t limit) = 0;
  // The greatest change sequence number given so far; 0 when none.
  virtual Result<std::int64_t> last_change_seq() = 0;
  virtual Result<std::optional<Activity>> by_source_key(std::string_view source_key) = 0;
  // For each key, whether an activity with that source key is stored.
  virtual Result<std::vector<bool>> have_source_keys(const std::vector<std::string>& keys) = 0;
  // The source keys of the meeting activities stored with these fields for
  // the calendar object `event_uid` (MeetingFields::event_uid): a single
  // event's, or every stored occurrence of a series, sorted; empty when none.
  virtual Result<std::vector<std::string>> meeting_keys(std::string_view event_uid) = 0;
  // What the store holds of an activity, for a copy of its message found in
  // a folder (the rule that reads it is capture's).
  struct StoredCopy {
    Direction direction = Direction::inbound;
    bool in_folder = false;  // it has a place in the folder asked about (under
                             // any UIDVALIDITY, removed since or not)
  };
  // For each key, the activity stored with it and whether it has a place in
  // `folder` of `mailbox`; nullopt for a key not stored.
  virtual Result<std::vector<std::optional<StoredCopy>>> stored_copies(
      std::string_view mailbox, std::string_view folder, const std::vector<std::string>& keys) = 0;
  // For each remote id (SourceRef::remote_id), the source key of the activity
  // seen with it in `mailbox`, or an empty string when none was.
  virtual Result<std::vector<std::string>> source_keys_by_remote_id(
      std::string_view mailbox, const std::vector<std::string>& remote_ids) = 0;
  // A place at a calendar and the source key of the activity seen there.
  struct Placement {
    std::string path;
    std::string source_key;
  };
  // The places of `mailbox`'s `folder` (uidvalidity and uid 0: a calendar's)
  // whose path starts with `path_prefix` and that are not marked removed, by
  // path.
  virtual Result<std::vector<Placement>> placed_under(std::string_view mailbox,
                                                      std::string_view folder,
                                                      std::string_view path_prefix) = 0;
  // The activities that occurred at or after `since` (ISO 8601 UTC) and
  // that `keys` involves (see Involving), with participants and places,
  // oldest first.
  virtual Result<std::vector<Activity>> involving(const Involving& keys,
                                                  std::string_view since) = 0;
  // The opportunity of the most recent captured activity in the thread, if any.
  // Only activities that occurred before `before` (ISO 8601 UTC) count, so the
  // answer does not depend on the order in which a thread was seen.
  virtual Result<std::optional<std::string>> thread_opportunity(std::string_view thread_key,
                                                                std::string_view before) = 0;
};

class SyncState {
 public:
  virtual ~SyncState() = default;
  virtual Result<std::optional<SyncCursor>> cursor(std::string_view mailbox,
                                                   std::string_view folder) = 0;
  virtual Result<std::vector<SyncCursor>> cursors(std::string_view mailbox) = 0;
  virtual Result<void> put_cursor(const SyncCursor& c) = 0;
  // Source keys already known in a folder at this UIDVALIDITY, by UID (to skip
  // refetching and to re-map after a UIDVALIDITY change).
  virtual Result<std::vector<std::pair<std::int64_t, std::string>>> known_uids(
      std::string_view mailbox, std::string_view folder, std::int64_t uidvalidity) = 0;
  // The stored state and item ETags of `mailbox`'s calendar at `url`;
  // nullopt when none was committed.
  virtual Result<std::optional<CalendarRecord>> calendar(std::string_view mailbox,
                                                         std::string_view url) = 0;
};

struct StoreOptions {
  // Once no commit has come for this long (at least 50 ms), the WAL is
  // copied into the database and its file cut to nothing, on a thread of the
  // store's own (a TRUNCATE checkpoint, tried again later if a reader is in
  // the way). SQLite otherwise keeps the file at the longest it ever was,
  // for as long as the daemon runs; a size limit instead would also cut it
  // during a backfill, where it slows commits.
  std::chrono::milliseconds wal_idle_truncate{std::chrono::seconds(30)};
  // Called after each commit that gave activities change sequence numbers,
  // with the greatest, on the committing thread, once the commit is durable
  // (readers on other connections see it). Must not throw, and should return
  // quickly (post the news elsewhere): the writer waits for it.
  std::function<void(std::int64_t change_seq)> on_change;
  // A connection that only reads (one of the local API's): its page cache
  // holds at most 8 MiB, not 64, and it starts no checkpointer (the
  // writer's store runs one). Migrations still run on open, and commits
  // still work (SQLite's own checkpoint then keeps the WAL short).
  bool reader = false;
};

// The SQLite store: one file, WAL, foreign keys on, busy_timeout set; schema made
// and upgraded by numbered migrations in PRAGMA user_version.
// One thread at a time: a Store may move between threads, but two threads must
// never call it at once (its connection takes no locks of its own; each thread
// that needs the store at the same time opens its own).
class Store : public Directory, public DirectoryWriter, public Activities, public SyncState {
 public:
  // Opens (creating if absent) and migrates. Fails with Errc::newer_schema when
  // the file was written by a newer version.
  static Result<std::unique_ptr<Store>> open(const std::string& path,
                                             const StoreOptions& options = {});
  virtual int schema_version() const = 0;
  static int latest_schema_version() noexcept;
  // Gives back what the store holds only to be faster on the next calls:
  // SQLite's page cache (as sqlite3_db_release_memory; pages of an open
  // transaction stay) and the directory look-up caches. Later calls read
  // those pages again (from the kernel's cache, usually). For a daemon that
  // goes idle after a backfill; cheap enough to call after every pass.
  virtual void release_memory() = 0;
};

}  // namespace crmcap::store

template <>
struct std::is_error_code_enum<crmcap::store::Errc> : std::true_type {};
