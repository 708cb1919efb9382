// SPDX-License-Identifier: Apache-2.0
#include "daemon/cli/ingest.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace crmcap::cli {

std::string IngestSummary::line() const {
  std::string s = "seen " + std::to_string(seen) + ", captured " + std::to_string(captured) +
                  ", skipped " + std::to_string(skipped);
  if (!skipped_by_rule.empty()) {
    s += " (";
    bool first = true;
    for (const auto& [rule, n] : skipped_by_rule) {
      if (!first) s += ", ";
      first = false;
      s += rule + " " + std::to_string(n);
    }
    s += ")";
  }
  s += ", failed " + std::to_string(failed);
  return s;
}

store::Result<IngestSummary> ingest(const std::vector<maildir::LocalMessage>& messages,
                                    capture::Pipeline& pipeline, store::Activities& activities,
                                    std::size_t batch_size) {
  struct Parsed {
    const maildir::LocalMessage* file;
    std::optional<mail::MailMessage> message;
    std::string raw;  // kept only when parsing failed, for the failure record
    std::string read_error;
  };
  std::vector<Parsed> parsed;
  parsed.reserve(messages.size());
  mail::ParseOptions opt;
  opt.snippet_chars = pipeline.settings().snippet_chars;
  for (const auto& f : messages) {
    Parsed p{&f, std::nullopt, {}, {}};
    std::ifstream in(f.path, std::ios::binary);
    std::ostringstream ss;
    if (in) ss << in.rdbuf();
    if (!in) {
      p.read_error = "cannot read " + f.path;
    } else {
      std::string raw = std::move(ss).str();
      opt.received_at = f.received_at;
      if (auto m = mail::parse(raw, opt)) {
        p.message = std::move(*m);
      } else {
        p.raw = std::move(raw);
      }
    }
    parsed.push_back(std::move(p));
  }
  // Date order (then message id, then path) makes thread inheritance and the
  // result independent of the order files were found in.
  std::stable_sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) {
    const std::int64_t da = a.message ? a.message->date : a.file->received_at;
    const std::int64_t db = b.message ? b.message->date : b.file->received_at;
    if (da != db) return da < db;
    const std::string_view ma = a.message ? std::string_view(a.message->message_id) : "";
    const std::string_view mb = b.message ? std::string_view(b.message->message_id) : "";
    if (ma != mb) return ma < mb;
    return a.file->path < b.file->path;
  });

  IngestSummary sum;
  store::Batch batch;
  auto flush = [&]() -> store::Result<void> {
    if (batch.items.empty()) return {};
    auto r = activities.commit(batch);
    batch.items.clear();
    pipeline.clear_pending();
    return r;
  };
  for (auto& p : parsed) {
    capture::MessageSource src{{"local", p.file->folder, 0, 0, p.file->path}, p.file->received_at};
    capture::Outcome o;
    if (!p.read_error.empty()) {
      o.activity.source_key = "file:" + p.file->path;
      o.activity.id = capture::activity_id_for(o.activity.source_key);
      o.activity.status = store::DecisionStatus::failed;
      o.activity.rule = "read";
      o.activity.occurred_at = capture::iso_utc(p.file->received_at);
      o.activity.reason = "failed: " + p.read_error;
    } else if (p.message) {
      o = pipeline.decide(std::move(*p.message), src);
    } else {
      o = pipeline.process(p.raw, src);
    }
    ++sum.seen;
    switch (o.activity.status) {
      case store::DecisionStatus::captured:
        ++sum.captured;
        break;
      case store::DecisionStatus::skipped:
        ++sum.skipped;
        ++sum.skipped_by_rule[o.activity.rule];
        break;
      case store::DecisionStatus::failed:
        ++sum.failed;
        break;
    }
    pipeline.remember(o.activity);
    batch.items.push_back({std::move(o.activity), src.ref});
    if (batch.items.size() >= batch_size) {
      if (auto r = flush(); !r) return r.error();
    }
  }
  if (auto r = flush(); !r) return r.error();
  return sum;
}

}  // namespace crmcap::cli
