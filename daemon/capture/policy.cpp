// SPDX-License-Identifier: Apache-2.0
// Rules 0 to 3: participants, who is internal or blocked, what is skipped.
#include "daemon/capture/rules.hpp"
#include "daemon/capture/text.hpp"

#include <algorithm>

namespace crmcap::capture {

std::string normalize_address(std::string_view address, bool strip_plus_tags) {
  std::string a = text::to_lower_copy(text::trim(address));
  return strip_plus_tags ? store::without_plus_tag(a) : a;
}

std::vector<store::Participant> mail_participants(const mail::MailMessage& m,
                                                  bool strip_plus_tags) {
  std::vector<store::Participant> people;
  auto add = [&](const std::vector<mail::Address>& list, const char* role) {
    for (const auto& x : list) {
      std::string addr = normalize_address(x.address, strip_plus_tags);
      if (addr.find('@') == std::string::npos) continue;
      if (std::any_of(people.begin(), people.end(),
                      [&](const store::Participant& p) { return p.address == addr; })) {
        continue;
      }
      people.push_back({std::move(addr), x.name, role, "", ""});
    }
  };
  add(m.from, "from");
  add(m.to, "to");
  add(m.cc, "cc");
  add(m.bcc, "bcc");
  return people;
}

std::vector<store::Participant> meeting_participants(const ical::Meeting& m, bool strip_plus_tags) {
  std::vector<store::Participant> people;
  auto add = [&](const ical::Participant& x, const char* role) {
    if (x.resource) return;
    std::string addr = normalize_address(x.address, strip_plus_tags);
    if (addr.find('@') == std::string::npos) return;
    if (std::any_of(people.begin(), people.end(),
                    [&](const store::Participant& p) { return p.address == addr; })) {
      return;
    }
    // An organizer's PARTSTAT says nothing of an answer: kept for attendees.
    const bool attendee = std::string_view(role) == "attendee";
    people.push_back({std::move(addr), x.name, role, "", "", attendee ? x.partstat : ""});
  };
  if (m.organizer) add(*m.organizer, "organizer");
  for (const auto& a : m.attendees) add(a, "attendee");
  return people;
}

Policy::Policy(const Settings& s) : strip_plus_tags_(s.strip_plus_tags) {
  for (const auto& o : s.owner_addresses) owners_.insert(normalize_address(o, s.strip_plus_tags));
  for (const auto& d : s.internal_domains)
    internal_domains_.push_back(text::to_lower_copy(text::trim(d)));
  for (const auto& d : s.block_domains)
    block_domains_.push_back(text::to_lower_copy(text::trim(d)));
  for (const auto& a : s.block_addresses) {
    block_addresses_.push_back(normalize_address(a, s.strip_plus_tags));
  }
  for (const auto& f : s.excluded_folders) excluded_folders_.push_back(text::to_lower_copy(f));
}

bool Policy::is_owner(std::string_view address) const {
  return owners_.contains(std::string(address));
}

bool Policy::is_internal(std::string_view address) const {
  if (is_owner(address)) return true;
  const auto domain = domain_of(address);
  return std::any_of(internal_domains_.begin(), internal_domains_.end(),
                     [&](const std::string& d) { return within(domain, d); });
}

bool Policy::is_blocked(std::string_view address) const {
  if (std::find(block_addresses_.begin(), block_addresses_.end(), address) !=
      block_addresses_.end()) {
    return true;
  }
  const auto domain = domain_of(address);
  return std::any_of(block_domains_.begin(), block_domains_.end(),
                     [&](const std::string& d) { return within(domain, d); });
}

bool Policy::excluded_folder(std::string_view folder) const {
  const auto cut = folder.find_last_of("/.");
  const std::string leaf =
      text::to_lower_copy(cut == std::string_view::npos ? folder : folder.substr(cut + 1));
  const std::string whole = text::to_lower_copy(folder);
  return std::any_of(excluded_folders_.begin(), excluded_folders_.end(),
                     [&](const std::string& f) { return f == leaf || f == whole; });
}

std::optional<Skip> Policy::mail_skip(const mail::MailMessage& m,
                                      const std::vector<store::Participant>& people) const {
  if (!m.list_id.empty()) return Skip{"bulk", "mailing list (List-Id: " + m.list_id + ")"};
  if (!m.list_unsubscribe.empty()) {
    return Skip{"bulk", "bulk mail (List-Unsubscribe: " + m.list_unsubscribe + ")"};
  }
  if (const std::string p = text::to_lower_copy(m.precedence);
      p == "bulk" || p == "list" || p == "junk") {
    return Skip{"bulk", "bulk mail (Precedence: " + m.precedence + ")"};
  }
  if (!m.auto_submitted.empty() && text::to_lower_copy(m.auto_submitted) != "no") {
    return Skip{"auto-reply", "automatic message (Auto-Submitted: " + m.auto_submitted + ")"};
  }
  if (!m.x_autoreply.empty()) {
    return Skip{"auto-reply", "automatic reply (X-Autoreply: " + m.x_autoreply + ")"};
  }
  if (!people.empty() && people.front().role == "from") {
    const std::string& from = people.front().address;
    const std::string local = from.substr(0, from.find('@'));
    if (local == "mailer-daemon" || local == "postmaster") {
      return Skip{"bounce", "delivery report from " + from};
    }
  }
  if (const std::string s = text::to_lower_copy(m.sensitivity);
      s == "private" || s == "personal" || s == "company-confidential") {
    return Skip{"private", "marked private (Sensitivity: " + m.sensitivity + ")"};
  }
  return std::nullopt;
}

std::optional<Skip> Policy::meeting_skip(const ical::Meeting& m) const {
  if (m.klass == "PRIVATE" || m.klass == "CONFIDENTIAL") {
    return Skip{"private", "marked private (CLASS: " + m.klass + ")"};
  }
  for (const auto& a : m.attendees) {
    if (auto s = declined_by(normalize_address(a.address, strip_plus_tags_), a.partstat)) return s;
  }
  return std::nullopt;
}

std::optional<Skip> Policy::declined(const std::vector<store::Participant>& people) const {
  for (const auto& p : people) {
    if (p.role != "attendee") continue;
    if (auto s = declined_by(p.address, p.partstat)) return s;
  }
  return std::nullopt;
}

std::optional<Skip> Policy::declined_by(const std::string& address,
                                        std::string_view partstat) const {
  if (partstat != "DECLINED" || !is_owner(address)) return std::nullopt;
  return Skip{"declined", "declined by " + address};
}

boost::system::result<std::vector<std::size_t>, Skip> Policy::outside_participants(
    const std::vector<store::Participant>& people) const {
  if (people.empty()) return Skip{"no-participants", "no From, To, Cc or Bcc address"};
  std::vector<std::size_t> outside;
  std::vector<std::string> blocked;
  for (std::size_t i = 0; i < people.size(); ++i) {
    if (is_internal(people[i].address)) continue;
    if (is_blocked(people[i].address)) {
      blocked.push_back(people[i].address);
      continue;
    }
    outside.push_back(i);
  }
  if (!outside.empty()) return outside;
  if (!blocked.empty()) {
    return Skip{"blocklist",
                "every outside participant is blocklisted (" + join(blocked, ", ") + ")"};
  }
  return Skip{"internal", "every participant is internal"};
}

bool Policy::sent_copy_decides_again(const store::Activities::StoredCopy& stored) {
  return stored.direction == store::Direction::inbound || !stored.in_folder;
}

}  // namespace crmcap::capture
