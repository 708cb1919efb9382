// SPDX-License-Identifier: Apache-2.0
// Rules 4 and 5: participants to contacts and companies, then the opportunity.
#include "daemon/capture/rules.hpp"
#include "daemon/capture/text.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace crmcap::capture {

FreeMailDomains FreeMailDomains::from_text(std::string_view text) {
  FreeMailDomains f;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::string d = text::to_lower_copy(text::trim(line));
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
  return "cannot read the free-mail domain list (tried " + join(candidates, ", ") + ")";
}

bool FreeMailDomains::contains(std::string_view domain) const {
  return domains_.contains(std::string(domain));
}

Matcher::Matcher(store::Directory& directory, const FreeMailDomains& free_mail,
                 store::PlusTags tags)
    : directory_(directory), free_mail_(free_mail), tags_(tags) {}

store::Result<Match> Matcher::match(std::vector<store::Participant>& people,
                                    const std::vector<std::size_t>& outside,
                                    const ThreadOpportunity& thread) const {
  Match m;
  std::vector<std::string> contact_ids;      // matched contacts, for roles
  std::map<std::string, std::string> names;  // company id -> name, as matched by domain
  for (const std::size_t i : outside) {
    store::Participant& p = people[i];
    auto contact = directory_.contact_by_email(p.address, tags_);
    if (!contact) return contact.error();
    if (*contact) {
      const store::Contact& c = **contact;
      p.contact_id = c.id;
      p.company_id = c.company_id;
      add_unique(m.contact_ids, c.id);
      if (!c.company_id.empty()) add_unique(m.company_ids, c.company_id);
      m.links.push_back(p.role + ": " + p.address + " = contact " + c.id);
      continue;
    }
    auto company = match_company(p, m);
    if (!company) return company.error();
    if (*company) names[p.company_id] = **company;
  }
  if (m.contact_ids.empty() && m.company_ids.empty()) {
    std::vector<std::string> addresses;
    for (const std::size_t i : outside) addresses.push_back(people[i].address);
    m.unmatched = Skip{"unmatched", "no participant is a known contact or company (" +
                                        join(addresses, ", ") + ")"};
    return m;
  }
  // Rule 5 names the company when exactly one matched.
  std::string company_name;
  if (m.company_ids.size() == 1) {
    const std::string& id = m.company_ids.front();
    company_name = id;
    if (auto it = names.find(id); it != names.end() && !it->second.empty()) {
      company_name = it->second;
    } else {
      auto c = directory_.company(id);
      if (!c) return c.error();
      if (*c && !(*c)->name.empty()) company_name = (*c)->name;
    }
  }
  if (auto r = choose_opportunity(m.contact_ids, company_name, thread, m); !r) return r.error();
  return m;
}

store::Result<std::optional<std::string>> Matcher::match_company(store::Participant& p,
                                                                 Match& m) const {
  const std::string domain(domain_of(p.address));
  if (free_mail_.contains(domain)) {
    m.notes.push_back(p.role + ": " + p.address + ": unknown contact at free-mail domain " +
                      domain + ", no company");
    return std::nullopt;
  }
  // The domain itself, then each parent domain (mail.eu.acme.com -> acme.com),
  // stopping before the last label. A domain several companies list is
  // ambiguous: no parent domain is tried then.
  for (std::string_view d = domain; d.find('.') != std::string_view::npos;
       d = d.substr(d.find('.') + 1)) {
    auto companies = directory_.companies_by_domain(d);
    if (!companies) return companies.error();
    if (companies->size() == 1) {
      const store::Company& c = companies->front();
      p.company_id = c.id;
      add_unique(m.company_ids, c.id);
      m.links.push_back(p.role + ": " + p.address + " = company " + c.id + " (domain " +
                        std::string(d) + ")");
      return c.name;
    }
    if (companies->size() > 1) {
      std::vector<std::string> ids;
      for (const auto& c : *companies) ids.push_back(c.id);
      m.notes.push_back(p.role + ": " + p.address + ": domain " + std::string(d) +
                        " belongs to several companies (" + join(ids, ", ") + "), none chosen");
      return std::nullopt;
    }
  }
  m.notes.push_back(p.role + ": " + p.address + ": no contact or company");
  return std::nullopt;
}

store::Result<void> Matcher::choose_opportunity(const std::vector<std::string>& contact_ids,
                                                const std::string& company_name,
                                                const ThreadOpportunity& thread, Match& m) const {
  // The thread's opportunity, when it is one of `candidates` (any when empty).
  auto from_thread =
      [&](const std::vector<std::string>& candidates) -> store::Result<std::optional<std::string>> {
    auto t = thread();
    if (!t) return t.error();
    if (*t && (candidates.empty() ||
               std::find(candidates.begin(), candidates.end(), **t) != candidates.end())) {
      return *t;
    }
    return std::nullopt;
  };
  auto choose = [&](std::string id, std::string why) {
    m.opportunity_id = std::move(id);
    m.opportunity_line = "opportunity " + m.opportunity_id + ": " + std::move(why);
  };

  // A role of a matched contact.
  std::vector<std::string> by_role;
  for (const auto& id : contact_ids) {
    auto opps = directory_.open_opportunities_of_contact(id);
    if (!opps) return opps.error();
    for (const auto& o : *opps) add_unique(by_role, o.id);
  }
  if (by_role.size() == 1) {
    choose(by_role.front(), "the one open opportunity on which a matched contact has a role");
    return {};
  }
  if (by_role.size() > 1) {
    auto t = from_thread(by_role);
    if (!t) return t.error();
    if (*t) {
      choose(**t, "matched contacts have roles on several (" + join(by_role, ", ") +
                      "); the thread's earlier activity names this one");
    } else {
      m.opportunity_line =
          "no opportunity: ambiguous, matched contacts have roles on several open "
          "opportunities (" +
          join(by_role, ", ") + ")";
    }
    return {};
  }

  // The one matched company's only open opportunity.
  if (m.company_ids.size() == 1) {
    auto opps = directory_.open_opportunities_of_company(m.company_ids.front());
    if (!opps) return opps.error();
    std::vector<std::string> open;
    for (const auto& o : *opps) open.push_back(o.id);
    if (open.size() == 1) {
      choose(open.front(), "only open opportunity of " + company_name);
      return {};
    }
    auto t = from_thread(open.size() > 1 ? open : std::vector<std::string>{});
    if (!t) return t.error();
    if (open.size() > 1) {
      if (*t) {
        choose(**t, company_name + " has several open (" + join(open, ", ") +
                        "); the thread's earlier activity names this one");
      } else {
        m.opportunity_line = "no opportunity: ambiguous, " + company_name + " has several open (" +
                             join(open, ", ") + ")";
      }
    } else if (*t) {
      choose(**t, "from an earlier activity in the same thread");
    } else {
      m.opportunity_line = "no opportunity: " + company_name + " has no open opportunity";
    }
    return {};
  }

  // The thread's.
  auto t = from_thread({});
  if (!t) return t.error();
  if (*t) {
    choose(**t, "from an earlier activity in the same thread");
  } else if (m.company_ids.size() > 1) {
    m.opportunity_line = "no opportunity: several companies matched (" + join(m.company_ids, ", ") +
                         ") and no contact has a role";
  } else {
    m.opportunity_line = "no opportunity: none found";
  }
  return {};
}

}  // namespace crmcap::capture
