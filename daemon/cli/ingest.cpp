// SPDX-License-Identifier: Apache-2.0
#include "daemon/cli/ingest.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace crmcap::cli {

store::Result<capture::Tally> ingest(const std::vector<maildir::LocalMessage>& messages,
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

  capture::BatchWriter writer(pipeline, activities);
  for (auto& p : parsed) {
    const capture::MessageSource src{{"local", p.file->folder, 0, 0, p.file->path},
                                     p.file->received_at};
    writer.add(!p.read_error.empty()
                   ? capture::failed_outcome("file:" + p.file->path, "read", p.read_error, src)
               : p.message ? pipeline.decide(std::move(*p.message), src)
                           : pipeline.process(p.raw, src),
               src.ref);
    if (writer.size() >= batch_size) {
      if (auto r = writer.commit(); !r) return r.error();
    }
  }
  if (auto r = writer.commit(); !r) return r.error();
  return writer.tally();
}

}  // namespace crmcap::cli
