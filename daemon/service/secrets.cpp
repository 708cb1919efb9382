// SPDX-License-Identifier: Apache-2.0
#include "daemon/service/secrets.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <sys/wait.h>

namespace crmcap::service {

namespace {

boost::system::result<std::string, SecretError> finish(std::string s, const std::string& what) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) return SecretError{what + " is empty"};
  return boost::system::result<std::string, SecretError>(boost::system::in_place_value,
                                                         std::move(s));
}

boost::system::result<std::string, SecretError> read_file(const std::string& path,
                                                          const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return SecretError{"cannot read " + what + " " + path + ": " + std::strerror(errno)};
  std::ostringstream ss;
  ss << in.rdbuf();
  return finish(std::move(ss).str(), what + " " + path);
}

}  // namespace

boost::system::result<std::string, SecretError> read_secret(const SecretSource& s) {
  if (!s.password_file.empty()) return read_file(s.password_file, "password file");
  if (!s.token_file.empty()) return read_file(s.token_file, "token file");
  if (!s.credential.empty()) {
    if (s.credentials_directory.empty()) {
      return SecretError{"credential " + s.credential +
                         " is configured but $CREDENTIALS_DIRECTORY is not set"};
    }
    return read_file(s.credentials_directory + "/" + s.credential, "credential");
  }
  if (!s.token_command.empty()) {
    FILE* p = ::popen(s.token_command.c_str(), "r");
    if (!p) return SecretError{"cannot run token_command: " + std::string(std::strerror(errno))};
    std::string out;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < (1u << 20)) {
      out.append(buf, n);
    }
    const int status = ::pclose(p);
    if (status != 0) {
      return SecretError{"token_command failed (exit status " +
                         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")"};
    }
    return finish(std::move(out), "the output of token_command");
  }
  return SecretError{"no password_file, token_file, token_command or credential configured"};
}

}  // namespace crmcap::service
