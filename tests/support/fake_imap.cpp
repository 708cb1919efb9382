// SPDX-License-Identifier: Apache-2.0
#include "tests/support/fake_imap.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace crmcap::test {

namespace {

// Every wait polls this often, so that the destructor is never kept waiting.
constexpr int k_poll_ms = 50;
// A client silent (or not reading) this long is taken as gone.
constexpr auto k_idle_limit = std::chrono::seconds(30);
// A command longer than this (literals included) ends the connection.
constexpr std::size_t k_max_command = 1u << 20;
constexpr std::uint32_t k_star = 0xFFFFFFFFu;  // "*" in a UID set
// What malformed_at_step writes where the response has no message of its own.
constexpr std::string_view k_malformed = "* 1 FETCH (UID 1 BODYSTRUCTURE (\"TEXT\" ))))\r\n";

std::string malformed_fetch(std::size_t seq, std::uint32_t uid) {
  return "* " + std::to_string(seq) + " FETCH (UID " + std::to_string(uid) +
         " BODYSTRUCTURE (\"TEXT\" ))))\r\n";
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return upper(a) == upper(b); }

std::string with_crlf(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 16);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) out += '\r';
    out += raw[i];
  }
  return out;
}

// A mailbox name or other string as an IMAP astring: an atom when it is one,
// else quoted.
std::string astring(std::string_view s) {
  const bool atom = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return c > ' ' && c < 0x7f && std::strchr("(){%*\"\\]", c) == nullptr;
  });
  if (atom) return std::string(s);
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

std::string literal(std::string_view bytes) {
  return "{" + std::to_string(bytes.size()) + "}\r\n" + std::string(bytes);
}

constexpr std::array<const char*, 12> k_months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string internaldate_text(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
                k_months[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buf;
}

// A search date ("6-Dec-2026" or "06-Dec-2026") as days since 1970-01-01.
std::optional<std::int64_t> search_day(std::string_view s) {
  const auto a = s.find('-'), b = s.rfind('-');
  if (a == std::string_view::npos || a == b) return std::nullopt;
  unsigned day = 0;
  int year = 0;
  const std::string_view d = s.substr(0, a), m = s.substr(a + 1, b - a - 1), y = s.substr(b + 1);
  if (std::from_chars(d.data(), d.data() + d.size(), day).ec != std::errc{} ||
      std::from_chars(y.data(), y.data() + y.size(), year).ec != std::errc{}) {
    return std::nullopt;
  }
  for (unsigned i = 0; i < k_months.size(); ++i) {
    if (!iequals(m, k_months[i])) continue;
    const std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(i + 1),
                                          std::chrono::day(day)};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days(ymd).time_since_epoch().count();
  }
  return std::nullopt;
}

std::int64_t day_of(std::int64_t unix_seconds) {
  return unix_seconds >= 0 ? unix_seconds / 86400 : -((-unix_seconds + 86399) / 86400);
}

// A token of a command: an atom (a fetch item with its [section] and
// <partial> included), a string (quoted or literal), or a parenthesised list.
struct Token {
  enum class Kind { atom, string, list };
  Kind kind = Kind::atom;
  std::string text;
  std::vector<Token> items;
  bool is_text() const { return kind != Kind::list; }  // an astring
};

// Splits a whole command (literals inline, after their "{n}\r\n") into tokens.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}
  bool parse(std::vector<Token>& out) { return tokens(out, false) && i_ == s_.size(); }

 private:
  bool tokens(std::vector<Token>& out, bool in_list) {
    bool first = true;
    for (;;) {
      if (i_ == s_.size()) return !in_list;
      if (s_[i_] == ')') {
        if (!in_list) return false;
        ++i_;
        return true;
      }
      if (!first) {
        if (s_[i_] != ' ') return false;
        ++i_;
      }
      first = false;
      Token t;
      if (!token(t)) return false;
      out.push_back(std::move(t));
    }
  }

  bool token(Token& t) {
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '(') {
      ++i_;
      t.kind = Token::Kind::list;
      return tokens(t.items, true);
    }
    if (c == '"') {
      ++i_;
      t.kind = Token::Kind::string;
      while (i_ < s_.size()) {
        const char d = s_[i_++];
        if (d == '"') return true;
        if (d == '\r' || d == '\n') return false;
        if (d == '\\') {
          if (i_ >= s_.size()) return false;
          t.text += s_[i_++];
        } else {
          t.text += d;
        }
      }
      return false;
    }
    if (c == '{') {
      const auto close = s_.find('}', i_);
      if (close == std::string_view::npos) return false;
      std::string_view n = s_.substr(i_ + 1, close - i_ - 1);
      if (!n.empty() && n.back() == '+') n.remove_suffix(1);
      std::size_t len = 0;
      const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), len);
      if (ec != std::errc{} || end != n.data() + n.size()) return false;
      if (s_.substr(close + 1, 2) != "\r\n") return false;
      i_ = close + 3;
      if (s_.size() - i_ < len) return false;
      t.kind = Token::Kind::string;
      t.text = std::string(s_.substr(i_, len));
      i_ += len;
      return true;
    }
    const std::size_t start = i_;
    while (i_ < s_.size()) {
      const char d = s_[i_];
      if (d == '[') {
        // A section: spaces and parentheses inside belong to the atom.
        const auto close = s_.find(']', i_);
        if (close == std::string_view::npos) return false;
        i_ = close + 1;
        continue;
      }
      if (d == ' ' || d == '(' || d == ')' || d == '"' || d == '{' ||
          static_cast<unsigned char>(d) < 0x20) {
        break;
      }
      ++i_;
    }
    if (i_ == start) return false;
    t.kind = Token::Kind::atom;
    t.text = std::string(s_.substr(start, i_ - start));
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

using UidRanges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

// "1:5,7,9:*" ("*" as k_star); nullopt when it is no set.
std::optional<UidRanges> parse_set(std::string_view s) {
  UidRanges out;
  auto number = [](std::string_view n) -> std::optional<std::uint32_t> {
    if (n == "*") return k_star;
    std::uint32_t v = 0;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
    if (ec != std::errc{} || end != n.data() + n.size() || v == 0) return std::nullopt;
    return v;
  };
  while (!s.empty()) {
    const auto comma = s.find(',');
    const std::string_view part = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    if (comma != std::string_view::npos && s.empty()) return std::nullopt;
    const auto colon = part.find(':');
    const auto a = number(part.substr(0, colon));
    const auto b = colon == std::string_view::npos ? a : number(part.substr(colon + 1));
    if (!a || !b) return std::nullopt;
    out.emplace_back(*a, *b);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// Whether `uid` is in `set`, where "*" is the folder's largest UID (`max`).
bool in_set(std::uint32_t uid, const UidRanges& set, std::uint32_t max) {
  for (auto [a, b] : set) {
    if (a == k_star) a = max;
    if (b == k_star) b = max;
    if (a > b) std::swap(a, b);
    if (uid >= a && uid <= b) return true;
  }
  return false;
}

std::string header_of(const std::string& raw) {
  const auto end = raw.find("\r\n\r\n");
  return end == std::string::npos ? raw : raw.substr(0, end + 4);
}

std::string text_of(const std::string& raw) {
  const auto end = raw.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : raw.substr(end + 4);
}

// The header fields named in `names` (or, with `negate`, the others), each
// with its continuation lines, then the blank line (RFC 3501, 6.4.5).
std::string header_fields(const std::string& raw, const std::vector<std::string>& names,
                          bool negate) {
  const std::string header = header_of(raw);
  std::string out;
  bool keep = false;
  std::size_t at = 0;
  while (at < header.size()) {
    auto eol = header.find("\r\n", at);
    eol = eol == std::string::npos ? header.size() : eol + 2;
    const std::string_view line(header.data() + at, eol - at);
    at = eol;
    if (line == "\r\n") break;
    if (line[0] != ' ' && line[0] != '\t') {
      const std::string_view name = line.substr(0, line.find(':'));
      const bool named = std::any_of(names.begin(), names.end(),
                                     [&](const std::string& n) { return iequals(n, name); });
      keep = named != negate;
    }
    if (keep) out += line;
  }
  return out + "\r\n";
}

std::size_t lines_of(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

// One FETCH item asked for.
struct Item {
  enum class Kind { uid, flags, internaldate, size, bodystructure, section };
  Kind kind = Kind::uid;
  // Of a section: which, as the client named it (the answer names it so);
  // what it holds, and <origin.count>.
  std::string name;
  enum class Part { whole, header, text, fields, fields_not };
  Part part = Part::whole;
  std::vector<std::string> fields;
  std::optional<std::pair<std::size_t, std::size_t>> partial;
};

std::optional<Item> parse_item(const std::string& atom) {
  const std::string u = upper(atom);
  Item it;
  if (u == "UID") return it;
  if (u == "FLAGS") {
    it.kind = Item::Kind::flags;
    return it;
  }
  if (u == "INTERNALDATE") {
    it.kind = Item::Kind::internaldate;
    return it;
  }
  if (u == "RFC822.SIZE") {
    it.kind = Item::Kind::size;
    return it;
  }
  if (u == "BODYSTRUCTURE" || u == "BODY") {
    it.kind = Item::Kind::bodystructure;
    return it;
  }
  std::size_t open = 0;
  if (u.starts_with("BODY.PEEK[")) {
    open = 9;
  } else if (u.starts_with("BODY[")) {
    open = 4;
  } else {
    return std::nullopt;
  }
  const auto close = u.find(']', open);
  if (close == std::string::npos) return std::nullopt;
  it.kind = Item::Kind::section;
  const std::string section = atom.substr(open + 1, close - open - 1);
  const std::string sec = upper(section);
  it.name = "BODY[" + section + "]";
  const std::string rest = atom.substr(close + 1);
  if (!rest.empty()) {
    const auto dot = rest.find('.');
    if (rest.front() != '<' || rest.back() != '>' || dot == std::string::npos) return std::nullopt;
    std::size_t origin = 0, count = 0;
    const std::string a = rest.substr(1, dot - 1), b = rest.substr(dot + 1, rest.size() - dot - 2);
    if (std::from_chars(a.data(), a.data() + a.size(), origin).ec != std::errc{} ||
        std::from_chars(b.data(), b.data() + b.size(), count).ec != std::errc{} || count == 0) {
      return std::nullopt;
    }
    it.partial = std::make_pair(origin, count);
    it.name += "<" + a + ">";
  }
  if (sec.empty()) {
    it.part = Item::Part::whole;
  } else if (sec == "HEADER") {
    it.part = Item::Part::header;
  } else if (sec == "TEXT" || sec == "1") {
    // Part 1 of a single-part message is its body (RFC 3501, 6.4.5).
    it.part = Item::Part::text;
  } else if (sec.starts_with("HEADER.FIELDS")) {
    const bool negate = sec.starts_with("HEADER.FIELDS.NOT");
    it.part = negate ? Item::Part::fields_not : Item::Part::fields;
    const std::string list = section.substr(negate ? 17 : 13);
    std::vector<Token> toks;
    std::string_view inner = list;
    if (inner.starts_with(' ')) inner.remove_prefix(1);
    Lexer lx(inner);
    if (!lx.parse(toks) || toks.size() != 1 || toks[0].kind != Token::Kind::list ||
        toks[0].items.empty()) {
      return std::nullopt;
    }
    for (const auto& f : toks[0].items) {
      if (!f.is_text()) return std::nullopt;
      it.fields.push_back(f.text);
    }
  } else {
    return std::nullopt;
  }
  return it;
}

std::string section_bytes(const Item& it, const std::string& raw) {
  std::string data;
  switch (it.part) {
    case Item::Part::whole:
      data = raw;
      break;
    case Item::Part::header:
      data = header_of(raw);
      break;
    case Item::Part::text:
      data = text_of(raw);
      break;
    case Item::Part::fields:
    case Item::Part::fields_not:
      data = header_fields(raw, it.fields, it.part == Item::Part::fields_not);
      break;
  }
  if (it.partial) {
    data = it.partial->first >= data.size() ? std::string()
                                            : data.substr(it.partial->first, it.partial->second);
  }
  return data;
}

std::string bodystructure(const std::string& raw) {
  const std::string text = text_of(raw);
  return "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" " +
         std::to_string(text.size()) + " " + std::to_string(lines_of(text)) + ")";
}

// Whether `line` (without its CRLF) ends in a literal's announcement; its
// length and whether it is non-synchronizing ({n+}).
bool literal_at_end(std::string_view line, std::size_t& len, bool& plus) {
  if (line.empty() || line.back() != '}') return false;
  const auto open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view n = line.substr(open + 1, line.size() - open - 2);
  plus = !n.empty() && n.back() == '+';
  if (plus) n.remove_suffix(1);
  const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), len);
  return ec == std::errc{} && end == n.data() + n.size() && !n.empty();
}

}  // namespace

struct FakeImapServer::Session {
  int fd = -1;
  std::string in;  // read, not yet taken as a command
  std::uint64_t steps = 0;
  std::uint64_t fail_at = 0, malformed_at = 0;
  bool authenticated = false;
  std::string selected;  // empty: none
};

struct FakeImapServer::Chunk {
  std::string bytes;
  std::string malformed;     // what malformed_at_step writes instead; empty: k_malformed
  std::uint64_t serial = 0;  // the message of a FETCH response; 0: none
};

FakeImapServer::FakeImapServer(std::string user, std::string password)
    : user_(std::move(user)), password_(std::move(password)) {
  folders_.push_back({"INBOX", "\\HasNoChildren", 1001, 1, {}});
  folders_.push_back({"Sent", "\\Sent", 2001, 1, {}});
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listener_, 8) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    if (listener_ >= 0) ::close(listener_);
    throw std::runtime_error("fake IMAP server: cannot listen: " + why);
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { serve(); });
}

FakeImapServer::~FakeImapServer() {
  stop_ = true;
  thread_.join();
  ::close(listener_);
}

FakeFolder* FakeImapServer::find(const std::string& name) {
  for (auto& f : folders_) {
    if (f.name == name || (iequals(name, "INBOX") && f.name == "INBOX")) return &f;
  }
  return nullptr;
}

FakeMessage& FakeImapServer::message(const std::string& folder, std::uint32_t uid) {
  FakeFolder* f = find(folder);
  if (!f) throw std::invalid_argument("fake IMAP server: no folder " + folder);
  for (auto& m : f->messages) {
    if (m.uid == uid) return m;
  }
  throw std::invalid_argument("fake IMAP server: no UID " + std::to_string(uid) + " in " + folder);
}

std::uint32_t FakeImapServer::add(const std::string& folder, const std::string& raw,
                                  std::int64_t internaldate) {
  const std::lock_guard<std::mutex> lock(mutex_);
  FakeFolder* f = find(folder);
  if (!f) throw std::invalid_argument("fake IMAP server: no folder " + folder);
  FakeMessage m;
  m.uid = f->uidnext++;
  m.raw = with_crlf(raw);
  m.internaldate = internaldate != 0 ? internaldate : static_cast<std::int64_t>(std::time(nullptr));
  m.serial = next_serial_++;
  f->messages.push_back(std::move(m));
  return f->messages.back().uid;
}

std::uint64_t FakeImapServer::expunge(const std::string& folder, std::uint32_t uid) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const std::uint64_t serial = message(folder, uid).serial;
  std::erase_if(find(folder)->messages, [&](const FakeMessage& m) { return m.uid == uid; });
  return serial;
}

std::uint32_t FakeImapServer::reset_uidvalidity(const std::string& folder) {
  const std::lock_guard<std::mutex> lock(mutex_);
  FakeFolder* f = find(folder);
  if (!f) throw std::invalid_argument("fake IMAP server: no folder " + folder);
  ++f->uidvalidity;
  f->uidnext = 1;
  for (auto& m : f->messages) m.uid = f->uidnext++;
  return f->uidvalidity;
}

void FakeImapServer::refuse(const std::string& folder, std::uint32_t uid, bool on) {
  const std::lock_guard<std::mutex> lock(mutex_);
  message(folder, uid).refused = on;
}

void FakeImapServer::unreadable(const std::string& folder, std::uint32_t uid, bool on) {
  const std::lock_guard<std::mutex> lock(mutex_);
  message(folder, uid).unreadable = on;
}

FakeFolder FakeImapServer::folder(const std::string& name) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& f : folders_) {
    if (f.name == name) return f;
  }
  throw std::invalid_argument("fake IMAP server: no folder " + name);
}

std::vector<FakeFolder> FakeImapServer::folders() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return folders_;
}

void FakeImapServer::fail_at_step(std::uint64_t step) {
  const std::lock_guard<std::mutex> lock(mutex_);
  fail_at_ = step;
}

void FakeImapServer::malformed_at_step(std::uint64_t step) {
  const std::lock_guard<std::mutex> lock(mutex_);
  malformed_at_ = step;
}

void FakeImapServer::clear_faults() {
  const std::lock_guard<std::mutex> lock(mutex_);
  fail_at_ = malformed_at_ = 0;
}

std::set<std::uint64_t> FakeImapServer::glitched() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return glitched_;
}

std::vector<std::string> FakeImapServer::commands() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return commands_;
}

void FakeImapServer::serve() {
  while (!stop_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, k_poll_ms) <= 0) continue;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serving_ = true;
    try {
      serve_connection(fd);
    } catch (...) {
      // Out of memory, or a bug here: the client sees the connection end.
    }
    ::close(fd);
    serving_ = false;
  }
}

void FakeImapServer::serve_connection(int fd) {
  Session s;
  s.fd = fd;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    s.fail_at = std::exchange(fail_at_, 0);
    s.malformed_at = std::exchange(malformed_at_, 0);
  }
  steps_ = 0;
  ++connections_;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!write_step(s, {"* OK fake IMAP4rev1 server ready\r\n", {}, 0})) return;
  for (;;) {
    std::string command;
    if (!read_command(s, command)) return;
    const std::uint64_t step = ++s.steps;
    steps_ = step;
    if (step == s.fail_at) return;
    if (step == s.malformed_at && !write_all(fd, std::string(k_malformed))) return;
    bool logout = false;
    const std::vector<Chunk> out = answer(s, command, logout);
    for (const auto& c : out) {
      if (!write_step(s, c)) return;
    }
    if (logout) return;
  }
}

bool FakeImapServer::fill(Session& s) {
  const auto until = std::chrono::steady_clock::now() + k_idle_limit;
  while (!stop_ && std::chrono::steady_clock::now() < until) {
    pollfd p{s.fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, k_poll_ms);
    if (rc < 0 && errno != EINTR) return false;
    if (rc <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    s.in.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  return false;
}

bool FakeImapServer::read_command(Session& s, std::string& command) {
  command.clear();
  for (;;) {
    std::size_t eol;
    while ((eol = s.in.find("\r\n")) == std::string::npos) {
      if (s.in.size() > k_max_command || !fill(s)) return false;
    }
    const std::string line = s.in.substr(0, eol);
    s.in.erase(0, eol + 2);
    command += line;
    std::size_t len = 0;
    bool plus = false;
    if (!literal_at_end(line, len, plus)) return true;
    if (command.size() + len > k_max_command) return false;
    if (!plus && !write_step(s, {"+ Ready for literal data\r\n", {}, 0})) return false;
    while (s.in.size() < len) {
      if (!fill(s)) return false;
    }
    command += "\r\n";
    command += s.in.substr(0, len);
    s.in.erase(0, len);
  }
}

bool FakeImapServer::write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  const auto until = std::chrono::steady_clock::now() + k_idle_limit;
  while (done < bytes.size()) {
    if (stop_ || std::chrono::steady_clock::now() >= until) return false;
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, k_poll_ms);
    if (rc < 0 && errno != EINTR) return false;
    if (rc <= 0) continue;
    const ssize_t n =
        ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool FakeImapServer::write_step(Session& s, const Chunk& c) {
  const std::uint64_t step = ++s.steps;
  steps_ = step;
  if (step == s.fail_at) {
    (void)write_all(s.fd, c.bytes.substr(0, c.bytes.size() / 2));
    return false;
  }
  if (step == s.malformed_at) {
    if (c.serial != 0) {
      const std::lock_guard<std::mutex> lock(mutex_);
      glitched_.insert(c.serial);
    }
    return write_all(s.fd, c.malformed.empty() ? std::string(k_malformed) : c.malformed);
  }
  return write_all(s.fd, c.bytes);
}

std::vector<FakeImapServer::Chunk> FakeImapServer::answer(Session& s, const std::string& command,
                                                          bool& logout) {
  std::vector<Token> t;
  const bool parsed = Lexer(command).parse(t);
  std::vector<Chunk> out;
  auto untagged = [&](std::string line) { out.push_back({std::move(line) + "\r\n", {}, 0}); };
  const std::lock_guard<std::mutex> lock(mutex_);
  if (t.empty() || t[0].kind != Token::Kind::atom) {
    commands_.push_back(command);
    untagged("* BAD no tag");
    return out;
  }
  const std::string& tag = t[0].text;
  auto tagged = [&](const std::string& text) { untagged(tag + " " + text); };
  const std::string cmd = t.size() > 1 && t[1].kind == Token::Kind::atom ? upper(t[1].text) : "";
  if (cmd == "LOGIN" && t.size() == 4) {
    commands_.push_back(tag + " LOGIN " + t[2].text + " <pw>");
  } else {
    commands_.push_back(command);
  }
  if (!parsed || cmd.empty()) {
    tagged("BAD cannot parse the command");
    return out;
  }
  // The folder a mailbox argument names, or null.
  auto mailbox = [&](const Token& name) -> FakeFolder* {
    return name.is_text() ? find(name.text) : nullptr;
  };

  if (cmd == "CAPABILITY" && t.size() == 2) {
    untagged("* CAPABILITY IMAP4rev1");
    tagged("OK CAPABILITY completed");
  } else if (cmd == "NOOP" && t.size() == 2) {
    tagged("OK NOOP completed");
  } else if (cmd == "LOGOUT" && t.size() == 2) {
    untagged("* BYE fake IMAP server logging out");
    tagged("OK LOGOUT completed");
    logout = true;
  } else if (cmd == "LOGIN" && t.size() == 4 && t[2].is_text() && t[3].is_text()) {
    if (t[2].text == user_ && t[3].text == password_) {
      s.authenticated = true;
      tagged("OK LOGIN completed");
    } else {
      tagged("NO [AUTHENTICATIONFAILED] Authentication failed.");
    }
  } else if (!s.authenticated && (cmd == "LIST" || cmd == "STATUS" || cmd == "EXAMINE" ||
                                  cmd == "SELECT" || cmd == "UID")) {
    tagged("BAD log in first");
  } else if (cmd == "LIST" && t.size() == 4 && t[2].is_text() && t[3].is_text()) {
    const std::string& pattern = t[3].text;
    if (pattern.empty()) {
      untagged("* LIST (\\Noselect) \"/\" \"\"");
    } else {
      for (const auto& f : folders_) {
        if (pattern == "*" || pattern == "%" || f.name == pattern ||
            (f.name == "INBOX" && iequals(pattern, "INBOX"))) {
          untagged("* LIST (" + f.attributes + ") \"/\" " + astring(f.name));
        }
      }
    }
    tagged("OK LIST completed");
  } else if (cmd == "STATUS" && t.size() == 4 && t[3].kind == Token::Kind::list) {
    const FakeFolder* f = mailbox(t[2]);
    if (!f) {
      tagged("NO [NONEXISTENT] Unknown mailbox");
      return out;
    }
    std::string items;
    for (const auto& item : t[3].items) {
      const std::string name = upper(item.text);
      std::uint64_t value = 0;
      if (name == "MESSAGES") {
        value = f->messages.size();
      } else if (name == "UIDNEXT") {
        value = f->uidnext;
      } else if (name == "UIDVALIDITY") {
        value = f->uidvalidity;
      } else if (name != "RECENT" && name != "UNSEEN") {
        tagged("BAD unknown STATUS item " + item.text);
        return out;
      }
      if (!items.empty()) items += ' ';
      items += name + " " + std::to_string(value);
    }
    untagged("* STATUS " + astring(f->name) + " (" + items + ")");
    tagged("OK STATUS completed");
  } else if ((cmd == "EXAMINE" || cmd == "SELECT") && t.size() == 3) {
    const FakeFolder* f = mailbox(t[2]);
    if (!f) {
      s.selected.clear();
      tagged("NO [NONEXISTENT] Unknown mailbox");
      return out;
    }
    s.selected = f->name;
    untagged("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
    untagged("* " + std::to_string(f->messages.size()) + " EXISTS");
    untagged("* OK [UIDVALIDITY " + std::to_string(f->uidvalidity) + "] UIDs valid");
    untagged("* OK [UIDNEXT " + std::to_string(f->uidnext) + "] Predicted next UID");
    tagged(cmd == "EXAMINE" ? "OK [READ-ONLY] EXAMINE completed"
                            : "OK [READ-WRITE] SELECT completed");
  } else if (cmd == "UID" && t.size() >= 3 && t[2].kind == Token::Kind::atom) {
    const FakeFolder* f = s.selected.empty() ? nullptr : find(s.selected);
    const std::string sub = upper(t[2].text);
    if (!f) {
      tagged("BAD no mailbox selected");
      return out;
    }
    const std::uint32_t max_uid = f->messages.empty() ? 0 : f->messages.back().uid;
    if (sub == "SEARCH") {
      // The search keys, all ANDed (a parenthesised list is one more AND).
      std::optional<std::int64_t> since, before;
      std::vector<UidRanges> uid_sets;
      std::vector<const Token*> keys;
      for (std::size_t i = 3; i < t.size(); ++i) keys.push_back(&t[i]);
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const Token& k = *keys[i];
        if (k.kind == Token::Kind::list) {
          for (const auto& inner : k.items) keys.push_back(&inner);
          continue;
        }
        const std::string key = upper(k.text);
        if (key == "ALL" || key == "UNDELETED") continue;
        const Token* arg = i + 1 < keys.size() ? keys[i + 1] : nullptr;
        bool ok = arg && arg->is_text();
        if (ok && key == "CHARSET") {
          ++i;
        } else if (ok && (key == "SINCE" || key == "BEFORE")) {
          const auto day = search_day(arg->text);
          ok = day.has_value();
          (key == "SINCE" ? since : before) = day;
          ++i;
        } else if (ok && key == "UID") {
          const auto set = parse_set(arg->text);
          ok = set.has_value();
          if (set) uid_sets.push_back(*set);
          ++i;
        } else {
          ok = false;
        }
        if (!ok) {
          tagged("BAD unknown or incomplete search key " + k.text);
          return out;
        }
      }
      std::string found = "* SEARCH";
      for (const auto& m : f->messages) {
        const std::int64_t day = day_of(m.internaldate);
        if (since && day < *since) continue;
        if (before && day >= *before) continue;
        if (!std::all_of(uid_sets.begin(), uid_sets.end(),
                         [&](const UidRanges& set) { return in_set(m.uid, set, max_uid); })) {
          continue;
        }
        found += " " + std::to_string(m.uid);
      }
      untagged(found);
      tagged("OK UID SEARCH completed");
    } else if (sub == "FETCH" && t.size() == 5 && t[3].kind == Token::Kind::atom) {
      const auto set = parse_set(t[3].text);
      std::vector<Item> items;
      bool ok = set.has_value();
      const std::vector<Token> one{t[4]};
      for (const auto& tok : t[4].kind == Token::Kind::list ? t[4].items : one) {
        const auto item = tok.kind == Token::Kind::atom ? parse_item(tok.text) : std::nullopt;
        if (!item) {
          ok = false;
          break;
        }
        items.push_back(*item);
      }
      if (!ok || items.empty()) {
        tagged("BAD cannot parse UID FETCH");
        return out;
      }
      bool refused = false;
      for (std::size_t seq = 1; seq <= f->messages.size(); ++seq) {
        const FakeMessage& m = f->messages[seq - 1];
        if (!in_set(m.uid, *set, max_uid)) continue;
        if (m.refused) {
          refused = true;
          continue;
        }
        Chunk c;
        c.serial = m.serial;
        c.malformed = malformed_fetch(seq, m.uid);
        if (m.unreadable) {
          c.bytes = c.malformed;
          out.push_back(std::move(c));
          continue;
        }
        std::string r = "* " + std::to_string(seq) + " FETCH (UID " + std::to_string(m.uid);
        for (const auto& it : items) {
          switch (it.kind) {
            case Item::Kind::uid:
              break;
            case Item::Kind::flags:
              r += " FLAGS ()";
              break;
            case Item::Kind::internaldate:
              r += " INTERNALDATE " + internaldate_text(m.internaldate);
              break;
            case Item::Kind::size:
              r += " RFC822.SIZE " + std::to_string(m.raw.size());
              break;
            case Item::Kind::bodystructure:
              r += " BODYSTRUCTURE " + bodystructure(m.raw);
              break;
            case Item::Kind::section:
              r += " " + it.name + " " + literal(section_bytes(it, m.raw));
              break;
          }
        }
        c.bytes = r + ")\r\n";
        out.push_back(std::move(c));
      }
      tagged(refused ? "NO Some messages could not be FETCHed (Failure)"
                     : "OK UID FETCH completed");
    } else {
      tagged("BAD unknown UID command");
    }
  } else {
    tagged("BAD unknown command or arguments");
  }
  return out;
}

}  // namespace crmcap::test
