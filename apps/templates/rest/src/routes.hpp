#pragma once
// The routes of {{name}}: main.cpp and the tests both call setup(), so the
// tests exercise exactly what the service serves.
//
//   GET    /api/items          -> {"items":[...]}
//   POST   /api/items          {"name","quantity"?} -> 201 + Location
//   GET    /api/items/{id}     -> the item, or 404
//   PATCH  /api/items/{id}     {"name"?,"quantity"?} -> the item
//   DELETE /api/items/{id}     -> 204
// /api needs `Authorization: Bearer <api_token>`; bad input is a 422 problem
// whose "errors" name each field as a JSON pointer.
#include "item_store.hpp"

#include <keel/app.hpp>
#include <keel/config.hpp>

#include <memory>

namespace {{ident}} {

/// Declares this service's own settings (`api_token` in config/app.json,
/// KEEL_API_TOKEN, --api-token).
void declare_settings(keel::config& cfg);

/// The middleware and routes, over a memory_store.
void setup(keel::app& app, keel::config const& cfg);
/// The same over the store you give (tests, or a real database).
void setup_with_store(keel::app& app, keel::config const& cfg, std::shared_ptr<item_store> store);

}  // namespace {{ident}}
