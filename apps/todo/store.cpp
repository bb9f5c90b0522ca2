#include "store.hpp"

#include <keel/error.hpp>
#include <keel/offload.hpp>

#include <sqlite3.h>

#include <string_view>
#include <utility>

namespace todo {

namespace {

std::function<void()> statement_hook;

// Numbered migrations: migration N is applied once, in order, and recorded in
// schema_version. Never edit one that has shipped; add the next number.
struct migration {
  int version;
  char const* sql;
};
constexpr migration migrations[] = {
    {1,
     "CREATE TABLE todos ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"  // ids are never reused: pages and 404s stay stable
     "  owner TEXT NOT NULL,"
     "  title TEXT NOT NULL,"
     "  done INTEGER NOT NULL DEFAULT 0,"
     "  created_at TEXT NOT NULL)"},
    {2, "CREATE INDEX todos_by_owner ON todos (owner, id)"},
};

// The statements, as static strings: their addresses key each connection's cache.
constexpr char const* sql_list =
    "SELECT id, title, done, created_at FROM todos WHERE owner = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
constexpr char const* sql_insert =
    "INSERT INTO todos (owner, title, done, created_at) "
    "VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
    "RETURNING id, title, done, created_at";
constexpr char const* sql_find =
    "SELECT id, title, done, created_at FROM todos WHERE owner = ?1 AND id = ?2";
constexpr char const* sql_update =
    "UPDATE todos SET title = coalesce(?3, title), done = coalesce(?4, done) "
    "WHERE owner = ?1 AND id = ?2 RETURNING id, title, done, created_at";
constexpr char const* sql_delete = "DELETE FROM todos WHERE owner = ?1 AND id = ?2";
constexpr char const* sql_version = "SELECT coalesce(max(version), 0) FROM schema_version";
constexpr char const* sql_record = "INSERT INTO schema_version (version) VALUES (?1)";

void bind_text(sqlite3_stmt* s, int i, std::string const& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

item read_item(sqlite3_stmt* s) {
  item t;
  t.id = sqlite3_column_int64(s, 0);
  auto const* title = reinterpret_cast<char const*>(sqlite3_column_text(s, 1));
  t.title.assign(title ? title : "", static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
  t.done = sqlite3_column_int(s, 2) != 0;
  auto const* at = reinterpret_cast<char const*>(sqlite3_column_text(s, 3));
  t.created_at = at ? at : "";
  return t;
}

// Resets a statement when the scope ends, whatever happened.
struct statement_scope {
  sqlite3_stmt* s;
  ~statement_scope() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

}  // namespace

connection connection::open(std::string const& path, std::chrono::milliseconds busy_timeout,
                            bool workers_only) {
  connection c;
  c.workers_only_ = workers_only;
  c.check_thread();
  // NOMUTEX: a connection is used by one lease holder at a time, so SQLite's
  // own per-connection mutex would only cost.
  int rc = sqlite3_open_v2(path.c_str(), &c.db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = c.db_ ? sqlite3_errmsg(c.db_) : sqlite3_errstr(rc);
    throw db_error("cannot open the database " + path + " (setting db): " + why);
  }
  sqlite3_busy_timeout(c.db_, static_cast<int>(busy_timeout.count()));
  sqlite3_extended_result_codes(c.db_, 1);
  c.exec("PRAGMA journal_mode = WAL");
  c.exec("PRAGMA synchronous = NORMAL");
  c.exec("PRAGMA foreign_keys = ON");
  return c;
}

connection::connection(connection&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      statements_(std::move(o.statements_)),
      workers_only_(o.workers_only_) {
  o.statements_.clear();
}

connection::~connection() {
  for (auto& [sql, s] : statements_) sqlite3_finalize(s);
  if (db_) sqlite3_close_v2(db_);
}

void connection::check_thread() const {
  // The invariant of SPEC §4: blocking SQLite work never runs on an I/O thread.
  if (workers_only_ && !keel::offload_pool::on_worker_thread())
    throw std::logic_error("todo: a SQLite call outside the offload pool");
  if (statement_hook) statement_hook();
}

void connection::fail(char const* what) const {
  int code = sqlite3_errcode(db_) & 0xff;
  std::string msg = std::string(what) + ": " + sqlite3_errmsg(db_);
  // A lock held longer than busy_timeout: the client may retry.
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) throw keel::service_unavailable("the database is busy");
  throw db_error(msg);
}

void connection::exec(char const* sql) {
  check_thread();
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw db_error(std::string("todo: ") + sql + ": " + msg);
  }
}

sqlite3_stmt* connection::prepare(char const* sql) {
  check_thread();
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
    fail("prepare");
  statements_.emplace(sql, s);
  return s;
}

int connection::schema_version() {
  exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY)");
  auto* s = prepare(sql_version);
  statement_scope scope{s};
  if (sqlite3_step(s) != SQLITE_ROW) fail("schema version");
  return sqlite3_column_int(s, 0);
}

int connection::migrate() {
  exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY)");
  // IMMEDIATE: two processes starting on one file take turns, and the second
  // sees the first's migrations.
  exec("BEGIN IMMEDIATE");
  try {
    int current = schema_version();
    for (auto const& m : migrations) {
      if (m.version <= current) continue;
      exec(m.sql);
      auto* s = prepare(sql_record);
      statement_scope scope{s};
      sqlite3_bind_int(s, 1, m.version);
      if (sqlite3_step(s) != SQLITE_DONE) fail("record migration");
      current = m.version;
    }
    exec("COMMIT");
    return current;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

page connection::list(std::string const& owner, std::int64_t after, int limit) {
  auto* s = prepare(sql_list);
  statement_scope scope{s};
  bind_text(s, 1, owner);
  sqlite3_bind_int64(s, 2, after);
  sqlite3_bind_int(s, 3, limit + 1);  // one more tells whether a next page exists
  page p;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) p.items.push_back(read_item(s));
  if (rc != SQLITE_DONE) fail("list todos");
  if (p.items.size() > static_cast<std::size_t>(limit)) {
    p.items.pop_back();
    p.next = p.items.back().id;
  }
  return p;
}

item connection::insert(std::string const& owner, std::string const& title, bool done) {
  auto* s = prepare(sql_insert);
  statement_scope scope{s};
  bind_text(s, 1, owner);
  bind_text(s, 2, title);
  sqlite3_bind_int(s, 3, done ? 1 : 0);
  if (sqlite3_step(s) != SQLITE_ROW) fail("insert todo");
  auto t = read_item(s);
  if (sqlite3_step(s) != SQLITE_DONE) fail("insert todo");
  return t;
}

std::optional<item> connection::find(std::string const& owner, std::int64_t id) {
  auto* s = prepare(sql_find);
  statement_scope scope{s};
  bind_text(s, 1, owner);
  sqlite3_bind_int64(s, 2, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail("find todo");
  return read_item(s);
}

std::optional<item> connection::update(std::string const& owner, std::int64_t id,
                                       std::optional<std::string> const& title,
                                       std::optional<bool> done) {
  auto* s = prepare(sql_update);
  statement_scope scope{s};
  bind_text(s, 1, owner);
  sqlite3_bind_int64(s, 2, id);
  if (title) bind_text(s, 3, *title);
  else sqlite3_bind_null(s, 3);
  if (done) sqlite3_bind_int(s, 4, *done ? 1 : 0);
  else sqlite3_bind_null(s, 4);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail("update todo");
  auto t = read_item(s);
  if (sqlite3_step(s) != SQLITE_DONE) fail("update todo");
  return t;
}

bool connection::remove(std::string const& owner, std::int64_t id) {
  auto* s = prepare(sql_delete);
  statement_scope scope{s};
  bind_text(s, 1, owner);
  sqlite3_bind_int64(s, 2, id);
  if (sqlite3_step(s) != SQLITE_DONE) fail("delete todo");
  return sqlite3_changes(db_) > 0;
}

namespace {

keel::pool_options<connection> pool_options_for(store::settings const& s) {
  keel::pool_options<connection> o;
  o.max_size = std::max<std::size_t>(s.connections, 1);
  o.acquire_timeout = s.acquire_timeout;
  o.max_idle_time = std::chrono::minutes(5);
  o.max_lifetime = std::chrono::hours(1);
  o.metrics_name = "todo_sqlite";
  o.factory = keel::offloaded([path = s.path, busy = s.busy_timeout] {
    return connection::open(path, busy, true);
  });
  return o;
}

}  // namespace

store::store(settings s) : settings_(std::move(s)), pool_(pool_options_for(settings_)) {
  // Startup: the I/O threads do not run yet, so this thread may block.
  auto c = connection::open(settings_.path, settings_.busy_timeout, false);
  version_ = c.migrate();
}

void store::on_statement(std::function<void()> hook) { statement_hook = std::move(hook); }

// Each operation: a lease on a connection, then the statement on an offload
// worker. The closures are named before the co_await (g++ 12, see docs/offload.md).
keel::task<page> store::list(std::string owner, std::int64_t after, int limit) {
  auto conn = co_await pool_.acquire();
  auto work = [&] { return conn->list(owner, after, limit); };
  co_return co_await keel::offload(work);
}

keel::task<item> store::create(std::string owner, std::string title, bool done) {
  auto conn = co_await pool_.acquire();
  auto work = [&] { return conn->insert(owner, title, done); };
  co_return co_await keel::offload(work);
}

keel::task<std::optional<item>> store::get(std::string owner, std::int64_t id) {
  auto conn = co_await pool_.acquire();
  auto work = [&] { return conn->find(owner, id); };
  co_return co_await keel::offload(work);
}

keel::task<std::optional<item>> store::update(std::string owner, std::int64_t id,
                                              std::optional<std::string> title,
                                              std::optional<bool> done) {
  auto conn = co_await pool_.acquire();
  auto work = [&] { return conn->update(owner, id, title, done); };
  co_return co_await keel::offload(work);
}

keel::task<bool> store::remove(std::string owner, std::int64_t id) {
  auto conn = co_await pool_.acquire();
  auto work = [&] { return conn->remove(owner, id); };
  co_return co_await keel::offload(work);
}

}  // namespace todo
