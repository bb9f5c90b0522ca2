#include "http/route_tree.hpp"

#include <algorithm>
#include <stdexcept>

namespace keel::detail {
namespace {

enum class segment_kind { literal, param, wildcard };

struct segment {
  segment_kind kind;
  std::string_view text;  // the literal, or the parameter name; a view into the pattern
};

[[noreturn]] void fail(std::string_view pattern, std::string_view why) {
  std::string msg = "route pattern \"";
  msg.append(pattern).append("\": ").append(why);
  throw std::invalid_argument(msg);
}

bool valid_name(std::string_view name) {
  auto const alpha = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  auto const digit = [](char c) { return c >= '0' && c <= '9'; };
  if (name.empty() || !alpha(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return alpha(c) || digit(c); });
}

std::string quoted(std::string_view s) {
  std::string q = "\"";
  q.append(s).append("\"");
  return q;
}

segment parse_segment(std::string_view pattern, std::string_view s) {
  bool const has_open = s.find('{') != s.npos;
  bool const has_close = s.find('}') != s.npos;
  if (!has_open && !has_close) return {segment_kind::literal, s};
  if (s.front() == '{' && !has_close) fail(pattern, "unclosed '{'");
  // Exactly one brace pair enclosing the whole segment; "a{b}" is not supported
  // because a param that shares its segment with text makes matching ambiguous.
  if (s.size() < 2 || s.front() != '{' || s.back() != '}' ||
      s.find_first_of("{}", 1) != s.size() - 1)
    fail(pattern, "a parameter must be a whole segment, like /{name}");
  std::string_view inner = s.substr(1, s.size() - 2);
  segment_kind kind = segment_kind::param;
  if (!inner.empty() && inner.front() == '*') {
    kind = segment_kind::wildcard;
    inner.remove_prefix(1);
  }
  if (inner.empty()) fail(pattern, "empty parameter name");
  if (!valid_name(inner))
    fail(pattern, "invalid parameter name " + quoted(inner) +
                      " (use letters, digits and '_', not starting with a digit)");
  return {kind, inner};
}

std::vector<segment> parse(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') fail(pattern, "must start with '/'");
  std::vector<segment> out;
  std::size_t params = 0;
  std::size_t pos = 1;
  for (;;) {
    std::size_t const slash = pattern.find('/', pos);
    segment const seg = parse_segment(pattern, pattern.substr(pos, slash - pos));
    if (!out.empty() && out.back().kind == segment_kind::wildcard)
      fail(pattern, "the wildcard {*" + std::string(out.back().text) +
                        "} must be the last segment");
    if (seg.kind != segment_kind::literal) {
      for (auto const& prev : out)
        if (prev.kind != segment_kind::literal && prev.text == seg.text)
          fail(pattern, "parameter " + quoted(seg.text) + " appears twice");
      if (++params > max_path_params)
        fail(pattern, "more than " + std::to_string(max_path_params) + " parameters");
    }
    out.push_back(seg);
    if (slash == pattern.npos) break;
    pos = slash + 1;
  }
  return out;
}

// For std::lower_bound over a node's sorted static edges.
constexpr auto by_segment = [](auto const& edge, std::string_view s) { return edge.segment < s; };

}  // namespace

route_tree::node_id route_tree::static_child(node_id parent, std::string_view segment) {
  auto& edges = nodes_[parent].statics;
  auto it = std::lower_bound(edges.begin(), edges.end(), segment, by_segment);
  if (it != edges.end() && it->segment == segment) return it->child;
  auto const child = static_cast<node_id>(nodes_.size());
  edges.insert(it, static_edge{std::string(segment), child});
  nodes_.emplace_back();  // after the insert: it may reallocate and invalidate `edges`
  return child;
}

route_tree::node_id route_tree::param_child(node_id parent) {
  if (nodes_[parent].param != no_node) return nodes_[parent].param;
  auto const child = static_cast<node_id>(nodes_.size());
  nodes_.emplace_back();
  nodes_[parent].param = child;
  return child;
}

std::size_t route_tree::insert(std::string_view pattern) {
  std::vector<segment> const segments = parse(pattern);
  bool const wildcard = segments.back().kind == segment_kind::wildcard;
  node_id at = 0;
  for (std::size_t i = 0; i < segments.size() - (wildcard ? 1 : 0); ++i)
    at = segments[i].kind == segment_kind::literal ? static_child(at, segments[i].text)
                                                   : param_child(at);

  std::size_t& slot = wildcard ? nodes_[at].wildcard_leaf : nodes_[at].leaf;
  if (slot != npos) {
    // Same shape at the same place: identical text is a re-registration (another
    // method), anything else differs only in names and would be unreachable.
    if (leaves_[slot].pattern == pattern) return slot;
    fail(pattern, "conflicts with " + quoted(leaves_[slot].pattern) +
                      ": they match the same paths and differ only in parameter names");
  }

  leaf_info leaf{std::string(pattern), {}};
  for (auto const& s : segments)
    if (s.kind != segment_kind::literal)
      leaf.names.push_back({static_cast<std::uint32_t>(s.text.data() - pattern.data()),
                            static_cast<std::uint32_t>(s.text.size())});
  leaves_.push_back(std::move(leaf));
  slot = leaves_.size() - 1;
  return slot;
}

// `pos` is where the next segment starts, or npos once the path is used up; an empty
// segment at the end (pos == size) is what makes a trailing slash significant.
// Every node consumes exactly one segment, so each is visited at most once per match:
// backtracking is bounded by the tree, not exponential.
std::size_t route_tree::match_from(node_id id, std::string_view path, std::size_t pos,
                                   std::size_t depth, values& found) const {
  node const& n = nodes_[id];
  if (pos == path.npos) return n.leaf;
  std::size_t const slash = path.find('/', pos);
  std::string_view const seg = path.substr(pos, slash - pos);
  std::size_t const next = slash == path.npos ? path.npos : slash + 1;

  auto it = std::lower_bound(n.statics.begin(), n.statics.end(), seg, by_segment);
  if (it != n.statics.end() && it->segment == seg) {
    if (auto leaf = match_from(it->child, path, next, depth, found); leaf != npos) return leaf;
  }
  // insert() caps params per pattern, so depth < max_path_params always holds here;
  // the checks keep `found` in bounds regardless.
  if (n.param != no_node && !seg.empty() && depth < max_path_params) {
    found[depth] = seg;
    if (auto leaf = match_from(n.param, path, next, depth + 1, found); leaf != npos)
      return leaf;
  }
  if (n.wildcard_leaf != npos && depth < max_path_params) {
    found[depth] = path.substr(pos);
    return n.wildcard_leaf;
  }
  return npos;
}

std::size_t route_tree::match(std::string_view path, path_params& params) const {
  params.clear();
  if (path.empty() || path.front() != '/') return npos;
  values found;
  std::size_t const leaf = match_from(0, path, 1, 0, found);
  if (leaf == npos) return npos;
  leaf_info const& info = leaves_[leaf];
  for (std::size_t i = 0; i < info.names.size(); ++i)
    params.push({std::string_view(info.pattern).substr(info.names[i].offset, info.names[i].size),
                 found[i]});
  return leaf;
}

std::string_view route_tree::pattern(std::size_t leaf) const { return leaves_.at(leaf).pattern; }

}  // namespace keel::detail
