// What `longseq info` reports about a model directory: the family and format recognised from the
// config, key hyperparameters, parameter count (trainable tensors only, shared tensors once) and an
// estimate of working memory per token. Filled by the family (core/families/family.h:
// summarize_model).
#pragma once

#include "core/model_dir.h"

#include <string>
#include <utility>
#include <vector>

namespace longseq {

struct ModelSummary {
  std::string family;  // Family::name()
  std::string format;  // "state-spaces", "huggingface"
  std::vector<std::pair<std::string, std::string>> hyperparameters;
  int64_t parameters = 0;       // elements of trainable tensors
  int64_t buffer_elements = 0;  // stored non-trainable tensors (Family::is_buffer)
  double weight_bytes = 0;      // as stored
  // Working memory per token beyond the weights for a forward pass, in bytes.
  double activation_bytes_per_token = 0;
  std::string memory_note;  // how the estimate scales with length
  std::vector<std::string> notes;
};

}  // namespace longseq
