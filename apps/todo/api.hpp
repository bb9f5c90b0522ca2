#pragma once
// The todo REST API of SPEC §4, on a store, behind HS256 JWT authentication.
//
//   GET    /api/todos?limit=&after=   {"items":[...],"next":ID|null}
//   POST   /api/todos                 {"title","done"?} -> 201, Location
//   GET    /api/todos/{id}
//   PATCH  /api/todos/{id}            {"title"?,"done"?} -> 200
//   DELETE /api/todos/{id}            -> 204
//
// Every route needs `Authorization: Bearer <JWT>` signed HS256 with the
// secret and carrying `sub` and `exp`; a user sees only the todos whose owner
// is that `sub` (another's id is a 404).
#include "store.hpp"

#include <keel/app.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace todo {

/// Registers the /api routes on `app`.
void add_routes(keel::app& app, std::shared_ptr<store> db, std::string const& jwt_secret);

/// A token for `subject`, valid for `ttl` (what `todo token --sub NAME` prints).
std::string issue_token(std::string const& subject, std::string const& jwt_secret,
                        std::chrono::seconds ttl = std::chrono::hours(1));

}  // namespace todo
