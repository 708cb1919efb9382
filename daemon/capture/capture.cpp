// SPDX-License-Identifier: Apache-2.0
// The capture policy and the matcher (DESIGN.md, "Matching rules").
#include "daemon/capture/capture.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

namespace crmcap::capture {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

std::string_view domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

// True when `domain` is `parent` or one of its sub-domains.
bool within(std::string_view domain, std::string_view parent) {
  if (parent.empty() || domain.size() < parent.size()) return false;
  if (domain == parent) return true;
  return domain.ends_with(parent) && domain[domain.size() - parent.size() - 1] == '.';
}

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

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

// ---- helpers -------------------------------------------------------------------

FreeMailDomains FreeMailDomains::from_text(std::string_view text) {
  FreeMailDomains f;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::string d = lower(trim(line));
    if (!d.empty()) f.domains_.insert(std::move(d));
    pos = end + 1;
  }
  return f;
}

boost::system::result<FreeMailDomains, std::string> FreeMailDomains::load(const std::string& path) {
  std::vector<std::string> candidates;
  if (!path.empty()) {
    candidates.push_back(path);
  } else {
    candidates = {CRMCAP_INSTALL_DATA_DIR "/free-mail-domains.txt",
                  CRMCAP_SOURCE_DATA_DIR "/free-mail-domains.txt"};
  }
  for (const auto& c : candidates) {
    std::ifstream in(c, std::ios::binary);
    if (!in) continue;
    std::ostringstream ss;
    ss << in.rdbuf();
    return from_text(ss.str());
  }
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  return "cannot read the free-mail domain list (tried " + tried + ")";
}

bool FreeMailDomains::contains(std::string_view domain) const {
  return domains_.contains(std::string(domain));
}

std::string normalize_address(std::string_view address, bool strip_plus_tags) {
  std::string a = lower(trim(address));
  if (strip_plus_tags) {
    const auto at = a.rfind('@');
    const auto plus = a.find('+');
    if (at != std::string::npos && plus != std::string::npos && plus > 0 && plus < at) {
      a.erase(plus, at - plus);
    }
  }
  return a;
}

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

namespace {

// A message capture could not decide on: a failed row under `source_key`,
// with `rule` and the reason, so that it is listed and never dropped.
Outcome failed_outcome(std::string source_key, const char* rule, const std::string& why,
                       const MessageSource& source) {
  Outcome out;
  store::Activity& a = out.activity;
  a.source_key = std::move(source_key);
  a.id = activity_id_for(a.source_key);
  a.status = store::DecisionStatus::failed;
  a.rule = rule;
  a.occurred_at = iso_utc(source.received_at);
  a.reason = "failed: " + why;
  out.steps.push_back(a.reason);
  return out;
}

}  // namespace

// ---- pipeline ----------------------------------------------------------------------

Pipeline::Pipeline(store::Directory& directory, store::Activities& activities, Settings settings,
                   FreeMailDomains free_mail)
    : directory_(directory),
      activities_(activities),
      settings_(std::move(settings)),
      free_mail_(std::move(free_mail)) {
  for (const auto& o : settings_.owner_addresses) {
    owners_.insert(normalize_address(o, settings_.strip_plus_tags));
  }
  for (auto& d : settings_.internal_domains) d = lower(trim(d));
  for (auto& d : settings_.block_domains) d = lower(trim(d));
  for (auto& a : settings_.block_addresses) a = normalize_address(a, settings_.strip_plus_tags);
}

bool Pipeline::is_owner(std::string_view address) const {
  return owners_.contains(std::string(address));
}

bool Pipeline::is_internal(std::string_view address) const {
  if (is_owner(address)) return true;
  const auto domain = domain_of(address);
  return std::any_of(settings_.internal_domains.begin(), settings_.internal_domains.end(),
                     [&](const std::string& d) { return within(domain, d); });
}

bool Pipeline::is_blocked(std::string_view address) const {
  if (std::find(settings_.block_addresses.begin(), settings_.block_addresses.end(), address) !=
      settings_.block_addresses.end()) {
    return true;
  }
  const auto domain = domain_of(address);
  return std::any_of(settings_.block_domains.begin(), settings_.block_domains.end(),
                     [&](const std::string& d) { return within(domain, d); });
}

bool Pipeline::excluded_folder(std::string_view folder) const {
  // The last element of a hierarchical name ("INBOX/Spam", "INBOX.Trash").
  const auto cut = folder.find_last_of("/.");
  const std::string leaf = lower(cut == std::string_view::npos ? folder : folder.substr(cut + 1));
  const std::string whole = lower(folder);
  return std::any_of(settings_.excluded_folders.begin(), settings_.excluded_folders.end(),
                     [&](const std::string& f) {
                       const std::string x = lower(f);
                       return x == leaf || x == whole;
                     });
}

std::string Pipeline::thread_key_of(const mail::MailMessage& m) {
  // The root of References names the thread. Without References, a reply
  // inherits the thread of the message it answers, when that one is known.
  if (!m.references.empty()) return m.references.front();
  if (!m.in_reply_to.empty()) {
    if (auto it = pending_thread_of_mid_.find(m.in_reply_to); it != pending_thread_of_mid_.end()) {
      return it->second;
    }
    if (auto parent = activities_.by_source_key("mid:" + m.in_reply_to); parent && *parent) {
      if (!(*parent)->thread_key.empty()) return (*parent)->thread_key;
    }
    return m.in_reply_to;
  }
  return m.message_id;
}

std::optional<std::string> Pipeline::thread_opportunity(const std::string& thread_key,
                                                        const std::string& before) {
  std::optional<std::pair<std::string, std::string>> best;  // (occurred_at, opportunity)
  if (auto it = pending_opp_of_thread_.find(thread_key); it != pending_opp_of_thread_.end()) {
    for (const auto& p : it->second) {
      if (p.first < before && (!best || p.first > best->first)) best = p;
    }
  }
  if (auto stored = activities_.thread_opportunity(thread_key, before); stored && *stored) {
    // The store does not say when its answer occurred; a pending one of this
    // batch is at least as recent as anything committed before it.
    if (!best) return *stored;
  }
  if (best) return best->second;
  return std::nullopt;
}

bool Pipeline::already_captured(const std::string& source_key) {
  if (pending_captured_.contains(source_key)) return true;
  auto stored = activities_.by_source_key(source_key);
  return stored && *stored && (*stored)->status == store::DecisionStatus::captured;
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
                        "fetch", "the server would not send the message: " + std::string(why),
                        source);
}

Outcome Pipeline::decide(mail::MailMessage m, const MessageSource& source) {
  Outcome out;
  store::Activity& a = out.activity;
  a.kind = store::ActivityKind::email;
  a.message_id = m.message_id;
  a.source_key = (m.message_id_synthetic ? "syn:" : "mid:") + m.message_id;
  a.occurred_at = iso_utc(m.date);
  a.subject = m.subject;
  a.snippet = m.snippet;
  a.thread_key = thread_key_of(m);

  // iMIP: the mail is about a meeting; it updates the meeting with that UID
  // instead of becoming a second activity (DESIGN.md rule 6).
  const mail::CalendarPart* imip = nullptr;
  for (const auto& part : m.calendar_parts) {
    if (!part.uid.empty()) {
      imip = &part;
      break;
    }
  }
  if (imip) {
    a.kind = store::ActivityKind::meeting;
    a.source_key = "ical:" + imip->uid;
  }
  a.id = activity_id_for(a.source_key);

  // Rule 0 and 1: participants in header order, normalized, each address once.
  struct Person {
    std::string address, name, role;
  };
  std::vector<Person> people;
  auto add = [&](const std::vector<mail::Address>& list, const char* role) {
    for (const auto& x : list) {
      std::string addr = normalize_address(x.address, settings_.strip_plus_tags);
      if (addr.empty() || addr.find('@') == std::string::npos) continue;
      if (std::any_of(people.begin(), people.end(),
                      [&](const Person& p) { return p.address == addr; })) {
        continue;
      }
      people.push_back({std::move(addr), x.name, role});
    }
  };
  add(m.from, "from");
  add(m.to, "to");
  add(m.cc, "cc");
  add(m.bcc, "bcc");

  const bool outbound = source.sent || (!people.empty() && people.front().role == "from" &&
                                        is_owner(people.front().address));
  a.direction = outbound ? store::Direction::outbound : store::Direction::inbound;
  for (const auto& p : people) {
    a.participants.push_back({p.address, p.name, p.role, "", ""});
  }
  if (!m.body_error.empty()) out.steps.push_back("body unreadable: " + m.body_error);
  for (const auto& w : m.warnings) out.steps.push_back("note: " + w);

  auto skip = [&](std::string rule, std::string why) -> Outcome {
    a.status = store::DecisionStatus::skipped;
    a.rule = std::move(rule);
    a.reason = "skipped (" + a.rule + "): " + why;
    out.steps.push_back(a.reason);
    out.message = std::move(m);
    return std::move(out);
  };

  // Rule 3: what is never captured.
  // A message captured from another folder stays captured when a copy turns
  // up in an excluded one (moved to Trash after it was seen in INBOX).
  if (excluded_folder(source.ref.folder) && !already_captured(a.source_key)) {
    return skip("folder", "folder '" + source.ref.folder + "' is excluded");
  }
  if (!m.list_id.empty()) return skip("bulk", "mailing list (List-Id: " + m.list_id + ")");
  if (!m.list_unsubscribe.empty()) {
    return skip("bulk", "bulk mail (List-Unsubscribe: " + m.list_unsubscribe + ")");
  }
  if (const std::string p = lower(m.precedence); p == "bulk" || p == "list" || p == "junk") {
    return skip("bulk", "bulk mail (Precedence: " + m.precedence + ")");
  }
  if (!m.auto_submitted.empty() && lower(m.auto_submitted) != "no") {
    return skip("auto-reply", "automatic message (Auto-Submitted: " + m.auto_submitted + ")");
  }
  if (!m.x_autoreply.empty()) {
    return skip("auto-reply", "automatic reply (X-Autoreply: " + m.x_autoreply + ")");
  }
  if (!people.empty() && people.front().role == "from") {
    const std::string& from = people.front().address;
    const std::string local = from.substr(0, from.find('@'));
    if (local == "mailer-daemon" || local == "postmaster") {
      return skip("bounce", "delivery report from " + from);
    }
  }
  if (const std::string s = lower(m.sensitivity);
      s == "private" || s == "personal" || s == "company-confidential") {
    return skip("private", "marked private (Sensitivity: " + m.sensitivity + ")");
  }
  if (people.empty()) return skip("no-participants", "no From, To, Cc or Bcc address");

  // Rule 2 and the blocklist: who is left to match.
  std::vector<std::size_t> external;
  std::vector<std::string> blocked;
  for (std::size_t i = 0; i < people.size(); ++i) {
    if (is_internal(people[i].address)) continue;
    if (is_blocked(people[i].address)) {
      blocked.push_back(people[i].address);
      continue;
    }
    external.push_back(i);
  }
  if (external.empty()) {
    if (!blocked.empty()) {
      return skip("blocklist",
                  "every outside participant is blocklisted (" + join(blocked, ", ") + ")");
    }
    return skip("internal", "every participant is internal");
  }

  // Rule 4: participant -> contact by address, else company by domain.
  std::vector<std::string> trail;
  std::vector<store::Contact> contacts;
  std::vector<std::string> company_ids;
  std::map<std::string, std::string> company_names;
  for (const std::size_t i : external) {
    const Person& p = people[i];
    store::Participant& out_p = a.participants[i];
    auto contact = directory_.contact_by_email(p.address);
    if (!contact) {
      a.status = store::DecisionStatus::failed;
      a.rule = "store";
      a.reason = "failed: directory lookup: " + contact.error().message;
      out.message = std::move(m);
      return out;
    }
    if (*contact) {
      out_p.contact_id = (*contact)->id;
      out_p.company_id = (*contact)->company_id;
      std::string line = p.role + ": " + p.address + " = contact " + (*contact)->id;
      if (!(*contact)->company_id.empty()) add_unique(company_ids, (*contact)->company_id);
      add_unique(a.contact_ids, (*contact)->id);
      if (!out_p.company_id.empty()) add_unique(a.company_ids, out_p.company_id);
      contacts.push_back(**contact);
      trail.push_back(std::move(line));
      continue;
    }
    const std::string domain(domain_of(p.address));
    if (free_mail_.contains(domain)) {
      out.steps.push_back(p.role + ": " + p.address + ": unknown contact at free-mail domain " +
                          domain + ", no company");
      continue;
    }
    // The domain itself, then each parent domain (mail.eu.acme.com -> acme.com),
    // stopping before the last label.
    std::string_view d = domain;
    bool matched = false;
    while (!matched && d.find('.') != std::string_view::npos) {
      auto companies = directory_.companies_by_domain(d);
      if (companies && companies->size() == 1) {
        const store::Company& c = companies->front();
        out_p.company_id = c.id;
        add_unique(company_ids, c.id);
        add_unique(a.company_ids, c.id);
        company_names[c.id] = c.name;
        trail.push_back(p.role + ": " + p.address + " = company " + c.id + " (domain " +
                        std::string(d) + ")");
        matched = true;
      } else if (companies && companies->size() > 1) {
        std::vector<std::string> ids;
        for (const auto& c : *companies) ids.push_back(c.id);
        out.steps.push_back(p.role + ": " + p.address + ": domain " + std::string(d) +
                            " belongs to several companies (" + join(ids, ", ") + "), none chosen");
        matched = true;  // ambiguous: do not fall back to a parent domain
      }
      d = d.substr(d.find('.') + 1);
    }
    if (!matched) out.steps.push_back(p.role + ": " + p.address + ": no contact or company");
  }
  out.steps.insert(out.steps.end(), trail.begin(), trail.end());

  if (a.contact_ids.empty() && company_ids.empty()) {
    std::vector<std::string> addrs;
    for (const std::size_t i : external) addrs.push_back(people[i].address);
    return skip("unmatched",
                "no participant is a known contact or company (" + join(addrs, ", ") + ")");
  }
  for (const auto& id : company_ids) add_unique(a.company_ids, id);

  // Rule 5: the opportunity.
  std::string opp_line;
  auto thread_choice =
      [&](const std::vector<std::string>& candidates) -> std::optional<std::string> {
    auto t = thread_opportunity(a.thread_key, a.occurred_at);
    if (t && (candidates.empty() ||
              std::find(candidates.begin(), candidates.end(), *t) != candidates.end())) {
      return t;
    }
    return std::nullopt;
  };
  std::vector<std::string> by_role;
  for (const auto& c : contacts) {
    if (auto opps = directory_.open_opportunities_of_contact(c.id); opps) {
      for (const auto& o : *opps) add_unique(by_role, o.id);
    }
  }
  if (by_role.size() == 1) {
    a.opportunity_id = by_role.front();
    opp_line = "opportunity " + a.opportunity_id + ": the one open opportunity on which a " +
               "matched contact has a role";
  } else if (by_role.size() > 1) {
    if (auto t = thread_choice(by_role)) {
      a.opportunity_id = *t;
      opp_line = "opportunity " + *t + ": matched contacts have roles on several (" +
                 join(by_role, ", ") + "); the thread's earlier activity names this one";
    } else {
      opp_line =
          "no opportunity: ambiguous, matched contacts have roles on several open "
          "opportunities (" +
          join(by_role, ", ") + ")";
    }
  } else if (company_ids.size() == 1) {
    std::vector<std::string> open;
    if (auto opps = directory_.open_opportunities_of_company(company_ids.front()); opps) {
      for (const auto& o : *opps) open.push_back(o.id);
    }
    std::string company_label = company_ids.front();
    if (auto it = company_names.find(company_label);
        it != company_names.end() && !it->second.empty()) {
      company_label = it->second;
    } else if (auto c = directory_.company(company_ids.front()); c && *c && !(*c)->name.empty()) {
      company_label = (*c)->name;
    }
    if (open.size() == 1) {
      a.opportunity_id = open.front();
      opp_line = "opportunity " + a.opportunity_id + ": only open opportunity of " + company_label;
    } else if (open.size() > 1) {
      if (auto t = thread_choice(open)) {
        a.opportunity_id = *t;
        opp_line = "opportunity " + *t + ": " + company_label + " has several open (" +
                   join(open, ", ") + "); the thread's earlier activity names this one";
      } else {
        opp_line = "no opportunity: ambiguous, " + company_label + " has several open (" +
                   join(open, ", ") + ")";
      }
    } else if (auto t = thread_choice({})) {
      a.opportunity_id = *t;
      opp_line = "opportunity " + *t + ": from an earlier activity in the same thread";
    } else {
      opp_line = "no opportunity: " + company_label + " has no open opportunity";
    }
  } else if (auto t = thread_choice({})) {
    a.opportunity_id = *t;
    opp_line = "opportunity " + *t + ": from an earlier activity in the same thread";
  } else if (company_ids.size() > 1) {
    opp_line = "no opportunity: several companies matched (" + join(company_ids, ", ") +
               ") and no contact has a role";
  } else {
    opp_line = "no opportunity: none found";
  }
  out.steps.push_back(opp_line);

  a.status = store::DecisionStatus::captured;
  a.reason = join(trail, "; ") + "; " + opp_line;
  if (imip) a.reason = "iMIP " + imip->method + " for meeting " + imip->uid + "; " + a.reason;
  if (!m.body_error.empty()) a.reason += " (body unreadable: " + m.body_error + ")";
  out.message = std::move(m);
  return out;
}

}  // namespace crmcap::capture
