// SPDX-License-Identifier: Apache-2.0
// IMAP command builder tests, including argument injection attempts.
#include "connectors/imap/core/command.hpp"
#include "connectors/imap/core/parser.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmcap::imap {
namespace {

using namespace std::chrono;

std::string bytes_of(const Result<Command>& c) {
  EXPECT_TRUE(c.has_value()) << (c.has_value() ? "" : c.error().message());
  return c.has_value() ? c->bytes() : std::string();
}

std::error_code error_of(const Result<Command>& c) {
  EXPECT_FALSE(c.has_value()) << (c.has_value() ? c->bytes() : "");
  return c.has_value() ? std::error_code() : c.error();
}

// No command line may hold a CR, LF or NUL except its final CRLF; literal
// bytes (after an announcement) are skipped. A synchronizing literal's bytes
// are in the next segment, so the check runs over all segments together.
void expect_well_framed(const Command& c) {
  std::string all = c.bytes();
  std::size_t pos = 0;
  while (pos < all.size()) {
    std::size_t crlf = all.find("\r\n", pos);
    ASSERT_NE(crlf, std::string::npos) << all;
    std::string_view line(all.data() + pos, crlf - pos);
    EXPECT_EQ(line.find_first_of(std::string_view("\r\n\0", 3)), std::string_view::npos) << all;
    pos = crlf + 2;
    if (!line.empty() && line.back() == '}') {
      std::size_t open = line.rfind('{');
      ASSERT_NE(open, std::string_view::npos);
      std::string digits(line.substr(open + 1, line.size() - open - 2));
      if (!digits.empty() && digits.back() == '+') digits.pop_back();
      pos += std::stoul(digits);
    }
  }
  EXPECT_EQ(pos, all.size()) << all;
}

TEST(ImapCommand, SimpleCommandsAndTags) {
  CommandBuilder b;
  EXPECT_EQ(b.next_tag(), "A1");
  EXPECT_EQ(b.capability().bytes(), "A1 CAPABILITY\r\n");
  EXPECT_EQ(b.noop().bytes(), "A2 NOOP\r\n");
  EXPECT_EQ(b.starttls().bytes(), "A3 STARTTLS\r\n");
  EXPECT_EQ(b.compress_deflate().bytes(), "A4 COMPRESS DEFLATE\r\n");
  Command idle = b.idle();
  EXPECT_EQ(idle.bytes(), "A5 IDLE\r\n");
  EXPECT_EQ(idle.tag, "A5");
  EXPECT_TRUE(idle.awaits_continuation);
  EXPECT_EQ(CommandBuilder::done(), "DONE\r\n");
  EXPECT_EQ(b.unselect().bytes(), "A6 UNSELECT\r\n");
  Command out = b.logout();
  EXPECT_EQ(out.bytes(), "A7 LOGOUT\r\n");
  EXPECT_EQ(out.redacted, "A7 LOGOUT");
  EXPECT_FALSE(out.awaits_continuation);
  CommandBuilder c("cap");
  EXPECT_EQ(c.noop().tag, "cap1");
  CommandBuilder bad("a b\r\n");
  EXPECT_EQ(bad.noop().tag, "A1");
}

TEST(ImapCommand, LoginQuotesAndRedacts) {
  CommandBuilder b;
  auto c = b.login("alice@example.com", "pa\"ss\\word");
  EXPECT_EQ(bytes_of(c), "A1 LOGIN alice@example.com \"pa\\\"ss\\\\word\"\r\n");
  EXPECT_EQ(c->redacted, "A1 LOGIN alice@example.com <redacted>");
  EXPECT_EQ(c->segments.size(), 1u);
  // NIL and empty user names cannot be atoms.
  EXPECT_EQ(bytes_of(b.login("NIL", "x")), "A2 LOGIN \"NIL\" \"x\"\r\n");
  EXPECT_EQ(bytes_of(b.login("", "x")), "A3 LOGIN \"\" \"x\"\r\n");
}

TEST(ImapCommand, EightBitPasswordGoesAsLiteral) {
  CommandBuilder b;
  auto sync = b.login("bob", "p\xc3\xa4ss");
  ASSERT_TRUE(sync.has_value());
  ASSERT_EQ(sync->segments.size(), 2u);
  EXPECT_EQ(sync->segments[0], "A1 LOGIN bob {5}\r\n");
  EXPECT_EQ(sync->segments[1], "p\xc3\xa4ss\r\n");
  EXPECT_EQ(sync->redacted, "A1 LOGIN bob {5}");
  b.set_options({.literal_plus = true});
  auto plus = b.login("bob", "p\xc3\xa4ss");
  ASSERT_EQ(plus->segments.size(), 1u);
  EXPECT_EQ(plus->bytes(), "A2 LOGIN bob {5+}\r\np\xc3\xa4ss\r\n");
  EXPECT_EQ(plus->redacted, "A2 LOGIN bob {5+}");
  b.set_options({.literal_minus = true});
  EXPECT_EQ(b.login("bob", std::string(5000, '\x80'))->segments.size(), 2u);
  EXPECT_EQ(b.login("bob", std::string(4096, '\x80'))->segments.size(), 1u);
}

TEST(ImapCommand, InjectionIsRefused) {
  CommandBuilder b;
  const std::array<std::string_view, 5> evil = {"x\r\nA2 DELETE INBOX", "x\nA2 DELETE INBOX",
                                                "x\rA2", std::string_view("x\0y", 3), "INBOX\r\n"};
  for (std::string_view e : evil) {
    EXPECT_EQ(error_of(b.login(e, "pw")), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.login("user", e)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.authenticate_plain("user", e, true)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.authenticate_plain(e, "pw", false)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.authenticate_xoauth2("user", e, true)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.authenticate_oauthbearer(e, "tok", true)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.examine(e)), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.status(e, {.uidnext = true})), Errc::forbidden_char);
    EXPECT_EQ(error_of(b.list("", e)), Errc::forbidden_char);
    std::pair<std::string_view, std::string_view> field{"name", e};
    EXPECT_EQ(error_of(b.id({&field, 1})), Errc::forbidden_char);
  }
  // Quotes, backslashes, brackets and spaces are escaped or quoted, never raw.
  for (std::string_view tricky : {"a\" DELETE \"b", "a\\", "a b", "{5}", "a)(b", "]", "%*"}) {
    auto c = b.examine(tricky);
    ASSERT_TRUE(c.has_value()) << tricky;
    expect_well_framed(*c);
    std::string line = c->bytes();
    // Everything after "EXAMINE " is one quoted string that reads back as the name.
    std::string arg = line.substr(line.find("EXAMINE ") + 8);
    arg.resize(arg.size() - 2);
    ASSERT_GE(arg.size(), 2u);
    EXPECT_EQ(arg.front(), '"') << line;
    EXPECT_EQ(arg.back(), '"') << line;
    auto parsed = parse_response("* LIST () \"/\" " + arg + "\r\n");
    ASSERT_TRUE(parsed.has_value()) << line;
    EXPECT_EQ(std::get<ListEntry>(*parsed).mailbox, tricky);
  }
  // A control character that is not CR/LF/NUL forces a literal.
  auto tab = b.login("u", "a\tb");
  ASSERT_TRUE(tab.has_value());
  EXPECT_EQ(tab->segments.size(), 2u);
  expect_well_framed(*tab);
}

TEST(ImapCommand, AuthenticatePlain) {
  CommandBuilder b;
  // base64("\0alice\0secret")
  auto ir = b.authenticate_plain("alice", "secret", true);
  EXPECT_EQ(bytes_of(ir), "A1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  EXPECT_EQ(ir->redacted, "A1 AUTHENTICATE PLAIN <redacted>");
  auto cont = b.authenticate_plain("alice", "secret", false);
  ASSERT_TRUE(cont.has_value());
  ASSERT_EQ(cont->segments.size(), 2u);
  EXPECT_EQ(cont->segments[0], "A2 AUTHENTICATE PLAIN\r\n");
  EXPECT_EQ(cont->segments[1], "AGFsaWNlAHNlY3JldA==\r\n");
  EXPECT_FALSE(cont->awaits_continuation);
  EXPECT_EQ(cont->redacted.find("AGFs"), std::string::npos);
  auto authz = b.authenticate_plain("alice", "secret", true, "admin");
  EXPECT_EQ(bytes_of(authz), "A3 AUTHENTICATE PLAIN YWRtaW4AYWxpY2UAc2VjcmV0\r\n");
  EXPECT_EQ(error_of(b.authenticate_plain("", "pw", true)), Errc::invalid_argument);
}

TEST(ImapCommand, AuthenticateOauth) {
  CommandBuilder b;
  auto x = b.authenticate_xoauth2("someuser@example.com",
                                  "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", true);
  // The example from Google's XOAUTH2 documentation.
  EXPECT_EQ(
      bytes_of(x),
      "A1 AUTHENTICATE XOAUTH2 "
      "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk"
      "SFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n");
  EXPECT_EQ(x->redacted, "A1 AUTHENTICATE XOAUTH2 <redacted>");
  auto o = b.authenticate_oauthbearer("user@example.com",
                                      "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", true,
                                      "server.example.com", 143);
  ASSERT_TRUE(o.has_value());
  // RFC 7628 section 4.1's example message.
  std::string b64 = o->bytes().substr(std::string_view("A2 AUTHENTICATE OAUTHBEARER ").size());
  b64.resize(b64.size() - 2);  // CRLF
  auto decoded = base64_decode(b64);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded,
            "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
            "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01");
  auto esc = b.authenticate_oauthbearer("a,b=c", "t", false);
  ASSERT_TRUE(esc.has_value());
  ASSERT_EQ(esc->segments.size(), 2u);
  EXPECT_EQ(esc->segments[0], "A3 AUTHENTICATE OAUTHBEARER\r\n");
  std::string seg = esc->segments[1];
  seg.resize(seg.size() - 2);
  EXPECT_EQ(base64_decode(seg).value(),
            "n,a=a=2Cb=3Dc,\x01"
            "auth=Bearer t\x01\x01");
  EXPECT_EQ(error_of(b.authenticate_xoauth2("u", "t\x01", true)), Errc::forbidden_char);
  EXPECT_EQ(error_of(b.authenticate_xoauth2("u", "", true)), Errc::invalid_argument);
  EXPECT_EQ(CommandBuilder::sasl_empty_response(), "\r\n");
  EXPECT_EQ(CommandBuilder::sasl_oauthbearer_abort(), "AQ==\r\n");
}

TEST(ImapCommand, EnableAndId) {
  CommandBuilder b;
  std::array<std::string_view, 3> caps = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT"};
  EXPECT_EQ(bytes_of(b.enable(caps)), "A1 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n");
  std::array<std::string_view, 1> bad = {"A B"};
  EXPECT_EQ(error_of(b.enable(bad)), Errc::invalid_argument);
  EXPECT_EQ(error_of(b.enable({})), Errc::invalid_argument);
  std::array<std::pair<std::string_view, std::string_view>, 2> fields = {
      std::pair{"name", "crm-capture"}, std::pair{"version", "0.1.0"}};
  EXPECT_EQ(bytes_of(b.id(fields)), "A4 ID (\"name\" \"crm-capture\" \"version\" \"0.1.0\")\r\n");
  EXPECT_EQ(bytes_of(b.id({})), "A5 ID NIL\r\n");
}

TEST(ImapCommand, ListStatusExamine) {
  CommandBuilder b;
  EXPECT_EQ(bytes_of(b.list("", "*", {.special_use = true})),
            "A1 LIST \"\" * RETURN (SPECIAL-USE)\r\n");
  EXPECT_EQ(bytes_of(b.list("", "Entw\xc3\xbcrfe/%")), "A2 LIST \"\" Entw&APw-rfe/%\r\n");
  EXPECT_EQ(bytes_of(b.status(
                "INBOX",
                {.messages = true, .uidnext = true, .uidvalidity = true, .highestmodseq = true})),
            "A3 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)\r\n");
  EXPECT_EQ(error_of(b.status("INBOX", {})), Errc::invalid_argument);
  EXPECT_EQ(bytes_of(b.examine("inbox")), "A5 EXAMINE INBOX\r\n");
  EXPECT_EQ(bytes_of(b.examine("[Gmail]/All Mail", {.condstore = true})),
            "A6 EXAMINE \"[Gmail]/All Mail\" (CONDSTORE)\r\n");
  QresyncParams q;
  q.uidvalidity = 67890007;
  q.modseq = 20050715194045000;
  q.known_uids.add(41, 211);
  q.known_uids.add(214, 541);
  EXPECT_EQ(bytes_of(b.examine("Sent", {.qresync = q})),
            "A7 EXAMINE Sent (QRESYNC (67890007 20050715194045000 41:211,214:541))\r\n");
  q.known_seqs.add(1, 5);
  q.known_seq_uids.add(41, 45);
  EXPECT_EQ(
      bytes_of(b.examine("Sent", {.qresync = q})),
      "A8 EXAMINE Sent (QRESYNC (67890007 20050715194045000 41:211,214:541 (1:5 41:45)))\r\n");
  q.known_seq_uids = {};
  EXPECT_EQ(error_of(b.examine("Sent", {.qresync = q})), Errc::invalid_argument);
  EXPECT_EQ(error_of(b.examine("Sent", {.qresync = QresyncParams{}})), Errc::invalid_argument);
  EXPECT_EQ(error_of(b.examine("bad\xff")), Errc::bad_utf8);
  EXPECT_EQ(bytes_of(b.examine("Gel\xc3\xb6schte Elemente")),
            "A12 EXAMINE \"Gel&APY-schte Elemente\"\r\n");
}

// NOTIFY SET (RFC 5465): the selected mailbox without unsolicited FETCH or
// immediate EXPUNGE, and the named mailboxes encoded as EXAMINE encodes them.
TEST(ImapCommand, NotifySet) {
  CommandBuilder b;
  const std::vector<std::string> boxes = {"Sent", "Gel\xc3\xb6schte Elemente"};
  EXPECT_EQ(bytes_of(b.notify_set(boxes)),
            "A1 NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (mailboxes (Sent "
            "\"Gel&APY-schte Elemente\") (MessageNew MessageExpunge))\r\n");
  EXPECT_EQ(error_of(b.notify_set({})), Errc::invalid_argument);
  const std::vector<std::string> bad = {"Sent", "bad\xff"};
  EXPECT_EQ(error_of(b.notify_set(bad)), Errc::bad_utf8);
  const std::vector<std::string> injected = {"Sent\r\nA9 LOGOUT"};
  EXPECT_EQ(error_of(b.notify_set(injected)), Errc::forbidden_char);
}

TEST(ImapCommand, Utf8AcceptSendsUtf8Names) {
  CommandBuilder b;
  b.set_options({.utf8_accept = true});
  EXPECT_EQ(bytes_of(b.examine("Entw\xc3\xbcrfe")), "A1 EXAMINE \"Entw\xc3\xbcrfe\"\r\n");
  EXPECT_EQ(error_of(b.examine("bad\xff")), Errc::bad_utf8);
}

TEST(ImapCommand, UidSearch) {
  CommandBuilder b;
  EXPECT_EQ(bytes_of(b.uid_search({})), "A1 UID SEARCH ALL\r\n");
  SearchCriteria since;
  since.since = year{2026} / February / 1;
  EXPECT_EQ(bytes_of(b.uid_search(since)), "A2 UID SEARCH SINCE 1-Feb-2026\r\n");
  SearchCriteria both;
  both.since = year{2026} / August / 27;
  both.uids.add(100, UidSet::star);
  EXPECT_EQ(bytes_of(b.uid_search(both, {.min = true, .max = true, .all = true, .count = true})),
            "A3 UID SEARCH RETURN (MIN MAX ALL COUNT) SINCE 27-Aug-2026 UID 100:*\r\n");
  SearchCriteria m;
  m.modseq = 77;
  m.not_deleted = true;
  m.before = year{2025} / December / 31;
  EXPECT_EQ(bytes_of(b.uid_search(m, {.all = true})),
            "A4 UID SEARCH RETURN (ALL) BEFORE 31-Dec-2025 MODSEQ 77 UNDELETED\r\n");
  SearchCriteria bad;
  bad.since = year{2026} / February / 30;
  EXPECT_EQ(error_of(b.uid_search(bad)), Errc::invalid_argument);
}

TEST(ImapCommand, UidFetch) {
  CommandBuilder b;
  UidSet uids;
  for (std::uint32_t u : {1u, 2u, 3u, 4u, 5u, 7u, 9u, 10u, 11u, 12u}) uids.add(u);
  std::vector<FetchAttr> attrs = {
      FetchAttr::of(FetchAttr::Kind::uid),          FetchAttr::of(FetchAttr::Kind::flags),
      FetchAttr::of(FetchAttr::Kind::internaldate), FetchAttr::of(FetchAttr::Kind::rfc822_size),
      FetchAttr::of(FetchAttr::Kind::envelope),     FetchAttr::of(FetchAttr::Kind::bodystructure),
      FetchAttr::of(FetchAttr::Kind::modseq),       FetchAttr::of(FetchAttr::Kind::gm_msgid),
      FetchAttr::of(FetchAttr::Kind::gm_thrid),     FetchAttr::of(FetchAttr::Kind::gm_labels)};
  EXPECT_EQ(bytes_of(b.uid_fetch(uids, attrs)),
            "A1 UID FETCH 1:5,7,9:12 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE "
            "MODSEQ X-GM-MSGID X-GM-THRID X-GM-LABELS)\r\n");
  std::vector<FetchAttr> parts = {
      FetchAttr::body_peek(Section{"", SectionText::header, {}}),
      FetchAttr::body_peek(Section{"1.2", SectionText::none, {}}, std::pair{0u, 65536u}),
      FetchAttr::body_peek(Section{"2", SectionText::mime, {}}),
      FetchAttr::body_peek(Section{"", SectionText::header_fields, {"From", "Message-ID"}}),
      FetchAttr::binary_peek(Section{"3", SectionText::none, {}}, std::pair{0u, 1024u}),
      FetchAttr::body_peek(Section{})};
  EXPECT_EQ(bytes_of(b.uid_fetch(uids, parts, {.changedsince = 12345, .vanished = true})),
            "A2 UID FETCH 1:5,7,9:12 (BODY.PEEK[HEADER] BODY.PEEK[1.2]<0.65536> "
            "BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (From Message-ID)] "
            "BINARY.PEEK[3]<0.1024> BODY.PEEK[]) (CHANGEDSINCE 12345 VANISHED)\r\n");
  UidSet one;
  one.add(4);
  std::vector<FetchAttr> flags = {FetchAttr::of(FetchAttr::Kind::flags)};
  EXPECT_EQ(bytes_of(b.uid_fetch(one, flags, {.changedsince = 9})),
            "A3 UID FETCH 4 (FLAGS) (CHANGEDSINCE 9)\r\n");
  // Refused: empty sets or lists, VANISHED without CHANGEDSINCE, bad sections.
  EXPECT_EQ(error_of(b.uid_fetch(UidSet{}, flags)), Errc::invalid_argument);
  EXPECT_EQ(error_of(b.uid_fetch(one, {})), Errc::invalid_argument);
  EXPECT_EQ(error_of(b.uid_fetch(one, flags, {.vanished = true})), Errc::invalid_argument);
  for (const Section& s :
       {Section{"1.", SectionText::none, {}}, Section{"0", SectionText::none, {}},
        Section{"1..2", SectionText::none, {}}, Section{"a", SectionText::none, {}},
        Section{"", SectionText::mime, {}}, Section{"", SectionText::header_fields, {}},
        Section{"", SectionText::header_fields, {"From]\r\nA9 LOGOUT"}},
        Section{"", SectionText::header_fields, {"X:Y"}},
        Section{"", SectionText::header, {"From"}}}) {
    std::vector<FetchAttr> a = {FetchAttr::body_peek(s)};
    EXPECT_EQ(error_of(b.uid_fetch(one, a)), Errc::invalid_argument) << s.to_string();
  }
  std::vector<FetchAttr> zero = {FetchAttr::body_peek(Section{}, std::pair{0u, 0u})};
  EXPECT_EQ(error_of(b.uid_fetch(one, zero)), Errc::invalid_argument);
  std::vector<FetchAttr> bin = {FetchAttr::binary_peek(Section{"1", SectionText::header, {}})};
  EXPECT_EQ(error_of(b.uid_fetch(one, bin)), Errc::invalid_argument);
}

TEST(ImapCommand, TagsAreNeverReused) {
  CommandBuilder b;
  EXPECT_FALSE(b.login("a\r\n", "b").has_value());
  EXPECT_EQ(b.noop().tag, "A2");
}

TEST(ImapCommand, Base64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_decode("Zm9vYmE=").value(), "fooba");
  EXPECT_EQ(base64_decode("Zg==").value(), "f");
  EXPECT_EQ(base64_decode("").value(), "");
  for (std::string_view bad : {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "=Zm9"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
  EXPECT_EQ(base64_decode("eyJzdGF0dXMiOiI0MDEifQ==").value(), "{\"status\":\"401\"}");
}

TEST(ImapCommand, SearchDate) {
  EXPECT_EQ(format_search_date(year{1994} / February / 1), "1-Feb-1994");
  EXPECT_EQ(format_search_date(year{2026} / November / 25), "25-Nov-2026");
}

}  // namespace
}  // namespace crmcap::imap
