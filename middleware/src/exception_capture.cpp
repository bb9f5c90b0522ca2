#include <keel/middleware/exception_capture.hpp>

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/log.hpp>
#include <keel/metrics.hpp>

#include "steps.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace keel::mw {

namespace {

std::string demangle(char const* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && text ? std::string(text.get()) : std::string(mangled);
}

}  // namespace

// Counts and logs one escaped exception as exception_capture.hpp promises.
void steps::report_exception(context& ctx, std::exception_ptr const& e) {
  std::string type = exception_type_name(e);
  std::string what;
  unsigned answer = 0;  // an http_error's status
  try {
    std::rethrow_exception(e);
  } catch (http_error const& h) {
    answer = h.status();
    what = h.what();
  } catch (std::exception const& x) {
    what = x.what();
  } catch (...) {
  }
  auto cancelled = ctx.cancellation();
  if (answer != 0) {
    if (answer >= 500) {
      log::warn("handler answered with a server error",
                {{"trace_id", ctx.trace_id()}, {"request_id", ctx.request_id()},
                 {"method", ctx.req().method_string()}, {"route", ctx.route()},
                 {"status", answer}, {"error", what}});
    }
    return;
  }
  if (cancelled == cancel_reason::deadline || cancelled == cancel_reason::shutdown) {
    log::warn("handler cancelled",
              {{"trace_id", ctx.trace_id()}, {"request_id", ctx.request_id()},
               {"method", ctx.req().method_string()}, {"route", ctx.route()},
               {"reason", cancelled == cancel_reason::deadline ? "deadline" : "shutdown"}});
    return;
  }
  if (cancelled == cancel_reason::client_gone) {
    log::debug("handler cancelled",
               {{"trace_id", ctx.trace_id()}, {"request_id", ctx.request_id()},
                {"method", ctx.req().method_string()}, {"route", ctx.route()}, {"reason", "client_gone"}});
    return;
  }
  metrics::handler_exception();
  log::error("handler exception",
             {{"trace_id", ctx.trace_id()}, {"request_id", ctx.request_id()},
              {"method", ctx.req().method_string()}, {"route", ctx.route()},
              {"exception", type}, {"error", what}});
}

namespace {

task<response> run(context& ctx, next n) {
  std::exception_ptr failure;
  try {
    co_return co_await n();
  } catch (...) {
    failure = std::current_exception();
  }
  steps::report_exception(ctx, failure);
  co_return response_for_exception(ctx, failure);
}

}  // namespace

std::string exception_type_name(std::exception_ptr const& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (std::exception const& x) {
    return demangle(typeid(x).name());  // the dynamic type
  } catch (...) {
    auto const* t = abi::__cxa_current_exception_type();
    return t ? demangle(t->name()) : std::string("unknown");
  }
}

middleware exception_capture() {
  return [](context& ctx, next n) { return run(ctx, n); };
}

}  // namespace keel::mw
