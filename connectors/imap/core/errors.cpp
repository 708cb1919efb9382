// SPDX-License-Identifier: Apache-2.0
// The sync's errors and retry policy (imap.hpp): its error category, the
// SyncError of a transport failure or an escaped exception, and the backoff.
#include "connectors/imap/core/connection.hpp"

#include <algorithm>
#include <stdexcept>

namespace crmcap::imap {

namespace {

class SyncCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "crmcap.imap.sync"; }
  std::string message(int ev) const override {
    switch (static_cast<SyncErrc>(ev)) {
      case SyncErrc::connection:
        return "connection failed";
      case SyncErrc::protocol:
        return "protocol error";
      case SyncErrc::auth_failed:
        return "authentication failed";
      case SyncErrc::no_tls:
        return "server offers no STARTTLS";
      case SyncErrc::server_refused:
        return "server refused a command";
      case SyncErrc::server_busy:
        return "server busy";
      case SyncErrc::credential:
        return "credential unreadable";
      case SyncErrc::sink:
        return "store failed";
      case SyncErrc::cancelled:
        return "cancelled";
      case SyncErrc::internal:
        return "internal error";
    }
    return "unknown sync error";
  }
};

}  // namespace

const std::error_category& sync_category() noexcept {
  static const SyncCategory c;
  return c;
}
std::error_code make_error_code(SyncErrc e) noexcept {
  return {static_cast<int>(e), sync_category()};
}

void throw_exception_from_error(const SyncError& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

SyncError failure_of(std::exception_ptr e) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(std::move(e));
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  return detail::make_sync_error(SyncErrc::internal, "the sync failed inside: " + what,
                                 RetryClass::retry_later);
}

std::chrono::milliseconds backoff_delay(unsigned attempt, std::uint64_t random_bits) {
  using namespace std::chrono;
  const unsigned shift = std::min(attempt == 0 ? 0u : attempt - 1, 9u);
  const milliseconds base = std::min<milliseconds>(milliseconds(1000LL << shift), minutes(5));
  // Jitter of up to +-20% so that many mailboxes do not reconnect in step.
  const double unit = static_cast<double>(random_bits % 10001) / 10000.0;  // [0, 1]
  const double factor = 0.8 + 0.4 * unit;
  return milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * factor));
}

namespace detail {

SyncError make_sync_error(SyncErrc code, std::string message, RetryClass retry) {
  return SyncError{make_error_code(code), std::move(message), retry};
}

SyncError from_transport(const TransportError& e) {
  const auto c = static_cast<TransportErrc>(e.code.value());
  const bool user =
      c == TransportErrc::certificate_rejected || c == TransportErrc::tls_setup_failed;
  return make_sync_error(SyncErrc::connection, e.message,
                         user ? RetryClass::needs_user : RetryClass::retry_later);
}

}  // namespace detail
}  // namespace crmcap::imap
