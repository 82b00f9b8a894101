// Option validators shared by the subcommands. CLI11's Range lets NaN through (every comparison with
// NaN is false), so real-valued options use finite_range; integer options use CLI::Range directly.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace longseq::cli {

// Accepts a finite number in [lo, hi]; NaN, infinities and values outside fail with one line.
inline CLI::Validator finite_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v) || !std::isfinite(v) || v < lo || v > hi)
          return fmt::format("Value {} not in range {} to {}", in, lo, hi);
        return {};
      },
      fmt::format("FLOAT in [{} - {}]", lo, hi));
}

// Accepts a whole number in [lo, hi], also in scientific notation ("1e6" for a window), and rewrites
// it in digits for the integer option. Register with ->transform(), not ->check().
inline CLI::Validator count_range(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v) || !std::isfinite(v) || v != std::floor(v) || v < double(lo) || v > double(hi))
          return fmt::format("Value {} is not a whole number from {} to {}", in, lo, hi);
        in = std::to_string(int64_t(v));
        return {};
      },
      fmt::format("INT in [{} - {}]", lo, hi));
}

}  // namespace longseq::cli
