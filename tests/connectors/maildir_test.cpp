// SPDX-License-Identifier: Apache-2.0
// connectors/maildir: which files a path names, with which folder and time.
#include "connectors/maildir/maildir.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using crmcap::maildir::find_messages;
using crmcap::maildir::LocalMessage;
using crmcap::maildir::mtime_of;
using crmcap::test::TempDir;

namespace {

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "Subject: x\n\nx\n";
}

void make_maildir(const fs::path& d) {
  for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(d / sub);
}

// (path relative to `root`, folder) of each message, in order.
std::vector<std::pair<std::string, std::string>> listing(const std::vector<LocalMessage>& found,
                                                         const fs::path& root) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : found) out.emplace_back(fs::relative(m.path, root).string(), m.folder);
  return out;
}

}  // namespace

TEST(Maildir, TreeWithSubfoldersAndDeliveryTimes) {
  TempDir dir;
  const fs::path root = dir.path() / "Mail";
  make_maildir(root);
  make_maildir(root / ".Sent");
  make_maildir(root / ".A.B");
  make_maildir(root / ".NotAMaildir" / "x");  // no cur/ or new/ at its top
  touch(root / "cur" / "1700000002.M2P1.host:2,S");
  touch(root / "new" / "1700000001.M1P1.host");
  touch(root / "cur" / ".hidden");
  touch(root / ".Sent" / "cur" / "1700000003.M3P1.host:2,S");
  touch(root / ".A.B" / "new" / "no-time-here");
  auto found = find_messages({root.string()});
  ASSERT_TRUE(found) << found.error();
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(listing(*found, root),
            (std::vector<P>{{"cur/1700000002.M2P1.host:2,S", "INBOX"},
                            {"new/1700000001.M1P1.host", "INBOX"},
                            {".A.B/new/no-time-here", "A.B"},
                            {".Sent/cur/1700000003.M3P1.host:2,S", "Sent"}}));
  EXPECT_EQ((*found)[0].received_at, 1700000002);
  EXPECT_EQ((*found)[1].received_at, 1700000001);
  // A name without a delivery time: the file's mtime.
  EXPECT_EQ((*found)[2].received_at, mtime_of((*found)[2].path));
  EXPECT_GT((*found)[2].received_at, 0);
}

TEST(Maildir, FolderOfMaildirsAndEmlFiles) {
  TempDir dir;
  make_maildir(dir.path() / "mail" / "Archive");
  make_maildir(dir.path() / "mail" / ".Sent");
  touch(dir.path() / "mail" / "Archive" / "cur" / "1.M1P1.h");
  touch(dir.path() / "mail" / ".Sent" / "new" / "2.M2P1.h");
  touch(dir.path() / "mail" / "a.eml");
  touch(dir.path() / "mail" / "notes.txt");
  touch(dir.path() / "lone.eml");
  auto found = find_messages({(dir.path() / "mail").string(), (dir.path() / "lone.eml").string()});
  ASSERT_TRUE(found) << found.error();
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(listing(*found, dir.path() / "mail"),
            (std::vector<P>{{".Sent/new/2.M2P1.h", "Sent"},
                            {"Archive/cur/1.M1P1.h", "Archive"},
                            {"a.eml", "mail"},
                            {"../lone.eml", ""}}));
}

TEST(Maildir, MissingPathOrNoMailSaysWhich) {
  TempDir dir;
  auto missing = find_messages({"/nonexistent/mail"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "/nonexistent/mail: no such file or directory");
  fs::create_directories(dir.path() / "empty");
  const std::string empty = (dir.path() / "empty").string();
  auto none = find_messages({empty});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(),
            empty +
                ": no mail found (expected an .eml or .ics file, a Maildir with cur/ and "
                "new/, or a folder of Maildirs)");
  EXPECT_EQ(mtime_of("/nonexistent/x"), 0);
}
