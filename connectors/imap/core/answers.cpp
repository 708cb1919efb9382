// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/answers.hpp"

#include <algorithm>

namespace crmcap::imap {

void SearchAnswer::add(const Response& response) {
  if (!refused_.empty()) return;
  if (const auto* e = std::get_if<Exists>(&response)) {
    if (e->count > exists_) {
      exists_ = e->count;
      grew_ = true;
    }
    return;
  }
  const std::uint64_t most = std::min<std::uint64_t>(exists_, k_max_search_uids);
  if (const auto* s = std::get_if<Search>(&response)) {
    if (listed_.size() + s->ids.size() > most) {
      // Counted as sent (a repeat would be the server's error too).
      refused_ = "the server listed more UIDs than the folder holds messages (" +
                 std::to_string(exists_) + ")";
      listed_.clear();
      return;
    }
    listed_.insert(listed_.end(), s->ids.begin(), s->ids.end());
    return;
  }
  if (const auto* e = std::get_if<Esearch>(&response)) {
    all_.add(e->all);
    if (all_.max() == UidSet::star) {
      refused_ = "the server's ESEARCH listed \"*\" as a UID";
    } else if (all_.size() > most) {
      refused_ = "the server's ESEARCH listed " + std::to_string(all_.size()) +
                 " UIDs, more than the folder holds messages (" + std::to_string(exists_) + ")";
    }
    if (!refused_.empty()) all_ = UidSet();
  }
}

SearchAnswer::Checked SearchAnswer::take() {
  Checked out;
  if (!refused_.empty()) {
    out.refused = std::move(refused_);
    return out;
  }
  // Both forms together are still bounded: each was counted on its own.
  out.uids.reserve(listed_.size() + static_cast<std::size_t>(all_.size()));
  for (const auto& r : all_.ranges()) {
    for (std::uint64_t u = r.first; u <= r.last; ++u) {
      out.uids.push_back(static_cast<std::uint32_t>(u));
    }
  }
  out.uids.insert(out.uids.end(), listed_.begin(), listed_.end());
  std::sort(out.uids.begin(), out.uids.end());
  out.uids.erase(std::unique(out.uids.begin(), out.uids.end()), out.uids.end());
  if (uidnext_ != 0) {
    const auto above = std::lower_bound(out.uids.begin(), out.uids.end(), uidnext_);
    if (above != out.uids.end()) {
      if (!grew_) {
        out.refused = "the server listed UID " + std::to_string(*above) +
                      ", at or above the UIDNEXT " + std::to_string(uidnext_) +
                      " it had just announced";
        out.uids.clear();
        return out;
      }
      out.uids.erase(above, out.uids.end());
    }
  }
  return out;
}

void FetchedMessages::expect(const std::vector<std::uint32_t>& uids) {
  expected_.insert(uids.begin(), uids.end());
}

bool FetchedMessages::add(FetchItem&& from) {
  if (!from.uid || !expected_.contains(*from.uid)) return false;
  Held& h = held_[*from.uid];
  FetchItem& into = h.item;
  into.uid = from.uid;
  if (from.size) into.size = from.size;
  if (from.internaldate) into.internaldate = std::move(from.internaldate);
  if (from.envelope) into.envelope = std::move(from.envelope);
  if (from.body) into.body = std::move(from.body);
  if (from.gm_msgid) into.gm_msgid = from.gm_msgid;
  if (from.gm_labels) into.gm_labels = std::move(from.gm_labels);
  for (auto& s : from.sections) {
    const std::uint64_t n = s.data ? s.data->size() : 0;
    auto same = std::find_if(into.sections.begin(), into.sections.end(), [&](const BodySection& b) {
      return b.section == s.section && b.origin == s.origin && b.binary == s.binary;
    });
    if (same != into.sections.end()) {
      h.bytes -= same->data ? same->data->size() : 0;
      into.sections.erase(same);
    }
    if (h.overflowed || h.bytes + n > k_max_message_bytes) {
      // Refused as a whole (see Held): nothing of it is kept.
      h.overflowed = true;
      into.sections.clear();
      h.bytes = 0;
      break;
    }
    h.bytes += n;
    into.sections.push_back(std::move(s));
  }
  return true;
}

const FetchedMessages::Held* FetchedMessages::find(std::uint32_t uid) const {
  auto it = held_.find(uid);
  return it == held_.end() ? nullptr : &it->second;
}

FetchedMessages::Held* FetchedMessages::find(std::uint32_t uid) {
  auto it = held_.find(uid);
  return it == held_.end() ? nullptr : &it->second;
}

std::optional<FetchedMessages::Held> FetchedMessages::take(std::uint32_t uid) {
  expected_.erase(uid);
  auto node = held_.extract(uid);
  if (node.empty()) return std::nullopt;
  return std::move(node.mapped());
}

void FetchedMessages::clear() {
  expected_.clear();
  held_.clear();
}

}  // namespace crmcap::imap
