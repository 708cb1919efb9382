// SPDX-License-Identifier: Apache-2.0
// A throwaway Dovecot for tests: runs tests/servers/dovecot.sh, parses what it
// prints, and stops the server (and removes its directory) in the destructor.
// Header-only, no Asio, no GoogleTest dependency; POSIX only.
//
//   if (!crmcap::test::DovecotServer::available()) GTEST_SKIP() << "no dovecot";
//   crmcap::test::DovecotServer dovecot;          // throws std::runtime_error
//   dovecot.imap_port(); dovecot.imaps_port(); dovecot.ca_file();
//   dovecot.deliver_doveadm("INBOX", raw_message);
//   dovecot.deliver_file("Sent", raw_message);
//   dovecot.set_uid_validity("INBOX", 42);
//
// Every call that fails throws std::runtime_error with the command's output: in a
// test that is a failure with the reason, which is what a test wants.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#ifndef CRMCAP_SOURCE_DIR
#error "CRMCAP_SOURCE_DIR must name the source tree (the test targets define it)"
#endif

namespace crmcap::test {

namespace detail {

// A test process that dies without running destructors (a crash, a ctest
// timeout, SIGKILL) must not leave its server behind. The watchdog, in its
// own session so that a terminal's ^C spares it, waits for EOF on a pipe
// whose only write end this object holds, then runs `bash SCRIPT stop DIR`.
// The kernel closes the pipe however the test process ends.
class StopWatchdog {
 public:
  StopWatchdog() = default;
  StopWatchdog(const StopWatchdog&) = delete;
  StopWatchdog& operator=(const StopWatchdog&) = delete;
  ~StopWatchdog() { disarm(); }

  // Best effort: without a watchdog the fixture's destructor still stops.
  void start(const std::string& script, const std::string& dir) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    // Not the test's stdout: a harness that waits for EOF on it must not wait for us.
    const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
      setsid();
      dup2(p[0], 0);
      if (null_fd >= 0) {
        dup2(null_fd, 1);
        dup2(null_fd, 2);
      }
      close_range(3, ~0U, 0);
      execl("/bin/bash", "bash", "-c", "while read -r _; do :; done; exec bash \"$0\" stop \"$1\"",
            script.c_str(), dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(p[0]);
    if (null_fd >= 0) close(null_fd);
    if (pid < 0) {
      close(p[1]);
      return;
    }
    fd_ = p[1];
    pid_ = pid;
  }

  // Closes the pipe (once the server is stopped, the watchdog finds nothing
  // left to stop, and exits) and reaps the watchdog.
  void disarm() noexcept {
    if (fd_ < 0) return;
    close(fd_);
    fd_ = -1;
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
};

struct RunResult {
  int status = -1;  // exit code, or 128 + signal
  std::string out;  // stdout and stderr, interleaved
};

// Runs argv (no shell) with `input` on stdin and returns its exit status and
// output. File descriptors above 2 are not inherited, so a daemon started by the
// child never holds the test's sockets.
inline RunResult run(const std::vector<std::string>& argv, std::string_view input = {}) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    close_range(3, ~0U, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // A child that exits before reading its stdin must not kill the test.
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old);

  RunResult r;
  std::size_t written = 0;
  if (input.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  char buf[4096];
  for (;;) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    int n = poll(fds, in[1] >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in[1] >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in[1], input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<std::size_t>(w);
      if (w < 0 || written == input.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(out[0], buf, sizeof buf);
      if (got > 0) {
        r.out.append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        break;
      }
    }
  }
  if (in[1] >= 0) close(in[1]);
  close(out[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGPIPE, &old, nullptr);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) (s += s.empty() ? "" : " ") += a;
  return s;
}

inline RunResult run_checked(const std::vector<std::string>& argv, std::string_view input = {}) {
  RunResult r = run(argv, input);
  if (r.status != 0) {
    throw std::runtime_error(join(argv) + " failed (" + std::to_string(r.status) + "): " + r.out);
  }
  return r;
}

}  // namespace detail

class DovecotServer {
 public:
  static std::string script() { return CRMCAP_SOURCE_DIR "/tests/servers/dovecot.sh"; }

  // True when Dovecot (dovecot-imapd) and doveadm are installed.
  static bool available() {
    return access("/usr/sbin/dovecot", X_OK) == 0 && access("/usr/bin/doveadm", X_OK) == 0;
  }

  // Starts a server with users user1..user<users> (password "pw-userK") in a new
  // directory under $TMPDIR or /tmp. Throws std::runtime_error with the script's
  // output when it cannot. `flags`: more options of `dovecot.sh start`
  // (--no-notify).
  explicit DovecotServer(int users = 1, const std::vector<std::string>& flags = {}) {
    std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    std::string templ = base + "/crmcap-dovecot-XXXXXX";
    if (!mkdtemp(templ.data())) {
      throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
    }
    dir_ = templ;
    std::vector<std::string> args = {"bash", script(),  "start",
                                     dir_,   "--users", std::to_string(users)};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = detail::run(args);
    if (r.status != 0) {
      detail::run({"bash", script(), "stop", dir_});
      std::filesystem::remove_all(dir_);
      throw std::runtime_error("dovecot.sh start failed: " + r.out);
    }
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos && eq > 0) vars_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    for (const char* key : {"IMAP_PORT", "IMAPS_PORT", "CA_FILE", "MAILDIR", "PID", "CONF"}) {
      if (!vars_.count(key)) {
        stop();
        throw std::runtime_error(std::string("dovecot.sh printed no ") + key + ": " + r.out);
      }
    }
    std::istringstream names(var("IMAP_USERS"));
    for (std::string u; std::getline(names, u, ',');) users_.push_back(u);
    watchdog_.start(script(), dir_);
  }

  DovecotServer(const DovecotServer&) = delete;
  DovecotServer& operator=(const DovecotServer&) = delete;
  ~DovecotServer() { stop(); }

  // Stops the server and removes its directory; idempotent, never throws.
  void stop() noexcept {
    if (!dir_.empty()) {
      try {
        detail::run({"bash", script(), "stop", dir_});
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
      } catch (...) {
      }
      dir_.clear();
    }
    watchdog_.disarm();
  }

  // Kills the server at once and starts it again on the same ports and mail
  // (tests/servers/dovecot.sh restart). Connected clients see the connection die.
  void restart() {
    auto r = detail::run({"bash", script(), "restart", dir_});
    if (r.status != 0) throw std::runtime_error("dovecot.sh restart failed: " + r.out);
    const auto at = r.out.find("PID=");
    if (at == std::string::npos) throw std::runtime_error("dovecot.sh restart: no PID: " + r.out);
    vars_["PID"] = r.out.substr(at + 4, r.out.find('\n', at) - at - 4);
  }

  std::uint16_t imap_port() const {
    return static_cast<std::uint16_t>(std::stoi(var("IMAP_PORT")));
  }
  std::uint16_t imaps_port() const {
    return static_cast<std::uint16_t>(std::stoi(var("IMAPS_PORT")));
  }
  std::string ca_file() const { return var("CA_FILE"); }
  std::string conf() const { return var("CONF"); }
  std::string dir() const { return dir_; }
  pid_t pid() const { return static_cast<pid_t>(std::stol(var("PID"))); }
  const std::vector<std::string>& users() const { return users_; }
  std::string user() const { return users_.at(0); }
  static std::string password_of(const std::string& user) { return "pw-" + user; }
  std::string password() const { return password_of(user()); }
  // Any line the script printed (NAME=value); empty when absent.
  std::string var(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? std::string() : it->second;
  }

  // The Maildir++ root of `user` (default: the first user).
  std::string maildir(const std::string& user = {}) const {
    return dir_ + "/mail/" + (user.empty() ? this->user() : user);
  }
  // The directory holding a folder's cur/new/tmp: INBOX is the root, folder
  // "a/b" is ".a.b" (Maildir++).
  std::string folder_dir(std::string_view folder, const std::string& user = {}) const {
    if (folder == "INBOX") return maildir(user);
    std::string name(folder);
    for (auto& c : name) {
      if (c == '/') c = '.';
    }
    return maildir(user) + "/." + name;
  }

  // Runs doveadm with this server's config; returns its output; throws on failure.
  std::string doveadm(std::vector<std::string> args) const {
    args.insert(args.begin(), {"doveadm", "-c", conf()});
    return detail::run_checked(args).out;
  }

  // Delivers `message` into `folder` with `doveadm save` (as a server-side
  // delivery: indexes updated, the message is visible at once).
  void deliver_doveadm(std::string_view folder, std::string_view message,
                       const std::string& user = {}) const {
    detail::run_checked({"doveadm", "-c", conf(), "save", "-u", user.empty() ? this->user() : user,
                         "-m", std::string(folder)},
                        message);
  }

  // Delivers `message` by writing a file into the folder's new/ (tmp/ then
  // rename), owned by the mail user, as an MDA would. Dovecot notices it on its
  // next scan of the folder. The folder is created on disk if missing. Returns the
  // file's path.
  std::string deliver_file(std::string_view folder, std::string_view message,
                           const std::string& user = {}) const {
    namespace fs = std::filesystem;
    const std::string box = folder_dir(folder, user);
    for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
      const std::string d = box + sub;
      if (fs::create_directory(d)) chown_to_mail_user(d);
    }
    static std::atomic<unsigned> counter{0};
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    const std::string name = std::to_string(us / 1000000) + ".M" + std::to_string(us % 1000000) +
                             "P" + std::to_string(getpid()) + "Q" + std::to_string(++counter) +
                             ".crmcap-test";
    const std::string tmp = box + "/tmp/" + name, dst = box + "/new/" + name;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("open " + tmp + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < message.size()) {
      ssize_t w = write(fd, message.data() + done, message.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        close(fd);
        throw std::runtime_error("write " + tmp + ": " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
    close(fd);
    chown_to_mail_user(tmp);
    if (rename(tmp.c_str(), dst.c_str()) != 0) {
      throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
    }
    return dst;
  }

  // The folder's current UIDVALIDITY (doveadm mailbox status).
  std::uint32_t uid_validity(std::string_view folder, const std::string& user = {}) const {
    std::string out =
        doveadm({"-f", "flow", "mailbox", "status", "-u", user.empty() ? this->user() : user,
                 "uidvalidity", std::string(folder)});
    auto pos = out.find("uidvalidity=");
    if (pos == std::string::npos) throw std::runtime_error("no uidvalidity in: " + out);
    return static_cast<std::uint32_t>(std::stoul(out.substr(pos + 12)));
  }

  // Sets the folder's UIDVALIDITY with `doveadm mailbox update --uid-validity`.
  // Dovecot accepts it while clients are connected; a client with the folder
  // selected is not told until it selects it again.
  void set_uid_validity(std::string_view folder, std::uint32_t value,
                        const std::string& user = {}) const {
    doveadm({"mailbox", "update", "-u", user.empty() ? this->user() : user, "--uid-validity",
             std::to_string(value), std::string(folder)});
  }

  // Changes the folder's UIDVALIDITY the way a broken or rebuilt server does:
  // deletes its dovecot-uidlist and index files, so Dovecot renumbers every
  // message with a new UIDVALIDITY on its next access. Flags kept only in the
  // index are lost; those in file names stay.
  void reset_uidlist(std::string_view folder, const std::string& user = {}) const {
    namespace fs = std::filesystem;
    const std::string box = folder_dir(folder, user);
    for (const auto& e : fs::directory_iterator(box)) {
      const std::string n = e.path().filename().string();
      if (n == "dovecot-uidlist" || n.rfind("dovecot.index", 0) == 0) fs::remove(e.path());
    }
  }

 private:
  void chown_to_mail_user(const std::string& path) const {
    if (geteuid() != 0) return;
    if (chown(path.c_str(), static_cast<uid_t>(std::stoul(var("MAIL_UID"))),
              static_cast<gid_t>(std::stoul(var("MAIL_GID")))) != 0) {
      throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
    }
  }

  std::string dir_;
  std::map<std::string, std::string> vars_;
  std::vector<std::string> users_;
  detail::StopWatchdog watchdog_;
};

}  // namespace crmcap::test
