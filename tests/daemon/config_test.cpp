// SPDX-License-Identifier: Apache-2.0
// The configuration loader: a full file, defaults, every refusal with its exact
// "file:line:column: " prefix, relative paths, and the shipped example file.
#include "daemon/config/config.hpp"
#include "tests/support/scoped_env.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;
using namespace crmcap::config;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "crmcap-config-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, std::string_view text, fs::perms mode) {
  std::ofstream(p, std::ios::binary) << text;
  fs::permissions(p, mode);
}

Environment user_env() {
  Environment env;
  env.root = false;
  env.home = "/home/alice";
  env.xdg_runtime_dir = "/run/user/1000";
  return env;
}

// A valid mailbox, lines 1-7 of every text that starts with it.
const std::string mailbox = R"([[mailbox]]
name = "alice"
owner = ["Alice@Example.com"]
[mailbox.imap]
url = "imaps://imap.example.com"
username = "alice@example.com"
password_file = "alice.pass"
)";

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    write_file(dir_.path() / "alice.pass", "secret\n", fs::perms::owner_read);
    write_file(dir_.path() / "alice.token", "token\n",
               fs::perms::owner_read | fs::perms::owner_write);
    write_file(dir_.path() / "ca.pem", "pem\n",
               fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  }

  std::string name() const { return (dir_.path() / "crm-capture.toml").string(); }

  boost::system::result<Config, ConfigError> load(std::string_view text,
                                                  const Environment& env = user_env()) {
    return load_config_text(text, name(), env);
  }

  Config ok(std::string_view text, const Environment& env = user_env()) {
    auto r = load(text, env);
    EXPECT_TRUE(r.has_value()) << (r ? std::string() : r.error().message);
    return r ? *r : Config{};
  }

  // The whole error message with the file name replaced by "F".
  std::string error(std::string_view text, const Environment& env = user_env()) {
    auto r = load(text, env);
    if (r) return "(loaded)";
    std::string m = r.error().message;
    std::string n = name();
    for (std::size_t at = m.find(n); at != std::string::npos; at = m.find(n, at)) {
      m.replace(at, n.size(), "F");
    }
    return m;
  }

  TempDir dir_;
};

TEST_F(ConfigTest, FullFile) {
  Config c = ok(R"(# every key
[store]
path = "/srv/crm/capture.db"
[api]
socket = "/srv/crm/api.sock"
mode = "0600"
allow_uids = [1001, 1002]
[identity]
internal_domains = ["Example.COM", "example.org"]
[capture]
backfill_days = 30
horizon_days = 14
snippet_chars = 100
strip_plus_tags = false
block_addresses = ["NoReply@acme.example"]
block_domains = ["News.example"]
[[mailbox]]
name = "alice"
owner = ["Alice@Example.com", "a.smith@example.com"]
[mailbox.imap]
url = "imaps://imap.example.com:1993/"
username = "alice@example.com"
password_file = "alice.pass"
auth = "login"
ca_file = "ca.pem"
folders = ["INBOX", "Sales", "\\Sent"]
allow_insecure = false
poll_seconds = 120
idle_minutes = 20
max_part_bytes = 32768
batch_size = 50
timeout_seconds = 30
command_timeout_seconds = 120
[mailbox.caldav]
url = "https://dav.example.com/calendars/alice/"
username = "alice"
token_command = "oauth2-token alice"
interval_seconds = 600
allow_insecure = false
[[mailbox]]
name = "bob.2-x_y"
owner = ["bob@example.com"]
[mailbox.caldav]
url = "https://dav.example.com/"
username = "bob"
token_file = "alice.token"
)");
  EXPECT_EQ(c.source, name());
  EXPECT_EQ(c.store_path, "/srv/crm/capture.db");
  EXPECT_EQ(c.api_socket, "/srv/crm/api.sock");
  EXPECT_EQ(c.api_mode, 0600u);
  EXPECT_EQ(c.allow_uids, (std::vector<std::uint32_t>{1001, 1002}));
  EXPECT_EQ(c.internal_domains, (std::vector<std::string>{"example.com", "example.org"}));
  EXPECT_EQ(c.backfill_days, 30u);
  EXPECT_EQ(c.horizon_days, 14u);
  EXPECT_EQ(c.snippet_chars, 100u);
  EXPECT_FALSE(c.strip_plus_tags);
  EXPECT_EQ(c.block_addresses, (std::vector<std::string>{"noreply@acme.example"}));
  EXPECT_EQ(c.block_domains, (std::vector<std::string>{"news.example"}));
  EXPECT_TRUE(c.warnings.empty());
  ASSERT_EQ(c.mailboxes.size(), 2u);

  const MailboxConfig& a = c.mailboxes[0];
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.owner, (std::vector<std::string>{"alice@example.com", "a.smith@example.com"}));
  ASSERT_TRUE(a.imap);
  EXPECT_EQ(a.imap->url, "imaps://imap.example.com:1993/");
  EXPECT_EQ(a.imap->host, "imap.example.com");
  EXPECT_EQ(a.imap->port, 1993);
  EXPECT_EQ(a.imap->security, ImapConfig::Security::implicit_tls);
  EXPECT_EQ(a.imap->username, "alice@example.com");
  EXPECT_EQ(a.imap->password_file, (dir_.path() / "alice.pass").string());
  EXPECT_EQ(a.imap->token_file, "");
  EXPECT_EQ(a.imap->token_command, "");
  EXPECT_EQ(a.imap->credential, "");
  EXPECT_EQ(a.imap->auth, ImapConfig::Auth::login);
  EXPECT_EQ(a.imap->ca_file, (dir_.path() / "ca.pem").string());
  EXPECT_EQ(a.imap->folders, (std::vector<std::string>{"INBOX", "Sales", "\\Sent"}));
  EXPECT_FALSE(a.imap->allow_insecure);
  EXPECT_EQ(a.imap->poll_seconds, 120u);
  EXPECT_EQ(a.imap->idle_minutes, 20u);
  EXPECT_EQ(a.imap->max_part_bytes, 32768u);
  EXPECT_EQ(a.imap->batch_size, 50u);
  EXPECT_EQ(a.imap->timeout_seconds, 30u);
  EXPECT_EQ(a.imap->command_timeout_seconds, 120u);
  ASSERT_TRUE(a.caldav);
  EXPECT_EQ(a.caldav->url, "https://dav.example.com/calendars/alice/");
  EXPECT_EQ(a.caldav->username, "alice");
  EXPECT_EQ(a.caldav->token_command, "oauth2-token alice");
  EXPECT_EQ(a.caldav->password_file, "");
  EXPECT_EQ(a.caldav->interval_seconds, 600u);
  EXPECT_FALSE(a.caldav->allow_insecure);

  const MailboxConfig& b = c.mailboxes[1];
  EXPECT_EQ(b.name, "bob.2-x_y");
  EXPECT_FALSE(b.imap);
  ASSERT_TRUE(b.caldav);
  EXPECT_EQ(b.caldav->token_file, (dir_.path() / "alice.token").string());
  EXPECT_EQ(b.caldav->interval_seconds, 300u);
}

TEST_F(ConfigTest, DefaultsForAUser) {
  Config c = ok(mailbox);
  EXPECT_EQ(c.store_path, "/home/alice/.local/share/crm-capture/capture.db");
  EXPECT_EQ(c.api_socket, "/run/user/1000/crm-capture/api.sock");
  EXPECT_EQ(c.api_mode, 0660u);
  EXPECT_TRUE(c.allow_uids.empty());
  EXPECT_TRUE(c.internal_domains.empty());
  EXPECT_EQ(c.backfill_days, 90u);
  EXPECT_EQ(c.horizon_days, 30u);
  EXPECT_EQ(c.snippet_chars, 280u);
  EXPECT_TRUE(c.strip_plus_tags);
  EXPECT_TRUE(c.block_addresses.empty());
  EXPECT_TRUE(c.block_domains.empty());
  EXPECT_TRUE(c.warnings.empty());
  ASSERT_EQ(c.mailboxes.size(), 1u);
  const MailboxConfig& m = c.mailboxes[0];
  EXPECT_EQ(m.owner, (std::vector<std::string>{"alice@example.com"}));
  EXPECT_FALSE(m.caldav);
  ASSERT_TRUE(m.imap);
  EXPECT_EQ(m.imap->host, "imap.example.com");
  EXPECT_EQ(m.imap->port, 993);
  EXPECT_EQ(m.imap->security, ImapConfig::Security::implicit_tls);
  EXPECT_EQ(m.imap->auth, ImapConfig::Auth::automatic);
  EXPECT_EQ(m.imap->ca_file, "");
  EXPECT_EQ(m.imap->folders, (std::vector<std::string>{"INBOX", "\\Sent"}));
  EXPECT_FALSE(m.imap->allow_insecure);
  EXPECT_EQ(m.imap->poll_seconds, 60u);
  EXPECT_EQ(m.imap->idle_minutes, 25u);
  EXPECT_EQ(m.imap->max_part_bytes, 65536u);
  EXPECT_EQ(m.imap->batch_size, 500u);
  EXPECT_EQ(m.imap->timeout_seconds, 60u);
  EXPECT_EQ(m.imap->command_timeout_seconds, 600u);

  Environment xdg = user_env();
  xdg.xdg_data_home = "/data/alice";
  EXPECT_EQ(ok(mailbox, xdg).store_path, "/data/alice/crm-capture/capture.db");
}

TEST_F(ConfigTest, DefaultsForRoot) {
  Environment root;
  root.root = true;  // no HOME, no XDG_RUNTIME_DIR: not needed for system paths
  Config c = ok("", root);
  EXPECT_EQ(c.store_path, "/var/lib/crm-capture/capture.db");
  EXPECT_EQ(c.api_socket, "/run/crm-capture/api.sock");
  EXPECT_TRUE(c.mailboxes.empty());
  EXPECT_EQ(default_config_path(root), "/etc/crm-capture/crm-capture.toml");
}

// Under systemd (StateDirectory=, RuntimeDirectory=) the service's own
// directories come before the root and XDG defaults; the file still wins.
TEST_F(ConfigTest, DefaultsUnderSystemdDirectories) {
  for (bool as_root : {false, true}) {
    Environment env = as_root ? Environment{} : user_env();
    env.root = as_root;
    env.state_directory = "/var/lib/crm-capture/alice";
    env.runtime_directory = "/run/crm-capture";
    Config c = ok(mailbox, env);
    EXPECT_EQ(c.store_path, "/var/lib/crm-capture/alice/capture.db");
    EXPECT_EQ(c.api_socket, "/run/crm-capture/api.sock");
    EXPECT_EQ(default_socket_path(env), "/run/crm-capture/api.sock");

    c = ok("[store]\npath = \"/srv/a.db\"\n[api]\nsocket = \"/run/crm-capture/alice.sock\"\n", env);
    EXPECT_EQ(c.store_path, "/srv/a.db");
    EXPECT_EQ(c.api_socket, "/run/crm-capture/alice.sock");
  }
  // A runtime directory stands in for a missing $XDG_RUNTIME_DIR.
  Environment env = user_env();
  env.xdg_runtime_dir.clear();
  env.runtime_directory = "/run/user/1000/crm-capture";
  EXPECT_EQ(ok(mailbox, env).api_socket, "/run/user/1000/crm-capture/api.sock");
}

// Environment::current() reads systemd's variables: the first of a
// colon-separated list, and nothing from a relative path.
TEST_F(ConfigTest, SystemdDirectoriesFromTheProcess) {
  const crmcap::test::ScopedEnv state("STATE_DIRECTORY", "/var/lib/crm-capture/a:/var/lib/other");
  {
    const crmcap::test::ScopedEnv runtime("RUNTIME_DIRECTORY", "run/crm-capture");
    Environment env = Environment::current();
    EXPECT_EQ(env.state_directory, "/var/lib/crm-capture/a");
    EXPECT_EQ(env.runtime_directory, "");
  }
  const crmcap::test::ScopedEnv runtime("RUNTIME_DIRECTORY", "/run/crm-capture");
  EXPECT_EQ(Environment::current().runtime_directory, "/run/crm-capture");
}

TEST_F(ConfigTest, DefaultConfigPathForAUser) {
  Environment env = user_env();
  EXPECT_EQ(default_config_path(env), "/home/alice/.config/crm-capture/crm-capture.toml");
  env.xdg_config_home = "/cfg";
  EXPECT_EQ(default_config_path(env), "/cfg/crm-capture/crm-capture.toml");
}

TEST_F(ConfigTest, UserWithoutRuntimeDirMustNameTheSocket) {
  Environment env = user_env();
  env.xdg_runtime_dir.clear();
  EXPECT_EQ(error(mailbox, env), "F: api.socket is not set and $XDG_RUNTIME_DIR is not set");
  Config c = ok("[api]\nsocket = \"/tmp/x.sock\"\n", env);
  EXPECT_EQ(c.api_socket, "/tmp/x.sock");
}

TEST_F(ConfigTest, UnknownKeysAndTablesAreRefused) {
  EXPECT_EQ(error("colour = 1\n"), "F:1:1: unknown key \"colour\"");
  EXPECT_EQ(error("[stor]\npath = \"x\"\n"), "F:1:2: unknown table [stor]");
  EXPECT_EQ(error("[store]\npath = \"x\"\nsize = 1\n"), "F:3:1: unknown key \"size\" in [store]");
  EXPECT_EQ(error("[api]\n  owner = \"x\"\n"), "F:2:3: unknown key \"owner\" in [api]");
  EXPECT_EQ(error("[identity]\ndomains = []\n"), "F:2:1: unknown key \"domains\" in [identity]");
  EXPECT_EQ(error("[capture]\nbackfill = 3\n"), "F:2:1: unknown key \"backfill\" in [capture]");
  EXPECT_EQ(error(mailbox + "[mailbox.smtp]\nurl = \"x\"\n"),
            "F:8:10: unknown table [mailbox.smtp]");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowners = []\n"),
            "F:1:1: missing required key \"owner\" in [[mailbox]]\n"
            "F:1:1: [[mailbox]] needs [mailbox.imap] or [mailbox.caldav]\n"
            "F:3:1: unknown key \"owners\" in [[mailbox]]");
  EXPECT_EQ(error(mailbox + "port = 143\n"), "F:8:1: unknown key \"port\" in [mailbox.imap]");
  EXPECT_EQ(error(mailbox + "[mailbox.imap.tls]\nverify = false\n"),
            "F:8:15: unknown table [mailbox.imap.tls]");
  EXPECT_EQ(
      error(mailbox + "[mailbox.caldav]\nurl = \"https://dav.example.com/\"\nusername = \"a\"\n"
                      "password_file = \"alice.pass\"\ncalendars = []\n"),
      "F:12:1: unknown key \"calendars\" in [mailbox.caldav]");
}

TEST_F(ConfigTest, WrongTypesSayExpectedAndFound) {
  EXPECT_EQ(error("[store]\npath = 1\n"), "F:2:8: store.path: expected a string, found an integer");
  EXPECT_EQ(error("[capture]\nbackfill_days = \"90\"\n"),
            "F:2:17: capture.backfill_days: expected an integer, found a string");
  EXPECT_EQ(error("[capture]\nstrip_plus_tags = 1.0\n"),
            "F:2:19: capture.strip_plus_tags: expected a boolean, found a floating-point number");
  EXPECT_EQ(error("store = \"x\"\n"), "F:1:9: store: expected a table, found a string");
  EXPECT_EQ(error("[api]\nmode = 660\n"), "F:2:8: api.mode: expected a string, found an integer");
  EXPECT_EQ(error("[api]\nallow_uids = [1000, \"bob\"]\n"),
            "F:2:21: api.allow_uids[1]: expected an integer, found a string");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\", 7]\n"
                  "[mailbox.caldav]\nurl = \"https://d/\"\nusername = \"a\"\n"
                  "password_file = \"alice.pass\"\n"),
            "F:3:19: mailbox.owner[1]: expected a string, found an integer");
  EXPECT_EQ(error("[mailbox]\nname = \"a\"\n"),
            "F:1:1: mailbox: expected an array of tables ([[mailbox]]), found a table");
  EXPECT_EQ(error(mailbox + "poll_seconds = 1970-01-01\n"),
            "F:8:16: mailbox.imap.poll_seconds: expected an integer, found a date");
}

TEST_F(ConfigTest, ImapUrlSchemes) {
  auto with_url = [&](std::string_view url, std::string_view extra = "") {
    return "[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\nurl = \"" +
           std::string(url) + "\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n" +
           std::string(extra);
  };
  EXPECT_EQ(error(with_url("https://imap.example.com")),
            "F:5:7: mailbox.imap.url: scheme \"https\" is not imaps or imap");

  ImapConfig starttls = *ok(with_url("imap://imap.example.com")).mailboxes[0].imap;
  EXPECT_EQ(starttls.security, ImapConfig::Security::starttls);
  EXPECT_EQ(starttls.port, 143);

  Config plain = ok(with_url("imap://127.0.0.1:10143", "allow_insecure = true\n"));
  EXPECT_EQ(plain.mailboxes[0].imap->security, ImapConfig::Security::none);
  EXPECT_EQ(plain.mailboxes[0].imap->host, "127.0.0.1");
  EXPECT_EQ(plain.mailboxes[0].imap->port, 10143);
  EXPECT_TRUE(plain.warnings.empty());  // loopback

  // allow_insecure set before url in the table works the same way.
  Config before =
      ok("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
         "allow_insecure = true\nurl = \"IMAP://mail.example.com\"\n"
         "username = \"a\"\npassword_file = \"alice.pass\"\n");
  EXPECT_EQ(before.mailboxes[0].imap->security, ImapConfig::Security::none);
  ASSERT_EQ(before.warnings.size(), 1u);
  EXPECT_EQ(before.warnings[0], name() +
                                    ":6:7: mailbox.imap.url: plain-text IMAP to mail.example.com "
                                    "sends the password unencrypted over the network");

  // imaps:// ignores allow_insecure: TLS is never turned off.
  Config tls = ok(with_url("imaps://[::1]:1993", "allow_insecure = true\n"));
  EXPECT_EQ(tls.mailboxes[0].imap->security, ImapConfig::Security::implicit_tls);
  EXPECT_EQ(tls.mailboxes[0].imap->host, "::1");
  EXPECT_EQ(tls.mailboxes[0].imap->port, 1993);
}

TEST_F(ConfigTest, ImapUrlPartsThatAreRefused) {
  auto url_error = [&](std::string_view url) {
    return error("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\nurl = \"" +
                 std::string(url) + "\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n");
  };
  EXPECT_EQ(url_error("imaps://alice:pw@imap.example.com"),
            "F:5:7: mailbox.imap.url: must not contain a user name or password; use username "
            "and password_file");
  EXPECT_EQ(url_error("imaps://imap.example.com/INBOX"),
            "F:5:7: mailbox.imap.url: must not have a path (\"/INBOX\"); folders are set by "
            "folders");
  EXPECT_EQ(url_error("imaps://imap.example.com/?x=1"),
            "F:5:7: mailbox.imap.url: must not have a query or a fragment");
  EXPECT_EQ(url_error("imaps://imap.example.com:99999"),
            "F:5:7: mailbox.imap.url: port \"99999\" is not 1..65535");
  EXPECT_EQ(url_error("imaps:/imap.example.com"),
            "F:5:7: mailbox.imap.url: \"imaps:/imap.example.com\" has no host");
  EXPECT_EQ(url_error("imap.example.com"),
            "F:5:7: mailbox.imap.url: \"imap.example.com\" is not a URL such as "
            "imaps://imap.example.com");
}

TEST_F(ConfigTest, CaldavUrls) {
  auto dav = [&](std::string_view url, std::string_view extra = "") {
    return "[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.caldav]\nurl = \"" +
           std::string(url) + "\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n" +
           std::string(extra);
  };
  EXPECT_EQ(error(dav("http://127.0.0.1:5232/")),
            "F:5:7: mailbox.caldav.url: http:// is plain text; use https:// or set "
            "allow_insecure = true");
  Config c = ok(dav("http://127.0.0.1:5232/", "allow_insecure = true\n"));
  EXPECT_TRUE(c.mailboxes[0].caldav->allow_insecure);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(error(dav("webcal://dav.example.com/")),
            "F:5:7: mailbox.caldav.url: scheme \"webcal\" is not https or http");
}

TEST_F(ConfigTest, ExactlyOneSecret) {
  EXPECT_EQ(error(mailbox + "token_file = \"alice.token\"\n"),
            "F:8:1: mailbox.imap.token_file: password_file is already set; use exactly one of "
            "password_file, token_file, token_command, credential");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
                  "url = \"imaps://h\"\nusername = \"a\"\n"),
            "F:4:1: missing a secret in [mailbox.imap]: set one of password_file, token_file, "
            "token_command, credential");
}

TEST_F(ConfigTest, TokensDefaultToXoauth2) {
  std::string base =
      "[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
      "url = \"imaps://h\"\nusername = \"a\"\n";
  EXPECT_EQ(ok(base + "token_file = \"alice.token\"\n").mailboxes[0].imap->auth,
            ImapConfig::Auth::xoauth2);
  EXPECT_EQ(
      ok(base + "token_command = \"get-token\"\nauth = \"oauthbearer\"\n").mailboxes[0].imap->auth,
      ImapConfig::Auth::oauthbearer);
  EXPECT_EQ(error(base + "token_command = \"get-token\"\nauth = \"plain\"\n"),
            "F:8:8: mailbox.imap.auth: \"plain\" needs a password, but token_command gives an "
            "OAuth token");
  EXPECT_EQ(error(base + "password_file = \"alice.pass\"\nauth = \"xoauth2\"\n"),
            "F:8:8: mailbox.imap.auth: \"xoauth2\" needs an OAuth token (token_file or "
            "token_command), but password_file gives a password");
  EXPECT_EQ(error(base + "password_file = \"alice.pass\"\nauth = \"cram-md5\"\n"),
            "F:8:8: mailbox.imap.auth: \"cram-md5\" is not one of auto, plain, login, xoauth2, "
            "oauthbearer");
  EXPECT_EQ(ok(base + "password_file = \"alice.pass\"\ncompress = \"always\"\n")
                .mailboxes[0]
                .imap->compress,
            ImapConfig::Compress::always);
  EXPECT_EQ(ok(base + "password_file = \"alice.pass\"\n").mailboxes[0].imap->compress,
            ImapConfig::Compress::automatic);
  EXPECT_EQ(error(base + "password_file = \"alice.pass\"\ncompress = \"zstd\"\n"),
            "F:8:12: mailbox.imap.compress: \"zstd\" is not one of auto, always, never");
}

TEST_F(ConfigTest, SystemdCredentials) {
  std::string text =
      "[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
      "url = \"imaps://h\"\nusername = \"a\"\ncredential = \"imap-password\"\n";
  Config outside = ok(text);
  EXPECT_EQ(outside.mailboxes[0].imap->credential, "imap-password");
  ASSERT_EQ(outside.warnings.size(), 1u);
  EXPECT_EQ(outside.warnings[0], name() +
                                     ":7:14: mailbox.imap.credential: $CREDENTIALS_DIRECTORY is "
                                     "not set; the credential can only be read when systemd "
                                     "starts the service with LoadCredential=");

  Environment env = user_env();
  env.credentials_directory = dir_.path().string();
  EXPECT_EQ(error(text, env), "F:7:14: mailbox.imap.credential: " + dir_.path().string() +
                                  "/imap-password does not exist");
  write_file(dir_.path() / "imap-password", "pw", fs::perms::owner_read);
  EXPECT_TRUE(ok(text, env).warnings.empty());
}

TEST_F(ConfigTest, MissingRequiredKeysNameTheTable) {
  EXPECT_EQ(error("[capture]\n\n[[mailbox]]\nname = \"a\"\n[mailbox.caldav]\n"
                  "url = \"https://d/\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:3:1: missing required key \"owner\" in [[mailbox]]");
  EXPECT_EQ(error("[[mailbox]]\nowner = [\"a@b.c\"]\n[mailbox.caldav]\n"
                  "url = \"https://d/\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:1:1: missing required key \"name\" in [[mailbox]]");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n"),
            "F:1:1: [[mailbox]] needs [mailbox.imap] or [mailbox.caldav]");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
                  "username = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:4:1: missing required key \"url\" in [mailbox.imap]");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = []\n[mailbox.caldav]\n"
                  "url = \"https://d/\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:3:9: mailbox.owner: needs at least one address");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a\"\nowner = [\"alice\"]\n[mailbox.caldav]\n"
                  "url = \"https://d/\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:3:10: mailbox.owner[0]: \"alice\" is not a mail address");
}

TEST_F(ConfigTest, DuplicateMailboxNameNamesTheSecond) {
  std::string second =
      "\n[[mailbox]]\nname = \"alice\"\nowner = [\"b@example.com\"]\n[mailbox.caldav]\n"
      "url = \"https://d/\"\nusername = \"b\"\npassword_file = \"alice.pass\"\n";
  EXPECT_EQ(error(mailbox + second),
            "F:10:8: mailbox.name: \"alice\" is already used by the mailbox on line 2");
  EXPECT_EQ(error("[[mailbox]]\nname = \"a b\"\nowner = [\"a@b.c\"]\n[mailbox.caldav]\n"
                  "url = \"https://d/\"\nusername = \"a\"\npassword_file = \"alice.pass\"\n"),
            "F:2:8: mailbox.name: \"a b\" may contain only letters, digits, '.', '_' and '-'");
}

TEST_F(ConfigTest, ModeIsAStringOfOctalDigits) {
  EXPECT_EQ(ok("[api]\nmode = \"600\"\n").api_mode, 0600u);
  EXPECT_EQ(ok("[api]\nmode = \"0777\"\n").api_mode, 0777u);
  EXPECT_EQ(error("[api]\nmode = \"0999\"\n"),
            "F:2:8: api.mode: \"0999\" is not a permission mode such as \"0660\"");
  EXPECT_EQ(error("[api]\nmode = \"4755\"\n"),
            "F:2:8: api.mode: \"4755\" is not a permission mode such as \"0660\"");
  EXPECT_EQ(error("[api]\nmode = \"rw-rw----\"\n"),
            "F:2:8: api.mode: \"rw-rw----\" is not a permission mode such as \"0660\"");
}

TEST_F(ConfigTest, RangesAreChecked) {
  EXPECT_EQ(error(mailbox + "idle_minutes = 30\n"),
            "F:8:16: mailbox.imap.idle_minutes: 30 is out of range (1..29)");
  EXPECT_EQ(error("[capture]\nbackfill_days = -1\n"),
            "F:2:17: capture.backfill_days: -1 is out of range (0..36500)");
  EXPECT_EQ(error("[api]\nallow_uids = [4294967295]\n"),
            "F:2:15: api.allow_uids[0]: 4294967295 is not a user id");
}

TEST_F(ConfigTest, TomlSyntaxError) {
  EXPECT_EQ(error("[store]\npath = \n"),
            "F:2:8: Error while parsing key-value pair: expected value, saw '\\n'");
  EXPECT_EQ(error("[store]\npath = \"a\"\n[store]\n"),
            "F:3:1: Error while parsing table header: cannot redefine existing table 'store'");
}

TEST_F(ConfigTest, EveryErrorIsReportedInFileOrder) {
  EXPECT_EQ(error("[capture]\nhorizon_days = \"x\"\n[store]\npath = false\ncolour = 1\n"),
            "F:2:16: capture.horizon_days: expected an integer, found a string\n"
            "F:4:8: store.path: expected a string, found a boolean\n"
            "F:5:1: unknown key \"colour\" in [store]");
}

TEST_F(ConfigTest, RelativePathsFollowTheFile) {
  fs::create_directories(dir_.path() / "secrets");
  write_file(dir_.path() / "secrets" / "bob.pass", "pw", fs::perms::owner_read);
  Config c =
      ok("[store]\npath = \"db/capture.db\"\n[api]\nsocket = \"../run/api.sock\"\n"
         "[[mailbox]]\nname = \"bob\"\nowner = [\"bob@b.c\"]\n[mailbox.imap]\n"
         "url = \"imaps://h\"\nusername = \"bob\"\npassword_file = \"secrets/./bob.pass\"\n"
         "ca_file = \"./ca.pem\"\n");
  EXPECT_EQ(c.store_path, (dir_.path() / "db" / "capture.db").string());
  EXPECT_EQ(c.api_socket, (dir_.path().parent_path() / "run" / "api.sock").string());
  EXPECT_EQ(c.mailboxes[0].imap->password_file, (dir_.path() / "secrets" / "bob.pass").string());
  EXPECT_EQ(c.mailboxes[0].imap->ca_file, (dir_.path() / "ca.pem").string());
  EXPECT_EQ(error("[store]\npath = \"~/capture.db\"\n"),
            "F:2:8: store.path: \"~\" is not expanded; write the full path");
}

TEST_F(ConfigTest, SecretFilesMustExistAndStayPrivate) {
  std::string base =
      "[[mailbox]]\nname = \"a\"\nowner = [\"a@b.c\"]\n[mailbox.imap]\n"
      "url = \"imaps://h\"\nusername = \"a\"\n";
  EXPECT_EQ(error(base + "password_file = \"nope.pass\"\n"),
            "F:7:17: mailbox.imap.password_file: " + (dir_.path() / "nope.pass").string() +
                " does not exist");
  EXPECT_EQ(
      error(base + "password_file = \"alice.pass\"\nca_file = \"nope.pem\"\n"),
      "F:8:11: mailbox.imap.ca_file: " + (dir_.path() / "nope.pem").string() + " does not exist");
  EXPECT_EQ(
      error(base + "password_file = \".\"\n"),
      "F:7:17: mailbox.imap.password_file: " + dir_.path().string() + " is not a regular file");

  write_file(dir_.path() / "open.pass", "pw", fs::perms::owner_read | fs::perms::others_read);
  Config c = ok(base + "password_file = \"open.pass\"\n");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0],
            name() + ":7:17: mailbox.imap.password_file: " + (dir_.path() / "open.pass").string() +
                " is readable by others; chmod o-r it");
}

TEST_F(ConfigTest, LoadConfigReadsTheFile) {
  write_file(dir_.path() / "crm-capture.toml", mailbox, fs::perms::owner_read);
  auto r = load_config(name(), user_env());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, name());
  EXPECT_EQ(r->mailboxes[0].imap->password_file, (dir_.path() / "alice.pass").string());

  std::string missing = (dir_.path() / "missing.toml").string();
  auto m = load_config(missing, user_env());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, missing + ": cannot open: No such file or directory");

  auto d = load_config(dir_.path().string(), user_env());
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message, dir_.path().string() + ": is a directory");
}

TEST_F(ConfigTest, ShippedExampleLoads) {
  // The example names "alice.pass" beside itself; give it one in a private copy.
  fs::path example = fs::path(CRMCAP_SOURCE_DIR) / "packaging" / "crm-capture.toml.example";
  fs::path copy = dir_.path() / "example.toml";
  fs::copy_file(example, copy);
  auto r = load_config(copy.string(), user_env());
  ASSERT_TRUE(r) << r.error().message;
  const Config& c = *r;
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.api_mode, 0660u);
  EXPECT_EQ(c.internal_domains, (std::vector<std::string>{"example.com"}));
  ASSERT_EQ(c.mailboxes.size(), 1u);
  const MailboxConfig& m = c.mailboxes[0];
  EXPECT_EQ(m.name, "alice");
  ASSERT_TRUE(m.imap);
  EXPECT_EQ(m.imap->security, ImapConfig::Security::none);
  EXPECT_EQ(m.imap->host, "127.0.0.1");
  EXPECT_EQ(m.imap->password_file, (dir_.path() / "alice.pass").string());
  ASSERT_TRUE(m.caldav);
  EXPECT_EQ(m.caldav->url, "http://127.0.0.1:5232/");
}

}  // namespace
