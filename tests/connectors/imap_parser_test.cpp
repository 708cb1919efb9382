// SPDX-License-Identifier: Apache-2.0
// IMAP response parser tests. Per STYLE 11 every input is fed whole, byte by
// byte and at every two-way split, and must give the same events each time.
#include "connectors/imap/core/parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace crmcap::imap {
namespace {

// Feeds `chunks` in order; returns one line per event: to_text() of each
// response, "error: <message>" for each error.
std::vector<std::string> run(const std::vector<std::string_view>& chunks,
                             ParserLimits limits = {}) {
  ResponseParser parser(limits);
  std::vector<std::string> events;
  for (std::string_view chunk : chunks) {
    for (;;) {
      std::size_t before = chunk.size();
      ResponseParser::Step step = parser.feed(chunk);
      if (step == ResponseParser::Step::need_more) {
        EXPECT_TRUE(chunk.empty());
        break;
      }
      if (step == ResponseParser::Step::error) {
        events.push_back("error: " + parser.error().message());
        if (parser.broken()) return events;
        continue;
      }
      EXPECT_LE(chunk.size(), before);
      events.push_back(to_text(parser.take()));
    }
  }
  return events;
}

// The events for `input` fed whole, after checking that byte-by-byte and
// every two-way split give the same.
std::vector<std::string> events_all_splits(std::string_view input, ParserLimits limits = {}) {
  std::vector<std::string> whole = run({input}, limits);
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(run(bytes, limits), whole) << "byte by byte";
  for (std::size_t i = 0; i <= input.size(); ++i) {
    EXPECT_EQ(run({input.substr(0, i), input.substr(i)}, limits), whole) << "split at " << i;
  }
  return whole;
}

// Parses exactly one response (checking all splits) and returns it.
Response one(std::string_view input) {
  events_all_splits(input);
  auto r = parse_response(input);
  EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.error().message());
  return r.has_value() ? *r : Response{Unrecognized{}};
}

template <class T>
T as(const Response& r) {
  EXPECT_TRUE(std::holds_alternative<T>(r)) << to_text(r);
  return std::holds_alternative<T>(r) ? std::get<T>(r) : T{};
}

TEST(ImapParser, TaggedStatusWithCode) {
  auto t = as<TaggedStatus>(one("a1 OK [READ-ONLY] EXAMINE completed (0.001 + 0.000 secs).\r\n"));
  EXPECT_EQ(t.tag, "a1");
  EXPECT_EQ(t.status, Status::ok);
  ASSERT_TRUE(t.code);
  EXPECT_EQ(t.code->kind, CodeKind::read_only);
  EXPECT_EQ(t.text, "EXAMINE completed (0.001 + 0.000 secs).");
  auto n = as<TaggedStatus>(one("A7 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"));
  EXPECT_EQ(n.status, Status::no);
  EXPECT_EQ(n.code->kind, CodeKind::authentication_failed);
  auto b = as<TaggedStatus>(one("A8 bad Error in IMAP command\r\n"));
  EXPECT_EQ(b.status, Status::bad);
  EXPECT_FALSE(b.code);
}

TEST(ImapParser, UntaggedStatusAndCodes) {
  auto g = as<UntaggedStatus>(
      one("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
          "AUTH=PLAIN] Dovecot (Debian) ready.\r\n"));
  ASSERT_TRUE(g.code);
  EXPECT_EQ(g.code->kind, CodeKind::capability);
  EXPECT_EQ(g.code->atoms.size(), 8u);
  EXPECT_EQ(g.code->atoms.back(), "AUTH=PLAIN");
  EXPECT_EQ(g.text, "Dovecot (Debian) ready.");

  auto v = as<UntaggedStatus>(one("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"));
  EXPECT_EQ(v.code->kind, CodeKind::uidvalidity);
  EXPECT_EQ(v.code->number, 3857529045u);
  auto h = as<UntaggedStatus>(one("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"));
  EXPECT_EQ(h.code->number, 715194045007u);
  auto nm =
      as<UntaggedStatus>(one("* OK [NOMODSEQ] Sorry, this mailbox format doesn't support "
                             "modsequences\r\n"));
  EXPECT_EQ(nm.code->kind, CodeKind::nomodseq);
  auto pf = as<UntaggedStatus>(one("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"));
  EXPECT_EQ(pf.code->kind, CodeKind::permanentflags);
  EXPECT_EQ(pf.code->atoms, (std::vector<std::string>{"\\Deleted", "\\Seen", "\\*"}));
  auto al = as<UntaggedStatus>(one("* NO [ALERT] Quota exceeded\r\n"));
  EXPECT_EQ(al.status, Status::no);
  EXPECT_EQ(al.code->kind, CodeKind::alert);
  auto bye = as<UntaggedStatus>(one("* BYE [UNAVAILABLE] Server shutting down.\r\n"));
  EXPECT_EQ(bye.status, Status::bye);
  EXPECT_EQ(bye.code->kind, CodeKind::unavailable);
  auto th = as<TaggedStatus>(one("A3 NO [THROTTLED] Too many requests\r\n"));
  EXPECT_EQ(th.code->kind, CodeKind::throttled);
  auto oq = as<TaggedStatus>(one("A3 NO [OVERQUOTA] Over quota\r\n"));
  EXPECT_EQ(oq.code->kind, CodeKind::over_quota);
  auto cl = as<UntaggedStatus>(one("* OK [CLOSED] Previous mailbox closed.\r\n"));
  EXPECT_EQ(cl.code->kind, CodeKind::closed);
  auto nf = as<UntaggedStatus>(one("* NO [NOTIFICATIONOVERFLOW] Too many events\r\n"));
  EXPECT_EQ(nf.status, Status::no);
  EXPECT_EQ(nf.code->kind, CodeKind::notificationoverflow);
  auto other = as<UntaggedStatus>(one("* OK [X-FOO bar baz] hi\r\n"));
  EXPECT_EQ(other.code->kind, CodeKind::other);
  EXPECT_EQ(other.code->name, "X-FOO");
  EXPECT_EQ(other.code->raw, "bar baz");
  auto pre = as<UntaggedStatus>(one("* PREAUTH IMAP4rev1 server logged in as Smith\r\n"));
  EXPECT_EQ(pre.status, Status::preauth);
  // No "]": the bracket is text.
  auto nb = as<UntaggedStatus>(one("* OK [oops\r\n"));
  EXPECT_FALSE(nb.code);
  EXPECT_EQ(nb.text, "[oops");
  // Status text that ends like a literal announcement is still text.
  auto lt = as<UntaggedStatus>(one("* OK looks like {5}\r\n"));
  EXPECT_EQ(lt.text, "looks like {5}");
  auto bare = as<TaggedStatus>(one("A1 OK\r\n"));
  EXPECT_EQ(bare.text, "");
}

TEST(ImapParser, Continuation) {
  EXPECT_EQ(as<Continuation>(one("+ idling\r\n")).text, "idling");
  EXPECT_EQ(as<Continuation>(one("+\r\n")).text, "");
  EXPECT_EQ(as<Continuation>(one("+ \r\n")).text, "");
  EXPECT_EQ(as<Continuation>(one("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")).text,
            "eyJzdGF0dXMiOiI0MDEifQ==");
}

TEST(ImapParser, CapabilityFlagsCounts) {
  auto c =
      as<Capabilities>(one("* CAPABILITY IMAP4rev1 LITERAL+ CONDSTORE QRESYNC X-GM-EXT-1\r\n"));
  EXPECT_EQ(c.names.size(), 5u);
  EXPECT_TRUE(c.has("qresync"));
  EXPECT_FALSE(c.has("IDLE"));
  auto f = as<Flags>(one("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"));
  EXPECT_EQ(f.flags.size(), 6u);
  EXPECT_EQ(f.flags[5], "$Forwarded");
  EXPECT_EQ(as<Flags>(one("* FLAGS ()\r\n")).flags.size(), 0u);
  EXPECT_EQ(as<Exists>(one("* 23 EXISTS\r\n")).count, 23u);
  EXPECT_EQ(as<Recent>(one("* 5 RECENT\r\n")).count, 5u);
  EXPECT_EQ(as<Expunge>(one("* 44 EXPUNGE\r\n")).seq, 44u);
  EXPECT_EQ(as<Exists>(one("* 0 exists\r\n")).count, 0u);
}

TEST(ImapParser, Vanished) {
  auto v = as<Vanished>(one("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"));
  EXPECT_TRUE(v.earlier);
  EXPECT_EQ(v.uids.to_string(), "41,43:116,118,120:211,214:540");
  EXPECT_TRUE(v.uids.contains(100));
  EXPECT_FALSE(v.uids.contains(117));
  auto w = as<Vanished>(one("* VANISHED 405,407,410,425\r\n"));
  EXPECT_FALSE(w.earlier);
  EXPECT_EQ(w.uids.size(), 4u);
}

TEST(ImapParser, FetchSimpleItems) {
  auto f = as<FetchItem>(
      one("* 12 FETCH (UID 4827313 FLAGS (\\Seen $Label1) INTERNALDATE \"17-Jul-1996 02:44:25 "
          "-0700\" RFC822.SIZE 44827 MODSEQ (12121231000) X-GM-MSGID 1278455344230334865 "
          "X-GM-THRID 1266894439832287888 X-GM-LABELS (\\Inbox \"\\\\Sent\" Important "
          "\"Work/Q&AMA-\"))\r\n"));
  EXPECT_EQ(f.seq, 12u);
  EXPECT_EQ(f.uid, 4827313u);
  EXPECT_EQ(f.flags, (std::vector<std::string>{"\\Seen", "$Label1"}));
  EXPECT_EQ(f.internaldate, "17-Jul-1996 02:44:25 -0700");
  EXPECT_EQ(f.size, 44827u);
  EXPECT_EQ(f.modseq, 12121231000u);
  EXPECT_EQ(f.gm_msgid, 1278455344230334865u);
  EXPECT_EQ(f.gm_thrid, 1266894439832287888u);
  ASSERT_TRUE(f.gm_labels);
  EXPECT_EQ(*f.gm_labels,
            (std::vector<std::string>{"\\Inbox", "\\Sent", "Important", "Work/Q&AMA-"}));
  auto empty_flags = as<FetchItem>(one("* 1 FETCH (FLAGS ())\r\n"));
  ASSERT_TRUE(empty_flags.flags);
  EXPECT_TRUE(empty_flags.flags->empty());
  EXPECT_FALSE(empty_flags.uid);
}

TEST(ImapParser, FetchEnvelope) {
  auto f = as<FetchItem>(one(
      "* 12 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg "
      "summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry "
      "Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "
      "\"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL \"minutes\" "
      "\"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
      "\"<B27397-0100000@cac.washington.edu>\"))\r\n"));
  ASSERT_TRUE(f.envelope);
  const Envelope& e = *f.envelope;
  EXPECT_EQ(e.subject, "IMAP4rev1 WG mtg summary and minutes");
  ASSERT_EQ(e.from.size(), 1u);
  EXPECT_EQ(e.from[0].name, "Terry Gray");
  EXPECT_EQ(e.from[0].mailbox, "gray");
  EXPECT_EQ(e.from[0].host, "cac.washington.edu");
  EXPECT_EQ(e.cc.size(), 2u);
  EXPECT_TRUE(e.bcc.empty());
  EXPECT_FALSE(e.in_reply_to);
  EXPECT_EQ(e.message_id, "<B27397-0100000@cac.washington.edu>");
}

TEST(ImapParser, EnvelopeGroupsAndLiteralSubject) {
  auto f = as<FetchItem>(
      one("* 3 FETCH (UID 9 ENVELOPE (NIL {10}\r\nA \"quoted\" ((NIL NIL \"team\" NIL)(\"A\" NIL "
          "\"a\" \"x.org\")(NIL NIL NIL NIL)) NIL NIL NIL NIL NIL NIL NIL))\r\n"));
  ASSERT_TRUE(f.envelope);
  EXPECT_EQ(f.envelope->subject, "A \"quoted\"");
  ASSERT_EQ(f.envelope->from.size(), 3u);
  EXPECT_TRUE(f.envelope->from[0].is_group_start());
  EXPECT_FALSE(f.envelope->from[1].is_group_start());
  EXPECT_TRUE(f.envelope->from[2].is_group_end());
}

TEST(ImapParser, BodystructureMultipartWithAttachment) {
  auto f = as<FetchItem>(one(
      "* 5 FETCH (UID 77 BODYSTRUCTURE (((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
      "\"quoted-printable\" 1234 40 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL "
      "NIL \"quoted-printable\" 5678 120 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b2\") "
      "NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"offer.pdf\") NIL NIL \"base64\" 123456 "
      "NIL (\"attachment\" (\"filename\" \"offer.pdf\" \"size\" \"90210\")) NIL NIL)(\"text\" "
      "\"calendar\" (\"charset\" \"utf-8\" \"method\" \"REQUEST\") NIL NIL \"7bit\" 900 30 NIL "
      "NIL NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL (\"en\" \"de\") NIL X-EXT (1 2)))\r\n"));
  ASSERT_TRUE(f.body);
  const BodyStructure& b = *f.body;
  EXPECT_TRUE(b.is_multipart());
  EXPECT_EQ(b.subtype, "mixed");
  EXPECT_EQ(b.section, "");
  EXPECT_EQ(b.language, (std::vector<std::string>{"en", "de"}));
  ASSERT_EQ(b.parts.size(), 3u);
  const BodyStructure& alt = b.parts[0];
  EXPECT_EQ(alt.subtype, "alternative");
  EXPECT_EQ(alt.section, "1");
  ASSERT_EQ(alt.parts.size(), 2u);
  EXPECT_EQ(alt.parts[0].section, "1.1");
  EXPECT_EQ(alt.parts[0].type, "text");
  EXPECT_EQ(alt.parts[0].lines, 40u);
  EXPECT_EQ(alt.parts[0].encoding, "quoted-printable");
  EXPECT_EQ(*alt.parts[1].param("CHARSET"), "utf-8");
  EXPECT_EQ(alt.parts[1].section, "1.2");
  const BodyStructure& pdf = b.parts[1];
  EXPECT_EQ(pdf.section, "2");
  EXPECT_EQ(pdf.size, 123456u);
  ASSERT_TRUE(pdf.disposition);
  EXPECT_EQ(pdf.disposition->type, "attachment");
  EXPECT_EQ(pdf.filename(), "offer.pdf");
  EXPECT_EQ(b.parts[2].section, "3");
  EXPECT_EQ(*b.parts[2].param("method"), "REQUEST");
}

TEST(ImapParser, BodystructureSinglePartAndMessageRfc822) {
  auto single = as<FetchItem>(
      one("* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
          "\"7BIT\" 3028 92))\r\n"));
  ASSERT_TRUE(single.body);
  EXPECT_EQ(single.body->type, "text");
  EXPECT_EQ(single.body->subtype, "plain");
  EXPECT_EQ(single.body->encoding, "7bit");
  EXPECT_EQ(single.body->section, "1");
  EXPECT_EQ(single.body->lines, 92u);

  auto fwd = as<FetchItem>(one(
      "* 2 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
      "10 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 500 (NIL \"Fwd\" NIL NIL "
      "NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" NIL NIL NIL \"7bit\" 20 2 NIL NIL NIL "
      "NIL)(\"image\" \"png\" NIL NIL NIL \"base64\" 300 NIL NIL NIL NIL) \"mixed\" (\"boundary\" "
      "\"x\") NIL NIL NIL) 12 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 100 "
      "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" 5 1) 3) "
      "\"mixed\"))\r\n"));
  ASSERT_TRUE(fwd.body);
  const BodyStructure& b = *fwd.body;
  ASSERT_EQ(b.parts.size(), 3u);
  const BodyStructure& msg = b.parts[1];
  EXPECT_EQ(msg.section, "2");
  ASSERT_TRUE(msg.envelope);
  EXPECT_EQ(msg.envelope->subject, "Fwd");
  EXPECT_EQ(msg.lines, 12u);
  ASSERT_EQ(msg.parts.size(), 1u);
  EXPECT_EQ(msg.parts[0].section, "2");  // its multipart body
  ASSERT_EQ(msg.parts[0].parts.size(), 2u);
  EXPECT_EQ(msg.parts[0].parts[0].section, "2.1");
  EXPECT_EQ(msg.parts[0].parts[1].section, "2.2");
  // A message/rfc822 with a single-part body: that body is N.1.
  ASSERT_EQ(b.parts[2].parts.size(), 1u);
  EXPECT_EQ(b.parts[2].parts[0].section, "3.1");
  // BODY (non-extensible) has no extension data.
  auto body =
      as<FetchItem>(one("* 3 FETCH (BODY (\"text\" \"plain\" NIL NIL NIL \"8bit\" 5 1))\r\n"));
  EXPECT_TRUE(body.body);
}

TEST(ImapParser, BodySectionsWithLiterals) {
  std::string header = "From: a@b.c\r\nSubject: hi {5}\r\n\r\n";
  std::string input = "* 4 FETCH (UID 10 BODY[HEADER] {" + std::to_string(header.size()) + "}\r\n" +
                      header + " BODY[1.2]<0> {5}\r\nhello BODY[2.MIME] \"x\" " +
                      "BODY[HEADER.FIELDS (FROM \"To\")] {0}\r\n BINARY[3] ~{3}\r\n";
  input += std::string("\0\1\2", 3);  // literal8: binary bytes, NUL included
  input += " BODY[TEXT] NIL BODY[] \"\" RFC822.HEADER {1}\r\nZ)\r\n";
  auto f = as<FetchItem>(one(input));
  ASSERT_EQ(f.sections.size(), 8u);
  EXPECT_EQ(f.sections[0].section.text, SectionText::header);
  EXPECT_EQ(f.sections[0].data, header);
  EXPECT_EQ(f.sections[1].section.part, "1.2");
  EXPECT_EQ(f.sections[1].origin, 0u);
  EXPECT_EQ(f.sections[1].data, "hello");
  EXPECT_EQ(f.sections[2].section.part, "2");
  EXPECT_EQ(f.sections[2].section.text, SectionText::mime);
  EXPECT_EQ(f.sections[3].section.text, SectionText::header_fields);
  EXPECT_EQ(f.sections[3].section.fields, (std::vector<std::string>{"FROM", "To"}));
  EXPECT_EQ(f.sections[3].data, "");
  EXPECT_TRUE(f.sections[4].binary);
  EXPECT_EQ(f.sections[4].data, std::string("\0\1\2", 3));
  EXPECT_EQ(f.sections[5].section.text, SectionText::text);
  EXPECT_FALSE(f.sections[5].data);
  EXPECT_EQ(f.sections[6].section, Section{});
  EXPECT_EQ(f.sections[6].data, "");
  EXPECT_EQ(f.sections[7].section.text, SectionText::header);  // RFC822.HEADER
  EXPECT_EQ(f.sections[7].data, "Z");
}

TEST(ImapParser, SectionsOfEnclosedMessages) {
  auto f = as<FetchItem>(
      one("* 1 FETCH (BODY[2.HEADER] {0}\r\n BODY[2.HEADER.FIELDS.NOT (Received)] NIL "
          "BODY[2.1.TEXT]<10> \"t\" BINARY[1.2] \"b\" BODY[12.MIME] \"m\")\r\n"));
  ASSERT_EQ(f.sections.size(), 5u);
  EXPECT_EQ(f.sections[0].section, (Section{"2", SectionText::header, {}}));
  EXPECT_EQ(f.sections[1].section, (Section{"2", SectionText::header_fields_not, {"Received"}}));
  EXPECT_EQ(f.sections[2].section, (Section{"2.1", SectionText::text, {}}));
  EXPECT_EQ(f.sections[2].origin, 10u);
  EXPECT_TRUE(f.sections[3].binary);
  EXPECT_EQ(f.sections[3].section.part, "1.2");
  EXPECT_EQ(f.sections[4].section.to_string(), "12.MIME");
  EXPECT_EQ(f.sections[1].section.to_string(), "2.HEADER.FIELDS.NOT (Received)");
  // Unknown section keywords are a content error, not a crash.
  EXPECT_FALSE(parse_response("* 1 FETCH (BODY[1.FOO] NIL)\r\n").has_value());
}

TEST(ImapParser, LargeLiteralIsMovedNotCopied) {
  std::string body(1 << 20, 'x');
  std::string input =
      "* 1 FETCH (BODY[] {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n";
  std::size_t head = input.find('\n') + 1;
  ResponseParser parser;
  std::string_view in = input;
  Response r;
  bool first = true;
  while (!in.empty()) {
    std::string_view chunk = in.substr(0, 4096);
    in.remove_prefix(chunk.size());
    auto step = parser.feed(chunk);
    if (first) {
      ASSERT_EQ(step, ResponseParser::Step::need_more);
      EXPECT_EQ(parser.literal_remaining(), body.size() - (4096 - head));
      first = false;
    }
    if (step == ResponseParser::Step::event) r = parser.take();
  }
  auto& f = std::get<FetchItem>(r);
  ASSERT_EQ(f.sections.size(), 1u);
  ASSERT_TRUE(f.sections[0].data);
  EXPECT_EQ(*f.sections[0].data, body);
  // Reserved once for the announced size: the bytes were never moved by a
  // regrowth, only copied from the fed chunks.
  EXPECT_EQ(f.sections[0].data->capacity(), body.size());
}

TEST(ImapParser, SearchAndEsearch) {
  auto s = as<Search>(one("* SEARCH 2 84 882\r\n"));
  EXPECT_EQ(s.ids, (std::vector<std::uint32_t>{2, 84, 882}));
  EXPECT_TRUE(as<Search>(one("* SEARCH\r\n")).ids.empty());
  auto m = as<Search>(one("* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"));
  EXPECT_EQ(m.modseq, 917162500u);
  EXPECT_EQ(m.ids.size(), 10u);
  auto e = as<Esearch>(one("* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n"));
  EXPECT_EQ(e.tag, "A282");
  EXPECT_TRUE(e.uid);
  EXPECT_EQ(e.min, 2u);
  EXPECT_FALSE(e.max);
  EXPECT_EQ(e.count, 3u);
  EXPECT_EQ(e.all.to_string(), "2,10:11");
  auto none = as<Esearch>(one("* ESEARCH (TAG \"A283\") UID\r\n"));
  EXPECT_TRUE(none.all.empty());
  EXPECT_FALSE(none.count);
  auto unknown = as<Esearch>(one("* ESEARCH (TAG \"A1\") UID PARTIAL (1:10 5,7) MAX 9\r\n"));
  EXPECT_EQ(unknown.max, 9u);
}

TEST(ImapParser, ListAndLsub) {
  auto l = as<ListEntry>(one("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"));
  EXPECT_EQ(l.delimiter, '/');
  EXPECT_EQ(l.mailbox, "Sent");
  EXPECT_EQ(l.special_use(), SpecialUse::sent);
  EXPECT_FALSE(l.noselect());
  auto g = as<ListEntry>(one("* LIST (\\All \\HasNoChildren) \"/\" \"[Gmail]/All Mail\"\r\n"));
  EXPECT_EQ(g.mailbox, "[Gmail]/All Mail");
  EXPECT_EQ(g.special_use(), SpecialUse::all);
  auto n = as<ListEntry>(one("* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"\r\n"));
  EXPECT_TRUE(n.noselect());
  auto u = as<ListEntry>(one("* LIST () \".\" \"Entw&APw-rfe\"\r\n"));
  EXPECT_EQ(u.mailbox, "Entw\xc3\xbcrfe");
  EXPECT_EQ(u.mailbox_raw, "Entw&APw-rfe");
  auto nil = as<ListEntry>(one("* LSUB () NIL INBOX\r\n"));
  EXPECT_TRUE(nil.lsub);
  EXPECT_FALSE(nil.delimiter);
  auto lit = as<ListEntry>(
      one("* LIST (\\Junk) \"/\" {8}\r\nSpam \"x\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"));
  EXPECT_EQ(lit.mailbox, "Spam \"x\"");
  EXPECT_EQ(lit.special_use(), SpecialUse::junk);
  // Not valid modified UTF-7: kept as sent.
  auto bad = as<ListEntry>(one("* LIST () \"/\" \"a&b\"\r\n"));
  EXPECT_EQ(bad.mailbox, "a&b");
  auto x = as<ListEntry>(one("* XLIST (\\HasNoChildren \\Spam) \"/\" \"[Gmail]/Spam\"\r\n"));
  EXPECT_EQ(x.special_use(), SpecialUse::junk);
}

TEST(ImapParser, Utf8AcceptKeepsNames) {
  ResponseParser p;
  p.set_utf8_accept(true);
  std::string_view in = "* LIST () \"/\" \"Entw&APw-rfe\"\r\n";
  ASSERT_EQ(p.feed(in), ResponseParser::Step::event);
  EXPECT_EQ(std::get<ListEntry>(p.take()).mailbox, "Entw&APw-rfe");
}

TEST(ImapParser, StatusEnabledId) {
  auto s = as<MailboxStatus>(
      one("* STATUS \"INBOX\" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 HIGHESTMODSEQ "
          "7011231777 X-UNKNOWN 3)\r\n"));
  EXPECT_EQ(s.mailbox, "INBOX");
  EXPECT_EQ(s.messages, 231u);
  EXPECT_EQ(s.uidnext, 44292u);
  EXPECT_EQ(s.uidvalidity, 1u);
  EXPECT_EQ(s.highestmodseq, 7011231777u);
  EXPECT_FALSE(s.unseen);
  // As NOTIFY announces a change (Dovecot's words, RFC 5465).
  auto n = as<MailboxStatus>(
      one("* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796619639 UNSEEN 1 HIGHESTMODSEQ "
          "2)\r\n"));
  EXPECT_EQ(n.mailbox, "Sent");
  EXPECT_EQ(n.uidnext, 2u);
  EXPECT_EQ(n.unseen, 1u);
  auto e = as<Enabled>(one("* ENABLED CONDSTORE QRESYNC\r\n"));
  EXPECT_EQ(e.capabilities, (std::vector<std::string>{"CONDSTORE", "QRESYNC"}));
  auto id = as<IdInfo>(one("* ID (\"name\" \"Dovecot\" \"support-url\" NIL)\r\n"));
  ASSERT_EQ(id.fields.size(), 2u);
  EXPECT_EQ(id.fields[0].second, "Dovecot");
  EXPECT_FALSE(id.fields[1].second);
  EXPECT_TRUE(as<IdInfo>(one("* ID NIL\r\n")).fields.empty());
}

TEST(ImapParser, UnrecognizedResponsesAreKept) {
  auto n = as<Unrecognized>(one("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"));
  EXPECT_EQ(n.name, "NAMESPACE");
  EXPECT_EQ(n.line, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
  auto q = as<Unrecognized>(one("* QUOTA \"\" (STORAGE 10 512)\r\n"));
  EXPECT_EQ(q.name, "QUOTA");
  auto num = as<Unrecognized>(one("* 3 XFOO {3}\r\nabc\r\n"));
  EXPECT_EQ(num.name, "XFOO");
  auto fi = as<FetchItem>(one("* 1 FETCH (X-NEW (1 \"a\" {2}\r\nxy) UID 3 BINARY.SIZE[1] 40)\r\n"));
  EXPECT_EQ(fi.uid, 3u);
  EXPECT_EQ(fi.unknown, (std::vector<std::string>{"X-NEW", "BINARY.SIZE[1]"}));
}

TEST(ImapParser, SeveralResponsesInOneChunk) {
  auto events = events_all_splits(
      "* 1 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\nA1 OK done\r\n");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0], "exists 1");
  EXPECT_EQ(events[2], "fetch 1 uid=5 BODY[]=\"abc\"");
  EXPECT_EQ(events[3], "tagged A1 OK \"done\"");
}

TEST(ImapParser, BareLfAndExtraSpacesAreTolerated) {
  auto events = events_all_splits("* 2 EXISTS\n* 1 FETCH (UID 4  FLAGS ( \\Seen ) )\r\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1], "fetch 1 uid=4 flags=(\\Seen)");
}

TEST(ImapParser, QuotedEscapes) {
  auto l = as<ListEntry>(one("* LIST () \"/\" \"a\\\\b\\\"c\"\r\n"));
  EXPECT_EQ(l.mailbox, "a\\b\"c");
}

TEST(ImapParser, SyntaxErrorIsRecoverable) {
  auto events = events_all_splits(
      "* 1 FETCH (UID x)\r\n* 2 FETCH (BODY[1] {3}\r\nabc\r\n* 3 EXISTS\r\n"
      "* 4 FETCH (ENVELOPE (NIL))\r\n* LIST\r\nA1 FOO\r\n* 4 EXISTS\r\n");
  std::string syntax = "error: " + make_error_code(Errc::syntax).message();
  EXPECT_EQ(events, (std::vector<std::string>{syntax, syntax, "exists 3", syntax, syntax, syntax,
                                              "exists 4"}));
  ResponseParser p;
  std::string_view in = "* 1 FETCH (UID x)\r\n";
  ASSERT_EQ(p.feed(in), ResponseParser::Step::error);
  EXPECT_FALSE(p.broken());
  EXPECT_NE(p.error_detail().find("FETCH"), std::string::npos) << p.error_detail();
}

TEST(ImapParser, LimitsAreErrorsNotCrashes) {
  ParserLimits limits;
  limits.max_line = 64;
  limits.max_literal = 10;
  limits.max_response = 200;
  limits.max_literals = 3;
  limits.max_depth = 4;
  auto err = [](Errc e) { return "error: " + make_error_code(e).message(); };
  EXPECT_EQ(events_all_splits(std::string("* OK ") + std::string(100, 'x') + "\r\n", limits),
            (std::vector<std::string>{err(Errc::line_too_long)}));
  EXPECT_EQ(events_all_splits("* 1 FETCH (BODY[] {11}\r\nhello world)\r\n", limits),
            (std::vector<std::string>{err(Errc::literal_too_large)}));
  EXPECT_EQ(events_all_splits("* 1 FETCH (BODY[] {99999999999999999999}\r\n", limits),
            (std::vector<std::string>{err(Errc::bad_literal)}));
  EXPECT_EQ(events_all_splits("* X {0}\r\n{0}\r\n{0}\r\n{0}\r\n", limits),
            (std::vector<std::string>{err(Errc::too_many_literals)}));
  ParserLimits small = limits;
  small.max_literals = 100;
  std::string many;
  for (int i = 0; i < 12; ++i) many += "* X {9}\r\n123456789 ";
  EXPECT_EQ(events_all_splits(many, small),
            (std::vector<std::string>{err(Errc::response_too_large)}));
  EXPECT_EQ(events_all_splits("* 1 FETCH (BODYSTRUCTURE (((((\"a\" \"b\"))))))\r\n* 1 EXISTS\r\n",
                              limits),
            (std::vector<std::string>{err(Errc::too_deep), "exists 1"}));
  // Over two limits on one line: the one the stream crosses first wins,
  // however the bytes are split (found by fuzzing).
  ParserLimits both = limits;
  both.max_line = 30;
  both.max_response = 60;
  both.max_literal = 100;
  EXPECT_EQ(
      events_all_splits("* 1 FETCH (BODY[] {5}\r\n12345 X " + std::string(40, 'x') + "\r\n", both),
      (std::vector<std::string>{err(Errc::line_too_long)}));
  EXPECT_EQ(events_all_splits("* 1 FETCH (BODY[] {20}\r\n" + std::string(20, 'y') + " X " +
                                  std::string(40, 'x') + "\r\n",
                              both),
            (std::vector<std::string>{err(Errc::response_too_large)}));
  // A broken parser stays broken until reset().
  ResponseParser p(limits);
  std::string_view in = "* 1 FETCH (BODY[] {11}\r\n";
  EXPECT_EQ(p.feed(in), ResponseParser::Step::error);
  EXPECT_TRUE(p.broken());
  std::string_view more = "* 1 EXISTS\r\n";
  EXPECT_EQ(p.feed(more), ResponseParser::Step::error);
  EXPECT_EQ(more.size(), 12u);
  p.reset();
  EXPECT_EQ(p.feed(more), ResponseParser::Step::event);
  EXPECT_EQ(to_text(p.take()), "exists 1");
}

TEST(ImapParser, LiteralStateIsVisible) {
  ResponseParser p;
  std::string_view a = "* 1 FETCH (BODY[] {10}\r\n0123";
  EXPECT_EQ(p.feed(a), ResponseParser::Step::need_more);
  EXPECT_EQ(p.literal_remaining(), 6u);
  EXPECT_GT(p.buffered(), 0u);
  std::string_view b = "456789)\r\n";
  EXPECT_EQ(p.feed(b), ResponseParser::Step::event);
  EXPECT_EQ(p.literal_remaining(), 0u);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(ImapParser, ParseResponseWantsExactlyOne) {
  EXPECT_FALSE(parse_response("* 1 EXISTS\r\n* 2 EXISTS\r\n").has_value());
  EXPECT_FALSE(parse_response("* 1 EXISTS").has_value());
  EXPECT_TRUE(parse_response("* 1 EXISTS\r\n").has_value());
}

TEST(ImapParser, TakeWithoutEvent) {
  ResponseParser p;
  EXPECT_EQ(kind_name(p.take()), "unrecognized");
}

// --- shared types -----------------------------------------------------------

TEST(ImapUidSet, CompressesAndMerges) {
  UidSet s;
  for (std::uint32_t n : {7u, 1u, 2u, 3u, 4u, 5u, 9u, 12u, 10u, 11u}) s.add(n);
  EXPECT_EQ(s.to_string(), "1:5,7,9:12");
  EXPECT_EQ(s.size(), 10u);
  s.add(6);
  EXPECT_EQ(s.to_string(), "1:7,9:12");
  s.add(8);
  EXPECT_EQ(s.to_string(), "1:12");
  UidSet t;
  t.add(100, UidSet::star);
  t.add(50, 60);
  EXPECT_EQ(t.to_string(), "50:60,100:*");
  t.add(0);
  EXPECT_EQ(t.to_string(), "50:60,100:*");
  t.add(61, 99);
  EXPECT_EQ(t.to_string(), "50:*");
  EXPECT_EQ(t.min(), 50u);
  EXPECT_TRUE(UidSet().to_string().empty());
  auto p = UidSet::parse("9:12,1:5,7,3");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->to_string(), "1:5,7,9:12");
  EXPECT_EQ(UidSet::parse("5:*")->to_string(), "5:*");
  EXPECT_FALSE(UidSet::parse("").has_value());
  EXPECT_FALSE(UidSet::parse("1,,2").has_value());
  EXPECT_FALSE(UidSet::parse("0").has_value());
  EXPECT_FALSE(UidSet::parse("4294967296").has_value());
  EXPECT_FALSE(UidSet::parse("a").has_value());
}

TEST(ImapMutf7, RoundTrips) {
  struct Case {
    std::string_view utf8, mutf7;
  };
  for (Case c :
       {Case{"INBOX", "INBOX"}, Case{"Entw\xc3\xbcrfe", "Entw&APw-rfe"}, Case{"A & B", "A &- B"},
        Case{"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
             "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
        Case{"\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail"},
        Case{"Gel\xc3\xb6schte Elemente", "Gel&APY-schte Elemente"}}) {
    auto e = mutf7_encode(c.utf8);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(*e, c.mutf7);
    auto d = mutf7_decode(c.mutf7);
    ASSERT_TRUE(d.has_value()) << c.mutf7;
    EXPECT_EQ(*d, c.utf8);
  }
  for (std::string_view bad :
       {"&", "&Jjo", "&Jjo!-", "&AGE-", "&2D0-", "&3D3c5w-", "\xc3\xbc", "&U,BTF2-", "&-&"}) {
    EXPECT_FALSE(mutf7_decode(bad).has_value()) << bad;
  }
  EXPECT_FALSE(mutf7_encode("\xc3").has_value());
  EXPECT_FALSE(mutf7_encode("\xed\xa0\x80").has_value());  // a UTF-8 encoded surrogate
  EXPECT_EQ(mutf7_decode("&-").value(), "&");
}

TEST(ImapHeaderField, FirstFieldOfThatNameUnfoldedAndTrimmed) {
  using crmcap::imap::header_field_value;
  EXPECT_EQ(header_field_value("Message-ID: <a@b>\r\n\r\n", "Message-ID"), "<a@b>");
  EXPECT_EQ(header_field_value("message-id:<a@b>  \r\n", "MESSAGE-ID"), "<a@b>");
  EXPECT_EQ(header_field_value("Message-ID:\r\n <long.id@\r\n\texample.com>\r\n\r\n", "Message-ID"),
            "<long.id@\texample.com>");
  EXPECT_EQ(header_field_value("X-Message-ID: <x@y>\r\nMessage-ID: <a@b>\r\n"
                               "Message-ID: <second@b>\r\n",
                               "Message-ID"),
            "<a@b>");
  EXPECT_EQ(header_field_value("Message-ID: <a@b>\n", "Message-ID"), "<a@b>");  // bare LF
  EXPECT_EQ(header_field_value("\r\n", "Message-ID"), "");                      // no such field
  EXPECT_EQ(header_field_value("Message-ID:\r\n", "Message-ID"), "");
  EXPECT_EQ(header_field_value("Message-ID <a@b>\r\n", "Message-ID"), "");           // no colon
  EXPECT_EQ(header_field_value("Message-ID \t: <a@b>\r\n", "Message-ID"), "<a@b>");  // obsolete
  EXPECT_EQ(header_field_value("Message-IDs: <a@b>\r\n", "Message-ID"), "");
  EXPECT_EQ(header_field_value("", "Message-ID"), "");
}

TEST(ImapHeaderBlock, EndsAtTheFirstEmptyLineSoTheBodyIsNeverReadAsHeader) {
  using crmcap::imap::header_block;
  using crmcap::imap::header_field_value;
  EXPECT_EQ(header_block("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"), "A: 1\r\nB: 2\r\n\r\n");
  EXPECT_EQ(header_block("A: 1\nB: 2\n\nbody"), "A: 1\nB: 2\n\n");  // bare LF
  EXPECT_EQ(header_block("A: 1\r\n folded\r\n\r\nbody"), "A: 1\r\n folded\r\n\r\n");
  EXPECT_EQ(header_block("A: 1\r\nB: 2\r\n"), "A: 1\r\nB: 2\r\n");  // a header only
  EXPECT_EQ(header_block("\r\nMessage-ID: <in@body>\r\n"), "");     // no header at all
  EXPECT_EQ(header_block("\nMessage-ID: <in@body>\n"), "");
  EXPECT_EQ(header_block(""), "");
  // A Message-ID line in the body is not the message's.
  const std::string_view raw = "Subject: x\r\n\r\nMessage-ID: <in@body>\r\n";
  EXPECT_EQ(header_field_value(header_block(raw), "Message-ID"), "");
  EXPECT_EQ(header_field_value(raw, "Message-ID"), "<in@body>");  // what the cut prevents
}

TEST(ImapInternaldate, ParsesToUnixSeconds) {
  EXPECT_EQ(internaldate_to_unix("17-Jul-1996 02:44:25 -0700"), 837596665);
  EXPECT_EQ(internaldate_to_unix(" 1-Jan-1970 00:00:00 +0000"), 0);
  EXPECT_EQ(internaldate_to_unix("1-jan-1970 01:00:00 +0100"), 0);
  EXPECT_EQ(internaldate_to_unix("25-Nov-2026 09:30:45 +0000"), 1795599045);
  for (std::string_view bad :
       {"", "17-Jul-1996", "17-Jux-1996 02:44:25 -0700", "31-Feb-2026 00:00:00 +0000",
        "17-Jul-1996 24:00:00 +0000", "17-Jul-1996 02:44:25 0700", "17-Jul-1996 02:44:25 -0700 ",
        "117-Jul-1996 02:44:25 -0700", "-Jul-1996 02:44:25 -0700"}) {
    EXPECT_FALSE(internaldate_to_unix(bad)) << bad;
  }
}

TEST(ImapEnvelope, AddressJoinsMailboxAndHost) {
  EXPECT_EQ((EnvelopeAddress{"Bob", std::nullopt, "bob", "example.com"}.address()),
            "bob@example.com");
  EXPECT_EQ((EnvelopeAddress{std::nullopt, std::nullopt, "team", std::nullopt}.address()), "");
}

TEST(ImapErrors, CategoryAndMessages) {
  std::error_code ec = Errc::literal_too_large;
  EXPECT_EQ(ec.category().name(), std::string("imap"));
  EXPECT_EQ(ec, make_error_code(Errc::literal_too_large));
  EXPECT_FALSE(ec.message().empty());
}

}  // namespace
}  // namespace crmcap::imap
