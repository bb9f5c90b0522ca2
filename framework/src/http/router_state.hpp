#pragma once
// The router's private storage: groups, routes and, once frozen, the resolved
// chain of every route and of every automatic answer.
#include <keel/router.hpp>

#include "http/route_tree.hpp"

#include <deque>
#include <string>
#include <vector>

namespace keel::detail {

struct group_node {
  std::string prefix;  // full prefix from the root
  group_node* parent = nullptr;
  std::vector<middleware> mws;
  route_options options;
};

struct route_entry {
  verb method = verb::unknown;
  std::string pattern;  // full pattern, prefix included
  handler h;
  group_node* group = nullptr;
  std::vector<middleware> mws;
  route_options own;
  route_options effective;  // own over the group's over none
  chain resolved;
};

/// Everything known about one path pattern.
struct leaf {
  std::string pattern;
  std::vector<route_entry*> routes;  // registration order
  route_entry* head_fallback = nullptr;
  std::string allow;                 // "GET, HEAD, OPTIONS"
  handler options_handler;           // 204 + Allow, inside the first route's chain
  chain options_chain;
  handler not_allowed_handler;       // 405 + Allow, inside the app-wide chain
  chain not_allowed_chain;
};

struct router_state {
  std::deque<group_node> groups;  // [0] is the root
  std::deque<route_entry> routes;
  std::vector<middleware> app_mws;
  route_tree tree;
  std::deque<leaf> leaves;  // indexed like the tree's leaves
  handler not_found_handler;
  chain not_found_chain;
  handler rejection_handler;
  chain rejection;
  bool frozen = false;
};

// pending_rejection (a framework rejection answered through the app-wide
// chain) is in keel/context.hpp: middleware asks ctx.rejected_status().

}  // namespace keel::detail
