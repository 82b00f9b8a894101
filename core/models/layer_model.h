// The inference model of every family: a model's layers (core/nn, held in the GradModel<float>
// its family describes) run forward without keeping activations, on the CPU or on a device, through
// the same layer code that trains. When every layer streams (token-wise layers and recurrences, e.g.
// Mamba), a sequence runs in chunks with each layer's state carried between them, so memory is
// O(chunk x width + states) whatever the length, any chunking gives the same result as one pass,
// and variant windows that share a prefix run it once. Otherwise (a long convolution in the stack)
// a window is one pass, step by step: a token-wise step (norm + MLP) runs a cache-sized row block
// per thread, a recurrent one row blocks in order from a fresh state, a global one its whole-window
// schedule (Layer::infer_window), so a window holds the residual stream and one branch output, not
// every layer's activations. Weights are held once and shared by concurrent callers; each caller
// borrows a session (activation buffers and derived constants) from a pool. On a device the weights
// are uploaded once and calls are serialised (DeviceOps is not thread-safe).
#pragma once

#include "core/models/lm.h"
#include "core/train/grad_model.h"

#include <memory>
#include <mutex>
#include <vector>

namespace longseq {

class LayerLanguageModel final : public LanguageModel {
 public:
  // max_length: the longest input the layers accept (0: unlimited).
  LayerLanguageModel(std::shared_ptr<const train::GradModel<float>> model, int64_t max_length);
  ~LayerLanguageModel() override;

  std::string family() const override { return model_->family(); }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  int64_t n_layer() const override { return model_->blocks(); }
  int64_t d_model() const override { return model_->d_model(); }
  int64_t max_length() const override { return max_length_; }
  bool causal() const override { return model_->causal(); }
  // True when every layer streams (see above).
  bool streams() const { return streams_; }
  // hidden[i] is the residual stream after block i; `extra` holds each block's final state under the
  // reference code's names with the block index appended (ssm_state_3) for streaming models.
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  // Streaming models carry their states from chunk to chunk (only a chunk's states are held).
  void stream_hidden(int64_t length, const IdSource& ids, int64_t chunk, std::span<const int64_t> blocks,
                     const HiddenSink& sink) const override;
  // Streaming models carry a Sequence (one token's work per token); others re-run the window.
  std::unique_ptr<Decoder> decoder() const override;
  // Streaming models run the prefix once and continue each suffix from a copy of its state.
  ContinuationScores score_continuations(std::span<const int64_t> prefix,
                                         std::span<const std::vector<int64_t>> suffixes) const override;
  using LanguageModel::stream_logits;

  // One sequence in progress on a streaming model (decoding, or a prefix to branch from).
  class Sequence {
   public:
    ~Sequence();
    Sequence(Sequence&&) noexcept;
    // Runs `ids` from the carried state and advances it; `logits` (ids.size() x vocab_size() floats,
    // host) receives the logits when not null. At most max_chunk() tokens per call.
    void run(std::span<const int64_t> ids, float* logits);
    Sequence copy() const;  // an independent continuation of the same prefix
    int64_t position() const { return position_; }

   private:
    friend class LayerLanguageModel;
    struct States;
    Sequence(const LayerLanguageModel& model, std::unique_ptr<States> states);
    const LayerLanguageModel* model_;
    std::unique_ptr<States> states_;
    int64_t position_ = 0;
  };
  // A new sequence at position 0. Throws when the model does not stream.
  Sequence start() const;
  int64_t max_chunk() const { return kMaxChunk; }

  const train::GradModel<float>& layers() const { return *model_; }
  // The budget of the values every caller shares (a long convolution's filter spectra per length,
  // made when a length runs a second time); default 1 GiB, 0 keeps none.
  void set_cache_bytes(size_t bytes) { cache_->set_budget(bytes); }
  // config.json + model.safetensors (the layers' names), each atomically.
  void save(const std::filesystem::path& dir) const { model_->save(dir); }
  // The same model on `ops` (the weights uploaded once; `ops` is shared with the result).
  std::unique_ptr<LayerLanguageModel> on_device(std::shared_ptr<DeviceOps> ops) const;

 private:
  static constexpr int64_t kMaxChunk = 65536;   // the largest chunk a caller may ask for
  static constexpr int64_t kScoreChunk = 4096;  // tokens per pass when scoring continuations
  struct Session;
  struct Outputs;  // what a pass writes besides advancing the states
  // A session from the pool (returned by its deleter), and the whole call's lock on a device.
  std::shared_ptr<Session> session() const;
  std::unique_lock<std::mutex> device_lock() const;
  nn::Params<float> params() const;
  // The (V, d) tables the embedding and the LM head read on this model's backend: the weights', or
  // a reverse-complement tied model's derived table (made once, train::GradModel::token_table).
  const float* token_table(const nn::Params<float>& p) const;
  const float* head_table(const nn::Params<float>& p) const {
    return token_table_.empty() ? p.at(model_->lm_head_offset()) : token_table(p);
  }
  // One pass over ids (n rows) from `states` (null: a whole window without state), advancing them.
  void pass(Session& s, std::span<const int64_t> ids, Sequence::States* states, const Outputs& out) const;
  // Runs ids from `seq`, summing their next-token log-probabilities (see ContinuationScores); `carry`
  // is the logits row that predicts ids[0] (empty: not scored) and on return the row after the last.
  double run_scored(std::span<const int64_t> ids, Sequence& seq, std::vector<float>& carry) const;

  std::shared_ptr<const train::GradModel<float>> model_;
  int64_t max_length_;
  bool streams_ = true;
  std::shared_ptr<nn::Backend<float>> backend_;
  std::shared_ptr<DeviceOps> ops_;  // null on the CPU
  std::unique_ptr<nn::SharedCache> cache_;
  std::unique_ptr<nn::Buf<float>> device_weights_;
  std::vector<float> token_table_;                // empty unless the model derives its token table
  std::unique_ptr<nn::Buf<float>> device_table_;  // its device copy
  mutable std::mutex pool_mutex_, device_mutex_;
  mutable std::vector<std::unique_ptr<Session>> pool_;
};

}  // namespace longseq
