// SPDX-License-Identifier: Apache-2.0
// Shared by the capture tests: a directory that answers like another one but
// for one kind of read, which fails as a disk error would.
#pragma once

#include "store/store.hpp"

namespace crmcap::test {

class FailingDirectory final : public store::Directory {
 public:
  enum class Read { contact, domain, company_opportunities, contact_opportunities, company };

  // Keeps a reference to `real`, which must outlive it.
  FailingDirectory(store::Directory& real, Read failing) : real_(real), failing_(failing) {}

  static constexpr const char* k_message = "disk I/O error";

  store::Result<std::optional<store::Contact>> contact_by_email(std::string_view e,
                                                                store::PlusTags t) override {
    if (failing_ == Read::contact) return fail();
    return real_.contact_by_email(e, t);
  }
  store::Result<std::vector<store::Company>> companies_by_domain(std::string_view d) override {
    if (failing_ == Read::domain) return fail();
    return real_.companies_by_domain(d);
  }
  store::Result<std::vector<store::Opportunity>> open_opportunities_of_company(
      std::string_view id) override {
    if (failing_ == Read::company_opportunities) return fail();
    return real_.open_opportunities_of_company(id);
  }
  store::Result<std::vector<store::Opportunity>> open_opportunities_of_contact(
      std::string_view id) override {
    if (failing_ == Read::contact_opportunities) return fail();
    return real_.open_opportunities_of_contact(id);
  }
  store::Result<std::optional<store::Company>> company(std::string_view id) override {
    if (failing_ == Read::company) return fail();
    return real_.company(id);
  }
  store::Result<std::optional<store::Opportunity>> opportunity(std::string_view id) override {
    return real_.opportunity(id);
  }
  store::Result<store::DirectoryStats> stats() override { return real_.stats(); }

 private:
  static store::Error fail() { return store::make_error(store::Errc::sql_failed, k_message); }
  store::Directory& real_;
  Read failing_;
};

}  // namespace crmcap::test
