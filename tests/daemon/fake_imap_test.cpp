// SPDX-License-Identifier: Apache-2.0
// The fake IMAP server (tests/support/fake_imap.hpp) on its own, spoken to
// byte by byte over a plain socket: what the fault and property tests take
// for granted of it (parsed commands, UID sets, literals, sections, steps
// and faults).
#include "tests/support/fake_imap.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

using crmcap::test::FakeImapServer;

namespace {

// A blocking client of the fake server, reading with a 2 s deadline.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("cannot connect to the fake server");
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Everything up to and including the first line that starts with `end`
  // (a tag, "+ " or "* OK"); what came before the end of the connection
  // (or the deadline) if no such line came.
  std::string until(const std::string& end) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (;;) {
      for (std::size_t at = 0; at < in_.size();) {
        const auto eol = in_.find("\r\n", at);
        if (eol == std::string::npos) break;
        if (in_.compare(at, end.size(), end) == 0) {
          std::string out = in_.substr(0, eol + 2);
          in_.erase(0, eol + 2);
          return out;
        }
        at = eol + 2;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      in_.append(buf, static_cast<std::size_t>(n));
    }
    return std::exchange(in_, std::string());
  }
  bool closed() const { return closed_; }

 private:
  int fd_;
  std::string in_;
  bool closed_ = false;
};

const char* const k_mail =
    "From: jane@acme.com\nTo: user1@example.com\nSubject: Hi\n"
    "Message-ID: <x1@acme.com>\n\nLine one.\nLine two.\n";

}  // namespace

TEST(FakeImap, ParsesCommandsAndAnswersAsIMAP4rev1Says) {
  FakeImapServer server;
  for (int i = 0; i < 6; ++i) server.add("INBOX", k_mail, 1'800'000'000);  // 15-Jan-2027
  server.add("Sent", k_mail);
  Client c(server.port());
  EXPECT_EQ(c.until("* OK"), "* OK fake IMAP4rev1 server ready\r\n");
  c.send("a1 CAPABILITY\r\n");
  EXPECT_EQ(c.until("a1 "), "* CAPABILITY IMAP4rev1\r\na1 OK CAPABILITY completed\r\n");
  c.send("a2 UID SEARCH ALL\r\n");
  EXPECT_EQ(c.until("a2 "), "a2 BAD log in first\r\n");
  // A synchronizing literal, then a quoted string.
  c.send("a3 LOGIN {17}\r\n");
  EXPECT_EQ(c.until("+ "), "+ Ready for literal data\r\n");
  c.send("user1@example.com \"fake-secret\"\r\n");
  EXPECT_EQ(c.until("a3 "), "a3 OK LOGIN completed\r\n");
  EXPECT_EQ(server.commands().at(2), "a3 LOGIN user1@example.com <pw>");
  c.send("a4 LIST \"\" \"*\"\r\n");
  EXPECT_EQ(c.until("a4 "),
            "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\Sent) \"/\" Sent\r\n"
            "a4 OK LIST completed\r\n");
  c.send("a5 STATUS Sent (MESSAGES UIDNEXT UIDVALIDITY)\r\n");
  EXPECT_EQ(c.until("a5 "),
            "* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 2001)\r\na5 OK STATUS completed\r\n");
  c.send("a6 EXAMINE inbox\r\n");
  EXPECT_EQ(c.until("a6 "),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 6 EXISTS\r\n"
            "* OK [UIDVALIDITY 1001] UIDs valid\r\n* OK [UIDNEXT 7] Predicted next UID\r\n"
            "a6 OK [READ-ONLY] EXAMINE completed\r\n");
  server.expunge("INBOX", 3);
  // "n:*" holds the largest UID even when n is past it (RFC 3501, 6.4.8).
  c.send("a7 UID SEARCH UID 4:* SINCE 14-Jan-2027\r\n");
  EXPECT_EQ(c.until("a7 "), "* SEARCH 4 5 6\r\na7 OK UID SEARCH completed\r\n");
  c.send("a8 UID SEARCH SINCE 16-Jan-2027 UID 1:*\r\n");
  EXPECT_EQ(c.until("a8 "), "* SEARCH\r\na8 OK UID SEARCH completed\r\n");
  c.send("a9 UID SEARCH UID 9:*\r\n");
  EXPECT_EQ(c.until("a9 "), "* SEARCH 6\r\na9 OK UID SEARCH completed\r\n");
  c.send("b1 UID FETCH 1,3:4,6:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[TEXT]<5.8>)\r\n");
  EXPECT_EQ(c.until("b1 "),
            "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (MESSAGE-ID)] {29}\r\n"
            "Message-ID: <x1@acme.com>\r\n\r\n BODY[TEXT]<5> {8}\r\none.\r\nLi)\r\n"
            "* 3 FETCH (UID 4 BODY[HEADER.FIELDS (MESSAGE-ID)] {29}\r\n"
            "Message-ID: <x1@acme.com>\r\n\r\n BODY[TEXT]<5> {8}\r\none.\r\nLi)\r\n"
            "* 5 FETCH (UID 6 BODY[HEADER.FIELDS (MESSAGE-ID)] {29}\r\n"
            "Message-ID: <x1@acme.com>\r\n\r\n BODY[TEXT]<5> {8}\r\none.\r\nLi)\r\n"
            "b1 OK UID FETCH completed\r\n");
  c.send("b2 UID FETCH 2 (INTERNALDATE BODYSTRUCTURE RFC822.SIZE)\r\n");
  EXPECT_EQ(c.until("b2 "),
            "* 2 FETCH (UID 2 INTERNALDATE \"15-Jan-2027 08:00:00 +0000\" BODYSTRUCTURE "
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 22 2) "
            "RFC822.SIZE 108)\r\nb2 OK UID FETCH completed\r\n");
  server.refuse("INBOX", 4);
  server.unreadable("INBOX", 5);
  c.send("b3 UID FETCH 4:5 (UID)\r\n");
  EXPECT_EQ(c.until("b3 "),
            "* 4 FETCH (UID 5 BODYSTRUCTURE (\"TEXT\" ))))\r\n"
            "b3 NO Some messages could not be FETCHed (Failure)\r\n");
  c.send("b4 UID FETCH 1 (ENVELOPE)\r\nb5 FROB\r\nb6 NOOP\r\n");
  EXPECT_EQ(c.until("b6 "),
            "b4 BAD cannot parse UID FETCH\r\nb5 BAD unknown command or arguments\r\n"
            "b6 OK NOOP completed\r\n");
  c.send("b7 LOGOUT\r\n");
  EXPECT_EQ(c.until("b7 "), "* BYE fake IMAP server logging out\r\nb7 OK LOGOUT completed\r\n");
  // The greeting; then each command read and each response (a3's "+" too).
  EXPECT_EQ(server.steps(), 1u + 3 + 2 + 3 + 4 + 3 + 6 + 3 * 3 + 5 + 3 + 3 + 3 * 2 + 3);
  c.until("never");
  EXPECT_TRUE(c.closed());
}

TEST(FakeImap, AFaultComesAtItsStepOnTheNextConnectionOnly) {
  FakeImapServer server;
  server.add("INBOX", k_mail);
  {
    // Step 3: the response to CAPABILITY (after the greeting and the
    // command), cut in half.
    server.fail_at_step(3);
    Client c(server.port());
    c.until("* OK");
    c.send("a1 CAPABILITY\r\n");
    EXPECT_EQ(c.until("a1 "), "* CAPABILITY");
    EXPECT_TRUE(c.closed());
    EXPECT_EQ(server.steps(), 3u);
  }
  {
    // Step 2, a command read: an unparseable response before the answer.
    server.malformed_at_step(2);
    Client c(server.port());
    c.until("* OK");
    c.send("a1 NOOP\r\n");
    EXPECT_EQ(c.until("a1 "),
              "* 1 FETCH (UID 1 BODYSTRUCTURE (\"TEXT\" ))))\r\na1 OK NOOP completed\r\n");
  }
  {
    // Taken by the connection before: none now.
    Client c(server.port());
    EXPECT_EQ(c.until("* OK"), "* OK fake IMAP4rev1 server ready\r\n");
    c.send("a1 NOOP\r\n");
    EXPECT_EQ(c.until("a1 "), "a1 OK NOOP completed\r\n");
  }
  {
    // A message's FETCH response replaced: that message is glitched.
    server.malformed_at_step(11);  // greeting; LOGIN, OK; EXAMINE, 5 lines; UID FETCH; its line
    Client c(server.port());
    c.until("* OK");
    c.send(
        "a1 LOGIN user1@example.com fake-secret\r\na2 EXAMINE INBOX\r\n"
        "a3 UID FETCH 1 (UID)\r\n");
    const std::string got = c.until("a3 ");
    EXPECT_TRUE(
        got.ends_with("a2 OK [READ-ONLY] EXAMINE completed\r\n"
                      "* 1 FETCH (UID 1 BODYSTRUCTURE (\"TEXT\" ))))\r\n"
                      "a3 OK UID FETCH completed\r\n"))
        << got;
    EXPECT_EQ(server.glitched(), std::set<std::uint64_t>{1});
  }
}
