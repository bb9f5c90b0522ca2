#include "api.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/json.hpp>
#include <keel/middleware/auth.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <string_view>
#include <vector>

namespace todo {

namespace {

constexpr int default_limit = 50;
constexpr int max_limit = 200;
constexpr std::size_t max_title = 200;

std::string const& owner_of(keel::context& ctx) {
  auto const* who = ctx.get<keel::mw::principal>();
  // authenticate() runs before every /api route; this is a second lock.
  if (!who || who->subject.empty()) throw keel::unauthorized("a token is required", "Bearer realm=\"todo\"");
  return who->subject;
}

// Digits only, no sign: "007" is 7, "-1", "1e3" and "" are not numbers here.
std::optional<std::int64_t> parse_count(std::string_view s) {
  std::int64_t v = 0;
  if (s.empty() || s.size() > 18) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s[0] == '-' || s[0] == '+') return std::nullopt;
  return v;
}

int limit_of(keel::context& ctx) {
  auto q = ctx.query("limit");
  if (!q) return default_limit;
  auto v = parse_count(*q);
  if (!v || *v < 1) throw keel::bad_request("limit must be a whole number from 1 to 200");
  return static_cast<int>(std::min<std::int64_t>(*v, max_limit));  // more than 200 reads as 200
}

std::int64_t after_of(keel::context& ctx) {
  auto q = ctx.query("after");
  if (!q) return 0;
  auto v = parse_count(*q);
  if (!v) throw keel::bad_request("after must be a todo id (a whole number)");
  return *v;
}

std::int64_t id_of(keel::context& ctx) {
  auto raw = ctx.param("id");
  auto v = parse_count(raw);
  // Not a number: no such todo, as for any other unknown id.
  if (!v || *v < 1) throw keel::not_found("no todo " + raw);
  return *v;
}

// Characters, not bytes: Boost.JSON has already checked the UTF-8.
std::size_t characters(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

struct fields {
  std::optional<std::string> title;
  std::optional<bool> done;
};

// Reads {"title","done"} and reports every field at fault at once (422).
fields read_fields(keel::context& ctx, bool creating) {
  auto body = ctx.json_body();  // 400 when it is not JSON
  auto const* obj = body.if_object();
  if (!obj) throw keel::json::validation_error("", "must be a JSON object");
  std::vector<keel::json::field_error> errors;
  fields f;
  if (auto const* t = obj->if_contains("title")) {
    if (auto const* s = t->if_string()) {
      auto n = characters(*s);
      if (n < 1 || n > max_title) errors.push_back({"/title", "must be 1 to 200 characters"});
      else f.title = std::string(*s);
    } else {
      errors.push_back({"/title", "must be a string"});
    }
  } else if (creating) {
    errors.push_back({"/title", "is required"});
  }
  if (auto const* d = obj->if_contains("done")) {
    if (auto const* b = d->if_bool()) f.done = *b;
    else errors.push_back({"/done", "must be a boolean"});
  }
  if (!errors.empty()) throw keel::json::validation_error(std::move(errors));
  if (!creating && !f.title && !f.done) throw keel::json::validation_error("", "must set title or done");
  return f;
}

keel::response todo_json(item const& t, unsigned status = 200) {
  return keel::response::json(keel::json::to_value(t), status);
}

keel::task<keel::response> list(store& db, keel::context& ctx) {
  std::string owner = owner_of(ctx);
  auto limit = limit_of(ctx);
  auto after = after_of(ctx);
  auto p = co_await db.list(owner, after, limit);
  boost::json::object out;
  out["items"] = keel::json::to_value(p.items);
  out["next"] = p.next ? boost::json::value(*p.next) : boost::json::value(nullptr);
  co_return keel::response::json(out);
}

keel::task<keel::response> create(store& db, keel::context& ctx) {
  std::string owner = owner_of(ctx);
  auto f = read_fields(ctx, true);
  auto t = co_await db.create(owner, *f.title, f.done.value_or(false));
  auto res = todo_json(t, 201);
  res.set_header("Location", "/api/todos/" + std::to_string(t.id));
  co_return res;
}

keel::task<keel::response> show(store& db, keel::context& ctx) {
  std::string owner = owner_of(ctx);
  auto id = id_of(ctx);
  auto t = co_await db.get(owner, id);
  if (!t) throw keel::not_found("no todo " + std::to_string(id));
  co_return todo_json(*t);
}

keel::task<keel::response> change(store& db, keel::context& ctx) {
  std::string owner = owner_of(ctx);
  auto id = id_of(ctx);
  auto f = read_fields(ctx, false);
  auto t = co_await db.update(owner, id, f.title, f.done);
  if (!t) throw keel::not_found("no todo " + std::to_string(id));
  co_return todo_json(*t);
}

keel::task<keel::response> erase(store& db, keel::context& ctx) {
  std::string owner = owner_of(ctx);
  auto id = id_of(ctx);
  if (!co_await db.remove(owner, id)) throw keel::not_found("no todo " + std::to_string(id));
  co_return keel::response(204);
}

}  // namespace

void add_routes(keel::app& app, std::shared_ptr<store> db, std::string const& jwt_secret) {
  keel::mw::jwt_options jwt{
      .secret = jwt_secret,
      .alg = keel::mw::jwt_alg::hs256,  // the only algorithm accepted: none and others are 401
      .leeway = std::chrono::seconds(0),  // one issuer, one clock: exp means exp
      .realm = "todo",
  };
  auto api = app.group("/api", {keel::mw::authenticate(keel::mw::jwt(std::move(jwt)))});
  // The lambdas are not coroutines: they return the handler's task, whose
  // frame refers to the store that the route (and its captured pointer) outlives.
  api.get("/todos", [db](keel::context& ctx) { return list(*db, ctx); });
  api.post("/todos", [db](keel::context& ctx) { return create(*db, ctx); });
  api.get("/todos/{id}", [db](keel::context& ctx) { return show(*db, ctx); });
  api.patch("/todos/{id}", [db](keel::context& ctx) { return change(*db, ctx); });
  api.del("/todos/{id}", [db](keel::context& ctx) { return erase(*db, ctx); });
}

std::string issue_token(std::string const& subject, std::string const& jwt_secret,
                        std::chrono::seconds ttl) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  boost::json::object claims{{"sub", subject}, {"iat", now}, {"exp", now + ttl.count()}};
  return keel::mw::sign_jwt(claims, jwt_secret, keel::mw::jwt_alg::hs256);
}

}  // namespace todo
