// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/session/connection.hpp"

#include "connectors/imap/core/detail.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <memory>

#include <zlib.h>

namespace asio = boost::asio;

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

bool icontains(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

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

struct Connection::Zlib {
  z_stream in{};
  z_stream out{};
  bool in_ok = false, out_ok = false;
};

void Connection::ZlibDeleter::operator()(Zlib* z) const noexcept {
  if (z->in_ok) inflateEnd(&z->in);
  if (z->out_ok) deflateEnd(&z->out);
  delete z;
}

Connection::Connection(const asio::any_io_executor& ex, const AccountOptions& options)
    : options_(options),
      read_buf_(std::make_unique_for_overwrite<char[]>(kReadBytes)),
      transport_(ex, options.transport),
      builder_("C") {}

Awaitable<SyncResult<void>> Connection::write(std::string_view bytes) {
  if (!zlib_) {
    auto r = co_await transport_.async_write(bytes);
    if (!r) co_return from_transport(r.error());
    co_return SyncResult<void>{};
  }
  // Each write is flushed (Z_SYNC_FLUSH) so the server sees whole commands.
  std::string packed;
  z_stream& z = zlib_->out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  do {
    char chunk[16384];
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    const int rc = deflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      co_return make_sync_error(SyncErrc::protocol, "deflate failed", RetryClass::retry_later);
    }
    packed.append(chunk, sizeof chunk - z.avail_out);
  } while (z.avail_out == 0);
  auto r = co_await transport_.async_write(packed);
  if (!r) co_return from_transport(r.error());
  co_return SyncResult<void>{};
}

SyncResult<void> Connection::inflate_into_input(std::string_view raw) {
  z_stream& z = zlib_->in;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  while (z.avail_in > 0) {
    char chunk[65536];
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    const int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
      return make_sync_error(SyncErrc::protocol,
                             transport_.peer() + ": the server's compressed stream is corrupt",
                             RetryClass::retry_later);
    }
    in_.append(chunk, sizeof chunk - z.avail_out);
    if (rc == Z_STREAM_END || (rc == Z_BUF_ERROR && z.avail_out != 0)) break;
  }
  return {};
}

Awaitable<SyncResult<void>> Connection::start_compression() {
  const Command cmd = builder_.compress_deflate();
  const Handler none;
  auto st = co_await run(cmd, none, "COMPRESS DEFLATE");
  if (!st) co_return st.error();
  std::unique_ptr<Zlib, ZlibDeleter> z(new Zlib);
  if (inflateInit2(&z->in, -15) != Z_OK) {
    co_return make_sync_error(SyncErrc::protocol, "inflateInit failed", RetryClass::retry_later);
  }
  z->in_ok = true;
  if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    co_return make_sync_error(SyncErrc::protocol, "deflateInit failed", RetryClass::retry_later);
  }
  z->out_ok = true;
  zlib_ = std::move(z);
  // Whatever was read past the tagged OK is already compressed.
  const std::string rest(pending_);
  in_.clear();
  pending_ = {};
  if (!rest.empty()) {
    if (auto r = inflate_into_input(rest); !r) co_return r.error();
    pending_ = in_;
  }
  co_return SyncResult<void>{};
}

Awaitable<SyncResult<Response>> Connection::next(Clock::time_point deadline, std::string_view what,
                                                 std::string_view limit) {
  using std::chrono::milliseconds;
  for (;;) {
    if (!pending_.empty()) {
      const auto step = parser_.feed(pending_);
      if (step == ResponseParser::Step::event) {
        Response r = parser_.take();
        if (auto* u = std::get_if<UntaggedStatus>(&r); u && u->status == Status::bye) {
          co_return make_sync_error(SyncErrc::server_busy,
                                    transport_.peer() + " closed the session (BYE " + u->text + ")",
                                    RetryClass::retry_later);
        }
        co_return r;
      }
      if (step == ResponseParser::Step::error) {
        if (parser_.broken()) {
          co_return make_sync_error(SyncErrc::protocol,
                                    transport_.peer() + ": cannot follow the server's response: " +
                                        parser_.error_detail(),
                                    RetryClass::retry_later);
        }
        // The malformed response was skipped and the stream goes on; whoever
        // waits for an answer learns of the hole through malformed().
        ++malformed_;
        last_malformed_ = parser_.error_detail();
        continue;
      }
    }
    in_.clear();
    pending_ = {};
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    const bool by_deadline = left < options_.transport.io_timeout;
    TransportResult<std::size_t> n =
        TransportError{make_error_code(TransportErrc::read_timeout), {}, std::string()};
    if (left > milliseconds(0)) {
      const auto wait =
          std::min(left, std::chrono::duration_cast<milliseconds>(options_.transport.io_timeout));
      n = co_await transport_.async_read_some(std::span<char>(read_buf_.get(), kReadBytes), wait);
    }
    if (!n) {
      if (by_deadline && n.error().code == make_error_code(TransportErrc::read_timeout)) {
        co_return make_sync_error(SyncErrc::connection,
                                  std::string(what) + ": " + transport_.peer() +
                                      " did not finish answering within " + std::string(limit) +
                                      ", sending too slowly or without end",
                                  RetryClass::retry_later);
      }
      co_return from_transport(n.error());
    }
    const std::string_view got(read_buf_.get(), *n);
    if (zlib_) {
      if (auto r = inflate_into_input(got); !r) co_return r.error();
      pending_ = in_;
    } else {
      pending_ = got;
    }
  }
}

SyncError Connection::refusal(const TaggedStatus& st, std::string_view what) const {
  const std::string text = std::string(what) + " refused by " + transport_.peer() + ": " +
                           (st.status == Status::bad ? "BAD " : "NO ") +
                           (st.code ? "[" + st.code->name + "] " : "") + st.text;
  if (st.code) {
    switch (st.code->kind) {
      case CodeKind::throttled:
      case CodeKind::unavailable:
      case CodeKind::over_quota:
      case CodeKind::in_use:
      case CodeKind::limit:
        return make_sync_error(SyncErrc::server_busy, text, RetryClass::retry_later);
      case CodeKind::authentication_failed:
      case CodeKind::authorization_failed:
      case CodeKind::expired:
      case CodeKind::privacy_required:
        return make_sync_error(SyncErrc::auth_failed, text, RetryClass::needs_user);
      default:
        break;
    }
  }
  if (icontains(st.text, "too many simultaneous") || icontains(st.text, "too many connections") ||
      icontains(st.text, "try again later")) {
    return make_sync_error(SyncErrc::server_busy, text, RetryClass::retry_later);
  }
  return make_sync_error(SyncErrc::server_refused, text, RetryClass::retry_later);
}

void Connection::sent(const Command& cmd) { outstanding_.push_back(cmd.tag); }

Awaitable<SyncResult<void>> Connection::send(const Command& cmd) {
  auto w = co_await write(cmd.segments.front());
  if (w) sent(cmd);
  co_return w;
}

Awaitable<SyncResult<TaggedStatus>> Connection::run(const Command& cmd, const Handler& on_untagged,
                                                    std::string_view what, Malformed malformed) {
  if (auto w = co_await write(cmd.segments.front()); !w) co_return w.error();
  sent(cmd);
  co_return co_await finish(cmd, on_untagged, what, malformed);
}

Awaitable<SyncResult<TaggedStatus>> Connection::finish(const Command& cmd,
                                                       const Handler& on_untagged,
                                                       std::string_view what, Malformed malformed) {
  std::erase(outstanding_, cmd.tag);
  if (auto done = completed_.find(cmd.tag); done != completed_.end()) {
    TaggedStatus t = std::move(done->second);
    completed_.erase(done);
    if (t.status != Status::ok) co_return refusal(t, what);
    co_return t;
  }
  // Past this many completions of commands never sent, the server is not
  // one to follow (each would otherwise only be dropped).
  constexpr std::uint64_t k_max_stray = 1000;
  const std::uint64_t malformed_before = malformed_;
  const auto deadline = Clock::now() + options_.command_timeout;
  const std::string limit =
      std::to_string(options_.command_timeout.count()) + " s (command_timeout_seconds)";
  std::size_t next_segment = 1;
  for (;;) {
    auto r = co_await next(deadline, what, limit);
    if (!r) co_return r.error();
    if (auto* t = std::get_if<TaggedStatus>(&*r)) {
      if (t->tag != cmd.tag) {
        if (std::find(outstanding_.begin(), outstanding_.end(), t->tag) != outstanding_.end()) {
          completed_.insert_or_assign(t->tag, std::move(*t));
        } else if (++stray_completions_ > k_max_stray) {
          co_return make_sync_error(SyncErrc::protocol,
                                    transport_.peer() + " sent more than " +
                                        std::to_string(k_max_stray) +
                                        " completions of commands never sent",
                                    RetryClass::retry_later);
        }
        continue;
      }
      if (t->status != Status::ok) co_return refusal(*t, what);
      if (malformed == Malformed::fail && malformed_ != malformed_before) {
        co_return make_sync_error(SyncErrc::protocol,
                                  std::string(what) + ": a response from " + transport_.peer() +
                                      " could not be read: " + last_malformed_,
                                  RetryClass::retry_later);
      }
      co_return std::move(*t);
    }
    if (auto* c = std::get_if<Continuation>(&*r)) {
      if (next_segment < cmd.segments.size()) {
        if (auto w = co_await write(cmd.segments[next_segment++]); !w) co_return w.error();
      } else {
        // A challenge after the last segment: SASL failure details. Answer
        // empty so that the tagged NO follows.
        (void)c;
        if (auto w = co_await write(CommandBuilder::sasl_empty_response()); !w) co_return w.error();
      }
      continue;
    }
    if (on_untagged) on_untagged(*r);
  }
}

Awaitable<SyncResult<void>> Connection::send(const std::vector<Command>& cmds) {
  if (cmds.empty()) co_return SyncResult<void>{};
  std::string all;
  for (const auto& c : cmds) all += c.bytes();
  auto w = co_await write(all);
  if (w) {
    for (const auto& c : cmds) sent(c);
  }
  co_return w;
}

Awaitable<SyncResult<void>> Connection::finish(const std::vector<Command>& cmds,
                                               const Handler& on_untagged, std::string_view what) {
  std::optional<SyncError> first_error;
  for (const auto& c : cmds) {
    auto r = co_await finish(c, on_untagged, what, Malformed::tolerate);
    if (r) continue;
    // A refusal still lets the rest complete; a broken connection does not.
    if (r.error().code != make_error_code(SyncErrc::server_refused) &&
        r.error().code != make_error_code(SyncErrc::server_busy) &&
        r.error().code != make_error_code(SyncErrc::auth_failed)) {
      co_return r.error();
    }
    if (!first_error) first_error = r.error();
  }
  if (first_error) co_return *first_error;
  co_return SyncResult<void>{};
}

Awaitable<SyncResult<void>> Connection::refresh_capabilities(const TaggedStatus& after) {
  if (after.code && after.code->kind == CodeKind::capability && !after.code->atoms.empty()) {
    caps_.names = after.code->atoms;
  } else {
    // Named locals, never temporaries, in co_await expressions: GCC 12 can
    // destroy such temporaries twice.
    const Command cmd = builder_.capability();
    const Handler keep = [&](Response& resp) {
      if (auto* c = std::get_if<Capabilities>(&resp)) caps_ = std::move(*c);
    };
    auto r = co_await run(cmd, keep, "CAPABILITY");
    if (!r) co_return r.error();
  }
  BuilderOptions bo;
  bo.literal_plus = caps_.has("LITERAL+");
  bo.literal_minus = caps_.has("LITERAL-");
  builder_.set_options(bo);
  co_return SyncResult<void>{};
}

Awaitable<SyncResult<void>> Connection::open() {
  parser_.reset();
  in_.clear();
  pending_ = {};
  caps_ = {};
  zlib_.reset();
  outstanding_.clear();
  completed_.clear();
  stray_completions_ = 0;
  builder_.set_options({});
  if (auto c = co_await transport_.async_connect(); !c) co_return from_transport(c.error());

  const auto greeted_by = Clock::now() + options_.transport.connect_timeout;
  auto greeting = co_await next(greeted_by, "greeting", "the connect timeout");
  if (!greeting) co_return greeting.error();
  auto* g = std::get_if<UntaggedStatus>(&*greeting);
  if (!g || (g->status != Status::ok && g->status != Status::preauth)) {
    co_return make_sync_error(SyncErrc::protocol, transport_.peer() + " sent no IMAP greeting",
                              RetryClass::retry_later);
  }
  const bool preauth = g->status == Status::preauth;
  {
    TaggedStatus pseudo;
    if (g->code && g->code->kind == CodeKind::capability) pseudo.code = g->code;
    if (auto r = co_await refresh_capabilities(pseudo); !r) co_return r.error();
  }

  if (options_.transport.tls == TlsMode::starttls && !transport_.is_tls()) {
    if (!caps_.has("STARTTLS")) {
      co_return make_sync_error(SyncErrc::no_tls,
                                transport_.peer() +
                                    " does not offer STARTTLS; refusing to log in without TLS "
                                    "(use imaps://, or allow_insecure for a test server)",
                                RetryClass::needs_user);
    }
    const Command cmd = builder_.starttls();
    const Handler none;
    auto st = co_await run(cmd, none, "STARTTLS");
    if (!st) co_return st.error();
    // Bytes read past the OK came in the clear and may be injected: drop them.
    parser_.reset();
    in_.clear();
    pending_ = {};
    if (auto t = co_await transport_.async_start_tls(); !t) co_return from_transport(t.error());
    const TaggedStatus no_code;
    if (auto r = co_await refresh_capabilities(no_code); !r) co_return r.error();
  }

  if (!preauth) {
    auto secret =
        options_.secret
            ? options_.secret()
            : SyncResult<std::string>(make_sync_error(
                  SyncErrc::credential, "no password or token configured", RetryClass::needs_user));
    if (!secret) co_return secret.error();
    AuthMethod m = options_.auth;
    if (m == AuthMethod::automatic) {
      if (caps_.has("AUTH=PLAIN")) {
        m = AuthMethod::plain;
      } else if (!caps_.has("LOGINDISABLED")) {
        m = AuthMethod::login;
      } else {
        co_return make_sync_error(SyncErrc::auth_failed,
                                  transport_.peer() + " offers neither AUTH=PLAIN nor LOGIN",
                                  RetryClass::needs_user);
      }
    }
    const bool ir = caps_.has("SASL-IR");
    Result<Command> cmd = [&]() -> Result<Command> {
      switch (m) {
        case AuthMethod::plain:
          return builder_.authenticate_plain(options_.username, *secret, ir);
        case AuthMethod::xoauth2:
          return builder_.authenticate_xoauth2(options_.username, *secret, ir);
        case AuthMethod::oauthbearer:
          return builder_.authenticate_oauthbearer(
              options_.username, *secret, ir, options_.transport.host, options_.transport.port);
        default:
          return builder_.login(options_.username, *secret);
      }
    }();
    if (!cmd) {
      co_return make_sync_error(SyncErrc::credential,
                                "the user name or secret for " + options_.name +
                                    " cannot be sent: " + cmd.error().message(),
                                RetryClass::needs_user);
    }
    const std::string what = "login as " + options_.username;
    const Handler none;
    auto st = co_await run(*cmd, none, what);
    if (!st) {
      SyncError e = st.error();
      // Any refusal of the login itself is the user's to fix: no retry storm.
      if (e.code == make_error_code(SyncErrc::server_refused)) {
        e.code = make_error_code(SyncErrc::auth_failed);
        e.retry = RetryClass::needs_user;
      }
      co_return e;
    }
    if (auto r = co_await refresh_capabilities(*st); !r) co_return r.error();
  }

  if (caps_.has("ID")) {
    const std::array<std::pair<std::string_view, std::string_view>, 2> fields{
        {{"name", "crm-capture"}, {"version", "0.1.0"}}};
    if (auto c = builder_.id(fields)) {
      const Handler none;
      if (auto r = co_await run(*c, none, "ID"); !r) co_return r.error();
    }
  }
  qresync_ = false;
  if (caps_.has("ENABLE") && (caps_.has("CONDSTORE") || caps_.has("QRESYNC"))) {
    // QRESYNC implies CONDSTORE (RFC 7162, section 3.2.3); the server says
    // in ENABLED what it turned on.
    const std::array<std::string_view, 1> condstore{"CONDSTORE"};
    const std::array<std::string_view, 2> both{"CONDSTORE", "QRESYNC"};
    const std::span<const std::string_view> caps =
        caps_.has("QRESYNC") ? std::span<const std::string_view>(both)
                             : std::span<const std::string_view>(condstore);
    if (auto c = builder_.enable(caps)) {
      const Handler on_enabled = [this](Response& r) {
        if (const auto* e = std::get_if<Enabled>(&r)) {
          for (const auto& name : e->capabilities) {
            if (iequals(name, "QRESYNC")) qresync_ = true;
          }
        }
      };
      if (auto r = co_await run(*c, on_enabled, "ENABLE"); !r) co_return r.error();
    }
  }
  if (caps_.has("COMPRESS=DEFLATE")) {
    const auto& host = options_.transport.host;
    const bool loopback = host == "localhost" || host.starts_with("127.") || host == "::1";
    const auto mode = options_.compress;
    if (mode == AccountOptions::Compress::always ||
        (mode == AccountOptions::Compress::automatic && !loopback)) {
      if (auto r = co_await start_compression(); !r) co_return r.error();
    }
  }
  co_return SyncResult<void>{};
}

Awaitable<SyncResult<void>> Connection::idle(std::chrono::milliseconds timeout,
                                             const std::function<bool(const Response&)>& wake) {
  const Command cmd = builder_.idle();
  if (auto w = co_await write(cmd.segments.front()); !w) co_return w.error();
  // Wait for "+ idling". What the server reports before it (mail that came
  // since the last command) can wake the IDLE too: DONE then follows at once.
  bool woke = false;
  const auto idling_by = Clock::now() + options_.transport.io_timeout;
  for (;;) {
    auto r = co_await next(idling_by, "IDLE", "timeout_seconds");
    if (!r) co_return r.error();
    if (std::holds_alternative<Continuation>(*r)) break;
    if (auto* t = std::get_if<TaggedStatus>(&*r); t && t->tag == cmd.tag) {
      if (t->status != Status::ok) co_return refusal(*t, "IDLE");
      co_return SyncResult<void>{};
    }
    if (!woke && wake(*r)) woke = true;
  }
  // A timer ends the IDLE by writing DONE while the read below waits: the
  // transport allows one read and one write at a time.
  auto ex = co_await asio::this_coro::executor;
  auto timer =
      std::make_shared<asio::steady_timer>(ex, woke ? std::chrono::milliseconds(0) : timeout);
  auto done_sent = std::make_shared<bool>(false);
  asio::co_spawn(
      ex,
      [this, timer, done_sent]() -> Awaitable<void> {
        auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || *done_sent) co_return;
        *done_sent = true;
        (void)co_await write(CommandBuilder::done());
      },
      asio::detached);
  // The server must answer DONE within its own timeout plus a margin.
  const auto deadline = Clock::now() + timeout + options_.transport.io_timeout;
  for (;;) {
    auto r = co_await next(deadline, "IDLE", "its wait and timeout_seconds");
    if (!r) {
      timer->cancel();
      co_return r.error();
    }
    if (auto* t = std::get_if<TaggedStatus>(&*r); t && t->tag == cmd.tag) {
      timer->cancel();
      if (t->status != Status::ok) co_return refusal(*t, "IDLE");
      co_return SyncResult<void>{};
    }
    if (!*done_sent && wake(*r)) {
      *done_sent = true;
      timer->cancel();
      if (auto w = co_await write(CommandBuilder::done()); !w) co_return w.error();
    }
  }
}

Awaitable<void> Connection::logout() {
  if (transport_.is_open()) {
    const Command cmd = builder_.logout();
    const Handler none;
    (void)co_await run(cmd, none, "LOGOUT");
    co_await transport_.async_close();
  }
}

void Connection::close() noexcept { transport_.close(); }

}  // namespace detail
}  // namespace crmcap::imap
