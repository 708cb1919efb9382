// SPDX-License-Identifier: Apache-2.0
// The local API's server: an io_context of its own, run by as many threads
// as it has store connections (readers); one coroutine per connection, on a
// strand of its own, reads a request, runs its query on the thread it is on
// and writes the answer, so that a request wakes one thread, not three. The
// daemon's io_context (capture) never waits for SQLite or for a client.
#include "daemon/api/api.hpp"
#include "daemon/api/json.hpp"
#include "daemon/api/query.hpp"
#include "daemon/capture/capture.hpp"
#include "store/store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <variant>

namespace crmcap::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using local = asio::local::stream_protocol;
using Stream = beast::basic_stream<local>;
template <class T>
using Awaitable = asio::awaitable<T>;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using detail::ApiError;
using detail::Endpoint;

namespace {

// The peer's credentials, with its supplementary groups where the kernel
// gives them (SO_PEERGROUPS, Linux 4.13).
std::optional<PeerCred> peer_of(int fd) {
  ucred c{};
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return std::nullopt;
  PeerCred p{c.pid, c.uid, c.gid, {}};
#ifdef SO_PEERGROUPS
  std::vector<gid_t> groups(64);
  for (int tries = 0; tries < 4; ++tries) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      p.groups.assign(groups.begin(), groups.end());
      break;
    }
    if (errno != ERANGE) break;
    groups.resize(glen / sizeof(gid_t) + 16);
  }
#endif
  return p;
}

// Makes the socket's directory: created owner-only (plus search for those
// the mode lets in) when absent; an existing one must be the daemon's own
// and writable by nobody else, or another user could put their own socket
// in its place.
std::optional<std::string> prepare_directory(const fs::path& dir, std::uint32_t mode) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return dir.string() + ": " + std::strerror(errno);
    std::error_code ec;
    if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
    mode_t dmode = 0700;
    if (mode & 0060) dmode |= 0010;
    if (mode & 0006) dmode |= 0001;
    if (mkdir(dir.c_str(), dmode) != 0 && errno != EEXIST) {
      return dir.string() + ": cannot create the socket's directory: " + std::strerror(errno);
    }
    chmod(dir.c_str(), dmode);  // whatever the umask took away
    if (lstat(dir.c_str(), &st) != 0) return dir.string() + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return dir.string() + ": not a directory";
  if (st.st_uid != geteuid()) {
    return dir.string() + ": the socket's directory belongs to uid " + std::to_string(st.st_uid) +
           ", not to this daemon's (" + std::to_string(geteuid()) + ")";
  }
  if (st.st_mode & 0022) {
    return dir.string() + ": the socket's directory is writable by others than its owner";
  }
  return std::nullopt;
}

// A socket file left by a daemon that died is removed; one that a live
// process listens on is not ours to take.
std::optional<std::string> clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;
  if (!S_ISSOCK(st.st_mode)) return path + ": exists and is not a socket";
  asio::io_context probe_io;
  local::socket probe(probe_io);
  boost::system::error_code ec;
  probe.connect(local::endpoint(path), ec);
  if (!ec) return path + ": another process is listening on this socket";
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return path + ": cannot remove the stale socket: " + std::strerror(errno);
  }
  return std::nullopt;
}

// A response in the making.
struct Reply {
  http::status status = http::status::ok;
  std::string body;  // JSON
  std::vector<std::pair<http::field, std::string>> headers;
};

Reply error_reply(http::status status, std::string_view code, std::string_view message) {
  return {status, detail::error_body(code, message), {}};
}

Reply error_reply(const ApiError& e) {
  return error_reply(static_cast<http::status>(e.status), e.code, e.message);
}

}  // namespace

bool peer_allowed(const PeerCred& peer, const Access& access) {
  if (peer.uid == 0 || peer.uid == access.owner_uid) return true;
  if (std::find(access.allow_uids.begin(), access.allow_uids.end(), peer.uid) !=
      access.allow_uids.end()) {
    return true;
  }
  // The group counts only when the socket's mode lets it read and write.
  if ((access.mode & 0060) == 0060) {
    if (peer.gid == access.group_gid) return true;
    if (std::find(peer.groups.begin(), peer.groups.end(), access.group_gid) != peer.groups.end()) {
      return true;
    }
  }
  return false;
}

// A connection: its stream and, for an event stream, the timer it waits on
// between events (a store change cancels it). Its socket's executor is a
// strand of its own: everything below runs there.
struct Connection {
  explicit Connection(local::socket s) : stream(std::move(s)), wake(stream.get_executor()) {}
  Stream stream;
  asio::steady_timer wake;
  bool dirty = false;   // a store change came since the stream last looked
  bool closed = false;  // the client of an event stream hung up
};

struct Server::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, Options o, Board& b)
      : io(io),
        options(std::move(o)),
        board(b),
        started(std::chrono::steady_clock::now()),
        started_at(std::time(nullptr)) {}

  asio::io_context& io;  // the daemon's: POST /v1/sync is answered there
  // Keeps `io` running while the server may still hand it a job: held by
  // the server until stop() and by the accept loop and every session, so
  // io.run() returns once stop() has come and the connections are gone.
  // Read and reset on `strand` only.
  using IoKeep = asio::executor_work_guard<asio::io_context::executor_type>;
  std::shared_ptr<IoKeep> io_keep;
  Options options;
  Board& board;
  Access access;

  // The server's own io_context and its threads (started by begin(), joined
  // by join(), never from one of them). One thread a reader connection.
  static std::size_t reader_count() {
    return std::clamp<std::size_t>(std::thread::hardware_concurrency(), 2, 4);
  }
  // Counted once: as many threads as store connections, whenever open_db runs.
  const std::size_t readers = reader_count();
  asio::io_context api{static_cast<int>(readers)};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(api);
  std::vector<std::thread> threads;
  // The listener's and the memory release's strand.
  asio::strand<asio::io_context::executor_type> strand = asio::make_strand(api);
  local::acceptor acceptor{strand};

  std::atomic<bool> stopping{false};
  std::mutex connections_mutex;
  std::set<std::shared_ptr<Connection>> connections;  // under connections_mutex

  // The store's readers: a query runs on the thread its connection's
  // coroutine is on, with a store connection (StoreOptions::reader) taken
  // from `idle` for the time of the query. There are as many as threads,
  // and a query never leaves its thread: one is always there.
  std::mutex idle_mutex;
  std::vector<std::unique_ptr<store::Store>> idle;  // the connections not in use
  std::atomic<bool> store_open{false};

  // Once no query has come for k_release_after, the readers give their page
  // caches back (a burst of pages fills each to its 8 MiB), and glibc the
  // freed memory to the system, as the capture's store does after a pass.
  // The timer runs only from a quiet spell's first query to its end, so an
  // idle daemon has no timer of the API's to wake for.
  static constexpr std::chrono::seconds k_release_after{30};
  asio::steady_timer release_timer{strand};
  std::atomic<std::chrono::steady_clock::rep> last_query{0};
  std::atomic<bool> release_armed{false};
  // After each query, on any of the server's threads.
  void queried() {
    last_query = std::chrono::steady_clock::now().time_since_epoch().count();
    if (release_armed.exchange(true)) return;
    asio::post(strand, [self = shared_from_this()] { self->arm_release(k_release_after); });
  }
  // On the strand: releases once k_release_after has passed since the last
  // query, waiting again while queries keep coming.
  void arm_release(std::chrono::steady_clock::duration wait) {
    // After stop()'s cancel, a query that ended late must not keep the
    // threads (and ~Server's join) waiting for the timer.
    if (stopping) return;
    release_timer.expires_after(wait);
    release_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopping) return;
      const auto since = [&] {
        return std::chrono::steady_clock::now() -
               std::chrono::steady_clock::time_point(
                   std::chrono::steady_clock::duration(self->last_query.load()));
      };
      if (since() < k_release_after) {
        self->arm_release(k_release_after - since());
        return;
      }
      self->release_armed = false;
      {
        // The connections not in use; one in use is released next time.
        const std::lock_guard<std::mutex> lock(self->idle_mutex);
        for (const auto& db : self->idle) db->release_memory();
      }
      malloc_trim(0);
      // A query that came meanwhile found the timer armed: wait for its
      // quiet spell too.
      if (since() < k_release_after && !self->release_armed.exchange(true)) {
        self->arm_release(k_release_after - since());
      }
    });
  }

  std::chrono::steady_clock::time_point started;
  std::time_t started_at;

  // Runs job(store) here, with a reader connection of its own.
  template <class R>
  R on_store(const std::function<R(store::Store&)>& job) {
    std::unique_ptr<store::Store> s;
    {
      const std::lock_guard<std::mutex> lock(idle_mutex);
      // Cannot happen (a query per thread, a connection per thread): ends
      // the connection, not the daemon.
      if (idle.empty()) throw std::logic_error("api: no store connection free");
      s = std::move(idle.back());
      idle.pop_back();
    }
    struct Return {
      Impl& impl;
      std::unique_ptr<store::Store>& s;
      ~Return() {
        const std::lock_guard<std::mutex> lock(impl.idle_mutex);
        impl.idle.push_back(std::move(s));
      }
    } give_back{*this, s};
    return job(*s);
  }
  using Job = std::function<Reply(store::Store&)>;

  // The thread of directory writes: each waits there for the daemon's
  // writer (Board::write_directory), so that neither the network threads
  // nor the queries wait for a write.
  asio::thread_pool writes{1};
  // A job for the thread of writes, or one for the daemon's io_context.
  struct WriteJob {
    std::function<Reply()> run;
  };
  struct IoJob {
    std::function<Reply()> run;
  };
  // Runs `job` on `ex`; the awaiting coroutine resumes on its own strand.
  template <class Executor>
  static Awaitable<Reply> run_on(Executor ex, std::function<Reply()> job) {
    return asio::co_spawn(
        ex, [job = std::move(job)]() -> Awaitable<Reply> { co_return job(); }, asio::use_awaitable);
  }

  // What a request asks: a reply now, a query, a directory write, or a job
  // for the daemon's io_context.
  std::variant<Reply, Job, WriteJob, IoJob> plan(const http::request<http::string_body>& req,
                                                 detail::Request r);

  Awaitable<void> accept_loop();
  Awaitable<void> session(std::shared_ptr<Connection> conn, std::shared_ptr<IoKeep> keep);
  Awaitable<Reply> handle(const http::request<http::string_body>& req, detail::Request r);
  Awaitable<void> events(std::shared_ptr<Connection> conn,
                         const http::request<http::string_body>& req);
  // `reply` must live until the write completes (a named local of the caller:
  // GCC 12 mishandles temporaries and by-value class parameters of coroutines).
  Awaitable<bool> write_reply(Connection& conn, const Reply& reply, bool keep_alive);
  // Reads and drops what an event stream's client sends, so that its
  // hanging up ends the stream at once, not at the next keep-alive.
  Awaitable<void> watch_hangup(std::shared_ptr<Connection> conn);
  void notify_all();
  void stop();
  void join() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  // Opens the readers' connections (once); the failure's message.
  std::optional<std::string> open_db() {
    if (store_open) return std::nullopt;
    store::StoreOptions o;
    o.reader = true;
    std::vector<std::unique_ptr<store::Store>> opened;
    for (std::size_t i = 0; i < readers; ++i) {
      auto st = store::Store::open(options.store_path, o);
      if (!st) return "api: " + st.error().message;
      opened.push_back(std::move(*st));
    }
    const std::lock_guard<std::mutex> lock(idle_mutex);
    idle = std::move(opened);
    store_open = true;
    return std::nullopt;
  }
};

namespace {

constexpr std::string_view k_json = "application/json";

}  // namespace

Awaitable<void> Server::Impl::accept_loop() {
  auto self = shared_from_this();
  const auto keep = io_keep;
  while (!stopping) {
    // Each connection on a strand of its own.
    auto [ec, sock] = co_await acceptor.async_accept(asio::make_strand(api), use_tuple);
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) co_return;
      // EMFILE and the like: wait a little rather than spin.
      asio::steady_timer t(strand, std::chrono::milliseconds(100));
      co_await t.async_wait(use_tuple);
      continue;
    }
    auto conn = std::make_shared<Connection>(std::move(sock));
    {
      const std::lock_guard<std::mutex> lock(connections_mutex);
      // stop() closes the connections it finds: one accepted after is not.
      if (stopping) co_return;
      connections.insert(conn);
    }
    asio::co_spawn(conn->stream.get_executor(), session(conn, io_keep),
                   [self, conn](std::exception_ptr) {
                     // A session's exceptions end only its connection.
                     {
                       const std::lock_guard<std::mutex> lock(self->connections_mutex);
                       self->connections.erase(conn);
                     }
                     boost::system::error_code ignored;
                     conn->stream.socket().close(ignored);
                   });
  }
}

Awaitable<bool> Server::Impl::write_reply(Connection& conn, const Reply& reply, bool keep_alive) {
  // The body is sent from `reply` itself, not copied into the message.
  http::response<http::span_body<const char>> res{reply.status, 11};
  res.set(http::field::server, "crm-captured/" + options.version);
  res.set(http::field::content_type, k_json);
  res.set(http::field::cache_control, "no-store");
  for (auto& [f, v] : reply.headers) res.set(f, v);
  res.body() = {reply.body.data(), reply.body.size()};
  res.keep_alive(keep_alive);
  res.prepare_payload();
  conn.stream.expires_after(options.write_timeout);
  auto [ec, n] = co_await http::async_write(conn.stream, res, use_tuple);
  co_return !ec;
}

Awaitable<void> Server::Impl::session(std::shared_ptr<Connection> conn,
                                      std::shared_ptr<IoKeep> /*keep*/) {
  auto self = shared_from_this();
  const auto peer = peer_of(conn->stream.socket().native_handle());
  // A refused peer's request is still read (within the limits and the
  // deadline), so that it gets its 403 instead of a connection reset.
  const bool refused = !peer || !peer_allowed(*peer, access);
  const std::size_t open = [&] {
    const std::lock_guard<std::mutex> lock(connections_mutex);
    return connections.size();
  }();
  if (open > options.max_connections) {
    const Reply rep = error_reply(http::status::service_unavailable, "too_many_connections",
                                  "too many connections; try again later");
    co_await write_reply(*conn, rep, false);
    co_return;
  }
  beast::flat_buffer buffer;
  while (!stopping) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.header_limit));
    // The larger limit while the header is read (Beast checks a
    // Content-Length against the limit set then), the target's own after.
    parser.body_limit(std::max(options.body_limit, options.directory_body_limit));
    // One deadline for the whole request: a client trickling bytes does not
    // move it (slowloris), and an idle keep-alive connection ends there too.
    conn->stream.expires_after(options.request_timeout);
    auto [ec, n] = co_await http::async_read_header(conn->stream, buffer, parser, use_tuple);
    std::size_t body_limit = options.body_limit;
    if (!ec && std::string_view(parser.get().target()).starts_with("/v1/directory")) {
      body_limit = options.directory_body_limit;  // a directory batch may be larger
    }
    if (!ec && parser.content_length() && *parser.content_length() > body_limit) {
      ec = http::error::body_limit;
    } else if (!ec && !parser.is_done()) {
      parser.body_limit(body_limit);  // a chunked body's
      std::tie(ec, n) = co_await http::async_read(conn->stream, buffer, parser, use_tuple);
    }
    if (refused && ec) co_return;  // nothing for it but its 403
    if (ec == http::error::header_limit) {
      const Reply rep = error_reply(
          http::status::payload_too_large, "headers_too_large",
          "the request line and headers exceed " + std::to_string(options.header_limit) + " bytes");
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    if (ec == http::error::body_limit) {
      const Reply rep =
          error_reply(http::status::payload_too_large, "body_too_large",
                      "the request body exceeds " + std::to_string(body_limit) + " bytes");
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      co_return;  // closed, too slow, or stopping: nothing to answer
    }
    if (ec) {
      const Reply rep = error_reply(http::status::bad_request, "bad_request",
                                    "malformed HTTP request: " + ec.message());
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    if (refused) {
      const Reply rep =
          error_reply(http::status::forbidden, "forbidden",
                      peer ? "uid " + std::to_string(peer->uid) +
                                 " may not use this socket (not its owner, its group or allow_uids)"
                           : std::string("the peer's credentials could not be read"));
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    if (!store_open) {
      Reply rep = error_reply(http::status::service_unavailable, "migrating",
                              "the store is being opened or migrated; ask again shortly");
      rep.headers.emplace_back(http::field::retry_after, "1");
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    const auto& req = parser.get();
    const bool keep_alive = req.keep_alive();
    auto parsed = detail::parse_target(std::string_view(req.target()));
    if (parsed && parsed->endpoint == Endpoint::events && req.method() == http::verb::get) {
      co_await events(conn, req);
      co_return;
    }
    Reply reply;
    if (parsed) {
      reply = co_await handle(req, std::move(*parsed));
    } else {
      reply = error_reply(parsed.error());
    }
    const bool written = co_await write_reply(*conn, reply, keep_alive);
    if (!written || !keep_alive) co_return;
  }
}

std::variant<Reply, Server::Impl::Job, Server::Impl::WriteJob, Server::Impl::IoJob>
Server::Impl::plan(const http::request<http::string_body>& req, detail::Request r) {
  const std::string_view method = req.method_string();
  if (!detail::method_allowed(r.endpoint, method)) {
    const std::string_view allow = detail::allowed_methods(r.endpoint);
    Reply rep = error_reply(http::status::method_not_allowed, "method_not_allowed",
                            std::string(method) + " is not allowed on " +
                                std::string(req.target().substr(0, req.target().find('?'))) +
                                "; allowed: " + std::string(allow));
    rep.headers.emplace_back(http::field::allow, std::string(allow));
    return rep;
  }
  const bool directory =
      r.endpoint == Endpoint::directory_row || r.endpoint == Endpoint::directory_batch;
  if (!req.body().empty()) {
    std::string_view type = req[http::field::content_type];
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
    if (directory ? !detail::directory_media_type_ok(r.endpoint, type) : type != k_json) {
      return error_reply(http::status::unsupported_media_type, "unsupported_media_type",
                         r.endpoint == Endpoint::directory_batch
                             ? "a directory batch must be application/x-ndjson (JSON lines)"
                             : "a request body must be application/json");
    }
  }
  if (directory) {
    return WriteJob{
        [this, r = std::move(r), method = std::string(method), body = req.body()]() -> Reply {
          auto edits = detail::directory_edits(r, method, body);
          if (!edits) return error_reply(edits.error());
          auto done = board.write_directory(*edits);
          if (!done) {
            return error_reply(http::status::not_implemented, "not_implemented",
                               "this daemon takes no directory changes");
          }
          if (!*done) return error_reply(detail::directory_error(r, done->error()));
          const bool created = r.endpoint == Endpoint::directory_row && (*done)->created > 0;
          return Reply{created ? http::status::created : http::status::ok,
                       detail::directory_result_body(**done),
                       {}};
        }};
  }
  switch (r.endpoint) {
    case Endpoint::status: {
      const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
      detail::StatusFacts facts{options.version, capture::iso_utc(started_at), uptime,
                                options.store_path, board.mailboxes()};
      return Job([facts = std::move(facts)](store::Store& s) {
        auto body = detail::status_body(s, facts);
        if (!body) {
          return error_reply(http::status::internal_server_error, "store", body.error().message);
        }
        return Reply{http::status::ok, std::move(*body), {}};
      });
    }
    case Endpoint::activities:
    case Endpoint::decisions: {
      return Job([r = std::move(r)](store::Store& s) {
        auto body = detail::list_body(s, r, std::time(nullptr));
        if (!body) {
          return error_reply(http::status::internal_server_error, "store", body.error().message);
        }
        return Reply{http::status::ok, std::move(*body), {}};
      });
    }
    case Endpoint::activity: {
      return Job([r = std::move(r)](store::Store& s) {
        auto a = s.get(r.id);
        if (!a) return error_reply(http::status::internal_server_error, "store", a.error().message);
        if (!*a) {
          return error_reply(http::status::not_found, "not_found", "no activity " + r.id);
        }
        Reply rep;
        append_activity_json(rep.body, **a, std::time(nullptr));
        return rep;
      });
    }
    case Endpoint::sync: {
      // The daemon's tasks are woken on its io_context (Board::request_sync).
      return IoJob{[this, r = std::move(r)]() -> Reply {
        if (!r.mailbox.empty() && !board.has_mailbox(r.mailbox)) {
          return error_reply(http::status::not_found, "not_found", "no mailbox " + r.mailbox);
        }
        const auto asked = board.request_sync(r.mailbox);
        if (!asked) {
          return error_reply(http::status::not_implemented, "not_implemented",
                             "this daemon cannot be asked to sync now yet; its mailboxes "
                             "sync on new mail (IDLE) and on their poll intervals");
        }
        if (!*asked) {
          return error_reply(http::status::not_found, "not_found", "no mailbox " + r.mailbox);
        }
        boost::json::object o{{"accepted", true},
                              {"mailbox", r.mailbox.empty() ? boost::json::value(nullptr)
                                                            : boost::json::value(r.mailbox)}};
        return Reply{http::status::accepted, boost::json::serialize(o), {}};
      }};
    }
    case Endpoint::events:
      break;  // served by session()
    case Endpoint::directory_row:
    case Endpoint::directory_batch:
      break;  // planned above
  }
  return error_reply(http::status::not_found, "not_found", "no such resource");
}

Awaitable<Reply> Server::Impl::handle(const http::request<http::string_body>& req,
                                      detail::Request r) {
  auto planned = plan(req, std::move(r));
  if (auto* now = std::get_if<Reply>(&planned)) co_return std::move(*now);
  if (auto* write = std::get_if<WriteJob>(&planned)) {
    std::function<Reply()> job = std::move(write->run);
    co_return co_await run_on(writes.get_executor(), std::move(job));
  }
  if (auto* on_io = std::get_if<IoJob>(&planned)) {
    std::function<Reply()> job = std::move(on_io->run);
    co_return co_await run_on(io.get_executor(), std::move(job));
  }
  Reply reply = on_store(std::get<Job>(planned));
  queried();
  co_return reply;
}

Awaitable<void> Server::Impl::events(std::shared_ptr<Connection> conn,
                                     const http::request<http::string_body>& req) {
  std::int64_t last = 0;
  const std::string_view resume = req["Last-Event-ID"];
  if (!resume.empty()) {
    auto n = detail::parse_event_id(resume);
    if (!n) {
      const Reply rep = error_reply(http::status::bad_request, "bad_parameter",
                                    "Last-Event-ID: expected a change sequence number, got \"" +
                                        std::string(resume.substr(0, 40)) + "\"");
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    last = *n;
  } else {
    // Without Last-Event-ID: what changes from now on.
    std::function<store::Result<std::int64_t>(store::Store&)> job = [](store::Store& s) {
      return s.last_change_seq();
    };
    auto now = on_store(job);
    if (!now) {
      const Reply rep =
          error_reply(http::status::internal_server_error, "store", now.error().message);
      co_await write_reply(*conn, rep, false);
      co_return;
    }
    last = *now;
  }

  http::response<http::empty_body> head{http::status::ok, 11};
  head.set(http::field::server, "crm-captured/" + options.version);
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-store");
  head.keep_alive(false);
  http::response_serializer<http::empty_body> sr{head};
  conn->stream.expires_after(options.write_timeout);
  if (auto [ec, n] = co_await http::async_write_header(conn->stream, sr, use_tuple); ec) co_return;

  asio::co_spawn(conn->stream.get_executor(), watch_hangup(conn), asio::detached);
  constexpr std::size_t k_batch = 200;
  while (!stopping && !conn->closed) {
    conn->dirty = false;
    using Page = boost::system::result<detail::EventsPage, detail::StoreFailure>;
    std::function<Page(store::Store&)> job = [last](store::Store& s) {
      return detail::events_page(s, last, k_batch, std::time(nullptr));
    };
    auto page = on_store(job);
    queried();
    if (!page) co_return;  // the store failed: the client reconnects with its last id
    if (!page->text.empty()) {
      conn->stream.expires_after(options.write_timeout);
      auto [ec, n] = co_await asio::async_write(conn->stream, asio::buffer(page->text), use_tuple);
      if (ec) co_return;  // gone, or not reading: dropped
      last = page->last;
      if (page->count == k_batch) continue;
    }
    if (conn->dirty) continue;
    // stop() or a hang-up may have come while the store was asked: they
    // cancelled no wait.
    if (stopping || conn->closed) co_return;
    conn->wake.expires_after(options.keepalive_interval);
    auto [ec] = co_await conn->wake.async_wait(use_tuple);
    if (stopping || conn->closed) co_return;
    if (!ec) {
      static constexpr std::string_view k_keepalive = ": keep-alive\n\n";
      conn->stream.expires_after(options.write_timeout);
      auto [wec, n] =
          co_await asio::async_write(conn->stream, asio::buffer(k_keepalive), use_tuple);
      if (wec) co_return;
    }
  }
}

Awaitable<void> Server::Impl::watch_hangup(std::shared_ptr<Connection> conn) {
  std::array<char, 512> sink;
  for (;;) {
    // The socket itself, not the timed stream: this read has no deadline.
    auto [ec, n] = co_await conn->stream.socket().async_read_some(asio::buffer(sink), use_tuple);
    if (ec) break;
  }
  conn->closed = true;
  conn->wake.cancel();
}

void Server::Impl::notify_all() {
  const std::lock_guard<std::mutex> lock(connections_mutex);
  for (const auto& c : connections) {
    asio::post(c->stream.get_executor(), [c] {
      c->dirty = true;
      c->wake.cancel();
    });
  }
}

void Server::Impl::stop() {
  if (stopping.exchange(true)) return;
  board.set_change_listener({});
  asio::post(strand, [self = shared_from_this()] {
    self->release_timer.cancel();
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    self->io_keep.reset();
  });
  {
    const std::lock_guard<std::mutex> lock(connections_mutex);
    for (const auto& c : connections) {
      asio::post(c->stream.get_executor(), [c] {
        c->wake.cancel();
        boost::system::error_code ignored;
        c->stream.socket().close(ignored);
      });
    }
  }
  // An activated socket's file is its socket unit's, which listens on.
  if (options.listen_fd < 0) unlink(options.socket_path.c_str());
  work.reset();  // the threads end once the connections have
}

boost::system::result<std::unique_ptr<Server>, StartError> Server::start(asio::io_context& io,
                                                                         Options options,
                                                                         Board& board) {
  if (options.listen_fd >= 0) return adopt(io, std::move(options), board);
  const fs::path path(options.socket_path);
  if (options.socket_path.empty()) return StartError{"api.socket is empty"};
  if (options.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return StartError{options.socket_path + ": the socket path is longer than " +
                      std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes"};
  }
  if (auto e = prepare_directory(path.parent_path(), options.mode)) return StartError{*e};
  if (auto e = clear_stale_socket(options.socket_path)) return StartError{*e};

  auto impl = std::make_shared<Impl>(io, std::move(options), board);
  const Options& o = impl->options;
  if (!o.open_store_later) {
    if (auto e = impl->open_db()) return StartError{*e};
  }

  boost::system::error_code ec;
  impl->acceptor.open(local(), ec);
  if (!ec) impl->acceptor.bind(local::endpoint(o.socket_path), ec);
  if (ec) return StartError{o.socket_path + ": cannot bind: " + ec.message()};
  if (chmod(o.socket_path.c_str(), static_cast<mode_t>(o.mode)) != 0) {
    const std::string why = std::strerror(errno);
    unlink(o.socket_path.c_str());
    return StartError{o.socket_path + ": cannot set its mode: " + why};
  }
  struct stat sst {};
  if (stat(o.socket_path.c_str(), &sst) != 0) {
    return StartError{o.socket_path + ": " + std::strerror(errno)};
  }
  impl->access = Access{static_cast<std::uint32_t>(geteuid()), sst.st_gid, o.mode, o.allow_uids};
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    unlink(o.socket_path.c_str());
    return StartError{o.socket_path + ": cannot listen: " + ec.message()};
  }

  return begin(std::move(impl), board);
}

boost::system::result<std::unique_ptr<Server>, StartError> Server::adopt(asio::io_context& io,
                                                                         Options options,
                                                                         Board& board) {
  const int fd = options.listen_fd;
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  sockaddr_un addr{};
  socklen_t addr_len = sizeof addr;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0 ||
      addr.sun_family != AF_UNIX) {
    return StartError{"the socket passed by systemd (fd " + std::to_string(fd) +
                      ") is not a Unix stream socket"};
  }
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    return StartError{"the socket passed by systemd (fd " + std::to_string(fd) +
                      ") is not listening"};
  }
  // The name it is bound to (ListenStream=) is the file that gives the group.
  if (addr_len > offsetof(sockaddr_un, sun_path) && addr.sun_path[0] != '\0') {
    options.socket_path = addr.sun_path;
  }
  auto impl = std::make_shared<Impl>(io, std::move(options), board);
  const Options& o = impl->options;
  if (!o.open_store_later) {
    if (auto e = impl->open_db()) return StartError{*e};
  }
  struct stat sst {};
  const bool has_file = stat(o.socket_path.c_str(), &sst) == 0;
  // The unit's SocketMode= is what the file has; access follows it.
  const std::uint32_t mode = has_file ? (sst.st_mode & 0777) : o.mode;
  impl->access =
      Access{static_cast<std::uint32_t>(geteuid()),
             has_file ? sst.st_gid : static_cast<std::uint32_t>(getegid()), mode, o.allow_uids};
  boost::system::error_code ec;
  impl->acceptor.assign(local(), fd, ec);
  if (ec) return StartError{"the socket passed by systemd: " + ec.message()};
  return begin(std::move(impl), board);
}

boost::system::result<std::unique_ptr<Server>, StartError> Server::begin(std::shared_ptr<Impl> impl,
                                                                         Board& board) {
  std::weak_ptr<Impl> weak = impl;
  board.set_change_listener([weak] {
    if (auto s = weak.lock()) s->notify_all();
  });
  impl->io_keep = std::make_shared<Impl::IoKeep>(impl->io.get_executor());
  asio::co_spawn(impl->strand, impl->accept_loop(), asio::detached);
  for (std::size_t i = 0; i < impl->readers; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->api.run(); });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (!impl_) return;
  impl_->stop();
  impl_->join();
}

void Server::stop() { impl_->stop(); }

boost::system::result<void, StartError> Server::open_store() {
  if (auto e = impl_->open_db()) return StartError{*e};
  return {};
}

}  // namespace crmcap::api
