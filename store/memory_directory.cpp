// SPDX-License-Identifier: Apache-2.0
#include "store/memory_directory.hpp"

#include <algorithm>
#include <tuple>

namespace crmcap::store {

namespace {

template <class T>
void sort_by_id(std::vector<T>& v) {
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.id < b.id; });
}

}  // namespace

MemoryDirectory::MemoryDirectory(std::vector<Company> companies, std::vector<Contact> contacts,
                                 std::vector<Opportunity> opportunities)
    : companies_(std::move(companies)),
      contacts_(std::move(contacts)),
      opportunities_(std::move(opportunities)) {
  // Id order, as the SQLite store answers.
  sort_by_id(companies_);
  sort_by_id(contacts_);
  sort_by_id(opportunities_);
}

Result<std::optional<Contact>> MemoryDirectory::contact_by_email(std::string_view email,
                                                                 PlusTags tags) {
  const bool ignored = tags == PlusTags::ignored;
  const std::string key = ignored ? without_plus_tag(email) : std::string(email);
  std::optional<Contact> out;
  // (not exact, position): smaller is better; ties go to the smaller id,
  // which comes first in contacts_.
  std::tuple<bool, std::size_t> best{};
  for (const auto& c : contacts_) {
    for (std::size_t i = 0; i < c.emails.size(); ++i) {
      const bool exact = c.emails[i] == key;
      if (!exact && !(ignored && without_plus_tag(c.emails[i]) == key)) continue;
      const std::tuple<bool, std::size_t> rank{!exact, i};
      if (!out || rank < best) {
        best = rank;
        out = c;
        out->emails = {key};
      }
      break;
    }
  }
  return out;
}

Result<std::vector<Company>> MemoryDirectory::companies_by_domain(std::string_view domain) {
  std::vector<Company> out;
  for (const auto& c : companies_) {
    if (std::find(c.domains.begin(), c.domains.end(), domain) != c.domains.end()) {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::vector<Opportunity>> MemoryDirectory::open_opportunities_of_company(
    std::string_view company_id) {
  std::vector<Opportunity> out;
  for (const auto& o : opportunities_) {
    if (o.company_id == company_id && o.status == OpportunityStatus::open) out.push_back(o);
  }
  return out;
}

Result<std::vector<Opportunity>> MemoryDirectory::open_opportunities_of_contact(
    std::string_view contact_id) {
  std::vector<Opportunity> out;
  for (const auto& o : opportunities_) {
    if (o.status != OpportunityStatus::open) continue;
    if (std::any_of(o.contacts.begin(), o.contacts.end(),
                    [&](const OpportunityContact& c) { return c.contact_id == contact_id; })) {
      out.push_back(o);
    }
  }
  return out;
}

Result<std::optional<Company>> MemoryDirectory::company(std::string_view id) {
  for (const auto& c : companies_) {
    if (c.id == id) return std::optional<Company>(c);
  }
  return std::optional<Company>();
}

Result<std::optional<Opportunity>> MemoryDirectory::opportunity(std::string_view id) {
  for (const auto& o : opportunities_) {
    if (o.id == id) return std::optional<Opportunity>(o);
  }
  return std::optional<Opportunity>();
}

Result<DirectoryStats> MemoryDirectory::stats() {
  DirectoryStats s;
  s.companies = static_cast<std::int64_t>(companies_.size());
  s.contacts = static_cast<std::int64_t>(contacts_.size());
  s.opportunities = static_cast<std::int64_t>(opportunities_.size());
  for (const auto& c : companies_) s.company_domains += static_cast<std::int64_t>(c.domains.size());
  for (const auto& c : contacts_) s.contact_emails += static_cast<std::int64_t>(c.emails.size());
  for (const auto& o : opportunities_) {
    if (o.status == OpportunityStatus::open) ++s.open_opportunities;
    s.opportunity_contacts += static_cast<std::int64_t>(o.contacts.size());
  }
  return s;
}

}  // namespace crmcap::store
