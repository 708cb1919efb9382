// SPDX-License-Identifier: Apache-2.0
// The capture rules (DESIGN.md, "Matching rules"): the skip policy, the
// matcher, and which version of a meeting stands (rule 6). Each is a
// function of the participants, the settings and a Directory view (or of
// the stored meeting), returning its decision with the reason text; they
// write nothing and know no SQL. Mail and meetings call the same matcher.
#pragma once

#include "parsers/calendar/calendar.hpp"
#include "parsers/mail/mail.hpp"
#include "store/store.hpp"

#include <boost/system/result.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
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
  // The window in which a calendar's recurring series are expanded, from
  // now: [now - backfill_days, now + horizon_days].
  int backfill_days = 90;
  int horizon_days = 30;
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

// Rule 1: an address as the rules compare it, trimmed and lowercase, and
// with `strip_plus_tags` without the "+tag" of its local part. The directory
// finds contacts by the same key (store::without_plus_tag).
std::string normalize_address(std::string_view address, bool strip_plus_tags);

// How a lookup of a normalized address treats +tags, for these settings.
inline store::PlusTags plus_tags(const Settings& s) {
  return s.strip_plus_tags ? store::PlusTags::ignored : store::PlusTags::distinct;
}

// A decision not to capture: the rule's name ("bulk") and what it saw.
struct Skip {
  std::string rule;
  std::string why;
};

// Rule 0: the participants of a message, From, To, Cc, then Bcc, in header
// order, each address normalized and listed once (its first role kept);
// words without '@' are not addresses and are left out.
std::vector<store::Participant> mail_participants(const mail::MailMessage& m, bool strip_plus_tags);

// Rule 0 for a meeting occurrence: the organizer ("organizer"), then every
// attendee ("attendee"), each address normalized and listed once; rooms and
// resources (CUTYPE ROOM or RESOURCE) are not people and are left out.
std::vector<store::Participant> meeting_participants(const ical::Meeting& m, bool strip_plus_tags);

// Rules 2 and 3: who is internal or blocked, and what is never captured.
class Policy {
 public:
  // Normalizes the settings' addresses and domains once.
  explicit Policy(const Settings& settings);

  bool is_owner(std::string_view address) const;     // a normalized address
  bool is_internal(std::string_view address) const;  // owner, or an internal (sub-)domain
  bool is_blocked(std::string_view address) const;
  // The folder's last element ("INBOX/Spam", "INBOX.Trash") or its whole name
  // is an excluded one.
  bool excluded_folder(std::string_view folder) const;

  // What a message's own header fields say: bulk (List-Id, List-Unsubscribe,
  // Precedence), auto-reply (Auto-Submitted, X-Autoreply), bounce (from
  // mailer-daemon or postmaster), private (Sensitivity). `people` as
  // mail_participants gives them.
  std::optional<Skip> mail_skip(const mail::MailMessage& m,
                                const std::vector<store::Participant>& people) const;

  // What a meeting's own fields say: private (CLASS PRIVATE or
  // CONFIDENTIAL), declined (an owner address declined it).
  std::optional<Skip> meeting_skip(const ical::Meeting& m) const;
  // The declined rule on a stored occurrence's participants (as
  // meeting_participants gives them, with answers recorded since): an
  // attendee at an owner address whose PARTSTAT is DECLINED.
  std::optional<Skip> declined(const std::vector<store::Participant>& people) const;

  // Rule 2 and the blocklist: the positions in `people` left to match, in
  // order, or the skip when none is ("no-participants", "internal",
  // "blocklist").
  boost::system::result<std::vector<std::size_t>, Skip> outside_participants(
      const std::vector<store::Participant>& people) const;

  // DESIGN.md rule 7 for a copy kept as sent mail of a message whose activity
  // is stored: it decides that activity again, as sent, when the activity is
  // inbound or has no place in the copy's folder yet (it was decided from
  // another folder's copy, which lacks the Bcc only the sender's copy lists).
  static bool sent_copy_decides_again(const store::Activities::StoredCopy& stored);

 private:
  // The declined rule for one attendee's answer; `address` normalized.
  std::optional<Skip> declined_by(const std::string& address, std::string_view partstat) const;

  bool strip_plus_tags_;
  std::set<std::string> owners_;
  std::vector<std::string> internal_domains_, block_addresses_, block_domains_, excluded_folders_;
};

// Rule 6: where a version of a meeting occurrence comes from.
enum class MeetingOrigin {
  calendar,     // the owner's calendar: a CalDAV item or an .ics file
  imip_update,  // iMIP REQUEST, PUBLISH or ADD: the organizer's version
  imip_cancel,  // iMIP CANCEL
  imip_answer,  // iMIP REPLY, COUNTER, REFRESH, DECLINECOUNTER or another
                // method: an attendee's word, never the meeting's details
};

// The origin of an iMIP message by its METHOD (upper case, as
// mail::CalendarPart gives it).
MeetingOrigin imip_origin(std::string_view method);

// The rule name of an iMIP message's own decision row: the message is no
// activity of its own, and its reason says what it did to its meeting.
inline constexpr std::string_view kImipRule = "imip";

// Rule 6 (RFC 5546's SEQUENCE): why the meeting occurrence `stored` stands
// against a version from `origin` whose SEQUENCE is `sequence`, or nullopt
// when that version replaces it. A higher SEQUENCE replaces the stored one
// and a lower one never does (an older invitation arriving late). At an
// equal SEQUENCE the calendar's copy replaces it (it knows the owner's own
// answer), a CANCEL does unless the occurrence is cancelled already, and an
// organizer's iMIP version does unless the occurrence is cancelled or the
// owner declined it (skipped, rule "declined"): the same revision sent
// again undoes neither. An answer never replaces a stored occurrence. A
// stored one without meeting fields (an unreadable event) always yields.
std::optional<std::string> stored_version_stands(MeetingOrigin origin, int sequence,
                                                 const store::Activity& stored);

// Rule 6 for an answer (REPLY) recorded on a stored occurrence: what becomes
// of the occurrence's decision.
enum class AfterAnswer {
  stands,       // the decision is kept (the answer is recorded only)
  decline,      // skipped, rule "declined": the owner declined it
  match_again,  // the owner no longer declines it: matched afresh
};
// `stored` is the occurrence with the answer recorded on its participants,
// `declined` whether Policy::declined finds an owner's DECLINED among them.
// A decision the owner's answer has no part in stands: a private meeting
// (that rule comes first), a failed row, an occurrence without meeting
// fields. Otherwise an owner's DECLINED skips it, and an occurrence skipped
// as declined whose owner answers otherwise (ACCEPTED, TENTATIVE, ...) is
// matched again, as the calendar would decide it.
AfterAnswer after_answer(const store::Activity& stored, bool declined);

// What the matcher found.
struct Match {
  std::vector<std::string> contact_ids;  // distinct, in participant order
  std::vector<std::string> company_ids;  // distinct: contacts' companies, then domains'
  std::string opportunity_id;            // empty when none
  // Set when no participant is a known contact or company (rule "unmatched").
  std::optional<Skip> unmatched;
  // One line per matched participant ("to: jane@acme.com = contact C-17"),
  // the reason's first part.
  std::vector<std::string> links;
  // Participants left unmatched and why, for `explain` only.
  std::vector<std::string> notes;
  // Rule 5's answer and why ("opportunity O-4: only open opportunity of Acme").
  std::string opportunity_line;
};

// The opportunity of the latest earlier activity in the thread, if any;
// asked only when rule 5 gets that far.
using ThreadOpportunity = std::function<store::Result<std::optional<std::string>>()>;

// Rules 4 and 5.
class Matcher {
 public:
  // Keeps references: both must outlive the matcher.
  Matcher(store::Directory& directory, const FreeMailDomains& free_mail, store::PlusTags tags);

  // Matches the participants at `outside` (their contact and company ids are
  // filled in) and chooses the opportunity. A failed directory or thread
  // read is returned as that error, never taken as "no match".
  store::Result<Match> match(std::vector<store::Participant>& people,
                             const std::vector<std::size_t>& outside,
                             const ThreadOpportunity& thread) const;

 private:
  // Rule 4's second step for one participant: a company by its domain or a
  // parent domain. Returns the company's name when one matched.
  store::Result<std::optional<std::string>> match_company(store::Participant& p, Match& m) const;
  // Rule 5, given who matched.
  store::Result<void> choose_opportunity(const std::vector<std::string>& contact_ids,
                                         const std::string& company_name,
                                         const ThreadOpportunity& thread, Match& m) const;

  store::Directory& directory_;
  const FreeMailDomains& free_mail_;
  store::PlusTags tags_;
};

}  // namespace crmcap::capture
