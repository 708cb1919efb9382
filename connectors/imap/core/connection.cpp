// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/connection.hpp"

#include "connectors/imap/core/detail.hpp"

#include <algorithm>
#include <array>
#include <memory>

#include <zlib.h>

namespace crmcap::imap::detail {

namespace {

bool icontains(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

}  // namespace

std::string peer_of(const TransportOptions& o) {
  const bool v6 = o.host.find(':') != std::string::npos;
  return (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
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

Connection::Connection(const AccountOptions& options, Exchange& exchange,
                       const SessionClocks& clocks)
    : options_(options),
      ex_(exchange),
      clocks_(clocks),
      peer_(peer_of(options.transport)),
      read_buf_(std::make_unique_for_overwrite<char[]>(kReadBytes)),
      builder_("C") {}

Connection::~Connection() = default;

SyncResult<void> Connection::deflate_into_output(std::string_view bytes) {
  out_.clear();
  z_stream& z = zlib_->out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  do {
    char chunk[16384];
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    const int rc = deflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return make_sync_error(SyncErrc::protocol, "deflate failed", RetryClass::retry_later);
    }
    out_.append(chunk, sizeof chunk - z.avail_out);
  } while (z.avail_out == 0);
  return {};
}

Task<SyncResult<void>> Connection::write(std::string_view bytes) {
  if (zlib_) {
    // Each write is flushed (Z_SYNC_FLUSH) so the server sees whole commands.
    if (auto d = deflate_into_output(bytes); !d) co_return d.error();
    bytes = out_;
  }
  ex_.next(Action::Kind::write).bytes = bytes;
  co_await ex_.need();
  if (ex_.io->error) co_return from_transport(*ex_.io->error);
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
                             peer_ + ": the server's compressed stream is corrupt",
                             RetryClass::retry_later);
    }
    in_.append(chunk, sizeof chunk - z.avail_out);
    if (rc == Z_STREAM_END || (rc == Z_BUF_ERROR && z.avail_out != 0)) break;
  }
  return {};
}

Task<SyncResult<void>> Connection::start_compression() {
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

Task<SyncResult<std::optional<Response>>> Connection::next(
    Clock::time_point deadline, std::string_view what, std::string_view limit,
    std::optional<Clock::time_point> wake_at) {
  using std::chrono::milliseconds;
  for (;;) {
    if (!pending_.empty()) {
      const auto step = parser_.feed(pending_);
      if (step == ResponseParser::Step::event) {
        Response r = parser_.take();
        if (auto* u = std::get_if<UntaggedStatus>(&r); u && u->status == Status::bye) {
          co_return make_sync_error(SyncErrc::server_busy,
                                    peer_ + " closed the session (BYE " + u->text + ")",
                                    RetryClass::retry_later);
        }
        if (observer_) observer_(r);
        co_return std::move(r);
      }
      if (step == ResponseParser::Step::error) {
        if (parser_.broken()) {
          co_return make_sync_error(
              SyncErrc::protocol,
              peer_ + ": cannot follow the server's response: " + parser_.error_detail(),
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
    std::optional<TransportError> failed;
    std::size_t n = 0;
    if (!reading_) {
      const auto left = std::chrono::ceil<milliseconds>(deadline - now());
      read_by_deadline_ = left < options_.transport.io_timeout;
      if (left <= milliseconds(0)) {
        failed = TransportError{make_error_code(TransportErrc::read_timeout), {}, std::string()};
      } else {
        Action& a = ex_.next(Action::Kind::read);
        a.into = std::span<char>(read_buf_.get(), kReadBytes);
        // A read that waits for its wake_at (IDLE) is silent until then by
        // design: only its deadline bounds it, not timeout_seconds.
        a.timeout = wake_at ? left : std::min(left, options_.transport.io_timeout);
        a.wake_at = wake_at;
      }
    } else {
      // The read a wake_at left going: the same buffer, its own timeout.
      Action& a = ex_.next(Action::Kind::read);
      a.into = std::span<char>(read_buf_.get(), kReadBytes);
      a.timeout = options_.transport.io_timeout;
      a.wake_at = wake_at;
    }
    if (!failed) {
      reading_ = true;
      co_await ex_.need();
      if (ex_.io->woken && !ex_.io->error) co_return std::optional<Response>();
      reading_ = false;
      failed = std::move(ex_.io->error);
      n = ex_.io->bytes;
    }
    if (failed) {
      if (read_by_deadline_ && failed->code == make_error_code(TransportErrc::read_timeout)) {
        co_return make_sync_error(SyncErrc::connection,
                                  std::string(what) + ": " + peer_ +
                                      " did not finish answering within " + std::string(limit) +
                                      ", sending too slowly or without end",
                                  RetryClass::retry_later);
      }
      co_return from_transport(*failed);
    }
    const std::string_view got(read_buf_.get(), std::min(n, kReadBytes));
    if (zlib_) {
      if (auto r = inflate_into_input(got); !r) co_return r.error();
      pending_ = in_;
    } else {
      pending_ = got;
    }
  }
}

SyncError Connection::refusal(const TaggedStatus& st, std::string_view what) const {
  const std::string text = std::string(what) + " refused by " + peer_ + ": " +
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

Task<SyncResult<void>> Connection::send(const Command& cmd) {
  auto w = co_await write(cmd.segments.front());
  if (w) sent(cmd);
  co_return w;
}

Task<SyncResult<TaggedStatus>> Connection::run(const Command& cmd, const Handler& on_untagged,
                                               std::string_view what, Malformed malformed) {
  if (auto w = co_await write(cmd.segments.front()); !w) co_return w.error();
  sent(cmd);
  co_return co_await finish(cmd, on_untagged, what, malformed);
}

Task<SyncResult<TaggedStatus>> Connection::finish(const Command& cmd, const Handler& on_untagged,
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
  const auto deadline = now() + options_.command_timeout;
  const std::string limit =
      std::to_string(options_.command_timeout.count()) + " s (command_timeout_seconds)";
  std::size_t next_segment = 1;
  for (;;) {
    auto r = co_await next(deadline, what, limit);
    if (!r) co_return r.error();
    Response& resp = **r;
    if (auto* t = std::get_if<TaggedStatus>(&resp)) {
      if (t->tag != cmd.tag) {
        if (std::find(outstanding_.begin(), outstanding_.end(), t->tag) != outstanding_.end()) {
          completed_.insert_or_assign(t->tag, std::move(*t));
        } else if (++stray_completions_ > k_max_stray) {
          co_return make_sync_error(SyncErrc::protocol,
                                    peer_ + " sent more than " + std::to_string(k_max_stray) +
                                        " completions of commands never sent",
                                    RetryClass::retry_later);
        }
        continue;
      }
      if (t->status != Status::ok) co_return refusal(*t, what);
      if (malformed == Malformed::fail && malformed_ != malformed_before) {
        co_return make_sync_error(SyncErrc::protocol,
                                  std::string(what) + ": a response from " + peer_ +
                                      " could not be read: " + last_malformed_,
                                  RetryClass::retry_later);
      }
      co_return std::move(*t);
    }
    if (std::holds_alternative<Continuation>(resp)) {
      if (next_segment < cmd.segments.size()) {
        if (auto w = co_await write(cmd.segments[next_segment++]); !w) co_return w.error();
      } else {
        // A challenge after the last segment: SASL failure details. Answer
        // empty so that the tagged NO follows.
        if (auto w = co_await write(CommandBuilder::sasl_empty_response()); !w) co_return w.error();
      }
      continue;
    }
    if (on_untagged) on_untagged(resp);
  }
}

Task<SyncResult<void>> Connection::send(const std::vector<Command>& cmds) {
  if (cmds.empty()) co_return SyncResult<void>{};
  std::string all;
  for (const auto& c : cmds) all += c.bytes();
  auto w = co_await write(all);
  if (w) {
    for (const auto& c : cmds) sent(c);
  }
  co_return w;
}

Task<SyncResult<void>> Connection::finish(const std::vector<Command>& cmds,
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

Task<SyncResult<void>> Connection::refresh_capabilities(const TaggedStatus& after) {
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

Task<SyncResult<void>> Connection::open() {
  parser_.reset();
  in_.clear();
  pending_ = {};
  caps_ = {};
  zlib_.reset();
  outstanding_.clear();
  completed_.clear();
  stray_completions_ = 0;
  reading_ = false;
  builder_.set_options({});
  ex_.next(Action::Kind::connect);
  co_await ex_.need();
  if (ex_.io->error) co_return from_transport(*ex_.io->error);

  const auto greeted_by = now() + options_.transport.connect_timeout;
  auto greeting = co_await next(greeted_by, "greeting", "the connect timeout");
  if (!greeting) co_return greeting.error();
  auto* g = std::get_if<UntaggedStatus>(&**greeting);
  if (!g || (g->status != Status::ok && g->status != Status::preauth)) {
    co_return make_sync_error(SyncErrc::protocol, peer_ + " sent no IMAP greeting",
                              RetryClass::retry_later);
  }
  const bool preauth = g->status == Status::preauth;
  {
    TaggedStatus pseudo;
    if (g->code && g->code->kind == CodeKind::capability) pseudo.code = g->code;
    if (auto r = co_await refresh_capabilities(pseudo); !r) co_return r.error();
  }

  if (options_.transport.tls == TlsMode::starttls) {
    if (!caps_.has("STARTTLS")) {
      co_return make_sync_error(SyncErrc::no_tls,
                                peer_ +
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
    ex_.next(Action::Kind::start_tls);
    co_await ex_.need();
    if (ex_.io->error) co_return from_transport(*ex_.io->error);
    const TaggedStatus no_code;
    if (auto r = co_await refresh_capabilities(no_code); !r) co_return r.error();
  }

  if (!preauth) {
    if (auto r = co_await log_in(); !r) co_return r.error();
  }

  if (caps_.has("ID")) {
    const std::array<std::pair<std::string_view, std::string_view>, 2> fields{
        {{"name", "crm-capture"}, {"version", "0.1.0"}}};
    if (auto c = builder_.id(fields)) {
      const Handler none;
      if (auto r = co_await run(*c, none, "ID"); !r) co_return r.error();
    }
  }
  if (auto r = co_await enable(); !r) co_return r.error();
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

Task<SyncResult<void>> Connection::log_in() {
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
                                peer_ + " offers neither AUTH=PLAIN nor LOGIN",
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
        return builder_.authenticate_oauthbearer(options_.username, *secret, ir,
                                                 options_.transport.host, options_.transport.port);
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
  co_return co_await refresh_capabilities(*st);
}

Task<SyncResult<void>> Connection::enable() {
  qresync_ = false;
  if (!caps_.has("ENABLE") || !(caps_.has("CONDSTORE") || caps_.has("QRESYNC"))) {
    co_return SyncResult<void>{};
  }
  // QRESYNC implies CONDSTORE (RFC 7162, section 3.2.3); the server says
  // in ENABLED what it turned on.
  const std::array<std::string_view, 1> condstore{"CONDSTORE"};
  const std::array<std::string_view, 2> both{"CONDSTORE", "QRESYNC"};
  const std::span<const std::string_view> caps = caps_.has("QRESYNC")
                                                     ? std::span<const std::string_view>(both)
                                                     : std::span<const std::string_view>(condstore);
  auto c = builder_.enable(caps);
  if (!c) co_return SyncResult<void>{};
  const Handler on_enabled = [this](Response& r) {
    if (const auto* e = std::get_if<Enabled>(&r)) {
      for (const auto& name : e->capabilities) {
        if (iequals(name, "QRESYNC")) qresync_ = true;
      }
    }
  };
  if (auto r = co_await run(*c, on_enabled, "ENABLE"); !r) co_return r.error();
  co_return SyncResult<void>{};
}

Task<SyncResult<void>> Connection::idle(std::chrono::milliseconds timeout,
                                        const std::function<bool(const Response&)>& wake) {
  const Command cmd = builder_.idle();
  if (auto w = co_await write(cmd.segments.front()); !w) co_return w.error();
  // Wait for "+ idling". What the server reports before it (mail that came
  // since the last command) can wake the IDLE too: DONE then follows at once.
  bool woke = false;
  const auto idling_by = now() + options_.transport.io_timeout;
  for (;;) {
    auto r = co_await next(idling_by, "IDLE", "timeout_seconds");
    if (!r) co_return r.error();
    const Response& resp = **r;
    if (std::holds_alternative<Continuation>(resp)) break;
    if (auto* t = std::get_if<TaggedStatus>(&resp); t && t->tag == cmd.tag) {
      if (t->status != Status::ok) co_return refusal(*t, "IDLE");
      co_return SyncResult<void>{};
    }
    if (!woke && wake(resp)) woke = true;
  }
  // DONE ends the IDLE when `timeout` passes with the read still waiting
  // (the read's wake_at: the transport allows one read and one write at a
  // time), or at once when a response wakes it.
  bool done_sent = false;
  if (woke) {
    if (auto w = co_await write(CommandBuilder::done()); !w) co_return w.error();
    done_sent = true;
  }
  const auto done_at = now() + timeout;
  // The server must answer DONE within its own timeout plus a margin.
  const auto deadline = done_at + options_.transport.io_timeout;
  for (;;) {
    const auto wake_at = done_sent ? std::nullopt : std::optional<Clock::time_point>(done_at);
    auto r = co_await next(deadline, "IDLE", "its wait and timeout_seconds", wake_at);
    if (!r) co_return r.error();
    if (!*r) {
      // The wait is over; the read goes on for the answer to DONE.
      done_sent = true;
      if (auto w = co_await write(CommandBuilder::done()); !w) co_return w.error();
      continue;
    }
    if (auto* t = std::get_if<TaggedStatus>(&**r); t && t->tag == cmd.tag) {
      if (t->status != Status::ok) co_return refusal(*t, "IDLE");
      co_return SyncResult<void>{};
    }
    if (!done_sent && wake(**r)) {
      done_sent = true;
      if (auto w = co_await write(CommandBuilder::done()); !w) co_return w.error();
    }
  }
}

Task<void> Connection::logout() {
  const Command cmd = builder_.logout();
  const Handler none;
  (void)co_await run(cmd, none, "LOGOUT");
  ex_.next(Action::Kind::close);
  co_await ex_.need();
}

}  // namespace crmcap::imap::detail
