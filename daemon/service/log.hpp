// SPDX-License-Identifier: Apache-2.0
// The daemon's log: one line per event on standard error, each in one
// write, so that lines of several threads never cut into each other. When
// standard error is the journal ($JOURNAL_STREAM names it, as systemd sets
// it for a service whose output goes there), each line starts with the
// syslog level in angle brackets ("<3>", "<4>", "<6>"), which journald takes
// as the entry's priority and strips. Never log a secret: callers pass
// messages that name files, hosts and mailboxes, never a password or token.
#pragma once

#include <string_view>

namespace crmcap::service {

enum class Level { error = 3, warning = 4, info = 6 };

// Writes "crm-captured: " + `message` + "\n" (a "<N>" prefix first when
// standard error is the journal).
void log(Level level, std::string_view message);

// Whether standard error is the journal: $JOURNAL_STREAM is "DEVICE:INODE"
// of the stream systemd connected, and standard error is still that stream.
bool stderr_is_journal();

}  // namespace crmcap::service
