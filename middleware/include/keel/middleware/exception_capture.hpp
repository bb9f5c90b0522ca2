#pragma once
// Catches everything the inner chain throws, once, in a known place.
//
//   app.use(keel::mw::exception_capture());
//
// The response is keel::response_for_exception's: an http_error's own status,
// detail and headers; 422 with "errors" for a json::validation_error; 504 when
// the request's deadline cancelled the handler; else a 500 problem whose
// detail carries the exception's text only in dev_mode. Every problem body
// carries the trace id.
//
// What is counted and logged:
//  - any exception other than http_error (std::exception or not): counted in
//    keel_handler_exceptions_total and logged once at `error` with the trace
//    id, request id, method, route, the exception's type (demangled) and its
//    message.
//  - http_error (json::validation_error included) is an answer a handler chose,
//    not a failure: neither counted nor logged when 4xx; a 5xx is logged at
//    `warn` (the service reports it is failing) but not counted.
//  - a handler cut by its deadline (504) is logged at `warn`, not counted; one
//    whose client went away (499, never written) is logged at `debug`.
// Layers outside this one see an ordinary response.
#include <keel/middleware.hpp>

#include <exception>
#include <string>
#include <string_view>

namespace keel::mw {

namespace name {
inline constexpr std::string_view exception_capture = "exception_capture";
}

middleware exception_capture();

/// The demangled type name of an exception ("std::runtime_error",
/// "myapp::db_error", "int").
std::string exception_type_name(std::exception_ptr const& e);

}  // namespace keel::mw
