// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/session/connection.hpp"

namespace asio = boost::asio;

namespace crmcap::imap::detail {

LiveConnection::LiveConnection(const asio::any_io_executor& ex, const AccountOptions& options)
    : transport_(ex, options.transport),
      driver_(ex, transport_),
      core_(options, exchange_, clocks_) {}

template <class T>
Awaitable<T> LiveConnection::drive(Task<T> task) {
  task.start(exchange_.trampoline);
  while (!task.done()) {
    exchange_.io = co_await driver_.carry_out(exchange_.action);
    exchange_.resume();
  }
  // A read left going (IDLE whose DONE could not be written) ends with the
  // connection.
  if (driver_.reading()) co_await driver_.close();
  co_return task.result();
}

Awaitable<SyncResult<void>> LiveConnection::open() { return drive(core_.open()); }

Awaitable<SyncResult<TaggedStatus>> LiveConnection::run(const Command& command,
                                                        const Handler& on_untagged,
                                                        std::string_view what,
                                                        Malformed malformed) {
  return drive(core_.run(command, on_untagged, what, malformed));
}

Awaitable<SyncResult<void>> LiveConnection::send(const Command& command) {
  return drive(core_.send(command));
}

Awaitable<SyncResult<TaggedStatus>> LiveConnection::finish(const Command& command,
                                                           const Handler& on_untagged,
                                                           std::string_view what,
                                                           Malformed malformed) {
  return drive(core_.finish(command, on_untagged, what, malformed));
}

Awaitable<SyncResult<void>> LiveConnection::send(const std::vector<Command>& commands) {
  return drive(core_.send(commands));
}

Awaitable<SyncResult<void>> LiveConnection::finish(const std::vector<Command>& commands,
                                                   const Handler& on_untagged,
                                                   std::string_view what) {
  return drive(core_.finish(commands, on_untagged, what));
}

Awaitable<SyncResult<void>> LiveConnection::idle(std::chrono::milliseconds timeout,
                                                 const std::function<bool(const Response&)>& wake) {
  return drive(core_.idle(timeout, wake));
}

Awaitable<void> LiveConnection::logout() {
  if (transport_.is_open()) co_await drive(core_.logout());
}

}  // namespace crmcap::imap::detail
