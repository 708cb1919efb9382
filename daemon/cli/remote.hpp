// SPDX-License-Identifier: Apache-2.0
// crm-capture as a client of a running daemon's local API (daemon/api):
// `status`, `directory push`, and `activities` when no --store is given and a
// daemon answers.
#pragma once

#include "daemon/api/client.hpp"
#include "daemon/capture/directory_edit.hpp"
#include "store/store.hpp"

#include <boost/json/fwd.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <vector>

namespace crmcap::cli {

// Every activity `filter` selects (captured only), oldest first as the
// offline listing gives them, read page by page from the API on `socket`;
// filter.limit, when set, keeps the oldest that many. The objects are the
// API's, the same as `activities --json` prints offline.
boost::system::result<std::vector<boost::json::object>, api::ClientError> remote_activities(
    const std::string& socket, const store::ActivityFilter& filter);

// GET /v1/status: the JSON body, as the daemon gave it.
boost::system::result<std::string, api::ClientError> remote_status(const std::string& socket);

// POST /v1/directory with a batch of directory edits as JSON lines (one
// transaction in the daemon): what the daemon did (its DirectoryResult).
boost::system::result<capture::DirectoryReport, api::ClientError> remote_push(
    const std::string& socket, std::string lines);

// "created 1, changed 0, removed 0; re-matched 2 activities"
std::string describe_push(const capture::DirectoryReport& r);

// POST /v1/sync (?mailbox= when `mailbox` is not empty): the daemon starts
// a pass of that mailbox, or of every mailbox, now. An unknown mailbox is
// the daemon's 404, as a ClientError naming it.
boost::system::result<void, api::ClientError> remote_sync(const std::string& socket,
                                                          const std::string& mailbox);

// /v1/status for people: the daemon, its store, then a line per mailbox side.
std::string describe_status(const std::string& status_json);

}  // namespace crmcap::cli
