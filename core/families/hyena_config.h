// HyenaDNA hyperparameters (Hugging Face `LongSafari/hyenadna-*-hf` config.json).
#pragma once

#include "core/config.h"

namespace longseq {

struct HyenaConfig {
  int64_t d_model = 0;
  int64_t n_layer = 0;
  int64_t d_inner = 0;  // MLP width
  int64_t vocab_size = 0;
  int64_t padded_vocab = 0;
  int64_t pad_vocab_multiple = 8;
  int64_t max_seq_len = 0;
  int64_t emb_dim = 5;             // positional features of the implicit filter (odd, >= 3)
  int64_t filter_order = 64;       // implicit filter MLP width
  int64_t short_filter_order = 3;  // causal depthwise conv width
  int64_t hyena_order = 2;
  double activation_freq = 10;
  int64_t num_inner_mlps = 2;
  bool train_freq = true;
  double layer_norm_eps = 1e-5;  // ln_f only; block norms use 1e-5 (as the port does)
  bool tie_embeddings = false;
};

bool looks_like_hyena(const Config& c);
// config.json in the Hugging Face hyenadna format.
nlohmann::json hyena_config_json(const HyenaConfig& h);
HyenaConfig parse_hyena_config(const Config& c);

}  // namespace longseq
