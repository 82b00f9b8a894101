// What `longseq info` reports about a model directory: the family and format recognised from the
// config, key hyperparameters, parameter count (trainable tensors only, shared tensors once) and an
// estimate of working memory per 1k tokens.
#pragma once

#include "core/model_dir.h"

#include <string>
#include <utility>
#include <vector>

namespace longseq {

struct ModelSummary {
  std::string family;  // "mamba", "hyenadna", "caduceus"
  std::string format;  // "state-spaces", "huggingface"
  std::vector<std::pair<std::string, std::string>> hyperparameters;
  int64_t parameters = 0;       // elements of trainable tensors
  int64_t buffer_elements = 0;  // stored non-trainable tensors (positional grids, complement maps)
  double weight_bytes = 0;      // as stored
  // Working memory per token beyond the weights for a forward pass, in bytes.
  double activation_bytes_per_token = 0;
  std::string memory_note;  // how the estimate scales with length
  std::vector<std::string> notes;
};

// Throws naming the config when the family cannot be recognised.
ModelSummary summarize_model(const ModelDir& model);

// Tensors stored in the file that are buffers, not parameters (HyenaDNA pos_emb.t and
// modulation.deltas, Caduceus complement_map).
bool is_buffer_tensor(const std::string& name);

}  // namespace longseq
