// Central finite differences in float64 against analytic gradients: every checked element is
// perturbed by +-eps and +-eps/2 and the two central differences Richardson-extrapolated (truncation
// error O(eps^4)). Reports max abs and relative error (relative to the largest analytic gradient of
// that input) and fails when the error exceeds tol * max|grad| plus the differences' own rounding
// floor (about 8 ulp of the objective / eps), which dominates for tensors with tiny gradients.
#pragma once

#include "core/random.h"
#include "core/train/grad_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace longseq::testing {

struct GradInput {
  std::string name;
  std::vector<double>* values;      // perturbed in place (restored)
  std::vector<double> analytic;     // d objective / d values
  std::vector<size_t> indices = {}; // empty: every element
};

inline void expect_gradients(const std::string& what, std::vector<GradInput> inputs, const std::function<double()>& objective,
                             double tol = 1e-6, double eps = 1e-5) {
  for (auto& in : inputs) {
    ASSERT_EQ(in.values->size(), in.analytic.size()) << what << " " << in.name;
    std::vector<size_t> idx = in.indices;
    if (idx.empty())
      for (size_t i = 0; i < in.values->size(); ++i) idx.push_back(i);
    double scale = 0, max_abs = 0;
    for (double g : in.analytic) scale = std::max(scale, std::abs(g));
    const double floor = 8 * 2.2e-16 * std::abs(objective()) / eps;
    for (size_t i : idx) {
      double& v = (*in.values)[i];
      const double keep = v;
      auto central = [&](double h) {
        v = keep + h;
        const double up = objective();
        v = keep - h;
        const double down = objective();
        v = keep;
        return (up - down) / (2 * h);
      };
      const double fd = (4 * central(eps / 2) - central(eps)) / 3;
      max_abs = std::max(max_abs, std::abs(fd - in.analytic[i]));
    }
    const double rel = max_abs / std::max(scale, 1e-30);
    std::printf("  %-28s %-18s max_abs %.2e  rel %.2e  (max |grad| %.2e, FD floor %.1e, %zu checked)\n", what.c_str(),
                in.name.c_str(), max_abs, rel, scale, floor, idx.size());
    EXPECT_LE(max_abs, tol * scale + floor) << what << ": gradient of " << in.name;
  }
}

inline std::vector<double> random_doubles(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  std::vector<double> v(n);
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = lo + (hi - lo) * double(s >> 11) * 0x1.0p-53;
  }
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Moves every trainable weight off its initial value (zero biases, unit norms) so each gradient term
// is exercised.
template <class T>
void perturb(train::GradModel<T>& m, uint64_t seed) {
  Rng rng(seed);
  for (const auto& p : m.params().list())
    if (p.trainable)
      for (int64_t i = 0; i < p.numel; ++i) m.weights()[size_t(p.offset + i)] += T(0.1 * rng.normal());
}

// FD over the trainable tensors of a model's weights:
// `per_tensor` elements of each (all of a smaller one).
inline void check_model_gradients(const std::string& what, train::GradModel<double>& m, const std::function<double(double*)>& loss,
                                  int64_t per_tensor = 48) {
  std::vector<double> grad(size_t(m.params().size()), 0.0);
  loss(grad.data());
  std::vector<GradInput> inputs;
  std::vector<std::vector<double>> views;  // per tensor copies, written back into the weights by the objective
  const auto& list = m.params().list();
  views.reserve(list.size());
  for (const auto& p : list) {
    if (!p.trainable) continue;
    views.emplace_back(m.weights().begin() + p.offset, m.weights().begin() + p.offset + p.numel);
    GradInput in{p.name, &views.back(), std::vector<double>(grad.begin() + p.offset, grad.begin() + p.offset + p.numel), {}};
    for (int64_t i = 0; i < p.numel; i += std::max<int64_t>(1, p.numel / per_tensor)) in.indices.push_back(static_cast<size_t>(i));
    inputs.push_back(std::move(in));
  }
  auto objective = [&] {
    size_t v = 0;
    for (const auto& p : list)
      if (p.trainable) std::copy(views[v].begin(), views[v].end(), m.weights().begin() + p.offset), ++v;
    return loss(nullptr);
  };
  expect_gradients(what, std::move(inputs), objective, 1e-6);
}

}  // namespace longseq::testing
