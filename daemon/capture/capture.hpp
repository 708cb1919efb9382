// SPDX-License-Identifier: Apache-2.0
// Capture rules: from a parsed message to an activity record with a reason.
//
// The pipeline is free of file and network code: connectors and the `ingest`
// command hand it raw bytes and a source reference, it parses, applies the
// capture policy (what is skipped and why) and the matcher (who, which
// opportunity, and why), and returns the activity row to store. The directory
// and earlier activities are read through the store interfaces only.
#pragma once

#include "parsers/mail/mail.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace crmcap::capture {

struct Settings {
  std::vector<std::string> owner_addresses;   // the mailbox owner's addresses
  std::vector<std::string> internal_domains;  // sub-domains count as internal
  bool strip_plus_tags = true;                // jane+crm@acme.com = jane@acme.com
  std::vector<std::string> block_addresses;
  std::vector<std::string> block_domains;  // sub-domains are blocked too
  // Folders never captured (compared case-insensitively, last path element).
  std::vector<std::string> excluded_folders = {
      "spam",   "junk", "junk e-mail", "junk email", "trash", "deleted items", "deleted messages",
      "drafts", "bin"};
  std::size_t snippet_chars = 280;
};

// The shipped list of free-mail domains (gmail.com, ...): never a company.
class FreeMailDomains {
 public:
  // Parses one domain per line; '#' starts a comment.
  static FreeMailDomains from_text(std::string_view text);
  // Reads `path`, or when it is empty the installed list, else the source
  // tree's (a build that was not installed). Fails with the paths tried.
  static boost::system::result<FreeMailDomains, std::string> load(const std::string& path = {});
  bool contains(std::string_view domain) const;
  std::size_t size() const { return domains_.size(); }

 private:
  std::unordered_set<std::string> domains_;
};

// Normalizes an address as the matcher compares them: lowercase, and with
// `strip_plus_tags` the "+tag" of the local part removed.
std::string normalize_address(std::string_view address, bool strip_plus_tags);

// The stable id of an activity, derived from its source key only.
std::string activity_id_for(std::string_view source_key);

// Where a raw message came from, as the connector or ingest saw it.
struct MessageSource {
  store::SourceRef ref;
  std::int64_t received_at = 0;  // Unix seconds; the date used when Date is unreadable
  // The mailbox keeps the message as sent mail (an IMAP \Sent folder, a
  // Gmail \Sent label): outbound even when its From is not an owner address.
  bool sent = false;
};

// What `explain` shows: the parse result and each decision with its reason.
struct Outcome {
  store::Activity activity;                  // status, rule and reason filled
  std::optional<mail::MailMessage> message;  // absent when parsing failed
  std::vector<std::string> steps;            // the matcher's trail, one line per step
};

class Pipeline {
 public:
  Pipeline(store::Directory& directory, store::Activities& activities, Settings settings,
           FreeMailDomains free_mail);

  // Parses, decides and matches one message. Never throws; a message that cannot
  // be parsed gives a `failed` activity whose reason says why. Directory errors
  // give a `failed` activity too (rule "store"), so nothing is dropped.
  Outcome process(std::string_view raw, const MessageSource& source);

  // Same decision for an already parsed message (used by connectors that parse
  // once and by tests).
  Outcome decide(mail::MailMessage message, const MessageSource& source);

  // process() in two steps, for a caller that parses on several threads.
  // parse() reads only the settings: calls may run at once, on any thread,
  // with each other and with the rest of the pipeline. finish() does with its
  // result what process() does.
  mail::Result<mail::MailMessage> parse(std::string_view raw, const MessageSource& source) const;
  Outcome finish(std::string_view raw, mail::Result<mail::MailMessage> parsed,
                 const MessageSource& source);
  // A message the server would not send (`why`: its words): a failed row
  // keyed by its place, so that it is listed and never silently dropped.
  Outcome unfetched(std::string_view why, const MessageSource& source) const;

  // Tells the pipeline that `activity` will be committed: later messages of the
  // same thread in this batch then see its opportunity before the commit.
  void remember(const store::Activity& activity);
  // Forgets what remember() kept (after the batch committed).
  void clear_pending();

  const Settings& settings() const { return settings_; }

 private:
  bool is_owner(std::string_view address) const;
  bool is_internal(std::string_view address) const;
  bool is_blocked(std::string_view address) const;
  bool excluded_folder(std::string_view folder) const;
  std::string thread_key_of(const mail::MailMessage& m);
  bool already_captured(const std::string& source_key);
  std::optional<std::string> thread_opportunity(const std::string& thread_key,
                                                const std::string& before);

  store::Directory& directory_;
  store::Activities& activities_;
  Settings settings_;
  FreeMailDomains free_mail_;
  std::set<std::string> owners_;
  // Pending (not yet committed) activities of the current batch, by message id
  // and by thread key, for thread lookups.
  std::unordered_map<std::string, std::string> pending_thread_of_mid_;
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>>
      pending_opp_of_thread_;                         // thread -> (occurred_at, opportunity)
  std::unordered_set<std::string> pending_captured_;  // source keys
};

// Formats Unix seconds as ISO 8601 UTC ("2026-11-25T19:08:31Z").
std::string iso_utc(std::int64_t unix_seconds);

}  // namespace crmcap::capture
