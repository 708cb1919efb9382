// SPDX-License-Identifier: Apache-2.0
#include "daemon/service/notify.hpp"

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace crmcap::service {

bool notify_to(const std::string& socket, std::string_view state) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() < 2 || (socket[0] != '/' && socket[0] != '@') ||
      socket.size() >= sizeof addr.sun_path) {
    errno = EINVAL;
    return false;
  }
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size());
  if (socket[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: the length, not a NUL, ends the name
  } else {
    ++len;  // the path's terminating NUL
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  errno = err;
  return n == static_cast<ssize_t>(state.size());
}

bool notify(std::string_view state) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || socket[0] == '\0') return true;
  return notify_to(socket, state);
}

std::chrono::microseconds watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return {};
  if (const char* pid = std::getenv("WATCHDOG_PID")) {
    if (std::strtoll(pid, nullptr, 10) != static_cast<long long>(::getpid())) return {};
  }
  char* end = nullptr;
  const long long v = std::strtoll(usec, &end, 10);
  if (end == usec || *end != '\0' || v <= 0) return {};
  return std::chrono::microseconds(v);
}

std::vector<ListenFd> listen_fds() {
  constexpr int first = 3;  // SD_LISTEN_FDS_START
  std::vector<ListenFd> out;
  const char* pid = std::getenv("LISTEN_PID");
  const char* count = std::getenv("LISTEN_FDS");
  const char* names = std::getenv("LISTEN_FDNAMES");
  const bool ours = pid != nullptr && count != nullptr &&
                    std::strtoll(pid, nullptr, 10) == static_cast<long long>(::getpid());
  const long n = ours ? std::strtol(count, nullptr, 10) : 0;
  std::istringstream named(names ? names : "");
  for (long i = 0; i < n && i < 1024; ++i) {
    ListenFd l{first + static_cast<int>(i), {}};
    if (!std::getline(named, l.name, ':') || l.name.empty()) l.name = "unknown";
    ::fcntl(l.fd, F_SETFD, FD_CLOEXEC);
    out.push_back(std::move(l));
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return out;
}

Watchdog::Watchdog(boost::asio::any_io_executor loop) {
  const auto interval = watchdog_interval();
  if (interval.count() == 0) return;
  thread_ = std::thread([this, loop, every = interval / 2] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!changed_.wait_for(lock, every, [this] { return stop_; })) {
      boost::asio::post(loop, [] { notify("WATCHDOG=1"); });
    }
  });
}

Watchdog::~Watchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace crmcap::service
