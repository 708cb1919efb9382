// SPDX-License-Identifier: Apache-2.0
#include "daemon/api/client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>
#include <sys/time.h>

namespace crmcap::api {

namespace asio = boost::asio;
namespace http = boost::beast::http;

boost::system::result<ClientReply, ClientError> call(const std::string& socket,
                                                     std::string_view method,
                                                     std::string_view target,
                                                     std::chrono::milliseconds timeout) {
  return call(socket, method, target, {}, timeout);
}

boost::system::result<ClientReply, ClientError> call(const std::string& socket,
                                                     std::string_view method,
                                                     std::string_view target, const Body& body,
                                                     std::chrono::milliseconds timeout) {
  asio::io_context io;
  asio::local::stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(asio::local::stream_protocol::endpoint(socket), ec);
  if (ec) {
    const bool nobody = ec == asio::error::connection_refused || ec == asio::error::not_found ||
                        ec == boost::system::errc::no_such_file_or_directory;
    return ClientError{socket + ": " + ec.message(), nobody};
  }
  // Blocking calls, each bounded by the socket's own timeouts.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  http::request<http::string_body> req{http::string_to_verb(method), std::string(target), 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "crm-capture");
  if (!body.content_type.empty()) req.set(http::field::content_type, body.content_type);
  req.body() = body.data;
  req.keep_alive(false);
  req.prepare_payload();
  http::write(s, req, ec);
  if (ec) return ClientError{socket + ": sending the request: " + ec.message(), false};
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024 * 1024);
  http::read(s, buffer, parser, ec);
  if (ec) return ClientError{socket + ": reading the response: " + ec.message(), false};
  auto res = parser.release();
  return ClientReply{static_cast<int>(res.result_int()), std::move(res.body())};
}

}  // namespace crmcap::api
