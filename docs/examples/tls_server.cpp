// An HTTPS and wss:// server: TLS comes from the settings alone, so the code
// is the same as for plain HTTP.
// Usage: docs_example_tls_server --tls-cert server.pem --tls-key server.key [--listen 127.0.0.1:8443]
//        (kill -HUP <pid> reloads the certificate and key)
#include <keel/app.hpp>
#include <keel/response.hpp>
#include <keel/ws.hpp>

namespace {

keel::task<keel::response> hello(keel::context&) { co_return keel::response::text("Hello over TLS\n"); }

// [tls-wss-echo]
keel::task<void> echo(keel::websocket& ws) {
  while (auto msg = co_await ws.read()) ws.send(std::move(msg.data), msg.is_binary());
}
// [tls-wss-echo]

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("docs_example_tls_server");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    app.get("/", hello);
    app.ws("/ws/echo", echo);
  });
}
