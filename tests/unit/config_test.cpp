#include <keel/config.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

// A JSON file that removes itself.
struct temp_json {
  std::string path;
  explicit temp_json(std::string const& text) {
    char name[] = "/tmp/keel_config_test_XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    path = name;
  }
  ~temp_json() { std::remove(path.c_str()); }
};

struct fake_env {
  std::map<std::string, std::string> vars;
  std::function<char const*(char const*)> fn() const {
    return [this](char const* name) -> char const* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

// Loads and returns the message of the config_error it must throw.
std::string load_error(keel::config& cfg, std::vector<std::string> const& args, fake_env const& env = {}) {
  try {
    cfg.load(args, env.fn());
  } catch (keel::config_error const& e) {
    return e.what();
  }
  FAIL("load did not throw");
  return {};
}

std::string load_error(std::vector<std::string> const& args, fake_env const& env = {}) {
  keel::config cfg("test");
  return load_error(cfg, args, env);
}

keel::options load(std::vector<std::string> const& args, fake_env const& env = {}) {
  keel::config cfg("test");
  cfg.load(args, env.fn());
  return cfg.server();
}

}  // namespace

TEST_CASE("with nothing given every setting keeps the SPEC default", "[config]") {
  auto o = load({});
  CHECK(o.listen == "127.0.0.1:8080");
  CHECK(o.threads == 0);
  CHECK(o.header_timeout == 10s);
  CHECK(o.body_timeout == 30s);
  CHECK(o.body_min_rate == 240);
  CHECK(o.idle_timeout == 60s);
  CHECK(o.max_head == 16 * 1024);
  CHECK(o.max_body == 1024 * 1024);
  CHECK(o.max_connections == 10'000);
  CHECK(o.max_connections_per_client == 1'000);
  CHECK(o.ws_send_queue == 1024 * 1024);
  CHECK(o.drain_delay == 0ms);
  CHECK(o.log_level == "info");
  CHECK(o.reconnect.base == 500ms);
}

TEST_CASE("flags override the environment which overrides the config file", "[config]") {
  temp_json file(R"({"header_timeout": "1s", "threads": 2, "listen": "0.0.0.0:9000", "max_body": "2MiB"})");
  fake_env env;
  env.vars["KEEL_HEADER_TIMEOUT"] = "2s";
  env.vars["KEEL_THREADS"] = "3";

  auto o = load({"--config", file.path, "--header-timeout", "3s"}, env);
  CHECK(o.header_timeout == 3s);           // flag beats env and file
  CHECK(o.threads == 3);                   // env beats file
  CHECK(o.listen == "0.0.0.0:9000");       // file beats default
  CHECK(o.max_body == 2 * 1024 * 1024);
  CHECK(o.idle_timeout == 60s);            // untouched default
}

TEST_CASE("the config file is found through KEEL_CONFIG and --config wins over it", "[config]") {
  temp_json a(R"({"threads": 5})");
  temp_json b(R"({"threads": 7})");
  fake_env env;
  env.vars["KEEL_CONFIG"] = a.path;
  CHECK(load({}, env).threads == 5);
  CHECK(load({"--config=" + b.path}, env).threads == 7);
}

TEST_CASE("a flag takes its value after = or as the next argument", "[config]") {
  CHECK(load({"--header-timeout=250ms"}).header_timeout == 250ms);
  CHECK(load({"--header-timeout", "250ms"}).header_timeout == 250ms);
  CHECK(load({"--listen=[::1]:0"}).listen == "[::1]:0");
  // The last of a repeated flag wins.
  CHECK(load({"--threads", "1", "--threads", "4"}).threads == 4);
}

namespace {

struct every_setting {
  char const* name;
  char const* text;        // as a flag or environment value
  char const* json;        // as a JSON value in the file
  std::function<bool(keel::options const&)> check;
};

std::vector<every_setting> const all_settings = {
    {"listen", "0.0.0.0:1", R"("0.0.0.0:1")", [](auto& o) { return o.listen == "0.0.0.0:1"; }},
    {"threads", "3", "3", [](auto& o) { return o.threads == 3; }},
    {"header_timeout", "1s", R"("1s")", [](auto& o) { return o.header_timeout == 1s; }},
    {"body_timeout", "2s", R"("2s")", [](auto& o) { return o.body_timeout == 2s; }},
    {"body_min_rate", "1KiB", "1024", [](auto& o) { return o.body_min_rate == 1024; }},
    {"body_min_rate_grace", "3s", R"("3s")", [](auto& o) { return o.body_min_rate_grace == 3s; }},
    {"idle_timeout", "4s", R"("4s")", [](auto& o) { return o.idle_timeout == 4s; }},
    {"write_timeout", "5s", R"("5s")", [](auto& o) { return o.write_timeout == 5s; }},
    {"handler_timeout", "6s", R"("6s")", [](auto& o) { return o.handler_timeout == 6s; }},
    {"max_head", "8KiB", R"("8KiB")", [](auto& o) { return o.max_head == 8192; }},
    {"max_header_count", "50", "50", [](auto& o) { return o.max_header_count == 50; }},
    {"max_body", "2MiB", R"("2MiB")", [](auto& o) { return o.max_body == 2u << 20; }},
    {"max_connections", "7", "7", [](auto& o) { return o.max_connections == 7; }},
    {"max_connections_per_client", "3", "3", [](auto& o) { return o.max_connections_per_client == 3; }},
    {"ws_handshake_timeout", "7s", R"("7s")", [](auto& o) { return o.ws_handshake_timeout == 7s; }},
    {"ws_ping_interval", "8s", R"("8s")", [](auto& o) { return o.ws_ping_interval == 8s; }},
    {"ws_pong_timeout", "9s", R"("9s")", [](auto& o) { return o.ws_pong_timeout == 9s; }},
    {"ws_max_message", "1MiB", R"("1MiB")", [](auto& o) { return o.ws_max_message == 1u << 20; }},
    {"ws_send_queue", "64KiB", "65536", [](auto& o) { return o.ws_send_queue == 65536; }},
    {"ws_permessage_deflate", "true", "true", [](auto& o) { return o.ws_permessage_deflate; }},
    {"ws_allowed_origins", "https://a.example,https://b.example", R"(["https://a.example","https://b.example"])",
     [](auto& o) {
       return o.ws_allowed_origins == std::vector<std::string>{"https://a.example", "https://b.example"};
     }},
    {"drain_timeout", "11s", R"("11s")", [](auto& o) { return o.drain_timeout == 11s; }},
    {"drain_delay", "2s", R"("2s")", [](auto& o) { return o.drain_delay == 2s; }},
    {"trusted_proxies", "10.0.0.0/8", R"(["10.0.0.0/8"])",
     [](auto& o) { return o.trusted_proxies == std::vector<std::string>{"10.0.0.0/8"}; }},
    {"admin_listen", "127.0.0.1:9090", R"("127.0.0.1:9090")", [](auto& o) { return o.admin_listen == "127.0.0.1:9090"; }},
    {"dev_mode", "on", "true", [](auto& o) { return o.dev_mode; }},
    {"tls_cert", "cert.pem", R"("cert.pem")", [](auto& o) { return o.tls_cert == "cert.pem"; }},
    {"tls_key", "key.pem", R"("key.pem")", [](auto& o) { return o.tls_key == "key.pem"; }},
    {"tls_handshake_timeout", "12s", R"("12s")", [](auto& o) { return o.tls_handshake_timeout == 12s; }},
    {"sse_heartbeat", "13s", R"("13s")", [](auto& o) { return o.sse_heartbeat == 13s; }},
    {"log_level", "debug", R"("debug")", [](auto& o) { return o.log_level == "debug"; }},
    {"offload_threads", "2", "2", [](auto& o) { return o.offload_threads == 2; }},
    {"offload_queue", "10", "10", [](auto& o) { return o.offload_queue == 10; }},
    {"reconnect_base", "100ms", R"("100ms")", [](auto& o) { return o.reconnect.base == 100ms; }},
    {"reconnect_multiplier", "1.5", "1.5", [](auto& o) { return o.reconnect.multiplier == 1.5; }},
    {"reconnect_cap", "1m", R"("1m")", [](auto& o) { return o.reconnect.cap == 1min; }},
    {"reconnect_reset_after", "1h", R"("1h")", [](auto& o) { return o.reconnect.reset_after == 1h; }},
    {"redis", "redis://127.0.0.1:6379/0", R"("redis://127.0.0.1:6379/0")",
     [](auto& o) { return o.redis == "redis://127.0.0.1:6379/0"; }},
};

std::string flag_of(std::string name) {
  for (char& c : name)
    if (c == '_') c = '-';
  return "--" + name;
}

std::string env_of(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "KEEL_" + name;
}

}  // namespace

TEST_CASE("every server setting can be set by flag, by environment and by file", "[config]") {
  // tls_cert and tls_key must come together; pair each with the other's default.
  auto companion = [](std::string const& name) -> std::vector<std::string> {
    if (name == "tls_cert") return {"--tls-key", "k.pem"};
    if (name == "tls_key") return {"--tls-cert", "c.pem"};
    return {};
  };
  for (auto const& s : all_settings) {
    INFO("setting " << s.name);
    CHECK_FALSE(s.check(keel::options{}));

    auto args = companion(s.name);
    args.push_back(flag_of(s.name));
    args.push_back(s.text);
    CHECK(s.check(load(args)));

    fake_env env;
    env.vars[env_of(s.name)] = s.text;
    CHECK(s.check(load(companion(s.name), env)));

    temp_json file(std::string("{\"") + s.name + "\": " + s.json + "}");
    auto file_args = companion(s.name);
    file_args.push_back("--config");
    file_args.push_back(file.path);
    CHECK(s.check(load(file_args)));
  }
}

TEST_CASE("the reconnect policy can be one object in the config file", "[config]") {
  temp_json file(R"({"reconnect": {"base": "1s", "multiplier": 3, "cap": "1m", "reset_after": "2m"}})");
  auto o = load({"--config", file.path});
  CHECK(o.reconnect.base == 1s);
  CHECK(o.reconnect.multiplier == 3.0);
  CHECK(o.reconnect.cap == 1min);
  CHECK(o.reconnect.reset_after == 2min);
}

TEST_CASE("a config file may carry comments and trailing commas", "[config]") {
  temp_json file("{\n  // tests want short timeouts\n  \"idle_timeout\": \"50ms\",\n}\n");
  CHECK(load({"--config", file.path}).idle_timeout == 50ms);
}

TEST_CASE("a bad duration flag names the flag and the value", "[config][errors]") {
  CHECK(load_error({"--header-timeout", "10x"}) ==
        R"(--header-timeout: invalid duration "10x" (use a unit: 250ms, 10s, 2m))");
  CHECK(load_error({"--header-timeout=10"}) ==
        R"(--header-timeout: invalid duration "10" (use a unit: 250ms, 10s, 2m))");
}

// A deadline is now + duration in steady_clock nanoseconds: ~292 years
// overflowed it, so an idle_timeout of 300 years cut every connection at once.
TEST_CASE("a duration longer than a year is refused at startup, naming the setting", "[config][errors][duration]") {
  CHECK(load({"--idle-timeout", "8760h"}).idle_timeout == 8760h);
  CHECK(load_error({"--idle-timeout", "2562048h"}) ==
        R"(--idle-timeout: invalid duration "2562048h" (too large (at most 8760h, one year)))");
  CHECK_THAT(load_error({"--handler-timeout", "8760h1ms"}), Contains("--handler-timeout"));
  temp_json file(R"({"drain_delay": "9000h"})");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains("drain_delay"));
  CHECK_THAT(msg, Contains("at most 8760h"));
}

TEST_CASE("a bad environment value names the variable and the value", "[config][errors]") {
  fake_env env;
  env.vars["KEEL_HEADER_TIMEOUT"] = "soon";
  auto msg = load_error({}, env);
  CHECK_THAT(msg, Contains("KEEL_HEADER_TIMEOUT"));
  CHECK_THAT(msg, Contains("\"soon\""));
  CHECK_THAT(msg, Contains("--header-timeout"));
}

TEST_CASE("unknown KEEL_ environment variables are ignored", "[config]") {
  fake_env env;
  env.vars["KEEL_SOMETHING_ELSE"] = "whatever";
  env.vars["KEEL_SOURCE_DIR"] = "/src";
  CHECK_NOTHROW(load({}, env));
}

TEST_CASE("an empty environment variable counts as unset", "[config]") {
  fake_env env;
  env.vars["KEEL_HEADER_TIMEOUT"] = "";
  CHECK(load({}, env).header_timeout == 10s);
}

TEST_CASE("a bad value in the config file names the file, the key and the value", "[config][errors]") {
  temp_json file(R"({"header_timeout": "10x"})");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains(file.path));
  CHECK_THAT(msg, Contains("header_timeout"));
  CHECK_THAT(msg, Contains("--header-timeout"));
  CHECK_THAT(msg, Contains("\"10x\""));
}

TEST_CASE("a duration given as a bare JSON number is refused", "[config][errors]") {
  temp_json file(R"({"idle_timeout": 30})");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains("idle_timeout"));
  CHECK_THAT(msg, Contains("30"));
  CHECK_THAT(msg, Contains("unit"));
}

TEST_CASE("a value of the wrong JSON type is refused naming the key", "[config][errors]") {
  temp_json file(R"({"listen": 8080})");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains("listen"));
  CHECK_THAT(msg, Contains("8080"));
}

TEST_CASE("an unknown key in the config file names the key and the file", "[config][errors]") {
  temp_json file(R"({"header_timeot": "1s"})");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains("header_timeot"));
  CHECK_THAT(msg, Contains(file.path));
  CHECK_THAT(msg, Contains("did you mean \"header_timeout\""));

  // --config names the file; it is not a setting inside it.
  temp_json nested(R"({"config": "other.json"})");
  auto nested_msg = load_error({"--config", nested.path});
  CHECK_THAT(nested_msg, Contains("unknown setting \"config\""));
  CHECK_THAT(nested_msg, !Contains("did you mean"));
}

TEST_CASE("a missing config file is an error naming it", "[config][errors]") {
  auto msg = load_error({"--config", "/nonexistent/keel.json"});
  CHECK_THAT(msg, Contains("/nonexistent/keel.json"));
  CHECK_THAT(msg, Contains("No such file"));

  fake_env env;
  env.vars["KEEL_CONFIG"] = "/nonexistent/from-env.json";
  auto env_msg = load_error({}, env);
  CHECK_THAT(env_msg, Contains("/nonexistent/from-env.json"));
  CHECK_THAT(env_msg, Contains("KEEL_CONFIG"));
}

TEST_CASE("an unparseable config file is an error naming it and the position", "[config][errors]") {
  temp_json file("{\"threads\": 2,\n \"listen\": oops}");
  auto msg = load_error({"--config", file.path});
  CHECK_THAT(msg, Contains(file.path));
  CHECK_THAT(msg, Contains("line 2"));

  temp_json truncated(R"({"threads": 2)");
  CHECK_THAT(load_error({"--config", truncated.path}), Contains(truncated.path));

  temp_json trailing(R"({"threads": 2} {})");
  CHECK_THAT(load_error({"--config", trailing.path}), Contains("after the object"));

  temp_json not_object(R"(["threads"])");
  CHECK_THAT(load_error({"--config", not_object.path}), Contains("object"));
}

TEST_CASE("an unknown flag is an error naming it", "[config][errors]") {
  auto msg = load_error({"--no-such-flag"});
  CHECK(msg == "unknown flag --no-such-flag");
  CHECK_THAT(load_error({"--no-such-flag=1"}), Contains("no-such-flag"));
  // Near misses get a suggestion.
  CHECK_THAT(load_error({"--header-timout", "1s"}), Contains("did you mean --header-timeout?"));
  CHECK_THAT(load_error({"--header_timeout", "1s"}), Contains("did you mean --header-timeout?"));
  // A single dash is a mistyped flag, not a positional argument.
  CHECK_THAT(load_error({"-threads", "2"}), Contains("unknown flag -threads"));
}

TEST_CASE("a flag that needs a value but comes last is an error naming it", "[config][errors]") {
  CHECK(load_error({"--listen"}) == "--listen: missing value");
  CHECK(load_error({"--config"}) == "--config: missing value");
  // The next flag is not taken for a value.
  CHECK(load_error({"--listen", "--threads", "2"}) == "--listen: missing value");
}

TEST_CASE("numbers that cannot be right are refused naming the setting", "[config][errors]") {
  CHECK_THAT(load_error({"--threads", "-1"}), Contains("--threads") && Contains("\"-1\""));
  CHECK_THAT(load_error({"--threads", "two"}), Contains("--threads") && Contains("\"two\""));
  CHECK_THAT(load_error({"--max-connections", "0"}), Contains("--max-connections") && Contains("at least 1"));
  CHECK_THAT(load_error({"--header-timeout", "0s"}), Contains("--header-timeout") && Contains("greater than 0"));
  CHECK_THAT(load_error({"--idle-timeout", "0"}), Contains("--idle-timeout"));
  CHECK_THAT(load_error({"--max-body", "lots"}), Contains("--max-body") && Contains("\"lots\""));
  CHECK_THAT(load_error({"--reconnect-multiplier", "0.5"}), Contains("--reconnect-multiplier"));
  // A drain delay of zero is the default and stays allowed.
  CHECK(load({"--drain-delay", "0s"}).drain_delay == 0ms);
}

TEST_CASE("listen addresses must be HOST:PORT with a port up to 65535", "[config][errors]") {
  CHECK(load({"--listen", "127.0.0.1:0"}).listen == "127.0.0.1:0");
  CHECK(load({"--listen", "localhost:65535"}).listen == "localhost:65535");
  CHECK(load({"--listen", "[::1]:8080"}).listen == "[::1]:8080");
  for (auto bad : {"127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536", "127.0.0.1:http", "::1:8080",
                   "[::1]8080", "[::1", "", "a b:80"}) {
    INFO("listen " << bad);
    auto msg = load_error({std::string("--listen=") + bad});
    CHECK_THAT(msg, Contains("--listen: invalid address \"" + std::string(bad) + "\""));
  }
  CHECK_THAT(load_error({"--admin-listen", "9090"}), Contains("--admin-listen"));
}

TEST_CASE("log_level accepts only debug, info, warn and error", "[config][errors]") {
  CHECK(load({"--log-level", "WARN"}).log_level == "warn");
  auto msg = load_error({"--log-level", "verbose"});
  CHECK_THAT(msg, Contains("--log-level") && Contains("\"verbose\""));
}

TEST_CASE("a TLS certificate without its key is refused", "[config][errors]") {
  CHECK_THAT(load_error({"--tls-cert", "c.pem"}), Contains("--tls-key"));
}

TEST_CASE("booleans accept true/false, 1/0, on/off and a bare flag", "[config]") {
  CHECK(load({"--dev-mode"}).dev_mode);
  CHECK(load({"--dev-mode=true"}).dev_mode);
  CHECK(load({"--dev-mode=1"}).dev_mode);
  CHECK(load({"--dev-mode=on"}).dev_mode);
  CHECK_FALSE(load({"--dev-mode=false"}).dev_mode);
  CHECK_FALSE(load({"--dev-mode=0"}).dev_mode);
  CHECK_FALSE(load({"--dev-mode=off"}).dev_mode);
  fake_env env;
  env.vars["KEEL_DEV_MODE"] = "true";
  CHECK(load({}, env).dev_mode);
  // Flags beat the environment for booleans too.
  CHECK_FALSE(load({"--dev-mode=false"}, env).dev_mode);
  CHECK_THAT(load_error({"--dev-mode=maybe"}), Contains("--dev-mode") && Contains("\"maybe\""));
  // A bare boolean flag does not swallow the next argument.
  keel::config cfg("test");
  cfg.load({"--dev-mode", "serve"}, fake_env{}.fn());
  CHECK(cfg.server().dev_mode);
  CHECK(cfg.positional() == std::vector<std::string>{"serve"});
}

TEST_CASE("lists are comma-separated in flags and environment, arrays in the file", "[config]") {
  CHECK(load({"--trusted-proxies", "10.0.0.0/8, 192.168.0.0/16"}).trusted_proxies ==
        std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"});
  fake_env env;
  env.vars["KEEL_WS_ALLOWED_ORIGINS"] = "*";
  CHECK(load({}, env).ws_allowed_origins == std::vector<std::string>{"*"});
  temp_json file(R"({"trusted_proxies": ["10.0.0.0/8", "::1/128"]})");
  CHECK(load({"--config", file.path}).trusted_proxies == std::vector<std::string>{"10.0.0.0/8", "::1/128"});
  // An empty flag value clears a list set lower down.
  CHECK(load({"--config", file.path, "--trusted-proxies="}).trusted_proxies.empty());
  temp_json bad(R"({"trusted_proxies": [8]})");
  CHECK_THAT(load_error({"--config", bad.path}), Contains("trusted_proxies"));
}

TEST_CASE("app settings get the three spellings and their defaults", "[config][app]") {
  auto make = [] {
    keel::config cfg("todo");
    cfg.add("jwt_secret", "", "HS256 secret").add("db", "todo.db", "SQLite file").add_flag("seed", "add sample rows");
    return cfg;
  };
  {
    auto cfg = make();
    cfg.load({}, fake_env{}.fn());
    CHECK(cfg.get("db") == "todo.db");
    CHECK(cfg.get("jwt_secret").empty());
    CHECK_FALSE(cfg.get_bool("seed"));
  }
  {
    temp_json file(R"({"db": "file.db", "jwt_secret": "from-file", "seed": true})");
    fake_env env;
    env.vars["KEEL_JWT_SECRET"] = "from-env";
    auto cfg = make();
    cfg.load({"--config", file.path, "--db", "flag.db"}, env.fn());
    CHECK(cfg.get("db") == "flag.db");
    CHECK(cfg.get("jwt_secret") == "from-env");
    CHECK(cfg.get_bool("seed"));
  }
  {
    auto cfg = make();
    cfg.load({"--seed", "--jwt-secret=s3cret"}, fake_env{}.fn());
    CHECK(cfg.get_bool("seed"));
    CHECK(cfg.get("jwt_secret") == "s3cret");
  }
  {
    auto cfg = make();
    CHECK_THAT(load_error(cfg, {"--seed=perhaps"}), Contains("--seed") && Contains("\"perhaps\""));
  }
  {
    auto cfg = make();
    cfg.load({}, fake_env{}.fn());
    CHECK_THROWS_AS(cfg.get("nope"), std::out_of_range);
    CHECK_THROWS_AS(cfg.get("listen"), std::out_of_range);
  }
}

TEST_CASE("an app setting cannot reuse a server setting's name", "[config][app]") {
  keel::config cfg("app");
  CHECK_THROWS_AS(cfg.add("listen", "", ""), std::invalid_argument);
  CHECK_THROWS_AS(cfg.add("config", "", ""), std::invalid_argument);
  CHECK_THROWS_AS(cfg.add("Bad-Name", "", ""), std::invalid_argument);
  cfg.add("mine", "", "");
  CHECK_THROWS_AS(cfg.add("mine", "", ""), std::invalid_argument);
}

TEST_CASE("arguments that are not flags are positional, in order", "[config]") {
  keel::config cfg("keel");
  cfg.add("template", "http", "app template");
  cfg.load({"new", "chat-service", "--template", "websocket", "-", "--", "--not-a-flag"}, fake_env{}.fn());
  CHECK(cfg.get("template") == "websocket");
  CHECK(cfg.positional() == std::vector<std::string>{"new", "chat-service", "-", "--not-a-flag"});
}

TEST_CASE("--help is reported and usage lists every setting with its default", "[config][help]") {
  keel::config cfg("hello");
  cfg.add("middleware", "default", "default|none: the middleware stack");
  cfg.server().max_body = 2 * 1024 * 1024;  // an app may change a default before load
  // --help wins over errors elsewhere on the command line.
  cfg.load({"--help", "--no-such-flag", "--threads", "x"}, fake_env{}.fn());
  CHECK(cfg.help_requested());

  auto text = cfg.usage();
  CHECK_THAT(text, Contains("usage: hello"));
  CHECK_THAT(text, Contains("--config FILE"));
  CHECK_THAT(text, Contains("--middleware VALUE") && Contains("[default default]"));
  for (auto const& s : all_settings) {
    INFO(s.name);
    CHECK_THAT(text, Contains(flag_of(s.name) + " "));
  }
  auto line_of = [&](std::string const& flag) {
    auto at = text.find("  " + flag + " ");
    REQUIRE(at != std::string::npos);
    return text.substr(at, text.find('\n', at) - at);
  };
  CHECK_THAT(line_of("--listen"), Contains("[default 127.0.0.1:8080]"));
  CHECK_THAT(line_of("--header-timeout"), Contains("[default 10s]"));
  CHECK_THAT(line_of("--idle-timeout"), Contains("[default 1m]"));
  CHECK_THAT(line_of("--max-head"), Contains("[default 16KiB]"));
  CHECK_THAT(line_of("--max-body"), Contains("[default 2MiB]"));
  CHECK_THAT(line_of("--reconnect-base"), Contains("[default 500ms]"));
  CHECK_THAT(line_of("--trusted-proxies"), Contains("[default (none)]"));
  CHECK_THAT(line_of("--dev-mode"), Contains("[default false]"));

  keel::config short_form("hello");
  short_form.load({"-h"}, fake_env{}.fn());
  CHECK(short_form.help_requested());
}

TEST_CASE("durations parse with ms, s, m and h units", "[config][duration]") {
  using keel::parse_duration;
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("2m") == 2min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration("0.25m") == 15s);
  CHECK(parse_duration("1m30s") == 90s);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration(" 5s ") == 5s);
  for (auto bad : {"", "10", "10x", "-1s", "s", "1.5", "ten seconds", "1s2", "5 s", "0.1ms", "1e3s",
                   "99999999999999999999h", "9999999999999h"}) {
    INFO("duration " << bad);
    CHECK_THROWS_AS(parse_duration(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(parse_duration("-1s"), Contains("negative"));
}

TEST_CASE("sizes parse as bytes or with binary units", "[config][size]") {
  using keel::parse_size;
  CHECK(parse_size("1024") == 1024);
  CHECK(parse_size("0") == 0);
  CHECK(parse_size("64KiB") == 64 * 1024);
  CHECK(parse_size("1MiB") == 1024 * 1024);
  CHECK(parse_size("1GiB") == 1024ull * 1024 * 1024);
  CHECK(parse_size("64KB") == 64 * 1024);
  CHECK(parse_size("1MB") == 1024 * 1024);
  CHECK(parse_size("1.5KiB") == 1536);
  CHECK(parse_size("512B") == 512);
  CHECK(parse_size("16 KiB") == 16 * 1024);
  for (auto bad : {"", "lots", "-1", "1XB", "KiB", "1 2", "18446744073709551616", "99999999999GiB", "1e3"}) {
    INFO("size " << bad);
    CHECK_THROWS_AS(parse_size(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(parse_size("99999999999GiB"), Contains("too large"));
}
