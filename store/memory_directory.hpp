// SPDX-License-Identifier: Apache-2.0
// An in-memory CRM directory: the same lookups and the same answers as the
// SQLite store's, over records held in vectors. The capture rules' tests use
// it (no SQLite, no files); so can any caller that holds the directory itself.
#pragma once

#include "store/store.hpp"

#include <vector>

namespace crmcap::store {

class MemoryDirectory : public Directory {
 public:
  // Records as the DirectoryWriter takes them: addresses and domains
  // normalized (trimmed, lowercase).
  MemoryDirectory(std::vector<Company> companies, std::vector<Contact> contacts,
                  std::vector<Opportunity> opportunities);

  Result<std::optional<Contact>> contact_by_email(std::string_view email, PlusTags tags) override;
  Result<std::vector<Company>> companies_by_domain(std::string_view domain) override;
  Result<std::vector<Opportunity>> open_opportunities_of_company(
      std::string_view company_id) override;
  Result<std::vector<Opportunity>> open_opportunities_of_contact(
      std::string_view contact_id) override;
  Result<std::optional<Company>> company(std::string_view id) override;
  Result<std::optional<Opportunity>> opportunity(std::string_view id) override;
  Result<DirectoryStats> stats() override;

 private:
  std::vector<Company> companies_;
  std::vector<Contact> contacts_;
  std::vector<Opportunity> opportunities_;
};

}  // namespace crmcap::store
