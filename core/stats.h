// Rank statistics of a score that should separate two groups (variant classes, audio labels): the
// area under the ROC curve, its bootstrap interval, and the curve itself. Ties count one half, so the
// AUROC is exactly the Mann-Whitney U over n_case * n_control; "case" is the group expected to score
// higher.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace longseq {

// P(case > control) + P(case == control) / 2 over every (case, control) pair. Both non-empty and
// finite (throws otherwise). O((n + m) log(n + m)).
double auroc(std::span<const double> cases, std::span<const double> controls);

// Strata (e.g. the substitution type of a variant, so a score that only knows which bases changed
// cannot separate the groups): the AUROC over the pairs within the same stratum only, i.e. the
// strata's AUROCs weighted by their numbers of pairs. case_strata[i] is the stratum of cases[i]
// (likewise controls); strata without a case or without a control contribute nothing. Throws when
// no stratum has both.
double stratified_auroc(std::span<const double> cases, std::span<const int> case_strata, std::span<const double> controls,
                        std::span<const int> control_strata);

struct AurocInterval {
  double auroc = 0, lo = 0, hi = 0;  // point estimate and the percentile interval
  int64_t cases = 0, controls = 0;
};

// The point AUROC and a percentile bootstrap interval at `level` (e.g. 0.95): `resamples` draws of
// the cases and of the controls, each with replacement within its own group (stratified), from a
// generator seeded with `seed`, so the interval is the same on every run and machine.
AurocInterval auroc_bootstrap(std::span<const double> cases, std::span<const double> controls, int resamples, uint64_t seed,
                              double level = 0.95);
// The same for stratified_auroc: cases and controls are resampled within their stratum (the strata
// keep their sizes). `cases`/`controls` of the result count only those in strata that have both.
AurocInterval stratified_auroc_bootstrap(std::span<const double> cases, std::span<const int> case_strata, std::span<const double> controls,
                                         std::span<const int> control_strata, int resamples, uint64_t seed, double level = 0.95);

// The empirical ROC curve: (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point
// per distinct score threshold (tied scores move both rates at once: a diagonal step).
std::vector<std::pair<double, double>> roc_curve(std::span<const double> cases, std::span<const double> controls);

}  // namespace longseq
