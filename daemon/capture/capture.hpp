// SPDX-License-Identifier: Apache-2.0
// The capture pipeline: from raw bytes to an activity record with a reason.
//
// The pipeline is free of file and network code: connectors and the `ingest`
// command hand it raw bytes and a source reference, it parses, applies the
// skip policy and the matcher (rules.hpp), and returns the activity row to
// store; BatchWriter collects rows and commits them. The directory and
// earlier activities are read through the store interfaces only.
#pragma once

#include "daemon/capture/rules.hpp"
#include "parsers/mail/mail.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace crmcap::capture {

// The source key of a meeting occurrence: "ical:UID", then "/" and the
// original start (ISO 8601 UTC, or the date of an all-day one) for an
// occurrence of a series, so a moved occurrence keeps its activity.
std::string meeting_key(std::string_view uid, const std::optional<ical::When>& occurrence);

// A meeting occurrence's status at `now` (Unix seconds): "cancelled",
// "scheduled" before its end, "held" from its end on.
std::string_view meeting_status(const store::MeetingFields& m, std::int64_t now);

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
  // Rule 6: the meeting occurrences an iMIP message decided (new ones, or
  // stored ones it replaced or cancelled), and the failed rows of what in it
  // could not be read, each stored at the message's place with "#" and its
  // source key appended (BatchWriter::add). The message itself is then no
  // activity: `activity` is its own row, rule kImipRule, whose reason says
  // what it did to which meeting, including the occurrences whose stored
  // version stood.
  std::vector<store::Activity> meetings;
};

// A message capture could not decide on: a failed row under `source_key`
// with `rule` and the reason "failed: <why>", so that it is listed and never
// dropped.
Outcome failed_outcome(std::string source_key, std::string rule, const std::string& why,
                       const MessageSource& source);

class Pipeline {
 public:
  // Keeps references to `directory` and `activities`: both must outlive it.
  Pipeline(store::Directory& directory, store::Activities& activities, Settings settings,
           FreeMailDomains free_mail);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Parses, decides and matches one message. Never throws; a message that cannot
  // be parsed gives a `failed` activity whose reason says why. A failed read of
  // the directory or of earlier activities gives a `failed` activity too (rule
  // "store"), never a skip or a wrong match, so nothing is dropped.
  //
  // A message with iMIP parts (rule 6) becomes no activity of its own: each
  // part is read with the calendar parser (expanded in calendar_options at
  // clock()) and updates the meeting occurrences it names in
  // Outcome::meetings, keyed as a calendar's are. REQUEST, PUBLISH and ADD
  // decide each occurrence as decide_meeting() does (the part's notes
  // ending its reason), where the stored version does not stand
  // (stored_version_stands). CANCEL marks the stored
  // occurrences cancelled (every one of the UID, or the RECURRENCE-ID's),
  // or, with none stored for the UID, records the cancelled meeting from its
  // own content. An answer (REPLY, COUNTER, ...) changes no meeting
  // details; a REPLY records its PARTSTATs on the stored occurrences'
  // attendees, and the owner's own answer applies the declined rule to them
  // (after_answer). With nothing stored for the UID an answer records the
  // meeting from its event. The message's row (skipped, rule kImipRule) says what
  // was done. A part or an event in it that cannot be read is a failed row
  // of its own in Outcome::meetings (rule "parse", keyed "imip:" Message-ID
  // "#" and its number), and changes no meeting. A message is applied once:
  // decided before (its row stored with kImipRule), it keeps that row.
  // Parts that hold no event at all (a task), or none that could be read,
  // leave it an ordinary message.
  Outcome process(std::string_view raw, const MessageSource& source);

  // Same decision for an already parsed message (used by connectors that parse
  // once and by tests).
  Outcome decide(mail::MailMessage message, const MessageSource& source);

  // Decides one occurrence of a calendar object (a CalDAV resource, an .ics
  // file): a meeting activity keyed by meeting_key(UID, original start), its
  // participants the organizer and attendees. Skipped: private (CLASS),
  // declined by the owner, internal, blocklisted, unmatched. A cancelled
  // occurrence is captured with its meeting marked cancelled. Where the
  // version stored under that key (or pending in this batch) stands
  // against this one (stored_version_stands, MeetingOrigin::calendar: an
  // iMIP update of a higher SEQUENCE), the outcome is the stored activity
  // unchanged, its step saying why.
  //
  // `object_notes` are the notes of the calendar object the occurrence came
  // from (ical::Calendar::warnings). They and the meeting's own notes end
  // the reason, each as "; note: <note>" (object's first), and are steps of
  // their own; redecide() keeps them. A stored version that stands takes
  // none: it did not come from this object.
  Outcome decide_meeting(const ical::Meeting& meeting, const MessageSource& source,
                         const std::vector<std::string>& object_notes = {});
  // A VEVENT the calendar parser could not read: a failed meeting row keyed
  // by its UID and occurrence, or, without a UID, by `object_key` (the
  // object's href or path and the event's place in it). `object_notes` end
  // its reason as decide_meeting's do.
  Outcome failed_event(const ical::EventFailure& failure, std::string_view object_key,
                       const MessageSource& source,
                       const std::vector<std::string>& object_notes = {}) const;
  // How calendar objects are parsed under these settings at `now` (Unix
  // seconds): the expansion window, the snippet length.
  ical::ParseOptions calendar_options(std::int64_t now) const;

  // process() in two steps, for a caller that parses on several threads.
  // parse() reads only the settings: calls may run at once, on any thread,
  // with each other and with the rest of the pipeline. finish() does with its
  // result what process() does.
  mail::Result<mail::MailMessage> parse(std::string_view raw, const MessageSource& source) const;
  Outcome finish(std::string_view raw, mail::Result<mail::MailMessage> parsed,
                 const MessageSource& source);
  // A message that could not be fetched (`why`: the server's refusal in its
  // words, an answer that could not be read, or one too large): a failed row
  // keyed by its place, so that it is listed and never silently dropped.
  Outcome unfetched(std::string_view why, const MessageSource& source) const;

  // Decides a stored activity again from what the store keeps of it (its
  // participants, thread, time and direction; the message is not read
  // again): rule 2, the blocklist and the matcher, against the directory
  // as it is now. The links of the outcome are its own: the stored
  // participants' contact and company ids are not kept; the notes that end
  // the stored reason (decide_meeting) end the new one. Messages skipped
  // for what their header fields or their folder said are not asked here:
  // the directory cannot change those decisions (see can_redecide).
  Outcome redecide(store::Activity stored);
  // Whether a directory change can change this stored decision: it was
  // captured, or skipped as unmatched.
  static bool can_redecide(const store::Activity& stored);

  // Tells the pipeline that `activity` will be committed: later messages of the
  // same thread in this batch then see its opportunity before the commit.
  void remember(const store::Activity& activity);
  // Forgets what remember() kept (after the batch committed).
  void clear_pending();

  const Settings& settings() const { return settings_; }
  const Policy& policy() const { return policy_; }

  // Now, in Unix seconds: the window of iMIP parts' recurring series
  // (calendar_options). Default: the system clock.
  std::function<std::int64_t()> clock;

 private:
  // What one iMIP message has done so far (decide_imip_into).
  struct ImipRun;

  void decide_mail_into(Outcome& out, const mail::MailMessage& m, const MessageSource& source);
  // Rule 6 for a message with iMIP parts; false when no part holds an event
  // that could be read (the failed rows of those that could not are in
  // out.meetings then).
  bool decide_imip_into(Outcome& out, const mail::MailMessage& m, const MessageSource& source);
  store::Result<void> imip_update(ImipRun& run, ical::Calendar& cal);
  store::Result<void> imip_cancel(ImipRun& run, ical::Calendar& cal);
  store::Result<void> imip_answer(ImipRun& run, const ical::Calendar& cal);
  // A REPLY's PARTSTATs onto the attendees of the stored occurrences of
  // `uid` (`known`, sorted) that it answers for, unless it answers an older
  // SEQUENCE, each occurrence then decided as after_answer() says; the keys
  // of those it changed are appended to `recorded`.
  store::Result<void> record_answers(ImipRun& run, const ical::Calendar& cal,
                                     const std::string& uid, const std::vector<std::string>& known,
                                     std::vector<std::string>& recorded);
  // decide_meeting without rule 6: the occurrence's own decision.
  Outcome decide_occurrence(const ical::Meeting& m, const MessageSource& source,
                            const std::vector<std::string>& object_notes);
  // The meeting occurrence pending in this batch under `key`, else the
  // stored one; nullopt when neither is.
  store::Result<std::optional<store::Activity>> stored_meeting(const std::string& key);
  // The source keys of the occurrences of the event `uid` pending or stored
  // (with meeting fields, or under the UID's own key without them), sorted.
  store::Result<std::vector<std::string>> stored_meeting_keys(const std::string& uid);
  // Rule 2, the blocklist and the matcher on out.activity's participants:
  // leaves it captured, skipped or failed, with its reason.
  void match_into(Outcome& out);
  store::Result<std::string> thread_key_of(const mail::MailMessage& m);
  // Whether the message under `source_key` was decided from another copy so
  // that the decision stands against a copy in an excluded folder: it was
  // captured, or (an iMIP message) applied to its meeting (kImipRule).
  store::Result<bool> decided_elsewhere(const std::string& source_key);
  store::Result<std::optional<std::string>> thread_opportunity(const std::string& thread_key,
                                                               const std::string& before);

  store::Activities& activities_;
  Settings settings_;
  FreeMailDomains free_mail_;
  Policy policy_;
  Matcher matcher_;
  // Pending (not yet committed) activities of the current batch, by message id
  // and by thread key, for thread lookups.
  std::unordered_map<std::string, std::string> pending_thread_of_mid_;
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>>
      pending_opp_of_thread_;                         // thread -> (occurred_at, opportunity)
  std::unordered_set<std::string> pending_captured_;  // source keys
  // Rule 6: the pending rows of iMIP messages, the pending meeting
  // occurrences with their fields, by source key, and their keys by event UID.
  std::unordered_map<std::string, store::Activity> pending_imip_rows_;
  std::unordered_map<std::string, store::Activity> pending_meetings_;
  std::unordered_map<std::string, std::set<std::string>> pending_keys_of_event_;
};

// What a run decided, counted.
struct Tally {
  std::size_t seen = 0, captured = 0, skipped = 0, failed = 0;
  // Messages whose activity was stored already: only their place was new.
  std::size_t known = 0;
  // Stored activities decided again from their copy kept as sent mail (not
  // counted as captured, skipped or failed a second time).
  std::size_t decided_again = 0;
  std::map<std::string, std::size_t> skipped_by_rule;

  Tally& operator+=(const Tally& o);
  // "seen 12, captured 7, skipped 4 (bulk 2, internal 2), failed 1", then
  // ", known N" and ", decided again from sent copies N" when not zero.
  std::string line() const;
};

// The one way decided messages reach the store: collects them into a batch,
// counts each, lets later messages of the batch see it (Pipeline::remember),
// and commits the batch, with its cursor when one is set, in one transaction.
class BatchWriter {
 public:
  // Keeps references: both must outlive the writer.
  BatchWriter(Pipeline& pipeline, store::Activities& activities);

  // A decided message seen at `place`, and the meeting occurrences it decided
  // (Outcome::meetings), each at `place` with "#" and its source key appended
  // to the path and no remote id. With `again`, the stored activity of this
  // key was decided again (see Policy::sent_copy_decides_again): it is
  // counted as decided again when the outcome kept that key.
  void add(Outcome outcome, const store::SourceRef& place, std::string_view again = {});
  // A message whose activity is stored under `source_key`: only its place is
  // added.
  void add_known(std::string source_key, const store::SourceRef& place);

  // The batch being built (to set its cursor or removed UIDs).
  store::Batch& batch() { return batch_; }
  std::size_t size() const { return batch_.items.size() + batch_.seen_again.size(); }
  // Commits the batch and starts an empty one (also when the commit failed:
  // the caller retries from its own cursor); the pipeline forgets its pending
  // rows. The tally keeps counting across commits.
  store::Result<void> commit();
  const Tally& tally() const { return tally_; }

 private:
  void count(const store::Activity& a);

  Pipeline& pipeline_;
  store::Activities& activities_;
  store::Batch batch_;
  Tally tally_;
};

// Formats Unix seconds as ISO 8601 UTC ("2026-11-25T19:08:31Z").
std::string iso_utc(std::int64_t unix_seconds);

}  // namespace crmcap::capture
