// SPDX-License-Identifier: Apache-2.0
// The directory's write side in the local API: request bodies to directory
// edits, and the answers (daemon/api/openapi.yaml: ContactBody,
// CompanyBody, OpportunityBody, DirectoryLine, DirectoryResult).
#include "daemon/api/json.hpp"
#include "daemon/api/query.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <set>

namespace crmcap::api {

namespace json = boost::json;

namespace {

// A problem with one field of a row: ("emails", "expected an array of strings").
using Problem = capture::RowProblem;
template <class T>
using Read = boost::system::result<T, Problem>;

// The fields each kind of row takes besides "id".
const std::set<std::string_view>& fields_of(store::DirectoryKind k) {
  static const std::set<std::string_view> company{"name", "domains"};
  static const std::set<std::string_view> contact{"name", "emails", "company_id", "title", "phone"};
  static const std::set<std::string_view> opportunity{
      "name", "company_id", "stage", "amount", "close_date", "status", "contact_ids"};
  switch (k) {
    case store::DirectoryKind::company:
      return company;
    case store::DirectoryKind::contact:
      return contact;
    case store::DirectoryKind::opportunity:
      return opportunity;
  }
  return contact;
}

// The reader of one row's fields, each checked for its JSON type: a field
// of the wrong type reads as empty, and the first such is `problem`.
class Fields {
 public:
  explicit Fields(const json::object& o) : o_(o) {}
  // A string field; `required` ones must be present, others may be null.
  std::string text(std::string_view key, bool required = false) {
    const json::value* v = present(key, required);
    if (!v) return {};
    if (!v->is_string()) return fail(key, "expected a string"), std::string();
    return std::string(v->as_string());
  }
  std::vector<std::string> list(std::string_view key, bool required = false) {
    std::vector<std::string> out;
    const json::value* v = present(key, required);
    if (!v) return out;
    if (v->is_array()) {
      for (const auto& item : v->as_array()) {
        if (!item.is_string()) break;
        out.emplace_back(item.as_string());
      }
      if (out.size() == v->as_array().size()) return out;
    }
    fail(key, "expected an array of strings");
    return {};
  }
  std::optional<double> number(std::string_view key) {
    const json::value* v = present(key, false);
    if (!v) return std::nullopt;
    if (!v->is_number()) return fail(key, "expected a number or null"), std::nullopt;
    return v->to_number<double>();
  }
  std::optional<Problem> problem;

 private:
  const json::value* present(std::string_view key, bool required) {
    const json::value* v = o_.if_contains(key);
    if (v && !v->is_null()) return v;
    if (required) fail(key, "missing");
    return nullptr;
  }
  void fail(std::string_view key, std::string what) {
    if (!problem) problem = Problem{std::string(key), std::move(what)};
  }
  const json::object& o_;
};

// The row of a put: `o`'s fields (besides those in `skip`) for a row of
// `kind` with `id`, checked and normalized.
Read<store::DirectoryEdit> row_edit(store::DirectoryKind kind, const std::string& id,
                                    const json::object& o, const std::set<std::string_view>& skip) {
  const auto& known = fields_of(kind);
  for (const auto& [key, value] : o) {
    if (!known.contains(key) && !skip.contains(key)) {
      return Problem{std::string(key), "unknown field for a " + std::string(to_string(kind))};
    }
  }
  Fields f(o);
  store::DirectoryEdit e;
  e.kind = kind;
  e.id = id;
  std::string name = f.text("name", true);
  switch (kind) {
    case store::DirectoryKind::company:
      e.company = {id, std::move(name), f.list("domains")};
      if (!f.problem) f.problem = capture::check_row(e.company);
      break;
    case store::DirectoryKind::contact: {
      std::vector<std::string> emails = f.list("emails", true);
      std::string company = f.text("company_id");
      std::string title = f.text("title");
      e.contact = {id,
                   std::move(name),
                   std::move(emails),
                   std::move(company),
                   std::move(title),
                   f.text("phone")};
      if (!f.problem) f.problem = capture::check_row(e.contact);
      break;
    }
    case store::DirectoryKind::opportunity: {
      store::Opportunity& op = e.opportunity;
      op.id = id;
      op.name = std::move(name);
      const std::string status = f.text("status", true);
      if (const auto st = store::opportunity_status_from_string(status)) {
        op.status = *st;
      } else if (!f.problem) {
        f.problem = Problem{"status", "expected open, won or lost, got '" + status + "'"};
      }
      op.company_id = f.text("company_id");
      op.stage = f.text("stage");
      op.amount = f.number("amount");
      op.close_date = f.text("close_date");
      for (auto& c : f.list("contact_ids")) op.contacts.push_back({std::move(c), ""});
      if (!f.problem) f.problem = capture::check_row(op);
      break;
    }
  }
  if (f.problem) return std::move(*f.problem);
  return e;
}

Read<std::string> id_field(const json::object& o) {
  const json::value* v = o.if_contains("id");
  if (!v) return Problem{"id", "missing"};
  if (!v->is_string() || v->as_string().empty()) {
    return Problem{"id", "expected a string that is not empty"};
  }
  return Read<std::string>(boost::system::in_place_value, v->as_string());
}

std::optional<store::DirectoryKind> kind_from(std::string_view s) {
  if (s == "company") return store::DirectoryKind::company;
  if (s == "contact") return store::DirectoryKind::contact;
  if (s == "opportunity") return store::DirectoryKind::opportunity;
  return std::nullopt;
}

// One line of a batch: {"kind", "op", "id", fields...}.
Read<store::DirectoryEdit> line_edit(const json::object& o) {
  const json::value* k = o.if_contains("kind");
  if (!k) return Problem{"kind", "missing"};
  const auto kind = k->is_string() ? kind_from(k->as_string()) : std::nullopt;
  if (!kind) return Problem{"kind", "expected company, contact or opportunity"};
  const json::value* op = o.if_contains("op");
  if (!op) return Problem{"op", "missing"};
  if (!op->is_string() || (op->as_string() != "put" && op->as_string() != "delete")) {
    return Problem{"op", "expected put or delete"};
  }
  auto id = id_field(o);
  if (!id) return id.error();
  if (op->as_string() == "put") return row_edit(*kind, *id, o, {"kind", "op", "id"});
  for (const auto& [key, value] : o) {
    if (key != "kind" && key != "op" && key != "id") {
      return Problem{std::string(key), "a delete takes only kind, op and id"};
    }
  }
  store::DirectoryEdit e;
  e.kind = *kind;
  e.remove = true;
  e.id = std::move(*id);
  return e;
}

}  // namespace

boost::system::result<store::DirectoryEdit, std::string> edit_from_json(std::string_view line) {
  json::error_code ec;
  const json::value v = json::parse(line, ec);
  if (ec) return std::string("not JSON: ") + ec.message();
  if (!v.is_object()) return std::string("expected a JSON object");
  auto e = line_edit(v.as_object());
  if (!e) return e.error().field + ": " + e.error().what;
  return std::move(*e);
}

std::string edit_line(const store::DirectoryEdit& e) {
  json::object o{{"kind", to_string(e.kind)}, {"op", e.remove ? "delete" : "put"}, {"id", e.id}};
  if (!e.remove) {
    switch (e.kind) {
      case store::DirectoryKind::company: {
        json::array domains(e.company.domains.begin(), e.company.domains.end());
        o["name"] = e.company.name;
        o["domains"] = std::move(domains);
        break;
      }
      case store::DirectoryKind::contact: {
        const store::Contact& c = e.contact;
        o["name"] = c.name;
        o["emails"] = json::array(c.emails.begin(), c.emails.end());
        o["company_id"] = c.company_id.empty() ? json::value(nullptr) : json::value(c.company_id);
        o["title"] = c.title;
        o["phone"] = c.phone;
        break;
      }
      case store::DirectoryKind::opportunity: {
        const store::Opportunity& p = e.opportunity;
        json::array contacts;
        for (const auto& c : p.contacts) contacts.emplace_back(c.contact_id);
        o["name"] = p.name;
        o["company_id"] = p.company_id.empty() ? json::value(nullptr) : json::value(p.company_id);
        o["stage"] = p.stage;
        o["amount"] = p.amount ? json::value(*p.amount) : json::value(nullptr);
        o["close_date"] = p.close_date;
        o["status"] = store::to_string(p.status);
        o["contact_ids"] = std::move(contacts);
        break;
      }
    }
  }
  return json::serialize(o);
}

boost::system::result<std::vector<store::DirectoryEdit>, std::string> edits_from_lines(
    std::string_view text) {
  std::vector<store::DirectoryEdit> out;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto eol = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(std::min(eol + 1, text.size()));
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    auto e = edit_from_json(line);
    if (!e) return "line " + std::to_string(number) + ": " + e.error();
    e->where = "line " + std::to_string(number);
    out.push_back(std::move(*e));
  }
  if (out.empty()) return std::string("no edit: the batch has no line");
  return out;
}

namespace detail {

Parsed<std::vector<store::DirectoryEdit>> directory_edits(const Request& r, std::string_view method,
                                                          std::string_view body) {
  if (r.endpoint == Endpoint::directory_batch) {
    auto edits = edits_from_lines(body);
    if (!edits) return ApiError{400, "bad_line", std::move(edits.error())};
    return std::move(*edits);
  }
  const auto bad_field = [](const Problem& p) {
    return ApiError{400, "bad_field", p.field + ": " + p.what};
  };
  store::DirectoryEdit e;
  e.kind = r.row_kind;
  e.id = r.id;
  if (method == "DELETE") {
    if (!body.empty()) return ApiError{400, "bad_field", "a DELETE takes no body"};
    e.remove = true;
    return std::vector<store::DirectoryEdit>{std::move(e)};
  }
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return ApiError{400, "bad_body",
                    "the body must be a JSON object (" + std::string(to_string(r.row_kind)) + ")"};
  }
  const json::object& o = v.as_object();
  if (const json::value* id = o.if_contains("id")) {
    if (!id->is_string() || id->as_string() != r.id) {
      return bad_field({"id", "differs from the path's id '" + r.id + "'"});
    }
  }
  auto row = row_edit(r.row_kind, r.id, o, {"id"});
  if (!row) return bad_field(row.error());
  return std::vector<store::DirectoryEdit>{std::move(*row)};
}

bool directory_media_type_ok(Endpoint e, std::string_view type) noexcept {
  if (e == Endpoint::directory_batch) {
    return type == "application/x-ndjson" || type == "application/jsonl";
  }
  return type == "application/json";
}

std::string directory_result_body(const capture::DirectoryReport& report) {
  json::object o{{"created", report.created},
                 {"changed", report.changed},
                 {"removed", report.removed},
                 {"rematched", json::array(report.rematched.begin(), report.rematched.end())}};
  return json::serialize(o);
}

ApiError directory_error(const Request& r, const store::Error& e) {
  if (e.code == store::Errc::not_found) {
    // A batch's unknown id is a bad line; a DELETE's, a resource not found.
    if (r.endpoint == Endpoint::directory_batch) return ApiError{400, "bad_line", e.message};
    return ApiError{404, "not_found", e.message};
  }
  if (e.code == store::Errc::bad_input) {
    return ApiError{400, r.endpoint == Endpoint::directory_batch ? "bad_line" : "bad_field",
                    e.message};
  }
  return ApiError{500, "store", e.message};
}

}  // namespace detail

}  // namespace crmcap::api
