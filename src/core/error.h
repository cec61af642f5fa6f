// Errors: every failure the user can cause (bad files, bad flags, mismatched shapes) is an sq::Error
// whose message is one line naming the file or option and the problem. The CLI prints it and exits 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

#include <squeeze/error.h>

namespace sq {

// The public API's error type (include/squeeze/squeeze.h): what the library throws is what callers catch.
using Error = squeeze::Error;

// Concatenates anything streamable: cat("file ", path, ": bad offset ", off).
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

#define SQ_CHECK(cond, ...)            \
  do {                                 \
    if (!(cond)) ::sq::fail(__VA_ARGS__); \
  } while (0)

}  // namespace sq
