// Errors: exceptions carrying full context (file, record, what to do) at API boundaries, asserts for
// internal invariants. The CLI prints Error::what() as one line and exits non-zero. Defined at the
// bottom of the include graph so the CUDA kernels' host code throws the same type as core without
// kernels/ including core/ (core/error.h is this header, under the name core's files use).
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <stdexcept>
#include <string>
#include <utility>

namespace longseq {

// Thrown for every user-facing failure: bad input files, bad configs, wrong shapes, unsupported
// options, device errors. The message is one line and says what to do where that is known.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace longseq

// Checks a condition that depends on input (not an invariant); throws longseq::Error otherwise.
#define LS_CHECK(cond, ...)                    \
  do {                                         \
    if (!(cond)) ::longseq::fail(__VA_ARGS__); \
  } while (0)

#define LS_ASSERT(cond) assert(cond)
