// apps/chat black-box (SPEC §4): the built binary as a child process, Beast's
// WebSocket client and plain HTTP as the peers.
#include <catch2/catch.hpp>

#include "app_process.hpp"
#include "sse_client.hpp"

#include <keel/testing.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#ifndef CHAT_BIN
#error "CHAT_BIN must name the chat binary"
#endif

using keel::test::app_process;
using keel::test::sse_client;
namespace kt = keel::testing;
namespace json = boost::json;
namespace bws = boost::beast::websocket;

namespace {

app_process start_chat(std::vector<std::string> extra = {}) {
  // A short drain: members still open when a test stops the app need not hold it 10 s.
  std::vector<std::string> args{"--listen", "127.0.0.1:0", "--threads", "2", "--drain-timeout", "2s"};
  args.insert(args.end(), extra.begin(), extra.end());
  return app_process(CHAT_BIN, args);
}

// A chat member: Beast's client, every read bounded by a 10 s receive timeout.
class member {
 public:
  member(std::uint16_t port, std::string const& target, kt::header_list headers = {}) : ws_(ioc_) {
    ws_.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{10, 0};
    setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!headers.empty()) {
      ws_.set_option(bws::stream_base::decorator([headers](bws::request_type& req) {
        for (auto const& [k, v] : headers) req.set(k, v);
      }));
    }
    ws_.handshake("127.0.0.1:" + std::to_string(port), target);
  }
  static std::string target(std::string const& room, std::string const& name) {
    return "/ws?room=" + room + "&name=" + name;
  }
  void send_raw(std::string const& text, bool binary = false) {
    ws_.binary(binary);
    ws_.write(boost::asio::buffer(text));
  }
  void say(std::string const& text) {
    json::object o{{"type", "message"}, {"text", text}};
    send_raw(json::serialize(o));
  }
  std::string read_text() {
    buffer_.clear();
    ws_.read(buffer_);
    return boost::beast::buffers_to_string(buffer_.data());
  }
  json::object read() { return json::parse(read_text()).as_object(); }
  /// Reads until a message of `type` arrives (skipping others, e.g. presence).
  json::object read(std::string const& type) {
    for (;;) {
      auto o = read();
      if (o.at("type").as_string() == type) return o;
    }
  }
  void close() { ws_.close(bws::close_code::normal); }

 private:
  boost::asio::io_context ioc_;
  bws::stream<boost::asio::ip::tcp::socket> ws_;
  boost::beast::flat_buffer buffer_;
};

std::string str(json::value const& v) { return std::string(v.as_string()); }

std::vector<std::string> names(json::value const& members) {
  std::vector<std::string> out;
  for (auto const& m : members.as_array()) out.push_back(str(m));
  return out;
}

kt::header_list upgrade_headers() {
  return {{"Upgrade", "websocket"},
          {"Connection", "Upgrade"},
          {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
          {"Sec-WebSocket-Version", "13"}};
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("chat prints its listening line and serves the page with the ids tests rely on", "[chat]") {
  auto chat = start_chat();
  auto r = kt::request(chat.port(), "GET", "/?room=r&name=alice");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type").rfind("text/html", 0) == 0);
  for (auto id : {"id=\"message\"", "id=\"send\"", "id=\"messages\"", "id=\"members\"", "id=\"status\""}) {
    CHECK(r.body.find(id) != std::string::npos);
  }
  // Message text is shown as text, never parsed as markup.
  CHECK(r.body.find("innerHTML") == std::string::npos);
  CHECK(r.body.find("textContent = m.text") != std::string::npos);
  CHECK(chat.stop() == 0);
}

TEST_CASE("the page comes from disk through static_file whatever the working directory", "[chat][static]") {
  // From / : the page's directory is found by its compiled-in path, not the cwd.
  app_process chat("/bin/sh", {"-c", std::string("cd / && exec ") + CHAT_BIN +
                                         " --listen 127.0.0.1:0 --threads 1 --drain-timeout 2s"});
  auto r = kt::request(chat.port(), "GET", "/?room=r&name=alice");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/html; charset=utf-8");
  CHECK(r.header("Cache-Control") == "no-cache");
  CHECK(r.header("X-Content-Type-Options") == "nosniff");
  CHECK(r.body.find("id=\"messages\"") != std::string::npos);
  auto etag = r.header("ETag");
  REQUIRE_FALSE(etag.empty());
  auto again = kt::request(chat.port(), "GET", "/", {}, {{"If-None-Match", etag}});
  CHECK(again.status == 304);
  // Only `/` is the page: other paths keep the problem-details 404.
  auto missing = kt::request(chat.port(), "GET", "/index.html");
  CHECK(missing.status == 404);
  CHECK(missing.header("Content-Type") == "application/problem+json");
  CHECK(chat.stop() == 0);
}

TEST_CASE("--static-dir names the page's directory; one without index.html fails at startup", "[chat][static]") {
  char tmpl[] = "/tmp/keel-chat-page-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  { std::ofstream(dir + "/index.html") << "<p>custom page</p>"; }
  {
    auto chat = start_chat({"--static-dir", dir});
    CHECK(kt::request(chat.port(), "GET", "/").body == "<p>custom page</p>");
    CHECK(chat.stop() == 0);
  }
  std::string cmd = std::string(CHAT_BIN) + " --listen 127.0.0.1:0 --static-dir " + dir + "/none 2>&1; echo rc=$?";
  std::string out;
  if (auto* p = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  CHECK(out.find("static_dir") != std::string::npos);
  CHECK(out.find("rc=2") != std::string::npos);
  std::remove((dir + "/index.html").c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("the joiner gets joined, the others get presence join and leave", "[chat]") {
  auto chat = start_chat();
  member alice(chat.port(), member::target("r1", "alice"));
  auto j = alice.read();
  CHECK(str(j.at("type")) == "joined");
  CHECK(str(j.at("room")) == "r1");
  CHECK(str(j.at("name")) == "alice");
  CHECK(names(j.at("members")) == std::vector<std::string>{"alice"});
  CHECK(j.at("history").as_array().empty());

  {
    member bob(chat.port(), member::target("r1", "bob"));
    auto jb = bob.read();
    CHECK(str(jb.at("type")) == "joined");
    CHECK(names(jb.at("members")) == std::vector<std::string>{"alice", "bob"});
    auto p = alice.read();
    CHECK(json::value(p) == json::parse(R"({"type":"presence","event":"join","name":"bob"})"));
    // Names need not be unique.
    member bob2(chat.port(), member::target("r1", "bob"));
    CHECK(names(bob2.read().at("members")) == std::vector<std::string>{"alice", "bob", "bob"});
    CHECK(json::value(alice.read()) == json::parse(R"({"type":"presence","event":"join","name":"bob"})"));
    CHECK(json::value(bob.read()) == json::parse(R"({"type":"presence","event":"join","name":"bob"})"));
    bob2.close();
    CHECK(json::value(alice.read()) == json::parse(R"({"type":"presence","event":"leave","name":"bob"})"));
    bob.close();
  }
  CHECK(json::value(alice.read()) == json::parse(R"({"type":"presence","event":"leave","name":"bob"})"));
  alice.close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("a message reaches every member of the room, the sender included, and no one else", "[chat]") {
  auto chat = start_chat();
  member alice(chat.port(), member::target("r1", "alice"));
  alice.read();
  member bob(chat.port(), member::target("r1", "bob"));
  bob.read();
  alice.read("presence");
  member carol(chat.port(), member::target("other", "carol"));
  carol.read();

  auto before = now_ms();
  bob.say("hello <b>there</b> \xF0\x9F\x91\x8B");
  for (auto* m : {&alice, &bob}) {
    auto msg = m->read();
    CHECK(msg.size() == 6);
    CHECK(str(msg.at("type")) == "message");
    CHECK(str(msg.at("room")) == "r1");
    CHECK(str(msg.at("from")) == "bob");
    CHECK(str(msg.at("text")) == "hello <b>there</b> \xF0\x9F\x91\x8B");
    CHECK(msg.at("id").is_string());
    CHECK(msg.at("ts").to_number<std::int64_t>() >= before - 1000);
    CHECK(msg.at("ts").to_number<std::int64_t>() <= now_ms() + 1000);
  }
  // carol is in another room: the next thing she sees is her own message.
  carol.say("mine");
  CHECK(str(carol.read().at("text")) == "mine");
  for (auto* m : {&alice, &bob, &carol}) m->close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("bad client messages get an error and the connection stays open", "[chat]") {
  auto chat = start_chat();
  member alice(chat.port(), member::target("r", "alice"));
  alice.read();
  auto error_code = [&](std::string const& raw, bool binary = false) {
    alice.send_raw(raw, binary);
    auto e = alice.read();
    CHECK(str(e.at("type")) == "error");
    CHECK(e.at("message").is_string());
    return str(e.at("code"));
  };
  CHECK(error_code("not json") == "bad_message");
  CHECK(error_code("[1,2]") == "bad_message");
  CHECK(error_code(R"({"text":"no type"})") == "bad_message");
  CHECK(error_code(R"({"type":"dance"})") == "bad_message");
  CHECK(error_code(R"({"type":"message"})") == "bad_message");
  CHECK(error_code(R"({"type":"message","text":7})") == "bad_message");
  CHECK(error_code(R"({"type":"message","text":"bin"})", true) == "bad_message");
  CHECK(error_code(json::serialize(json::object{{"type", "message"}, {"text", std::string(4097, 'x')}})) ==
        "too_long");
  // Exactly 4 KiB is allowed, and the session carried on through the errors.
  alice.say(std::string(4096, 'y'));
  auto m = alice.read();
  CHECK(str(m.at("type")) == "message");
  CHECK(m.at("text").as_string().size() == 4096);
  alice.close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("a late joiner gets the last 50 messages, ids unique in the room", "[chat]") {
  auto chat = start_chat();
  member alice(chat.port(), member::target("hist", "alice"));
  alice.read();
  std::set<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    alice.say("m" + std::to_string(i));
    auto m = alice.read("message");
    CHECK(str(m.at("text")) == "m" + std::to_string(i));
    ids.insert(str(m.at("id")));
  }
  CHECK(ids.size() == 60);

  member late(chat.port(), member::target("hist", "late"));
  auto j = late.read();
  REQUIRE(str(j.at("type")) == "joined");
  auto const& history = j.at("history").as_array();
  REQUIRE(history.size() == 50);
  for (std::size_t i = 0; i < 50; ++i) {
    auto const& h = history[i].as_object();
    CHECK(str(h.at("type")) == "message");
    CHECK(str(h.at("text")) == "m" + std::to_string(i + 10));
    CHECK(str(h.at("from")) == "alice");
    CHECK(str(h.at("room")) == "hist");
    CHECK(ids.count(str(h.at("id"))) == 1);
  }
  late.close();
  alice.close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("a room keeps its history when its members leave; an empty room can be joined again", "[chat]") {
  auto chat = start_chat();
  {
    member alice(chat.port(), member::target("kept", "alice"));
    alice.read();
    alice.say("still here later");
    alice.read("message");
    alice.close();
    member ghost(chat.port(), member::target("empty", "ghost"));
    ghost.read();
    ghost.close();
  }
  {
    // A listener that leaves an empty room behind.
    sse_client probe(chat.port(), "/api/rooms/empty/events");
    REQUIRE(probe.read_contains("\r\n\r\n"));
  }
  CHECK(kt::eventually([&] { return json::parse(kt::request(chat.port(), "GET", "/api/rooms").body) == json::array(); }));
  member bob(chat.port(), member::target("kept", "bob"));
  auto j = bob.read();
  REQUIRE(j.at("history").as_array().size() == 1);
  CHECK(str(j.at("history").as_array()[0].at("text")) == "still here later");
  CHECK(names(j.at("members")) == std::vector<std::string>{"bob"});
  member again(chat.port(), member::target("empty", "again"));
  auto je = again.read();
  CHECK(je.at("history").as_array().empty());
  CHECK(names(je.at("members")) == std::vector<std::string>{"again"});
  again.say("hello");
  CHECK(str(again.read().at("id")) == "1");
  bob.close();
  again.close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("/api/rooms counts the members of each room", "[chat]") {
  auto chat = start_chat();
  CHECK(json::parse(kt::request(chat.port(), "GET", "/api/rooms").body) == json::array());
  member a(chat.port(), member::target("r1", "a"));
  a.read();
  auto b = std::make_unique<member>(chat.port(), member::target("r1", "b"));
  b->read();
  member c(chat.port(), member::target("r2", "c"));
  c.read();
  auto r = kt::request(chat.port(), "GET", "/api/rooms");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(json::parse(r.body) == json::parse(R"([{"room":"r1","members":2},{"room":"r2","members":1}])"));
  b->close();
  b.reset();
  CHECK(kt::eventually([&] {
    return json::parse(kt::request(chat.port(), "GET", "/api/rooms").body) ==
           json::parse(R"([{"room":"r1","members":1},{"room":"r2","members":1}])");
  }));
  a.close();
  c.close();
  CHECK(chat.stop() == 0);
}

TEST_CASE("an upgrade without room or name is a 400 problem before the upgrade", "[chat]") {
  auto chat = start_chat();
  for (auto target : {"/ws", "/ws?room=r", "/ws?name=n", "/ws?room=&name=n", "/ws?room=r&name="}) {
    auto r = kt::request(chat.port(), "GET", target, {}, upgrade_headers());
    INFO(target);
    CHECK(r.status == 400);
    CHECK(r.header("Content-Type") == "application/problem+json");
    CHECK(json::parse(r.body).at("status") == 400);
  }
  CHECK_THROWS(member(chat.port(), "/ws?room=r"));
  CHECK(chat.stop() == 0);
}

TEST_CASE("with --token the upgrade and /api/rooms need the token, and the log never shows it", "[chat][auth]") {
  auto chat = start_chat({"--token", "s3cret-t0ken"});
  auto port = chat.port();

  auto anon = kt::request(port, "GET", "/api/rooms");
  CHECK(anon.status == 401);
  CHECK(anon.header("WWW-Authenticate").rfind("Bearer", 0) == 0);
  CHECK(kt::request(port, "GET", "/api/rooms", {}, {{"Authorization", "Bearer wrong"}}).status == 401);
  CHECK(kt::request(port, "GET", "/api/rooms", {}, {{"Authorization", "Bearer s3cret-t0ken"}}).status == 200);
  CHECK(kt::request(port, "GET", "/api/rooms?access_token=s3cret-t0ken").status == 200);

  auto refused = kt::request(port, "GET", "/ws?room=r&name=n", {}, upgrade_headers());
  CHECK(refused.status == 401);
  CHECK(refused.has_header("WWW-Authenticate"));
  CHECK_THROWS(member(port, "/ws?room=r&name=n"));
  CHECK(kt::request(port, "GET", "/ws?room=r&name=n&access_token=nope", {}, upgrade_headers()).status == 401);

  member by_header(port, member::target("r", "h"), {{"Authorization", "Bearer s3cret-t0ken"}});
  CHECK(str(by_header.read().at("type")) == "joined");
  member by_query(port, "/ws?room=r&name=q&access_token=s3cret-t0ken");
  CHECK(str(by_query.read().at("type")) == "joined");
  // The page itself needs no token: it passes on the one in its own URL.
  CHECK(kt::request(port, "GET", "/?room=r&name=x&access_token=s3cret-t0ken").status == 200);

  by_header.close();
  by_query.close();
  CHECK(chat.stop() == 0);
  auto log = chat.log();
  CHECK(log.find("\"msg\":\"access\"") != std::string::npos);
  CHECK(log.find("access_token=REDACTED") != std::string::npos);
  CHECK(log.find("s3cret-t0ken") == std::string::npos);
}

TEST_CASE("room events stream as SSE and resume after Last-Event-ID", "[chat][sse]") {
  auto chat = start_chat();
  member alice(chat.port(), member::target("live", "alice"));
  alice.read();
  std::vector<std::string> sent;  // the exact JSON text members got
  for (int i = 1; i <= 5; ++i) {
    alice.say("n" + std::to_string(i));
    sent.push_back(alice.read_text());
  }
  auto id_of = [](std::string const& text) { return str(json::parse(text).at("id")); };
  auto frame = [&](std::string const& text) {
    return "event: message\nid: " + id_of(text) + "\ndata: " + text + "\n\n";
  };

  sse_client resumed(chat.port(), "/api/rooms/live/events", "Last-Event-ID: " + id_of(sent[2]) + "\r\n");
  REQUIRE(resumed.read_contains(frame(sent[4])));
  CHECK(resumed.head().rfind("HTTP/1.1 200", 0) == 0);
  CHECK(resumed.head().find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(resumed.body() == frame(sent[3]) + frame(sent[4]));

  sse_client fresh(chat.port(), "/api/rooms/live/events");
  REQUIRE(fresh.read_contains(frame(sent[4])));
  CHECK(fresh.body() == frame(sent[0]) + frame(sent[1]) + frame(sent[2]) + frame(sent[3]) + frame(sent[4]));

  // Live messages follow, the same bytes the WebSocket members see.
  alice.say("live one");
  auto live = alice.read_text();
  CHECK(resumed.read_contains(frame(live)));
  CHECK(fresh.read_contains(frame(live)));
  CHECK(resumed.body() == frame(sent[3]) + frame(sent[4]) + frame(live));
  alice.close();
  CHECK(chat.stop() == 0);
  CHECK(resumed.read_to_eof());
}

TEST_CASE("with --token the room events need the token too", "[chat][sse][auth]") {
  auto chat = start_chat({"--token", "tok"});
  CHECK(kt::request(chat.port(), "GET", "/api/rooms/r/events").status == 401);
  sse_client ok(chat.port(), "/api/rooms/r/events?access_token=tok");
  CHECK(ok.read_contains("Content-Type: text/event-stream"));
  CHECK(chat.stop() == 0);
}
