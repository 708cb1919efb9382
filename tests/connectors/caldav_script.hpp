// SPDX-License-Identifier: Apache-2.0
// The scripted-exchange driver shared by the CalDAV state machine tests: a
// script lists the requests expected, with the response to each.
#pragma once

#include "connectors/caldav/caldav.hpp"
#include "connectors/caldav/multistatus.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace crmcap::caldav::test {

struct Exchange {
  std::string method;
  std::string url;
  std::optional<std::string> depth;   // the Depth header expected (nullopt: none)
  std::vector<std::string> body_has;  // substrings the request body must hold
  HttpResponse response;
};

struct Run {
  Action last;
  std::vector<HttpRequest> requests;
};

// Drives `fsm` through `script`. With `fail_at`, the transport fails that
// request (0-based) instead of answering it.
template <class Fsm>
inline Run drive(Fsm& fsm, const std::vector<Exchange>& script,
                 std::optional<std::size_t> fail_at = std::nullopt) {
  Run run;
  Action a = fsm.resume({});
  for (std::size_t i = 0; a.kind == Action::Kind::send; ++i) {
    run.requests.push_back(a.request);
    if (i >= script.size() || i > 1000) {
      ADD_FAILURE() << "unexpected request " << i << ": " << a.request.method << " "
                    << a.request.url << "\n"
                    << a.request.body;
      break;
    }
    const Exchange& ex = script[i];
    EXPECT_EQ(a.request.method, ex.method) << "request " << i;
    EXPECT_EQ(a.request.url, ex.url) << "request " << i;
    auto depth = find_header(a.request.headers, "Depth");
    EXPECT_EQ(depth ? std::optional<std::string>(*depth) : std::nullopt, ex.depth)
        << "request " << i;
    for (const auto& s : ex.body_has) {
      EXPECT_NE(a.request.body.find(s), std::string::npos)
          << "request " << i << " lacks " << s << "\n"
          << a.request.body;
    }
    Io io;
    if (fail_at && *fail_at == i) {
      io.error = std::make_error_code(std::errc::timed_out);
      io.message = "operation timed out";
    } else {
      io.response = ex.response;
    }
    a = fsm.resume(io);
  }
  if (!fail_at && a.kind != Action::Kind::error) {
    EXPECT_EQ(run.requests.size(), script.size()) << "requests not made";
  }
  run.last = a;
  return run;
}

}  // namespace crmcap::caldav::test
