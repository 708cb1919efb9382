// SPDX-License-Identifier: Apache-2.0
// Reading a mailbox's password or bearer token at connect time. The secret is
// never logged; errors name the file or command, never its output.
#pragma once

#include <boost/system/result.hpp>

#include <string>

namespace crmcap::service {

struct SecretSource {
  std::string password_file, token_file, token_command, credential;
  std::string credentials_directory;  // $CREDENTIALS_DIRECTORY, for `credential`
};

struct SecretError {
  std::string message;
};

// Reads the one configured source; trailing CR/LF are dropped. An empty
// secret is an error.
boost::system::result<std::string, SecretError> read_secret(const SecretSource& source);

}  // namespace crmcap::service
