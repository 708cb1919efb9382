// SPDX-License-Identifier: Apache-2.0
#include "daemon/capture/directory_edit.hpp"

#include "daemon/capture/text.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <charconv>

namespace crmcap::capture {

namespace {

// An address or a domain as the store keeps them: trimmed, lowercase.
std::string normalized(std::string_view s) { return text::to_lower_copy(text::trim(s)); }

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' ||
      d.find('.') == std::string_view::npos || d.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(d.begin(), d.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c >= 0x80;
  });
}

bool valid_address(std::string_view a) {
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  if (a.find_first_of(" \t<>,;\"") != std::string_view::npos) return false;
  return valid_domain(a.substr(at + 1));
}

bool valid_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  int y = 0, m = 0, d = 0;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    auto r = std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return r.ec == std::errc{} && r.ptr == s.data() + pos + len;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return false;
  if (m < 1 || m > 12 || d < 1) return false;
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + ((m == 2 && leap) ? 1 : 0);
}

std::optional<RowProblem> check_id(const std::string& id) {
  if (id.empty()) return RowProblem{"id", "empty id"};
  return std::nullopt;
}

}  // namespace

std::optional<RowProblem> check_row(store::Company& c) {
  if (auto p = check_id(c.id)) return p;
  std::vector<std::string> domains;
  for (const auto& raw : c.domains) {
    std::string d = normalized(raw);
    if (d.starts_with("@")) d.erase(0, 1);
    if (!valid_domain(d)) return RowProblem{"domains", "bad domain '" + d + "'"};
    if (std::find(domains.begin(), domains.end(), d) == domains.end()) domains.push_back(d);
  }
  c.domains = std::move(domains);
  return std::nullopt;
}

std::optional<RowProblem> check_row(store::Contact& c) {
  if (auto p = check_id(c.id)) return p;
  std::vector<std::string> emails;
  for (const auto& raw : c.emails) {
    std::string e = normalized(raw);
    if (!valid_address(e)) return RowProblem{"emails", "bad address '" + e + "'"};
    if (std::find(emails.begin(), emails.end(), e) == emails.end()) emails.push_back(e);
  }
  c.emails = std::move(emails);
  return std::nullopt;
}

std::optional<RowProblem> check_row(store::Opportunity& o) {
  if (auto p = check_id(o.id)) return p;
  if (!o.close_date.empty() && !valid_date(o.close_date)) {
    return RowProblem{"close_date", "bad close_date '" + o.close_date + "' (expected YYYY-MM-DD)"};
  }
  for (const auto& c : o.contacts) {
    if (c.contact_id.empty()) return RowProblem{"contact_ids", "empty contact id"};
  }
  return std::nullopt;
}

// ---- the editor ----------------------------------------------------------------

DirectoryEditor::DirectoryEditor(store::Store& store,
                                 const std::map<std::string, Settings>& by_mailbox,
                                 const Settings& fallback, const FreeMailDomains& free_mail)
    : store_(store),
      free_mail_(free_mail),
      fallback_(std::make_unique<Pipeline>(store, store, fallback, free_mail)) {
  for (const auto& [name, settings] : by_mailbox) {
    pipelines_.emplace(name, std::make_unique<Pipeline>(store, store, settings, free_mail));
  }
}

DirectoryEditor::~DirectoryEditor() = default;

Pipeline& DirectoryEditor::pipeline_for(const store::Activity& a) {
  for (const auto& s : a.sources) {
    if (auto it = pipelines_.find(s.mailbox); it != pipelines_.end()) return *it->second;
  }
  return *fallback_;
}

namespace {

// "contact C-9 added over the API": what an edit did, for a reason.
std::string what_edit_did(const store::DirectoryEdit& e, const store::EditApplied& done,
                          std::string_view origin) {
  std::string s(store::to_string(e.kind));
  s += " " + e.id + " ";
  switch (done.what) {
    case store::EditApplied::What::created:
      s += "added";
      break;
    case store::EditApplied::What::changed:
      s += "changed";
      break;
    case store::EditApplied::What::removed:
      s += "removed";
      break;
  }
  if (!origin.empty()) s += " " + std::string(origin);
  return s;
}

// Whether two decisions of one activity link and decide alike.
bool same_decision(const store::Activity& x, const store::Activity& y) {
  if (x.status != y.status || x.rule != y.rule || x.opportunity_id != y.opportunity_id) {
    return false;
  }
  if (x.participants.size() != y.participants.size()) return false;
  for (std::size_t i = 0; i < x.participants.size(); ++i) {
    if (x.participants[i].contact_id != y.participants[i].contact_id ||
        x.participants[i].company_id != y.participants[i].company_id) {
      return false;
    }
  }
  return true;
}

}  // namespace

store::Result<DirectoryReport> DirectoryEditor::apply(
    const std::vector<store::DirectoryEdit>& edits, std::string_view origin, std::int64_t now) {
  DirectoryReport report;
  const std::string since =
      iso_utc(now - std::int64_t{fallback_->settings().backfill_days} * 86400);
  auto redecide = [&](const std::vector<store::EditApplied>& done) -> store::Result<store::Batch> {
    store::Batch batch;
    store::Involving all;
    for (const auto& d : done) all.add(d.involving);
    auto found = store_.involving(all, since);
    if (!found) return found.error();
    // What the pipelines remember of this run is forgotten however it ends.
    std::vector<Pipeline*> used;
    struct Forget {
      std::vector<Pipeline*>& used;
      ~Forget() {
        for (Pipeline* p : used) p->clear_pending();
      }
    } forget{used};
    for (store::Activity& stored : *found) {
      if (!Pipeline::can_redecide(stored)) continue;
      Pipeline& p = pipeline_for(stored);
      Outcome o = p.redecide(stored);
      store::Activity& a = o.activity;
      // A failed read of the store fails the change: no decision is
      // replaced by a failure.
      if (a.status == store::DecisionStatus::failed) {
        return store::make_error(store::Errc::sql_failed, a.reason);
      }
      if (same_decision(a, stored)) continue;
      // The edits that involve it as it was or as it is now (an
      // opportunity of the company it now matches).
      std::vector<std::string> why;
      for (std::size_t i = 0; i < done.size(); ++i) {
        if (store::involves(done[i].involving, stored) || store::involves(done[i].involving, a)) {
          why.push_back(what_edit_did(edits[i], done[i], origin));
        }
      }
      if (why.size() > 3) {
        const std::size_t more = why.size() - 2;
        why.resize(2);
        why.push_back("and " + std::to_string(more) + " more changes");
      }
      a.reason = "re-matched: " + join(why, ", ") + "; " + a.reason;
      // Later activities of its thread see its opportunity (rule 5).
      p.remember(a);
      if (std::find(used.begin(), used.end(), &p) == used.end()) used.push_back(&p);
      report.rematched.push_back(a.id);
      batch.decided_again.push_back(std::move(a));
    }
    return batch;
  };
  auto done = store_.apply(edits, redecide);
  if (!done) {
    report.rematched.clear();
    return done.error();
  }
  for (const auto& d : *done) {
    switch (d.what) {
      case store::EditApplied::What::created:
        ++report.created;
        break;
      case store::EditApplied::What::changed:
        ++report.changed;
        break;
      case store::EditApplied::What::removed:
        ++report.removed;
        break;
    }
  }
  return report;
}

}  // namespace crmcap::capture
