// Mamba-1 language model (mamba_ssm MambaLMHeadModel) on CPU, streaming: a sequence runs in chunks
// of C tokens with each layer's conv and SSM state carried between chunks, so memory is
// O(C * d_model + n_layer * D * N) whatever the length, and any chunking gives the same result as one
// pass (C = 1 is token-by-token decoding).
#pragma once

#include "core/models/lm.h"
#include "core/models/mamba_config.h"

namespace longseq {

class MambaModel final : public LanguageModel {
 public:
  struct Layer {
    Tensor norm_w, norm_b;              // (d); norm_b only for LayerNorm models
    Tensor in_proj_w, in_proj_b;        // (2D, d), (2D) or undefined
    Tensor conv_w, conv_b;              // (D, W), (D) or undefined
    Tensor x_proj_w;                    // (R + 2N, D)
    Tensor dt_proj_w, dt_proj_b;        // (D, R), (D)
    Tensor A_log;                       // (D, N), as stored
    Tensor A;                           // (D, N) = -exp(A_log)
    Tensor Dskip;                       // (D)
    Tensor out_proj_w, out_proj_b;      // (d, D), (d) or undefined
  };

  // Per-sequence recurrent state: everything needed to continue after the last token seen.
  struct State {
    std::vector<Tensor> conv;  // per layer (1, W, D): last W pre-conv inputs, oldest first
    std::vector<Tensor> ssm;   // per layer (1, D, N)
    int64_t position = 0;      // tokens consumed
  };

  // Loads and validates every tensor against the config (names of either released format).
  static std::unique_ptr<MambaModel> load(const ModelDir& dir);
  // A new model with mamba_ssm's initialisation (dt/A/D init, rescaled out_proj), deterministic in
  // `seed`.
  static std::unique_ptr<MambaModel> random(const MambaConfig& config, uint64_t seed);
  // Writes config.json + model.safetensors (state-spaces names, tied lm_head stored once), each
  // atomically. The folder is created if needed.
  void save(const std::filesystem::path& dir) const;
  // Every parameter under its released name (tied lm_head omitted).
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  MambaModel(MambaConfig config, Tensor embedding, Tensor lm_head, std::vector<Layer> layers, Tensor norm_f_w,
             Tensor norm_f_b);

  const MambaConfig& config() const { return cfg_; }
  // The weights as loaded (the device model copies them).
  struct Parameters {
    const Tensor &embedding, &lm_head, &norm_f_w, &norm_f_b;
    const std::vector<Layer>& layers;
  };
  Parameters parameters() const { return {embedding_, lm_head_, norm_f_w_, norm_f_b_, layers_}; }
  State new_state() const;
  // Runs `ids` (L) from `state` and advances it. logits (L, V) is written when defined; hidden[i]
  // (L, d) and final_hidden (L, d) when non-null/defined.
  void forward_chunk(const Tensor& ids, State& state, Tensor* logits, std::vector<Tensor>* hidden,
                     Tensor* final_hidden) const;

  std::string family() const override { return "mamba"; }
  int64_t vocab_size() const override { return embedding_.size(0); }
  int64_t n_layer() const override { return cfg_.n_layer; }
  int64_t d_model() const override { return cfg_.d_model; }
  int64_t max_length() const override { return 0; }
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  // The prefix runs once; each suffix continues from a copy of its state.
  ContinuationScores score_continuations(std::span<const int64_t> prefix,
                                         std::span<const std::vector<int64_t>> suffixes) const override;
  using LanguageModel::stream_logits;

 private:
  void mixer(const Layer& layer, const Tensor& normed, Tensor& conv_state, Tensor& ssm_state, Tensor& out) const;
  void norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& out) const;
  // Runs ids from `state` chunk by chunk and returns the sum of their log-probabilities; `carry` is
  // the logits row that predicts ids[0] (empty: ids[0] is not scored) and on return the row that
  // predicts the next token.
  double run_scored(std::span<const int64_t> ids, State& state, std::vector<float>& carry) const;

  MambaConfig cfg_;
  Tensor embedding_, lm_head_;
  std::vector<Layer> layers_;
  Tensor norm_f_w_, norm_f_b_;
};

}  // namespace longseq
