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
    : activities_(activities),
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

store::Result<bool> Pipeline::already_captured(const std::string& source_key) {
  if (pending_captured_.contains(source_key)) return true;
  auto stored = activities_.by_source_key(source_key);
  if (!stored) return stored.error();
  return *stored && (*stored)->status == store::DecisionStatus::captured;
}

void Pipeline::remember(const store::Activity& a) {
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

void skip_into(Outcome& out, Skip s) {
  store::Activity& a = out.activity;
  a.status = store::DecisionStatus::skipped;
  a.rule = std::move(s.rule);
  a.reason = "skipped (" + a.rule + "): " + s.why;
  out.steps.push_back(a.reason);
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
  // iMIP: the mail is about a meeting; it updates the meeting with that UID
  // instead of becoming a second activity (DESIGN.md rule 6).
  const auto imip = std::find_if(m.calendar_parts.begin(), m.calendar_parts.end(),
                                 [](const mail::CalendarPart& c) { return !c.uid.empty(); });
  if (imip != m.calendar_parts.end()) {
    a.kind = store::ActivityKind::meeting;
    a.source_key = meeting_key(imip->uid, std::nullopt);
  }
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
  // A message captured from another folder stays captured when a copy turns
  // up in an excluded one (moved to Trash after it was seen in INBOX).
  if (policy_.excluded_folder(source.ref.folder)) {
    auto captured = already_captured(a.source_key);
    if (!captured) return fail_into(out, captured.error());
    if (!*captured) {
      return skip_into(out, {"folder", "folder '" + source.ref.folder + "' is excluded"});
    }
  }
  if (auto s = policy_.mail_skip(m, people)) {
    // Private mail is listed as skipped, but what it says is not kept.
    if (s->rule == "private") a.subject.clear(), a.snippet.clear();
    return skip_into(out, std::move(*s));
  }
  match_into(out);
  if (a.status != store::DecisionStatus::captured) return;
  if (imip != m.calendar_parts.end()) {
    a.reason = "iMIP " + imip->method + " for meeting " + imip->uid + "; " + a.reason;
  }
  if (!m.body_error.empty()) a.reason += " (body unreadable: " + m.body_error + ")";
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

Outcome Pipeline::decide_meeting(const ical::Meeting& m, const MessageSource& source) {
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
  for (const auto& n : m.notes) out.steps.push_back("note: " + n);
  if (auto s = policy_.meeting_skip(m)) {
    if (s->rule == "private") a.subject.clear(), a.snippet.clear(), a.meeting->location.clear();
    skip_into(out, std::move(*s));
    return out;
  }
  match_into(out);
  if (a.status == store::DecisionStatus::captured && a.meeting->cancelled) {
    a.reason = "cancelled; " + a.reason;
  }
  return out;
}

Outcome Pipeline::failed_event(const ical::EventFailure& f, std::string_view object_key,
                               const MessageSource& source) const {
  std::string key =
      f.uid.empty() ? "ical:" + std::string(object_key) : meeting_key(f.uid, f.recurrence_id);
  Outcome out =
      failed_outcome(std::move(key), "parse", "cannot read the event: " + f.reason, source);
  out.activity.kind = store::ActivityKind::meeting;
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

void BatchWriter::add(Outcome outcome, const store::SourceRef& place, std::string_view again) {
  store::Activity& a = outcome.activity;
  ++tally_.seen;
  if (!again.empty() && a.source_key == again) {
    // Counted once, when first decided; this only makes it again. (A copy
    // that fails to parse is a failed activity of its own, counted so.)
    ++tally_.decided_again;
  } else {
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
  pipeline_.remember(a);
  batch_.items.push_back({std::move(a), place});
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
