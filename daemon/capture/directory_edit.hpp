// SPDX-License-Identifier: Apache-2.0
// Changing the CRM's directory row by row (the local API's PUT, DELETE and
// directory batches, `crm-capture directory push`), and deciding again the
// activities a change involves. The rows are checked as the CSV import
// checks them; the decisions are the pipeline's (Pipeline::redecide): no
// rule of its own here.
#pragma once

#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::capture {

// What is wrong with a row: the field and what ("emails", "bad address 'x'").
struct RowProblem {
  std::string field;
  std::string what;
};

// Checks a row and normalizes it as the store keeps it (addresses and
// domains trimmed and lowercase, a domain's leading '@' dropped, duplicate
// addresses dropped): nullopt when it may be stored. An empty id, a bad
// address, domain or close_date is a problem; references to other rows are
// the store's to check (DirectoryWriter::apply). The CSV import checks its
// rows with these too.
std::optional<RowProblem> check_row(store::Company& c);
std::optional<RowProblem> check_row(store::Contact& c);
std::optional<RowProblem> check_row(store::Opportunity& o);

// What DirectoryEditor::apply did.
struct DirectoryReport {
  std::size_t created = 0, changed = 0, removed = 0;
  // The activities decided again whose decision changed, oldest first.
  std::vector<std::string> rematched;
};

class DirectoryEditor {
 public:
  // `by_mailbox`: the capture settings of each configured mailbox; an
  // activity is decided again with those of the mailbox it was first seen
  // in, or with `fallback` (seen in none of them: `crm-capture ingest`).
  // Keeps a reference to `store`, which must outlive the editor; `free_mail`
  // is copied.
  DirectoryEditor(store::Store& store, const std::map<std::string, Settings>& by_mailbox,
                  const Settings& fallback, const FreeMailDomains& free_mail);
  ~DirectoryEditor();
  DirectoryEditor(const DirectoryEditor&) = delete;
  DirectoryEditor& operator=(const DirectoryEditor&) = delete;

  // Applies `edits` (their rows checked with check_row) in one transaction
  // with the decisions they change: every activity of the backfill window
  // (fallback's backfill_days back from `now`, Unix seconds) that an edit
  // involves and that the directory can change (Pipeline::can_redecide) is
  // decided again, in the order it occurred; one whose decision changed
  // keeps its id and gets the reason "re-matched: contact C-9 added
  // `origin`; " and its new decision's. All or nothing: a failure (a bad
  // row, an unknown reference, a removal of an unknown id: the store's
  // errors, named by the edit's `where`) leaves the store as it was.
  store::Result<DirectoryReport> apply(const std::vector<store::DirectoryEdit>& edits,
                                       std::string_view origin, std::int64_t now);

 private:
  Pipeline& pipeline_for(const store::Activity& a);

  store::Store& store_;
  FreeMailDomains free_mail_;
  std::map<std::string, std::unique_ptr<Pipeline>> pipelines_;
  std::unique_ptr<Pipeline> fallback_;
};

}  // namespace crmcap::capture
