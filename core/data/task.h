// What a training task is to the trainer: a source of examples drawn from (seed, step, index)
// alone, and a fixed validation set. The domain modules (genomics/, audio/) implement it over their
// data; core/train/trainer.h consumes it, so neither side includes the other.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longseq {

struct Example {
  std::vector<int64_t> ids;
  std::vector<int64_t> targets;  // language modelling: next-token targets (< 0 ignored)
  int64_t label = -1;            // classification
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // Example `index` of the batch at `step`; a pure function of (seed, step, index).
  virtual Example sample(uint64_t seed, int64_t step, int64_t index) const = 0;
  // The fixed validation set (may be empty).
  virtual const std::vector<Example>& validation() const = 0;
  virtual bool classification() const = 0;
  virtual std::string token_unit() const { return "token"; }  // "base" for DNA
  // What the loss is counted over, when not every input token ("masked base" for masked LM).
  virtual std::string target_unit() const { return token_unit(); }
};

}  // namespace longseq
