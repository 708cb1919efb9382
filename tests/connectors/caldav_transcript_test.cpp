// SPDX-License-Identifier: Apache-2.0
// Recorded CalDAV exchanges (tests/transcripts/caldav/*.txt, format at the
// top of each file) replayed through the state machines: every request the
// core makes must be the recorded one, and each run must end as expected.
#include "connectors/caldav/caldav.hpp"
#include "tests/connectors/caldav_script.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace crmcap::caldav {
namespace {

struct TranscriptRun {
  bool discover = false;
  std::string url;
  std::string title;
  std::optional<std::string> state_token;
  std::vector<test::Exchange> script;
  std::vector<std::string> expects;
};

std::vector<TranscriptRun> read_transcript(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<TranscriptRun> runs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("=== ", 0) == 0) {
      TranscriptRun run;
      std::istringstream words(line.substr(4));
      std::string kind;
      words >> kind >> run.url;
      run.discover = kind == "discover";
      run.title = line.substr(4);
      runs.push_back(std::move(run));
      continue;
    }
    if (runs.empty()) {
      ADD_FAILURE() << path << ": a line before the first run: " << line;
      break;
    }
    TranscriptRun& run = runs.back();
    if (line.rfind("STATE token ", 0) == 0) {
      run.state_token = line.substr(12);
    } else if (line.rfind("EXPECT ", 0) == 0) {
      run.expects.push_back(line.substr(7));
    } else if (line.rfind("C: ", 0) == 0) {
      test::Exchange ex;
      std::istringstream words(line.substr(3));
      std::string depth_word;
      words >> ex.method >> ex.url >> depth_word;
      if (depth_word == "Depth:") {
        std::string d;
        words >> d;
        ex.depth = d;
      }
      std::string status;
      if (!std::getline(in, status) || status.rfind("S: ", 0) != 0) {
        ADD_FAILURE() << path << ": no S: line after " << line;
        break;
      }
      ex.response.status = std::stoi(status.substr(3));
      std::string body_line;
      bool first = true;
      while (std::getline(in, body_line) && body_line != ".") {
        if (first && body_line.rfind("H: ", 0) == 0) {
          const auto colon = body_line.find(": ", 3);
          ex.response.headers.push_back(
              {body_line.substr(3, colon - 3), body_line.substr(colon + 2)});
          continue;
        }
        first = false;
        ex.response.body += body_line + "\n";
      }
      run.script.push_back(std::move(ex));
    } else {
      ADD_FAILURE() << path << ": a line not understood: " << line;
    }
  }
  return runs;
}

std::vector<std::string> transcripts() {
  std::vector<std::string> out;
  const std::filesystem::path dir =
      std::filesystem::path(CRMCAP_SOURCE_DIR) / "tests/transcripts/caldav";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".txt") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class CaldavTranscript : public ::testing::TestWithParam<std::string> {};

TEST_P(CaldavTranscript, Replays) {
  const auto runs = read_transcript(std::filesystem::path(CRMCAP_SOURCE_DIR) /
                                    "tests/transcripts/caldav" / GetParam());
  ASSERT_FALSE(runs.empty());
  MemorySink sink;
  for (const auto& run : runs) {
    SCOPED_TRACE(run.title);
    if (run.discover) {
      DiscoveryOptions o;
      o.url = run.url;
      discovery_fsm fsm(o);
      auto result = test::drive(fsm, run.script);
      ASSERT_EQ(result.last.kind, Action::Kind::done) << result.last.error.message;
      for (const auto& e : run.expects) {
        ASSERT_EQ(e.rfind("calendar ", 0), 0u) << e;
        const std::string url = e.substr(9);
        EXPECT_TRUE(std::any_of(fsm.calendars().begin(), fsm.calendars().end(),
                                [&](const CalendarInfo& c) { return c.url == url; }))
            << "no calendar " << url;
      }
      continue;
    }
    if (run.state_token) sink.calendars[run.url].state.sync_token = *run.state_token;
    const std::size_t before = sink.commits.size();
    SyncOptions o;
    o.calendar_url = run.url;
    sync_fsm fsm(o, sink);
    auto result = test::drive(fsm, run.script);
    ASSERT_EQ(result.last.kind, Action::Kind::done) << result.last.error.message;
    std::vector<std::string> changed, deleted;
    for (std::size_t i = before; i < sink.commits.size(); ++i) {
      for (const auto& item : sink.commits[i].changed) {
        changed.push_back(item.href);
        EXPECT_EQ(item.data.rfind("BEGIN:VCALENDAR", 0), 0u) << item.href;
        EXPECT_FALSE(item.etag.empty());
      }
      for (const auto& href : sink.commits[i].deleted) deleted.push_back(href);
    }
    std::size_t expected_changed = 0, expected_deleted = 0;
    for (const auto& e : run.expects) {
      std::istringstream words(e);
      std::string what, value;
      words >> what >> value;
      if (what == "commits") {
        EXPECT_EQ(sink.commits.size(), std::stoul(value));
      } else if (what == "changed") {
        ++expected_changed;
        EXPECT_NE(std::find(changed.begin(), changed.end(), value), changed.end()) << value;
      } else if (what == "deleted") {
        ++expected_deleted;
        EXPECT_NE(std::find(deleted.begin(), deleted.end(), value), deleted.end()) << value;
      } else if (what == "token") {
        EXPECT_EQ(sink.calendars[run.url].state.sync_token, value);
      } else if (what == "mode") {
        EXPECT_EQ(value, "etag_listing");
        EXPECT_EQ(fsm.report().mode, SyncReport::Mode::etag_listing);
      } else {
        ADD_FAILURE() << "unknown EXPECT " << e;
      }
    }
    EXPECT_EQ(changed.size(), expected_changed);
    EXPECT_EQ(deleted.size(), expected_deleted);
  }
}

INSTANTIATE_TEST_SUITE_P(Recorded, CaldavTranscript, ::testing::ValuesIn(transcripts()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace crmcap::caldav
