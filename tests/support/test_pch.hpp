#pragma once
// Headers nearly every test includes, precompiled once (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/testing.hpp>
