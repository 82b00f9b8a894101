// Mamba-1 hyperparameters from either released config format (state-spaces original or Hugging Face
// `*-hf`), mapped onto one struct the model is built from. Letters: D = d_inner, N = d_state, R = dt_rank.
#pragma once

#include "core/config.h"

#include <string>

namespace longseq {

struct MambaConfig {
  enum class Format { StateSpaces, HuggingFace };
  Format format = Format::StateSpaces;
  int64_t d_model = 0;
  int64_t n_layer = 0;
  int64_t vocab_size = 0;    // as in the config
  int64_t padded_vocab = 0;  // embedding / lm_head rows
  int64_t pad_vocab_multiple = 8;
  int64_t d_state = 16;      // N
  int64_t d_conv = 4;
  int64_t expand = 2;
  int64_t d_inner = 0;       // D
  int64_t dt_rank = 0;       // R
  bool conv_bias = true;
  bool bias = false;         // in_proj / out_proj bias
  bool rms_norm = true;
  bool residual_in_fp32 = true;
  bool tie_embeddings = true;
  double norm_eps = 1e-5;

  // Name of the token embedding tensor in this format.
  std::string embedding_name() const;
};

// True when the config is a Mamba-1 config in either format.
bool looks_like_mamba(const Config& c);
// Parses and validates; throws naming the key for missing/invalid values and for features of the
// family that longseq does not run (Mamba-2 layers, attention layers, MLP blocks).
MambaConfig parse_mamba_config(const Config& c);

// config.json in the state-spaces format (HF-format configs are written back in that format too,
// with the matching tensor names handled by the model).
nlohmann::json mamba_config_json(const MambaConfig& c);


}  // namespace longseq
