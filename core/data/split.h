// Example generators and validation splits shared by the classification tasks (DNA sequences, audio clips): a fixed,
// seeded fraction of each class, so every class is represented and the split never depends on the
// order the files were listed in beyond their sorted order.
#pragma once

#include "core/random.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace longseq {

// The generator of example `index` of the batch at `step`: tasks draw examples from this alone, so a
// resumed run sees exactly the batches an uninterrupted one would.
inline Rng example_rng(uint64_t seed, int64_t step, int64_t index) {
  return Rng(seed * 0x9e3779b97f4a7c15ull ^ uint64_t(step) * 0xbf58476d1ce4e5b9ull ^ uint64_t(index) * 0x94d049bb133111ebull);
}

// Moves round(fraction * n) items of each label (at least one of labels with >= 2 items when
// fraction > 0) from `train` to `val`. Item needs a std::string `label` member.
template <class Item>
void split_validation_by_label(std::vector<Item>& train, std::vector<Item>& val, double fraction, uint64_t seed) {
  std::map<std::string, std::vector<Item>> by;
  for (auto& d : train) by[d.label].push_back(std::move(d));
  train.clear();
  Rng rng(seed ^ 0x5eed5eedull);
  for (auto& [label, items] : by) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[size_t(rng.below(i))]);  // Fisher-Yates
    size_t nv = size_t(double(items.size()) * fraction + 0.5);
    if (fraction > 0 && nv == 0 && items.size() >= 2) nv = 1;
    for (size_t i = 0; i < items.size(); ++i) (i < nv ? val : train).push_back(std::move(items[i]));
  }
}

// The sorted distinct labels (class ids are positions in this list).
template <class Item>
std::vector<std::string> labels_of(const std::vector<Item>& data) {
  std::set<std::string> s;
  for (const auto& d : data) s.insert(d.label);
  return {s.begin(), s.end()};
}

}  // namespace longseq
