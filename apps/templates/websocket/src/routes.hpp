#pragma once
// The routes of {{name}}: main.cpp and the tests both call setup().
//
//   GET /                 the page (static/index.html, compiled in)
//   GET /ws?room=R        WebSocket: {"type":"joined","room":R} first, then every
//                         text message a member of R sends, to every member, as
//                         {"type":"message","text":...}; 400 before the upgrade
//                         when `room` is missing
//   GET /api/rooms        [{"room":R,"members":N}]
#include <keel/app.hpp>
#include <keel/config.hpp>

namespace {{ident}} {

void declare_settings(keel::config& cfg);
void setup(keel::app& app, keel::config const& cfg);

}  // namespace {{ident}}
