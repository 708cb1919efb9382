// SPDX-License-Identifier: Apache-2.0
// A MailSink for tests that hands every call on to another; a test's sink
// derives from it and changes the one or two calls it is about.
#pragma once

#include "connectors/imap/imap.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crmcap::test {

class ForwardingSink : public imap::MailSink {
 public:
  explicit ForwardingSink(imap::MailSink& inner) : inner_(inner) {}
  std::optional<imap::FolderState> folder_state(const std::string& f) override {
    return inner_.folder_state(f);
  }
  std::vector<bool> known_messages(const std::string& f,
                                   const std::vector<imap::MessageKey>& keys) override {
    return inner_.known_messages(f, keys);
  }
  imap::SyncResult<void> commit(const imap::FolderState& s,
                                std::vector<imap::FetchedMessage> m) override {
    return inner_.commit(s, std::move(m));
  }
  imap::SyncResult<void> removed(const imap::FolderState& s, const imap::UidRanges& u) override {
    return inner_.removed(s, u);
  }
  imap::SyncResult<void> note_refusal(const imap::FolderState& s) override {
    return inner_.note_refusal(s);
  }
  void warn(const std::string& w) override { inner_.warn(w); }

 protected:
  imap::MailSink& inner_;
};

}  // namespace crmcap::test
