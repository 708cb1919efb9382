// SPDX-License-Identifier: Apache-2.0
// `crm-captured --check`: what IT runs before enabling an instance. It takes a
// configuration already loaded (so parse errors were refused with file:line by
// config::load_config) and checks what loading does not: that every mailbox's
// secret can be read now. It never connects to a server, never runs a
// token_command (that would reach the token issuer) and never opens the store.
#pragma once

#include "daemon/config/config.hpp"

#include <string>
#include <vector>

namespace crmcap::service {

struct CheckResult {
  // One problem per entry, each "file: mailbox NAME: imap|caldav: what"; empty
  // when the configuration can be used.
  std::vector<std::string> errors;
  // Secrets not checked, and why (a token_command, or a credential while
  // $CREDENTIALS_DIRECTORY is unset); they do not fail the check.
  std::vector<std::string> notes;
  // One line: "FILE: OK: N mailbox(es) (I IMAP, C CalDAV), S secret(s)
  // readable, store PATH"; set when errors is empty.
  std::string summary;
};

// Reads each configured password_file, token_file and credential (the value
// is dropped at once, never printed). `env` gives $CREDENTIALS_DIRECTORY.
CheckResult check_config(const config::Config& cfg, const config::Environment& env);

}  // namespace crmcap::service
