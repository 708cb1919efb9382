// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/session: the reads of the session core that
// may outlast their wait (Action::read with a wake_at: IDLE, whose DONE is
// written while its read still waits). The driver (account.cpp) makes every
// other transport call itself, awaiting it at once.
#pragma once

#include "connectors/imap/core/session.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>

namespace crmcap::imap::detail {

class WakingReads {
 public:
  // `transport` runs on `executor` and outlives this, and so does every
  // buffer a read is given.
  WakingReads(const boost::asio::any_io_executor& executor, Transport& transport);
  ~WakingReads();
  WakingReads(const WakingReads&) = delete;
  WakingReads& operator=(const WakingReads&) = delete;

  // Whether `read` (Action::read) is one for read(): it has a wake_at, or a
  // read left going by one is to be continued.
  bool handles(const Action& read) const { return read.wake_at || read_ != nullptr; }

  // Carries out `read`: starts it on its own (unless one is going on, which
  // it continues) and waits for it, or for its wake_at: then Io::woken, the
  // read going on; writes may be made meanwhile, and the next read action
  // is that read. With a wake_at, `cut` is asked before the wait and after
  // each interrupt(): true ends the wait as if wake_at had passed.
  Awaitable<Io> read(const Action& read, const std::function<bool()>& cut);

  // Makes a read() waiting for its wake_at ask its `cut` again.
  void interrupt();

  // Closes the transport (at once) and waits for a read still going to end,
  // so that nothing refers to its buffer or the transport afterwards.
  Awaitable<void> close();

 private:
  struct PendingRead;

  boost::asio::any_io_executor executor_;
  Transport& transport_;
  std::shared_ptr<PendingRead> read_;  // a read going on by itself
};

}  // namespace crmcap::imap::detail
