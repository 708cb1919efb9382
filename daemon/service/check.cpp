// SPDX-License-Identifier: Apache-2.0
#include "daemon/service/check.hpp"

#include "daemon/service/secrets.hpp"

namespace crmcap::service {

namespace {

std::string count(std::size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Checks one table's secret; true when it was read.
bool check_secret(const config::Config& cfg, const std::string& mailbox, const std::string& table,
                  const SecretSource& src, CheckResult& out) {
  const std::string where = cfg.source + ": mailbox " + mailbox + ": " + table + ": ";
  if (!src.token_command.empty()) {
    out.notes.push_back(where + "token_command not run (it would reach the token issuer)");
    return false;
  }
  if (!src.credential.empty() && src.credentials_directory.empty()) {
    out.notes.push_back(where + "credential " + src.credential +
                        " not checked ($CREDENTIALS_DIRECTORY is not set)");
    return false;
  }
  auto secret = read_secret(src);
  if (!secret) {
    out.errors.push_back(where + secret.error().message);
    return false;
  }
  return true;
}

}  // namespace

CheckResult check_config(const config::Config& cfg, const config::Environment& env) {
  CheckResult out;
  std::size_t imap = 0, caldav = 0, read = 0;
  for (const auto& mb : cfg.mailboxes) {
    if (const auto& c = mb.imap) {
      ++imap;
      read += check_secret(cfg, mb.name, "imap",
                           {c->password_file, c->token_file, c->token_command, c->credential,
                            env.credentials_directory},
                           out);
    }
    if (const auto& c = mb.caldav) {
      ++caldav;
      read += check_secret(cfg, mb.name, "caldav",
                           {c->password_file, c->token_file, c->token_command, c->credential,
                            env.credentials_directory},
                           out);
    }
  }
  // As at start: a configuration without a mailbox does not run.
  if (cfg.mailboxes.empty()) {
    out.errors.push_back(cfg.source +
                         ": no [[mailbox]] with an [mailbox.imap] or [mailbox.caldav] table");
  }
  if (out.errors.empty()) {
    out.summary = cfg.source + ": OK: " + count(cfg.mailboxes.size(), "mailbox", "mailboxes") +
                  " (" + std::to_string(imap) + " IMAP, " + std::to_string(caldav) + " CalDAV), " +
                  count(read, "secret", "secrets") + " readable, store " + cfg.store_path;
  }
  return out;
}

}  // namespace crmcap::service
