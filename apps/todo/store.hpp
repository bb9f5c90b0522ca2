#pragma once
// The todo app's storage: SQLite in WAL mode, its connections held in a
// keel::pool and every statement run through keel::offload, so no SQLite call
// ever blocks an I/O thread.
//
//   todo::store db({.path = "todo.db"});          // opens, migrates (startup thread)
//   auto t = co_await db.create("alice", "milk", false);
//
// Each connection keeps its prepared statements for its whole life. Writes
// serialize in SQLite (one writer at a time, WAL); busy_timeout makes a writer
// wait for the lock instead of failing.
#include <keel/net.hpp>
#include <keel/pool.hpp>

#include <boost/describe/class.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace todo {

struct item {
  std::int64_t id = 0;
  std::string title;
  bool done = false;
  std::string created_at;  ///< RFC 3339, UTC, milliseconds: 2026-11-25T03:15:47.123Z
};
BOOST_DESCRIBE_STRUCT(item, (), (id, title, done, created_at))

struct page {
  std::vector<item> items;
  std::optional<std::int64_t> next;  ///< the `after` of the next page; none on the last
};

/// A database error (what() names the operation and SQLite's message).
class db_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One SQLite connection with its prepared statements. Blocking: use it on an
/// offload worker (it refuses other threads once `workers_only` is set).
class connection {
 public:
  static connection open(std::string const& path, std::chrono::milliseconds busy_timeout,
                         bool workers_only);
  connection(connection&& o) noexcept;
  connection& operator=(connection&&) = delete;
  ~connection();

  /// Applies the numbered migrations not yet in schema_version; returns the version.
  int migrate();
  int schema_version();

  page list(std::string const& owner, std::int64_t after, int limit);
  item insert(std::string const& owner, std::string const& title, bool done);
  std::optional<item> find(std::string const& owner, std::int64_t id);
  std::optional<item> update(std::string const& owner, std::int64_t id,
                             std::optional<std::string> const& title, std::optional<bool> done);
  bool remove(std::string const& owner, std::int64_t id);

 private:
  connection() = default;
  sqlite3_stmt* prepare(char const* sql);  // cached; reset and unbound
  void exec(char const* sql);
  void check_thread() const;
  [[noreturn]] void fail(char const* what) const;

  sqlite3* db_ = nullptr;
  std::map<char const*, sqlite3_stmt*> statements_;
  bool workers_only_ = true;
};

class store {
 public:
  struct settings {
    std::string path = "todo.db";
    std::size_t connections = 4;  ///< pool size; match offload_threads
    std::chrono::milliseconds busy_timeout{5000};
    std::chrono::milliseconds acquire_timeout{5000};
  };

  /// Opens the database and migrates it on the calling thread (startup, before
  /// the I/O threads run). Throws db_error naming the file when it cannot.
  explicit store(settings s);

  keel::task<page> list(std::string owner, std::int64_t after, int limit);
  keel::task<item> create(std::string owner, std::string title, bool done);
  keel::task<std::optional<item>> get(std::string owner, std::int64_t id);
  keel::task<std::optional<item>> update(std::string owner, std::int64_t id,
                                         std::optional<std::string> title, std::optional<bool> done);
  keel::task<bool> remove(std::string owner, std::int64_t id);

  int schema_version() const { return version_; }
  keel::pool_stats pool_stats() const { return pool_.stats(); }

  /// Test hook: runs on the thread of every SQLite statement. Set it before
  /// the server starts; not synchronized.
  static void on_statement(std::function<void()> hook);

 private:
  settings settings_;
  int version_ = 0;
  keel::pool<connection> pool_;
};

}  // namespace todo
