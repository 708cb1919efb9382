// SPDX-License-Identifier: Apache-2.0
// crm-captured: the capture daemon. Reads the arguments and the
// configuration; --check validates it, --once syncs every mailbox once, and
// otherwise the service runs until SIGTERM (daemon/service/daemon.hpp: the
// supervised mailbox tasks, the local API, signals and systemd).
#include "daemon/capture/rules.hpp"
#include "daemon/config/config.hpp"
#include "daemon/service/check.hpp"
#include "daemon/service/daemon.hpp"
#include "daemon/service/log.hpp"

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

using namespace crmcap;

int main(int argc, char** argv) {
  CLI::App app{"crm-captured: the crm-capture daemon"};
  app.set_version_flag("--version", "crm-captured " CRMCAP_VERSION);
  service::DaemonOptions options;
  options.env = config::Environment::current();
  options.version = CRMCAP_VERSION;
  options.config_path = config::default_config_path(options.env);
  bool once = false;
  std::string free_mail_path;
  app.add_option("--config", options.config_path, "the configuration file")->capture_default_str();
  app.add_flag("--once", once, "sync every mailbox once and exit (non-zero if any failed)");
  app.add_option("--free-mail", free_mail_path, "free-mail domain list file");
  app.add_option("--socket", options.api_socket, "the API socket, in place of [api] socket");
  bool check = false;
  app.add_flag("--check", check,
               "validate the configuration and read its secrets, then exit; no server is "
               "contacted and the store is not opened");
  CLI11_PARSE(app, argc, argv);

  auto cfg = config::load_config(options.config_path, options.env);
  if (!cfg) {
    service::log(service::Level::error, cfg.error().message);
    return 2;
  }
  for (const auto& w : cfg->warnings) service::log(service::Level::warning, "warning: " + w);
  auto free_mail = capture::FreeMailDomains::load(free_mail_path);
  if (!free_mail) {
    service::log(service::Level::error, free_mail.error());
    return 2;
  }
  if (check) {
    const auto r = service::check_config(*cfg, options.env);
    for (const auto& n : r.notes) service::log(service::Level::info, "note: " + n);
    for (const auto& e : r.errors) service::log(service::Level::error, e);
    if (!r.errors.empty()) return 2;
    std::cout << "crm-captured: " << r.summary << "\n";
    return 0;
  }
  if (once) return service::run_once(*cfg, *free_mail, options);
  return service::run_service(*cfg, *free_mail, options);
}
