// Shared by the fuzz harnesses (libFuzzer entry points over longseq's parsers). A harness feeds one
// input to the code a user's file reaches; longseq::Error is the expected answer to bad input, and
// anything else (a crash, a sanitizer report, another exception type, which the CLI would call an
// "internal error") is a finding. The same harnesses are built without libFuzzer into ctest replay
// tests that run every committed seed and regression input (tests/fuzz/standalone_main.cpp).
#pragma once

#include "core/error.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

namespace longseq::fuzz {

// A per-process scratch folder (removed at exit) for harnesses whose code under test reads files.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "longseq-fuzz-XXXXXX").string();
    const char* made = mkdtemp(pattern.data());
    if (!made) std::abort();
    static struct Remover {
      std::filesystem::path p;
      ~Remover() {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    } remover{made};
    return std::filesystem::path(made);
  }();
  return dir;
}

// Writes the input to scratch()/name (replacing it) and returns the path.
inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch() / name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs `body`; longseq::Error is fine, any other exception aborts (a finding).
template <class Fn>
int run_one(Fn&& body) {
  try {
    body();
  } catch (const longseq::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: unexpected exception (the CLI would report an internal error): %s\n", e.what());
    std::abort();
  }
  return 0;
}

}  // namespace longseq::fuzz
