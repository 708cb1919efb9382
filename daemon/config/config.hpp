// SPDX-License-Identifier: Apache-2.0
// Configuration of crm-captured: one TOML file, validated whole at start.
//
// The keys are those of DESIGN.md ("Configuration") plus the IMAP tuning keys
// documented in packaging/crm-capture.toml.example; any other key or table is
// refused. Every problem is reported as "file:line:column: what is wrong" (or
// "file: what is wrong" when there is no position, e.g. a missing file), so the
// daemon refuses to start rather than run with a half-understood file.
//
// Loading reads the configuration file only. Secret files are not read: a
// password_file, token_file or ca_file must exist, and a password or token file
// readable by others gives a warning. A systemd credential must exist in
// $CREDENTIALS_DIRECTORY when that is set; when it is not (a command run outside
// the service), a warning says so. Relative paths in the file are resolved
// against the directory of the file, so every path in a loaded Config is absolute.
// Nothing here throws: TOML and URL failures are caught and returned.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::config {

// [mailbox.imap]
struct ImapConfig {
  enum class Security {
    implicit_tls,  // imaps://: TLS from the first byte
    starttls,      // imap://: STARTTLS before login, refused if the server lacks it
    none,          // imap:// with allow_insecure = true: plain text
  };
  enum class Auth {
    automatic,    // "auto": the best mechanism the server offers for the credential
    plain,        // AUTHENTICATE PLAIN
    login,        // LOGIN
    xoauth2,      // AUTHENTICATE XOAUTH2 (the default with token_file / token_command)
    oauthbearer,  // AUTHENTICATE OAUTHBEARER (RFC 7628)
  };

  std::string url;         // as written, e.g. "imaps://imap.example.com"
  std::string host;        // from url; an IPv6 address without brackets
  std::uint16_t port = 0;  // from url, else 993 (imaps) or 143 (imap)
  Security security = Security::implicit_tls;
  std::string username;
  // Exactly one of the next four is set. The paths are absolute; token_command
  // is a command line whose standard output is the token; credential is the name
  // of a systemd credential, read at use from $CREDENTIALS_DIRECTORY/NAME.
  std::string password_file, token_file, token_command, credential;
  Auth auth = Auth::automatic;
  std::string ca_file;  // absolute; empty = the system trust store only
  std::vector<std::string> folders = {"INBOX", "\\Sent"};  // "\\Sent" = special-use
  bool allow_insecure = false;
  std::uint32_t poll_seconds = 60;       // poll interval when the server has no IDLE
  std::uint32_t idle_minutes = 25;       // IDLE is re-issued after this (1..29)
  std::uint32_t max_part_bytes = 65536;  // text parts larger than this are cut
  std::uint32_t batch_size = 500;        // messages per UID FETCH and per commit
  std::uint32_t timeout_seconds = 60;    // a server silent this long is dropped
  // A command (a batch's fetch, a search) not completed this long after it
  // started fails its pass, however steadily the server trickles bytes.
  std::uint32_t command_timeout_seconds = 600;
  // COMPRESS=DEFLATE (RFC 4978) when the server offers it: "auto" compresses
  // except to a loopback address (where it only costs CPU), "always", "never".
  enum class Compress { automatic, always, never };
  Compress compress = Compress::automatic;
  bool operator==(const ImapConfig&) const = default;
};

// [mailbox.caldav]: validated now, used by the CalDAV connector.
struct CaldavConfig {
  std::string url;  // https://, or http:// with allow_insecure = true
  std::string username;
  std::string password_file, token_file, token_command, credential;  // as in ImapConfig
  std::uint32_t interval_seconds = 300;
  bool allow_insecure = false;
  bool operator==(const CaldavConfig&) const = default;
};

// One [[mailbox]].
struct MailboxConfig {
  std::string name;                // unique, [a-zA-Z0-9._-]+
  std::vector<std::string> owner;  // non-empty; lowercase addresses
  std::optional<ImapConfig> imap;  // at least one of imap and caldav is set
  std::optional<CaldavConfig> caldav;
  // SIGHUP restarts a mailbox whose table changed in any key.
  bool operator==(const MailboxConfig&) const = default;
};

struct Config {
  std::string source;                         // the file name as given to the loader
  std::string store_path;                     // [store] path, or the default for root / the user
  std::string api_socket;                     // [api] socket, or the default for root / the user
  std::uint32_t api_mode = 0660;              // [api] mode, written as "0660"
  std::vector<std::uint32_t> allow_uids;      // [api] peers allowed besides owner and group
  std::vector<std::string> internal_domains;  // [identity], lowercase
  std::uint32_t backfill_days = 90, horizon_days = 30, snippet_chars = 280;  // [capture]
  bool strip_plus_tags = true;
  std::vector<std::string> block_addresses, block_domains;  // lowercase
  std::vector<MailboxConfig> mailboxes;                     // in file order; may be empty
  // Problems that do not stop the daemon ("file:line:column: ..."), e.g. a
  // password file readable by others; the daemon logs them at start.
  std::vector<std::string> warnings;
};

// Why a file was refused. `message` holds every problem found, one per line,
// in file order; each line starts with "file:line:column: " or, when there is
// no position, "file: ".
struct ConfigError {
  std::string message;
};

// Lets result<Config, ConfigError>::value() throw std::runtime_error(message)
// (tests and the top level of main only).
[[noreturn]] void throw_exception_from_error(const ConfigError& e,
                                             const boost::source_location& loc);

// What the defaults depend on, taken from the process by current(); tests pass
// their own. XDG variables that are not absolute paths are ignored, as the XDG
// Base Directory specification says; so are systemd's.
struct Environment {
  bool root = false;  // geteuid() == 0: system paths
  std::string home;   // $HOME, else the passwd entry
  std::string xdg_config_home, xdg_data_home, xdg_runtime_dir;
  std::string credentials_directory;  // $CREDENTIALS_DIRECTORY (systemd)
  // $STATE_DIRECTORY and $RUNTIME_DIRECTORY, which systemd sets for a
  // service with StateDirectory= and RuntimeDirectory=: the first directory
  // when the unit names several (a colon-separated list).
  std::string state_directory, runtime_directory;
  static Environment current();
};

// /etc/crm-capture/crm-capture.toml for root, else
// $XDG_CONFIG_HOME/crm-capture/crm-capture.toml (~/.config when unset).
std::string default_config_path(const Environment& env = Environment::current());

// The API socket when the file names none: $RUNTIME_DIRECTORY/api.sock under
// systemd's RuntimeDirectory=, else /run/crm-capture/api.sock for root, else
// $XDG_RUNTIME_DIR/crm-capture/api.sock; empty when that is unset.
std::string default_socket_path(const Environment& env = Environment::current());

// Reads and validates the file at `path`. Defaults, in order: store.path is
// $STATE_DIRECTORY/capture.db under systemd's StateDirectory=, else
// /var/lib/crm-capture/capture.db for root, else
// $XDG_DATA_HOME/crm-capture/capture.db (~/.local/share when unset); api.socket
// is default_socket_path() (an error when that is empty and the file names no
// socket).
boost::system::result<Config, ConfigError> load_config(
    const std::string& path, const Environment& env = Environment::current());

// The same on text already in memory; `name` is used in messages and as
// Config::source, and relative paths are resolved against its directory
// (the current directory when it has none).
boost::system::result<Config, ConfigError> load_config_text(
    std::string_view text, std::string_view name, const Environment& env = Environment::current());

std::string_view to_string(ImapConfig::Security s) noexcept;
std::string_view to_string(ImapConfig::Auth a) noexcept;  // "auto", "plain", ...

}  // namespace crmcap::config
