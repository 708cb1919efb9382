// SPDX-License-Identifier: Apache-2.0
// The API as crm-captured serves it: the built daemon, with a mailbox whose
// server refuses connections or on a real Dovecot, asked over its socket
// with the client that crm-capture uses.
#include "daemon/api/client.hpp"
#include "store/store.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/servers/dovecot_fixture.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <thread>

using namespace crmcap;
using namespace std::chrono_literals;

namespace {

// The built crm-captured with the config at `config`, its standard error
// in `log`.
pid_t start_daemon(const std::string& config, const std::string& log) {
  const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    execl(exe.c_str(), exe.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// SIGTERM, then the exit status (SIGKILL after 15 s); nullopt when it had
// to be killed.
std::optional<int> stop_daemon(pid_t pid) {
  kill(pid, SIGTERM);
  int st = 0;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  pid_t done = 0;
  while ((done = waitpid(pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return std::nullopt;
  }
  return st;
}

// GET /v1/events with Last-Event-ID `after`: what the stream sent until
// `text` came or `limit` passed.
std::string read_events(const std::string& socket, std::int64_t after, std::string_view text,
                        std::chrono::milliseconds limit) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, socket.c_str(), sizeof a.sun_path - 1);
  std::string got;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req =
        "GET /v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: " + std::to_string(after) +
        "\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      const auto end = std::chrono::steady_clock::now() + limit;
      while (got.find(text) == std::string::npos && std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  close(fd);
  return got;
}

}  // namespace

TEST(Daemon, ServesItsStateOnTheSocketAndStopsOnSigterm) {
  test::TempDir dir;
  const auto d = dir.path();
  {
    std::ofstream(d / "pass") << "secret\n";
    std::ofstream c(d / "c.toml");
    c << "[store]\npath = \"" << (d / "capture.db").string() << "\"\n"
      << "[api]\nsocket = \"" << (d / "run" / "api.sock").string() << "\"\n"
      << "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
      << "[mailbox.imap]\nurl = \"imap://127.0.0.1:1\"\nallow_insecure = true\n"
      << "username = \"alice\"\npassword_file = \"" << (d / "pass").string() << "\"\n";
  }
  std::filesystem::permissions(d / "pass", std::filesystem::perms::owner_read);
  const pid_t pid = start_daemon((d / "c.toml").string(), (d / "daemon.err").string());
  ASSERT_GE(pid, 0);
  const std::string socket = (d / "run" / "api.sock").string();
  // The first pass fails (nothing listens on port 1); the status says so.
  boost::json::value status;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    auto r = api::call(socket, "GET", "/v1/status", 2000ms);
    if (r && r->status == 200) {
      status = boost::json::parse(r->body);
      const auto& imap = status.at("mailboxes").at(0).at("imap");
      if (imap.at("state").as_string() == "retrying") break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(status.is_object()) << "no status from the daemon";
  const auto& imap = status.at("mailboxes").at(0).at("imap");
  EXPECT_EQ(imap.at("state").as_string(), "retrying");
  EXPECT_NE(std::string(imap.at("reason").as_string()).find("127.0.0.1:1"), std::string::npos);
  EXPECT_FALSE(imap.at("last_pass").at("ok").as_bool());
  EXPECT_EQ(status.at("store").at("schema_version").as_int64(),
            store::Store::latest_schema_version());
  auto page = api::call(socket, "GET", "/v1/activities");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body, R"({"items":[],"next_cursor":null})");
  auto sync = api::call(socket, "POST", "/v1/sync");
  ASSERT_TRUE(sync);
  EXPECT_EQ(sync->status, 202);

  const auto st = stop_daemon(pid);
  ASSERT_TRUE(st) << "the daemon did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st)) << *st;
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the socket file was left behind";
  auto gone = api::call(socket, "GET", "/v1/status", 1000ms);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().unreachable) << gone.error().message;
}

// The issue's acceptance test: mail from an address no contact has is
// captured from a real Dovecot and skipped as unmatched; a contact with that
// address PUT over the API re-links it in place, with a reason that says so,
// and the change comes on /v1/events.
TEST(Daemon, ContactPutOverTheApiRelinksEarlierUnmatchedMail) {
  if (!test::DovecotServer::available()) GTEST_SKIP() << "dovecot is not installed";
  test::DovecotServer dovecot;
  test::TempDir dir;
  const auto d = dir.path();
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::tm tm{};
  const std::time_t yesterday = now - 86400;
  gmtime_r(&yesterday, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  dovecot.deliver_doveadm("INBOX", std::string("From: Ann Smith <Ann@Newco.example>\r\n"
                                               "To: alice@example.com\r\n"
                                               "Subject: pricing\r\n"
                                               "Message-ID: <pricing-1@newco.example>\r\n"
                                               "Date: ") +
                                       date + "\r\n\r\nWhat would 50 seats cost?\r\n");
  {
    std::ofstream(d / "pass") << dovecot.password() << "\n";
    std::ofstream c(d / "c.toml");
    c << "[store]\npath = \"" << (d / "capture.db").string() << "\"\n"
      << "[api]\nsocket = \"" << (d / "run" / "api.sock").string() << "\"\n"
      << "[identity]\ninternal_domains = [\"example.com\"]\n"
      << "[[mailbox]]\nname = \"alice\"\nowner = [\"alice@example.com\"]\n"
      << "[mailbox.imap]\nurl = \"imap://127.0.0.1:" << dovecot.imap_port()
      << "\"\nallow_insecure = true\nfolders = [\"INBOX\"]\n"
      << "username = \"" << dovecot.user() << "\"\npassword_file = \"" << (d / "pass").string()
      << "\"\n";
  }
  std::filesystem::permissions(d / "pass", std::filesystem::perms::owner_read);
  const pid_t pid = start_daemon((d / "c.toml").string(), (d / "daemon.err").string());
  ASSERT_GE(pid, 0);
  const std::string socket = (d / "run" / "api.sock").string();

  // Captured and skipped: no participant is known.
  boost::json::value decision;
  for (const auto until = std::chrono::steady_clock::now() + 30s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(100ms)) {
    auto r = api::call(socket, "GET", "/v1/decisions", 2000ms);
    if (!r || r->status != 200) continue;
    const auto page = boost::json::parse(r->body);
    if (!page.at("items").as_array().empty()) {
      decision = page.at("items").at(0);
      break;
    }
  }
  ASSERT_TRUE(decision.is_object()) << test::read_file(d / "daemon.err");
  EXPECT_EQ(decision.at("rule").as_string(), "unmatched");
  const std::string id(decision.at("activity_id").as_string());
  auto status = api::call(socket, "GET", "/v1/status");
  ASSERT_TRUE(status);
  const auto seq = boost::json::parse(status->body).at("store").at("last_change_seq").as_int64();

  auto put = api::call(
      socket, "PUT", "/v1/contacts/C-9",
      api::Body{R"({"name": "Ann Smith", "emails": ["ann@newco.example"]})", "application/json"});
  ASSERT_TRUE(put) << put.error().message;
  EXPECT_EQ(put->status, 201) << put->body;
  EXPECT_EQ(put->body, R"({"created":1,"changed":0,"removed":0,"rematched":[")" + id + R"("]})");

  auto one = api::call(socket, "GET", "/v1/activities/" + id);
  ASSERT_TRUE(one);
  const auto a = boost::json::parse(one->body);
  EXPECT_EQ(a.at("status").as_string(), "captured");
  EXPECT_EQ(a.at("contact_ids"), boost::json::parse(R"(["C-9"])"));
  EXPECT_EQ(a.at("reason").as_string(),
            "re-matched: contact C-9 added over the API; from: ann@newco.example = contact C-9; "
            "no opportunity: none found");
  EXPECT_EQ(a.at("sources").as_array().size(), 1u);

  // The event stream from the change before the PUT: the re-linked activity.
  const std::string events = read_events(socket, seq, "re-matched", 5s);
  EXPECT_NE(
      events.find("id: " + std::to_string(seq + 1) + "\nevent: activity\ndata: {\"id\":\"" + id),
      std::string::npos)
      << events;

  const auto st = stop_daemon(pid);
  ASSERT_TRUE(st) << "the daemon did not stop on SIGTERM";
}
