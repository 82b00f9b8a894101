#include "core/train/grad_model.h"

#include "core/error.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/temp_paths.h"
#include "core/model_dir.h"
#include "core/ops/ops.h"
#include "core/random.h"
#include "core/safetensors.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

namespace longseq::train {

using namespace ops;  // the CPU op library: the audio front end and the loss

namespace {

bool ends_with(const std::string& s, const std::string& suffix) { return s.ends_with(suffix); }

// Decay only matrices: biases, norm weights, D and freq are vectors; A_log and the implicit
// filters' positional features are excluded by name as the originals do, and so are StripedHyena's
// modal log-poles and residues (decay would pull every pole towards 1, the edge of stability).
bool decays(const std::string& name, const Shape& shape) {
  const int64_t dims = std::count_if(shape.begin(), shape.end(), [](int64_t s) { return s > 1; });
  return dims >= 2 && !ends_with(name, "A_log") && !ends_with(name, "pos_emb.z") && !ends_with(name, ".freq") &&
         !ends_with(name, "log_poles") && !ends_with(name, "residues");
}

}  // namespace

int64_t ParamTable::add(const std::string& name, const Shape& shape, bool trainable, bool bf16) {
  LS_CHECK(!has(name), "parameter '{}' listed twice", name);
  if (!bf16) size_ = (size_ + kPadTo - 1) / kPadTo * kPadTo;  // each tensor on a 64-byte boundary (float) of the weights
  const int64_t offset = bf16 ? nn::Params<float>::kBf16 + bf16_count_++ : size_;
  list_.push_back({name, shape, offset, shape_numel(shape), trainable, trainable && decays(name, shape), bf16});
  if (!bf16) size_ += list_.back().numel;
  return offset;
}

bool ParamTable::has(const std::string& name) const {
  return std::any_of(list_.begin(), list_.end(), [&](const ParamInfo& p) { return p.name == name; });
}

const ParamInfo& ParamTable::find(const std::string& name) const {
  for (const auto& p : list_)
    if (p.name == name) return p;
  fail("no parameter named '{}' in this model", name);
}

int64_t AudioSpec::stride() const {
  int64_t s = 1;
  for (int64_t p : pool) s *= p;
  return s;
}

nlohmann::json AudioSpec::to_json() const {
  nlohmann::json j = {{"sample_rate", sample_rate}, {"clip_samples", clip_samples}, {"pool", pool}, {"input", "mu-law-8"}};
  if (level_rms > 0) j["level_rms"] = level_rms;
  if (filters > 0) j["frontend"] = {{"type", "filterbank"}, {"filters", filters}, {"frame", frame}, {"learned", learn_filters}, {"band_norm", band_norm}};
  return j;
}

AudioSpec AudioSpec::from_json(const nlohmann::json& j, const std::string& source) {
  AudioSpec a;
  try {
    a.sample_rate = j.at("sample_rate").get<int64_t>();
    a.clip_samples = j.at("clip_samples").get<int64_t>();
    a.pool = j.at("pool").get<std::vector<int64_t>>();
    a.level_rms = j.value("level_rms", 0.0);
    if (j.contains("frontend")) {
      const nlohmann::json& f = j.at("frontend");
      LS_CHECK(f.value("type", "") == "filterbank", "{}: longseq_audio.frontend.type must be 'filterbank'", source);
      a.filters = f.at("filters").get<int64_t>();
      a.frame = f.at("frame").get<int64_t>();
      a.learn_filters = f.value("learned", false);
      a.band_norm = f.value("band_norm", false);
      LS_CHECK(a.filters >= 1 && a.filters <= 1024, "{}: longseq_audio.frontend.filters {} is outside 1..1024", source, a.filters);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: 'longseq_audio' needs sample_rate, clip_samples and pool, and a frontend filters and frame ({})", source, e.what());
  }
  LS_CHECK(j.value("input", "mu-law-8") == "mu-law-8", "{}: longseq_audio.input must be 'mu-law-8'", source);
  LS_CHECK(a.sample_rate >= 1000 && a.sample_rate <= 384000, "{}: longseq_audio.sample_rate {} is not an audio rate", source,
           a.sample_rate);
  LS_CHECK(!a.pool.empty(), "{}: longseq_audio.pool is empty; give one factor per stage, e.g. [16, 4, 4]", source);
  for (int64_t p : a.pool) LS_CHECK(p >= 1 && p <= 1024, "{}: longseq_audio.pool factor {} is outside 1..1024", source, p);
  LS_CHECK(a.level_rms >= 0 && a.level_rms <= 1, "{}: longseq_audio.level_rms {} is outside 0..1 (full scale is 1)", source, a.level_rms);
  if (a.filters > 0)
    LS_CHECK(a.frame >= a.pool[0] && a.frame <= 16384, "{}: longseq_audio.frontend.frame {} must lie in pool[0] ({})..16384", source,
             a.frame, a.pool[0]);
  LS_CHECK(a.clip_samples >= a.stride() && a.clip_samples % a.stride() == 0,
           "{}: longseq_audio.clip_samples {} is not a positive multiple of the pooling stride {}", source, a.clip_samples,
           a.stride());
  return a;
}

// Everything of one pass that lives on the backend. Per step: the normalised input and each
// layer's saved activations (one shared set when recomputing); the stream entering every step.
template <class T>
struct GradModel<T>::Buffers {
  struct Acts {
    explicit Acts(nn::Backend<T>& backend) : normed(backend), norm(backend), op(backend) {}
    nn::Arena<T> normed, norm, op;
  };
  explicit Buffers(nn::Backend<T>& backend)
      : be(backend), stream(backend), stage_in(backend), final_saved(backend), work(backend), model(backend) {}
  ~Buffers() {
    if (ids) be.free_ids(ids);
  }
  int64_t* ids_for(int64_t n) {
    if (n > ids_size) {
      if (ids) be.free_ids(std::exchange(ids, nullptr));
      ids = be.alloc_ids(n);
      ids_size = n;
    }
    return ids;
  }
  nn::Backend<T>& be;
  nn::Arena<T> stream, stage_in, final_saved;
  std::vector<Acts> acts;
  nn::Arena<T> work;   // the layers' backward temporaries
  nn::Arena<T> model;  // the model's: see kSlot*
  nn::Buf<T> weights, grads;  // device copies of the flat table (unused on the host)
  int64_t* ids = nullptr;
  int64_t ids_size = 0;
};

namespace {
// Slots of Buffers::model.
constexpr size_t kResidualGrad = 0, kFinalGrad = 1, kNormedGrad = 2, kNormGrad = 3, kStageGrad = 4, kFin = 5, kRecomputeOut = 6,
                 kTokenTable = 7;
}  // namespace

template <class T>
GradModel<T>::GradModel(GradModelSpec spec)
    : family_(spec.family), config_(spec.config), d_model_(spec.d_model), backend_(nn::cpu_backend<T>()) {
  const auto trained = [&](const std::string& name) { return std::find(spec.buffers.begin(), spec.buffers.end(), name) == spec.buffers.end(); };
  WeightSource& src = spec.weights;
  const bool keep = std::is_same_v<T, float> && src.keep_bf16;
  if (src.tensors.empty()) {  // made in place, in declaration order from one generator
    const auto bf16 = [&](const nn::ParamDecl& d) { return keep && d.matrix; };
    for (const nn::ParamDecl& d : src.declarations) table_.add(d.name, d.shape, trained(d.name), bf16(d));
    weights_.assign(size_t(table_.size()), T(0));
    Rng rng(src.seed);
    std::vector<float> tmp;
    for (const nn::ParamDecl& d : src.declarations) {
      tmp.resize(size_t(shape_numel(d.shape)));
      d.init(rng, tmp.data());
      if (bf16(d)) {
        Tensor t = Tensor::empty(d.shape, DType::BF16);
        std::transform(tmp.begin(), tmp.end(), static_cast<uint16_t*>(t.raw()), f32_to_bf16);
        hold_bf16(d.name, std::move(t));
      } else {
        std::copy(tmp.begin(), tmp.end(), weights_.begin() + table_.find(d.name).offset);
      }
    }
  } else {
    const auto bf16 = [&](const Tensor& t) { return keep && t.dtype() == DType::BF16; };
    for (const auto& [name, t] : src.tensors) table_.add(name, t.shape(), trained(name), bf16(t));
    // Appended in table order, each tensor dropped once copied: a model handed over by value is
    // held once.
    weights_.reserve(size_t(table_.size()));
    for (auto& [name, t] : src.tensors) {
      if (bf16(t)) {
        hold_bf16(name, std::move(t));
        continue;
      }
      const std::vector<float> v = t.contiguous().to_vector();
      weights_.resize(size_t(table_.find(name).offset), T(0));  // the padding before it
      weights_.insert(weights_.end(), v.begin(), v.end());
      t = Tensor{};
    }
    weights_.resize(size_t(table_.size()), T(0));
  }
  emb_ = table_.find(spec.embedding).offset;
  lm_head_ = table_.find(spec.lm_head).offset;
  vocab_ = table_.find(spec.lm_head).shape.at(0);
  complement_ = std::move(spec.complement);
  file_layout_ = std::move(spec.file_layout);
  if (derived_token_table()) {
    LS_CHECK(spec.embedding == spec.lm_head && int64_t(complement_.size()) == vocab_ && d_model_ % 2 == 0 &&
                 table_.find(spec.embedding).shape == Shape({vocab_, d_model_ / 2}),
             "{}: a reverse-complement token table needs a tied ({}, {}) embedding and a complement per token (a family bug)", family_,
             vocab_, d_model_ / 2);
    for (int64_t c : complement_) LS_CHECK(c >= 0 && c < vocab_, "{}: complement map entry {} outside the vocabulary of {}", family_, c, vocab_);
  }
}

template <class T>
void GradModel<T>::hold_bf16(const std::string& name, Tensor t) {
  // A view of a mapped file is copied into owned memory and its file pages released: the page cache's
  // 4 KB pages of a mapping made a decode step (every weight read once) 1.18x slower (AMD EPYC Zen 4).
  if (!t.storage()->owned()) {
    Tensor c = t.clone();
    release_file_pages(t);
    t = std::move(c);
  }
  t = t.contiguous();
  const ParamInfo& p = table_.find(name);
  LS_CHECK(t.dtype() == DType::BF16 && p.bf16 && p.offset == nn::Params<T>::kBf16 + int64_t(bf16_.size()), "hold_bf16: {} ({}) out of order",
           name, t.describe());
  bf16_ptrs_.push_back(static_cast<uint16_t*>(t.raw()));
  bf16_.push_back(std::move(t));
}

template <class T>
int64_t GradModel<T>::parameter_count() const {
  int64_t n = 0;
  for (const ParamInfo& p : table_.list()) n += p.numel;
  return n;
}

template <class T>
std::vector<T> GradModel<T>::token_table() const {
  std::vector<T> table(size_t(vocab_ * d_model_));
  ops::rc_token_table(weights_.data() + emb_, vocab_, d_model_ / 2, complement_, table.data());
  return table;
}

template <class T>
const T* GradModel<T>::embedding_table(const nn::Params<T>& p) {
  if (!derived_token_table()) return p.at(emb_);
  table_host_ = token_table();
  if (backend_->host_memory()) return table_host_.data();
  T* dev = buf_->model.get(kTokenTable, vocab_ * d_model_);
  backend_->upload(dev, table_host_.data(), vocab_ * d_model_);
  return dev;
}

template <class T>
void GradModel<T>::fold_table_grad(const T* dtable, T* grad) const {
  ops::rc_token_table_backward(dtable, vocab_, d_model_ / 2, complement_, grad + emb_);
}

template <class T>
void GradModel<T>::add_step(int64_t block, std::shared_ptr<const nn::Layer<T>> norm, std::shared_ptr<const nn::Layer<T>> op) {
  LS_CHECK(block >= (steps_.empty() ? 0 : steps_.back().block), "add_step: blocks out of order");
  steps_.push_back({block, std::move(norm), std::move(op)});
  blocks_ = block + 1;
  buf_.reset();
}

template <class T>
bool GradModel<T>::causal() const {
  return std::all_of(steps_.begin(), steps_.end(), [](const Step& s) { return (!s.norm || s.norm->causal()) && s.op->causal(); });
}

template <class T>
void GradModel<T>::add_map(int64_t block, std::shared_ptr<const nn::Layer<T>> op) {
  add_step(block, nullptr, std::move(op));
  steps_.back().residual = false;
}

template <class T>
void GradModel<T>::set_final_norm(std::shared_ptr<const nn::Layer<T>> norm) {
  final_norm_ = std::move(norm);
}

template <class T>
nn::OffsetOf GradModel<T>::offsets() const {
  return [this](const std::string& name) { return off(name); };
}

template <class T>
std::unique_ptr<GradModel<T>> GradModel<T>::clone() const {
  auto c = std::unique_ptr<GradModel<T>>(new GradModel<T>(*this));
  if (ops_) {
    if constexpr (std::is_same_v<T, float>) c->backend_ = nn::device_backend(ops_);  // its own device buffers
  }
  return c;
}

template <class T>
GradModel<T>::GradModel(const GradModel& o)
    : family_(o.family_), config_(o.config_), d_model_(o.d_model_), table_(o.table_), weights_(o.weights_), bf16_(o.bf16_),
      bf16_ptrs_(o.bf16_ptrs_), head_(o.head_),
      classes_(o.classes_), vocab_(o.vocab_), emb_(o.emb_), lm_head_(o.lm_head_), steps_(o.steps_), blocks_(o.blocks_),
      complement_(o.complement_), fixed_(o.fixed_), file_layout_(o.file_layout_),
      final_norm_(o.final_norm_), recompute_(o.recompute_), train_length_(o.train_length_), labels_(o.labels_), audio_(o.audio_),
      pool_(o.pool_), pool_w_(o.pool_w_), pool_b_(o.pool_b_), fb_w_(o.fb_w_), filters_(o.filters_), frame_(o.frame_),
      learn_filters_(o.learn_filters_), band_norm_(o.band_norm_), ops_(o.ops_), backend_(o.backend_) {}

template <class T>
GradModel<T>::~GradModel() = default;

template <class T>
void GradModel<T>::set_device(std::shared_ptr<DeviceOps> ops) {
  buf_.reset();
  if (!ops) {
    ops_.reset();
    backend_ = nn::cpu_backend<T>();
    return;
  }
  LS_CHECK(!holds_bf16(), "{}: a model with bf16-kept weights runs on a device through a float copy (a caller bug)", family_);
  if constexpr (!std::is_same_v<T, float>) {
    fail("device training runs in float only");
  } else {
    auto be = nn::device_backend(ops);
    for (const Step& s : steps_) s.op->check(*be);
    ops_ = std::move(ops);
    backend_ = std::move(be);
  }
}

template <class T>
int64_t GradModel<T>::stage_opened_by(size_t k) const {
  if (pool_.empty() || (k > 0 && steps_[k - 1].block == steps_[k].block)) return -1;
  const int64_t per_stage = blocks_ / int64_t(pool_.size()), b = steps_[k].block;
  return b % per_stage == 0 ? b / per_stage : -1;
}

template <class T>
int64_t GradModel<T>::activation_floats_per_token() const {
  const int64_t d = d_model_;
  const int64_t stride = audio_ ? audio_->stride() : 1;
  double floats = 0, peak = 0, rows = audio_ ? 1.0 / double(filters_ > 0 ? pool_[0] : 1) : 1.0;
  for (size_t k = 0; k < steps_.size(); ++k) {
    if (const int64_t s = stage_opened_by(k); s >= 0) {  // the pool's input is kept
      floats += rows * double(pool_cols(s)) / double(s == 0 && filters_ > 0 ? 1 : pool_[size_t(s)]);
      if (s > 0 || filters_ == 0) rows /= double(pool_[size_t(s)]);
    }
    const Step& st = steps_[k];
    const double acts = rows * double((st.norm ? d + st.norm->saved_per_token() : 0) + st.op->saved_per_token());
    floats += rows * double(d);  // the stream entering the step
    if (recompute_)
      peak = std::max(peak, acts);
    else
      floats += acts;
  }
  const double head = 2.0 * double(d) + (audio_ ? 0.0 : 2.0 * double(vocab_));
  return int64_t(std::ceil(floats + peak + head / double(stride)));
}

template <class T>
void GradModel<T>::set_audio(const AudioSpec& spec, uint64_t seed) {
  LS_CHECK(!audio_, "the model is already an audio model");
  LS_CHECK(head_ == Head::LanguageModel, "set_audio before adding the classifier head");
  LS_CHECK(vocab_ >= 256, "an audio model reads 8-bit mu-law codes: its vocabulary must be >= 256, not {}", vocab_);
  (void)AudioSpec::from_json(spec.to_json(), "audio spec");
  const int64_t d = d_model_, stages = int64_t(spec.pool.size());
  LS_CHECK(stages >= 1 && blocks_ % stages == 0, "{} layers cannot be split evenly into {} pooling stages; make n_layer a multiple",
           blocks_, stages);
  pool_ = spec.pool;
  filters_ = spec.filters;
  frame_ = spec.frame;
  learn_filters_ = spec.learn_filters;
  band_norm_ = spec.band_norm;
  if (filters_ > 0) {
    fb_w_ = table_.add("backbone.filterbank.weight", {2 * filters_, frame_}, learn_filters_);
    weights_.resize(size_t(table_.size()));
    filterbank_init<T>(filters_, frame_, double(spec.sample_rate), w(fb_w_));
  }
  Rng rng(seed ^ 0x706f6f6cull);
  for (int64_t s = 0; s < stages; ++s) {
    const int64_t fan_in = pool_cols(s);
    const std::string b = fmt::format("backbone.pool.{}.", s);
    pool_w_.push_back(table_.add(b + "weight", {d, fan_in}, true));
    pool_b_.push_back(table_.add(b + "bias", {d}, true));
    weights_.resize(size_t(table_.size()));
    const double bound = 1.0 / std::sqrt(double(fan_in));  // torch.nn.Linear's default
    for (int64_t k = 0; k < d * fan_in; ++k) weights_[size_t(pool_w_.back() + k)] = T(rng.uniform(-bound, bound));
    for (int64_t k = 0; k < d; ++k) weights_[size_t(pool_b_.back() + k)] = T(rng.uniform(-bound, bound));
  }
  audio_ = spec;
  buf_.reset();
}

template <class T>
std::vector<T> GradModel<T>::filterbank_forward(std::span<const int64_t> ids) {
  const int64_t L = int64_t(ids.size()) / pool_[0];
  frames_.resize(size_t(L * frame_));
  audio_frames<T>(ids, pool_[0], mat(frames_.data(), L, frame_));
  fb_y_.assign(size_t(L * 2 * filters_), T(0));
  linear_forward<T>(mat<const T>(frames_.data(), L, frame_), w(fb_w_), nullptr, mat(fb_y_.data(), L, 2 * filters_));
  std::vector<T> bands(static_cast<size_t>(L * filters_));
  log_power_forward<T>(mat<const T>(fb_y_.data(), L, 2 * filters_), mat(bands.data(), L, filters_));
  if (band_norm_) center_columns<T>(mat(bands.data(), L, filters_));
  return bands;
}

template <class T>
void GradModel<T>::filterbank_backward(const T* dbands_in, int64_t rows, T* grad) {
  std::vector<T> dbands(dbands_in, dbands_in + rows * filters_), dy(size_t(rows * 2 * filters_), T(0));
  if (band_norm_) center_columns<T>(mat(dbands.data(), rows, filters_));
  log_power_backward<T>(mat<const T>(fb_y_.data(), rows, 2 * filters_), mat<const T>(dbands.data(), rows, filters_),
                        mat(dy.data(), rows, 2 * filters_));
  linear_backward<T>(mat<const T>(frames_.data(), rows, frame_), w(fb_w_), mat<const T>(dy.data(), rows, 2 * filters_), nullptr,
                     g(grad, fb_w_), nullptr);
}

template <class T>
nn::Params<T> GradModel<T>::params_for(T* device_grad, T* host_grad) {
  if (backend_->host_memory()) return {weights_.data(), host_grad, weights_.data(), bf16_ptrs_.data()};
  return {buf_->weights.get(), device_grad, weights_.data()};
}

template <class T>
Mat<const T> GradModel<T>::step_norm_forward(const Step& st, Mat<const T> x, nn::Arena<T>& normed, nn::Arena<T>& saved) {
  if (!st.norm) return x;
  const Mat<T> y = normed.mat(0, x.rows, x.cols);
  st.norm->forward(*backend_, params_for(nullptr, nullptr), x, y, saved);
  return y;
}

template <class T>
void GradModel<T>::backbone_forward(std::span<const int64_t> ids) {
  LS_CHECK(final_norm_ && !steps_.empty(), "{} training model without layers (a family bug)", family_);
  const int64_t L0 = int64_t(ids.size()), d = d_model_, S = int64_t(steps_.size());
  LS_CHECK(L0 >= 1, "{} training: empty sequence", family_);
  if (audio_)
    LS_CHECK(L0 % audio_->stride() == 0, "audio model: {} samples is not a multiple of the pooling stride {}", L0, audio_->stride());
  for (int64_t id : ids) LS_CHECK(id >= 0 && id < vocab_, "token id {} outside the vocabulary of {}", id, vocab_);
  nn::Backend<T>& be = *backend_;
  if (!buf_) buf_ = std::make_unique<Buffers>(be);
  Buffers& b = *buf_;
  if (!be.host_memory()) {
    if (b.weights.size() < table_.size()) b.weights = nn::Buf<T>(be, table_.size()), b.grads = nn::Buf<T>(be, table_.size());
    be.upload(b.weights.get(), weights_.data(), table_.size());
  }
  const nn::Params<T> p = params_for(nullptr, nullptr);
  // Rows entering each step (pooling shortens them); a stage's input is read as (rows after its
  // pool, pool_cols).
  rows_.assign(size_t(S + 1), 0);
  std::vector<int64_t> stage_rows(pool_.size());
  int64_t L = filters_ > 0 ? L0 / pool_[0] : L0;
  for (int64_t k = 0; k < S; ++k) {
    if (const int64_t s = stage_opened_by(size_t(k)); s >= 0) {
      if (s > 0 || filters_ == 0) L /= pool_[size_t(s)];
      stage_rows[size_t(s)] = L;
    }
    rows_[size_t(k)] = L;
  }
  rows_[size_t(S)] = L;
  const size_t n_acts = recompute_ ? 1 : size_t(S);
  while (b.acts.size() < n_acts) b.acts.emplace_back(be);
  const auto stage_in = [&](int64_t s) { return b.stage_in.get(size_t(s), stage_rows[size_t(s)] * pool_cols(s)); };
  // The first input: a filterbank front end runs on the host (a few MFLOP per clip), embeddings on the backend.
  T* first = pool_.empty() ? b.stream.get(0, rows_[0] * d) : stage_in(0);
  if (filters_ > 0) {
    const std::vector<T> bands = filterbank_forward(ids);
    be.upload(first, bands.data(), int64_t(bands.size()));
  } else {
    int64_t* dev_ids = b.ids_for(L0);
    be.upload_ids(dev_ids, ids.data(), L0);
    be.embedding(dev_ids, embedding_table(p), vocab_, mat(first, L0, d));
  }
  for (int64_t k = 0; k < S; ++k) {
    const Step& st = steps_[size_t(k)];
    const int64_t Lk = rows_[size_t(k)];
    T* x = b.stream.get(size_t(k), Lk * d);
    if (const int64_t s = stage_opened_by(size_t(k)); s >= 0)  // down-pool: (rows, d) read as (rows / p, p d) -> (rows / p, d)
      be.linear(mat<const T>(stage_in(s), Lk, pool_cols(s)), p.at(pool_w_[size_t(s)]), p.at(pool_b_[size_t(s)]), mat(x, Lk, d));
    typename Buffers::Acts& a = b.acts[recompute_ ? 0 : size_t(k)];
    const Mat<const T> op_in = step_norm_forward(st, mat<const T>(x, Lk, d), a.normed, a.norm);
    const int64_t next_stage = k + 1 < S ? stage_opened_by(size_t(k + 1)) : -1;
    T* y = next_stage >= 0 ? stage_in(next_stage) : b.stream.get(size_t(k + 1), Lk * d);
    st.op->forward(be, p, op_in, mat(y, Lk, d), a.op);
    if (st.residual) be.add(y, x, Lk * d);  // step output = input + branch
  }
  const Mat<T> fin = b.model.mat(kFin, L, d);
  final_norm_->forward(be, p, mat<const T>(b.stream.get(size_t(S), L * d), L, d), fin, b.final_saved);
  fin_.resize(size_t(L * d));
  dfin_.resize(size_t(L * d));
  be.download(fin_.data(), fin.data, L * d);
}

template <class T>
void GradModel<T>::backbone_backward(std::span<const int64_t> ids, T* grad) {
  nn::Backend<T>& be = *backend_;
  LS_CHECK(buf_ && !rows_.empty(), "{} training: backward without a forward", family_);
  LS_CHECK(!holds_bf16(), "{}: a model with bf16-kept weights infers only; train a float copy (a caller bug)", family_);
  Buffers& b = *buf_;
  const int64_t d = d_model_, S = int64_t(steps_.size()), L0 = int64_t(ids.size());
  if (!be.host_memory()) be.zero(b.grads.get(), table_.size());
  const nn::Params<T> p = params_for(b.grads.get(), grad);
  // The residual gradient's buffer also holds a stage input's gradient.
  int64_t longest = 0;
  for (int64_t k = 0; k <= S; ++k) longest = std::max(longest, rows_[size_t(k)] * d);
  for (int64_t k = 0; k < S; ++k)
    if (const int64_t s = stage_opened_by(size_t(k)); s >= 0) longest = std::max(longest, rows_[size_t(k)] * pool_cols(s));
  T* dres = b.model.get(kResidualGrad, longest);
  int64_t L = rows_[size_t(S)];
  T* dfin = b.model.get(kFinalGrad, L * d);
  be.upload(dfin, dfin_.data(), L * d);
  final_norm_->backward(be, p, mat<const T>(b.stream.get(size_t(S), L * d), L, d), mat<const T>(dfin, L, d), mat(dres, L, d),
                        b.final_saved, b.work);
  for (int64_t k = S - 1; k >= 0; --k) {
    const Step& st = steps_[size_t(k)];
    L = rows_[size_t(k)];
    typename Buffers::Acts& a = b.acts[recompute_ ? 0 : size_t(k)];
    const Mat<const T> x = mat<const T>(b.stream.get(size_t(k), L * d), L, d);
    const Mat<const T> op_in = st.norm ? Mat<const T>(a.normed.mat(0, L, d)) : x;
    if (recompute_) {
      step_norm_forward(st, x, a.normed, a.norm);
      st.op->forward(be, p, op_in, b.model.mat(kRecomputeOut, L, d), a.op);
    }
    const Mat<T> dnormed = b.model.mat(kNormedGrad, L, d), dx = b.model.mat(kNormGrad, L, d);
    st.op->backward(be, p, op_in, mat<const T>(dres, L, d), dnormed, a.op, b.work);
    if (st.norm) st.norm->backward(be, p, x, dnormed, dx, a.norm, b.work);
    const T* dstep = st.norm ? dx.data : dnormed.data;
    if (st.residual)
      be.add(dres, dstep, L * d);  // the residual path carries dres through unchanged
    else
      be.copy(dres, dstep, L * d);
    if (const int64_t s = stage_opened_by(size_t(k)); s >= 0) {  // back through the down-pool into the stage input
      const int64_t cols = pool_cols(s);
      const bool stem = s == 0 && filters_ > 0, need_dx = !stem || learn_filters_;
      Mat<T> dstage = b.model.mat(kStageGrad, L, cols);
      be.linear_backward(mat<const T>(b.stage_in.get(size_t(s), L * cols), L, cols), p.at(pool_w_[size_t(s)]), mat<const T>(dres, L, d),
                         need_dx ? &dstage : nullptr, false, p.grad(pool_w_[size_t(s)]), p.grad(pool_b_[size_t(s)]));
      if (need_dx) be.copy(dres, dstage.data, L * cols);  // the previous step's output gradient (or the stem's)
    }
  }
  if (filters_ == 0 && derived_token_table()) {  // the derived table's gradient, folded on the host
    T* dtable = b.model.get(kTokenTable, vocab_ * d);
    be.zero(dtable, vocab_ * d);
    be.embedding_backward(b.ids, mat<const T>(dres, L0, d), dtable, vocab_);
    std::vector<T> host(size_t(vocab_ * d));
    be.download(host.data(), dtable, vocab_ * d);
    fold_table_grad(host.data(), grad);
  } else if (filters_ == 0) {
    be.embedding_backward(b.ids, mat<const T>(dres, L0, d), p.grad(emb_), vocab_);
  } else if (learn_filters_) {  // the filterbank's backward on the host, where its forward ran
    const int64_t rows0 = L0 / pool_[0];
    std::vector<T> dbands(static_cast<size_t>(rows0 * filters_));
    be.download(dbands.data(), dres, rows0 * filters_);
    filterbank_backward(dbands.data(), rows0, grad);
  }
  if (!be.host_memory() && grad) {
    std::vector<T> gd(static_cast<size_t>(table_.size()));
    be.download(gd.data(), b.grads.get(), table_.size());
    for (size_t i = 0; i < gd.size(); ++i) grad[i] += gd[i];
  }
}

template <class T>
void GradModel<T>::add_classifier(std::vector<std::string> labels) {
  LS_CHECK(labels.size() >= 2, "a classifier needs at least 2 classes, got {}", labels.size());
  LS_CHECK(head_ == Head::LanguageModel, "the model already has a classifier head");
  head_ = Head::Classifier;
  classes_ = int64_t(labels.size());
  labels_ = std::move(labels);
  table_.add("classifier.weight", {classes_, d_model()}, true);
  table_.add("classifier.bias", {classes_}, true);
  weights_.resize(size_t(table_.size()), T(0));
}

template <class T>
Tensor GradModel<T>::tensor(const std::string& name) const {
  const ParamInfo& p = table_.find(name);
  if (p.bf16) return bf16_[size_t(p.offset - nn::Params<T>::kBf16)].to(DType::F32);
  Tensor t = Tensor::empty(p.shape);
  float* d = t.data<float>();
  for (int64_t i = 0; i < p.numel; ++i) d[i] = float(weights_[size_t(p.offset + i)]);
  return t;
}

template <class T>
std::vector<std::pair<std::string, Tensor>> GradModel<T>::named_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& p : table_.list())
    out.emplace_back(p.name, p.bf16 ? bf16_[size_t(p.offset - nn::Params<T>::kBf16)] : tensor(p.name));
  return out;
}

template <class T>
void GradModel<T>::save(const std::filesystem::path& dir) const {
  create_directories_guarded(dir);  // not re-made inside a temp folder a signal's cleanup removed
  nlohmann::json cfg = config_;
  if (head_ == Head::Classifier) cfg["longseq_head"] = {{"type", "classifier"}, {"classes", classes_}, {"labels", labels_}};
  if (audio_) cfg["longseq_audio"] = audio_->to_json();
  if (train_length_ > 0) cfg["longseq_train_length"] = train_length_;
  AtomicFile f(dir / "config.json");
  f.write(cfg.dump(2) + "\n");
  f.commit();
  std::vector<std::pair<std::string, Tensor>> tensors = named_tensors();
  if (file_layout_)
    for (auto& [name, t] : tensors) t = file_layout_(name, std::move(t), true);
  tensors.insert(tensors.end(), fixed_.begin(), fixed_.end());
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}});
}

template <class T>
double GradModel<T>::lm_loss(std::span<const int64_t> ids, std::span<const int64_t> targets, double scale, T* grad) {
  LS_CHECK(targets.size() == ids.size(), "lm_loss: {} targets for {} tokens", targets.size(), ids.size());
  LS_CHECK(!audio_, "an audio model has no language-model head; train it with --task audio-classify");
  backbone_forward(ids);
  const int64_t L = int64_t(ids.size()), d = d_model();
  const double loss = lm_head_loss(mat<const T>(fin_.data(), L, d), targets, scale, grad, mat(dfin_.data(), L, d));
  if (grad) backbone_backward(ids, grad);
  return loss;
}

template <class T>
double GradModel<T>::class_loss(std::span<const int64_t> ids, int64_t label, double scale, T* grad, std::vector<double>* logits) {
  LS_CHECK(head_ == Head::Classifier, "class_loss on a model without a classifier head");
  backbone_forward(ids);
  const int64_t L = output_length(int64_t(ids.size())), d = d_model();
  const double loss = classifier_loss(mat<const T>(fin_.data(), L, d), label, scale, grad, mat(dfin_.data(), L, d), logits);
  if (grad) backbone_backward(ids, grad);
  return loss;
}

template <class T>
double GradModel<T>::lm_head_loss(Mat<const T> fin, std::span<const int64_t> targets, double scale, T* grad, Mat<T> dfin) {
  const int64_t L = fin.rows, V = vocab_;
  std::vector<T> logits(static_cast<size_t>(L * V)), dlogits(static_cast<size_t>(L * V));
  const T* head = head_table();
  linear_forward<T>(fin, head, nullptr, mat(logits.data(), L, V));
  const double loss = cross_entropy<T>(mat<const T>(logits.data(), L, V), targets, scale, mat(dlogits.data(), L, V));
  if (grad) {
    for (int64_t r = 0; r < L; ++r) std::fill(dfin.row(r), dfin.row(r) + dfin.cols, T(0));
    std::vector<T> dtable(derived_token_table() ? size_t(V * fin.cols) : 0, T(0));
    linear_backward<T>(fin, head, mat<const T>(dlogits.data(), L, V), &dfin, derived_token_table() ? dtable.data() : g(grad, lm_head_),
                       nullptr);
    if (derived_token_table()) fold_table_grad(dtable.data(), grad);
  }
  return loss;
}

template <class T>
double GradModel<T>::classifier_loss(Mat<const T> fin, int64_t label, double scale, T* grad, Mat<T> dfin,
                                     std::vector<double>* logits_out) {
  const int64_t L = fin.rows, d = fin.cols, K = classes_;
  LS_CHECK(label < K, "label {} outside the {} classes of the model", label, K);
  std::vector<T> pooled(size_t(d), T(0)), logits(static_cast<size_t>(K)), dlogits(static_cast<size_t>(K)), dpooled(size_t(d), T(0));
  for (int64_t r = 0; r < L; ++r)
    for (int64_t j = 0; j < d; ++j) pooled[size_t(j)] += fin.at(r, j);
  for (auto& p : pooled) p /= T(L);
  const int64_t wo = off("classifier.weight"), bo = off("classifier.bias");
  linear_forward<T>(mat<const T>(pooled.data(), 1, d), w(wo), w(bo), mat(logits.data(), 1, K));
  if (logits_out) logits_out->assign(logits.begin(), logits.end());
  const int64_t target = label;
  const double loss = label >= 0 ? cross_entropy<T>(mat<const T>(logits.data(), 1, K), std::span<const int64_t>(&target, 1), scale,
                                                    mat(dlogits.data(), 1, K))
                                 : 0.0;
  if (grad) {
    Mat<T> dp = mat(dpooled.data(), 1, d);
    linear_backward<T>(mat<const T>(pooled.data(), 1, d), w(wo), mat<const T>(dlogits.data(), 1, K), &dp, g(grad, wo), g(grad, bo));
    for (int64_t r = 0; r < L; ++r)
      for (int64_t j = 0; j < d; ++j) dfin.at(r, j) = dpooled[size_t(j)] / T(L);
  }
  return loss;
}

// Copies a tensor longseq added to a released architecture (classifier head, audio pooling) from
// the checkpoint into the model, checking its shape against the config.
template <class T>
void load_saved_tensor(GradModel<T>& model, const ModelDir& dir, const std::string& name) {
  LS_CHECK(dir.weights.contains(name), "{}: checkpoint without '{}' (re-save it with longseq train)", dir.weights.path().string(), name);
  const ParamInfo& p = model.params().find(name);
  const Tensor t = dir.weights.load_f32(name);
  LS_CHECK(t.shape() == p.shape, "{}: '{}' has shape {} but config.json implies {}", dir.weights.path().string(), name,
           shape_str(t.shape()), shape_str(p.shape));
  const std::vector<float> v = t.to_vector();
  std::copy(v.begin(), v.end(), model.weights().begin() + p.offset);
}

template <class T>
std::unique_ptr<GradModel<T>> make_grad_model(const LanguageModel& model, const ModelDir* dir) {
  const Family& family = family_named(model.family());
  std::unique_ptr<GradModel<T>> out;
  if constexpr (std::is_same_v<T, float>)
    out = family.trainable_f32(model);
  else
    out = family.trainable_f64(model);
  if (!dir) return out;
  if (dir->config.has("longseq_audio")) {
    out->set_audio(AudioSpec::from_json(dir->config.json().at("longseq_audio"), dir->config.source()), 0);
    for (size_t s = 0; s < out->audio()->pool.size(); ++s)
      for (const char* part : {"weight", "bias"}) load_saved_tensor(*out, *dir, fmt::format("backbone.pool.{}.{}", s, part));
    if (out->audio()->filters > 0) load_saved_tensor(*out, *dir, "backbone.filterbank.weight");
  }
  if (dir->config.has("longseq_head")) {
    const nlohmann::json& head = dir->config.json().at("longseq_head");
    LS_CHECK(head.value("type", "") == "classifier" && head.contains("labels") && head["labels"].is_array(),
             "{}: 'longseq_head' must be {{\"type\": \"classifier\", \"labels\": [...]}}", dir->config.source());
    out->add_classifier(head["labels"].template get<std::vector<std::string>>());
    for (const char* name : {"classifier.weight", "classifier.bias"}) load_saved_tensor(*out, *dir, name);
  }
  return out;
}

template <class T>
std::unique_ptr<GradModel<T>> load_grad_model(const std::filesystem::path& path) {
  const ModelDir dir = ModelDir::open(path);
  const auto lm = load_backbone_model(dir);
  return make_grad_model<T>(*lm, &dir);
}

std::vector<double> class_probabilities(GradModel<float>& model, std::span<const int64_t> ids) {
  std::vector<double> p;
  model.class_loss(ids, -1, 1.0, nullptr, &p);
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& l : p) sum += (l = std::exp(l - mx));
  for (double& l : p) l /= sum;
  return p;
}

template class GradModel<float>;
template class GradModel<double>;
template std::unique_ptr<GradModel<float>> make_grad_model<float>(const LanguageModel&, const ModelDir*);
template std::unique_ptr<GradModel<double>> make_grad_model<double>(const LanguageModel&, const ModelDir*);
template std::unique_ptr<GradModel<float>> load_grad_model<float>(const std::filesystem::path&);
template std::unique_ptr<GradModel<double>> load_grad_model<double>(const std::filesystem::path&);

}  // namespace longseq::train
