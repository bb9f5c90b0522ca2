#pragma once
// The path-matching half of keel's router: maps a request path to the index of the
// pattern ("leaf") it matches. Methods live in the public router, keyed by leaf index,
// so that 404 (no leaf) and 405 (leaf without the method) stay distinguishable.

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::detail {

struct path_param {
  std::string_view name;   // into the route_tree, valid for its lifetime
  std::string_view value;  // into the matched path, raw (still percent-encoded)
};

constexpr std::size_t max_path_params = 16;

// Fixed capacity so that matching a request never touches the heap.
class path_params {
 public:
  void clear() noexcept { size_ = 0; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  path_param const* begin() const noexcept { return items_.data(); }
  path_param const* end() const noexcept { return items_.data() + size_; }
  path_param const& operator[](std::size_t i) const noexcept { return items_[i]; }

  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (auto const& p : *this)
      if (p.name == name) return p.value;
    return std::nullopt;
  }

  bool push(path_param p) noexcept {
    if (size_ == items_.size()) return false;
    items_[size_++] = p;
    return true;
  }

 private:
  std::array<path_param, max_path_params> items_{};
  std::size_t size_ = 0;
};

// A trie of path segments. Each node has sorted static children, at most one {param}
// child and at most one {*wildcard} leaf; param names live per leaf, not per node, so
// "/a/{id}/x" and "/a/{name}/y" can coexist. Built at startup, then only read:
// match() is const, lock-free and allocation-free.
class route_tree {
 public:
  static constexpr std::size_t npos = std::size_t(-1);

  // Returns the leaf index of `pattern`, adding it if new. Throws std::invalid_argument
  // (quoting the pattern) if it is malformed or conflicts with an existing one; the
  // tree is unchanged when that happens.
  std::size_t insert(std::string_view pattern);

  // Priority per segment is static > {param} > {*wildcard}, with backtracking.
  // Clears `params`, fills it on success. Returns npos when nothing matches.
  std::size_t match(std::string_view path, path_params& params) const;

  // Views stay valid while the tree lives, across later inserts too.
  std::string_view pattern(std::size_t leaf) const;
  std::size_t size() const noexcept { return leaves_.size(); }

 private:
  using node_id = std::uint32_t;
  static constexpr node_id no_node = node_id(-1);

  struct static_edge {
    std::string segment;
    node_id child;
  };
  struct node {
    std::vector<static_edge> statics;  // sorted by segment: binary search, no scan
    node_id param = no_node;
    std::size_t leaf = npos;           // a pattern ends at this node
    std::size_t wildcard_leaf = npos;  // a pattern ends with {*name} below this node
  };
  // Offsets rather than views, so copies of the tree stay self-contained.
  struct name_ref {
    std::uint32_t offset;
    std::uint32_t size;
  };
  struct leaf_info {
    std::string pattern;
    std::vector<name_ref> names;  // in path order, the wildcard (if any) last
  };
  using values = std::array<std::string_view, max_path_params>;

  node_id static_child(node_id parent, std::string_view segment);
  node_id param_child(node_id parent);
  std::size_t match_from(node_id id, std::string_view path, std::size_t pos,
                         std::size_t depth, values& found) const;

  std::vector<node> nodes_ = std::vector<node>(1);  // nodes_[0] is the root
  std::deque<leaf_info> leaves_;  // a deque never moves its elements: stable pattern()
};

}  // namespace keel::detail
