// SPDX-License-Identifier: Apache-2.0
// crm-capture: the command-line client and offline tools.
#include "connectors/maildir/maildir.hpp"
#include "daemon/api/json.hpp"
#include "daemon/capture/capture.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "daemon/capture/directory_import.hpp"
#include "daemon/cli/ingest.hpp"
#include "daemon/cli/remote.hpp"
#include "daemon/config/config.hpp"
#include "parsers/calendar/calendar.hpp"
#include "store/store.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;
using namespace crmcap;

namespace {

std::string default_store_path() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) {
    return std::string(x) + "/crm-capture/capture.db";
  }
  if (const char* h = std::getenv("HOME"); h && *h) {
    return std::string(h) + "/.local/share/crm-capture/capture.db";
  }
  return "capture.db";
}

std::unique_ptr<store::Store> open_store(const std::string& path) {
  if (path != ":memory:") {
    std::error_code ec;
    if (auto parent = fs::path(path).parent_path(); !parent.empty()) {
      fs::create_directories(parent, ec);
    }
  }
  auto s = store::Store::open(path);
  if (!s) {
    std::cerr << "crm-capture: " << s.error().message << "\n";
    std::exit(1);
  }
  return std::move(*s);
}

std::string cut(std::string_view s, std::size_t n) {
  // Cut on a UTF-8 boundary.
  if (s.size() <= n) return std::string(s);
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "…";
}

// `activities`: one JSON object per line, or a table.
void print_activities(const std::vector<boost::json::object>& items, bool json) {
  if (json) {
    for (const auto& o : items) std::cout << boost::json::serialize(o) << "\n";
    return;
  }
  const auto text = [](const boost::json::value& v) {
    return v.is_string() ? std::string(v.as_string()) : std::string();
  };
  std::printf("%-20s %-8s %-40s %-16s %-10s\n", "OCCURRED (UTC)", "DIR", "SUBJECT", "CONTACTS",
              "OPPORTUNITY");
  for (const auto& o : items) {
    std::string contacts;
    for (const auto& c : o.at("contact_ids").as_array()) {
      contacts += (contacts.empty() ? "" : ",") + text(c);
    }
    std::printf("%-20s %-8s %-40s %-16s %-10s\n", text(o.at("occurred_at")).c_str(),
                text(o.at("direction")).c_str(), cut(text(o.at("subject")), 40).c_str(),
                cut(contacts, 16).c_str(), text(o.at("opportunity_id")).c_str());
  }
}

// Makes `o`, a vector option, take exactly one value per use (`--owner a
// --owner b`), keeping every use. Left as CLI11 2.1 builds it, a vector option
// takes every following word that is not an option, so the paths after
// `--internal-domain x.com` were read as domains. expected(1) alone does not
// stop that (the vector's allow_extra_args stays on), and allow_extra_args(false)
// with expected(1) alone refuses a second use: all three are needed.
CLI::Option* one_value_per_use(CLI::Option* o) {
  return o->expected(1)->allow_extra_args(false)->multi_option_policy(
      CLI::MultiOptionPolicy::TakeAll);
}

struct CaptureOptions {
  std::vector<std::string> owners, internal_domains, block_addresses, block_domains;
  std::string free_mail_file;
  bool keep_plus_tags = false;
  std::size_t snippet_chars = 280;
  int backfill_days = 90, horizon_days = 30;

  void add_to(CLI::App* app, bool owner_required) {
    auto* o = one_value_per_use(
        app->add_option("--owner", owners, "the mailbox owner's address (repeatable)"));
    if (owner_required) o->required();
    one_value_per_use(
        app->add_option("--internal-domain", internal_domains,
                        "a domain of the owner's company (repeatable; sub-domains count)"));
    one_value_per_use(app->add_option("--block-address", block_addresses,
                                      "never capture this address (repeatable)"));
    one_value_per_use(
        app->add_option("--block-domain", block_domains, "never capture this domain (repeatable)"));
    app->add_option("--free-mail", free_mail_file, "free-mail domain list file");
    app->add_flag("--keep-plus-tags", keep_plus_tags, "do not strip +tags from addresses");
    app->add_option("--backfill-days", backfill_days,
                    "expand recurring meetings from this many days ago (default 90)")
        ->check(CLI::Range(0, 36500));
    app->add_option("--horizon-days", horizon_days,
                    "expand recurring meetings up to this many days ahead (default 30)")
        ->check(CLI::Range(0, 36500));
    app->add_option("--snippet-chars", snippet_chars, "snippet length in characters")
        ->check(CLI::Range(1, 100000));
  }

  capture::Settings settings() const {
    capture::Settings s;
    s.owner_addresses = owners;
    s.internal_domains = internal_domains;
    s.block_addresses = block_addresses;
    s.block_domains = block_domains;
    s.strip_plus_tags = !keep_plus_tags;
    s.snippet_chars = snippet_chars;
    s.backfill_days = backfill_days;
    s.horizon_days = horizon_days;
    return s;
  }
};

std::string addresses(const std::vector<mail::Address>& v) {
  std::string out;
  for (const auto& a : v) {
    if (!out.empty()) out += ", ";
    out += a.name.empty() ? a.address : a.name + " <" + a.address + ">";
  }
  return out;
}

void print_decision(const capture::Outcome& o) {
  std::cout << "Decision\n";
  for (const auto& s : o.steps) std::cout << "  " << s << "\n";
  std::cout << "Result: " << store::to_string(o.activity.status);
  if (!o.activity.rule.empty()) std::cout << " (" << o.activity.rule << ")";
  std::cout << "\n  " << o.activity.reason << "\n";
  // An iMIP message's meetings (rule 6), each as it would be stored.
  for (const auto& m : o.meetings) {
    std::cout << "Meeting " << m.source_key << ": " << store::to_string(m.status);
    if (!m.rule.empty()) std::cout << " (" << m.rule << ")";
    std::cout << "\n  " << m.reason << "\n";
  }
}

// `explain` of a calendar file: each occurrence in the window and each
// unreadable event, with its decision. Exit status 1 when the file is no
// calendar at all.
int explain_calendar(capture::Pipeline& pipeline, const std::string& raw,
                     const capture::MessageSource& src) {
  auto cal = ical::parse(raw, pipeline.calendar_options(std::time(nullptr)));
  if (!cal) {
    std::cerr << "crm-capture: " << src.ref.path << ": " << cal.error().message << "\n";
    return 1;
  }
  for (const auto& w : cal->warnings) std::cout << "note: " << w << "\n";
  for (const auto& m : cal->meetings) {
    const auto o = pipeline.decide_meeting(m, src, cal->warnings);
    std::cout << "Meeting " << o.activity.source_key << "\n"
              << "  summary:     " << m.summary << "\n"
              << "  starts:      " << (m.all_day ? m.start.date : m.start.utc)
              << (m.zone.empty() ? "" : " (" + m.zone + ")") << "\n"
              << "  ends:        " << (m.all_day ? m.end.date : m.end.utc) << "\n";
    print_decision(o);
  }
  for (const auto& f : cal->failed) {
    print_decision(pipeline.failed_event(f, src.ref.path, src, cal->warnings));
  }
  return 0;
}

// `directory push`: the edits of a CSV file (`args`: KIND FILE) or of JSON
// lines (FILE), sent to the daemon on `socket`, or applied to the store at
// `store_path` when one is given.
int push(const std::vector<std::string>& args, const CaptureOptions& opts,
         const std::string& store_path, const std::string& socket) {
  const std::string& file = args.back();
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "crm-capture: " << file << ": cannot read the file\n";
    return 1;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::vector<store::DirectoryEdit> edits;
  if (args.size() == 2) {
    const auto kind = capture::import_kind_from_string(args.front());
    if (!kind) {
      std::cerr << "crm-capture: " << args.front()
                << ": expected companies, contacts or opportunities\n";
      return 2;
    }
    auto rows = capture::directory_csv_edits(*kind, ss.str(), file);
    if (!rows) {
      std::cerr << "crm-capture: " << rows.error().message << "\n";
      return 1;
    }
    edits = std::move(*rows);
  } else {
    auto lines = api::edits_from_lines(ss.str());
    if (!lines) {
      std::cerr << "crm-capture: " << file << ": " << lines.error() << "\n";
      return 1;
    }
    edits = std::move(*lines);
  }
  if (store_path.empty()) {
    std::string body;
    for (const auto& e : edits) body += api::edit_line(e) + "\n";
    auto r = cli::remote_push(socket, std::move(body));
    if (!r) {
      std::cerr << "crm-capture: " << file << ": " << r.error().message
                << (r.error().unreachable ? " (no daemon answers; --store applies it offline)" : "")
                << "\n";
      return 1;
    }
    std::cout << cli::describe_push(*r);
    return 0;
  }
  auto free_mail = capture::FreeMailDomains::load(opts.free_mail_file);
  if (!free_mail) {
    std::cerr << "crm-capture: " << free_mail.error() << "\n";
    return 1;
  }
  auto st = open_store(store_path);
  capture::DirectoryEditor editor(*st, {}, opts.settings(), *free_mail);
  auto r = editor.apply(edits, "by directory push", std::time(nullptr));
  if (!r) {
    std::cerr << "crm-capture: " << r.error().message << "\n";
    return 1;
  }
  std::cout << cli::describe_push(*r);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"crm-capture: turn mail into CRM activities (offline tools and client)"};
  app.set_version_flag("--version", "crm-capture " CRMCAP_VERSION);
  app.require_subcommand(1);
  std::string store_path = default_store_path();
  auto* store_opt =
      app.add_option("--store", store_path, "the store file (offline: no daemon asked)")
          ->capture_default_str();
  std::string socket_path = config::default_socket_path();
  app.add_option("--socket", socket_path, "a running daemon's API socket ([api] socket)")
      ->capture_default_str();

  // status
  auto* status_cmd = app.add_subcommand("status", "ask the running daemon how it is doing");
  bool status_json = false;
  status_cmd->add_flag("--json", status_json, "the daemon's answer as it is (GET /v1/status)");
  // sync
  auto* sync_cmd = app.add_subcommand("sync", "ask the running daemon to sync now");
  std::string sync_mailbox;
  sync_cmd->add_option("--mailbox", sync_mailbox, "only this mailbox (default: every mailbox)");

  // import
  auto* import_cmd = app.add_subcommand("import", "import the CRM directory from a CSV file");
  std::string import_kind, import_file;
  bool replace = false;
  import_cmd->add_option("kind", import_kind, "companies, contacts or opportunities")
      ->required()
      ->check(CLI::IsMember({"companies", "contacts", "opportunities"}));
  import_cmd->add_option("file", import_file, "the CSV file")->required();
  import_cmd->add_flag("--replace", replace, "also remove rows absent from the file");

  // directory stats
  auto* dir_cmd = app.add_subcommand("directory", "the CRM directory");
  dir_cmd->require_subcommand(1);
  auto* stats_cmd = dir_cmd->add_subcommand("stats", "print counts");
  auto* push_cmd = dir_cmd->add_subcommand(
      "push",
      "apply a CSV file (KIND FILE) or JSON lines (FILE) in one transaction, re-matching the "
      "activities it changes: through the running daemon, or with --store to the store file");
  std::vector<std::string> push_args;
  push_cmd->add_option("args", push_args, "[companies|contacts|opportunities] FILE")
      ->required()
      ->expected(1, 2);
  CaptureOptions push_opts;  // offline: the settings activities are decided again with
  push_opts.add_to(push_cmd, false);

  // ingest
  auto* ingest_cmd = app.add_subcommand("ingest", "capture .eml files and Maildirs");
  CaptureOptions ingest_opts;
  ingest_opts.add_to(ingest_cmd, true);
  std::vector<std::string> ingest_paths;
  ingest_cmd->add_option("path", ingest_paths, ".eml file, Maildir or folder of Maildirs")
      ->required();

  // activities
  auto* act_cmd = app.add_subcommand("activities", "list captured activities");
  bool act_json = false;
  store::ActivityFilter filter;
  act_cmd->add_flag("--json", act_json, "one JSON object per line");
  act_cmd->add_option("--contact", filter.contact_id, "only this contact's");
  act_cmd->add_option("--company", filter.company_id, "only this company's");
  act_cmd->add_option("--opportunity", filter.opportunity_id, "only this opportunity's");
  act_cmd->add_option("--since", filter.since, "ISO 8601 UTC, inclusive");
  act_cmd->add_option("--limit", filter.limit, "at most this many");

  // decisions
  auto* dec_cmd = app.add_subcommand("decisions", "every message seen and what was decided");
  bool dec_json = false;
  dec_cmd->add_flag("--json", dec_json, "one JSON object per line");

  // explain
  auto* explain_cmd = app.add_subcommand(
      "explain", "show what parsing finds and what would be decided, without writing");
  CaptureOptions explain_opts;
  explain_opts.add_to(explain_cmd, false);
  std::string explain_file, explain_folder;
  explain_cmd->add_option("file", explain_file, "an .eml or .ics file")
      ->required()
      ->check(CLI::ExistingFile);
  explain_cmd->add_option("--folder", explain_folder, "decide as if seen in this folder");

  CLI11_PARSE(app, argc, argv);

  if (*import_cmd) {
    auto st = open_store(store_path);
    auto r = capture::import_directory_csv(*st, *capture::import_kind_from_string(import_kind),
                                           import_file, replace);
    if (!r) {
      std::cerr << "crm-capture: " << r.error().message << "\n";
      return 1;
    }
    std::cout << "imported " << *r << " " << import_kind << " from " << import_file << "\n";
    return 0;
  }
  if (*push_cmd)
    return push(push_args, push_opts, store_opt->count() > 0 ? store_path : "", socket_path);
  if (*stats_cmd) {
    auto st = open_store(store_path);
    auto s = st->stats();
    if (!s) {
      std::cerr << "crm-capture: " << s.error().message << "\n";
      return 1;
    }
    std::cout << "companies " << s->companies << " (domains " << s->company_domains << ")\n"
              << "contacts " << s->contacts << " (addresses " << s->contact_emails << ")\n"
              << "opportunities " << s->opportunities << " (open " << s->open_opportunities
              << ", contact roles " << s->opportunity_contacts << ")\n";
    return 0;
  }
  if (*ingest_cmd || *explain_cmd) {
    const CaptureOptions& opts = *ingest_cmd ? ingest_opts : explain_opts;
    auto free_mail = capture::FreeMailDomains::load(opts.free_mail_file);
    if (!free_mail) {
      std::cerr << "crm-capture: " << free_mail.error() << "\n";
      return 1;
    }
    if (*ingest_cmd) {
      auto found = maildir::find_messages(ingest_paths);
      if (!found) {
        std::cerr << "crm-capture: " << found.error() << "\n";
        return 1;
      }
      auto st = open_store(store_path);
      capture::Pipeline pipeline(*st, *st, opts.settings(), std::move(*free_mail));
      auto sum = cli::ingest(*found, pipeline, *st);
      if (!sum) {
        std::cerr << "crm-capture: " << sum.error().message << "\n";
        return 1;
      }
      std::cout << sum->line() << "\n";
      return 0;
    }
    // explain: read the store if it exists, never create or write it.
    std::unique_ptr<store::Store> st;
    std::error_code ec;
    if (fs::exists(store_path, ec)) {
      st = open_store(store_path);
    } else {
      std::cout << "(no store at " << store_path << ": matching against an empty directory)\n";
      st = open_store(":memory:");
    }
    std::ifstream in(explain_file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    capture::Pipeline pipeline(*st, *st, opts.settings(), std::move(*free_mail));
    capture::MessageSource src{{"local", explain_folder, 0, 0, explain_file}, 0};
    src.received_at = maildir::mtime_of(explain_file);
    if (explain_file.ends_with(".ics") || explain_file.ends_with(".ICS")) {
      return explain_calendar(pipeline, ss.str(), src);
    }
    const auto o = pipeline.process(ss.str(), src);
    if (o.message) {
      const auto& m = *o.message;
      std::cout << "Parsed\n"
                << "  message-id:  " << m.message_id
                << (m.message_id_synthetic ? " (synthetic)" : "")
                << "\n  date:        " << capture::iso_utc(m.date)
                << (m.date_fallback ? " (Date unreadable: receive time used)" : "") << "\n"
                << "  from:        " << addresses(m.from) << "\n"
                << "  to:          " << addresses(m.to) << "\n";
      if (!m.cc.empty()) std::cout << "  cc:          " << addresses(m.cc) << "\n";
      if (!m.bcc.empty()) std::cout << "  bcc:         " << addresses(m.bcc) << "\n";
      std::cout << "  subject:     " << m.subject << "\n"
                << "  thread key:  " << o.activity.thread_key << "\n"
                << "  snippet:     " << m.snippet << "\n";
      for (const auto& att : m.attachments) {
        std::cout << "  attachment:  " << att.filename << " (" << att.media_type << ", " << att.size
                  << " bytes)\n";
      }
      for (const auto& c : m.calendar_parts) {
        std::cout << "  calendar:    " << c.method << " " << c.uid << "\n";
      }
    }
    print_decision(o);
    return 0;
  }
  if (*sync_cmd) {
    auto asked = cli::remote_sync(socket_path, sync_mailbox);
    if (!asked) {
      std::cerr << "crm-capture: " << (asked.error().unreachable ? "no answer from a daemon: " : "")
                << asked.error().message << "\n";
      return 1;
    }
    std::cout << "sync started: " << (sync_mailbox.empty() ? "every mailbox" : sync_mailbox)
              << "\n";
    return 0;
  }
  if (*status_cmd) {
    auto body = cli::remote_status(socket_path);
    if (!body) {
      std::cerr << "crm-capture: no answer from a daemon: " << body.error().message << "\n";
      return 1;
    }
    std::cout << (status_json ? *body + "\n" : cli::describe_status(*body));
    return 0;
  }
  if (*act_cmd && store_opt->count() == 0 && !socket_path.empty()) {
    // A running daemon answers for its store; without one, the store is read
    // directly, as with --store.
    auto items = cli::remote_activities(socket_path, filter);
    if (items) {
      print_activities(*items, act_json);
      return 0;
    }
    if (!items.error().unreachable) {
      std::cerr << "crm-capture: " << items.error().message << "\n";
      return 1;
    }
  }
  if (*act_cmd || *dec_cmd) {
    auto st = open_store(store_path);
    if (*act_cmd) filter.statuses = {store::DecisionStatus::captured};
    auto rows = st->list(*act_cmd ? filter : store::ActivityFilter{});
    if (!rows) {
      std::cerr << "crm-capture: " << rows.error().message << "\n";
      return 1;
    }
    if (*act_cmd) {
      const std::int64_t now = std::time(nullptr);
      std::vector<boost::json::object> items;
      items.reserve(rows->size());
      std::string text;
      for (const auto& a : *rows) {
        // The API's writer, read back for the table (print_activities).
        text.clear();
        api::append_activity_json(text, a, now);
        items.push_back(boost::json::parse(text).as_object());
      }
      print_activities(items, act_json);
    } else {
      for (const auto& a : *rows) {
        for (const auto& s : a.sources) {
          if (dec_json) {
            std::string line;
            api::append_decision_json(line, a, s);
            std::cout << line << "\n";
          } else {
            std::cout << a.occurred_at << "  " << store::to_string(a.status) << "  "
                      << (s.folder.empty() ? s.path : s.folder) << "  " << a.message_id
                      << (s.removed_at.empty()
                              ? ""
                              : "  (gone from the server since " + s.removed_at + ")")
                      << "\n    " << a.reason << "\n";
          }
        }
      }
    }
    return 0;
  }
  return 0;
}
