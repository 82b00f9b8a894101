// HyenaDNA language model (the Hugging Face port of LongSafari/hyenadna-*) on CPU.
// Block: x += out_proj(Hyena(LN1(x)));  x += fc2(gelu_tanh(fc1(LN2(x)))). Hyena (order 2): in_proj to
// x0 | x1 | v, causal depthwise short conv (width 3), v = fftconv(v * x1, k) + bias * (v * x1),
// y = v * x0. The long filter k comes from an implicit MLP over positional features built on the
// max_seq_len grid (rows [:L] are used), with sin activations sharing one `freq` per layer, and
// exponential modulation k *= exp(-t |deltas|) + 0.05.
// Memory is bounded by processing the mixer in channel blocks (only one block's x0, x1*v and filter
// columns live for the whole window, channel-major for the FFT) and everything else in token blocks,
// one per thread, so a 1M-token window needs a few L x d_model activations. Filter spectra are cached per (layer, L) within a byte budget when a length is seen a
// second time, and reused across calls.
#pragma once

#include "core/models/hyena_config.h"
#include "core/models/lm.h"
#include "core/ops/fft_conv.h"

#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace longseq {

class HyenaModel final : public LanguageModel {
 public:
  struct Layer {
    Tensor norm1_w, norm1_b, norm2_w, norm2_b;  // (d)
    Tensor in_proj_w, in_proj_b;                // (3d, d), (3d)
    Tensor short_w, short_b;                    // (3d, W), (3d)
    Tensor out_proj_w, out_proj_b;              // (d, d), (d)
    Tensor fc1_w, fc1_b, fc2_w, fc2_b;          // (d_inner, d), (d_inner), (d, d_inner), (d)
    Tensor filter_bias;                         // (d): the long-conv skip term
    Tensor z, t;                                // (max_seq_len, emb_dim), (max_seq_len, 1)
    std::vector<Tensor> mlp_w, mlp_b;           // implicit filter: Linear layers 0, 2, 4 (w, b) and 6 (w only)
    Tensor freq;                                // (filter_order): shared sin frequency
    Tensor deltas;                              // (d)
  };

  static std::unique_ptr<HyenaModel> load(const ModelDir& dir);
  // A new model (HF-port initialisation: normal(0, 0.02) linears with the residual projections scaled
  // by 1/sqrt(2 n_layer), default conv and implicit-filter init, freq = activation_freq, positional
  // grid and decay rates as the port builds them), deterministic in `seed`.
  static std::unique_ptr<HyenaModel> random(const HyenaConfig& config, uint64_t seed);
  // config.json (Hugging Face hyenadna format) + model.safetensors with the released names.
  void save(const std::filesystem::path& dir) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;  // buffers included
  HyenaModel(HyenaConfig config, Tensor embedding, Tensor lm_head, std::vector<Layer> layers, Tensor ln_f_w, Tensor ln_f_b,
             std::vector<std::string> notes);

  const HyenaConfig& config() const { return cfg_; }
  // The weights as loaded (the device model copies them). LayerNorm eps of the blocks' norms (the
  // port's nn.LayerNorm default; the final norm uses config().layer_norm_eps).
  struct Parameters {
    const Tensor &embedding, &lm_head, &ln_f_w, &ln_f_b;
    const std::vector<Layer>& layers;
  };
  Parameters parameters() const { return {embedding_, lm_head_, ln_f_w_, ln_f_b_, layers_}; }
  static constexpr float kBlockNormEps = 1e-5f;
  // The layer's long filter for length L: an (L, d) view of a channel-major (d, L) tensor (the
  // fixtures' filter_k is its transpose).
  Tensor filter(int64_t layer, int64_t L) const;
  // What was recomputed rather than loaded (e.g. positional grids absent from the file).
  const std::vector<std::string>& notes() const { return notes_; }
  // Largest filter-spectrum cache, bytes (default 1 GiB); 0 disables caching. A (layer, L) spectrum is
  // cached the second time that length is run.
  void set_spectrum_cache_bytes(size_t bytes) { cache_budget_ = bytes; }
  // Channels per mixer block (0: automatic from the FFT size). Smaller blocks, less memory.
  void set_channel_block(int64_t channels) { channel_block_ = channels; }

  std::string family() const override { return "hyenadna"; }
  int64_t vocab_size() const override { return embedding_.size(0); }
  int64_t n_layer() const override { return cfg_.n_layer; }
  int64_t d_model() const override { return cfg_.d_model; }
  int64_t max_length() const override { return cfg_.max_seq_len; }
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  using LanguageModel::stream_logits;

 private:
  // Runs all blocks over `x` (L, d) in place; calls after_block(i) after each.
  void backbone(Tensor& x, const std::function<void(int64_t)>& after_block) const;
  // One channel block's views of MixerWork.
  struct MixerBuffers {
    Tensor x0, v, k;  // (cb, L) each, channel-major
    const std::vector<Tensor>& scratch;
  };
  // y (L, d) = Hyena(LN1(x)), before out_proj.
  // Buffers of one forward, reused by every layer: x0, v, k of L x (channels per block) each, and one
  // flat token-block scratch tensor per thread.
  struct MixerWork {
    Tensor x0, v, k;
    std::vector<Tensor> scratch;
  };
  void mixer(const Layer& ly, int64_t layer, const Tensor& x, Tensor& y, const MixerWork& work) const;
  int64_t mixer_block(int64_t L) const;  // channels per mixer block
  // Fills buf.x0 and buf.v = x1 * v for channels [c0, c0 + cb) of LN1(x) -> in_proj -> short conv.
  void gated_inputs(const Layer& ly, const Tensor& x, int64_t c0, MixerBuffers& buf) const;
  // x += out_proj(y); x += fc2(gelu(fc1(LN2(x)))), a token block per thread.
  void out_proj_and_mlp(const Layer& ly, const Tensor& y, Tensor& x, const std::vector<Tensor>& scratch) const;
  Tensor implicit_hidden(const Layer& ly, int64_t L) const;  // (L, filter_order) before the last Linear
  // Filter channels [c0, c0 + cols) into k_block (cols, L), channel-major.
  void filter_block(const Layer& ly, const Tensor& hidden, int64_t c0, Tensor& k_block) const;
  std::shared_ptr<const FilterSpectrum> cached_spectrum(int64_t layer, int64_t L) const;

  HyenaConfig cfg_;
  Tensor embedding_, lm_head_;
  std::vector<Layer> layers_;
  Tensor ln_f_w_, ln_f_b_;
  std::vector<std::string> notes_;
  size_t cache_budget_ = size_t(1) << 30;
  int64_t channel_block_ = 0;
  mutable std::mutex cache_mu_;
  mutable std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const FilterSpectrum>> cache_;
  mutable size_t cache_bytes_ = 0;
  mutable std::set<std::pair<int64_t, int64_t>> seen_;  // (layer, L) run once without the cache
};

}  // namespace longseq
