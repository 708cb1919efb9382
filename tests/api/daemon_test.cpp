// SPDX-License-Identifier: Apache-2.0
// The API as crm-captured serves it: the built daemon with a mailbox whose
// server refuses connections, asked over its socket with the client that
// crm-capture uses.
#include "daemon/api/client.hpp"
#include "store/store.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

using namespace crmcap;
using namespace std::chrono_literals;

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
  const std::string exe = std::string(CRMCAP_BINARY_DIR) + "/daemon/crm-captured";
  const std::string config = (d / "c.toml").string();
  const std::string log = (d / "daemon.err").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    execl(exe.c_str(), exe.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
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

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int st = 0;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  pid_t done = 0;
  while ((done = waitpid(pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  EXPECT_NE(done, 0) << "the daemon did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(st)) << st;
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the socket file was left behind";
  auto gone = api::call(socket, "GET", "/v1/status", 1000ms);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().unreachable) << gone.error().message;
}
