// SPDX-License-Identifier: Apache-2.0
// Runs every recorded IMAP transcript in tests/transcripts/imap/*.txt (format:
// tests/transcripts/imap/README.md). The server's bytes are fed whole, byte
// by byte and at every two-way split; each run must give exactly the "E:"
// events. Set CRMCAP_TRANSCRIPT_PRINT=1 to print the events the parser gives.
#include "connectors/imap/core/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace crmcap::imap {
namespace {

namespace fs = std::filesystem;

struct Transcript {
  std::string name;
  std::string server;                   // the S: bytes, CRLF-terminated lines
  std::vector<std::string> client;      // the C: lines
  std::vector<std::string> expected;    // the E: lines
  std::vector<std::size_t> event_line;  // the file line of each E:
};

fs::path transcript_dir() { return fs::path(CRMCAP_SOURCE_DIR) / "tests/transcripts/imap"; }

Transcript load(const fs::path& path) {
  Transcript t;
  t.name = path.stem().string();
  std::ifstream in(path, std::ios::binary);
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::string_view kind = std::string_view(line).substr(0, 2);
    std::string body = line.size() > 3 ? line.substr(3) : std::string();
    if (line.size() > 2 && line[2] != ' ') {
      ADD_FAILURE() << path << ":" << number << ": expected a space after " << kind;
    }
    if (kind == "S:") {
      t.server += body + "\r\n";
    } else if (kind == "C:") {
      t.client.push_back(body);
    } else if (kind == "E:") {
      t.expected.push_back(body);
      t.event_line.push_back(number);
    } else {
      ADD_FAILURE() << path << ":" << number << ": unknown line kind '" << kind << "'";
    }
  }
  return t;
}

std::vector<std::string> run(const std::vector<std::string_view>& chunks) {
  ResponseParser parser;
  std::vector<std::string> events;
  for (std::string_view chunk : chunks) {
    for (;;) {
      ResponseParser::Step step = parser.feed(chunk);
      if (step == ResponseParser::Step::need_more) break;
      if (step == ResponseParser::Step::error) {
        events.push_back("error: " + parser.error().message());
        if (parser.broken()) return events;
        continue;
      }
      events.push_back(to_text(parser.take()));
    }
  }
  if (parser.buffered() > 0) events.push_back("incomplete");
  return events;
}

class ImapTranscript : public ::testing::TestWithParam<fs::path> {};

TEST_P(ImapTranscript, GivesTheRecordedEvents) {
  Transcript t = load(GetParam());
  ASSERT_FALSE(t.server.empty());
  std::string_view server = t.server;
  std::vector<std::string> events = run({server});
  if (std::getenv("CRMCAP_TRANSCRIPT_PRINT")) {
    for (const std::string& e : events) std::cout << "E: " << e << "\n";
  }
  ASSERT_FALSE(t.expected.empty()) << "no E: lines";
  for (std::size_t i = 0; i < std::max(events.size(), t.expected.size()); ++i) {
    std::string want = i < t.expected.size() ? t.expected[i] : "(nothing)";
    std::string got = i < events.size() ? events[i] : "(nothing)";
    std::string where = i < t.event_line.size() ? std::to_string(t.event_line[i]) : "end";
    EXPECT_EQ(got, want) << t.name << ".txt:" << where;
    if (got != want) break;  // one mismatch shifts all later events
  }

  // Byte by byte and every two-way split: the same events.
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < server.size(); ++i) bytes.push_back(server.substr(i, 1));
  EXPECT_EQ(run(bytes), events) << "byte by byte";
  for (std::size_t i = 0; i <= server.size(); ++i) {
    ASSERT_EQ(run({server.substr(0, i), server.substr(i)}), events) << "split at " << i;
  }

  // Every tagged completion answers a command the client sent.
  std::set<std::string> tags;
  for (const std::string& c : t.client) tags.insert(c.substr(0, c.find(' ')));
  for (const std::string& e : events) {
    if (e.rfind("tagged ", 0) == 0) {
      std::string tag = e.substr(7, e.find(' ', 7) - 7);
      EXPECT_TRUE(tags.count(tag)) << "no C: line for tag " << tag;
    }
  }
}

std::vector<fs::path> all_transcripts() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(transcript_dir())) {
    if (entry.path().extension() == ".txt") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Recorded, ImapTranscript, ::testing::ValuesIn(all_transcripts()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.stem().string();
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ImapTranscripts, DirectoryIsNotEmpty) { EXPECT_GE(all_transcripts().size(), 4u); }

}  // namespace
}  // namespace crmcap::imap
