// SPDX-License-Identifier: Apache-2.0
// The systemd notification protocol (sd_notify(3)), without libsystemd: a
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET, which systemd sets
// for a Type=notify service. READY=1 says the daemon runs; WATCHDOG=1, sent
// at half of $WATCHDOG_USEC, says its event loop still turns (WatchdogSec=).
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace crmcap::service {

// Sends `state` ("READY=1", "STATUS=...", lines joined by '\n') in one
// datagram to `socket`: an absolute path, or "@name" for an abstract socket.
// False (errno set) when it could not be sent.
bool notify_to(const std::string& socket, std::string_view state);

// notify_to($NOTIFY_SOCKET, state); true and nothing sent when the variable
// is unset (not run by systemd, or not Type=notify).
bool notify(std::string_view state);

// $WATCHDOG_USEC when set and meant for this process ($WATCHDOG_PID unset or
// ours); zero otherwise.
std::chrono::microseconds watchdog_interval();

// While alive, and when watchdog_interval() is not zero: every half interval,
// posts a WATCHDOG=1 notification to `loop`, so it is sent only when the
// loop runs its handlers (a loop stuck in a handler is not reported alive).
// The executor's context must outlive this object; the thread is joined by
// the destructor.
class Watchdog {
 public:
  explicit Watchdog(boost::asio::any_io_executor loop);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  std::thread thread_;
};

// Socket activation (sd_listen_fds(3), without libsystemd): the sockets a
// .socket unit passed, fds 3 onwards, when $LISTEN_PID is this process and
// $LISTEN_FDS counts them; each with its name from $LISTEN_FDNAMES
// (FileDescriptorName=, "unknown" when unnamed). The three variables are
// unset (so that no child takes the sockets for its own) and each fd is
// marked close-on-exec. Empty when not socket-activated.
struct ListenFd {
  int fd = -1;
  std::string name;
};
std::vector<ListenFd> listen_fds();

}  // namespace crmcap::service
