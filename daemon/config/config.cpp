// SPDX-License-Identifier: Apache-2.0
#include "daemon/config/config.hpp"

#include "parsers/text/text.hpp"

#include <toml++/toml.h>
#include <boost/url.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <stdexcept>

namespace crmcap::config {

void throw_exception_from_error(const ConfigError& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string_view to_string(ImapConfig::Security s) noexcept {
  switch (s) {
    case ImapConfig::Security::implicit_tls:
      return "implicit_tls";
    case ImapConfig::Security::starttls:
      return "starttls";
    case ImapConfig::Security::none:
      return "none";
  }
  return "?";
}

std::string_view to_string(ImapConfig::Auth a) noexcept {
  switch (a) {
    case ImapConfig::Auth::automatic:
      return "auto";
    case ImapConfig::Auth::plain:
      return "plain";
    case ImapConfig::Auth::login:
      return "login";
    case ImapConfig::Auth::xoauth2:
      return "xoauth2";
    case ImapConfig::Auth::oauthbearer:
      return "oauthbearer";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t no_line = 0;

// One error or warning; line 0 means "no position" and sorts last.
struct Issue {
  std::uint32_t line = no_line;
  std::uint32_t column = 0;
  std::string text;
};

std::string absolute_env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] == '/' ? std::string(v) : std::string();
}

// The first of systemd's colon-separated directories (StateDirectory=a b
// sets STATE_DIRECTORY=/var/lib/a:/var/lib/b).
std::string first_systemd_directory(const char* name) {
  std::string v = absolute_env(name);
  return v.substr(0, v.find(':'));
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "a value";
}

bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

// Parses a decimal TCP port; 0 when it is not 1..65535.
std::uint16_t parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return 0;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return v >= 1 && v <= 65535 ? static_cast<std::uint16_t>(v) : 0;
}

// The four ways to give a secret; exactly one is set per [mailbox.imap] or
// [mailbox.caldav].
struct SecretSource {
  std::string password_file, token_file, token_command, credential;
  std::string_view kind;  // which key was set
};

class Loader {
 public:
  Loader(std::string_view name, const Environment& env) : name_(name), env_(env) {
    std::error_code ec;
    fs::path file(name_);
    base_dir_ = fs::absolute(file, ec).parent_path();
    if (ec || base_dir_.empty()) base_dir_ = fs::current_path(ec);
  }

  boost::system::result<Config, ConfigError> run(std::string_view text) {
    Config config;
    config.source = name_;
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(name_));
    } catch (const toml::parse_error& e) {
      const auto& at = e.source().begin;
      return ConfigError{name_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                         ": " + std::string(e.description())};
    }
    read_root(root, config);
    if (!errors_.empty()) return ConfigError{join(errors_)};
    sort_issues(warnings_);
    for (const Issue& w : warnings_) config.warnings.push_back(format(w));
    return config;
  }

 private:
  // ---- reporting ------------------------------------------------------------

  void error(const toml::source_position& at, std::string text) {
    errors_.push_back({at.line, at.column, std::move(text)});
  }
  void error(std::string text) { errors_.push_back({no_line, 0, std::move(text)}); }
  void warn(const toml::source_position& at, std::string text) {
    warnings_.push_back({at.line, at.column, std::move(text)});
  }

  std::string format(const Issue& i) const {
    if (i.line == no_line) return name_ + ": " + i.text;
    return name_ + ":" + std::to_string(i.line) + ":" + std::to_string(i.column) + ": " + i.text;
  }

  static void sort_issues(std::vector<Issue>& issues) {
    std::stable_sort(issues.begin(), issues.end(), [](const Issue& a, const Issue& b) {
      auto key = [](const Issue& i) {
        return std::pair(i.line == no_line ? UINT32_MAX : i.line, i.column);
      };
      return key(a) < key(b);
    });
  }

  std::string join(std::vector<Issue>& issues) const {
    sort_issues(issues);
    std::string out;
    for (const Issue& i : issues) {
      if (!out.empty()) out += '\n';
      out += format(i);
    }
    return out;
  }

  // ---- generic checks -------------------------------------------------------

  // Refuses keys of `t` not in `known`. `dotted` is the table's dotted name
  // ("" for the top level, "mailbox.imap"), `label` how messages name it.
  void check_keys(const toml::table& t, std::string_view dotted, std::string_view label,
                  std::initializer_list<std::string_view> known) {
    for (auto&& [key, node] : t) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      std::string full = dotted.empty() ? std::string(key.str())
                                        : std::string(dotted) + "." + std::string(key.str());
      if (node.is_table()) {
        error(key.source().begin, "unknown table [" + full + "]");
      } else if (dotted.empty()) {
        error(key.source().begin, "unknown key " + in_quotes(key.str()));
      } else {
        error(key.source().begin,
              "unknown key " + in_quotes(key.str()) + " in " + std::string(label));
      }
    }
  }

  void missing(const toml::node& table, std::string_view key, std::string_view label) {
    error(table.source().begin,
          "missing required key " + in_quotes(key) + " in " + std::string(label));
  }

  void wrong_type(const toml::node& n, std::string_view qualified, std::string_view expected) {
    error(n.source().begin, std::string(qualified) + ": expected " + std::string(expected) +
                                ", found " + std::string(type_name(n.type())));
  }

  // The node at `key` when it has type `want`; nullptr when absent or (with
  // an error) of another type.
  const toml::node* typed(const toml::table& t, std::string_view key, std::string_view qualified,
                          toml::node_type want) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (n->type() != want) {
      wrong_type(*n, qualified, type_name(want));
      return nullptr;
    }
    return n;
  }

  const toml::table* sub_table(const toml::table& t, std::string_view key,
                               std::string_view qualified) {
    const toml::node* n = typed(t, key, qualified, toml::node_type::table);
    return n != nullptr ? n->as_table() : nullptr;
  }

  // A non-empty string; false when absent or invalid (then with an error).
  bool get_string(const toml::table& t, std::string_view key, std::string_view qualified,
                  std::string& out) {
    const toml::node* n = typed(t, key, qualified, toml::node_type::string);
    if (n == nullptr) return false;
    const std::string& v = n->as_string()->get();
    if (v.empty()) {
      error(n->source().begin, std::string(qualified) + ": must not be empty");
      return false;
    }
    out = v;
    return true;
  }

  bool get_bool(const toml::table& t, std::string_view key, std::string_view qualified, bool& out) {
    const toml::node* n = typed(t, key, qualified, toml::node_type::boolean);
    if (n == nullptr) return false;
    out = n->as_boolean()->get();
    return true;
  }

  bool get_u32(const toml::table& t, std::string_view key, std::string_view qualified,
               std::uint32_t& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = typed(t, key, qualified, toml::node_type::integer);
    if (n == nullptr) return false;
    std::int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      error(n->source().begin, std::string(qualified) + ": " + std::to_string(v) +
                                   " is out of range (" + std::to_string(min) + ".." +
                                   std::to_string(max) + ")");
      return false;
    }
    out = static_cast<std::uint32_t>(v);
    return true;
  }

  // An array of non-empty strings, each passed through `check` (which returns
  // an error text, empty when fine, and may rewrite the value).
  template <class Check>
  const toml::array* get_strings(const toml::table& t, std::string_view key,
                                 std::string_view qualified, std::vector<std::string>& out,
                                 Check check) {
    const toml::node* n = typed(t, key, qualified, toml::node_type::array);
    if (n == nullptr) return nullptr;
    const toml::array& arr = *n->as_array();
    std::vector<std::string> values;
    bool ok = true;
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const toml::node& e = *arr.get(i);
      std::string element = std::string(qualified) + "[" + std::to_string(i) + "]";
      if (!e.is_string()) {
        wrong_type(e, element, "a string");
        ok = false;
        continue;
      }
      std::string v = e.as_string()->get();
      std::string problem = v.empty() ? std::string("must not be empty") : check(v);
      if (!problem.empty()) {
        error(e.source().begin, element + ": " + in_quotes(e.as_string()->get()) + " " + problem);
        ok = false;
        continue;
      }
      values.push_back(std::move(v));
    }
    if (!ok) return nullptr;
    out = std::move(values);
    return &arr;
  }

  static std::string check_address(std::string& v) {
    if (v.find('@') == std::string::npos || has_space(v)) return "is not a mail address";
    v = text::to_lower_copy(v);
    return {};
  }

  static std::string check_domain(std::string& v) {
    if (v.find('@') != std::string::npos || has_space(v)) return "is not a domain name";
    v = text::to_lower_copy(v);
    return {};
  }

  // A path, absolute or relative to the file's directory; "~" is not expanded.
  bool get_path(const toml::table& t, std::string_view key, std::string_view qualified,
                std::string& out) {
    std::string v;
    if (!get_string(t, key, qualified, v)) return false;
    if (v[0] == '~') {
      error(t.get(key)->source().begin,
            std::string(qualified) + ": \"~\" is not expanded; write the full path");
      return false;
    }
    fs::path p(v);
    p = (p.is_absolute() ? p : base_dir_ / p).lexically_normal();
    // "dir/." normalizes to "dir/"; name the directory itself in messages.
    if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
    out = p.string();
    return true;
  }

  // The file must exist; a secret readable by others gives a warning.
  void check_file(const toml::node& at, std::string_view qualified, const std::string& path,
                  bool secret) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      int err = errno;
      if (err == ENOENT) {
        error(at.source().begin, std::string(qualified) + ": " + path + " does not exist");
      } else {
        error(at.source().begin,
              std::string(qualified) + ": cannot check " + path + ": " + std::strerror(err));
      }
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      error(at.source().begin, std::string(qualified) + ": " + path + " is not a regular file");
      return;
    }
    if (secret && (st.st_mode & S_IROTH) != 0) {
      warn(at.source().begin,
           std::string(qualified) + ": " + path + " is readable by others; chmod o-r it");
    }
  }

  // Exactly one of password_file, token_file, token_command, credential.
  bool read_secret(const toml::table& t, std::string_view dotted, std::string_view label,
                   SecretSource& out) {
    static constexpr std::string_view keys[] = {"password_file", "token_file", "token_command",
                                                "credential"};
    std::vector<std::pair<toml::source_position, std::string_view>> present;
    for (std::string_view k : keys) {
      auto it = t.find(k);
      if (it != t.end()) present.emplace_back(it->first.source().begin, k);
    }
    if (present.empty()) {
      error(t.source().begin, "missing a secret in " + std::string(label) +
                                  ": set one of password_file, token_file, token_command, "
                                  "credential");
      return false;
    }
    std::sort(present.begin(), present.end());
    if (present.size() > 1) {
      error(present[1].first, std::string(dotted) + "." + std::string(present[1].second) + ": " +
                                  std::string(present[0].second) +
                                  " is already set; use exactly one of password_file, "
                                  "token_file, token_command, credential");
      return false;
    }
    std::string_view kind = present[0].second;
    out.kind = kind;
    std::string qualified = std::string(dotted) + "." + std::string(kind);
    const toml::node& node = *t.get(kind);
    if (kind == "password_file" || kind == "token_file") {
      std::string& path = kind == "password_file" ? out.password_file : out.token_file;
      if (!get_path(t, kind, qualified, path)) return false;
      check_file(node, qualified, path, true);
      return true;
    }
    if (kind == "token_command") return get_string(t, kind, qualified, out.token_command);
    if (!get_string(t, kind, qualified, out.credential)) return false;
    if (out.credential.find('/') != std::string::npos || out.credential == "." ||
        out.credential == "..") {
      error(node.source().begin,
            qualified + ": " + in_quotes(out.credential) + " is not a credential name");
      return false;
    }
    if (env_.credentials_directory.empty()) {
      warn(node.source().begin, qualified +
                                    ": $CREDENTIALS_DIRECTORY is not set; the credential can "
                                    "only be read when systemd starts the service with "
                                    "LoadCredential=");
    } else {
      std::string path = (fs::path(env_.credentials_directory) / out.credential).string();
      check_file(node, qualified, path, false);
    }
    return true;
  }

  // ---- tables ---------------------------------------------------------------

  void read_root(const toml::table& root, Config& c) {
    check_keys(root, "", "the top level", {"store", "api", "identity", "capture", "mailbox"});

    bool have_store = false;
    if (const toml::table* t = sub_table(root, "store", "store")) {
      check_keys(*t, "store", "[store]", {"path"});
      have_store = get_path(*t, "path", "store.path", c.store_path);
    }
    bool have_socket = false;
    if (const toml::table* t = sub_table(root, "api", "api")) {
      check_keys(*t, "api", "[api]", {"socket", "mode", "allow_uids"});
      have_socket = get_path(*t, "socket", "api.socket", c.api_socket);
      read_mode(*t, c);
      if (const toml::node* n = typed(*t, "allow_uids", "api.allow_uids", toml::node_type::array)) {
        const toml::array& arr = *n->as_array();
        for (std::size_t i = 0; i < arr.size(); ++i) {
          const toml::node& e = *arr.get(i);
          std::string element = "api.allow_uids[" + std::to_string(i) + "]";
          if (!e.is_integer()) {
            wrong_type(e, element, "an integer");
            continue;
          }
          std::int64_t v = e.as_integer()->get();
          if (v < 0 || v >= std::int64_t{UINT32_MAX}) {
            error(e.source().begin, element + ": " + std::to_string(v) + " is not a user id");
            continue;
          }
          c.allow_uids.push_back(static_cast<std::uint32_t>(v));
        }
      }
    }
    if (const toml::table* t = sub_table(root, "identity", "identity")) {
      check_keys(*t, "identity", "[identity]", {"internal_domains"});
      get_strings(*t, "internal_domains", "identity.internal_domains", c.internal_domains,
                  check_domain);
    }
    if (const toml::table* t = sub_table(root, "capture", "capture")) {
      check_keys(*t, "capture", "[capture]",
                 {"backfill_days", "horizon_days", "snippet_chars", "strip_plus_tags",
                  "block_addresses", "block_domains"});
      get_u32(*t, "backfill_days", "capture.backfill_days", c.backfill_days, 0, 36500);
      get_u32(*t, "horizon_days", "capture.horizon_days", c.horizon_days, 0, 36500);
      get_u32(*t, "snippet_chars", "capture.snippet_chars", c.snippet_chars, 0, 100000);
      get_bool(*t, "strip_plus_tags", "capture.strip_plus_tags", c.strip_plus_tags);
      get_strings(*t, "block_addresses", "capture.block_addresses", c.block_addresses,
                  check_address);
      get_strings(*t, "block_domains", "capture.block_domains", c.block_domains, check_domain);
    }
    read_mailboxes(root, c);
    if (!have_store && c.store_path.empty()) c.store_path = default_store_path();
    if (!have_socket && c.api_socket.empty()) c.api_socket = default_socket_path();
  }

  void read_mode(const toml::table& t, Config& c) {
    std::string v;
    if (!get_string(t, "mode", "api.mode", v)) return;
    bool octal = v.size() <= 4 &&
                 std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '7'; });
    std::uint32_t mode = 0;
    if (octal) {
      for (char ch : v) mode = mode * 8 + static_cast<std::uint32_t>(ch - '0');
    }
    if (!octal || mode > 0777) {
      error(t.get("mode")->source().begin,
            "api.mode: " + in_quotes(v) + " is not a permission mode such as \"0660\"");
      return;
    }
    c.api_mode = mode;
  }

  std::string default_store_path() {
    if (!env_.state_directory.empty()) return env_.state_directory + "/capture.db";
    if (env_.root) return "/var/lib/crm-capture/capture.db";
    std::string base = !env_.xdg_data_home.empty() ? env_.xdg_data_home
                       : !env_.home.empty()        ? env_.home + "/.local/share"
                                                   : std::string();
    if (base.empty()) {
      error("store.path is not set and neither $XDG_DATA_HOME nor $HOME is known");
      return {};
    }
    return base + "/crm-capture/capture.db";
  }

  std::string default_socket_path() {
    std::string path = config::default_socket_path(env_);
    if (path.empty()) error("api.socket is not set and $XDG_RUNTIME_DIR is not set");
    return path;
  }

  void read_mailboxes(const toml::table& root, Config& c) {
    const toml::node* n = root.get("mailbox");
    if (n == nullptr) return;
    if (!n->is_array()) {
      wrong_type(*n, "mailbox", "an array of tables ([[mailbox]])");
      return;
    }
    std::map<std::string, std::uint32_t> names;  // name -> line of its first use
    for (const toml::node& e : *n->as_array()) {
      if (!e.is_table()) {
        wrong_type(e, "mailbox", "an array of tables ([[mailbox]])");
        continue;
      }
      MailboxConfig m;
      if (!read_mailbox(*e.as_table(), m)) continue;
      const toml::node& name_node = *e.as_table()->get("name");
      auto [it, fresh] = names.emplace(m.name, name_node.source().begin.line);
      if (!fresh) {
        error(name_node.source().begin, "mailbox.name: " + in_quotes(m.name) +
                                            " is already used by the mailbox on line " +
                                            std::to_string(it->second));
        continue;
      }
      c.mailboxes.push_back(std::move(m));
    }
  }

  // False when the mailbox has errors (already reported).
  bool read_mailbox(const toml::table& t, MailboxConfig& m) {
    std::size_t errors_before = errors_.size();
    check_keys(t, "mailbox", "[[mailbox]]", {"name", "owner", "imap", "caldav"});
    if (!t.contains("name")) {
      missing(t, "name", "[[mailbox]]");
    } else if (get_string(t, "name", "mailbox.name", m.name)) {
      bool valid = std::all_of(m.name.begin(), m.name.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
      });
      if (!valid) {
        error(t.get("name")->source().begin,
              "mailbox.name: " + in_quotes(m.name) +
                  " may contain only letters, digits, '.', '_' and '-'");
      }
    }
    if (!t.contains("owner")) {
      missing(t, "owner", "[[mailbox]]");
    } else if (const toml::array* arr =
                   get_strings(t, "owner", "mailbox.owner", m.owner, check_address)) {
      if (m.owner.empty()) {
        error(arr->source().begin, "mailbox.owner: needs at least one address");
      }
    }
    if (!t.contains("imap") && !t.contains("caldav")) {
      error(t.source().begin, "[[mailbox]] needs [mailbox.imap] or [mailbox.caldav]");
    }
    if (const toml::table* imap = sub_table(t, "imap", "mailbox.imap")) {
      m.imap.emplace();
      read_imap(*imap, *m.imap);
    }
    if (const toml::table* caldav = sub_table(t, "caldav", "mailbox.caldav")) {
      m.caldav.emplace();
      read_caldav(*caldav, *m.caldav);
    }
    return errors_.size() == errors_before;
  }

  void read_imap(const toml::table& t, ImapConfig& imap) {
    const std::string_view label = "[mailbox.imap]";
    check_keys(
        t, "mailbox.imap", label,
        {"url", "username", "password_file", "token_file", "token_command", "credential", "auth",
         "ca_file", "folders", "allow_insecure", "poll_seconds", "idle_minutes", "max_part_bytes",
         "batch_size", "timeout_seconds", "command_timeout_seconds", "compress"});
    get_bool(t, "allow_insecure", "mailbox.imap.allow_insecure", imap.allow_insecure);
    if (!t.contains("url")) {
      missing(t, "url", label);
    } else if (get_string(t, "url", "mailbox.imap.url", imap.url)) {
      read_imap_url(*t.get("url"), imap);
    }
    if (!t.contains("username")) {
      missing(t, "username", label);
    } else {
      get_string(t, "username", "mailbox.imap.username", imap.username);
    }
    SecretSource secret;
    bool have_secret = read_secret(t, "mailbox.imap", label, secret);
    imap.password_file = secret.password_file;
    imap.token_file = secret.token_file;
    imap.token_command = secret.token_command;
    imap.credential = secret.credential;
    bool token = secret.kind == "token_file" || secret.kind == "token_command";
    if (token) imap.auth = ImapConfig::Auth::xoauth2;
    if (const toml::node* n = typed(t, "auth", "mailbox.imap.auth", toml::node_type::string)) {
      read_auth(*n, have_secret ? secret.kind : std::string_view(), imap);
    }
    if (get_path(t, "ca_file", "mailbox.imap.ca_file", imap.ca_file)) {
      check_file(*t.get("ca_file"), "mailbox.imap.ca_file", imap.ca_file, false);
    }
    if (const toml::array* arr = get_strings(t, "folders", "mailbox.imap.folders", imap.folders,
                                             [](std::string&) { return std::string(); })) {
      if (imap.folders.empty()) {
        error(arr->source().begin, "mailbox.imap.folders: needs at least one folder");
      }
    }
    get_u32(t, "poll_seconds", "mailbox.imap.poll_seconds", imap.poll_seconds, 1, 86400);
    // IMAP servers may drop an IDLE after 30 minutes (RFC 2177).
    get_u32(t, "idle_minutes", "mailbox.imap.idle_minutes", imap.idle_minutes, 1, 29);
    get_u32(t, "max_part_bytes", "mailbox.imap.max_part_bytes", imap.max_part_bytes, 1, 1 << 30);
    get_u32(t, "batch_size", "mailbox.imap.batch_size", imap.batch_size, 1, 100000);
    get_u32(t, "timeout_seconds", "mailbox.imap.timeout_seconds", imap.timeout_seconds, 1, 3600);
    get_u32(t, "command_timeout_seconds", "mailbox.imap.command_timeout_seconds",
            imap.command_timeout_seconds, 1, 86400);
    if (const toml::node* n =
            typed(t, "compress", "mailbox.imap.compress", toml::node_type::string)) {
      const std::string& v = n->as_string()->get();
      if (v == "auto") {
        imap.compress = ImapConfig::Compress::automatic;
      } else if (v == "always") {
        imap.compress = ImapConfig::Compress::always;
      } else if (v == "never") {
        imap.compress = ImapConfig::Compress::never;
      } else {
        error(n->source().begin,
              "mailbox.imap.compress: " + in_quotes(v) + " is not one of auto, always, never");
      }
    }
  }

  void read_imap_url(const toml::node& n, ImapConfig& imap) {
    auto at = n.source().begin;
    const std::string q = "mailbox.imap.url: ";
    auto parsed = boost::urls::parse_uri(imap.url);
    if (!parsed) {
      error(at, q + in_quotes(imap.url) + " is not a URL such as imaps://imap.example.com");
      return;
    }
    const boost::urls::url_view& u = *parsed;
    std::string scheme = text::to_lower_copy(u.scheme());
    std::uint16_t default_port = 0;
    if (scheme == "imaps") {
      imap.security = ImapConfig::Security::implicit_tls;
      default_port = 993;
    } else if (scheme == "imap") {
      imap.security =
          imap.allow_insecure ? ImapConfig::Security::none : ImapConfig::Security::starttls;
      default_port = 143;
    } else {
      error(at, q + "scheme " + in_quotes(u.scheme()) + " is not imaps or imap");
      return;
    }
    if (!u.has_authority() || u.host_address().empty()) {
      error(at, q + in_quotes(imap.url) + " has no host");
      return;
    }
    if (u.has_userinfo()) {
      error(at, q + "must not contain a user name or password; use username and password_file");
      return;
    }
    if (!u.path().empty() && u.path() != "/") {
      error(at,
            q + "must not have a path (" + in_quotes(u.path()) + "); folders are set by folders");
      return;
    }
    if (u.has_query() || u.has_fragment()) {
      error(at, q + "must not have a query or a fragment");
      return;
    }
    imap.port = default_port;
    if (u.has_port() && !u.port().empty()) {
      imap.port = parse_port(u.port());
      if (imap.port == 0) {
        error(at, q + "port " + in_quotes(u.port()) + " is not 1..65535");
        return;
      }
    }
    imap.host = u.host_address();
    if (imap.security == ImapConfig::Security::none && !is_loopback(imap.host)) {
      warn(at, q + "plain-text IMAP to " + imap.host +
                   " sends the password unencrypted over the network");
    }
  }

  void read_auth(const toml::node& n, std::string_view secret_kind, ImapConfig& imap) {
    const std::string& v = n.as_string()->get();
    static constexpr std::pair<std::string_view, ImapConfig::Auth> names[] = {
        {"auto", ImapConfig::Auth::automatic},
        {"plain", ImapConfig::Auth::plain},
        {"login", ImapConfig::Auth::login},
        {"xoauth2", ImapConfig::Auth::xoauth2},
        {"oauthbearer", ImapConfig::Auth::oauthbearer}};
    auto it = std::find_if(std::begin(names), std::end(names),
                           [&](const auto& p) { return p.first == v; });
    if (it == std::end(names)) {
      error(n.source().begin, "mailbox.imap.auth: " + in_quotes(v) +
                                  " is not one of auto, plain, login, xoauth2, oauthbearer");
      return;
    }
    imap.auth = it->second;
    bool token = secret_kind == "token_file" || secret_kind == "token_command";
    bool oauth =
        imap.auth == ImapConfig::Auth::xoauth2 || imap.auth == ImapConfig::Auth::oauthbearer;
    bool password = imap.auth == ImapConfig::Auth::plain || imap.auth == ImapConfig::Auth::login;
    if (token && password) {
      error(n.source().begin, "mailbox.imap.auth: " + in_quotes(v) + " needs a password, but " +
                                  std::string(secret_kind) + " gives an OAuth token");
    } else if (secret_kind == "password_file" && oauth) {
      error(n.source().begin, "mailbox.imap.auth: " + in_quotes(v) +
                                  " needs an OAuth token (token_file or token_command), "
                                  "but password_file gives a password");
    }
  }

  void read_caldav(const toml::table& t, CaldavConfig& dav) {
    const std::string_view label = "[mailbox.caldav]";
    check_keys(t, "mailbox.caldav", label,
               {"url", "username", "password_file", "token_file", "token_command", "credential",
                "interval_seconds", "allow_insecure"});
    get_bool(t, "allow_insecure", "mailbox.caldav.allow_insecure", dav.allow_insecure);
    if (!t.contains("url")) {
      missing(t, "url", label);
    } else if (get_string(t, "url", "mailbox.caldav.url", dav.url)) {
      read_caldav_url(*t.get("url"), dav);
    }
    if (!t.contains("username")) {
      missing(t, "username", label);
    } else {
      get_string(t, "username", "mailbox.caldav.username", dav.username);
    }
    SecretSource secret;
    read_secret(t, "mailbox.caldav", label, secret);
    dav.password_file = secret.password_file;
    dav.token_file = secret.token_file;
    dav.token_command = secret.token_command;
    dav.credential = secret.credential;
    get_u32(t, "interval_seconds", "mailbox.caldav.interval_seconds", dav.interval_seconds, 1,
            86400);
  }

  void read_caldav_url(const toml::node& n, const CaldavConfig& dav) {
    auto at = n.source().begin;
    const std::string q = "mailbox.caldav.url: ";
    auto parsed = boost::urls::parse_uri(dav.url);
    if (!parsed) {
      error(at, q + in_quotes(dav.url) + " is not a URL such as https://dav.example.com/");
      return;
    }
    const boost::urls::url_view& u = *parsed;
    std::string scheme = text::to_lower_copy(u.scheme());
    if (scheme == "http" && !dav.allow_insecure) {
      error(at, q + "http:// is plain text; use https:// or set allow_insecure = true");
      return;
    }
    if (scheme != "https" && scheme != "http") {
      error(at, q + "scheme " + in_quotes(u.scheme()) + " is not https or http");
      return;
    }
    if (!u.has_authority() || u.host_address().empty()) {
      error(at, q + in_quotes(dav.url) + " has no host");
      return;
    }
    if (u.has_userinfo()) {
      error(at, q + "must not contain a user name or password; use username and password_file");
      return;
    }
    if (u.has_query() || u.has_fragment()) {
      error(at, q + "must not have a query or a fragment");
      return;
    }
    if (u.has_port() && !u.port().empty() && parse_port(u.port()) == 0) {
      error(at, q + "port " + in_quotes(u.port()) + " is not 1..65535");
      return;
    }
    if (scheme == "http" && !is_loopback(u.host_address())) {
      warn(at, q + "plain-text HTTP to " + std::string(u.host_address()) +
                   " sends the password unencrypted over the network");
    }
  }

  std::string name_;
  Environment env_;
  fs::path base_dir_;
  std::vector<Issue> errors_;
  std::vector<Issue> warnings_;
};

}  // namespace

Environment Environment::current() {
  Environment env;
  env.root = ::geteuid() == 0;
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    env.home = home;
  } else {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
        found->pw_dir != nullptr) {
      env.home = found->pw_dir;
    }
  }
  env.xdg_config_home = absolute_env("XDG_CONFIG_HOME");
  env.xdg_data_home = absolute_env("XDG_DATA_HOME");
  env.xdg_runtime_dir = absolute_env("XDG_RUNTIME_DIR");
  env.credentials_directory = absolute_env("CREDENTIALS_DIRECTORY");
  env.state_directory = first_systemd_directory("STATE_DIRECTORY");
  env.runtime_directory = first_systemd_directory("RUNTIME_DIRECTORY");
  return env;
}

std::string default_socket_path(const Environment& env) {
  if (!env.runtime_directory.empty()) return env.runtime_directory + "/api.sock";
  if (env.root) return "/run/crm-capture/api.sock";
  if (env.xdg_runtime_dir.empty()) return {};
  return env.xdg_runtime_dir + "/crm-capture/api.sock";
}

std::string default_config_path(const Environment& env) {
  if (env.root) return "/etc/crm-capture/crm-capture.toml";
  if (!env.xdg_config_home.empty()) return env.xdg_config_home + "/crm-capture/crm-capture.toml";
  if (!env.home.empty()) return env.home + "/.config/crm-capture/crm-capture.toml";
  return {};
}

boost::system::result<Config, ConfigError> load_config_text(std::string_view text,
                                                            std::string_view name,
                                                            const Environment& env) {
  try {
    Loader loader(name, env);
    return loader.run(text);
  } catch (const std::exception& e) {
    return ConfigError{std::string(name) + ": " + e.what()};
  }
}

boost::system::result<Config, ConfigError> load_config(const std::string& path,
                                                       const Environment& env) {
  try {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return ConfigError{path + ": is a directory"};
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      int err = errno;
      return ConfigError{path +
                         ": cannot open: " + (err != 0 ? std::strerror(err) : "unknown error")};
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return ConfigError{path + ": cannot read"};
    return load_config_text(text.str(), path, env);
  } catch (const std::exception& e) {
    return ConfigError{path + ": " + e.what()};
  }
}

}  // namespace crmcap::config
