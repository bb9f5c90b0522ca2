#include "routes.hpp"

#include "api_version.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/response.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <charconv>

namespace {{ident}} {

namespace {

std::int64_t id_param(keel::context& ctx) {
  auto text = ctx.param("id");
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size() || id <= 0) {
    throw keel::http_error(404, "no item " + text);
  }
  return id;
}

// Every rule a field breaks, so the client can fix them all at once.
void validate(item_fields const& f, bool creating) {
  std::vector<keel::json::field_error> errors;
  if (creating && !f.name) errors.push_back({"/name", "is required"});
  if (f.name && (f.name->empty() || f.name->size() > 100)) errors.push_back({"/name", "must be 1 to 100 characters"});
  if (f.quantity && *f.quantity < 0) errors.push_back({"/quantity", "must not be negative"});
  if (!errors.empty()) throw keel::json::validation_error(std::move(errors));
}

}  // namespace

void declare_settings(keel::config& cfg) {
  cfg.add("api_token", "", "the bearer token /api requires (required)");
}

void setup(keel::app& app, keel::config const& cfg) { setup_with_store(app, cfg, std::make_shared<memory_store>()); }

void setup_with_store(keel::app& app, keel::config const& cfg, std::shared_ptr<item_store> store) {
  auto const& token = cfg.get("api_token");
  if (token.empty()) throw keel::config_error("--api-token: required (the bearer token /api accepts)");

  keel::mw::use_defaults(app);

  auto api = app.group("/api", {keel::mw::authenticate(keel::mw::bearer_tokens({{token, {.subject = "client"}}})),
                                api_version("1")});

  api.get("/items", [store](keel::context&) -> keel::task<keel::response> {
    co_return keel::response::json({{"items", keel::json::to_value(store->list())}});
  });
  api.post("/items", [store](keel::context& ctx) -> keel::task<keel::response> {
    auto f = ctx.json<item_fields>();
    validate(f, true);
    auto created = store->create(*f.name, f.quantity.value_or(0));
    auto res = keel::response::json(keel::json::to_value(created), 201);
    res.set_header("Location", "/api/items/" + std::to_string(created.id));
    co_return res;
  });
  api.get("/items/{id}", [store](keel::context& ctx) -> keel::task<keel::response> {
    auto found = store->find(id_param(ctx));
    if (!found) throw keel::http_error(404, "no item " + ctx.param("id"));
    co_return keel::response::json(keel::json::to_value(*found));
  });
  api.patch("/items/{id}", [store](keel::context& ctx) -> keel::task<keel::response> {
    auto id = id_param(ctx);
    auto f = ctx.json<item_fields>();
    validate(f, false);
    auto updated = store->update(id, f);
    if (!updated) throw keel::http_error(404, "no item " + ctx.param("id"));
    co_return keel::response::json(keel::json::to_value(*updated));
  });
  api.del("/items/{id}", [store](keel::context& ctx) -> keel::task<keel::response> {
    if (!store->remove(id_param(ctx))) throw keel::http_error(404, "no item " + ctx.param("id"));
    co_return keel::response(204);
  });
}

}  // namespace {{ident}}
