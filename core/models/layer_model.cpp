#include "core/models/layer_model.h"

#include "core/error.h"
#include "core/nn/backend.h"
#include "core/threads.h"

#include <exception>

#include <fmt/format.h>

namespace longseq {

namespace {
// Slots of Session::acts.
constexpr size_t kStream = 0, kNormed = 1, kBranch = 2, kLogits = 3, kTempState = 4;
constexpr int64_t kRowBlock = 4096;    // rows of a streaming step's pass: its activations' bound
constexpr int64_t kThreadRows = 512;   // rows per thread of a token-wise step on the CPU (cache-sized)
}  // namespace

// One caller's buffers: the stream and its normalised copy, the branch output, the logits, the
// layers' temporaries, and each layer's derived constants (made on first use, kept for the model's
// life since its weights never change).
struct LayerLanguageModel::Session {
  Session(nn::Backend<float>& be, size_t layers, nn::SharedCache* shared) : acts(be), work(be) {
    for (size_t i = 0; i < layers; ++i) derived.push_back(std::make_unique<nn::Derived<float>>(be, shared));
  }
  ~Session() {
    if (ids) acts.backend().free_ids(ids);
  }
  int64_t* ids_for(int64_t n) {
    if (n > ids_size) {
      if (ids) acts.backend().free_ids(std::exchange(ids, nullptr));
      ids = acts.backend().alloc_ids(n);
      ids_size = n;
    }
    return ids;
  }
  // One worker thread's buffers for token-wise steps run a row block per thread.
  struct Worker {
    Worker(nn::Backend<float>& be, size_t layers) : acts(be), work(be) {
      for (size_t i = 0; i < layers; ++i) derived.push_back(std::make_unique<nn::Derived<float>>(be));
    }
    nn::Arena<float> acts, work;
    std::vector<std::unique_ptr<nn::Derived<float>>> derived;
  };
  Worker& worker(size_t slot) {
    while (workers.size() <= slot) workers.push_back(std::make_unique<Worker>(acts.backend(), derived.size()));
    return *workers[slot];
  }
  nn::Arena<float> acts, work;
  std::vector<std::unique_ptr<nn::Derived<float>>> derived;  // per step: norm, op; then the final norm
  std::vector<std::unique_ptr<Worker>> workers;
  int64_t* ids = nullptr;
  int64_t ids_size = 0;
};

struct LayerLanguageModel::Sequence::States {
  std::vector<nn::Buf<float>> per_step;  // empty for a step without state
  int64_t tokens = 0;                    // run so far (a growing state's size follows it)
};

namespace {
// `buf` with room for `need` floats: a growing state (an attention layer's KV cache) moves into an
// array at least twice as large, its contents kept and the rest zero.
float* state_with_room(nn::Backend<float>& be, nn::Buf<float>& buf, int64_t need) {
  if (buf.size() < need) {
    nn::Buf<float> grown(be, std::max(need, 2 * buf.size()));
    be.copy(grown.get(), buf.get(), buf.size());
    be.zero(grown.get() + buf.size(), grown.size() - buf.size());
    buf = std::move(grown);
  }
  return buf.get();
}
}  // namespace

struct LayerLanguageModel::Outputs {
  int64_t row0 = 0;                       // rows of the pass within the outputs
  float* logits = nullptr;                // (n, V) at the pass's rows, host
  std::vector<Tensor>* hidden = nullptr;  // per block (L, d)
  Tensor* final_hidden = nullptr;         // (L, d)
  // Or the logits handed out `head_rows` rows at a time (a whole window's are never held).
  const LogitsSink* sink = nullptr;
  int64_t head_rows = 0;
};

LayerLanguageModel::LayerLanguageModel(std::shared_ptr<const train::GradModel<float>> model, int64_t max_length)
    : model_(std::move(model)), max_length_(max_length), backend_(nn::cpu_backend<float>()),
      cache_(std::make_unique<nn::SharedCache>(size_t(1) << 30)) {
  LS_CHECK(!model_->steps().empty(), "{}: a model without layers (a family bug)", model_->family());
  for (const auto& s : model_->steps()) streams_ = streams_ && (!s.norm || s.norm->streams()) && s.op->streams();
  if (model_->derived_token_table()) token_table_ = model_->token_table();
}

LayerLanguageModel::~LayerLanguageModel() = default;

std::unique_ptr<LayerLanguageModel> LayerLanguageModel::on_device(std::shared_ptr<DeviceOps> ops) const {
  LS_CHECK(!model_->holds_bf16(), "{}: a model with bf16-kept weights moves to a device through a float copy (a caller bug)", family());
  auto out = std::make_unique<LayerLanguageModel>(model_, max_length_);
  out->backend_ = nn::device_backend(ops);
  for (const auto& s : model_->steps()) s.op->check(*out->backend_);
  out->ops_ = std::move(ops);
  const auto& w = model_->weights();
  out->device_weights_ = std::make_unique<nn::Buf<float>>(*out->backend_, int64_t(w.size()));
  out->backend_->upload(out->device_weights_->get(), w.data(), int64_t(w.size()));
  if (!token_table_.empty()) {
    out->device_table_ = std::make_unique<nn::Buf<float>>(*out->backend_, int64_t(token_table_.size()));
    out->backend_->upload(out->device_table_->get(), token_table_.data(), int64_t(token_table_.size()));
  }
  return out;
}

nn::Params<float> LayerLanguageModel::params() const {
  const float* host = model_->weights().data();
  return {.w = device_weights_ ? device_weights_->get() : host, .g = nullptr, .host = host, .bf16 = model_->bf16_weights().data()};
}

const float* LayerLanguageModel::token_table(const nn::Params<float>& p) const {
  if (token_table_.empty()) return p.at(model_->embedding_offset());
  return device_table_ ? device_table_->get() : token_table_.data();
}

std::shared_ptr<LayerLanguageModel::Session> LayerLanguageModel::session() const {
  std::unique_ptr<Session> s;
  {
    const std::lock_guard lock(pool_mutex_);
    if (!pool_.empty()) s = std::move(pool_.back()), pool_.pop_back();
  }
  if (!s) s = std::make_unique<Session>(*backend_, 2 * model_->steps().size() + 1, cache_.get());
  return std::shared_ptr<Session>(s.release(), [this](Session* p) {
    const std::lock_guard lock(pool_mutex_);
    pool_.emplace_back(p);
  });
}

std::unique_lock<std::mutex> LayerLanguageModel::device_lock() const {
  return ops_ ? std::unique_lock<std::mutex>(device_mutex_) : std::unique_lock<std::mutex>();
}

void LayerLanguageModel::pass(Session& s, std::span<const int64_t> ids, Sequence::States* states, const Outputs& out) const {
  const int64_t n = int64_t(ids.size()), d = d_model(), V = vocab_size();
  if (n == 0) return;
  for (int64_t id : ids) LS_CHECK(id >= 0 && id < V, "{}: token id {} outside the vocabulary of {}", family(), id, V);
  nn::Backend<float>& be = *backend_;
  const nn::Params<float> p = params();
  const int64_t* dev_ids = ids.data();  // host memory: read in place
  if (!be.host_memory()) {
    dev_ids = s.ids_for(n);
    be.upload_ids(s.ids, ids.data(), n);
  }
  const Mat<float> x = s.acts.mat(kStream, n, d);
  be.embedding(dev_ids, token_table(p), V, x);
  const auto& steps = model_->steps();
  const int64_t row_block = ops_ ? n : kRowBlock;  // a device has the memory for a whole chunk
  // Step st over the rows xb, in place: its norm and op into the arena's slots, then the residual.
  const auto run_step = [&](const auto& st, Mat<float> xb, nn::Arena<float>& acts, float* state, nn::Derived<float>& norm_derived,
                            nn::Derived<float>& op_derived, nn::Arena<float>& work) {
    Mat<const float> in = xb;
    if (st.norm) {
      const Mat<float> normed = acts.mat(kNormed, xb.rows, d);
      st.norm->infer(be, p, xb, normed, nullptr, norm_derived, work);
      in = normed;
    }
    const Mat<float> y = acts.mat(kBranch, xb.rows, d);
    st.op->infer(be, p, in, y, state, op_derived, work);
    if (st.residual)
      be.add(xb.data, y.data, xb.rows * d);
    else
      be.copy(xb.data, y.data, xb.rows * d);
  };
  // Step by step over the rows; a streaming step runs row blocks from its state (the sequence's, or
  // a fresh one for a whole window), so only a block of its activations is ever held.
  for (size_t k = 0; k < steps.size(); ++k) {
    const auto& st = steps[k];
    nn::Derived<float>&norm_derived = *s.derived[2 * k], &op_derived = *s.derived[2 * k + 1];
    if (st.op->streams() && st.op->state_size() == 0 && be.host_memory() && n > kThreadRows) {
      // Token-wise: a row block per thread through norm, op and residual add, in cache.
      for (int i = 0; i < num_threads(); ++i) s.worker(size_t(i));
      std::exception_ptr error;
      for_blocks(n, kThreadRows, [&](int64_t r0, int64_t rows, int slot) {
        Session::Worker& w = s.worker(size_t(slot));
        try {
          run_step(st, x.rows_slice(r0, rows), w.acts, nullptr, *w.derived[2 * k], *w.derived[2 * k + 1], w.work);
        } catch (...) {
#pragma omp critical(longseq_layer_model_error)
          if (!error) error = std::current_exception();
        }
      });
      if (error) std::rethrow_exception(error);
    } else if (st.op->streams()) {
      float* state = nullptr;
      if (states && st.op->state_size() > 0) {
        state = state_with_room(be, states->per_step[k], st.op->state_size_at(states->tokens + n));
      } else if (st.op->state_size() > 0) {
        const int64_t size = st.op->state_size_at(n);
        state = s.acts.get(kTempState, size);
        be.zero(state, size);
      }
      for (int64_t r0 = 0; r0 < n; r0 += row_block)
        run_step(st, x.rows_slice(r0, std::min(row_block, n - r0)), s.acts, state, norm_derived, op_derived, s.work);
    } else {
      const Mat<float> y = s.acts.mat(kBranch, n, d);
      if (st.norm && st.residual && st.op->infer_window(be, p, *st.norm, x, y, op_derived, s.work))
        be.add(x.data, y.data, n * d);
      else
        run_step(st, x, s.acts, nullptr, norm_derived, op_derived, s.work);
    }
    const bool block_ends = k + 1 == steps.size() || steps[k + 1].block != st.block;
    if (out.hidden && block_ends && (*out.hidden)[size_t(st.block)].defined())
      be.download((*out.hidden)[size_t(st.block)].data<float>() + out.row0 * d, x.data, n * d);
  }
  if (states) states->tokens += n;
  if (!out.final_hidden && !out.logits && !out.sink) return;
  const int64_t head_rows = out.sink ? out.head_rows : row_block;
  for (int64_t r0 = 0; r0 < n; r0 += head_rows) {  // the final norm and the head, a row block at a time
    const int64_t rows = std::min(head_rows, n - r0);
    const Mat<float> normed = s.acts.mat(kNormed, rows, d);
    model_->final_norm().infer(be, p, x.rows_slice(r0, rows), normed, nullptr, *s.derived.back(), s.work);
    if (out.final_hidden) be.download(out.final_hidden->data<float>() + (out.row0 + r0) * d, normed.data, rows * d);
    if (out.logits) {
      const Mat<float> lg = s.acts.mat(kLogits, rows, V);
      be.linear(normed, head_table(p), nullptr, lg);
      be.download(out.logits + r0 * V, lg.data, rows * V);
    }
    if (out.sink) {
      const Mat<float> lg = s.acts.mat(kLogits, rows, V);
      be.linear(normed, head_table(p), nullptr, lg);
      Tensor host = Tensor::empty({rows, V});
      be.download(host.data<float>(), lg.data, rows * V);
      (*out.sink)(out.row0 + r0, host);
    }
  }
}

// ---- sequences ---------------------------------------------------------------------------------

LayerLanguageModel::Sequence::Sequence(const LayerLanguageModel& model, std::unique_ptr<States> states)
    : model_(&model), states_(std::move(states)) {}
LayerLanguageModel::Sequence::~Sequence() = default;
LayerLanguageModel::Sequence::Sequence(Sequence&&) noexcept = default;

LayerLanguageModel::Sequence LayerLanguageModel::start() const {
  LS_CHECK(streams_, "{}: this model has a layer that sees the whole window (e.g. a long convolution) and cannot run token by token",
           family());
  const auto lock = device_lock();
  auto states = std::make_unique<Sequence::States>();
  for (const auto& st : model_->steps()) {
    const int64_t n = st.op->state_size();
    states->per_step.emplace_back();
    if (n == 0) continue;
    states->per_step.back() = nn::Buf<float>(*backend_, n);
    backend_->zero(states->per_step.back().get(), n);
  }
  return Sequence(*this, std::move(states));
}

LayerLanguageModel::Sequence LayerLanguageModel::Sequence::copy() const {
  const auto lock = model_->device_lock();
  nn::Backend<float>& be = *model_->backend_;
  auto states = std::make_unique<States>();
  for (const nn::Buf<float>& b : states_->per_step) {
    states->per_step.emplace_back();
    if (!b.get()) continue;
    states->per_step.back() = nn::Buf<float>(be, b.size());
    be.copy(states->per_step.back().get(), b.get(), b.size());
  }
  states->tokens = states_->tokens;
  Sequence out(*model_, std::move(states));
  out.position_ = position_;
  return out;
}

void LayerLanguageModel::Sequence::run(std::span<const int64_t> ids, float* logits) {
  LS_CHECK(int64_t(ids.size()) <= kMaxChunk, "{}: {} tokens in one call (at most {})", model_->family(), ids.size(), kMaxChunk);
  const auto lock = model_->device_lock();
  const auto s = model_->session();
  model_->pass(*s, ids, states_.get(), {.logits = logits});
  position_ += int64_t(ids.size());
}

// ---- the LanguageModel interface ---------------------------------------------------------------

ForwardOutputs LayerLanguageModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(ids.dim() == 1, "{}: expected 1-D token ids, got {}", family(), ids.describe());
  LS_CHECK(options.chunk >= 1, "chunk must be >= 1, got {}", options.chunk);
  const Tensor id64 = ids.dtype() == DType::I64 ? ids.contiguous() : ids.to(DType::I64);
  const int64_t L = id64.size(0), d = d_model();
  LS_CHECK(max_length_ == 0 || L <= max_length_, "{}: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)",
           family(), L, max_length_);
  const std::span<const int64_t> all(id64.data<int64_t>(), size_t(L));
  ForwardOutputs out;
  out.logits = Tensor::empty({L, vocab_size()});
  if (options.hidden) {
    const auto& want = options.hidden_blocks;
    for (int64_t i = 0; i < n_layer(); ++i)
      out.hidden.push_back(want.empty() || std::find(want.begin(), want.end(), i) != want.end() ? Tensor::empty({L, d}) : Tensor{});
    out.final_hidden = Tensor::empty({L, d});
  }
  const auto outputs = [&](int64_t row0) {
    return Outputs{.row0 = row0, .logits = out.logits.data<float>() + row0 * vocab_size(), .hidden = options.hidden ? &out.hidden : nullptr,
                   .final_hidden = options.hidden ? &out.final_hidden : nullptr};
  };
  if (!streams_) {
    const auto lock = device_lock();
    pass(*session(), all, nullptr, outputs(0));
    if (options.hidden)
      for (const auto& st : model_->steps())
        for (auto& [name, t] : st.op->window_tensors(params(), L)) out.extra.emplace_back(fmt::format("{}_{}", name, st.block), t);
    return out;
  }
  Sequence seq = start();
  const auto lock = device_lock();
  const auto s = session();
  const int64_t chunk = std::min(options.chunk, kMaxChunk);
  for (int64_t t0 = 0; t0 < L; t0 += chunk) pass(*s, all.subspan(size_t(t0), size_t(std::min(chunk, L - t0))), seq.states_.get(), outputs(t0));
  const auto& steps = model_->steps();
  for (size_t k = 0; k < steps.size(); ++k) {
    const nn::Buf<float>& b = seq.states_->per_step[k];
    if (!b.get()) continue;
    std::vector<float> host(size_t(b.size()));
    backend_->download(host.data(), b.get(), b.size());
    for (auto& [name, t] : steps[k].op->state_tensors(host.data())) out.extra.emplace_back(fmt::format("{}_{}", name, steps[k].block), t);
  }
  return out;
}

void LayerLanguageModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  if (!streams_) {  // the whole window at once, handed out chunk by chunk
    Tensor ids = Tensor::empty({length}, DType::I64);
    for (int64_t t0 = 0; t0 < length; t0 += chunk) {
      Tensor part = ids.slice(0, t0, std::min(chunk, length - t0));
      source(t0, part);
    }
    if (length == 0) return;
    LS_CHECK(max_length_ == 0 || length <= max_length_, "{}: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)",
             family(), length, max_length_);
    const auto lock = device_lock();
    pass(*session(), std::span<const int64_t>(ids.data<int64_t>(), size_t(length)), nullptr, {.sink = &sink, .head_rows = chunk});
    return;
  }
  chunk = std::min(chunk, kMaxChunk);
  Sequence seq = start();
  const auto lock = device_lock();
  const auto s = session();
  const int64_t cap = std::min(chunk, std::max<int64_t>(length, 1));
  Tensor ids = Tensor::empty({cap}, DType::I64), logits = Tensor::empty({cap, vocab_size()});
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    const int64_t n = std::min(chunk, length - t0);
    Tensor id = ids.slice(0, 0, n), lg = logits.slice(0, 0, n);
    source(t0, id);
    pass(*s, std::span<const int64_t>(id.data<int64_t>(), size_t(n)), seq.states_.get(), {.logits = lg.data<float>()});
    sink(t0, lg);
  }
}

void LayerLanguageModel::stream_hidden(int64_t length, const IdSource& source, int64_t chunk, std::span<const int64_t> blocks,
                                       const HiddenSink& sink) const {
  if (!streams_) return LanguageModel::stream_hidden(length, source, chunk, blocks, sink);
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  const int64_t d = d_model();
  check_hidden_blocks(blocks);
  chunk = std::min(chunk, kMaxChunk);
  const int64_t cap = std::min(chunk, std::max<int64_t>(length, 1));
  // One chunk's buffers: the ids, and the states of the blocks asked for (pass() fills the defined ones).
  Tensor ids = Tensor::empty({cap}, DType::I64), final_hidden;
  std::vector<Tensor> hidden(static_cast<size_t>(n_layer()));
  for (int64_t b : blocks) (b == n_layer() ? final_hidden : hidden[size_t(b)]) = Tensor::empty({cap, d});
  Sequence seq = start();
  const auto lock = device_lock();
  const auto s = session();
  std::vector<Tensor> rows(blocks.size());
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    const int64_t n = std::min(chunk, length - t0);
    Tensor id = ids.slice(0, 0, n);
    source(t0, id);
    pass(*s, std::span<const int64_t>(id.data<int64_t>(), size_t(n)), seq.states_.get(),
         {.hidden = &hidden, .final_hidden = final_hidden.defined() ? &final_hidden : nullptr});
    for (size_t k = 0; k < blocks.size(); ++k) rows[k] = (blocks[k] == n_layer() ? final_hidden : hidden[size_t(blocks[k])]).slice(0, 0, n);
    sink(t0, rows);
  }
}

namespace {
class SequenceDecoder final : public Decoder {
 public:
  SequenceDecoder(const LayerLanguageModel& model) : model_(model), seq_(model.start()) {}
  std::vector<float> feed(std::span<const int64_t> ids) override {
    LS_CHECK(!ids.empty(), "{}: decoding needs at least one token", model_.family());
    const int64_t V = model_.vocab_size(), chunk = 4096;
    std::vector<float> logits(size_t(std::min<int64_t>(chunk, int64_t(ids.size())) * V));
    int64_t last = 0;
    for (size_t t0 = 0; t0 < ids.size(); t0 += size_t(chunk)) {
      const auto part = ids.subspan(t0, std::min(ids.size() - t0, size_t(chunk)));
      seq_.run(part, logits.data());
      last = int64_t(part.size()) - 1;
    }
    return std::vector<float>(logits.begin() + last * V, logits.begin() + (last + 1) * V);
  }

 private:
  const LayerLanguageModel& model_;
  LayerLanguageModel::Sequence seq_;
};
}  // namespace

std::unique_ptr<Decoder> LayerLanguageModel::decoder() const {
  if (!streams_ || !causal()) return LanguageModel::decoder();
  return std::make_unique<SequenceDecoder>(*this);
}

double LayerLanguageModel::run_scored(std::span<const int64_t> ids, Sequence& seq, std::vector<float>& carry) const {
  const int64_t L = int64_t(ids.size()), V = vocab_size();
  const auto s = session();
  Tensor logits = Tensor::empty({std::min(kScoreChunk, std::max<int64_t>(L, 1)), V});
  double sum = 0;
  for (int64_t t0 = 0; t0 < L; t0 += kScoreChunk) {
    const int64_t n = std::min(kScoreChunk, L - t0);
    const std::span<const int64_t> part = ids.subspan(size_t(t0), size_t(n));
    if (!carry.empty()) sum += sum_next_logprobs(Tensor::from_vector(carry, {1, V}), part.data(), 1);
    const Tensor lg = logits.slice(0, 0, n);
    pass(*s, part, seq.states_.get(), {.logits = lg.data<float>()});
    seq.position_ += n;
    sum += sum_next_logprobs(lg, part.data() + 1, n - 1);
    carry = lg.select(0, n - 1).to_vector();
  }
  return sum;
}

ContinuationScores LayerLanguageModel::score_continuations(std::span<const int64_t> prefix,
                                                           std::span<const std::vector<int64_t>> suffixes) const {
  if (!streams_) return LanguageModel::score_continuations(prefix, suffixes);
  ContinuationScores out;
  Sequence seq = start();
  std::vector<float> carry;
  {
    const auto lock = device_lock();
    out.prefix = run_scored(prefix, seq, carry);
  }
  for (const auto& suffix : suffixes) {
    Sequence branch = seq.copy();
    std::vector<float> c = carry;
    const auto lock = device_lock();
    out.suffix.push_back(run_scored(suffix, branch, c));
  }
  return out;
}

}  // namespace longseq
