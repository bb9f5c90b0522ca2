// apps/todo against SPEC §4: the built binary as a subprocess on a real socket
// and a real SQLite file, plus the routes in-process to prove that SQLite
// never runs on an I/O thread.
#include <catch2/catch.hpp>

#include "api.hpp"
#include "store.hpp"

#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/offload.hpp>
#include <keel/testing.hpp>

#include <boost/json.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef TODO_BIN
#error "TODO_BIN must name the todo executable"
#endif

extern char** environ;

namespace fs = std::filesystem;
namespace kt = keel::testing;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr char const* secret = "test-secret-0123456789-0123456789";  // 33 bytes: HS256 wants 32

// --- a scratch directory -----------------------------------------------------

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/keel_todo_test_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(std::string const& name) const { return (path / name).string(); }
};

// --- the todo binary as a child process --------------------------------------

// The environment without KEEL_* settings, so only the test's flags count.
std::vector<std::string> clean_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "KEEL_", 5) != 0) env.emplace_back(*e);
  }
  return env;
}

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class child {
 public:
  child(std::vector<std::string> args, std::string const& stderr_file,
        std::vector<std::string> env = clean_environment()) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
    args.insert(args.begin(), TODO_BIN);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, TODO_BIN, &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    out_ = out[0];
    REQUIRE(rc == 0);
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  child(child const&) = delete;
  child& operator=(child const&) = delete;

  /// Everything the child writes to stdout until it closes it or `limit` passes.
  std::string read_stdout(std::chrono::milliseconds limit = 10s, bool one_line = false) {
    std::string got;
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (one_line && got.find('\n') != std::string::npos) break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      auto n = ::read(out_, buf, one_line ? 1 : sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }

  /// Waits for the child to exit; its exit code, or -1 after `limit`.
  int wait(std::chrono::milliseconds limit = 15s) {
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      auto r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > end) return -1;
      std::this_thread::sleep_for(5ms);
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

std::string slurp(std::string const& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs todo to completion (subcommands, refusals).
run_result run_todo(std::vector<std::string> args, temp_dir const& dir,
                    std::vector<std::string> env = clean_environment()) {
  auto err = dir.file("run.stderr");
  std::remove(err.c_str());
  child c(std::move(args), err, std::move(env));
  run_result r;
  r.out = c.read_stdout();
  r.exit_code = c.wait();
  r.err = slurp(err);
  return r;
}

// A running todo server on a free port.
class server {
 public:
  server(temp_dir const& dir, std::string const& db = "todo.db")
      : log_(dir.file("server.stderr")),
        proc_({"--listen", "127.0.0.1:0", "--threads", "2", "--db", dir.file(db), "--jwt-secret", secret,
               "--drain-timeout", "5s"},
              log_) {
    auto line = proc_.read_stdout(10s, true);
    std::smatch m;
    std::regex re(R"(^listening on http://127\.0\.0\.1:(\d+)\n$)");
    INFO("stdout: " << line << "\nstderr: " << slurp(log_));
    REQUIRE(std::regex_match(line, m, re));
    port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
  }
  std::uint16_t port() const { return port_; }
  /// SIGTERM and the exit code.
  int stop() {
    proc_.signal(SIGTERM);
    return proc_.wait();
  }
  std::string log() const { return slurp(log_); }

 private:
  std::string log_;
  child proc_;
  std::uint16_t port_ = 0;
};

// --- JWTs made here, with OpenSSL, independent of keel -----------------------

std::string b64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<unsigned char const*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

std::string b64url_decode(std::string in) {
  for (auto& c : in) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
  }
  while (in.size() % 4) in += '=';
  std::string out(in.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<unsigned char const*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

std::string sign(std::string const& header, std::string const& payload, std::string_view key,
                 EVP_MD const* md = EVP_sha256()) {
  auto input = b64url(header) + "." + b64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<unsigned char const*>(input.data()),
       input.size(), mac, &len);
  return input + "." + b64url(std::string_view(reinterpret_cast<char const*>(mac), len));
}

long long now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string claims(std::string const& sub, long long exp) {
  return R"({"sub":")" + sub + R"(","exp":)" + std::to_string(exp) + "}";
}

constexpr char const* hs256 = R"({"alg":"HS256","typ":"JWT"})";

std::string token_for(std::string const& sub) { return sign(hs256, claims(sub, now_s() + 600), secret); }

// Changes one character of a token.
std::string tamper(std::string token, std::size_t at) {
  token[at] = token[at] == 'A' ? 'B' : 'A';
  return token;
}

kt::header_list auth(std::string const& token) { return {{"Authorization", "Bearer " + token}}; }

// --- requests ------------------------------------------------------------------

struct reply {
  unsigned status = 0;
  json::value body;
  kt::http_response raw;
};

reply call(std::uint16_t port, std::string_view method, std::string_view target, std::string const& user,
           std::string body = {}) {
  auto headers = auth(token_for(user));
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  reply r;
  r.raw = kt::request(port, method, target, std::move(body), std::move(headers));
  r.status = r.raw.status;
  if (!r.raw.body.empty()) {
    boost::system::error_code ec;
    r.body = json::parse(r.raw.body, ec);
  }
  return r;
}

std::string field_of(json::value const& problem) {
  auto const* errors = problem.as_object().if_contains("errors");
  if (!errors || errors->as_array().empty()) return "(no errors)";
  return std::string(errors->as_array()[0].as_object().at("field").as_string());
}

bool rfc3339_utc(std::string_view s) {
  static std::regex const re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$)");
  return std::regex_match(std::string(s), re);
}

}  // namespace

// =============================================================================

TEST_CASE("todo refuses to start without a JWT secret and names the setting", "[todo]") {
  temp_dir dir;
  auto r = run_todo({"--listen", "127.0.0.1:0", "--db", dir.file("t.db")}, dir);
  CHECK(r.exit_code != 0);
  CHECK(r.out.find("listening") == std::string::npos);
  CHECK(r.err.find("jwt_secret") != std::string::npos);
  CHECK(r.err.find("--jwt-secret") != std::string::npos);
  CHECK(r.err.find("KEEL_JWT_SECRET") != std::string::npos);
}

TEST_CASE("todo refuses a JWT secret under 32 bytes, naming the setting, and starts with 32", "[todo][auth]") {
  temp_dir dir;
  std::string const short_secret(31, 's');
  auto r = run_todo({"--listen", "127.0.0.1:0", "--db", dir.file("t.db"), "--jwt-secret", short_secret}, dir);
  CHECK(r.exit_code != 0);
  CHECK(r.out.find("listening") == std::string::npos);
  CHECK(r.err.find("jwt_secret") != std::string::npos);
  CHECK(r.err.find("32") != std::string::npos);
  CHECK(r.err.find(short_secret) == std::string::npos);  // never echoed

  auto env = clean_environment();
  env.push_back("KEEL_JWT_SECRET=" + short_secret);
  auto tok = run_todo({"token", "--sub", "alice"}, dir, env);
  CHECK(tok.exit_code != 0);
  CHECK(tok.err.find("jwt_secret") != std::string::npos);

  auto err = dir.file("ok.stderr");
  child ok({"--listen", "127.0.0.1:0", "--db", dir.file("t.db"), "--jwt-secret", std::string(32, 's')}, err);
  auto line = ok.read_stdout(10s, true);
  INFO("stderr: " << slurp(err));
  CHECK(line.rfind("listening on http://127.0.0.1:", 0) == 0);
  ok.signal(SIGTERM);
  CHECK(ok.wait() == 0);
}

TEST_CASE("todo token prints a token valid for an hour that the server accepts", "[todo][auth]") {
  temp_dir dir;
  auto env = clean_environment();
  env.push_back(std::string("KEEL_JWT_SECRET=") + secret);
  auto r = run_todo({"token", "--sub", "alice"}, dir, env);
  REQUIRE(r.exit_code == 0);
  REQUIRE(!r.out.empty());
  REQUIRE(r.out.back() == '\n');
  auto token = r.out.substr(0, r.out.size() - 1);
  auto dot1 = token.find('.');
  auto dot2 = token.find('.', dot1 + 1);
  REQUIRE(dot2 != std::string::npos);
  auto header = json::parse(b64url_decode(token.substr(0, dot1)));
  auto payload = json::parse(b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1)));
  CHECK(header.at("alg") == "HS256");
  CHECK(payload.at("sub") == "alice");
  auto exp = payload.at("exp").to_number<long long>();
  CHECK(exp >= now_s() + 3590);
  CHECK(exp <= now_s() + 3610);
  // The signature is what this test computes itself.
  CHECK(token == sign(b64url_decode(token.substr(0, dot1)), b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1)),
                      secret));

  server s(dir);
  auto res = kt::request(s.port(), "GET", "/api/todos", {}, auth(token));
  CHECK(res.status == 200);
  CHECK(s.stop() == 0);

  auto no_sub = run_todo({"token", "--jwt-secret", secret}, dir);
  CHECK(no_sub.exit_code != 0);
  CHECK(no_sub.err.find("--sub") != std::string::npos);
}

TEST_CASE("requests without a valid HS256 bearer token get 401 with WWW-Authenticate", "[todo][auth]") {
  temp_dir dir;
  server s(dir);
  auto exp = now_s() + 600;
  struct attempt {
    char const* what;
    kt::header_list headers;
  };
  std::vector<attempt> attempts = {
      {"no Authorization", {}},
      {"not a JWT", auth("garbage")},
      {"Basic scheme", {{"Authorization", "Basic YWxpY2U6cHc="}}},
      {"wrong secret", auth(sign(hs256, claims("alice", exp), "another-secret"))},
      {"tampered payload", auth(tamper(sign(hs256, claims("alice", exp), secret), 40))},
      {"alg none, unsigned", auth(b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(claims("alice", exp)) + ".")},
      {"alg none, signed anyway", auth(sign(R"({"alg":"none","typ":"JWT"})", claims("alice", exp), secret))},
      {"HS512", auth(sign(R"({"alg":"HS512","typ":"JWT"})", claims("alice", exp), secret, EVP_sha512()))},
      {"expired", auth(sign(hs256, claims("alice", now_s() - 60), secret))},
      {"no sub", auth(sign(hs256, R"({"exp":)" + std::to_string(exp) + "}", secret))},
      {"no exp", auth(sign(hs256, R"({"sub":"alice"})", secret))},
  };
  for (auto const& a : attempts) {
    INFO(a.what);
    auto res = kt::request(s.port(), "GET", "/api/todos", {}, a.headers);
    CHECK(res.status == 401);
    CHECK(res.header("WWW-Authenticate").rfind("Bearer", 0) == 0);
    CHECK(res.header("Content-Type").rfind("application/problem+json", 0) == 0);
    auto post = kt::request(s.port(), "POST", "/api/todos", R"({"title":"x"})", a.headers);
    CHECK(post.status == 401);
  }
  // The same claims signed properly pass: the refusals above were about the token.
  CHECK(kt::request(s.port(), "GET", "/api/todos", {}, auth(sign(hs256, claims("alice", exp), secret))).status ==
        200);
  CHECK(s.stop() == 0);
}

TEST_CASE("a todo is created, read, changed and deleted", "[todo]") {
  temp_dir dir;
  server s(dir);
  auto p = s.port();

  auto made = call(p, "POST", "/api/todos", "alice", R"({"title":"buy milk"})");
  REQUIRE(made.status == 201);
  auto const& t = made.body.as_object();
  auto id = t.at("id").to_number<long long>();
  CHECK(id > 0);
  CHECK(made.raw.header("Location") == "/api/todos/" + std::to_string(id));
  CHECK(made.raw.header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(t.at("title") == "buy milk");
  CHECK(t.at("done") == false);
  CHECK(rfc3339_utc(t.at("created_at").as_string()));
  CHECK(t.size() == 4);

  auto done_from_start = call(p, "POST", "/api/todos", "alice", R"({"title":"done already","done":true})");
  CHECK(done_from_start.status == 201);
  CHECK(done_from_start.body.at("done") == true);

  auto got = call(p, "GET", made.raw.header("Location"), "alice");
  CHECK(got.status == 200);
  CHECK(got.body == made.body);

  auto renamed = call(p, "PATCH", "/api/todos/" + std::to_string(id), "alice", R"({"title":"buy oat milk"})");
  CHECK(renamed.status == 200);
  CHECK(renamed.body.at("title") == "buy oat milk");
  CHECK(renamed.body.at("done") == false);
  auto finished = call(p, "PATCH", "/api/todos/" + std::to_string(id), "alice", R"({"done":true})");
  CHECK(finished.status == 200);
  CHECK(finished.body.at("done") == true);
  CHECK(finished.body.at("title") == "buy oat milk");
  CHECK(finished.body.at("created_at") == t.at("created_at"));
  auto both = call(p, "PATCH", "/api/todos/" + std::to_string(id), "alice", R"({"title":"tea","done":false})");
  CHECK(both.status == 200);
  CHECK(both.body.at("title") == "tea");
  CHECK(both.body.at("done") == false);

  auto gone = call(p, "DELETE", "/api/todos/" + std::to_string(id), "alice");
  CHECK(gone.status == 204);
  CHECK(gone.raw.body.empty());
  CHECK(call(p, "GET", "/api/todos/" + std::to_string(id), "alice").status == 404);
  CHECK(call(p, "DELETE", "/api/todos/" + std::to_string(id), "alice").status == 404);
  CHECK(call(p, "PATCH", "/api/todos/" + std::to_string(id), "alice", R"({"done":true})").status == 404);
  CHECK(call(p, "GET", "/api/todos/999999", "alice").status == 404);
  CHECK(call(p, "GET", "/api/todos/not-a-number", "alice").status == 404);
  CHECK(s.stop() == 0);
}

TEST_CASE("bad bodies are 400 when not JSON and 422 naming the field otherwise", "[todo][validation]") {
  temp_dir dir;
  server s(dir);
  auto p = s.port();
  auto made = call(p, "POST", "/api/todos", "alice", R"({"title":"x"})");
  REQUIRE(made.status == 201);
  auto item = "/api/todos/" + std::to_string(made.body.at("id").to_number<long long>());

  struct bad {
    char const* method;
    std::string target;
    std::string body;
    std::string field;
  };
  std::vector<bad> cases = {
      {"POST", "/api/todos", R"({})", "/title"},
      {"POST", "/api/todos", R"({"title":""})", "/title"},
      {"POST", "/api/todos", R"({"title":")" + std::string(201, 'a') + R"("})", "/title"},
      {"POST", "/api/todos", R"({"title":123})", "/title"},
      {"POST", "/api/todos", R"({"title":null})", "/title"},
      {"POST", "/api/todos", R"({"title":["a"]})", "/title"},
      {"POST", "/api/todos", R"({"title":"ok","done":"yes"})", "/done"},
      {"POST", "/api/todos", R"([1,2])", ""},
      {"PATCH", item, R"({"title":""})", "/title"},
      {"PATCH", item, R"({"title":false})", "/title"},
      {"PATCH", item, R"({"done":1})", "/done"},
      {"PATCH", item, R"({})", ""},
  };
  for (auto const& c : cases) {
    INFO(c.method << " " << c.body);
    auto r = call(p, c.method, c.target, "alice", c.body);
    CHECK(r.status == 422);
    CHECK(r.raw.header("Content-Type").rfind("application/problem+json", 0) == 0);
    REQUIRE(r.body.is_object());
    CHECK(r.body.at("status") == 422);
    CHECK(field_of(r.body) == c.field);
  }
  // 200 characters is the limit, counted as characters, not bytes.
  std::string two_hundred;
  for (int i = 0; i < 200; ++i) two_hundred += "\xC3\xA9";  // é
  CHECK(call(p, "POST", "/api/todos", "alice", R"({"title":")" + two_hundred + R"("})").status == 201);
  CHECK(call(p, "POST", "/api/todos", "alice", R"({"title":")" + std::string(200, 'a') + R"("})").status == 201);

  for (auto const* body : {R"({"title":)", "not json", R"({"title":"x"} trailing)"}) {
    INFO(body);
    CHECK(call(p, "POST", "/api/todos", "alice", body).status == 400);
    CHECK(call(p, "PATCH", item, "alice", body).status == 400);
  }
  CHECK(call(p, "GET", item, "alice").body.at("title") == "x");
  CHECK(s.stop() == 0);
}

TEST_CASE("users see only their own todos", "[todo][auth]") {
  temp_dir dir;
  server s(dir);
  auto p = s.port();
  auto mine = call(p, "POST", "/api/todos", "alice", R"({"title":"alice's"})");
  REQUIRE(mine.status == 201);
  auto item = mine.raw.header("Location");

  CHECK(call(p, "GET", item, "bob").status == 404);
  CHECK(call(p, "PATCH", item, "bob", R"({"title":"bob was here"})").status == 404);
  CHECK(call(p, "DELETE", item, "bob").status == 404);
  auto bobs = call(p, "GET", "/api/todos", "bob");
  CHECK(bobs.status == 200);
  CHECK(bobs.body.at("items").as_array().empty());
  CHECK(bobs.body.at("next").is_null());

  auto still = call(p, "GET", item, "alice");
  CHECK(still.status == 200);
  CHECK(still.body.at("title") == "alice's");
  CHECK(call(p, "GET", "/api/todos", "alice").body.at("items").as_array().size() == 1);
  CHECK(s.stop() == 0);
}

TEST_CASE("the list paginates with limit and after, and next is null on the last page", "[todo]") {
  temp_dir dir;
  server s(dir);
  auto p = s.port();
  std::vector<long long> ids;
  for (int i = 0; i < 55; ++i) {
    auto r = call(p, "POST", "/api/todos", "alice", R"({"title":"t)" + std::to_string(i) + R"("})");
    REQUIRE(r.status == 201);
    ids.push_back(r.body.at("id").to_number<long long>());
  }
  call(p, "POST", "/api/todos", "bob", R"({"title":"not alice's"})");

  auto first = call(p, "GET", "/api/todos", "alice");
  REQUIRE(first.status == 200);
  CHECK(first.body.at("items").as_array().size() == 50);  // the default limit
  CHECK(first.body.at("next") == ids[49]);

  // Walk in pages of 20: 20, 20, 15.
  std::vector<long long> seen;
  std::string target = "/api/todos?limit=20";
  int pages = 0;
  for (;;) {
    auto r = call(p, "GET", target, "alice");
    REQUIRE(r.status == 200);
    ++pages;
    for (auto const& it : r.body.at("items").as_array()) seen.push_back(it.at("id").to_number<long long>());
    REQUIRE(r.body.as_object().contains("next"));
    auto const& next = r.body.at("next");
    if (next.is_null()) break;
    REQUIRE(pages < 10);
    target = "/api/todos?limit=20&after=" + std::to_string(next.to_number<long long>());
  }
  CHECK(pages == 3);
  CHECK(seen == ids);

  // An exactly full last page still says null.
  auto exact = call(p, "GET", "/api/todos?limit=5&after=" + std::to_string(ids[49]), "alice");
  CHECK(exact.body.at("items").as_array().size() == 5);
  CHECK(exact.body.at("next").is_null());

  auto all = call(p, "GET", "/api/todos?limit=1000", "alice");  // read as 200
  CHECK(all.status == 200);
  CHECK(all.body.at("items").as_array().size() == 55);
  CHECK(all.body.at("next").is_null());

  for (auto const* bad : {"/api/todos?limit=0", "/api/todos?limit=-1", "/api/todos?limit=abc", "/api/todos?after=x"}) {
    INFO(bad);
    CHECK(call(p, "GET", bad, "alice").status == 400);
  }
  CHECK(s.stop() == 0);
}

TEST_CASE("todos survive a restart on the same database", "[todo]") {
  temp_dir dir;
  std::string location;
  {
    server s(dir, "keep.db");
    auto r = call(s.port(), "POST", "/api/todos", "alice", R"({"title":"remember me"})");
    REQUIRE(r.status == 201);
    location = r.raw.header("Location");
    CHECK(s.stop() == 0);
  }
  server again(dir, "keep.db");
  auto r = call(again.port(), "GET", location, "alice");
  CHECK(r.status == 200);
  CHECK(r.body.at("title") == "remember me");
  auto next = call(again.port(), "POST", "/api/todos", "alice", R"({"title":"second"})");
  CHECK(next.status == 201);
  CHECK(next.raw.header("Location") != location);  // ids are not reused
  CHECK(again.stop() == 0);
}

TEST_CASE("fifty concurrent writers all succeed and no row is lost", "[todo][concurrency]") {
  temp_dir dir;
  server s(dir);
  auto p = s.port();
  constexpr int writers = 50, each = 4;
  std::atomic<int> created{0}, failed{0}, server_errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      kt::client c(p);
      for (int i = 0; i < each; ++i) {
        auto body = R"({"title":"w)" + std::to_string(w) + "-" + std::to_string(i) + R"("})";
        auto res = c.request("POST", "/api/todos", body, auth(token_for("crowd")));
        if (res.status == 201) created++;
        else failed++;
        if (res.status >= 500) server_errors++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(created == writers * each);
  CHECK(failed == 0);
  CHECK(server_errors == 0);

  auto all = call(p, "GET", "/api/todos?limit=200", "crowd");
  REQUIRE(all.status == 200);
  std::set<std::string> titles;
  std::set<long long> ids;
  for (auto const& it : all.body.at("items").as_array()) {
    titles.insert(std::string(it.at("title").as_string()));
    ids.insert(it.at("id").to_number<long long>());
  }
  CHECK(titles.size() == std::size_t(writers * each));
  CHECK(ids.size() == std::size_t(writers * each));
  CHECK(titles.count("w0-0") == 1);
  CHECK(titles.count("w49-3") == 1);
  CHECK(all.body.at("next").is_null());
  CHECK(s.stop() == 0);
}

TEST_CASE("every SQLite statement runs on an offload worker, never on an I/O thread", "[todo][offload]") {
  temp_dir dir;
  auto db = std::make_shared<todo::store>(todo::store::settings{.path = dir.file("inproc.db")});
  CHECK(db->schema_version() == 2);

  std::mutex m;
  std::set<std::thread::id> io_threads, sql_threads;
  int statements = 0, off_worker = 0;
  todo::store::on_statement([&] {
    std::lock_guard lock(m);
    ++statements;
    sql_threads.insert(std::this_thread::get_id());
    if (!keel::offload_pool::on_worker_thread()) ++off_worker;
  });

  keel::options o;
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  keel::app app(o);
  app.use([&](keel::context& ctx, keel::next next) -> keel::task<keel::response> {
    {
      std::lock_guard lock(m);
      io_threads.insert(std::this_thread::get_id());
    }
    auto res = co_await next();
    {
      std::lock_guard lock(m);
      io_threads.insert(std::this_thread::get_id());  // resumed on the same I/O thread
    }
    (void)ctx;
    co_return res;
  });
  todo::add_routes(app, db, secret);
  {
    kt::running_app run(app);
    auto p = run.port();
    for (int i = 0; i < 10; ++i) {
      auto r = call(p, "POST", "/api/todos", "alice", R"({"title":"x"})");
      REQUIRE(r.status == 201);
      auto item = r.raw.header("Location");
      CHECK(call(p, "GET", item, "alice").status == 200);
      CHECK(call(p, "PATCH", item, "alice", R"({"done":true})").status == 200);
      CHECK(call(p, "GET", "/api/todos", "alice").status == 200);
      CHECK(call(p, "DELETE", item, "alice").status == 204);
    }
  }
  todo::store::on_statement({});
  std::lock_guard lock(m);
  CHECK(statements >= 50);
  CHECK(off_worker == 0);
  CHECK_FALSE(io_threads.empty());
  for (auto const& id : sql_threads) CHECK(io_threads.count(id) == 0);
  CHECK(db->pool_stats().in_use == 0);
}
