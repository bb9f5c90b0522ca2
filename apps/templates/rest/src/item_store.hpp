#pragma once
// Where items live. The interface keeps the routes independent of storage:
// memory_store below is for development and tests; for a real database hold
// its connections in keel::pool and run its calls through keel::offload (see
// keel's docs/pool.md and its apps/todo, which does this with SQLite).
#include <keel/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace {{ident}} {

struct item {
  std::int64_t id = 0;
  std::string name;
  std::int64_t quantity = 0;
};
BOOST_DESCRIBE_STRUCT(item, (), (id, name, quantity))

/// A create or a partial update: absent members stay as they are.
struct item_fields {
  std::optional<std::string> name;
  std::optional<std::int64_t> quantity;
};
BOOST_DESCRIBE_STRUCT(item_fields, (), (name, quantity))

class item_store {
 public:
  virtual ~item_store() = default;
  virtual std::vector<item> list() const = 0;
  virtual std::optional<item> find(std::int64_t id) const = 0;
  virtual item create(std::string name, std::int64_t quantity) = 0;
  /// The updated item, or nullopt when there is none with that id.
  virtual std::optional<item> update(std::int64_t id, item_fields const& f) = 0;
  virtual bool remove(std::int64_t id) = 0;
};

/// Thread-safe (handlers run on every I/O thread); forgets everything on exit.
class memory_store final : public item_store {
 public:
  std::vector<item> list() const override;
  std::optional<item> find(std::int64_t id) const override;
  item create(std::string name, std::int64_t quantity) override;
  std::optional<item> update(std::int64_t id, item_fields const& f) override;
  bool remove(std::int64_t id) override;

 private:
  mutable std::mutex mutex_;
  std::map<std::int64_t, item> items_;
  std::int64_t next_id_ = 1;
};

}  // namespace {{ident}}
