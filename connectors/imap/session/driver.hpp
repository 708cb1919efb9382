// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/session: carries out the session core's
// transport Actions (core/session.hpp) on a Transport. With the sink calls
// in account.cpp, the only code that calls the transport.
#pragma once

#include "connectors/imap/core/session.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>

namespace crmcap::imap::detail {

class TransportDriver {
 public:
  // `transport` runs on `executor` and outlives the driver.
  TransportDriver(const boost::asio::any_io_executor& executor, Transport& transport);
  ~TransportDriver();
  TransportDriver(const TransportDriver&) = delete;
  TransportDriver& operator=(const TransportDriver&) = delete;

  // Carries out `action`, one of connect, write, read, start_tls and close,
  // and returns what came of it. A read with wake_at runs on its own, so
  // that it may outlast the wait: it is the read carried out by the next
  // read action, and writes may be carried out meanwhile.
  Awaitable<Io> carry_out(const Action& action);

  // Whether a read that a wake_at left going has not ended.
  bool reading() const { return read_ != nullptr; }
  // Closes the transport (at once) and waits for a read still going to end,
  // so that nothing refers to its buffer or the transport afterwards.
  Awaitable<void> close();

 private:
  struct PendingRead;
  Awaitable<Io> read(const Action& action);

  boost::asio::any_io_executor executor_;
  Transport& transport_;
  std::shared_ptr<PendingRead> read_;  // a read going on by itself
};

}  // namespace crmcap::imap::detail
