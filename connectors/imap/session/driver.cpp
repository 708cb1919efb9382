// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/session/driver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;

namespace crmcap::imap::detail {

namespace {

Io outcome(TransportResult<void>&& r) {
  Io io;
  if (!r) io.error = std::move(r).error();
  return io;
}

Io outcome(TransportResult<std::size_t>&& r) {
  Io io;
  if (r) {
    io.bytes = *r;
  } else {
    io.error = std::move(r).error();
  }
  return io;
}

}  // namespace

// A read that runs on its own: it ends by setting `result` and cancelling
// `ended`, which whoever waits for it waits on (a timer that never expires
// by itself, or at the wait's wake_at).
struct TransportDriver::PendingRead {
  explicit PendingRead(const asio::any_io_executor& ex)
      : ended(ex, asio::steady_timer::time_point::max()) {}
  std::optional<TransportResult<std::size_t>> result;
  asio::steady_timer ended;
};

TransportDriver::TransportDriver(const asio::any_io_executor& executor, Transport& transport)
    : executor_(executor), transport_(transport) {}

TransportDriver::~TransportDriver() = default;

Awaitable<Io> TransportDriver::carry_out(const Action& a) {
  switch (a.kind) {
    case Action::Kind::connect:
      co_return outcome(co_await transport_.async_connect());
    case Action::Kind::write:
      co_return outcome(co_await transport_.async_write(a.bytes));
    case Action::Kind::read:
      co_return co_await read(a);
    case Action::Kind::start_tls:
      co_return outcome(co_await transport_.async_start_tls());
    case Action::Kind::close:
      co_await transport_.async_close();
      co_return Io{};
    default:
      break;
  }
  co_return Io{};  // not a transport action: nothing to do
}

Awaitable<Io> TransportDriver::read(const Action& a) {
  if (!read_ && !a.wake_at) {
    co_return outcome(co_await transport_.async_read_some(a.into, a.timeout));
  }
  if (!read_) {
    auto r = std::make_shared<PendingRead>(executor_);
    read_ = r;
    asio::co_spawn(
        executor_,
        [r, t = &transport_, into = a.into, timeout = a.timeout]() -> Awaitable<void> {
          try {
            r->result = co_await t->async_read_some(into, timeout);
          } catch (const std::exception& e) {
            // std::bad_alloc only (see transport.hpp): the read failed.
            r->result = TransportError{make_error_code(TransportErrc::read_failed), {}, e.what()};
          }
          r->ended.cancel();
        },
        asio::detached);
  }
  const std::shared_ptr<PendingRead> r = read_;
  while (!r->result) {
    r->ended.expires_at(a.wake_at.value_or(asio::steady_timer::time_point::max()));
    auto [ec] = co_await r->ended.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!ec && !r->result) {
      Io io;
      io.woken = true;
      co_return io;
    }
  }
  read_.reset();
  co_return outcome(std::move(*r->result));
}

Awaitable<void> TransportDriver::close() {
  transport_.close();
  if (const std::shared_ptr<PendingRead> r = read_) {
    while (!r->result) {
      r->ended.expires_at(asio::steady_timer::time_point::max());
      (void)co_await r->ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    read_.reset();
  }
}

}  // namespace crmcap::imap::detail
