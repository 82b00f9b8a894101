// Next-token sampling (core/models/sampling.h): greedy and top-k pick what they say among the
// allowed ids only, ties go to the lower id, and temperature sampling draws each allowed token with
// its softmax probability (checked on 40,000 draws of a fixed seed against the exact probabilities).
#include "core/error.h"
#include "core/models/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <vector>

using namespace longseq;

TEST(Sampling, GreedyAndTopKStayAmongTheAllowedTokens) {
  const std::vector<float> logits = {9.0f, 1.0f, 3.0f, 3.0f, -2.0f, 0.5f};  // id 0 is the best but not allowed
  const std::vector<int64_t> allowed = {1, 2, 3, 4, 5};
  Rng rng(1);
  EXPECT_EQ(sample_token(logits, allowed, {.temperature = 0, .top_k = 0}, rng), 2);  // tie 2/3: the lower id
  for (int i = 0; i < 200; ++i) EXPECT_EQ(sample_token(logits, allowed, {.temperature = 1.0, .top_k = 1}, rng), 2);
  for (int i = 0; i < 500; ++i) {
    const int64_t t = sample_token(logits, allowed, {.temperature = 5.0, .top_k = 2}, rng);
    EXPECT_TRUE(t == 2 || t == 3) << t;
  }
  std::vector<float> bad = logits;
  bad[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(sample_token(bad, allowed, {}, rng), Error);
  EXPECT_THROW(sample_token(logits, std::vector<int64_t>{6}, {}, rng), Error);
  EXPECT_THROW(sample_token(logits, std::vector<int64_t>{}, {}, rng), Error);
}

TEST(Sampling, TemperatureDrawsTheSoftmaxProbabilities) {
  const std::vector<float> logits = {0.3f, -1.0f, 1.2f, 0.0f, 2.0f};
  const std::vector<int64_t> allowed = {0, 1, 2, 3};
  for (double T : {0.5, 1.0, 2.0}) {
    std::vector<double> p;
    double z = 0;
    for (int64_t id : allowed) z += std::exp(double(logits[size_t(id)]) / T);
    for (int64_t id : allowed) p.push_back(std::exp(double(logits[size_t(id)]) / T) / z);
    Rng rng(42);
    const int n = 40000;
    std::map<int64_t, int> count;
    for (int i = 0; i < n; ++i) ++count[sample_token(logits, allowed, {.temperature = T, .top_k = 0}, rng)];
    EXPECT_EQ(count.count(4), 0u);
    for (size_t k = 0; k < allowed.size(); ++k) {
      const double freq = double(count[allowed[k]]) / n, sd = std::sqrt(p[k] * (1 - p[k]) / n);
      EXPECT_NEAR(freq, p[k], 5 * sd) << "T " << T << " id " << allowed[k];  // 5 standard deviations
    }
    Rng a(7), b(7);  // a seed gives the same draws
    for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_token(logits, allowed, {.temperature = T}, a), sample_token(logits, allowed, {.temperature = T}, b));
  }
}
