// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/session: one logged-in IMAP connection, live.
// The sans-io core (core/connection.hpp) decides everything; this carries out
// its transport actions (driver.hpp) and offers its operations as Asio
// awaitables to the folder sync.
#pragma once

#include "connectors/imap/core/connection.hpp"
#include "connectors/imap/imap.hpp"
#include "connectors/imap/session/driver.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>
#include <vector>

namespace crmcap::imap::detail {

class LiveConnection {
 public:
  LiveConnection(const boost::asio::any_io_executor& ex, const AccountOptions& options);

  // See core/connection.hpp for each.
  using Handler = Connection::Handler;
  using Malformed = Connection::Malformed;
  Awaitable<SyncResult<void>> open();
  Awaitable<SyncResult<TaggedStatus>> run(const Command& command, const Handler& on_untagged,
                                          std::string_view what,
                                          Malformed malformed = Malformed::fail);
  Awaitable<SyncResult<void>> send(const Command& command);
  Awaitable<SyncResult<TaggedStatus>> finish(const Command& command, const Handler& on_untagged,
                                             std::string_view what,
                                             Malformed malformed = Malformed::fail);
  Awaitable<SyncResult<void>> send(const std::vector<Command>& commands);
  Awaitable<SyncResult<void>> finish(const std::vector<Command>& commands,
                                     const Handler& on_untagged, std::string_view what);
  std::uint64_t malformed() const { return core_.malformed(); }
  const std::string& last_malformed() const { return core_.last_malformed(); }
  Awaitable<SyncResult<void>> idle(std::chrono::milliseconds timeout,
                                   const std::function<bool(const Response&)>& wake);
  Awaitable<void> logout();
  void close() noexcept { transport_.close(); }

  const Capabilities& capabilities() const { return core_.capabilities(); }
  bool compressed() const { return core_.compressed(); }
  bool qresync() const { return core_.qresync(); }
  CommandBuilder& builder() { return core_.builder(); }
  bool is_open() const { return transport_.is_open(); }

 private:
  // Runs `task` to its end, carrying out every action it asks for.
  template <class T>
  Awaitable<T> drive(Task<T> task);

  SessionClocks clocks_;
  Exchange exchange_;
  Transport transport_;
  TransportDriver driver_;
  Connection core_;
};

}  // namespace crmcap::imap::detail
