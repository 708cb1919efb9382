// SPDX-License-Identifier: Apache-2.0
// An in-process scripted IMAP4rev1 server, for what a real server will not do
// on demand (STYLE 14): drop the connection at any step, answer with bytes no
// parser can follow, refuse a message, or never send a readable answer for
// one. It listens on 127.0.0.1 (a port of its own, chosen by the system) and
// serves one connection at a time on a thread of its own, with blocking POSIX
// sockets; no Asio, so its faults cannot depend on the client's event loop.
//
// It holds a model mailbox the test changes between passes: the folders INBOX
// and Sent (the \Sent special use), each with UIDVALIDITY, UIDNEXT and
// messages {uid, raw RFC 5322 bytes, internaldate}. It speaks what
// imap::Account uses over plain TCP (no TLS; LOGIN only): CAPABILITY (just
// IMAP4rev1: no CONDSTORE, QRESYNC, ESEARCH, IDLE or COMPRESS), LOGIN, LIST,
// STATUS, EXAMINE (and SELECT), UID SEARCH (ALL, UID set, SINCE, BEFORE,
// UNDELETED, CHARSET), UID FETCH (UID, FLAGS, INTERNALDATE, RFC822.SIZE,
// BODYSTRUCTURE, BODY[...] and BODY.PEEK[...] of "", HEADER, TEXT, 1,
// HEADER.FIELDS (...) and HEADER.FIELDS.NOT (...), with <origin.count>),
// NOOP and LOGOUT. Commands are parsed, not matched: tags, atoms, quoted
// strings, literals ({n} and {n+}), parenthesised lists and UID sets such as
// "1:5,7,9:*". Anything else gets a tagged BAD.
//
// A step is every command the server reads and every response it writes (an
// untagged line, or one message's whole FETCH response with its literals, a
// tagged completion, a "+" continuation), counted from 1 on each connection.
// Every message is one single-part text/plain body.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace crmcap::test {

struct FakeMessage {
  std::uint32_t uid = 0;
  std::string raw;                // the message, lines ending in CRLF
  std::int64_t internaldate = 0;  // Unix seconds
  // The message's own number, unique over the server's life and kept when its
  // UID changes (reset_uidvalidity): what a test tells messages apart by.
  std::uint64_t serial = 0;
  bool refused = false;     // see FakeImapServer::refuse
  bool unreadable = false;  // see FakeImapServer::unreadable
};

struct FakeFolder {
  std::string name;
  std::string attributes;  // LIST attributes, e.g. "\\HasNoChildren" or "\\Sent"
  std::uint32_t uidvalidity = 1;
  std::uint32_t uidnext = 1;
  std::vector<FakeMessage> messages;  // ascending UIDs; message sequence number = index + 1
};

class FakeImapServer {
 public:
  // Listens at once and serves until destroyed. LOGIN accepts only `user` and
  // `password`. Throws std::runtime_error when it cannot listen.
  explicit FakeImapServer(std::string user = "user1@example.com",
                          std::string password = "fake-secret");
  // Stops serving (within about 50 ms, whatever the client does), closes
  // every socket and joins the thread.
  ~FakeImapServer();
  FakeImapServer(const FakeImapServer&) = delete;
  FakeImapServer& operator=(const FakeImapServer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }

  // The model. Every call is safe while a connection is served; a change made
  // while a command is answered shows from the next command on. `folder` is
  // "INBOX" or "Sent"; another name throws std::invalid_argument, and so does
  // a UID the folder does not hold.

  // Appends a message (its LF line ends made CRLF) under the folder's UIDNEXT,
  // which moves on; returns its UID. `internaldate` 0: now.
  std::uint32_t add(const std::string& folder, const std::string& raw,
                    std::int64_t internaldate = 0);
  // Removes the message; its UID is never used again. Returns its serial.
  std::uint64_t expunge(const std::string& folder, std::uint32_t uid);
  // A new UIDVALIDITY (one more than before): the folder's messages are
  // numbered again from 1, in their order, and UIDNEXT follows them.
  // Returns the new UIDVALIDITY.
  std::uint32_t reset_uidvalidity(const std::string& folder);
  // Every UID FETCH that names this message answers the others, then
  // "tag NO Some messages could not be FETCHed" (as Gmail does). Follows the
  // message across reset_uidvalidity.
  void refuse(const std::string& folder, std::uint32_t uid, bool on = true);
  // Every FETCH response of this message is unparseable (its
  // BODYSTRUCTURE's parentheses do not balance). Follows the message too.
  void unreadable(const std::string& folder, std::uint32_t uid, bool on = true);
  FakeFolder folder(const std::string& name) const;  // a copy
  std::vector<FakeFolder> folders() const;           // copies, INBOX first

  // Faults of the next connection accepted, each once (the accept takes
  // them; so does clear_faults). At step `step` (counted from 1):
  // fail_at_step closes the socket abruptly: a response is cut after half
  // its bytes (a literal included), a command read gets no answer at all.
  // malformed_at_step writes an unparseable untagged response instead of the
  // response of that step (so a tagged completion never comes), or, at a
  // command read, before the command's answer.
  void fail_at_step(std::uint64_t step);
  void malformed_at_step(std::uint64_t step);
  void clear_faults();

  // Steps of the latest connection so far (0 before the first). A client
  // that has read the answer to its last command sees them all counted.
  std::uint64_t steps() const { return steps_.load(); }
  std::uint64_t connections() const { return connections_.load(); }
  // Whether a connection is being served: accepted, and neither side has
  // closed it yet (the server sees a client's close within about 50 ms).
  bool serving() const { return serving_.load(); }
  // Serials of the messages whose FETCH response malformed_at_step replaced
  // (a client could only take them as unreadable).
  std::set<std::uint64_t> glitched() const;
  // Every command line read, in order, the LOGIN password replaced by <pw>.
  std::vector<std::string> commands() const;

 private:
  struct Session;
  struct Chunk;
  void serve();
  void serve_connection(int fd);
  bool read_command(Session& s, std::string& command);
  bool fill(Session& s);
  bool write_step(Session& s, const Chunk& c);
  bool write_all(int fd, const std::string& bytes);
  std::vector<Chunk> answer(Session& s, const std::string& command, bool& logout);
  FakeFolder* find(const std::string& name);                           // under mutex_
  FakeMessage& message(const std::string& folder, std::uint32_t uid);  // under mutex_

  std::string user_, password_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> steps_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<bool> serving_{false};

  mutable std::mutex mutex_;  // guards everything below
  std::vector<FakeFolder> folders_;
  std::uint64_t next_serial_ = 1;
  std::uint64_t fail_at_ = 0, malformed_at_ = 0;  // armed for the next connection; 0: none
  std::set<std::uint64_t> glitched_;
  std::vector<std::string> commands_;

  std::thread thread_;  // last: started once everything above is set
};

}  // namespace crmcap::test
