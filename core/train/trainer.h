// The training loop shared by every task: batches of examples from a task (drawn from a seed and
// the step number alone, so a resumed run sees exactly the batches an uninterrupted one would),
// forward + backward of each example on its own model copy (one per thread, gradients summed in
// example order: bit-identical for any thread count), clipping, AdamW with warmup + cosine,
// validation, metrics (stdout, JSONL or CSV) and checkpoints that `--resume` continues exactly.
#pragma once

#include "core/data/task.h"
#include "core/train/grad_model.h"
#include "core/train/optimizer.h"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace longseq::train {

struct TrainOptions {
  int64_t steps = 1000;
  int64_t batch = 8;        // examples per optimizer step (summed over accumulation)
  int64_t accumulate = 1;   // micro-batches per step (batch / accumulate examples each)
  AdamWOptions adam;
  int64_t warmup = 100;
  double min_lr_ratio = 0.1;
  double clip = 1.0;
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t eval_every = 200;    // 0: only at the end
  int64_t save_every = 500;    // 0: only at the end
  int64_t keep_checkpoints = 2;
  std::filesystem::path out_dir;
  std::filesystem::path metrics;  // .jsonl or .csv; default out_dir/metrics.jsonl
  bool resume = false;
  double max_minutes = 0;          // > 0: stop (and save) after this long
  std::map<std::string, std::string> run_info;  // recorded in trainer_state.json (command, data, ...)
};

struct EvalResult {
  double loss = 0;          // mean cross-entropy, nats
  double bits = 0;          // loss / ln 2 (per token for LM)
  double accuracy = 0, mcc = 0;  // classification
  int64_t count = 0;        // targets (LM) or examples (classification)
  std::vector<std::vector<int64_t>> confusion;  // [truth][predicted]
};

struct TrainSummary {
  int64_t steps_done = 0;
  double last_loss = 0;
  EvalResult final_eval;
  double tokens_per_second = 0;
  double seconds = 0;
  std::filesystem::path model_dir;  // out_dir/model
};

// Runs (or resumes) training of `model` in place. Throws with the file and the fix for unusable
// checkpoints or output folders.
TrainSummary train_model(GradModel<float>& model, const TrainTask& task, const TrainOptions& options);

// Loss / accuracy of `model` on examples, in parallel over examples (same result for any thread
// count).
EvalResult evaluate(GradModel<float>& model, const std::vector<Example>& examples, bool classification, int64_t classes);

// The latest complete checkpoint folder under out_dir, or empty.
std::filesystem::path latest_checkpoint(const std::filesystem::path& out_dir);

}  // namespace longseq::train
