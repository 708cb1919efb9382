// SPDX-License-Identifier: Apache-2.0
// The IMAP session core (core/session.hpp) driven without sockets: a script
// says what the client must write and what the server answers, the test
// carries out every Action the core asks for (the sink's calls on an
// in-memory sink, time on a fake clock) and checks what it asked for: the
// commands, their pipelining, the sink's calls and the end. Then the same
// exchange again failing the i-th I/O step on run i (STYLE 13), whole and
// in small reads: each run must end cleanly, in an error or, past the last
// commit, done, and never leave a commit it started unwaited.
#include "connectors/imap/core/session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace crmcap::imap {
namespace {

using namespace std::chrono;

// What the client writes (one write), what the server sends (read as it
// comes), or a step where no byte comes.
struct Step {
  enum class Kind { client, server, start_tls, wake };
  Kind kind;
  std::string bytes;
};

class Script {
 public:
  // Consecutive client lines are one write: the core pipelines them.
  Script& client(const std::string& line) {
    if (!steps_.empty() && steps_.back().kind == Step::Kind::client) {
      steps_.back().bytes += line + "\r\n";
    } else {
      steps_.push_back({Step::Kind::client, line + "\r\n"});
    }
    return *this;
  }
  Script& server(const std::string& line) { return server_bytes(line + "\r\n"); }
  Script& server_bytes(const std::string& bytes) {
    if (!steps_.empty() && steps_.back().kind == Step::Kind::server) {
      steps_.back().bytes += bytes;
    } else {
      steps_.push_back({Step::Kind::server, bytes});
    }
    return *this;
  }
  Script& start_tls() {
    steps_.push_back({Step::Kind::start_tls, {}});
    return *this;
  }
  // The read waits until its wake_at passes (IDLE's DONE is due).
  Script& wake() {
    steps_.push_back({Step::Kind::wake, {}});
    return *this;
  }
  const std::vector<Step>& steps() const { return steps_; }

 private:
  std::vector<Step> steps_;
};

// Message `id`: a short note from jane@acme.com, Message-ID <m`id`@acme.com>.
std::string message(int id) {
  return "From: Jane Doe <jane@acme.com>\r\nTo: alice@example.com\r\nSubject: Note " +
         std::to_string(id) + "\r\nMessage-ID: <m" + std::to_string(id) +
         "@acme.com>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\nHello " + std::to_string(id) +
         ".\r\n";
}

std::string first_fetch(int uid) {
  return "* " + std::to_string(uid) + " FETCH (UID " + std::to_string(uid) +
         " INTERNALDATE \"24-Nov-2026 09:00:00 +0000\" BODYSTRUCTURE (\"TEXT\" \"PLAIN\" "
         "(\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" " +
         std::to_string(message(uid).size()) + " 1 NIL NIL NIL NIL))";
}

std::string body_fetch(int uid) {
  const std::string m = message(uid);
  return "* " + std::to_string(uid) + " FETCH (UID " + std::to_string(uid) + " BODY[] {" +
         std::to_string(m.size()) + "}\r\n" + m + ")\r\n";
}

// The sink, in memory: what a store would keep.
class MemoryMailSink final : public MailSink {
 public:
  std::optional<FolderState> folder_state(const std::string& folder) override {
    auto it = states.find(folder);
    if (it == states.end()) return std::nullopt;
    return it->second;
  }
  std::vector<bool> known_messages(const std::string&,
                                   const std::vector<MessageKey>& keys) override {
    std::vector<bool> out;
    for (const auto& k : keys) out.push_back(ids.contains(k.message_id));
    return out;
  }
  SyncResult<void> commit(const FolderState& state, std::vector<FetchedMessage> messages) override {
    if (commit_calls++ == fail_commit) {
      return SyncError{make_error_code(SyncErrc::sink), "disk full", RetryClass::retry_later};
    }
    states[state.folder] = state;
    for (auto& m : messages) {
      ids[m.message_id] = m.uid;
      committed.push_back(std::move(m));
    }
    ++commits;
    return {};
  }
  SyncResult<void> removed(const FolderState& state, const UidRanges& uids) override {
    states[state.folder] = state;
    for (const auto& r : uids) removed_uids.push_back(r);
    return {};
  }
  SyncResult<void> note_refusal(const FolderState& state) override {
    states[state.folder].refused = state.refused;
    return {};
  }
  void warn(const std::string& message) override { warnings.push_back(message); }

  std::map<std::string, FolderState> states;
  std::map<std::string, std::uint32_t> ids;  // Message-ID -> UID
  std::vector<FetchedMessage> committed;
  UidRanges removed_uids;
  std::vector<std::string> warnings;
  int commits = 0;
  int commit_calls = 0;
  int fail_commit = -1;  // the 0-based commit call that fails
};

struct RunOptions {
  session_fsm::Mode mode = session_fsm::Mode::once;
  // The I/O step (connect, write, read, start_tls; 0-based) that fails.
  std::optional<std::size_t> fail_at;
  std::size_t read_bytes = 1 << 20;  // most bytes one read gives
  int stop_after_passes = 0;         // watch: stop() after this many `synced`
  SessionMemory* memory = nullptr;   // kept across sessions (Account::run)
};

struct Outcome {
  Action::Kind kind = Action::Kind::done;  // how it ended
  SyncError error;                         // kind == error
  std::vector<std::string> log;            // what the core asked for, in order
  std::size_t io_steps = 0;
  std::string script_error;  // the core left the script: where and how
  bool script_done = false;  // every step of the script was used
  int passes = 0;
  std::size_t unwaited = 0;          // commits started and never waited for
  SyncReport report;                 // once, done
  std::vector<seconds> woken_after;  // each read woken, after the session's start
};

// Written bytes for the log: CRLF-separated commands joined by " + ".
std::string one_line(std::string_view bytes) {
  std::string s(bytes);
  if (s.ends_with("\r\n")) s.resize(s.size() - 2);
  for (std::size_t p; (p = s.find("\r\n")) != std::string::npos;) s.replace(p, 2, " + ");
  return s;
}

// Carries out every Action of a session over `script`, on `sink`.
Outcome run(const AccountOptions& options, const Script& script, MemoryMailSink& sink,
            const RunOptions& ro = {}) {
  Outcome out;
  steady_clock::time_point steady{hours(1000)};
  const system_clock::time_point system = sys_days{year{2026} / December / 1} + hours(12);
  SessionClocks clocks;
  clocks.steady = [&] { return steady; };
  clocks.system = [&] { return system; };
  const steady_clock::time_point start = steady;
  session_fsm fsm(options, ro.mode, clocks, ro.memory);
  const auto& steps = script.steps();
  std::size_t at = 0;      // the step under way
  std::size_t offset = 0;  // of a server step: bytes already read
  std::map<std::uint64_t, SyncResult<void>> started;
  auto fail = [&](std::string why) {
    if (out.script_error.empty()) out.script_error = std::move(why);
  };
  auto failing = [&]() {
    const bool f = ro.fail_at && *ro.fail_at == out.io_steps;
    ++out.io_steps;
    return f;
  };
  const TransportError broken{make_error_code(TransportErrc::read_failed), {}, "connection reset"};
  Action a = fsm.resume({});
  for (int guard = 0; guard < 100000; ++guard) {
    Io io;
    switch (a.kind) {
      case Action::Kind::connect:
        out.log.push_back("connect");
        if (failing()) io.error = broken;
        break;
      case Action::Kind::write: {
        out.log.push_back("write " + one_line(a.bytes));
        if (failing()) {
          io.error = broken;
          break;
        }
        if (at >= steps.size() || steps[at].kind != Step::Kind::client) {
          fail("unexpected write: " + std::string(a.bytes));
        } else if (steps[at].bytes != a.bytes) {
          fail("wrote:\n" + std::string(a.bytes) + "expected:\n" + steps[at].bytes);
        } else {
          ++at;
        }
        break;
      }
      case Action::Kind::read: {
        if (failing()) {
          out.log.push_back("read");
          io.error = broken;
          break;
        }
        if (at < steps.size() && steps[at].kind == Step::Kind::wake && a.wake_at) {
          out.log.push_back("read woken");
          steady = *a.wake_at;
          out.woken_after.push_back(duration_cast<seconds>(steady - start));
          io.woken = true;
          ++at;
          break;
        }
        out.log.push_back("read");
        if (at >= steps.size() || steps[at].kind != Step::Kind::server) {
          fail("reads where the script has no server bytes (step " + std::to_string(at) + ")");
          io.error = TransportError{make_error_code(TransportErrc::read_timeout), {}, "silent"};
          break;
        }
        const std::string& b = steps[at].bytes;
        const std::size_t n = std::min({ro.read_bytes, a.into.size(), b.size() - offset});
        std::copy_n(b.data() + offset, n, a.into.data());
        io.bytes = n;
        offset += n;
        if (offset == b.size()) {
          ++at;
          offset = 0;
        }
        break;
      }
      case Action::Kind::start_tls:
        out.log.push_back("start_tls");
        if (failing()) {
          io.error = broken;
          break;
        }
        if (at >= steps.size() || steps[at].kind != Step::Kind::start_tls) {
          fail("unexpected STARTTLS handshake");
        } else {
          ++at;
        }
        break;
      case Action::Kind::close:
        out.log.push_back("close");
        break;
      case Action::Kind::sink:
        std::visit(
            [&](auto& c) {
              using C = std::decay_t<decltype(c)>;
              if constexpr (std::is_same_v<C, sink_call::FolderStates>) {
                out.log.push_back("sink folder_states");
                for (const auto& f : c.folders) io.sink.states.push_back(sink.folder_state(f));
              } else if constexpr (std::is_same_v<C, sink_call::KnownMessages>) {
                out.log.push_back("sink known_messages");
                io.sink.known = sink.known_messages(c.folder, c.keys);
              } else if constexpr (std::is_same_v<C, sink_call::Removed>) {
                out.log.push_back("sink removed");
                io.sink.result = sink.removed(c.state, c.uids);
              } else if constexpr (std::is_same_v<C, sink_call::NoteRefusal>) {
                out.log.push_back("sink note_refusal");
                io.sink.result = sink.note_refusal(c.state);
              } else {
                out.log.push_back("sink warn");
                sink.warn(c.message);
              }
            },
            *a.call);
        break;
      case Action::Kind::start_commits: {
        std::string what = "start_commits #" + std::to_string(a.ticket);
        SyncResult<void> r;
        for (auto& c : *a.commits) {
          what += " " + std::to_string(c.messages.size());
          if (r) r = sink.commit(c.state, std::move(c.messages));
        }
        out.log.push_back(what);
        started.emplace(a.ticket, r);
        break;
      }
      case Action::Kind::wait_commits: {
        out.log.push_back("wait_commits #" + std::to_string(a.ticket));
        auto it = started.find(a.ticket);
        if (it == started.end()) {
          fail("waits for commits never started: #" + std::to_string(a.ticket));
          break;
        }
        io.sink.result = it->second;
        started.erase(it);
        break;
      }
      case Action::Kind::sleep:
        out.log.push_back("sleep");
        steady = std::max(steady, a.until);
        break;
      case Action::Kind::progress: {
        auto n = [](const std::optional<std::uint64_t>& v) {
          return v ? std::to_string(*v) : std::string("?");
        };
        out.log.push_back(std::string("progress ") +
                          (a.progress->backfilling ? "backfilling " : "syncing ") +
                          n(a.progress->done) + "/" + n(a.progress->total));
        break;
      }
      case Action::Kind::synced:
        out.log.push_back("synced");
        if (++out.passes == ro.stop_after_passes) fsm.stop();
        break;
      case Action::Kind::done:
      case Action::Kind::error:
        out.log.push_back(a.kind == Action::Kind::done ? "done" : "error: " + a.error->message);
        out.kind = a.kind;
        if (a.error) out.error = *a.error;
        out.script_done = at == steps.size();
        out.unwaited = started.size();
        if (a.kind == Action::Kind::done) out.report = fsm.report();
        return out;
    }
    a = fsm.resume(std::move(io));
  }
  fail("no end after 100000 actions");
  return out;
}

std::string joined(const std::vector<std::string>& log) {
  std::string s;
  for (const auto& l : log) s += l + "\n";
  return s;
}

AccountOptions options() {
  AccountOptions o;
  o.name = "work";
  o.transport.host = "imap.example.com";
  o.transport.port = 143;
  o.transport.tls = TlsMode::starttls;
  o.username = "alice@example.com";
  o.secret = []() -> SyncResult<std::string> { return std::string("secret"); };
  o.folders = {"INBOX"};
  o.batch_size = 2;
  return o;
}

// The messages of INBOX on the server: UIDs 1 to kMessages.
constexpr int kMessages = 5;

// A first sync of INBOX (UIDs 1-5) over STARTTLS, in batches of 2, 2 and 1,
// then LOGOUT.
Script first_sync() {
  Script s;
  s.server("* OK [CAPABILITY IMAP4rev1 STARTTLS LITERAL+] ready")
      .client("C1 STARTTLS")
      .server("C1 OK Begin TLS negotiation now")
      .start_tls()
      .client("C2 CAPABILITY")
      .server("* CAPABILITY IMAP4rev1 LITERAL+ IDLE")
      .server("C2 OK done")
      .client("C3 LOGIN alice@example.com \"secret\"")
      .server("C3 OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] Logged in")
      .client("C4 LIST \"\" *")
      .server("* LIST (\\HasNoChildren) \"/\" INBOX")
      .server("* LIST (\\HasNoChildren) \"/\" Trash")
      .server("C4 OK done")
      .client("C5 EXAMINE INBOX")
      .server("* 5 EXISTS")
      .server("* OK [UIDVALIDITY 7] ok")
      .server("* OK [UIDNEXT 6] ok")
      .server("C5 OK [READ-ONLY] done")
      .client("C6 UID SEARCH SINCE 2-Sep-2026")
      .server("* SEARCH 1 2 3 4 5")
      .server("C6 OK done")
      // Batch 1's first fetch; then its bytes with batch 2's first fetch in
      // one write; then batch 2's bytes with batch 3's first fetch, while
      // batch 1 is committed.
      .client("C7 UID FETCH 1:2 (INTERNALDATE BODYSTRUCTURE)")
      .server(first_fetch(1))
      .server(first_fetch(2))
      .server("C7 OK done")
      .client("C9 UID FETCH 1:2 (BODY.PEEK[])")
      .client("C8 UID FETCH 3:4 (INTERNALDATE BODYSTRUCTURE)")
      .server_bytes(body_fetch(1))
      .server_bytes(body_fetch(2))
      .server("C9 OK done")
      .server(first_fetch(3))
      .server(first_fetch(4))
      .server("C8 OK done")
      .client("C11 UID FETCH 3:4 (BODY.PEEK[])")
      .client("C10 UID FETCH 5 (INTERNALDATE BODYSTRUCTURE)")
      .server_bytes(body_fetch(3))
      .server_bytes(body_fetch(4))
      .server("C11 OK done")
      .server(first_fetch(5))
      .server("C10 OK done")
      .client("C12 UID FETCH 5 (BODY.PEEK[])")
      .server_bytes(body_fetch(5))
      .server("C12 OK done")
      .client("C13 LOGOUT")
      .server("* BYE bye")
      .server("C13 OK done");
  return s;
}

TEST(ImapSession, AFirstSyncAsksForWhatItNeedsAndCommitsTheFolder) {
  MemoryMailSink sink;
  const Outcome o = run(options(), first_sync(), sink);
  if (std::getenv("CRMCAP_SESSION_PRINT")) std::cout << joined(o.log);
  ASSERT_EQ(o.script_error, "") << joined(o.log);
  ASSERT_EQ(o.kind, Action::Kind::done) << joined(o.log);
  EXPECT_TRUE(o.script_done) << joined(o.log);
  EXPECT_EQ(o.unwaited, 0u);
  const std::string log = joined(o.log);
  // Batch 1 is committed while batch 2's bytes are read; the last two
  // batches are committed after the last is read, in one start (the
  // folder's last commits go on while the next folder would start).
  EXPECT_NE(log.find("start_commits #1 2\nread\nwait_commits #1\nprogress backfilling 2/5\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("start_commits #2 2 1\nwait_commits #2\nprogress backfilling 5/5\n"
                     "write C13 LOGOUT"),
            std::string::npos)
      << log;
  // The pass says it backfills once the stored states are read, and its
  // total once the folder's search has answered.
  EXPECT_NE(log.find("sink folder_states\nprogress backfilling ?/?\n"), std::string::npos) << log;
  const auto searched = log.find("progress backfilling 0/5\n");
  EXPECT_NE(searched, std::string::npos) << log;
  EXPECT_LT(searched, log.find("start_commits #1")) << log;
  ASSERT_EQ(sink.committed.size(), std::size_t(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(sink.committed[i].uid, static_cast<std::uint32_t>(i + 1));
    EXPECT_EQ(sink.committed[i].raw, message(i + 1));
    EXPECT_EQ(sink.committed[i].message_id, "<m" + std::to_string(i + 1) + "@acme.com>");
    EXPECT_FALSE(sink.committed[i].partial);
  }
  EXPECT_EQ(sink.commits, 3);
  const FolderState& st = sink.states.at("INBOX");
  EXPECT_EQ(st.uidvalidity, 7u);
  EXPECT_EQ(st.highest_uid, 5u);
  EXPECT_EQ(st.uidnext, 6u);
  EXPECT_FALSE(st.backfilling);
  ASSERT_EQ(o.report.folders.size(), 1u);
  EXPECT_EQ(o.report.folders[0].folder, "INBOX");
  EXPECT_EQ(o.report.folders[0].handed_over, 5u);
}

// Only the writes of a log, in order.
std::vector<std::string> writes(const std::vector<std::string>& log) {
  std::vector<std::string> out;
  for (const auto& l : log) {
    if (l.starts_with("write ")) out.push_back(l);
  }
  return out;
}

// Every UID at or below the folder's stored mark was committed: a pass that
// failed anywhere must not have moved the mark past a message it lost.
void expect_mark_honest(const MemoryMailSink& sink) {
  auto it = sink.states.find("INBOX");
  if (it == sink.states.end()) return;
  const auto last = static_cast<std::uint32_t>(kMessages + 1);  // new mail's UID
  for (std::uint32_t uid = 1; uid <= std::min(it->second.highest_uid, last); ++uid) {
    EXPECT_TRUE(std::any_of(sink.committed.begin(), sink.committed.end(),
                            [&](const FetchedMessage& m) { return m.uid == uid; }))
        << "UID " << uid << " is below the mark " << it->second.highest_uid
        << " but was never committed";
  }
}

TEST(ImapSession, ReadsOfAnySizeGiveTheSameSession) {
  MemoryMailSink whole;
  const Outcome w = run(options(), first_sync(), whole);
  ASSERT_EQ(w.kind, Action::Kind::done);
  for (const std::size_t n : {1u, 2u, 7u, 100u}) {
    MemoryMailSink sink;
    RunOptions ro;
    ro.read_bytes = n;
    const Outcome o = run(options(), first_sync(), sink, ro);
    ASSERT_EQ(o.script_error, "") << n << "-byte reads\n" << joined(o.log);
    ASSERT_EQ(o.kind, Action::Kind::done) << n << "-byte reads\n" << joined(o.log);
    EXPECT_EQ(writes(o.log), writes(w.log)) << n << "-byte reads";
    ASSERT_EQ(sink.committed.size(), std::size_t(kMessages));
    for (int i = 0; i < kMessages; ++i) EXPECT_EQ(sink.committed[i].raw, message(i + 1));
  }
}

// STYLE 13: the exchange above, failing its i-th I/O step on run i, whole
// and in 7-byte reads (failing inside literals). Each run ends: in a
// connection error to retry, or done when only LOGOUT failed; it has waited
// for every commit it started, and the folder's mark passes no message
// that was not committed.
TEST(ImapSession, AnIoFailureAtEveryStepEndsInACleanError) {
  for (const std::size_t read_bytes : {std::size_t(1) << 20, std::size_t(7)}) {
    MemoryMailSink clean;
    RunOptions ro;
    ro.read_bytes = read_bytes;
    const Outcome full = run(options(), first_sync(), clean, ro);
    ASSERT_EQ(full.kind, Action::Kind::done);
    ASSERT_GT(full.io_steps, 20u);
    // LOGOUT is the last write: failing it or what follows is no failure.
    const auto logout = std::find_if(full.log.begin(), full.log.end(), [](const std::string& l) {
      return l.find("LOGOUT") != std::string::npos;
    });
    std::size_t logout_step = 0;
    for (auto it = full.log.begin(); it != logout; ++it) {
      if (*it == "connect" || it->starts_with("write") || it->starts_with("read") ||
          *it == "start_tls") {
        ++logout_step;
      }
    }
    for (std::size_t i = 0; i < full.io_steps; ++i) {
      MemoryMailSink sink;
      ro.fail_at = i;
      const Outcome o = run(options(), first_sync(), sink, ro);
      const std::string where =
          "step " + std::to_string(i) + ", reads of " + std::to_string(read_bytes) + "\n";
      EXPECT_EQ(o.script_error, "") << where << joined(o.log);
      EXPECT_EQ(o.unwaited, 0u) << where << joined(o.log);
      if (i >= logout_step) {
        EXPECT_EQ(o.kind, Action::Kind::done) << where << joined(o.log);
        EXPECT_EQ(sink.committed.size(), std::size_t(kMessages)) << where;
        continue;
      }
      ASSERT_EQ(o.kind, Action::Kind::error) << where << joined(o.log);
      EXPECT_EQ(o.error.code, make_error_code(SyncErrc::connection)) << where;
      EXPECT_EQ(o.error.retry, RetryClass::retry_later) << where;
      EXPECT_NE(o.error.message.find("connection reset"), std::string::npos) << where;
      expect_mark_honest(sink);
    }
  }
}

TEST(ImapSession, AFailedCommitEndsThePassWithTheSinksErrorAndNoLaterCommit) {
  for (int fail : {0, 1, 2}) {
    MemoryMailSink sink;
    sink.fail_commit = fail;
    const Outcome o = run(options(), first_sync(), sink);
    ASSERT_EQ(o.kind, Action::Kind::error) << joined(o.log);
    EXPECT_EQ(o.error.message, "disk full");
    EXPECT_EQ(o.unwaited, 0u);
    // No commit after a failed one: the last two batches are committed in
    // order, the second only once the first is stored, and nothing follows
    // a failed first.
    EXPECT_EQ(sink.commit_calls, fail + 1);
    expect_mark_honest(sink);
    EXPECT_EQ(writes(o.log).back().find("LOGOUT"), std::string::npos) << joined(o.log);
  }
}

TEST(ImapSession, AnExceptionInsideEndsTheSessionAsAnInternalFailure) {
  AccountOptions o = options();
  o.secret = []() -> SyncResult<std::string> { throw std::runtime_error("keyring on fire"); };
  MemoryMailSink sink;
  const Outcome out = run(o, first_sync(), sink);
  ASSERT_EQ(out.kind, Action::Kind::error) << joined(out.log);
  EXPECT_EQ(out.error.code, make_error_code(SyncErrc::internal));
  EXPECT_NE(out.error.message.find("keyring on fire"), std::string::npos);
  // The mailbox's name is the daemon's to add (it prefixes every failure).
  EXPECT_EQ(out.error.message.find("the sync failed inside: "), 0u) << out.error.message;
}

TEST(ImapSession, AnUnchangedFolderIsSkippedAfterStatus) {
  MemoryMailSink sink;
  FolderState st;
  st.folder = "INBOX";
  st.uidvalidity = 7;
  st.highest_uid = 3;
  st.uidnext = 4;
  st.messages = 3;
  sink.states["INBOX"] = st;
  Script s;
  s.server("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")
      .client("C1 STARTTLS")
      .server("C1 OK go")
      .start_tls()
      .client("C2 CAPABILITY")
      .server("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
      .server("C2 OK done")
      .client("C3 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
      .server("C3 OK [CAPABILITY IMAP4rev1] Logged in")
      .client("C4 LIST \"\" *")
      .server("* LIST () \"/\" INBOX")
      .server("C4 OK done")
      .client("C5 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)")
      .server("* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7)")
      .server("C5 OK done")
      .client("C6 LOGOUT")
      .server("* BYE bye");
  const Outcome o = run(options(), s, sink);
  ASSERT_EQ(o.script_error, "") << joined(o.log);
  ASSERT_EQ(o.kind, Action::Kind::done) << joined(o.log);
  ASSERT_EQ(o.report.folders.size(), 1u);
  EXPECT_TRUE(o.report.folders[0].skipped_unchanged);
  EXPECT_EQ(sink.commit_calls, 0);
}

// The first pass of a watch session: first_sync() without LOGOUT.
Script first_pass() {
  Script full = first_sync();
  Script s;
  for (const Step& step : full.steps()) {
    if (step.kind == Step::Kind::client && step.bytes.find("LOGOUT") != std::string::npos) break;
    if (step.kind == Step::Kind::client) {
      s.client(step.bytes.substr(0, step.bytes.size() - 2));
    } else if (step.kind == Step::Kind::server) {
      s.server_bytes(step.bytes);
    } else {
      s.start_tls();
    }
  }
  return s;
}

// EXAMINE INBOX as it stands after the first pass (UIDNEXT 4).
Script& examined(Script& s, const std::string& tag, int exists, int uidnext) {
  return s.client(tag + " EXAMINE INBOX")
      .server("* " + std::to_string(exists) + " EXISTS")
      .server("* OK [UIDVALIDITY 7] ok")
      .server("* OK [UIDNEXT " + std::to_string(uidnext) + "] ok")
      .server(tag + " OK [READ-ONLY] done");
}

// A watch session's first pass, then IDLE ended by its timeout, then the
// poll's pass (INBOX unchanged: STATUS only).
Script idle_until_poll() {
  Script s = first_pass();
  examined(s, "C13", 5, 6)
      .client("C14 IDLE")
      .server("+ idling")
      .wake()
      .client("DONE")
      .server("C14 OK done")
      .client("C15 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)")
      .server("* STATUS INBOX (MESSAGES 5 UIDNEXT 6 UIDVALIDITY 7)")
      .server("C15 OK done");
  return s;
}

TEST(ImapSession, WatchingIdlesUntilThePollThenPollsEveryFolder) {
  const Script s = idle_until_poll();
  MemoryMailSink sink;
  RunOptions ro;
  ro.mode = session_fsm::Mode::watch;
  ro.stop_after_passes = 2;
  const Outcome o = run(options(), s, sink, ro);
  ASSERT_EQ(o.script_error, "") << joined(o.log);
  EXPECT_TRUE(o.script_done) << joined(o.log);
  ASSERT_EQ(o.kind, Action::Kind::error) << joined(o.log);
  EXPECT_EQ(o.error.code, make_error_code(SyncErrc::cancelled));
  EXPECT_EQ(o.passes, 2);
  const std::string log = joined(o.log);
  EXPECT_NE(log.find("write C14 IDLE\nread\nread woken\nwrite DONE\nread\n"), std::string::npos)
      << log;
}

std::string id_fetch(int uid) {
  const std::string field = "Message-ID: <m" + std::to_string(uid) + "@acme.com>\r\n\r\n";
  std::string f = first_fetch(uid);
  f.pop_back();  // the closing parenthesis
  return f + " BODY[HEADER.FIELDS (MESSAGE-ID)] {" + std::to_string(field.size()) + "}\r\n" +
         field + ")\r\n";
}

// The pass that syncs the one new message `uid` of `folder` (synced before):
// EXAMINE, SEARCH above the mark, its Message-ID first, then its bytes; the
// commands tagged from C`tag` on.
Script& new_message_synced(Script& s, const std::string& folder, int tag, int uid,
                           int uidvalidity) {
  const auto t = [&](int i) { return "C" + std::to_string(tag + i); };
  const std::string u = std::to_string(uid);
  return s.client(t(0) + " EXAMINE " + folder)
      .server("* " + u + " EXISTS")
      .server("* OK [UIDVALIDITY " + std::to_string(uidvalidity) + "] ok")
      .server("* OK [UIDNEXT " + std::to_string(uid + 1) + "] ok")
      .server(t(0) + " OK [READ-ONLY] done")
      .client(t(1) + " UID SEARCH UID " + u + ":*")
      .server("* SEARCH " + u)
      .server(t(1) + " OK done")
      .client(t(2) + " UID FETCH " + u +
              " (INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
      .server_bytes(id_fetch(uid))
      .server(t(2) + " OK done")
      .client(t(3) + " UID FETCH " + u + " (BODY.PEEK[])")
      .server_bytes(body_fetch(uid))
      .server(t(3) + " OK done");
}

// A watch session's first pass, then new mail (UID 4) that wakes IDLE and
// is synced at once: its Message-ID asked first, INBOX having a state.
Script new_mail_in_idle() {
  Script s = first_pass();
  examined(s, "C13", 5, 6)
      .client("C14 IDLE")
      .server("+ idling")
      .server("* 6 EXISTS")
      .client("DONE")
      .server("C14 OK done");
  new_message_synced(s, "INBOX", 15, 6, 7);
  return s;
}

TEST(ImapSession, NewMailWakesTheIdleAndIsSyncedAtOnce) {
  const Script s = new_mail_in_idle();
  MemoryMailSink sink;
  RunOptions ro;
  ro.mode = session_fsm::Mode::watch;
  ro.stop_after_passes = 2;
  const Outcome o = run(options(), s, sink, ro);
  ASSERT_EQ(o.script_error, "") << joined(o.log);
  EXPECT_TRUE(o.script_done) << joined(o.log);
  EXPECT_EQ(o.error.code, make_error_code(SyncErrc::cancelled)) << joined(o.log);
  ASSERT_EQ(sink.committed.size(), std::size_t(kMessages + 1));
  EXPECT_EQ(sink.committed.back().raw, message(kMessages + 1));
  EXPECT_EQ(sink.states.at("INBOX").highest_uid, 6u);
  const std::string log = joined(o.log);
  // The known check comes before the bytes are asked for; no wake was
  // needed, and the commit is waited for before the pass is reported.
  EXPECT_NE(log.find("sink known_messages\nwrite C18"), std::string::npos) << log;
  EXPECT_EQ(log.find("read woken"), std::string::npos) << log;
  EXPECT_NE(log.find("start_commits #3 1\nwait_commits #3\nsynced"), std::string::npos) << log;
}

// NOTIFY (RFC 5465): a server that offers it, with INBOX and Sent, both
// synced before (INBOX up to UID 3, Sent up to UID 2), logged in.
Script notify_login() {
  Script s;
  s.server("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")
      .client("C1 STARTTLS")
      .server("C1 OK go")
      .start_tls()
      .client("C2 CAPABILITY")
      .server("* CAPABILITY IMAP4rev1 LITERAL+ IDLE NOTIFY")
      .server("C2 OK done")
      .client("C3 LOGIN alice@example.com \"secret\"")
      .server("C3 OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE NOTIFY] Logged in")
      .client("C4 LIST \"\" *")
      .server("* LIST () \"/\" INBOX")
      .server("* LIST () \"/\" Sent")
      .server("* LIST () \"/\" Archive")
      .server("C4 OK done");
  return s;
}

const std::string kNotifySet =
    " NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (mailboxes (Sent) (MessageNew "
    "MessageExpunge))";

Script& status_of(Script& s, const std::string& tag, const std::string& folder, int messages,
                  int uidnext, int uidvalidity) {
  const std::string n = std::to_string(messages), next = std::to_string(uidnext),
                    v = std::to_string(uidvalidity);
  return s.client(tag + " STATUS " + folder + " (MESSAGES UIDNEXT UIDVALIDITY)")
      .server("* STATUS " + folder + " (MESSAGES " + n + " UIDNEXT " + next + " UIDVALIDITY " + v +
              ")")
      .server(tag + " OK done");
}

AccountOptions notify_options() {
  AccountOptions o = options();
  o.folders = {"INBOX", "Sent"};
  o.poll_interval = seconds(60);
  o.idle_reissue = minutes(25);
  return o;
}

void store_synced(MemoryMailSink& sink) {
  FolderState in;
  in.folder = "INBOX";
  in.uidvalidity = 7;
  in.highest_uid = 3;
  in.uidnext = 4;
  in.messages = 3;
  sink.states["INBOX"] = in;
  FolderState sent;
  sent.folder = "Sent";
  sent.uidvalidity = 9;
  sent.highest_uid = 2;
  sent.uidnext = 3;
  sent.messages = 2;
  sink.states["Sent"] = sent;
}

// Runs a watch session of notify_options() over `s`, on `sink` holding
// store_synced(), stopped after `passes` passes: it must follow the whole
// script and end cancelled.
Outcome watch_notify(const Script& s, MemoryMailSink& sink, int passes,
                     SessionMemory* memory = nullptr) {
  store_synced(sink);
  RunOptions ro;
  ro.mode = session_fsm::Mode::watch;
  ro.stop_after_passes = passes;
  ro.memory = memory;
  Outcome o = run(notify_options(), s, sink, ro);
  EXPECT_EQ(o.script_error, "") << joined(o.log);
  EXPECT_TRUE(o.script_done) << joined(o.log);
  EXPECT_EQ(o.error.code, make_error_code(SyncErrc::cancelled)) << joined(o.log);
  return o;
}

// NOTIFY set after login; the first pass finds nothing new (STATUS only);
// IDLE on INBOX lasts until its re-issue (25 min), not the poll (60 s): an
// announcement of a mailbox not synced (Archive) does not end it; IDLE again,
// then an unsolicited STATUS of Sent ends it, Sent is asked and synced, and
// nothing else is.
Script sent_announced() {
  Script s = notify_login();
  s.client("C5" + kNotifySet).server("C5 OK NOTIFY completed");
  status_of(s, "C6", "INBOX", 3, 4, 7);
  status_of(s, "C7", "Sent", 2, 3, 9);
  examined(s, "C8", 3, 4)
      .client("C9 IDLE")
      .server("+ idling")
      .server("* STATUS Archive (MESSAGES 5 UIDNEXT 6 UIDVALIDITY 4 UNSEEN 1)")
      .wake()
      .client("DONE")
      .server("C9 OK done");
  examined(s, "C10", 3, 4)
      .client("C11 IDLE")
      .server("+ idling")
      .server("* STATUS Sent (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 9 UNSEEN 1 HIGHESTMODSEQ 5)")
      .client("DONE")
      .server("C11 OK done");
  examined(s, "C12", 3, 4);
  status_of(s, "C13", "Sent", 3, 4, 9);
  new_message_synced(s, "Sent", 14, 3, 9);
  return s;
}

TEST(ImapSession, WithNotifySentIsSyncedWhenAnnouncedAndNeverPolled) {
  MemoryMailSink sink;
  const Outcome o = watch_notify(sent_announced(), sink, 2);
  EXPECT_EQ(o.woken_after, std::vector<seconds>{minutes(25)});
  EXPECT_EQ(sink.states.at("Sent").highest_uid, 3u);
  ASSERT_EQ(sink.committed.size(), 1u);
  EXPECT_TRUE(sink.warnings.empty());
}

// STYLE 13 for NOTIFY: an I/O failure at every step of that exchange ends
// the session in a connection error, every commit waited for.
TEST(ImapSession, AnIoFailureAtEveryStepWithNotifyEndsInACleanError) {
  RunOptions ro;
  ro.mode = session_fsm::Mode::watch;
  ro.stop_after_passes = 2;
  MemoryMailSink clean;
  store_synced(clean);
  const Outcome full = run(notify_options(), sent_announced(), clean, ro);
  ASSERT_EQ(full.error.code, make_error_code(SyncErrc::cancelled)) << joined(full.log);
  for (std::size_t i = 0; i < full.io_steps; ++i) {
    MemoryMailSink sink;
    store_synced(sink);
    ro.fail_at = i;
    const Outcome o = run(notify_options(), sent_announced(), sink, ro);
    const std::string where = "step " + std::to_string(i) + "\n";
    EXPECT_EQ(o.script_error, "") << where << joined(o.log);
    EXPECT_EQ(o.unwaited, 0u) << where << joined(o.log);
    ASSERT_EQ(o.kind, Action::Kind::error) << where << joined(o.log);
    EXPECT_EQ(o.error.code, make_error_code(SyncErrc::connection)) << where << joined(o.log);
    // Sent's mark moved past UID 2 only with the message committed.
    EXPECT_EQ(sink.states.at("Sent").highest_uid, sink.committed.empty() ? 2u : 3u) << where;
  }
}

// A folder selected during a pass (Sent, with new mail) is announced by
// nothing while it is selected: once INBOX is selected again it is asked
// with STATUS (unchanged here), then INBOX is examined again (news of INBOX
// during that STATUS went to it) and IDLE begins, until new mail in INBOX.
TEST(ImapSession, WithNotifyAFolderSelectedDuringAPassIsAskedOnceInboxIsSelected) {
  Script s = notify_login();
  s.client("C5" + kNotifySet).server("C5 OK NOTIFY completed");
  status_of(s, "C6", "INBOX", 3, 4, 7);
  status_of(s, "C7", "Sent", 3, 4, 9);
  new_message_synced(s, "Sent", 8, 3, 9);
  examined(s, "C12", 3, 4);
  status_of(s, "C13", "Sent", 3, 4, 9);
  examined(s, "C14", 3, 4)
      .client("C15 IDLE")
      .server("+ idling")
      .server("* 4 EXISTS")
      .client("DONE")
      .server("C15 OK done");
  new_message_synced(s, "INBOX", 16, 4, 7);
  MemoryMailSink sink;
  const Outcome o = watch_notify(s, sink, 2);
  EXPECT_EQ(sink.committed.size(), 2u);
}

// Announcements lost (NOTIFICATIONOVERFLOW: the server sends no more),
// told in an untagged NO or OK: IDLE ends, NOTIFY is set again and every
// folder is synced.
TEST(ImapSession, WithNotifyLostAnnouncementsBringNotifyAgainAndAPassOverEveryFolder) {
  for (const std::string status : {"NO", "OK"}) {
    SCOPED_TRACE(status);
    Script s = notify_login();
    s.client("C5" + kNotifySet).server("C5 OK NOTIFY completed");
    status_of(s, "C6", "INBOX", 3, 4, 7);
    status_of(s, "C7", "Sent", 2, 3, 9);
    examined(s, "C8", 3, 4)
        .client("C9 IDLE")
        .server("+ idling")
        .server("* " + status + " [NOTIFICATIONOVERFLOW] too many changes")
        .client("DONE")
        .server("C9 OK done")
        .client("C10" + kNotifySet)
        .server("C10 OK NOTIFY completed");
    status_of(s, "C11", "INBOX", 3, 4, 7);
    status_of(s, "C12", "Sent", 2, 3, 9);
    MemoryMailSink sink;
    const Outcome o = watch_notify(s, sink, 2);
    EXPECT_TRUE(o.woken_after.empty());
  }
}

// With NOTIFY set, another folder's announcement (Sent's, without
// UIDVALIDITY, as Dovecot sends it) inside STATUS INBOX is not INBOX's
// answer, and Sent's own announcement after its answer leaves Sent to be
// asked again: INBOX is taken as unchanged, Sent is synced, asked again once
// INBOX is selected, and its second message synced too.
TEST(ImapSession, WithNotifyAStatusAnswersOnlyForItsFolder) {
  Script s = notify_login();
  s.client("C5" + kNotifySet)
      .server("C5 OK NOTIFY completed")
      .client("C6 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)")
      .server("* STATUS Sent (MESSAGES 3 UIDNEXT 4 UNSEEN 1)")
      .server("* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7)")
      .server("C6 OK done")
      .client("C7 STATUS Sent (MESSAGES UIDNEXT UIDVALIDITY)")
      .server("* STATUS Sent (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 9)")
      .server("* STATUS Sent (MESSAGES 4 UIDNEXT 5 UNSEEN 2)")
      .server("C7 OK done");
  new_message_synced(s, "Sent", 8, 3, 9);
  examined(s, "C12", 3, 4);
  status_of(s, "C13", "Sent", 4, 5, 9);
  new_message_synced(s, "Sent", 14, 4, 9);
  MemoryMailSink sink;
  const Outcome o = watch_notify(s, sink, 2);
  EXPECT_EQ(sink.states.at("INBOX").uidvalidity, 7u);
  EXPECT_EQ(sink.states.at("Sent").highest_uid, 4u);
  EXPECT_EQ(sink.committed.size(), 2u);
}

// NOTIFY SET refused: the sink is told once per account (not again on the
// next session), and the other folders are polled every poll_interval.
TEST(ImapSession, ARefusedNotifyIsToldOnceAndTheFoldersArePolled) {
  Script s = notify_login();
  s.client("C5" + kNotifySet).server("C5 NO [NOTIFICATIONOVERFLOW] NOTIFY not supported");
  status_of(s, "C6", "INBOX", 3, 4, 7);
  status_of(s, "C7", "Sent", 2, 3, 9);
  examined(s, "C8", 3, 4)
      .client("C9 IDLE")
      .server("+ idling")
      .wake()
      .client("DONE")
      .server("C9 OK done");
  status_of(s, "C10", "INBOX", 3, 4, 7);
  status_of(s, "C11", "Sent", 2, 3, 9);
  SessionMemory memory;
  for (int session = 0; session < 2; ++session) {
    SCOPED_TRACE("session " + std::to_string(session));
    MemoryMailSink sink;
    const Outcome o = watch_notify(s, sink, 2, &memory);
    EXPECT_EQ(o.woken_after, std::vector<seconds>{seconds(60)});
    if (session == 0) {
      ASSERT_EQ(sink.warnings.size(), 1u);
      EXPECT_NE(sink.warnings[0].find("NOTIFY"), std::string::npos) << sink.warnings[0];
      EXPECT_NE(sink.warnings[0].find("polled every 60 s"), std::string::npos) << sink.warnings[0];
    } else {
      EXPECT_TRUE(sink.warnings.empty());
    }
  }
}

// STYLE 13 for watching: an I/O failure at every step of the IDLE
// exchanges above (the read woken for DONE, DONE, the read going on) ends
// the session in a connection error, every commit waited for.
TEST(ImapSession, AnIoFailureAtEveryStepOfWatchingEndsInACleanError) {
  for (const Script& script : {idle_until_poll(), new_mail_in_idle()}) {
    RunOptions ro;
    ro.mode = session_fsm::Mode::watch;
    ro.stop_after_passes = 2;
    MemoryMailSink clean;
    const Outcome full = run(options(), script, clean, ro);
    ASSERT_EQ(full.error.code, make_error_code(SyncErrc::cancelled)) << joined(full.log);
    for (std::size_t i = 0; i < full.io_steps; ++i) {
      MemoryMailSink sink;
      ro.fail_at = i;
      const Outcome o = run(options(), script, sink, ro);
      const std::string where = "step " + std::to_string(i) + "\n";
      EXPECT_EQ(o.script_error, "") << where << joined(o.log);
      EXPECT_EQ(o.unwaited, 0u) << where << joined(o.log);
      ASSERT_EQ(o.kind, Action::Kind::error) << where << joined(o.log);
      EXPECT_EQ(o.error.code, make_error_code(SyncErrc::connection)) << where << joined(o.log);
      EXPECT_EQ(o.error.retry, RetryClass::retry_later) << where;
      expect_mark_honest(sink);
    }
  }
}

}  // namespace
}  // namespace crmcap::imap
