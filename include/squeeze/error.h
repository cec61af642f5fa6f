// The one error type of squeeze's public API (include/squeeze/squeeze.h): every failure a caller can
// cause is a squeeze::Error with a one-line message. The library throws it as sq::Error (core/error.h).
#pragma once
#include <stdexcept>

namespace squeeze {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace squeeze
