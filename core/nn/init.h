// Building blocks of the layers' parameter declarations (layers.h ParamDecl): a tensor drawn
// element by element from a distribution, or constant. Shared by the files that declare layers.
#pragma once

#include "core/nn/layers.h"

#include <functional>
#include <string>
#include <utility>

namespace longseq::nn {

// Every element from `draw`.
inline ParamDecl drawn(std::string name, Shape shape, std::function<double(Rng&)> draw) {
  const int64_t n = shape_numel(shape);
  return {std::move(name), std::move(shape), false, [n, draw](Rng& rng, float* out) {
            for (int64_t i = 0; i < n; ++i) out[i] = float(draw(rng));
          }};
}
inline ParamDecl uniform(std::string name, Shape shape, double bound) {
  return drawn(std::move(name), std::move(shape), [bound](Rng& r) { return r.uniform(-bound, bound); });
}
inline ParamDecl normal(std::string name, Shape shape, double std) {
  return drawn(std::move(name), std::move(shape), [std](Rng& r) { return std * r.normal(); });
}
// The same declaration marked as a linear layer's weight (ParamDecl::matrix).
inline ParamDecl matrix(ParamDecl p) {
  p.matrix = true;
  return p;
}
inline ParamDecl constant(std::string name, Shape shape, float value, bool buffer = false) {
  const int64_t n = shape_numel(shape);
  return {std::move(name), std::move(shape), buffer, [n, value](Rng&, float* out) { std::fill(out, out + n, value); }};
}

}  // namespace longseq::nn
