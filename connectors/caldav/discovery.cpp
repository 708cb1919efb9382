// SPDX-License-Identifier: Apache-2.0
#include "connectors/caldav/detail.hpp"

#include <algorithm>
#include <new>
#include <utility>

namespace crmcap::caldav {

namespace {

// The response about `url` itself, else the first one.
const Response* self_response(const Multistatus& ms, std::string_view url) {
  for (const auto& r : ms.responses) {
    if (same_collection(r.url, url)) return &r;
  }
  return ms.responses.empty() ? nullptr : &ms.responses.front();
}

CalendarInfo info_of(const Response& r) {
  CalendarInfo c;
  c.url = r.url;
  c.display_name = r.props.display_name.value_or("");
  c.ctag = r.props.ctag.value_or("");
  c.sync_token = r.props.sync_token.value_or("");
  c.sync_collection = r.props.sync_collection;
  return c;
}

}  // namespace

discovery_fsm::discovery_fsm(DiscoveryOptions options) : options_(std::move(options)) {}

Action discovery_fsm::fail(SyncError e) {
  step_ = Step::done;
  finished_ = detail::error_action(std::move(e));
  return finished_;
}

Action discovery_fsm::send_propfind(const std::string& url, int depth, Step step) {
  step_ = step;
  hops_ = 0;
  request_ = detail::propfind(url, depth,
                              step == Step::home        ? PropSet::calendar
                              : step == Step::principal ? PropSet::home
                                                        : PropSet::probe);
  ++requests_;
  return detail::send_action(request_);
}

Action discovery_fsm::resume(const Io& io) {
  try {
    if (step_ == Step::done) return finished_;
    if (step_ == Step::start) {
      auto url = canonical_url(options_.url, "");
      if (!url) {
        return fail(detail::make_error(Errc::bad_url, "not an absolute URL: " + options_.url,
                                       RetryClass::needs_user));
      }
      options_.url = *url;
      return send_propfind(options_.url, 0, Step::probe);
    }
    return on_response(io);
  } catch (const std::bad_alloc&) {
    return fail(detail::make_error(Errc::out_of_memory, "discovery: out of memory",
                                   RetryClass::retry_later));
  } catch (const std::exception& e) {
    return fail(detail::make_error(Errc::protocol, std::string("discovery: ") + e.what(),
                                   RetryClass::retry_later));
  }
}

Action discovery_fsm::on_response(const Io& io) {
  const std::string what = request_.method + " " + request_.url;
  if (io.error) return fail(detail::transport_error(io, what));
  const HttpResponse& r = io.response;
  if (detail::is_redirect(r.status)) {
    auto next = detail::follow_redirect(request_, r, hops_, options_.max_redirects);
    if (!next) return fail(next.error());
    request_ = std::move(*next);
    ++requests_;
    return detail::send_action(request_);
  }
  const auto now = options_.clock();
  const bool fatal = r.status == 401 || r.status == 403 || r.status == 429 || r.status >= 500;
  if (r.status != 207 && (fatal || step_ == Step::principal || step_ == Step::home)) {
    return fail(detail::status_error(r, what, now));
  }

  if (step_ == Step::probe || step_ == Step::well_known) {
    if (r.status == 207) {
      auto ms = parse_multistatus(r.body, request_.url);
      if (!ms) return fail(detail::xml_error(ms.error(), what));
      const Response* self = self_response(*ms, request_.url);
      if (self != nullptr && self->status == 0) {
        if (self->props.calendar) {
          if (!holds_events(self->props)) {
            return fail(detail::make_error(Errc::no_calendars,
                                           self->url + " is a calendar without events (VEVENT)",
                                           RetryClass::needs_user));
          }
          calendars_.push_back(info_of(*self));
          step_ = Step::done;
          finished_ = Action{};
          return finished_;
        }
        if (self->props.current_user_principal) principal_ = *self->props.current_user_principal;
        if (!self->props.calendar_home_set.empty()) {
          home_sets_ = self->props.calendar_home_set;
          return next_home();
        }
        if (!principal_.empty()) return send_propfind(principal_, 0, Step::principal);
      }
    }
    // Not a calendar and no principal here (or 404, 405, ...): RFC 6764's
    // well-known URL on the same server, once.
    if (step_ == Step::probe && !tried_well_known_) {
      tried_well_known_ = true;
      auto url = canonical_url(options_.url, "/.well-known/caldav");
      if (!url) {
        return fail(detail::make_error(Errc::bad_url, "no well-known URL for " + options_.url,
                                       RetryClass::needs_user));
      }
      return send_propfind(*url, 0, Step::well_known);
    }
    if (r.status != 207) return fail(detail::status_error(r, what, now));
    return fail(detail::make_error(Errc::not_found,
                                   options_.url + ": no calendar, principal or calendar-home-set "
                                                  "found (nor at /.well-known/caldav)",
                                   RetryClass::needs_user));
  }

  auto ms = parse_multistatus(r.body, request_.url);
  if (!ms) return fail(detail::xml_error(ms.error(), what));
  if (step_ == Step::principal) {
    const Response* self = self_response(*ms, request_.url);
    if (self == nullptr || self->status != 0 || self->props.calendar_home_set.empty()) {
      return fail(detail::make_error(Errc::not_found, principal_ + " lists no calendar-home-set",
                                     RetryClass::needs_user));
    }
    home_sets_ = self->props.calendar_home_set;
    return next_home();
  }
  // Step::home: the calendars in it.
  for (const auto& resp : ms->responses) {
    if (resp.status != 0 || !resp.props.calendar || !holds_events(resp.props)) continue;
    const bool dup = std::any_of(calendars_.begin(), calendars_.end(),
                                 [&](const CalendarInfo& c) { return c.url == resp.url; });
    if (!dup) calendars_.push_back(info_of(resp));
  }
  return next_home();
}

Action discovery_fsm::next_home() {
  if (next_home_ < home_sets_.size()) {
    return send_propfind(home_sets_[next_home_++], 1, Step::home);
  }
  if (calendars_.empty()) {
    return fail(detail::make_error(Errc::no_calendars,
                                   "no calendar that holds events in the calendar home set",
                                   RetryClass::needs_user));
  }
  step_ = Step::done;
  finished_ = Action{};
  return finished_;
}

}  // namespace crmcap::caldav
