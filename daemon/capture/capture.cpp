// SPDX-License-Identifier: Apache-2.0
// The capture pipeline: parse, then the rules (rules.hpp), then the batch.
#include "daemon/capture/capture.hpp"
#include "daemon/capture/text.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>

namespace crmcap::capture {

namespace {

// The first 16 bytes of SHA-256(bytes), as 32 lowercase hex digits.
std::string sha256_prefix_hex(std::string_view bytes) {
  // Fetched once: with OpenSSL 3, EVP_sha256() makes every EVP_Digest look the
  // algorithm up again (a lock and a search), which cost more than the hash.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, sha256 ? sha256 : EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 16 && i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string activity_id_for(std::string_view source_key) {
  return "a-" + sha256_prefix_hex(source_key);
}

std::string iso_utc(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (!gmtime_r(&tt, &tm)) return "1970-01-01T00:00:00Z";
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Outcome failed_outcome(std::string source_key, std::string rule, const std::string& why,
                       const MessageSource& source) {
  Outcome out;
  store::Activity& a = out.activity;
  a.source_key = std::move(source_key);
  a.id = activity_id_for(a.source_key);
  a.status = store::DecisionStatus::failed;
  a.rule = std::move(rule);
  a.occurred_at = iso_utc(source.received_at);
  a.reason = "failed: " + why;
  out.steps.push_back(a.reason);
  return out;
}

// ---- pipeline ----------------------------------------------------------------------

Pipeline::Pipeline(store::Directory& directory, store::Activities& activities, Settings settings,
                   FreeMailDomains free_mail)
    : clock([] { return static_cast<std::int64_t>(std::time(nullptr)); }),
      activities_(activities),
      settings_(std::move(settings)),
      free_mail_(std::move(free_mail)),
      policy_(settings_),
      matcher_(directory, free_mail_, plus_tags(settings_)) {}

store::Result<std::string> Pipeline::thread_key_of(const mail::MailMessage& m) {
  // The root of References names the thread. Without References, a reply
  // inherits the thread of the message it answers, when that one is known.
  if (!m.references.empty()) return m.references.front();
  if (m.in_reply_to.empty()) return m.message_id;
  if (auto it = pending_thread_of_mid_.find(m.in_reply_to); it != pending_thread_of_mid_.end()) {
    return it->second;
  }
  auto parent = activities_.by_source_key("mid:" + m.in_reply_to);
  if (!parent) return parent.error();
  if (*parent && !(*parent)->thread_key.empty()) return (*parent)->thread_key;
  return m.in_reply_to;
}

store::Result<std::optional<std::string>> Pipeline::thread_opportunity(
    const std::string& thread_key, const std::string& before) {
  std::optional<std::pair<std::string, std::string>> best;  // (occurred_at, opportunity)
  if (auto it = pending_opp_of_thread_.find(thread_key); it != pending_opp_of_thread_.end()) {
    for (const auto& p : it->second) {
      if (p.first < before && (!best || p.first > best->first)) best = p;
    }
  }
  // The store does not say when its answer occurred; a pending one of this
  // batch is at least as recent as anything committed before it.
  if (best) return best->second;
  return activities_.thread_opportunity(thread_key, before);
}

store::Result<bool> Pipeline::decided_elsewhere(const std::string& source_key) {
  if (pending_captured_.contains(source_key) || pending_imip_rows_.contains(source_key)) {
    return true;
  }
  auto stored = activities_.by_source_key(source_key);
  if (!stored) return stored.error();
  return *stored &&
         ((*stored)->status == store::DecisionStatus::captured || (*stored)->rule == kImipRule);
}

store::Result<std::optional<store::Activity>> Pipeline::stored_meeting(const std::string& key) {
  if (auto it = pending_meetings_.find(key); it != pending_meetings_.end()) return it->second;
  return activities_.by_source_key(key);
}

store::Result<std::vector<std::string>> Pipeline::stored_meeting_keys(const std::string& uid) {
  std::set<std::string> keys;
  if (auto it = pending_keys_of_event_.find(uid); it != pending_keys_of_event_.end()) {
    keys = it->second;
  }
  auto stored = activities_.meeting_keys(uid);
  if (!stored) return stored.error();
  keys.insert(stored->begin(), stored->end());
  // A row under the UID's own key without meeting fields: an unreadable
  // event, or an iMIP message that an earlier version stored as the meeting.
  const std::string whole = meeting_key(uid, std::nullopt);
  if (!keys.contains(whole)) {
    auto have = activities_.have_source_keys({whole});
    if (!have) return have.error();
    if (have->front()) keys.insert(whole);
  }
  return std::vector<std::string>(keys.begin(), keys.end());
}

void Pipeline::remember(const store::Activity& a) {
  if (a.meeting) {
    pending_meetings_.insert_or_assign(a.source_key, a);
    pending_keys_of_event_[a.meeting->event_uid].insert(a.source_key);
  }
  if (a.rule == kImipRule) pending_imip_rows_.insert_or_assign(a.source_key, a);
  if (a.status != store::DecisionStatus::captured) return;
  pending_captured_.insert(a.source_key);
  if (!a.message_id.empty()) pending_thread_of_mid_[a.message_id] = a.thread_key;
  if (!a.opportunity_id.empty() && !a.thread_key.empty()) {
    pending_opp_of_thread_[a.thread_key].emplace_back(a.occurred_at, a.opportunity_id);
  }
}

void Pipeline::clear_pending() {
  pending_thread_of_mid_.clear();
  pending_opp_of_thread_.clear();
  pending_captured_.clear();
  pending_imip_rows_.clear();
  pending_meetings_.clear();
  pending_keys_of_event_.clear();
}

Outcome Pipeline::process(std::string_view raw, const MessageSource& source) {
  return finish(raw, parse(raw, source), source);
}

mail::Result<mail::MailMessage> Pipeline::parse(std::string_view raw,
                                                const MessageSource& source) const {
  mail::ParseOptions opt;
  opt.received_at = source.received_at;
  opt.snippet_chars = settings_.snippet_chars;
  return mail::parse(raw, opt);
}

Outcome Pipeline::finish(std::string_view raw, mail::Result<mail::MailMessage> parsed,
                         const MessageSource& source) {
  // A message that cannot be parsed still gets a row, keyed by its bytes, so
  // it is listed as failed and never silently dropped.
  if (!parsed) {
    return failed_outcome("raw:" + sha256_prefix_hex(raw), "parse",
                          "cannot parse the message: " + parsed.error().message, source);
  }
  return decide(std::move(*parsed), source);
}

Outcome Pipeline::unfetched(std::string_view why, const MessageSource& source) const {
  const store::SourceRef& r = source.ref;
  return failed_outcome("unfetched:" + r.mailbox + "/" + r.folder + "/" +
                            std::to_string(r.uidvalidity) + "/" + std::to_string(r.uid),
                        "fetch", "the message could not be fetched: " + std::string(why), source);
}

namespace {

constexpr std::string_view kNoteSeparator = "; note: ";

// The end of a reason for `notes`: "; note: <note>" each, so that what
// parsing could only guess (a zone read as UTC, a VTIMEZONE ignored) stays
// on the record, not only in `explain`.
std::string notes_suffix(const std::vector<std::string>& notes) {
  std::string out;
  for (const auto& n : notes) (out += kNoteSeparator) += n;
  return out;
}

// The notes_suffix() that ends `reason`; empty when it has none.
std::string notes_of(std::string_view reason) {
  const auto at = reason.find(kNoteSeparator);
  return at == std::string_view::npos ? std::string() : std::string(reason.substr(at));
}

void skip_into(Outcome& out, Skip s) {
  store::Activity& a = out.activity;
  a.status = store::DecisionStatus::skipped;
  a.rule = std::move(s.rule);
  a.reason = "skipped (" + a.rule + "): " + s.why;
  out.steps.push_back(a.reason);
}

// A stored activity to be decided anew: its earlier decision, matches and
// places cleared, its details and participants kept.
Outcome decided_again(store::Activity a) {
  Outcome o;
  a.rule.clear();
  a.reason.clear();
  for (auto& p : a.participants) p.contact_id.clear(), p.company_id.clear();
  a.contact_ids.clear();
  a.company_ids.clear();
  a.opportunity_id.clear();
  a.sources.clear();
  o.activity = std::move(a);
  return o;
}

void fail_into(Outcome& out, const store::Error& e) {
  store::Activity& a = out.activity;
  a.status = store::DecisionStatus::failed;
  a.rule = "store";
  a.reason = "failed: reading the store: " + e.message;
  out.steps.push_back(a.reason);
}

}  // namespace

void Pipeline::match_into(Outcome& out) {
  store::Activity& a = out.activity;
  auto outside = policy_.outside_participants(a.participants);
  if (!outside) return skip_into(out, std::move(outside.error()));
  auto match = matcher_.match(a.participants, *outside,
                              [&] { return thread_opportunity(a.thread_key, a.occurred_at); });
  if (!match) return fail_into(out, match.error());
  out.steps.insert(out.steps.end(), match->notes.begin(), match->notes.end());
  out.steps.insert(out.steps.end(), match->links.begin(), match->links.end());
  if (match->unmatched) return skip_into(out, std::move(*match->unmatched));
  out.steps.push_back(match->opportunity_line);
  a.contact_ids = std::move(match->contact_ids);
  a.company_ids = std::move(match->company_ids);
  a.opportunity_id = std::move(match->opportunity_id);
  a.status = store::DecisionStatus::captured;
  a.reason = join(match->links, "; ") + "; " + match->opportunity_line;
}

bool Pipeline::can_redecide(const store::Activity& stored) {
  return stored.status == store::DecisionStatus::captured ||
         (stored.status == store::DecisionStatus::skipped && stored.rule == "unmatched");
}

Outcome Pipeline::redecide(store::Activity stored) {
  Outcome out;
  store::Activity& a = out.activity;
  a = std::move(stored);
  a.sources.clear();
  for (auto& p : a.participants) p.contact_id.clear(), p.company_id.clear();
  a.contact_ids.clear();
  a.company_ids.clear();
  a.opportunity_id.clear();
  a.rule.clear();
  // What parsing noted stays: the directory changes the match, not the parse.
  const std::string notes = notes_of(a.reason);
  a.reason.clear();
  match_into(out);
  if (a.status == store::DecisionStatus::captured && a.meeting && a.meeting->cancelled) {
    a.reason = "cancelled; " + a.reason;
  }
  a.reason += notes;
  return out;
}

Outcome Pipeline::decide(mail::MailMessage m, const MessageSource& source) {
  Outcome out;
  decide_mail_into(out, m, source);
  out.message = std::move(m);
  return out;
}

void Pipeline::decide_mail_into(Outcome& out, const mail::MailMessage& m,
                                const MessageSource& source) {
  store::Activity& a = out.activity;
  a.kind = store::ActivityKind::email;
  a.message_id = m.message_id;
  a.source_key = (m.message_id_synthetic ? "syn:" : "mid:") + m.message_id;
  a.occurred_at = iso_utc(m.date);
  a.subject = m.subject;
  a.snippet = m.snippet;
  a.id = activity_id_for(a.source_key);
  a.participants = mail_participants(m, settings_.strip_plus_tags);
  const auto& people = a.participants;
  a.direction = source.sent || (!people.empty() && people.front().role == "from" &&
                                policy_.is_owner(people.front().address))
                    ? store::Direction::outbound
                    : store::Direction::inbound;
  if (!m.body_error.empty()) out.steps.push_back("body unreadable: " + m.body_error);
  for (const auto& w : m.warnings) out.steps.push_back("note: " + w);

  auto thread = thread_key_of(m);
  if (!thread) return fail_into(out, thread.error());
  a.thread_key = std::move(*thread);
  // A message captured (or applied to its meeting) from another folder stays
  // so when a copy turns up in an excluded one (moved to Trash after it was
  // seen in INBOX).
  if (policy_.excluded_folder(source.ref.folder)) {
    auto decided = decided_elsewhere(a.source_key);
    if (!decided) return fail_into(out, decided.error());
    if (!*decided) {
      return skip_into(out, {"folder", "folder '" + source.ref.folder + "' is excluded"});
    }
  }
  if (auto s = policy_.mail_skip(m, people)) {
    // Private mail is listed as skipped, but what it says is not kept.
    if (s->rule == "private") a.subject.clear(), a.snippet.clear();
    return skip_into(out, std::move(*s));
  }
  // Rule 6: a message about a meeting updates that meeting instead of
  // becoming a second activity.
  if (!m.calendar_parts.empty() && decide_imip_into(out, m, source)) return;
  match_into(out);
  if (a.status != store::DecisionStatus::captured) return;
  // Left here, its calendar parts could not be read: failed rows of their own.
  for (const auto& f : out.meetings) a.reason += " (calendar unreadable: " + f.source_key + ")";
  if (!m.body_error.empty()) a.reason += " (body unreadable: " + m.body_error + ")";
}

// ---- rule 6: iMIP ------------------------------------------------------------------

namespace {

// Occurrences named in a reason: the key of one, the count of more.
std::string occurrences(const std::vector<std::string>& keys) {
  return keys.size() == 1 ? keys.front() : std::to_string(keys.size()) + " occurrences";
}

// What a part did to the occurrences of one event at one SEQUENCE, for the
// message's reason: "applied to ical:x", "kept 3 occurrences (the stored
// SEQUENCE 4 is newer)".
class Verdicts {
 public:
  void add(std::string verb, std::string why, std::string key) {
    for (auto& [v, w, keys] : by_what_) {
      if (v == verb && w == why) {
        keys.push_back(std::move(key));
        return;
      }
    }
    by_what_.push_back({std::move(verb), std::move(why), {std::move(key)}});
  }
  std::string text() const {
    std::vector<std::string> parts;
    for (const auto& [verb, why, keys] : by_what_) {
      parts.push_back(verb + " " + occurrences(keys) + (why.empty() ? "" : " (" + why + ")"));
    }
    return join(parts, ", ");
  }

 private:
  struct What {
    std::string verb, why;
    std::vector<std::string> keys;
  };
  std::vector<What> by_what_;
};

}  // namespace

struct Pipeline::ImipRun {
  Outcome& out;
  const mail::MailMessage& mail;
  const MessageSource& source;
  const mail::CalendarPart* part = nullptr;  // the part being read
  std::vector<std::string> lines;            // what the parts did, for the reason
  std::vector<std::string> failures;         // what could not be read
  // The part's verdicts, by (UID, SEQUENCE) in order of first appearance.
  std::vector<std::pair<std::pair<std::string, int>, Verdicts>> verdicts;
  std::set<std::string> keys;  // occurrences decided by this message
  bool private_meeting = false;

  Verdicts& of(const std::string& uid, int sequence) {
    for (auto& [at, v] : verdicts) {
      if (at.first == uid && at.second == sequence) return v;
    }
    return verdicts.emplace_back(std::pair{uid, sequence}, Verdicts{}).second;
  }
  // True the first time: a later part of the message (the same invitation
  // attached twice, differently written) leaves an occurrence as decided.
  bool first(const std::string& key) { return keys.insert(key).second; }
  // How an occurrence's reason names the message: "iMIP REQUEST, SEQUENCE
  // 2, in mail <id>" (without the SEQUENCE when its event is unreadable).
  std::string by(std::optional<int> sequence) const {
    return "iMIP " + part->method +
           (sequence ? ", SEQUENCE " + std::to_string(*sequence) : std::string()) + ", in mail <" +
           mail.message_id + ">";
  }
  // An occurrence decided anew from the part.
  void add(Outcome o, std::optional<int> sequence) {
    store::Activity& a = o.activity;
    if (a.status == store::DecisionStatus::captured) a.reason = by(sequence) + "; " + a.reason;
    if (a.rule == "private") private_meeting = true;
    for (const auto& step : o.steps) out.steps.push_back(a.source_key + ": " + step);
    out.meetings.push_back(std::move(a));
  }
  // A stored occurrence the part changed.
  void add(store::Activity a) {
    a.sources.clear();
    out.steps.push_back(a.source_key + ": " + a.reason);
    out.meetings.push_back(std::move(a));
  }
  // The verdicts of the part read, as lines of the reason.
  void end_part() {
    for (const auto& [at, v] : verdicts) {
      lines.push_back("iMIP " + part->method + " for meeting " + at.first + ", SEQUENCE " +
                      std::to_string(at.second) + ": " + v.text());
    }
    verdicts.clear();
  }
};

bool Pipeline::decide_imip_into(Outcome& out, const mail::MailMessage& m,
                                const MessageSource& source) {
  // A message is applied once: decided before (another copy, another run),
  // its row stands. Applied again to what it changed since, an older
  // invitation would only say so, and the row would change with each run.
  std::optional<store::Activity> before;
  if (auto it = pending_imip_rows_.find(out.activity.source_key); it != pending_imip_rows_.end()) {
    before = it->second;
  } else {
    auto stored = activities_.by_source_key(out.activity.source_key);
    if (!stored) {
      fail_into(out, stored.error());
      return true;
    }
    if (*stored && (*stored)->rule == kImipRule) before = std::move(*stored);
  }
  if (before) {
    out.activity = std::move(*before);
    out.activity.sources.clear();
    out.steps.push_back("decided before: " + out.activity.reason);
    return true;
  }
  const ical::ParseOptions options = calendar_options(clock());
  std::vector<ical::Result<ical::Calendar>> parsed;
  bool events = false;
  for (const auto& part : m.calendar_parts) {
    parsed.push_back(ical::parse(part.text, options));
    const auto& cal = parsed.back();
    events = events || !cal || !cal->meetings.empty() || !cal->failed.empty();
  }
  if (!events) return false;
  ImipRun run{out, m, source};
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    run.part = &m.calendar_parts[i];
    if (!parsed[i]) {
      run.failures.push_back("cannot read the iMIP " + run.part->method +
                             " part: " + parsed[i].error().message);
      continue;
    }
    ical::Calendar& cal = *parsed[i];
    store::Result<void> r;
    switch (imip_origin(run.part->method)) {
      case MeetingOrigin::imip_update:
        r = imip_update(run, cal);
        break;
      case MeetingOrigin::imip_cancel:
        r = imip_cancel(run, cal);
        break;
      case MeetingOrigin::imip_answer:
      case MeetingOrigin::calendar:
        r = imip_answer(run, cal);
        break;
    }
    if (!r) {
      out.meetings.clear();
      fail_into(out, r.error());
      return true;
    }
    run.end_part();
  }
  // What could not be read is a failed row of its own, keyed by the message
  // (as a calendar's unreadable event is by its place), never by the
  // meeting's key: a stored meeting stays as it was.
  std::vector<std::string> unread;
  for (std::size_t i = 0; i < run.failures.size(); ++i) {
    Outcome f = failed_outcome("imip:" + m.message_id + "#" + std::to_string(i + 1), "parse",
                               run.failures[i], source);
    f.activity.kind = store::ActivityKind::meeting;
    unread.push_back(f.activity.source_key);
    out.steps.push_back(f.activity.reason);
    out.meetings.push_back(std::move(f.activity));
  }
  // Nothing read but failures: an ordinary message, for what it says.
  if (run.lines.empty()) return false;
  store::Activity& a = out.activity;
  // What a private meeting is called is not kept, in its invitation neither.
  if (run.private_meeting) a.subject.clear(), a.snippet.clear();
  a.status = store::DecisionStatus::skipped;
  a.rule = kImipRule;
  a.reason = "skipped (imip): " + join(run.lines, "; ");
  if (!unread.empty()) a.reason += "; unreadable: " + join(unread, ", ");
  out.steps.push_back(a.reason);
  return true;
}

store::Result<void> Pipeline::imip_update(ImipRun& run, ical::Calendar& cal) {
  const bool add = run.part->method == "ADD";
  for (ical::Meeting& m : cal.meetings) {
    // An added instance is keyed by its own start, as its series' are.
    if (add && !m.recurrence_id) m.recurrence_id = m.start;
    const std::string key = meeting_key(m.uid, m.recurrence_id);
    if (!run.first(key)) continue;
    auto stored = stored_meeting(key);
    if (!stored) return stored.error();
    Verdicts& v = run.of(m.uid, m.sequence);
    if (*stored) {
      if (auto why = stored_version_stands(MeetingOrigin::imip_update, m.sequence, **stored)) {
        v.add("kept", std::move(*why), key);
        continue;
      }
    }
    v.add("applied to", "", key);
    run.add(decide_occurrence(m, run.source, cal.warnings), m.sequence);
  }
  for (const auto& f : cal.failed) {
    run.failures.push_back("cannot read an event of the iMIP " + run.part->method + ": " +
                           f.reason);
  }
  return {};
}

store::Result<void> Pipeline::imip_cancel(ImipRun& run, ical::Calendar& cal) {
  // Cancels the stored occurrence `key` of `uid` at `sequence`; `given` is
  // the occurrence as the CANCEL gives it, null when it gives none (another
  // occurrence of the series is, or its event cannot be read).
  auto cancel_stored = [&](const std::string& uid, const std::string& key, int sequence,
                           const ical::Meeting* given) -> store::Result<void> {
    Verdicts& v = run.of(uid, sequence);
    auto stored = stored_meeting(key);
    if (!stored) return stored.error();
    if (!*stored) return {};
    store::Activity& a = **stored;
    if (!a.meeting) {
      // Stored without its fields (its event was unreadable): the
      // occurrence as the CANCEL gives it, where it does.
      if (given == nullptr) {
        v.add("left", "stored without meeting fields", key);
        return {};
      }
      v.add("recorded", "", key);
      run.add(decide_occurrence(*given, run.source, cal.warnings), sequence);
      return {};
    }
    if (auto why = stored_version_stands(MeetingOrigin::imip_cancel, sequence, a)) {
      v.add("kept", std::move(*why), key);
      return {};
    }
    a.meeting->cancelled = true;
    a.meeting->sequence = sequence;
    v.add("cancelled", "", key);
    if (a.status != store::DecisionStatus::captured) {
      run.add(std::move(a));  // still skipped (or failed), for the same reason
      return {};
    }
    // Decided again, cancelled, as decide_occurrence() decides: its stored
    // details and participants matched afresh.
    Outcome o = decided_again(std::move(a));
    match_into(o);
    if (o.activity.status == store::DecisionStatus::captured) {
      o.activity.reason = "cancelled; " + o.activity.reason;
    }
    run.add(std::move(o), sequence);
    return {};
  };

  std::vector<std::string> uids;
  for (const auto& m : cal.meetings) add_unique(uids, m.uid);
  for (const std::string& uid : uids) {
    std::map<std::string, ical::Meeting*> given;  // the occurrences it names, by key
    const ical::Meeting* master = nullptr;        // the event itself (not an override)
    for (auto& m : cal.meetings) {
      if (m.uid != uid) continue;
      m.status = ical::Status::cancelled;
      given.emplace(meeting_key(uid, m.recurrence_id), &m);
      if (!m.overridden && master == nullptr) master = &m;
    }
    auto known = stored_meeting_keys(uid);
    if (!known) return known.error();
    if (known->empty()) {
      // Nothing stored: the cancelled meeting as the CANCEL gives it.
      for (auto& [key, m] : given) {
        if (!run.first(key)) continue;
        run.of(uid, m->sequence).add("recorded", "nothing stored for this UID", key);
        run.add(decide_occurrence(*m, run.source, cal.warnings), m->sequence);
      }
      continue;
    }
    // A CANCEL of the event cancels every stored occurrence of it; one of
    // RECURRENCE-IDs only those.
    std::vector<std::string> targets;
    if (master != nullptr) {
      targets = *known;
    } else {
      for (const auto& [key, m] : given) {
        if (std::binary_search(known->begin(), known->end(), key)) {
          targets.push_back(key);
        } else {
          run.of(uid, m->sequence).add("found nothing stored for", "", key);
        }
      }
    }
    for (const std::string& key : targets) {
      if (!run.first(key)) continue;
      const auto g = given.find(key);
      const ical::Meeting* m = g != given.end() ? g->second : master;
      if (auto r = cancel_stored(uid, key, m->sequence, g != given.end() ? m : nullptr); !r) {
        return r;
      }
    }
  }
  // An event that cannot be read still says what it cancels, by UID,
  // RECURRENCE-ID and SEQUENCE: RFC 5546 lets a CANCEL leave out DTSTART.
  // What it names that is stored is cancelled as above; with nothing
  // stored (or no UID) there is no meeting to record, only a failure.
  const auto unreadable = ical::make_error_code(ical::Errc::bad_event);
  for (const auto& f : cal.failed) {
    std::vector<std::string> targets;
    // An unreadable RECURRENCE-ID names no occurrence: nothing is cancelled.
    const bool named = !f.has_recurrence_id || f.own_recurrence_id;
    if (!f.uid.empty() && f.code == unreadable && named &&
        std::find(uids.begin(), uids.end(), f.uid) == uids.end()) {
      auto known = stored_meeting_keys(f.uid);
      if (!known) return known.error();
      if (!f.own_recurrence_id) {
        targets = *known;
      } else if (const std::string key = meeting_key(f.uid, f.own_recurrence_id);
                 std::binary_search(known->begin(), known->end(), key)) {
        targets.push_back(key);
      }
    }
    if (targets.empty()) {
      run.failures.push_back("cannot read an event of the iMIP " + run.part->method + ": " +
                             f.reason);
      continue;
    }
    for (const std::string& key : targets) {
      if (!run.first(key)) continue;
      if (auto r = cancel_stored(f.uid, key, f.sequence, nullptr); !r) return r;
    }
  }
  return {};
}

store::Result<void> Pipeline::record_answers(ImipRun& run, const ical::Calendar& cal,
                                             const std::string& uid,
                                             const std::vector<std::string>& known,
                                             std::vector<std::string>& recorded) {
  for (const auto& m : cal.meetings) {
    if (m.uid != uid) continue;
    // A REPLY to one occurrence answers for it; one to the event, for all.
    std::vector<std::string> keys;
    const std::string key = meeting_key(uid, m.recurrence_id);
    if (!m.recurrence_id) {
      keys = known;
    } else if (std::binary_search(known.begin(), known.end(), key)) {
      keys.push_back(key);
    }
    for (const std::string& key : keys) {
      if (!run.first(key)) continue;
      auto stored = stored_meeting(key);
      if (!stored) return stored.error();
      if (!*stored || !(*stored)->meeting) continue;
      store::Activity& a = **stored;
      // An answer to an older revision is out of date (RFC 5546 2.1.5).
      if (m.sequence < a.meeting->sequence) continue;
      bool changed = false;
      for (const auto& answer : m.attendees) {
        const std::string addr = normalize_address(answer.address, settings_.strip_plus_tags);
        bool listed = false;
        for (auto& p : a.participants) {
          if (p.address != addr) continue;
          listed = true;
          if (p.role == "attendee" && p.partstat != answer.partstat) {
            p.partstat = answer.partstat;
            changed = true;
          }
        }
        // The owner answering an invitation that did not name her (it was
        // sent to a list) attends all the same: her answer counts.
        if (!listed && !answer.resource && policy_.is_owner(addr)) {
          a.participants.push_back({addr, answer.name, "attendee", "", "", answer.partstat});
          changed = true;
        }
      }
      if (!changed) continue;
      recorded.push_back(key);
      // The owner's own answer decides whether the occurrence is declined.
      const std::optional<Skip> declined = policy_.declined(a.participants);
      switch (after_answer(a, declined.has_value())) {
        case AfterAnswer::stands:
          run.add(std::move(a));
          break;
        case AfterAnswer::decline: {
          Outcome o = decided_again(std::move(a));
          skip_into(o, {declined->rule, declined->why + " (" + run.by(m.sequence) + ")"});
          run.add(std::move(o), m.sequence);
          break;
        }
        case AfterAnswer::match_again: {
          Outcome o = decided_again(std::move(a));
          match_into(o);
          run.add(std::move(o), m.sequence);
          break;
        }
      }
    }
  }
  return {};
}

store::Result<void> Pipeline::imip_answer(ImipRun& run, const ical::Calendar& cal) {
  std::vector<std::string> uids;
  for (const auto& m : cal.meetings) add_unique(uids, m.uid);
  for (const auto& f : cal.failed) {
    if (f.uid.empty()) {
      run.failures.push_back("cannot read an event of the iMIP " + run.part->method + ": " +
                             f.reason);
    } else {
      add_unique(uids, f.uid);
    }
  }
  const store::Activity& mail = run.out.activity;
  for (const std::string& uid : uids) {
    // Who answered what: the answer's attendees, else the message's sender.
    std::vector<std::string> answers;
    for (const auto& m : cal.meetings) {
      if (m.uid != uid) continue;
      for (const auto& p : m.attendees) {
        add_unique(answers, normalize_address(p.address, false) + ": " + p.partstat);
      }
    }
    if (answers.empty() && !mail.participants.empty()) {
      answers.push_back(mail.participants.front().address);
    }
    const std::string line =
        "iMIP " + run.part->method + " from " + join(answers, ", ") + " for meeting " + uid;
    auto known = stored_meeting_keys(uid);
    if (!known) return known.error();
    if (!known->empty()) {
      // The meeting's details are the organizer's: an answer changes none.
      // A REPLY's PARTSTAT is recorded on the attendee, though.
      std::vector<std::string> recorded;
      if (run.part->method == "REPLY") {
        auto r = record_answers(run, cal, uid, *known, recorded);
        if (!r) return r;
      }
      add_unique(run.lines,
                 recorded.empty() ? line : line + ": answer recorded on " + occurrences(recorded));
      continue;
    }
    // Nothing stored: the meeting as the answer gives it.
    std::vector<std::string> recorded;
    bool given = false;
    for (const auto& m : cal.meetings) {
      if (m.uid != uid) continue;
      given = true;
      const std::string key = meeting_key(uid, m.recurrence_id);
      if (!run.first(key)) continue;
      recorded.push_back(key);
      run.add(decide_occurrence(m, run.source, cal.warnings), m.sequence);
    }
    std::string unread;
    if (!given) {
      // Its event cannot be read (an answer need not say when): the meeting
      // from the message itself, its subject and date.
      const auto f = std::find_if(cal.failed.begin(), cal.failed.end(),
                                  [&](const ical::EventFailure& e) { return e.uid == uid; });
      unread = " (its event cannot be read: " + f->reason + ")";
      const std::string key = meeting_key(uid, f->recurrence_id);
      if (!run.first(key)) continue;
      recorded.push_back(key);
      Outcome o;
      store::Activity& b = o.activity;
      b.kind = store::ActivityKind::meeting;
      b.source_key = key;
      b.id = activity_id_for(key);
      b.thread_key = meeting_key(uid, std::nullopt);
      b.direction = mail.direction;
      b.occurred_at = mail.occurred_at;
      b.subject = run.mail.subject;
      b.snippet = run.mail.snippet;
      b.participants = mail.participants;
      match_into(o);
      run.add(std::move(o), std::nullopt);
    }
    if (recorded.empty()) continue;  // decided by an earlier part
    run.lines.push_back(line + ": nothing stored for this UID, recorded " + occurrences(recorded) +
                        " from it" + unread);
  }
  return {};
}

std::string meeting_key(std::string_view uid, const std::optional<ical::When>& occurrence) {
  std::string key = "ical:" + std::string(uid);
  if (occurrence) key += "/" + (occurrence->date.empty() ? occurrence->utc : occurrence->date);
  return key;
}

std::string_view meeting_status(const store::MeetingFields& m, std::int64_t now) {
  if (m.cancelled) return "cancelled";
  // An all-day end is an exclusive date: held from that day on (UTC).
  const std::string today = iso_utc(now);
  const bool ended = m.all_day ? today.substr(0, 10) >= m.ends_at : today >= m.ends_at;
  return ended ? "held" : "scheduled";
}

ical::ParseOptions Pipeline::calendar_options(std::int64_t now) const {
  ical::ParseOptions o;
  o.window_start = now - std::int64_t{settings_.backfill_days} * 86400;
  o.window_end = now + std::int64_t{settings_.horizon_days} * 86400;
  o.description_chars = settings_.snippet_chars;
  return o;
}

Outcome Pipeline::decide_meeting(const ical::Meeting& m, const MessageSource& source,
                                 const std::vector<std::string>& object_notes) {
  const std::string key = meeting_key(m.uid, m.recurrence_id);
  auto stored = stored_meeting(key);
  if (!stored) {
    Outcome out;
    out.activity.kind = store::ActivityKind::meeting;
    out.activity.source_key = key;
    out.activity.id = activity_id_for(key);
    out.activity.occurred_at = m.all_day ? m.start.date + "T00:00:00Z" : m.start.utc;
    fail_into(out, stored.error());
    return out;
  }
  if (*stored) {
    if (auto why = stored_version_stands(MeetingOrigin::calendar, m.sequence, **stored)) {
      Outcome out;
      out.activity = std::move(**stored);
      out.activity.sources.clear();
      out.steps.push_back("kept as stored: " + *why);
      return out;
    }
  }
  return decide_occurrence(m, source, object_notes);
}

Outcome Pipeline::decide_occurrence(const ical::Meeting& m, const MessageSource& source,
                                    const std::vector<std::string>& object_notes) {
  Outcome out;
  store::Activity& a = out.activity;
  a.kind = store::ActivityKind::meeting;
  a.source_key = meeting_key(m.uid, m.recurrence_id);
  a.id = activity_id_for(a.source_key);
  a.thread_key = meeting_key(m.uid, std::nullopt);  // a series is one thread
  a.occurred_at = m.all_day ? m.start.date + "T00:00:00Z" : m.start.utc;
  a.subject = m.summary;
  a.snippet = m.description;
  a.meeting = store::MeetingFields{m.uid,
                                   m.all_day ? m.start.date : m.start.utc,
                                   m.all_day ? m.end.date : m.end.utc,
                                   m.all_day,
                                   m.location,
                                   m.status == ical::Status::cancelled,
                                   m.sequence};
  a.participants = meeting_participants(m, settings_.strip_plus_tags);
  const auto& people = a.participants;
  a.direction = !people.empty() && people.front().role == "organizer" &&
                        policy_.is_owner(people.front().address)
                    ? store::Direction::outbound
                    : store::Direction::inbound;
  for (const auto& n : object_notes) out.steps.push_back("note: " + n);
  for (const auto& n : m.notes) out.steps.push_back("note: " + n);
  if (auto s = policy_.meeting_skip(m)) {
    if (s->rule == "private") a.subject.clear(), a.snippet.clear(), a.meeting->location.clear();
    skip_into(out, std::move(*s));
  } else {
    match_into(out);
    if (a.status == store::DecisionStatus::captured && a.meeting->cancelled) {
      a.reason = "cancelled; " + a.reason;
    }
  }
  a.reason += notes_suffix(object_notes) + notes_suffix(m.notes);
  return out;
}

Outcome Pipeline::failed_event(const ical::EventFailure& f, std::string_view object_key,
                               const MessageSource& source,
                               const std::vector<std::string>& object_notes) const {
  std::string key =
      f.uid.empty() ? "ical:" + std::string(object_key) : meeting_key(f.uid, f.recurrence_id);
  Outcome out =
      failed_outcome(std::move(key), "parse", "cannot read the event: " + f.reason, source);
  out.activity.kind = store::ActivityKind::meeting;
  for (const auto& n : object_notes) out.steps.push_back("note: " + n);
  out.activity.reason += notes_suffix(object_notes);
  return out;
}

// ---- batches -------------------------------------------------------------------------

Tally& Tally::operator+=(const Tally& o) {
  seen += o.seen;
  captured += o.captured;
  skipped += o.skipped;
  failed += o.failed;
  known += o.known;
  decided_again += o.decided_again;
  for (const auto& [rule, n] : o.skipped_by_rule) skipped_by_rule[rule] += n;
  return *this;
}

std::string Tally::line() const {
  std::string s = "seen " + std::to_string(seen) + ", captured " + std::to_string(captured) +
                  ", skipped " + std::to_string(skipped);
  if (!skipped_by_rule.empty()) {
    std::vector<std::string> rules;
    for (const auto& [rule, n] : skipped_by_rule) rules.push_back(rule + " " + std::to_string(n));
    s += " (" + join(rules, ", ") + ")";
  }
  s += ", failed " + std::to_string(failed);
  if (known) s += ", known " + std::to_string(known);
  if (decided_again) s += ", decided again from sent copies " + std::to_string(decided_again);
  return s;
}

BatchWriter::BatchWriter(Pipeline& pipeline, store::Activities& activities)
    : pipeline_(pipeline), activities_(activities) {}

void BatchWriter::count(const store::Activity& a) {
  switch (a.status) {
    case store::DecisionStatus::captured:
      ++tally_.captured;
      break;
    case store::DecisionStatus::skipped:
      ++tally_.skipped;
      ++tally_.skipped_by_rule[a.rule];
      break;
    case store::DecisionStatus::failed:
      ++tally_.failed;
      break;
  }
}

void BatchWriter::add(Outcome outcome, const store::SourceRef& place, std::string_view again) {
  store::Activity& a = outcome.activity;
  ++tally_.seen;
  if (!again.empty() && a.source_key == again) {
    // Counted once, when first decided; this only makes it again. (A copy
    // that fails to parse is a failed activity of its own, counted so.)
    ++tally_.decided_again;
  } else {
    count(a);
  }
  pipeline_.remember(a);
  batch_.items.push_back({std::move(a), place});
  for (store::Activity& m : outcome.meetings) {
    // The occurrence's own place in the message, as an .ics file's are; the
    // server's id names the message, not it.
    store::SourceRef at = place;
    at.path += "#" + m.source_key;
    at.remote_id.clear();
    ++tally_.seen;
    count(m);
    pipeline_.remember(m);
    batch_.items.push_back({std::move(m), std::move(at)});
  }
}

void BatchWriter::add_known(std::string source_key, const store::SourceRef& place) {
  ++tally_.seen;
  ++tally_.known;
  batch_.seen_again.push_back({std::move(source_key), place});
}

store::Result<void> BatchWriter::commit() {
  auto r = activities_.commit(batch_);
  batch_ = {};
  pipeline_.clear_pending();
  return r;
}

}  // namespace crmcap::capture
