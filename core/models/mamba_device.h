// A Mamba-1 language model running on a device (DeviceOps): the weights of a loaded MambaModel are
// copied to the device once, and sequences stream through it chunk by chunk with each layer's conv
// and SSM state kept on the device, so device memory is O(chunk x d_model + n_layer x D x N)
// whatever the length, as on the CPU. Same results as MambaModel within fp32 rounding (the layer
// math is the same; reductions run in another order). Logits come back to the host per chunk.
// Not yet on a device: hidden states (ForwardOptions::hidden), refused with a clear error.
#pragma once

#include "core/device/ops.h"
#include "core/models/mamba.h"

#include <mutex>

namespace longseq {

class MambaDeviceModel final : public LanguageModel {
 public:
  // `model` must outlive this object; `ops` is shared with it.
  MambaDeviceModel(std::shared_ptr<const MambaModel> model, std::shared_ptr<DeviceOps> ops, int64_t max_chunk = 4096);
  ~MambaDeviceModel() override;

  std::string family() const override { return "mamba"; }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  int64_t n_layer() const override { return model_->n_layer(); }
  int64_t d_model() const override { return model_->d_model(); }
  int64_t max_length() const override { return 0; }
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  ContinuationScores score_continuations(std::span<const int64_t> prefix,
                                         std::span<const std::vector<int64_t>> suffixes) const override;
  using LanguageModel::stream_logits;

  struct Weights;  // device copies, per layer
  struct State;    // device conv and SSM state of one sequence
  struct Buffers;  // per-chunk activations

 private:
  State new_state() const;
  State copy_state(const State& s) const;
  // Runs ids (n <= max_chunk) from `state`, advancing it; writes the (n, V) logits to `logits`.
  void run_chunk(std::span<const int64_t> ids, State& state, float* logits) const;
  double run_scored(std::span<const int64_t> ids, State& state, std::vector<float>& carry) const;

  std::shared_ptr<const MambaModel> model_;
  std::shared_ptr<DeviceOps> ops_;
  int64_t max_chunk_;
  std::unique_ptr<Weights> w_;
  std::unique_ptr<Buffers> buf_;
  mutable std::mutex mutex_;  // one chunk at a time through the shared buffers
};

}  // namespace longseq
