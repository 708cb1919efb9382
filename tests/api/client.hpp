// SPDX-License-Identifier: Apache-2.0
// For the API tests: a blocking client connection to the API's Unix socket
// that sends raw HTTP and reads with deadlines (for event streams, which
// api::call cannot read), and the events of a Server-Sent Events stream.
// POSIX only; no Asio, no GoogleTest.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::test {

// A client connection, blocking, with a deadline on every read.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  bool connected() const { return connected_; }

  bool send(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads what arrives within `wait`; false at end of stream (or an error).
  bool read_some(std::string& into, std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;  // nothing yet
    char buf[65536];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  // Reads until the server closes, or `limit` passes; whether it closed.
  bool read_to_end(std::string& into, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (!read_some(into, std::chrono::milliseconds(50))) return true;
    }
    return false;
  }
  // Reads until `text` has come (true) or `limit` passes.
  bool read_until(std::string& into, std::string_view text, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (into.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= end) return false;
      if (!read_some(into, std::chrono::milliseconds(50)))
        return into.find(text) != std::string::npos;
    }
    return true;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Server-Sent Events out of a stream's text: (id, data) of each complete event.
inline std::vector<std::pair<std::int64_t, std::string>> events_in(const std::string& text) {
  std::vector<std::pair<std::int64_t, std::string>> out;
  std::size_t pos = text.find("\r\n\r\n");
  pos = pos == std::string::npos ? 0 : pos + 4;
  for (;;) {
    const auto end = text.find("\n\n", pos);
    if (end == std::string::npos) break;
    const std::string block = text.substr(pos, end - pos);
    pos = end + 2;
    std::int64_t id = -1;
    std::string data;
    std::size_t lp = 0;
    while (lp <= block.size()) {
      auto eol = block.find('\n', lp);
      if (eol == std::string::npos) eol = block.size();
      const std::string line = block.substr(lp, eol - lp);
      if (line.rfind("id: ", 0) == 0) id = std::stoll(line.substr(4));
      if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      lp = eol + 1;
    }
    if (id >= 0) out.emplace_back(id, data);
  }
  return out;
}

}  // namespace crmcap::test
