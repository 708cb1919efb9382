// SPDX-License-Identifier: Apache-2.0
#include "connectors/caldav/detail.hpp"

#include <algorithm>
#include <map>
#include <new>
#include <utility>

namespace crmcap::caldav {

namespace {

bool has(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

sync_fsm::sync_fsm(SyncOptions options, CalendarSink& sink)
    : options_(std::move(options)), sink_(sink) {
  if (options_.multiget_batch == 0) options_.multiget_batch = 1;
}

Action sync_fsm::fail(SyncError e) {
  step_ = Step::done;
  finished_ = detail::error_action(std::move(e));
  return finished_;
}

Action sync_fsm::done() {
  step_ = Step::done;
  finished_ = Action{};
  return finished_;
}

Action sync_fsm::send(HttpRequest request, Step step) {
  step_ = step;
  hops_ = 0;
  request_ = std::move(request);
  ++report_.requests;
  return detail::send_action(request_);
}

Action sync_fsm::resume(const Io& io) {
  try {
    if (step_ == Step::done) return finished_;
    if (step_ == Step::start) {
      auto url = canonical_url(options_.calendar_url, "");
      if (!url) {
        return fail(detail::make_error(Errc::bad_url,
                                       "not an absolute URL: " + options_.calendar_url,
                                       RetryClass::needs_user));
      }
      options_.calendar_url = *url;
      SyncResult<StoredCalendar> stored = StoredCalendar{};
      try {
        stored = sink_.stored(options_.calendar_url);
      } catch (const std::exception& e) {
        return fail(detail::make_error(Errc::sink, std::string("sink: ") + e.what(),
                                       RetryClass::retry_later));
      }
      if (!stored) return fail(stored.error());
      stored_ = std::move(*stored);
      stored_.state.url = options_.calendar_url;
      report_.first_sync = stored_.state.sync_token.empty() && stored_.state.ctag.empty();
      progress();
      if (const auto& d = options_.discovered;
          d && (!d->sync_token.empty() || (stored_.state.sync_token.empty() && !d->ctag.empty()))) {
        server_ = CalendarState{options_.calendar_url, d->sync_token, d->ctag};
        return from_server_state(d->sync_collection);
      }
      return send(detail::propfind(options_.calendar_url, 0, PropSet::calendar), Step::probe);
    }
    return on_response(io);
  } catch (const std::bad_alloc&) {
    return fail(
        detail::make_error(Errc::out_of_memory, "sync: out of memory", RetryClass::retry_later));
  } catch (const std::exception& e) {
    return fail(detail::make_error(Errc::protocol, std::string("sync: ") + e.what(),
                                   RetryClass::retry_later));
  }
}

Action sync_fsm::on_response(const Io& io) {
  if (io.error) return fail(detail::transport_error(io, request_.method + " " + request_.url));
  const HttpResponse& r = io.response;
  if (detail::is_redirect(r.status)) {
    auto next = detail::follow_redirect(request_, r, hops_, options_.max_redirects);
    if (!next) return fail(next.error());
    request_ = std::move(*next);
    ++report_.requests;
    return detail::send_action(request_);
  }
  switch (step_) {
    case Step::probe:
      return on_probe(r);
    case Step::sync_page:
      return on_sync_page(r);
    case Step::listing:
      return on_listing(r);
    case Step::multiget:
      return on_multiget(r);
    default:
      return fail(
          detail::make_error(Errc::protocol, "sync: resumed out of turn", RetryClass::retry_later));
  }
}

Action sync_fsm::on_probe(const HttpResponse& r) {
  const std::string what = "PROPFIND " + request_.url;
  if (r.status != 207) return fail(detail::status_error(r, what, options_.clock()));
  auto ms = parse_multistatus(r.body, request_.url, ParseLimits{options_.max_reply_bytes});
  if (!ms) return fail(detail::xml_error(ms.error(), what));
  const Response* self = nullptr;
  for (const auto& resp : ms->responses) {
    if (same_collection(resp.url, request_.url)) self = &resp;
  }
  if (self == nullptr && !ms->responses.empty()) self = &ms->responses.front();
  if (self == nullptr || self->status != 0) {
    return fail(detail::make_error(Errc::not_found, what + ": the calendar is not listed",
                                   RetryClass::needs_user));
  }
  const Props& p = self->props;
  if (p.has_resourcetype && !p.calendar) {
    return fail(detail::make_error(Errc::not_a_calendar, options_.calendar_url + " is no calendar",
                                   RetryClass::needs_user));
  }
  server_ = CalendarState{options_.calendar_url, p.sync_token.value_or(""), p.ctag.value_or("")};
  return from_server_state(p.sync_collection);
}

Action sync_fsm::from_server_state(bool sync_collection) {
  const CalendarState& had = stored_.state;
  bool unchanged = false;
  if (!server_.sync_token.empty()) {
    unchanged = server_.sync_token == had.sync_token;
  } else if (!server_.ctag.empty()) {
    unchanged = server_.ctag == had.ctag;
  }
  if (unchanged) {
    report_.mode = SyncReport::Mode::unchanged;
    return done();
  }
  if (options_.use_sync_collection && sync_collection) {
    full_ = had.sync_token.empty();
    report_.mode =
        full_ ? SyncReport::Mode::full_sync_collection : SyncReport::Mode::sync_collection;
    page_token_ = had.sync_token;
    return send_sync_page();
  }
  return start_listing();
}

Action sync_fsm::send_sync_page() {
  ++report_.pages;
  return send(detail::report(options_.calendar_url, sync_collection_body(page_token_), "0"),
              Step::sync_page);
}

Action sync_fsm::start_listing() {
  full_ = true;
  seen_.clear();
  report_.mode = SyncReport::Mode::etag_listing;
  return send(detail::propfind(options_.calendar_url, 1, PropSet::etags), Step::listing);
}

Action sync_fsm::on_sync_page(const HttpResponse& r) {
  const std::string what = "REPORT sync-collection " + request_.url;
  if (r.status == 403 || r.status == 409 || r.status == 412) {
    // RFC 6578 3.2: a token the server no longer accepts. A 403 without the
    // precondition is a refusal of the user, not of the token.
    const bool token = has(parse_dav_error(r.body), "{DAV:}valid-sync-token");
    if (token || r.status != 403) {
      report_.fell_back = true;
      return start_listing();
    }
  }
  if (r.status == 507) {
    report_.fell_back = true;
    return start_listing();
  }
  if (r.status != 207) return fail(detail::status_error(r, what, options_.clock()));
  auto ms = parse_multistatus(r.body, request_.url, ParseLimits{options_.max_reply_bytes});
  if (!ms) return fail(detail::xml_error(ms.error(), what));
  if (!ms->sync_token || ms->sync_token->empty()) {
    return fail(detail::make_error(Errc::protocol, what + ": a page without a sync-token",
                                   RetryClass::retry_later));
  }
  if (ms->truncated && *ms->sync_token == page_token_ && ms->responses.empty()) {
    return fail(detail::make_error(Errc::protocol, what + ": a truncated page with nothing in it",
                                   RetryClass::retry_later));
  }
  if (ms->truncated && report_.pages >= options_.max_pages) {
    return fail(detail::make_error(Errc::protocol, what + ": more pages than allowed",
                                   RetryClass::retry_later));
  }
  pending_.clear();
  next_pending_ = 0;
  page_deleted_.clear();
  std::set<std::string> listed;
  for (const auto& resp : ms->responses) {
    if (same_collection(resp.url, request_.url)) continue;
    if (resp.status == 404 || resp.status == 410) {
      // Radicale lists deleted members even on a first sync: an href the
      // sink never had is nothing to delete.
      if (!full_ && stored_.items.count(resp.url) != 0 && !has(page_deleted_, resp.url)) {
        page_deleted_.push_back(resp.url);
      }
      continue;
    }
    if (resp.status != 0 && (resp.status < 200 || resp.status >= 300)) continue;
    if (resp.props.collection) continue;
    if (!listed.insert(resp.url).second) continue;
    if (full_) seen_.insert(resp.url);
    auto known = stored_.items.find(resp.url);
    if (resp.props.etag && known != stored_.items.end() &&
        etag_equal(known->second, *resp.props.etag)) {
      continue;
    }
    pending_.push_back({resp.url, resp.props.etag.value_or("")});
  }
  page_new_token_ = *ms->sync_token;
  more_pages_ = ms->truncated;
  pending_listed();
  return next_batch();
}

Action sync_fsm::on_listing(const HttpResponse& r) {
  const std::string what = "PROPFIND " + request_.url;
  if (r.status != 207) return fail(detail::status_error(r, what, options_.clock()));
  auto ms = parse_multistatus(r.body, request_.url, ParseLimits{options_.max_reply_bytes});
  if (!ms) return fail(detail::xml_error(ms.error(), what));
  pending_.clear();
  next_pending_ = 0;
  page_deleted_.clear();
  more_pages_ = false;
  for (const auto& resp : ms->responses) {
    if (same_collection(resp.url, request_.url)) continue;
    if (resp.status != 0 && (resp.status < 200 || resp.status >= 300)) continue;
    if (resp.props.collection) continue;
    if (!seen_.insert(resp.url).second) continue;
    auto known = stored_.items.find(resp.url);
    if (resp.props.etag && known != stored_.items.end() &&
        etag_equal(known->second, *resp.props.etag)) {
      continue;
    }
    pending_.push_back({resp.url, resp.props.etag.value_or("")});
  }
  pending_listed();
  return next_batch();
}

Action sync_fsm::next_batch() {
  if (next_pending_ >= pending_.size()) return finish_page(CalendarChanges{});
  batch_end_ = std::min(pending_.size(), next_pending_ + options_.multiget_batch);
  std::vector<std::string> hrefs;
  for (std::size_t i = next_pending_; i < batch_end_; ++i)
    hrefs.push_back(url_path(pending_[i].href));
  return send(detail::report(options_.calendar_url, multiget_body(hrefs), nullptr), Step::multiget);
}

Action sync_fsm::on_multiget(const HttpResponse& r) {
  const std::string what = "REPORT calendar-multiget " + request_.url;
  if (r.status != 207) return fail(detail::status_error(r, what, options_.clock()));
  auto ms = parse_multistatus(r.body, request_.url, ParseLimits{options_.max_reply_bytes});
  if (!ms) return fail(detail::xml_error(ms.error(), what));
  // Responses come in any order.
  std::map<std::string, const Response*> by_url;
  for (const auto& resp : ms->responses) by_url.emplace(resp.url, &resp);
  CalendarChanges changes;
  for (std::size_t i = next_pending_; i < batch_end_; ++i) {
    const Pending& want = pending_[i];
    auto it = by_url.find(want.href);
    if (it == by_url.end()) {
      changes.failed.push_back({want.href, "not in the calendar-multiget reply"});
      continue;
    }
    const Response& resp = *it->second;
    if (resp.status != 0 && (resp.status < 200 || resp.status >= 300)) {
      changes.failed.push_back({want.href, "status " + std::to_string(resp.status)});
      continue;
    }
    if (!resp.props.calendar_data) {
      std::string reason = "no calendar-data in the reply";
      for (const auto& m : resp.props.missing) {
        if (m.name == "calendar-data") reason += " (status " + std::to_string(m.status) + ")";
      }
      changes.failed.push_back({want.href, std::move(reason)});
      continue;
    }
    // The multiget's ETag, else the listing's (if the item changed in
    // between, the next listing only fetches it again), else a hash.
    std::string etag = resp.props.etag.value_or("");
    if (etag.empty()) etag = want.listed_etag;
    if (etag.empty()) etag = content_etag(*resp.props.calendar_data);
    auto known = stored_.items.find(want.href);
    if (known != stored_.items.end() && etag_equal(known->second, etag)) continue;
    changes.changed.push_back({want.href, std::move(etag), *resp.props.calendar_data});
  }
  uncommitted_ += batch_end_ - next_pending_;
  next_pending_ = batch_end_;
  if (next_pending_ >= pending_.size()) return finish_page(std::move(changes));
  changes.state = stored_.state;
  if (auto c = commit(std::move(changes)); !c) return fail(c.error());
  return next_batch();
}

Action sync_fsm::finish_page(CalendarChanges changes) {
  const bool listing = step_ == Step::listing || report_.mode == SyncReport::Mode::etag_listing;
  changes.state = stored_.state;
  const bool last = listing || !more_pages_;
  if (listing) {
    changes.state.sync_token = server_.sync_token;
    changes.state.ctag = server_.ctag;
  } else if (!full_) {
    // An incremental page commits its token: a crash resumes after it.
    changes.state.sync_token = page_new_token_;
    changes.deleted = page_deleted_;
    if (last) changes.state.ctag = server_.ctag;
  } else if (last) {
    // A full listing commits its token only with its sweep.
    changes.state.sync_token = page_new_token_;
    changes.state.ctag = server_.ctag;
  }
  if (full_ && last) {
    for (const auto& [href, etag] : stored_.items) {
      if (seen_.count(href) == 0) changes.deleted.push_back(href);
    }
  }
  if (auto c = commit(std::move(changes)); !c) return fail(c.error());
  if (!last) {
    page_token_ = page_new_token_;
    return send_sync_page();
  }
  return done();
}

SyncResult<void> sync_fsm::commit(CalendarChanges changes) {
  if (changes.changed.empty() && changes.deleted.empty() && changes.failed.empty() &&
      changes.state == stored_.state) {
    batches_committed();  // a batch of items all unchanged is done with too
    return {};
  }
  SyncResult<void> r;
  try {
    r = sink_.commit(changes);
  } catch (const std::exception& e) {
    // The sink is not ours: nothing it throws leaves this module.
    return detail::make_error(Errc::sink, std::string("sink: ") + e.what(),
                              RetryClass::retry_later);
  }
  if (!r) {
    SyncError e = r.error();
    if (!e.code) e.code = make_error_code(Errc::sink);
    return e;
  }
  ++report_.commits;
  report_.changed += changes.changed.size();
  report_.deleted += changes.deleted.size();
  report_.failed += changes.failed.size();
  for (auto& item : changes.changed) stored_.items[item.href] = item.etag;
  for (const auto& href : changes.deleted) stored_.items.erase(href);
  stored_.state = std::move(changes.state);
  batches_committed();
  return {};
}

void sync_fsm::pending_listed() {
  if (pending_.empty()) return;
  report_.to_fetch += pending_.size();
  progress();
}

void sync_fsm::batches_committed() {
  if (uncommitted_ == 0) return;
  report_.fetched += uncommitted_;
  uncommitted_ = 0;
  progress();
}

void sync_fsm::progress() {
  if (options_.on_progress) options_.on_progress(report_);
}

}  // namespace crmcap::caldav
