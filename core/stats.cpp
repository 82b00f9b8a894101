#include "core/stats.h"

#include "core/error.h"
#include "core/random.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace longseq {

namespace {

void check_groups(std::span<const double> cases, std::span<const double> controls) {
  LS_CHECK(!cases.empty() && !controls.empty(), "AUROC needs at least one case and one control (got {} and {})", cases.size(),
           controls.size());
  const auto finite = [](double v) { return std::isfinite(v); };
  LS_CHECK(std::all_of(cases.begin(), cases.end(), finite) && std::all_of(controls.begin(), controls.end(), finite),
           "AUROC of non-finite scores");
}

// (score, is_case) sorted by score.
std::vector<std::pair<double, bool>> pooled(std::span<const double> cases, std::span<const double> controls) {
  std::vector<std::pair<double, bool>> all;
  all.reserve(cases.size() + controls.size());
  for (double v : cases) all.emplace_back(v, true);
  for (double v : controls) all.emplace_back(v, false);
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

double auroc(std::span<const double> cases, std::span<const double> controls) {
  check_groups(cases, controls);
  const auto all = pooled(cases, controls);
  // Mann-Whitney: the sum of the cases' mid-ranks (1-based) minus n(n+1)/2.
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    int64_t in_cases = 0;
    for (; j < all.size() && all[j].first == all[i].first; ++j) in_cases += all[j].second;
    const double mid_rank = 0.5 * double(i + 1 + j);  // mean of ranks i+1 .. j
    rank_sum += double(in_cases) * mid_rank;
    i = j;
  }
  const double n = double(cases.size()), m = double(controls.size());
  return (rank_sum - n * (n + 1) / 2) / (n * m);
}

namespace {

// Values split by stratum, keeping only strata that have both a case and a control.
struct Strata {
  std::vector<std::vector<double>> cases, controls;
};
Strata split(std::span<const double> cases, std::span<const int> case_strata, std::span<const double> controls,
             std::span<const int> control_strata) {
  LS_CHECK(case_strata.size() == cases.size() && control_strata.size() == controls.size(), "one stratum per value");
  std::map<int, std::pair<std::vector<double>, std::vector<double>>> by;
  for (size_t i = 0; i < cases.size(); ++i) by[case_strata[i]].first.push_back(cases[i]);
  for (size_t i = 0; i < controls.size(); ++i) by[control_strata[i]].second.push_back(controls[i]);
  Strata s;
  for (auto& [k, v] : by)
    if (!v.first.empty() && !v.second.empty()) {
      s.cases.push_back(std::move(v.first));
      s.controls.push_back(std::move(v.second));
    }
  LS_CHECK(!s.cases.empty(), "no stratum has both a case and a control");
  return s;
}

double pooled_auroc(const Strata& s) {
  double u = 0, pairs = 0;
  for (size_t k = 0; k < s.cases.size(); ++k) {
    const double n = double(s.cases[k].size()) * double(s.controls[k].size());
    u += auroc(s.cases[k], s.controls[k]) * n;
    pairs += n;
  }
  return u / pairs;
}

// The bootstrap of a stratified AUROC (one stratum: the plain one).
AurocInterval bootstrap(const Strata& s, int resamples, uint64_t seed, double level) {
  LS_CHECK(resamples >= 1 && level > 0 && level < 1, "bootstrap needs resamples >= 1 and a level in (0, 1)");
  AurocInterval r;
  r.auroc = pooled_auroc(s);
  for (size_t k = 0; k < s.cases.size(); ++k) {
    r.cases += int64_t(s.cases[k].size());
    r.controls += int64_t(s.controls[k].size());
  }
  Rng rng(seed);
  Strata draw = s;
  std::vector<double> values(static_cast<size_t>(resamples));
  for (double& v : values) {
    for (size_t k = 0; k < s.cases.size(); ++k) {
      for (double& x : draw.cases[k]) x = s.cases[k][rng.below(s.cases[k].size())];
      for (double& x : draw.controls[k]) x = s.controls[k][rng.below(s.controls[k].size())];
    }
    v = pooled_auroc(draw);
  }
  std::sort(values.begin(), values.end());
  // Percentiles by the nearest rank of (1 - level) / 2 and (1 + level) / 2.
  const auto at = [&](double q) {
    const double idx = std::clamp(std::ceil(q * double(resamples)) - 1, 0.0, double(resamples - 1));
    return values[size_t(idx)];
  };
  r.lo = at((1 - level) / 2);
  r.hi = at((1 + level) / 2);
  return r;
}

}  // namespace

double stratified_auroc(std::span<const double> cases, std::span<const int> case_strata, std::span<const double> controls,
                        std::span<const int> control_strata) {
  return pooled_auroc(split(cases, case_strata, controls, control_strata));
}

AurocInterval auroc_bootstrap(std::span<const double> cases, std::span<const double> controls, int resamples, uint64_t seed,
                              double level) {
  check_groups(cases, controls);
  return bootstrap({{std::vector<double>(cases.begin(), cases.end())}, {std::vector<double>(controls.begin(), controls.end())}},
                   resamples, seed, level);
}

AurocInterval stratified_auroc_bootstrap(std::span<const double> cases, std::span<const int> case_strata, std::span<const double> controls,
                                         std::span<const int> control_strata, int resamples, uint64_t seed, double level) {
  return bootstrap(split(cases, case_strata, controls, control_strata), resamples, seed, level);
}

std::vector<std::pair<double, double>> roc_curve(std::span<const double> cases, std::span<const double> controls) {
  check_groups(cases, controls);
  auto all = pooled(cases, controls);
  std::reverse(all.begin(), all.end());  // thresholds from the highest score down
  std::vector<std::pair<double, double>> curve{{0.0, 0.0}};
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < all.size();) {
    const double v = all[i].first;
    for (; i < all.size() && all[i].first == v; ++i) (all[i].second ? tp : fp) += 1;
    curve.emplace_back(double(fp) / double(controls.size()), double(tp) / double(cases.size()));
  }
  return curve;
}

}  // namespace longseq
