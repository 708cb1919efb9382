// SPDX-License-Identifier: Apache-2.0
// The bridge from the IMAP connector to capture: each batch the connector hands
// over goes through the pipeline and commits, with the folder's new sync state,
// in one store transaction.
#pragma once

#include "connectors/imap/imap.hpp"
#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace crmcap::capture {

class ImapSink final : public imap::MailSink {
 public:
  // `mailbox` is the configured mailbox name; rows and cursors are keyed by it.
  ImapSink(std::string mailbox, Pipeline& pipeline, store::Activities& activities,
           store::SyncState& sync_state);

  std::optional<imap::FolderState> folder_state(const std::string& folder) override;
  std::vector<bool> known_messages(const std::string& folder,
                                   const std::vector<imap::MessageKey>& keys) override;
  imap::SyncResult<void> commit(const imap::FolderState& state,
                                std::vector<imap::FetchedMessage> messages) override;
  imap::SyncResult<void> removed(const imap::FolderState& state,
                                 const imap::UidRanges& uids) override;
  imap::SyncResult<void> note_refusal(const imap::FolderState& state) override;
  void warn(const std::string& message) override;

  // A copy: the counters move on the sink's thread while another (the
  // daemon's network thread, reporting a pass) reads them.
  Tally counters() const {
    const std::lock_guard<std::mutex> lock(counters_mutex_);
    return counters_;
  }
  // Receives warnings (default: standard error).
  std::function<void(const std::string&)> on_warning;

 private:
  // For each message of `folder`, the source key of the activity stored for
  // it (by the server's id first, then by Message-ID), or an empty string;
  // empty too for a copy kept as sent mail that decides its activity again
  // (Policy::sent_copy_decides_again), whose stored key goes to `again`
  // instead. `key_mids[i]` is the Message-ID key ("mid:...", or empty) of
  // keys[i], read by the caller once per batch.
  store::Result<std::vector<std::string>> stored_keys(const std::string& folder,
                                                      const std::vector<imap::MessageKey>& keys,
                                                      const std::vector<std::string>& key_mids,
                                                      std::vector<std::string>* again = nullptr);
  // Runs the pipeline on a batch's new messages into `batch`, and marks the
  // ones the store has (or the batch holds twice) as seen again.
  imap::SyncResult<void> decide_batch(const imap::FolderState& state,
                                      std::vector<imap::FetchedMessage>& messages,
                                      BatchWriter& writer);

  // `state` with the refusal count stored for its folder (note_refusal) if
  // that count is of a message above state.highest_uid, and none otherwise:
  // a commit never undoes a count noted since its pass began, and drops one
  // its mark has passed. (A failed read of the store, which folder_state()
  // takes as no state, only costs the count.)
  imap::FolderState with_stored_refusal(const imap::FolderState& state);

  std::string mailbox_;
  Pipeline& pipeline_;
  store::Activities& activities_;
  store::SyncState& sync_state_;
  mutable std::mutex counters_mutex_;
  Tally counters_;  // under counters_mutex_
};

// FolderState <-> stored cursor (the connector's extra fields go to `extra` as
// "key=value" pairs).
store::SyncCursor to_cursor(const std::string& mailbox, const imap::FolderState& s);
imap::FolderState from_cursor(const store::SyncCursor& c);

}  // namespace crmcap::capture
