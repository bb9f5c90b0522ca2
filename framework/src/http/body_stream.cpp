// keel::body_stream: a request body handed to the handler as it arrives, from
// whichever transport carries the exchange (exchange::read_body).
#include <keel/body_stream.hpp>
#include <keel/context.hpp>

#include "http/exchange.hpp"

namespace keel {

task<std::optional<std::string_view>> body_stream::read_some() {
  if (done_) co_return std::nullopt;
  if (source_ == nullptr) {
    // A route without stream_body: keel has read the whole body already.
    auto whole = ctx_->body();
    if (!whole_given_ && !whole.empty()) {
      whole_given_ = true;
      received_ = whole.size();
      co_return whole;
    }
    done_ = true;
    co_return std::nullopt;
  }
  auto piece = co_await source_->read_body();
  if (!piece) {
    done_ = true;
    co_return std::nullopt;
  }
  received_ += piece->size();
  co_return piece;
}

}  // namespace keel
