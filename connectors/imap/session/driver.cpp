// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/session/driver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;

namespace crmcap::imap::detail {

// A read that runs on its own: it ends by setting `result` and cancelling
// `ended`, which whoever waits for it waits on (a timer that never expires
// by itself, or at the wait's wake_at).
struct WakingReads::PendingRead {
  explicit PendingRead(const asio::any_io_executor& ex)
      : ended(ex, asio::steady_timer::time_point::max()) {}
  std::optional<TransportResult<std::size_t>> result;
  asio::steady_timer ended;
};

WakingReads::WakingReads(const asio::any_io_executor& executor, Transport& transport)
    : executor_(executor), transport_(transport) {}

WakingReads::~WakingReads() = default;

Awaitable<Io> WakingReads::read(const Action& a, const std::function<bool()>& cut) {
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
    if (a.wake_at && cut && cut()) {
      Io io;
      io.woken = true;
      co_return io;
    }
    r->ended.expires_at(a.wake_at.value_or(asio::steady_timer::time_point::max()));
    auto [ec] = co_await r->ended.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!ec && !r->result) {
      Io io;
      io.woken = true;
      co_return io;
    }
  }
  read_.reset();
  Io io;
  if (*r->result) {
    io.bytes = **r->result;
  } else {
    io.error = std::move(*r->result).error();
  }
  co_return io;
}

void WakingReads::interrupt() {
  if (read_) read_->ended.cancel();
}

Awaitable<void> WakingReads::close() {
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
