// SPDX-License-Identifier: Apache-2.0
// A blocking client of the local API, for crm-capture: one request per
// connection. No Asio in this header; client.cpp uses Beast.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace crmcap::api {

struct ClientReply {
  int status = 0;
  std::string body;  // JSON
};

struct ClientError {
  std::string message;
  bool unreachable = false;  // nobody listens on the socket (no daemon runs)
};

// Sends `method target` to the API on `socket` and reads the whole
// response, each read and write within `timeout`.
boost::system::result<ClientReply, ClientError> call(
    const std::string& socket, std::string_view method, std::string_view target,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A request body and its media type ("application/json").
struct Body {
  std::string data;
  std::string content_type;
};
// Same, sending `body` (none when its content_type is empty).
boost::system::result<ClientReply, ClientError> call(
    const std::string& socket, std::string_view method, std::string_view target, const Body& body,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace crmcap::api
