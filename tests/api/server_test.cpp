// SPDX-License-Identifier: Apache-2.0
// The API server on a real Unix socket in a temporary directory, over a real
// SQLite file written by a second connection as the daemon's capture thread
// writes it. Every JSON body received (and every event's data) is checked
// against daemon/api/openapi.yaml by tests/api/validate_openapi.py when the
// test ends.
#include "daemon/api/api.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "store/store.hpp"
#include "tests/api/client.hpp"
#include "tests/daemon/test_support.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace crmcap;
using namespace std::chrono_literals;
using test::Client;
using test::events_in;

namespace {

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercase
  std::string body;
  json::value json() const { return json::parse(body); }
};

Response parse_response(const std::string& raw) {
  Response r;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return r;
  std::sscanf(raw.c_str(), "HTTP/1.1 %d", &r.status);
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const auto eol = raw.find("\r\n", pos);
    const auto line = raw.substr(pos, eol - pos);
    const auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(colon + 2);
    pos = eol + 2;
  }
  r.body = raw.substr(head_end + 4);
  return r;
}

store::Activity activity(int i, const std::string& when, const std::string& contact = "C-1",
                         store::DecisionStatus status = store::DecisionStatus::captured) {
  store::Activity a;
  a.source_key = "mid:" + std::to_string(i) + "@x";
  a.id = "act-" + std::to_string(i);
  a.occurred_at = when;
  a.subject = "Subject " + std::to_string(i);
  a.snippet = "snippet";
  a.message_id = "<" + std::to_string(i) + "@x>";
  a.thread_key = "t" + std::to_string(i);
  a.status = status;
  if (status == store::DecisionStatus::captured) {
    a.reason = "jane@acme.com is contact " + contact;
    a.opportunity_id = contact == "C-1" ? "O-1" : "";
  } else {
    a.rule = status == store::DecisionStatus::skipped ? "bulk" : "parse";
    a.reason = "List-Id: a mailing list";
  }
  a.participants.push_back({"jane@acme.com", "Jane", "from", contact, "CO-1"});
  a.participants.push_back({"alice@example.com", "Alice", "to", "", ""});
  return a;
}

std::string time_of(int day, int minute = 0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2026-%02d-%02dT%02d:%02d:00Z", 1 + day / 28, 1 + day % 28,
                (minute / 60) % 24, minute % 60);
  return buf;
}

class ApiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    chmod(dir_.path().c_str(), 0711);  // a peer of another uid may reach the socket
    db_path_ = (dir_.path() / "capture.db").string();
    socket_ = (dir_.path() / "run" / "api.sock").string();
    store::StoreOptions o;
    o.on_change = board_.change_hook();
    writer_ = store::Store::open(db_path_, o).value();
    board_.add_mailbox("alice", true, false);
    board_.add_mailbox("both", true, true);
    options_.socket_path = socket_;
    options_.store_path = db_path_;
    options_.version = "test";
    options_.request_timeout = 2000ms;
    options_.write_timeout = 2000ms;
  }
  void TearDown() override {
    stop();
    if (recorded_.empty()) return;
    const fs::path file = dir_.path() / "recorded.jsonl";
    {
      std::ofstream out(file);
      for (const auto& r : recorded_) out << json::serialize(r) << "\n";
    }
    const std::string cmd = std::string(CRMCAP_PYTHON) + " " + CRMCAP_SOURCE_DIR +
                            "/tests/api/validate_openapi.py " + CRMCAP_SOURCE_DIR +
                            "/daemon/api/openapi.yaml " + file.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "responses against openapi.yaml:\n"
                                                       << out;
  }

  void start() {
    auto s = api::Server::start(io_, options_, board_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    io_.restart();
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (!server_) return;
    std::promise<void> stopped;
    boost::asio::post(io_, [&] {
      server_->stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    thread_.join();
    server_.reset();
  }

  void commit(const std::vector<store::Activity>& v, const std::string& mailbox = "alice") {
    store::Batch b;
    for (const auto& a : v) {
      b.items.push_back({a, store::SourceRef{mailbox, "INBOX", 7, ++uid_, ""}});
    }
    auto r = writer_->commit(b);
    ASSERT_TRUE(r) << r.error().message;
  }

  // A request with Connection: close, its whole response, recorded for the
  // schema check when it is JSON.
  Response request(const std::string& method, const std::string& target,
                   const std::string& extra_headers = "", const std::string& body = "") {
    Client c(socket_);
    EXPECT_TRUE(c.connected());
    std::string req = method + " " + target +
                      " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra_headers;
    if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    c.send(req);
    std::string raw;
    EXPECT_TRUE(c.read_to_end(raw)) << "no end of response to " << target;
    Response r = parse_response(raw);
    record(method, target, r);
    return r;
  }
  Response get(const std::string& target, const std::string& extra = "") {
    return request("GET", target, extra);
  }
  void record(const std::string& method, const std::string& target, const Response& r) {
    if (r.headers.count("content-type") && r.headers.at("content-type") == "application/json") {
      recorded_.push_back(json::object{{"method", method},
                                       {"path", target},
                                       {"status", r.status},
                                       {"body", json::parse(r.body)}});
    }
  }
  void record_event(const std::string& data) {
    recorded_.push_back(json::object{{"schema", "Activity"}, {"body", json::parse(data)}});
  }

  // Every page of `target` (which has a query), following next_cursor;
  // `between` runs after each page.
  std::vector<std::string> all_ids(const std::string& target,
                                   const std::function<void(int)>& between = {}) {
    std::vector<std::string> out;
    std::string cursor;
    for (int page = 0; page < 1000; ++page) {
      const auto r = get(target + (cursor.empty() ? "" : "&cursor=" + cursor));
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) break;
      const auto v = r.json();
      for (const auto& item : v.at("items").as_array()) {
        out.emplace_back(item.at("id").as_string());
      }
      if (v.at("next_cursor").is_null()) break;
      cursor = v.at("next_cursor").as_string();
      if (between) between(page);
    }
    return out;
  }

  test::TempDir dir_;
  std::string db_path_, socket_;
  api::Board board_;
  api::Options options_;
  std::unique_ptr<store::Store> writer_;
  boost::asio::io_context io_;
  std::thread thread_;
  std::unique_ptr<api::Server> server_;
  std::vector<json::value> recorded_;
  std::int64_t uid_ = 0;
};

}  // namespace

TEST_F(ApiServer, SocketHasTheModeInAnOwnedDirectory) {
  options_.mode = 0660;
  start();
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_EQ(stat((dir_.path() / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_mode & 0022, 0u);
  // A second server on the same socket is refused while the first listens.
  boost::asio::io_context other;
  auto second = api::Server::start(other, options_, board_);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another process is listening"), std::string::npos)
      << second.error().message;
  stop();
  EXPECT_FALSE(fs::exists(socket_));
}

TEST_F(ApiServer, StaleSocketIsReplacedAndAForeignDirectoryRefused) {
  start();
  // A socket file nobody listens on any more (a daemon killed with -9).
  stop();
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    close(fd);
  }
  start();
  EXPECT_EQ(get("/v1/status").status, 200);
  stop();
  // A directory others may write to is refused.
  const fs::path open_dir = dir_.path() / "open";
  fs::create_directory(open_dir);
  chmod(open_dir.c_str(), 0777);
  options_.socket_path = (open_dir / "api.sock").string();
  auto s = api::Server::start(io_, options_, board_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("writable by others"), std::string::npos) << s.error().message;
}

TEST_F(ApiServer, StatusTellsVersionStoreAndMailboxes) {
  commit({activity(1, time_of(1))});
  board_.update("alice", api::Side::imap, [](api::SourceStatus& s) {
    s.state = api::SourceState::needs_user;
    s.reason = "alice: authentication failed";
    s.last_pass_at = "2026-12-01T10:00:00Z";
    s.passes = 1;
    s.failed_passes = 1;
  });
  start();
  const auto r = get("/v1/status");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto v = r.json();
  EXPECT_EQ(v.at("version").as_string(), "test");
  EXPECT_GT(v.at("store").at("size_bytes").as_int64(), 0);
  EXPECT_EQ(v.at("store").at("last_change_seq").as_int64(), 1);
  const auto& boxes = v.at("mailboxes").as_array();
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0].at("imap").at("state").as_string(), "needs_user");
  EXPECT_EQ(boxes[0].at("imap").at("reason").as_string(), "alice: authentication failed");
  EXPECT_TRUE(boxes[0].at("caldav").is_null());
  EXPECT_EQ(boxes[1].at("caldav").at("state").as_string(), "starting");
}

TEST_F(ApiServer, ActivitiesFiltersAndOneActivity) {
  commit({activity(1, time_of(1), "C-1"), activity(2, time_of(2), "C-2"),
          activity(3, time_of(3), "C-1", store::DecisionStatus::skipped)});
  commit({activity(4, time_of(4), "C-2")}, "bob");
  start();
  auto ids = [&](const std::string& q) {
    std::vector<std::string> out;
    const auto r = get("/v1/activities" + q);
    EXPECT_EQ(r.status, 200) << q << ": " << r.body;
    if (r.status != 200) return out;
    const auto v = r.json();
    for (const auto& i : v.at("items").as_array()) out.emplace_back(i.at("id").as_string());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids(""), (V{"act-4", "act-2", "act-1"}));  // newest first, captured only
  EXPECT_EQ(ids("?contact=C-1"), (V{"act-1"}));
  EXPECT_EQ(ids("?company=CO-1"), (V{"act-4", "act-2", "act-1"}));
  EXPECT_EQ(ids("?opportunity=O-1"), (V{"act-1"}));
  EXPECT_EQ(ids("?mailbox=bob"), (V{"act-4"}));
  EXPECT_EQ(ids("?kind=meeting"), V{});
  EXPECT_EQ(ids("?kind=email&since=" + time_of(2) + "&until=" + time_of(4)), (V{"act-2"}));
  EXPECT_EQ(ids("?status=skipped"), (V{"act-3"}));
  EXPECT_EQ(ids("?limit=1"), (V{"act-4"}));

  const auto one = get("/v1/activities/act-1");
  ASSERT_EQ(one.status, 200);
  const auto v = one.json();
  EXPECT_EQ(v.at("reason").as_string(), "jane@acme.com is contact C-1");
  ASSERT_EQ(v.at("sources").as_array().size(), 1u);
  EXPECT_EQ(v.at("sources").at(0).at("mailbox").as_string(), "alice");

  const auto dec = get("/v1/decisions");
  ASSERT_EQ(dec.status, 200);
  const auto decided = dec.json();
  const auto& items = decided.at("items").as_array();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].at("activity_id").as_string(), "act-3");
  EXPECT_EQ(items[0].at("rule").as_string(), "bulk");
  EXPECT_EQ(get("/v1/decisions?status=captured&mailbox=bob").json().at("items").as_array().size(),
            1u);
}

TEST_F(ApiServer, ErrorsHaveTheirStatusAndNameWhatIsWrong) {
  start();
  auto r = get("/v1/activities/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(get("/v1/nothing").status, 404);
  r = get("/v1/activities?limit=5000");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json().at("error").at("message").as_string().subview().substr(0, 7), "limit: ");
  r = get("/v1/activities?cursor=garbage");
  EXPECT_EQ(r.status, 400);
  r = request("DELETE", "/v1/activities");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET");
  r = request("GET", "/v1/sync");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  // A body that is not JSON.
  r = request("POST", "/v1/sync", "Content-Type: text/plain\r\n", "now please");
  EXPECT_EQ(r.status, 415);
  // A body past the limit.
  r = request("POST", "/v1/sync", "Content-Type: application/json\r\n",
              std::string(options_.body_limit + 1, ' '));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "body_too_large");
  // Headers past the limit; a request line past it.
  r = get("/v1/status", "X-Filler: " + std::string(options_.header_limit, 'x') + "\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "headers_too_large");
  r = get("/v1/activities?contact=" + std::string(options_.header_limit, 'c'));
  EXPECT_EQ(r.status, 413);
  // Not HTTP at all.
  Client c(socket_);
  c.send("HELLO THERE\r\n\r\n");
  std::string raw;
  EXPECT_TRUE(c.read_to_end(raw));
  EXPECT_EQ(parse_response(raw).status, 400);
}

TEST_F(ApiServer, SyncIsAcceptedWhereTheDaemonCanBeAsked) {
  start();
  // No handler: this daemon cannot wake its mailboxes.
  EXPECT_EQ(request("POST", "/v1/sync").status, 501);
  std::vector<std::string> asked;
  board_.set_sync_handler([&](const std::string& m) {
    asked.push_back(m);
    return m.empty() || m == "alice";
  });
  auto r = request("POST", "/v1/sync?mailbox=alice");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.json().at("mailbox").as_string(), "alice");
  EXPECT_EQ(request("POST", "/v1/sync").status, 202);
  EXPECT_EQ(request("POST", "/v1/sync?mailbox=nobody").status, 404);
  EXPECT_EQ(asked, (std::vector<std::string>{"alice", ""}));
}

TEST_F(ApiServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  Client c(socket_);
  for (int i = 0; i < 3; ++i) {
    c.send("GET /v1/activities?limit=3 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string raw;
    ASSERT_TRUE(c.read_until(raw, "\r\n\r\n", 2000ms)) << raw;
    auto r = parse_response(raw);
    const std::size_t length = std::stoul(r.headers["content-length"]);
    const auto t0 = std::chrono::steady_clock::now();
    while (r.body.size() < length && std::chrono::steady_clock::now() - t0 < 2s) {
      ASSERT_TRUE(c.read_some(r.body, 50ms));
    }
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"items":[],"next_cursor":null})");
  }
}

// 100 clients at once, each with a few requests on one connection, beside an
// event stream: every request is answered.
TEST_F(ApiServer, HundredConcurrentClientsAreAllServed) {
  std::vector<store::Activity> v;
  for (int i = 0; i < 200; ++i) v.push_back(activity(i, time_of(i % 20, i % 60)));
  commit(v);
  start();
  Client events(socket_);
  events.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 0\r\n\r\n");
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 100; ++c) {
    clients.emplace_back([&, c] {
      Client conn(socket_);
      if (!conn.connected()) return;
      for (int i = 0; i < 3; ++i) {
        const std::string target =
            i == 0 ? "/v1/status" : "/v1/activities?limit=" + std::to_string(1 + (c + i) % 50);
        conn.send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n" +
                  (i == 2 ? "Connection: close\r\n" : "") + "\r\n");
        std::string raw;
        if (!conn.read_until(raw, "\r\n\r\n", 10000ms)) return;
        auto r = parse_response(raw);
        const std::size_t length = std::stoul(r.headers["content-length"]);
        const auto t0 = std::chrono::steady_clock::now();
        while (r.body.size() < length && std::chrono::steady_clock::now() - t0 < 10s) {
          if (!conn.read_some(r.body, 50ms)) break;
        }
        if (r.status == 200 && r.body.size() == length) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 300);
  std::string raw;
  EXPECT_TRUE(events.read_until(raw, "\"Subject 199\"", 5000ms));
  EXPECT_EQ(events_in(raw).size(), 200u);
}

// Past max_connections, a new connection gets 503 and is closed; the ones
// before it are served.
TEST_F(ApiServer, ConnectionsPastTheLimitGet503) {
  options_.max_connections = 3;
  start();
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(socket_));
    held.back()->send("GET /v1/st");  // incomplete: the connection stays
  }
  std::this_thread::sleep_for(200ms);
  const auto r = get("/v1/status");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "too_many_connections");
  held.clear();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(get("/v1/status").status, 200);
}

// Pages of 50 over 1,000 activities while new ones arrive between pages,
// newer and older than the position: every row that was there is given
// once, no row twice.
TEST_F(ApiServer, PagesNeverRepeatOrSkipWhileActivitiesArrive) {
  std::vector<store::Activity> first;
  for (int i = 0; i < 1000; ++i) first.push_back(activity(i, time_of(i / 20, i % 7)));
  commit(first);
  start();
  int next = 100000;
  const auto ids = all_ids("/v1/activities?limit=50", [&](int page) {
    commit({activity(next++, time_of(300)), activity(next++, time_of(0, page % 7)),
            activity(next++, time_of(page * 2, 3))});
  });
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size()) << "a row came twice";
  for (const auto& a : first) EXPECT_TRUE(unique.count(a.id)) << a.id << " was skipped";
  // Newest first throughout.
  const auto again = all_ids("/v1/activities?limit=1000");
  EXPECT_EQ(again.size(), 1000u + static_cast<std::size_t>(next - 100000));
}

// A client that sends half a request and stops (slowloris) is dropped at
// the request deadline; meanwhile another client is served at once.
TEST_F(ApiServer, SlowClientIsDroppedWhileOthersAreServed) {
  options_.request_timeout = 1500ms;
  start();
  Client slow(socket_);
  ASSERT_TRUE(slow.send("GET /v1/sta"));
  Client idle(socket_);  // connects and sends nothing
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(get("/v1/status").status, 200);
    slow.send("t");  // trickling does not move the deadline
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms) << "others waited for the slow one";
  std::string raw;
  EXPECT_TRUE(slow.read_to_end(raw, 3000ms)) << "the slow client was not dropped";
  EXPECT_TRUE(raw.empty()) << raw;
  EXPECT_TRUE(idle.read_to_end(raw, 3000ms)) << "the idle client was not dropped";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1400ms);
}

// A reader that never reads its event stream is dropped once a write waits
// past the write deadline; the server goes on serving.
TEST_F(ApiServer, EventReaderThatNeverReadsIsDropped) {
  options_.write_timeout = 300ms;
  start();
  Client stuck(socket_);
  stuck.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 0\r\n\r\n");
  // Enough events to fill the socket's buffers many times over.
  std::vector<store::Activity> many;
  for (int i = 0; i < 3000; ++i) {
    auto a = activity(i, time_of(i % 300));
    a.snippet = std::string(2000, 's');
    many.push_back(a);
  }
  commit(many);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 3s) {
    EXPECT_EQ(get("/v1/status").status, 200);
    std::this_thread::sleep_for(100ms);
  }
  // By now the server gave up: reading drains what the kernel held, then ends.
  std::string raw;
  EXPECT_TRUE(stuck.read_to_end(raw, 5000ms)) << "the stuck reader was not dropped";
  EXPECT_LT(events_in(raw).size(), 3000u);
}

TEST_F(ApiServer, EventsStreamNewChangesAndKeepAlives) {
  options_.keepalive_interval = 1000ms;
  commit({activity(1, time_of(1))});  // before the stream: not sent without Last-Event-ID
  start();
  Client c(socket_);
  c.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string raw;
  ASSERT_TRUE(c.read_until(raw, ": keep-alive\n\n", 3000ms)) << raw;
  auto head = parse_response(raw);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/event-stream");
  EXPECT_TRUE(events_in(raw).empty());
  auto changed = activity(1, time_of(1));
  changed.subject = "changed";
  const auto t0 = std::chrono::steady_clock::now();
  commit({activity(2, time_of(2)), changed});
  ASSERT_TRUE(c.read_until(raw, "\"Subject 2\"", 2000ms)) << raw;
  ASSERT_TRUE(c.read_until(raw, "\"changed\"", 2000ms)) << raw;
  // Woken by the commit, not by the next keep-alive.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  const auto ev = events_in(raw);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].first, 2);
  EXPECT_EQ(ev[1].first, 3);
  for (const auto& [id, data] : ev) record_event(data);
  EXPECT_EQ(json::parse(ev[1].second).at("id").as_string(), "act-1");
}

// A client that hangs up on its event stream frees its connection at once,
// not at the next keep-alive.
TEST_F(ApiServer, EventStreamEndsWhenItsClientHangsUp) {
  options_.max_connections = 1;
  start();
  {
    Client c(socket_);
    c.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string raw;
    ASSERT_TRUE(c.read_until(raw, "\r\n\r\n", 2000ms));
  }
  // The keep-alive interval is 15 s; the one connection is free well before.
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::steady_clock::now() - t0 < 3s) {
    status = get("/v1/status").status;
    if (status == 200) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 200);
}

// A client that saw events up to N reconnects with Last-Event-ID: N to a
// restarted server and gets every change after N, from the store.
TEST_F(ApiServer, EventsResumeWithLastEventIdAcrossARestart) {
  start();
  commit({activity(1, time_of(1)), activity(2, time_of(2))});
  std::int64_t last = 0;
  {
    Client c(socket_);
    c.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 0\r\n\r\n");
    std::string raw;
    ASSERT_TRUE(c.read_until(raw, "\"Subject 2\"", 2000ms)) << raw;
    const auto ev = events_in(raw);
    ASSERT_EQ(ev.size(), 2u);
    for (const auto& [id, data] : ev) record_event(data);
    last = ev.back().first;
  }
  stop();
  // While no server runs, the daemon captures more.
  commit({activity(3, time_of(3))});
  auto changed = activity(1, time_of(1));
  changed.subject = "changed while away";
  commit({changed});
  start();
  Client c(socket_);
  c.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: " + std::to_string(last) +
         "\r\n\r\n");
  std::string raw;
  ASSERT_TRUE(c.read_until(raw, "changed while away", 2000ms)) << raw;
  const auto ev = events_in(raw);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(json::parse(ev[0].second).at("id").as_string(), "act-3");
  EXPECT_EQ(json::parse(ev[1].second).at("id").as_string(), "act-1");
  EXPECT_GT(ev[0].first, last);
  for (const auto& [id, data] : ev) record_event(data);
  // A malformed Last-Event-ID is refused, naming it.
  const auto bad = get("/v1/events", "Last-Event-ID: yesterday\r\n");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("Last-Event-ID"), std::string::npos);
}

// A peer of another uid, outside allow_uids and the socket's group, gets 403
// and is closed, though the file's mode lets it connect. Needs root (to run
// the client as nobody); the check itself is tested in query_test.cpp.
TEST_F(ApiServer, PeerOfAnotherUidIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  options_.mode = 0666;
  start();
  // curl as nobody (setpriv, util-linux): what it got, and the status last.
  auto as_nobody = [&] {
    const std::string cmd =
        "setpriv --reuid=65534 --regid=65534 --clear-groups curl -s --max-time 5 "
        "-w '\\n%{http_code}' --unix-socket " +
        socket_ + " http://localhost/v1/status 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    const auto nl = out.rfind('\n');
    Response r;
    if (nl == std::string::npos) {
      r.body = cmd + ": " + out;
      return r;
    }
    r.status = std::atoi(out.c_str() + nl + 1);
    r.body = out.substr(0, nl);
    r.headers["content-type"] = "application/json";
    return r;
  };
  auto r = as_nobody();
  ASSERT_EQ(r.status, 403) << r.body;
  record("GET", "/v1/status", r);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "forbidden");
  EXPECT_NE(r.body.find("uid 65534"), std::string::npos) << r.body;
  // Let in by allow_uids.
  stop();
  options_.allow_uids = {65534};
  start();
  r = as_nobody();
  EXPECT_EQ(r.status, 200) << r.body;
  record("GET", "/v1/status", r);
}

namespace {}  // namespace

// crm-capture asks a running daemon when no --store is given, and prints
// what it prints offline from the store itself.
TEST_F(ApiServer, CommandLineToolIsAClientOfTheDaemon) {
  std::vector<store::Activity> v;
  for (int i = 0; i < 2500; ++i) v.push_back(activity(i, time_of(i % 50, i % 60)));
  commit(v);
  start();
  const std::string remote = "--socket " + socket_ + " ";
  const std::string offline = "--store " + db_path_ + " ";
  for (const std::string args : {"activities --json", "activities --json --contact C-1 --limit 7",
                                 "activities --since 2026-01-20 --json", "activities"}) {
    const auto a = test::run("crm-capture", remote + args);
    const auto b = test::run("crm-capture", offline + args);
    EXPECT_EQ(a.status, 0) << a.out;
    EXPECT_EQ(a.out, b.out) << args;
  }
  const auto st = test::run("crm-capture", remote + "status --json");
  ASSERT_EQ(st.status, 0) << st.out;
  Response r;
  r.status = 200;
  r.body = st.out;
  r.headers["content-type"] = "application/json";
  record("GET", "/v1/status", r);
  const auto text = test::run("crm-capture", remote + "status");
  EXPECT_NE(text.out.find("alice imap: starting"), std::string::npos) << text.out;
  stop();
  // No daemon: status says so; activities reads the store.
  const auto none = test::run("crm-capture", remote + "status");
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.out.find("no answer from a daemon"), std::string::npos) << none.out;
}

// ---- the directory's write side ------------------------------------------------

namespace {

// An unmatched message from ann@newco.com, `days_ago` days back.
store::Activity unmatched(int i, int days_ago) {
  store::Activity a;
  a.source_key = "mid:" + std::to_string(i) + "@newco.com";
  a.id = "dir-" + std::to_string(i);
  a.occurred_at = capture::iso_utc(std::time(nullptr) - days_ago * 86400);
  a.subject = "hello " + std::to_string(i);
  a.message_id = std::to_string(i) + "@newco.com";
  a.thread_key = a.message_id;
  a.status = store::DecisionStatus::skipped;
  a.rule = "unmatched";
  a.reason = "skipped (unmatched): no participant is a known contact or company";
  a.participants.push_back({"ann@newco.com", "Ann", "from", "", ""});
  a.participants.push_back({"alice@example.com", "Alice", "to", "", ""});
  return a;
}

const std::string k_json_type = "Content-Type: application/json\r\n";
const std::string k_lines_type = "Content-Type: application/x-ndjson\r\n";

}  // namespace

class ApiDirectory : public ApiServer {
 protected:
  void SetUp() override {
    ApiServer::SetUp();
    capture::Settings s;
    s.owner_addresses = {"alice@example.com"};
    s.internal_domains = {"example.com"};
    editor_ = std::make_unique<capture::DirectoryEditor>(
        *writer_, std::map<std::string, capture::Settings>{{"alice", s}}, s,
        capture::FreeMailDomains::from_text("gmail.com\n"));
    // As the daemon runs it: one writer at a time (here, the server's thread
    // of writes; the test writes only while no request is under way).
    board_.set_directory_writer([this](const std::vector<store::DirectoryEdit>& edits) {
      return editor_->apply(edits, "over the API", std::time(nullptr));
    });
  }
  void TearDown() override {
    ApiServer::TearDown();
    board_.set_directory_writer({});
  }
  store::Activity stored(const std::string& id) { return writer_->get(id).value().value(); }
  std::string message_of(const Response& r) {
    return std::string(r.json().at("error").at("message").as_string());
  }
  std::string code_of(const Response& r) {
    return std::string(r.json().at("error").at("code").as_string());
  }

  std::unique_ptr<capture::DirectoryEditor> editor_;
};

TEST_F(ApiDirectory, PutAndDeleteRowsReMatchingTheMailTheyChange) {
  commit({unmatched(1, 2), unmatched(2, 200)});
  start();
  auto r = request("PUT", "/v1/companies/CO-9", k_json_type,
                   R"({"name": "Newco", "domains": ["Newco.com"]})");
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.body, R"({"created":1,"changed":0,"removed":0,"rematched":["dir-1"]})");
  EXPECT_EQ(stored("dir-1").company_ids, std::vector<std::string>{"CO-9"});
  // Mail older than the backfill window stays as it was.
  EXPECT_EQ(stored("dir-2").status, store::DecisionStatus::skipped);

  r = request("PUT", "/v1/contacts/C-9", k_json_type,
              R"({"id": "C-9", "name": "Ann", "emails": ["ann@newco.com"], "company_id": "CO-9",
                  "title": null})");
  EXPECT_EQ(r.status, 201) << r.body;
  auto a = stored("dir-1");
  EXPECT_EQ(a.status, store::DecisionStatus::captured);
  EXPECT_EQ(a.contact_ids, std::vector<std::string>{"C-9"});
  EXPECT_EQ(a.reason.rfind("re-matched: contact C-9 added over the API; from: ann@newco.com = "
                           "contact C-9",
                           0),
            0u)
      << a.reason;
  r = request("PUT", "/v1/opportunities/O-9", k_json_type,
              R"({"name": "Pilot", "status": "open", "company_id": "CO-9", "amount": 1200.5,
                  "contact_ids": ["C-9"], "close_date": "2026-12-31"})");
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(stored("dir-1").opportunity_id, "O-9");
  // Replaced as a whole: the same row again is 200 and changes no decision.
  r = request("PUT", "/v1/opportunities/O-9", k_json_type,
              R"({"name": "Pilot", "status": "open", "company_id": "CO-9", "amount": 1200.5,
                  "contact_ids": ["C-9"], "close_date": "2026-12-31"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"created":0,"changed":1,"removed":0,"rematched":[]})");
  r = request("DELETE", "/v1/opportunities/O-9");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"created":0,"changed":0,"removed":1,"rematched":["dir-1"]})");
  EXPECT_EQ(stored("dir-1").opportunity_id, "");
  EXPECT_NE(stored("dir-1").reason.find("opportunity O-9 removed over the API"), std::string::npos);
  r = request("DELETE", "/v1/opportunities/O-9");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(message_of(r), "no opportunity 'O-9'");
  // The activity's page shows the new links.
  r = get("/v1/activities/dir-1");
  EXPECT_EQ(r.json().at("contact_ids").at(0).as_string(), "C-9");
}

TEST_F(ApiDirectory, ReMatchedActivitiesComeOnTheEventStream) {
  commit({unmatched(1, 2)});
  start();
  Client c(socket_);
  c.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string raw;
  ASSERT_TRUE(c.read_until(raw, "\r\n\r\n", 2000ms));
  const auto seq = writer_->last_change_seq().value();
  auto r = request("PUT", "/v1/contacts/C-9", k_json_type,
                   R"({"name": "Ann", "emails": ["ann@newco.com"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  ASSERT_TRUE(c.read_until(raw, "re-matched: contact C-9", 2000ms)) << raw;
  const auto ev = events_in(raw);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].first, seq + 1);
  record_event(ev[0].second);
  const auto data = json::parse(ev[0].second);
  EXPECT_EQ(data.at("id").as_string(), "dir-1");
  EXPECT_EQ(data.at("status").as_string(), "captured");
}

TEST_F(ApiDirectory, BatchAppliesAllLinesOrNone) {
  commit({unmatched(1, 2)});
  start();
  const std::string good =
      R"({"kind": "company", "op": "put", "id": "CO-9", "name": "Newco", "domains": ["newco.com"]})"
      "\n\n"
      R"({"kind": "contact", "op": "put", "id": "C-9", "name": "Ann", "emails": ["ann@newco.com"], "company_id": "CO-9"})"
      "\n"
      R"({"kind": "opportunity", "op": "put", "id": "O-9", "name": "Pilot", "status": "open", "company_id": "CO-9"})"
      "\n";
  const auto before = writer_->stats().value();
  const auto seq = writer_->last_change_seq().value();
  // Line 4 names a company no row has: nothing of lines 1 to 3 is kept.
  auto r = request(
      "POST", "/v1/directory", k_lines_type,
      good +
          R"({"kind": "contact", "op": "put", "id": "C-8", "name": "B", "emails": [], "company_id": "CO-404"})"
          "\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "bad_line");
  EXPECT_EQ(message_of(r), "line 5: company_id: unknown company id 'CO-404'");
  // A malformed line, a bad field, an unknown kind: refused before anything is applied.
  for (const auto& [line, message] : std::vector<std::pair<std::string, std::string>>{
           {"{not json", "line 5: not JSON: "},
           {R"({"kind": "contact", "op": "put", "id": "C-8", "name": "B", "emails": ["nope"]})",
            "line 5: emails: bad address 'nope'"},
           {R"({"kind": "deal", "op": "put", "id": "D-1"})",
            "line 5: kind: expected company, contact or opportunity"},
           {R"({"kind": "contact", "op": "delete", "id": "C-77"})", "line 5: no contact 'C-77'"},
           {R"({"kind": "contact", "op": "put", "id": "C-8", "name": "B", "emails": [], "age": 3})",
            "line 5: age: unknown field for a contact"}}) {
    r = request("POST", "/v1/directory", k_lines_type, good + line + "\n");
    EXPECT_EQ(r.status, 400) << line;
    EXPECT_EQ(message_of(r).substr(0, message.size()), message) << line;
  }
  const auto after = writer_->stats().value();
  EXPECT_EQ(after.companies, before.companies);
  EXPECT_EQ(after.contacts, before.contacts);
  EXPECT_EQ(writer_->last_change_seq().value(), seq);
  EXPECT_EQ(stored("dir-1").status, store::DecisionStatus::skipped);

  r = request("POST", "/v1/directory", k_lines_type, good);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"created":3,"changed":0,"removed":0,"rematched":["dir-1"]})");
  const auto a = stored("dir-1");
  EXPECT_EQ(a.contact_ids, std::vector<std::string>{"C-9"});
  EXPECT_EQ(a.opportunity_id, "O-9");
  EXPECT_EQ(a.reason.rfind("re-matched: company CO-9 added over the API, contact C-9 added over "
                           "the API, opportunity O-9 added over the API; ",
                           0),
            0u)
      << a.reason;
}

TEST_F(ApiDirectory, ErrorsNameTheFieldAndHaveTheirStatus) {
  options_.directory_body_limit = 4096;
  start();
  auto r = request("PUT", "/v1/contacts/C-9", "Content-Type: text/csv\r\n", "id,name\n");
  EXPECT_EQ(r.status, 415);
  r = request("POST", "/v1/directory", k_json_type, R"({"kind": "contact"})");
  EXPECT_EQ(r.status, 415);
  r = request("PUT", "/v1/contacts/C-9", k_json_type, "[1, 2]");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "bad_body");
  r = request("PUT", "/v1/contacts/C-9");
  EXPECT_EQ(r.status, 400);
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"emails": []})", "name: missing"},
           {R"({"name": "A", "emails": "a@b.com"})", "emails: expected an array of strings"},
           {R"({"name": "A", "emails": ["a@"]})", "emails: bad address 'a@'"},
           {R"({"id": "C-8", "name": "A", "emails": []})", "id: differs from the path's id 'C-9'"},
           {R"({"name": "A", "emails": [], "company_id": "CO-404"})",
            "company_id: unknown company id 'CO-404'"}}) {
    r = request("PUT", "/v1/contacts/C-9", k_json_type, body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(code_of(r), "bad_field") << body;
    EXPECT_EQ(message_of(r), message) << body;
  }
  r = request("PUT", "/v1/opportunities/O-9", k_json_type, R"({"name": "P", "status": "maybe"})");
  EXPECT_EQ(message_of(r), "status: expected open, won or lost, got 'maybe'");
  r = request("PUT", "/v1/companies/CO-9", k_json_type, R"({"name": "N", "domains": ["a b"]})");
  EXPECT_EQ(message_of(r), "domains: bad domain 'a b'");
  r = request("DELETE", "/v1/contacts/C-404");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(code_of(r), "not_found");
  r = request("GET", "/v1/contacts/C-9");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "PUT, DELETE");
  r = request("PUT", "/v1/directory");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  EXPECT_EQ(request("PUT", "/v1/contacts/").status, 404);
  // A row's body past the general limit; a batch past its own.
  r = request("PUT", "/v1/contacts/C-9", k_json_type, std::string(options_.body_limit + 1, ' '));
  EXPECT_EQ(r.status, 413);
  r = request("POST", "/v1/directory", k_lines_type, std::string(4097, '\n'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(code_of(r), "body_too_large");
  r = request("POST", "/v1/directory", k_lines_type, "\n\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "bad_line");
  // Without a writer (crm-captured --once has none): 501.
  board_.set_directory_writer({});
  r = request("DELETE", "/v1/contacts/C-1");
  EXPECT_EQ(r.status, 501);
}

TEST_F(ApiDirectory, CommandLinePushGoesThroughTheDaemonOrToTheStore) {
  commit({unmatched(1, 2)});
  start();
  const fs::path csv = dir_.path() / "contacts.csv";
  std::ofstream(csv) << "id,name,emails\nC-9,Ann,ann@newco.com\n";
  const fs::path lines = dir_.path() / "changes.jsonl";
  std::ofstream(lines) << R"({"kind":"contact","op":"delete","id":"C-9"})"
                       << "\n";
  auto r =
      test::run("crm-capture", "--socket " + socket_ + " directory push contacts " + csv.string());
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "created 1, changed 0, removed 0; re-matched 1 activities\n");
  EXPECT_EQ(stored("dir-1").contact_ids, std::vector<std::string>{"C-9"});
  r = test::run("crm-capture", "--socket " + socket_ + " directory push " + lines.string());
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "created 0, changed 0, removed 1; re-matched 1 activities\n");
  // A bad line is the daemon's 400, with its line number.
  std::ofstream(lines) << R"({"kind":"contact","op":"delete","id":"C-9"})"
                       << "\n";
  r = test::run("crm-capture", "--socket " + socket_ + " directory push " + lines.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("400: line 1: no contact 'C-9'"), std::string::npos) << r.out;
  stop();
  // Offline, to the store file: the same edits, the same re-matching.
  r = test::run("crm-capture", "--store " + db_path_ + " directory push contacts " + csv.string() +
                                   " --owner alice@example.com");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "created 1, changed 0, removed 0; re-matched 1 activities\n");
  EXPECT_NE(stored("dir-1").reason.find("contact C-9 added by directory push"), std::string::npos);
}
