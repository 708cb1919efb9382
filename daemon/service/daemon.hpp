// SPDX-License-Identifier: Apache-2.0
// The running daemon (crm-captured without --check): the store, the capture
// thread, the local API and one supervised task per mailbox, on one
// io_context.
//
// - Each mailbox is a task of its own: its IMAP account runs on the
//   io_context (a coroutine that reconnects with backoff), its CalDAV account
//   on a worker thread of its own (libcurl blocks), each pass's sink calls on
//   the capture thread. A mailbox that fails, stalls or cannot be reached
//   holds up no other mailbox and not the API: none waits for another.
// - With many mailboxes (more than kStaggerAbove) their starts are spread,
//   kStaggerStep apart, so that hundreds of logins do not reach a server at
//   once.
// - POST /v1/sync wakes a mailbox's tasks (or every mailbox's): a pass starts
//   now, or right after the one under way; a side stopped for the user
//   (needs_user) is started again.
// - SIGHUP reads the configuration again: mailboxes added start, removed
//   ones stop, changed ones (their table, or the [identity] and [capture]
//   settings they capture with) restart once stopped, the others keep their
//   connections. A configuration that cannot be read is refused with
//   file:line and the running one stays. [store] and [api] take effect at
//   the next start only.
// - SIGTERM or SIGINT: the API stops accepting, every task stops (an IMAP
//   connection is closed at once, without LOGOUT; a CalDAV request is cut
//   short), the commits under way finish on the capture thread (a batch is
//   stored whole with its cursor, or not at all), then the process exits.
// - systemd: READY=1 once the store is open and the API listens, STATUS=
//   with a summary, WATCHDOG=1 while the loop turns, STOPPING=1 and
//   RELOADING=1; the API socket from socket activation when one is passed.
//
// This header does not include Asio.
#pragma once

#include "daemon/capture/rules.hpp"
#include "daemon/config/config.hpp"

#include <chrono>
#include <cstddef>
#include <string>

namespace crmcap::service {

inline constexpr std::size_t kStaggerAbove = 8;
inline constexpr std::chrono::milliseconds kStaggerStep{25};

struct DaemonOptions {
  std::string config_path;  // read again on SIGHUP
  config::Environment env;
  std::string version;  // for /v1/status
  // Not empty: the API socket, in place of the config's [api] socket (also
  // after a reload). crm-captured@NAME.service passes /run/crm-capture/NAME.sock:
  // only the unit knows its instance's name.
  std::string api_socket;
};

// crm-captured --once: every mailbox's IMAP and CalDAV account syncs once;
// a line per mailbox on standard output. 0, or 1 when a pass failed, 2 when
// the store cannot be opened.
int run_once(const config::Config& cfg, const capture::FreeMailDomains& free_mail,
             const DaemonOptions& options);

// crm-captured: runs until SIGTERM or SIGINT (see above). The exit status:
// 0, 1 when an IMAP account stopped for good with an error, 2 when the
// store or the API socket could not be opened.
int run_service(const config::Config& cfg, const capture::FreeMailDomains& free_mail,
                const DaemonOptions& options);

}  // namespace crmcap::service
