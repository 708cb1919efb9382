// SPDX-License-Identifier: Apache-2.0
// A throwaway Radicale 3 for tests: runs tests/servers/radicale.sh, parses what
// it prints, and stops the server (and removes its directory) in the
// destructor. Header-only, no GoogleTest dependency; POSIX only. Its helpers
// talk to the server through crmcap::caldav::Transport, so a test that uses
// them links crmcap_connectors.
//
//   if (!crmcap::test::RadicaleServer::available()) GTEST_SKIP() << "no radicale";
//   crmcap::test::RadicaleServer dav;               // throws std::runtime_error
//   crmcap::caldav::Transport t(dav.transport_options());
//   std::string cal = dav.make_calendar("work");    // URL of /user1/work/
//   std::string etag = dav.put_event("work", "a.ics", RadicaleServer::event("uid-a", "Call"));
//   dav.delete_event("work", "a.ics");
//
// Every call that fails throws std::runtime_error with the reason (the script's
// output, or the server's status and body).
#pragma once

#include <fcntl.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "connectors/caldav/transport.hpp"
// For crmcap::test::detail::run (runs a command, collects its output).
#include "tests/servers/dovecot_fixture.hpp"

namespace crmcap::test {

class RadicaleServer {
 public:
  static std::string script() { return CRMCAP_SOURCE_DIR "/tests/servers/radicale.sh"; }

  // True when Radicale (Debian package radicale) is installed.
  static bool available() { return access("/usr/bin/radicale", X_OK) == 0; }

  // Starts a server with one user (user1, password "pw-user1") in a new
  // directory under $TMPDIR or /tmp: plain HTTP on 127.0.0.1, or with `tls`
  // HTTPS as https://localhost:PORT with a certificate from ca_file().
  explicit RadicaleServer(bool tls = false) {
    std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    std::string templ = base + "/crmcap-radicale-XXXXXX";
    if (!mkdtemp(templ.data())) {
      throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
    }
    dir_ = templ;
    std::vector<std::string> argv = {"bash", script(), "start", dir_};
    if (tls) argv.push_back("--tls");
    auto r = detail::run(argv);
    if (r.status != 0) {
      detail::run({"bash", script(), "stop", dir_});
      std::filesystem::remove_all(dir_);
      dir_.clear();
      throw std::runtime_error("radicale.sh start failed: " + r.out);
    }
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos && eq > 0) vars_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    for (const char* key : {"PORT", "URL", "PID", "DAV_USER", "DAV_PASSWORD"}) {
      if (!vars_.count(key)) {
        stop();
        throw std::runtime_error(std::string("radicale.sh printed no ") + key + ": " + r.out);
      }
    }
    watchdog_.start(script(), dir_);
    transport_ = std::make_unique<caldav::Transport>(transport_options());
  }

  RadicaleServer(const RadicaleServer&) = delete;
  RadicaleServer& operator=(const RadicaleServer&) = delete;
  ~RadicaleServer() { stop(); }

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

  std::uint16_t port() const { return static_cast<std::uint16_t>(std::stoi(var("PORT"))); }
  // The server root, without a trailing slash: "http://127.0.0.1:PORT", or
  // "https://localhost:PORT" with TLS.
  std::string url() const { return var("URL"); }
  std::string user() const { return var("DAV_USER"); }
  std::string password() const { return var("DAV_PASSWORD"); }
  std::string ca_file() const { return var("CA_FILE"); }  // empty without TLS
  std::string dir() const { return dir_; }
  std::string log() const { return var("LOG"); }
  pid_t pid() const { return static_cast<pid_t>(std::stol(var("PID"))); }
  // Any line the script printed (NAME=value); empty when absent.
  std::string var(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? std::string() : it->second;
  }

  // Options for a transport that talks to this server as user(): Basic auth;
  // allow_insecure for plain HTTP; ca_file() with TLS. Short timeouts: the
  // server is on loopback.
  caldav::TransportOptions transport_options() const {
    caldav::TransportOptions o;
    o.auth = caldav::TransportOptions::Auth::basic;
    o.username = user();
    o.password = password();
    o.ca_file = ca_file();
    o.allow_insecure = ca_file().empty();
    o.connect_timeout = std::chrono::seconds(10);
    o.total_timeout = std::chrono::seconds(60);
    o.low_speed_time = std::chrono::seconds(30);
    return o;
  }

  // The path and URL of the user's collection `calendar` (trailing slash).
  std::string calendar_path(std::string_view calendar) const {
    return "/" + user() + "/" + std::string(calendar) + "/";
  }
  std::string calendar_url(std::string_view calendar) const {
    return url() + calendar_path(calendar);
  }
  std::string event_url(std::string_view calendar, std::string_view file) const {
    return calendar_url(calendar) + std::string(file);
  }

  // Creates the calendar collection `calendar` with MKCALENDAR (and a
  // displayname, when given). Returns its URL. Throws unless 201 Created.
  std::string make_calendar(std::string_view calendar, std::string_view display_name = {}) {
    std::string body;
    if (!display_name.empty()) {
      body =
          "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
          "<C:mkcalendar xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
          "<D:set><D:prop><D:displayname>" +
          xml_escape(display_name) + "</D:displayname></D:prop></D:set></C:mkcalendar>";
    }
    std::vector<caldav::Header> headers;
    if (!body.empty()) headers.push_back({"Content-Type", "application/xml; charset=utf-8"});
    const std::string u = calendar_url(calendar);
    expect(request("MKCALENDAR", u, std::move(headers), std::move(body)), {201}, "MKCALENDAR", u);
    return u;
  }

  // Stores `ics` (an iCalendar object) as `file` in `calendar`, creating or
  // replacing it. Returns the ETag the server gave it. Throws unless 201 or 204.
  std::string put_event(std::string_view calendar, std::string_view file, std::string_view ics) {
    const std::string u = event_url(calendar, file);
    auto r =
        request("PUT", u, {{"Content-Type", "text/calendar; charset=utf-8"}}, std::string(ics));
    expect(r, {201, 204}, "PUT", u);
    for (const auto& h : r.headers) {
      if (strcasecmp(h.name.c_str(), "ETag") == 0) return h.value;
    }
    return {};
  }

  // Deletes `file` from `calendar`. Throws unless 200 or 204.
  void delete_event(std::string_view calendar, std::string_view file) {
    const std::string u = event_url(calendar, file);
    expect(request("DELETE", u, {}, {}), {200, 204}, "DELETE", u);
  }

  // A minimal iCalendar object with one VEVENT (times in UTC, as
  // "20261201T100000Z"), CRLF line ends.
  static std::string event(std::string_view uid, std::string_view summary,
                           std::string_view start = "20261201T100000Z",
                           std::string_view end = "20261201T110000Z") {
    std::string s;
    for (std::string_view line :
         {std::string_view("BEGIN:VCALENDAR"), std::string_view("VERSION:2.0"),
          std::string_view("PRODID:-//crm-capture//tests//EN"), std::string_view("BEGIN:VEVENT")}) {
      (s += line) += "\r\n";
    }
    ((s += "UID:") += uid) += "\r\n";
    s += "DTSTAMP:20260101T000000Z\r\n";
    ((s += "DTSTART:") += start) += "\r\n";
    ((s += "DTEND:") += end) += "\r\n";
    ((s += "SUMMARY:") += summary) += "\r\n";
    s += "END:VEVENT\r\nEND:VCALENDAR\r\n";
    return s;
  }

  // One request through the fixture's own transport; throws on a transport error.
  caldav::HttpResponse request(std::string method, std::string url,
                               std::vector<caldav::Header> headers, std::string body) {
    auto r = transport_->perform(
        {std::move(method), std::move(url), std::move(headers), std::move(body)});
    if (!r) throw std::runtime_error("radicale fixture: " + r.error().message);
    return std::move(*r);
  }

 private:
  static void expect(const caldav::HttpResponse& r, std::initializer_list<int> ok,
                     std::string_view what, const std::string& url) {
    for (int s : ok) {
      if (r.status == s) return;
    }
    throw std::runtime_error("radicale fixture: " + std::string(what) + " " + url + " answered " +
                             std::to_string(r.status) + ": " + r.body.substr(0, 500));
  }

  static std::string xml_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
      switch (c) {
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '&':
          out += "&amp;";
          break;
        case '"':
          out += "&quot;";
          break;
        default:
          out += c;
      }
    }
    return out;
  }

  std::string dir_;
  std::map<std::string, std::string> vars_;
  detail::StopWatchdog watchdog_;
  std::unique_ptr<caldav::Transport> transport_;
};

}  // namespace crmcap::test
