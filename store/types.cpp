// SPDX-License-Identifier: Apache-2.0
// The store's plain types: errors, enum names and the directory's address key.
// No SQLite here: the capture rules and their tests link this part alone.
#include "store/store.hpp"

#include <stdexcept>

namespace crmcap::store {

// ---- errors and enums --------------------------------------------------------

namespace {

class StoreCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.store"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::open_failed:
        return "cannot open the store";
      case Errc::newer_schema:
        return "store written by a newer version";
      case Errc::sql_failed:
        return "store statement failed";
      case Errc::bad_input:
        return "bad input";
      case Errc::not_found:
        return "not found";
    }
    return "unknown store error";
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  static const StoreCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), store_category()}; }

Error make_error(Errc e, std::string message) {
  return Error{make_error_code(e), std::move(message)};
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string_view to_string(OpportunityStatus s) noexcept {
  switch (s) {
    case OpportunityStatus::open:
      return "open";
    case OpportunityStatus::won:
      return "won";
    case OpportunityStatus::lost:
      return "lost";
  }
  return "open";
}

std::optional<OpportunityStatus> opportunity_status_from_string(std::string_view s) noexcept {
  if (s == "open") return OpportunityStatus::open;
  if (s == "won") return OpportunityStatus::won;
  if (s == "lost") return OpportunityStatus::lost;
  return std::nullopt;
}

std::string_view to_string(ActivityKind k) noexcept {
  return k == ActivityKind::email ? "email" : "meeting";
}

std::string_view to_string(Direction d) noexcept {
  switch (d) {
    case Direction::inbound:
      return "inbound";
    case Direction::outbound:
      return "outbound";
    case Direction::internal:
      return "internal";
  }
  return "inbound";
}

std::string_view to_string(DecisionStatus s) noexcept {
  switch (s) {
    case DecisionStatus::captured:
      return "captured";
    case DecisionStatus::skipped:
      return "skipped";
    case DecisionStatus::failed:
      return "failed";
  }
  return "failed";
}

std::string without_plus_tag(std::string_view address) {
  const auto at = address.rfind('@');
  const auto plus = address.find('+');
  std::string out(address);
  if (at != std::string_view::npos && plus != std::string_view::npos && plus > 0 && plus < at) {
    out.erase(plus, at - plus);
  }
  return out;
}

std::string_view to_string(DirectoryKind k) noexcept {
  switch (k) {
    case DirectoryKind::company:
      return "company";
    case DirectoryKind::contact:
      return "contact";
    case DirectoryKind::opportunity:
      return "opportunity";
  }
  return "contact";
}

void Involving::add(const Involving& o) {
  addresses.insert(o.addresses.begin(), o.addresses.end());
  domains.insert(o.domains.begin(), o.domains.end());
  contact_ids.insert(o.contact_ids.begin(), o.contact_ids.end());
  company_ids.insert(o.company_ids.begin(), o.company_ids.end());
  opportunity_ids.insert(o.opportunity_ids.begin(), o.opportunity_ids.end());
}

bool involves(const Involving& keys, const Activity& a) {
  if (!a.opportunity_id.empty() && keys.opportunity_ids.contains(a.opportunity_id)) return true;
  for (const Participant& p : a.participants) {
    if (keys.addresses.contains(p.address)) return true;
    if (!p.contact_id.empty() && keys.contact_ids.contains(p.contact_id)) return true;
    if (!p.company_id.empty() && keys.company_ids.contains(p.company_id)) return true;
    if (keys.domains.empty()) continue;
    // The domain and each parent of it: "mail.acme.com", "acme.com", "com".
    const auto at = p.address.rfind('@');
    if (at == std::string::npos) continue;
    for (std::string_view d = std::string_view(p.address).substr(at + 1); !d.empty();) {
      if (keys.domains.contains(std::string(d))) return true;
      const auto dot = d.find('.');
      if (dot == std::string_view::npos) break;
      d.remove_prefix(dot + 1);
    }
  }
  return false;
}

}  // namespace crmcap::store
