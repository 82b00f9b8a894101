// The StripedHyena 2 family (Evo 2; vortex's StripedHyena), described by its layers: blocks listed
// by type in the released config (hcs_layer_idxs, hcm_layer_idxs, hcl_layer_idxs, attn_layer_idxs),
// each x += mixer(pre_norm(x)); x += mlp(post_norm(x)) with StripedHyena's RMSNorm (eps added to the
// root), a byte-level vocabulary and the unembedding tied to the embedding. Every layer streams (the
// attention blocks through their KV cache, hcl through its modal state), so a window of any length
// runs in chunks and variant windows share their prefix.
// The released files keep two layouts the layers do not compute in; the loader reorders them, as
// vortex's load_checkpoint does, and saving writes them back (train::GradModelSpec::file_layout):
//   Wqkv.weight rows per head [q_h | k_h | v_h] -> [Q ; K ; V];
//   projections.weight and filter.short_filter_weight rows interleaved (3c + j: x2, x1, v of
//   channel c) -> [x2 ; x1 ; v] (vortex's interleave + column_split_hyena false).
// ../shared/fixtures/README.md (Evo 2 section) lists the quirks matched here.
#include "core/config.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace longseq {

namespace {

using Kind = nn::StripedHyenaShape::Kind;

enum class Block { hcs, hcm, hcl, attn };
const char* block_name(Block b) {
  switch (b) {
    case Block::hcs: return "hcs";
    case Block::hcm: return "hcm";
    case Block::hcl: return "hcl";
    case Block::attn: return "attn";
  }
  return "?";
}

struct ShConfig {
  nlohmann::json json;
  int64_t d = 0, n_layer = 0, vocab = 0, padded_vocab = 0, heads = 0, inner = 0, max_seqlen = 0;
  int64_t short_len = 3, hcs_len = 7, hcs_groups = 1, hcm_len = 128, hcm_groups = 1, state_size = 16;
  int64_t window = 0;  // sliding_window (a longseq option, as Mistral's config names it): 0 = exact attention
  double eps = 1e-6, rotary_base = 10000, pos_scale = 1;
  bool evo2_activations = true, out_proj_bias = true, hyena_out_bias = true;
  std::vector<Block> blocks;
};

// The config keys whose other values vortex supports and the released models do not use: refused
// with the value they must have.
void require_value(const Config& c, const std::string& key, bool expected) {
  if (c.has(key) && c.get_bool(key) != expected)
    c.invalid(key, fmt::format("is {} here; longseq reads the released Evo 2 layout, {}: {}", !expected, key, expected));
}

ShConfig parse(const Config& c) {
  ShConfig h;
  h.json = c.json();
  const int64_t big = int64_t(1) << 24;
  h.d = c.get_int_in("hidden_size", 1, big);
  h.n_layer = c.get_int_in("num_layers", 1, 4096);
  h.vocab = c.get_int_in("vocab_size", 1, big);
  h.padded_vocab = round_up_multiple(h.vocab, c.has("make_vocab_size_divisible_by") ? c.get_int_in("make_vocab_size_divisible_by", 1, 4096) : 1);
  h.heads = c.get_int_in("num_attention_heads", 1, h.d);
  if (h.d % h.heads != 0 || (h.d / h.heads) % 2 != 0) c.invalid("num_attention_heads", fmt::format("must divide hidden_size {} into heads of even width", h.d));
  if (c.has("proj_groups") && c.get_int("proj_groups") != 1) c.invalid("proj_groups", "must be 1 (grouped key/value heads are in no released Evo 2 model)");
  h.max_seqlen = c.get_int_in("max_seqlen", 1, int64_t(1) << 31);
  h.short_len = c.get_int_in("short_filter_length", 1, 64);
  h.hcs_len = c.get_int_in("hcs_filter_length", 1, 4096);
  h.hcs_groups = c.get_int_in("hcs_filter_groups", 1, h.d);
  h.hcm_len = c.get_int_in("hcm_filter_length", 1, 65536);
  h.hcm_groups = c.get_int_in("hcm_filter_groups", 1, h.d);
  h.state_size = c.get_int_in("state_size", 1, 1024);
  for (const char* key : {"hcs_filter_groups", "hcm_filter_groups"})
    if (h.d % c.get_int(key) != 0) c.invalid(key, fmt::format("must divide hidden_size {}", h.d));
  if (c.has("hcl_filter_groups") && c.get_int("hcl_filter_groups") != h.d)
    c.invalid("hcl_filter_groups", fmt::format("must equal hidden_size {} (one modal filter per channel, as released)", h.d));
  // sliding_window: attention over the last N keys only, so the KV caches stay bounded (an
  // approximation of the released models, which attend to everything; absent or null: exact).
  if (c.has("sliding_window")) h.window = c.get_int_in("sliding_window", 1, int64_t(1) << 24);
  h.eps = c.get_double("eps", 1e-6);
  if (!(h.eps > 0 && h.eps < 1)) c.invalid("eps", "must lie in (0, 1)");
  h.rotary_base = c.get_double("rotary_emb_base", 10000);
  if (!(h.rotary_base > 1)) c.invalid("rotary_emb_base", "must be > 1");
  if (c.get_bool("use_interpolated_rotary_pos_emb", false)) {
    const double f = c.get_double("rotary_emb_scaling_factor", 1);
    if (!(f >= 1)) c.invalid("rotary_emb_scaling_factor", "must be >= 1");
    h.pos_scale = 1.0 / f;
  }
  if (c.has("inner_mlp_size")) {
    h.inner = c.get_int_in("inner_mlp_size", 1, int64_t(1) << 20);
  } else {  // vortex's ParallelGatedMLP default: 8 d / 3 rounded up to inner_size_multiple_of
    const int64_t multiple = c.has("inner_size_multiple_of") ? c.get_int_in("inner_size_multiple_of", 1, 4096) : 64;
    h.inner = round_up_multiple(int64_t(2 * h.d * 4 / 3), multiple);
  }
  h.evo2_activations = c.get_bool("evo2_style_activations", false);
  if (c.get_string("mlp_activation", "gelu") != "gelu") c.invalid("mlp_activation", "must be \"gelu\" (the only activation vortex's Evo 2 MLP uses)");
  h.out_proj_bias = c.get_bool("mha_out_proj_bias", true);
  h.hyena_out_bias = c.get_bool("hyena_out_proj_bias", true);
  require_value(c, "tie_embeddings", true);
  require_value(c, "column_split", true);
  require_value(c, "interleave", true);
  require_value(c, "column_split_hyena", false);
  require_value(c, "hyena_flip_x1x2", false);
  require_value(c, "short_filter_bias", false);
  require_value(c, "qkv_proj_bias", false);
  require_value(c, "final_norm", true);
  // use_fp8_input_projections (1b, 40b) is Transformer Engine's FP8 compute of the projections; the
  // weights are stored bf16 either way, and longseq computes them in fp32 (as evo2 does without TE).

  // Block types by index: every block in exactly one list; any other *_layer_idxs key is a block
  // type longseq does not know.
  const std::vector<std::pair<std::string, Block>> lists = {
      {"hcs_layer_idxs", Block::hcs}, {"hcm_layer_idxs", Block::hcm}, {"hcl_layer_idxs", Block::hcl}, {"attn_layer_idxs", Block::attn}};
  for (const auto& item : c.json().items()) {
    const std::string& key = item.key();
    if (key.ends_with("_layer_idxs") && std::none_of(lists.begin(), lists.end(), [&](const auto& l) { return l.first == key; }))
      c.invalid(key, "names a block type longseq does not know; StripedHyena 2 blocks are hcs, hcm, hcl and attn "
                     "(hcs_layer_idxs, hcm_layer_idxs, hcl_layer_idxs, attn_layer_idxs)");
  }
  std::vector<int> seen(size_t(h.n_layer), -1);
  h.blocks.assign(size_t(h.n_layer), Block::hcs);
  for (size_t l = 0; l < lists.size(); ++l) {
    const auto& [key, type] = lists[l];
    const nlohmann::json* list = c.find(key);
    if (!list) continue;
    if (!list->is_array()) c.invalid(key, "must be a list of block indices");
    for (const auto& i : *list) {
      if (!i.is_number_integer() || i.get<int64_t>() < 0 || i.get<int64_t>() >= h.n_layer)
        c.invalid(key, fmt::format("holds {}, not a block index in [0, {})", i.dump(), h.n_layer));
      const size_t b = size_t(i.get<int64_t>());
      if (seen[b] >= 0) c.invalid(key, fmt::format("lists block {} which {} lists too", b, lists[size_t(seen[b])].first));
      seen[b] = int(l);
      h.blocks[b] = type;
    }
  }
  for (int64_t b = 0; b < h.n_layer; ++b)
    if (seen[size_t(b)] < 0) c.invalid("attn_layer_idxs", fmt::format("block {} is in none of hcs/hcm/hcl/attn_layer_idxs", b));
  return h;
}

std::string block_prefix(int64_t i) { return fmt::format("blocks.{}.", i); }

nn::StripedHyenaShape operator_shape(const ShConfig& h, Block b) {
  switch (b) {
    case Block::hcs: return {.kind = Kind::hcs, .d = h.d, .short_len = h.short_len, .len = h.hcs_len, .groups = h.hcs_groups};
    case Block::hcm: return {.kind = Kind::hcm, .d = h.d, .short_len = h.short_len, .len = h.hcm_len, .groups = h.hcm_groups};
    default: return {.kind = Kind::hcl, .d = h.d, .short_len = h.short_len, .N = h.state_size};
  }
}
nn::AttentionShape attention_shape(const ShConfig& h) {
  return {.d = h.d, .heads = h.heads, .kv_heads = h.heads, .pos_scale = h.pos_scale, .rotary_base = h.rotary_base, .window = h.window};
}

// ---- the released file's layouts ---------------------------------------------------------------

// Rows of a (R, ...) tensor reordered: row r of the result is row src(r) of t. F32, or BF16 as it is
// (a bf16-kept weight).
Tensor reorder_rows(const Tensor& t, const std::function<int64_t(int64_t)>& src) {
  const Tensor f = t.dtype() == DType::F32 || t.dtype() == DType::BF16 ? t.contiguous() : t.to(DType::F32);
  const int64_t R = f.shape().at(0);
  const size_t row = size_t(f.numel() / std::max<int64_t>(R, 1)) * dtype_size(f.dtype());
  Tensor out = Tensor::empty(f.shape(), f.dtype());
  const auto* in = static_cast<const std::byte*>(f.raw());
  auto* o = static_cast<std::byte*>(out.raw());
  for (int64_t r = 0; r < R; ++r) std::memcpy(o + size_t(r) * row, in + size_t(src(r)) * row, row);
  return out;
}

// The layers' layout from the file's (to_file false) or back. Wqkv: file row h 3 hd + j hd + e <->
// layers' row j d + h hd + e; projections / short filter: file row 3 c + j <-> layers' row j d + c.
Tensor relayout(const ShConfig& h, const std::string& name, Tensor t, bool to_file) {
  const int64_t d = h.d, hd = d / h.heads;
  if (name.ends_with("Wqkv.weight")) {
    const auto file_row = [&](int64_t r) {  // r in the layers' layout
      const int64_t j = r / d, head = (r % d) / hd, e = r % hd;
      return head * 3 * hd + j * hd + e;
    };
    const auto layer_row = [&](int64_t r) {  // r in the file's layout
      const int64_t head = r / (3 * hd), j = (r % (3 * hd)) / hd, e = r % hd;
      return j * d + head * hd + e;
    };
    return to_file ? reorder_rows(t, layer_row) : reorder_rows(t, file_row);
  }
  if (name.ends_with("projections.weight") || name.ends_with("filter.short_filter_weight")) {
    if (to_file) return reorder_rows(t, [&](int64_t r) { return (r % 3) * d + r / 3; });
    return reorder_rows(t, [&](int64_t r) { return 3 * (r % d) + r / d; });
  }
  return t;
}

LmFrame frame(const ShConfig& h) {
  LmFrame f{.family = "stripedhyena2", .embedding = "embedding_layer.weight", .final_norm = "norm.", .d_model = h.d, .n_layer = h.n_layer,
            .tied = true, .rms = true, .eps_outside = true, .norm_weight = "scale", .final_eps = h.eps};
  f.file_layout = [h](const std::string& name, Tensor t, bool to_file) { return relayout(h, name, std::move(t), to_file); };
  return f;
}

// The family's tensors in the released files' order of keys (per block: norms, mixer, MLP).
nn::ParamDecls declarations(const ShConfig& h) {
  const double resid_std = 0.02 / std::sqrt(2.0 * double(h.n_layer));
  return lm_declarations(frame(h), h.padded_vocab, [&](int64_t i) {
    const std::string b = block_prefix(i);
    const Block type = h.blocks[size_t(i)];
    nn::ParamDecls mixer = type == Block::attn ? nn::attention_params(b + "inner_mha_cls.", attention_shape(h))
                                               : nn::striped_hyena_operator_params(b, operator_shape(h, type), resid_std);
    if (type == Block::attn && !h.out_proj_bias) std::erase_if(mixer, [](const nn::ParamDecl& p) { return p.name.ends_with("out_proj.bias"); });
    if (type != Block::attn && !h.hyena_out_bias) std::erase_if(mixer, [](const nn::ParamDecl& p) { return p.name.ends_with("out_filter_dense.bias"); });
    return concat({nn::norm_params(b + "pre_norm.", h.d, true, "scale"), nn::norm_params(b + "post_norm.", h.d, true, "scale"), std::move(mixer),
                   nn::gated_mlp_params(b + "mlp.", h.d, h.inner, resid_std)});
  });
}

class StripedHyenaFamily final : public LayerFamily<StripedHyenaFamily> {
 public:
  template <class T>
  static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config, train::WeightSource weights) {
    const ShConfig h = parse(Config::parse(config.dump(), "StripedHyena 2 config"));
    return layer_stack<T>(frame(h), h.json, std::move(weights), declarations(h), [&](auto& g, const nn::OffsetOf& off, int64_t i) {
      const std::string b = block_prefix(i);
      const Block type = h.blocks[size_t(i)];
      const auto norm = [&](const char* name) { return nn::make_norm<T>(off, b + name, ops::NormKind::rms_eps_outside, h.eps, "scale"); };
      g.add_step(i, norm("pre_norm."),
                 type == Block::attn ? nn::make_attention<T>(off, b + "inner_mha_cls.", attention_shape(h))
                                     : nn::make_striped_hyena_operator<T>(off, b, operator_shape(h, type)));
      // evo2_style_activations: GELU in block 0's MLP only, the identity elsewhere.
      g.add_step(i, norm("post_norm."), nn::make_gated_mlp<T>(off, b + "mlp.", h.inner, !h.evo2_activations || i == 0));
    });
  }

  std::string name() const override { return "stripedhyena2"; }
  std::string title() const override { return "StripedHyena 2 (Evo 2)"; }
  bool recognizes(const Config& c) const override { return c.has("hcl_layer_idxs") || c.has("attn_layer_idxs") || c.has("hcs_layer_idxs"); }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const ShConfig h = parse(m.config);
    s.format = "evo2 (vortex)";
    std::vector<std::string> types;
    for (Block b : h.blocks) types.push_back(block_name(b));
    s.hyperparameters = {{"hidden_size", std::to_string(h.d)},
                         {"num_layers", std::to_string(h.n_layer)},
                         {"blocks", fmt::format("{}", fmt::join(types, ","))},
                         {"heads", std::to_string(h.heads)},
                         {"vocab (padded)", fmt::format("{} ({})", h.vocab, h.padded_vocab)},
                         {"filters", fmt::format("short {}, hcs {} x {} groups, hcm {} x {} groups, hcl {} modes", h.short_len, h.hcs_len,
                                                 h.hcs_groups, h.hcm_len, h.hcm_groups, h.state_size)},
                         {"inner_mlp_size", std::to_string(h.inner)},
                         {"max_seqlen", std::to_string(h.max_seqlen)},
                         {"rotary", h.pos_scale < 1 ? fmt::format("base {}, positions / {}", h.rotary_base, 1 / h.pos_scale)
                                                    : fmt::format("base {}", h.rotary_base)}};
    // Per token of a chunk: stream, normed, branch, the operator's z and c (3 d each), u, conv and
    // gate (d each), MLP (3 inner), logits; plus each attention block's KV cache (2 d per token;
    // bounded, so not per token, with a sliding window).
    const int64_t attn = std::count(h.blocks.begin(), h.blocks.end(), Block::attn);
    s.activation_bytes_per_token = h.window > 0 ? 0.0 : 4.0 * double(2 * attn * h.d);
    s.memory_note = fmt::format("streamed in chunks: a chunk's activations ({} bytes per token) plus the KV cache of the {} attention blocks, {}",
                                4 * (9 * h.d + 3 * h.inner + h.padded_vocab), attn,
                                h.window > 0 ? fmt::format("at most {} tokens each (sliding_window {})", 3 * h.window, h.window)
                                             : std::string("which grows with the length"));
    if (h.window > 0) s.hyperparameters.push_back({"attention", fmt::format("sliding window of {} keys (approximate; the released models attend to all)", h.window)});
    s.notes.push_back("Wqkv, projections and short filters are reordered at load from the released layout (and back on save)");
    s.notes.push_back("linear weights stored bf16 stay bf16 in memory (widened per GEMM tile, the same results as fp32 copies); "
                      "the rest is held in fp32");
  }

  // The released files keep the linear weights in bf16 (load() keeps them so).
  static std::unique_ptr<LanguageModel> make_random(const Config& config, uint64_t seed, bool bf16) {
    const ShConfig h = parse(config);
    return language_model(h.json, {.declarations = declarations(h), .seed = seed, .keep_bf16 = bf16}, h.max_seqlen);
  }

  bool is_buffer(const std::string& tensor) const override { return tensor.ends_with("rotary_emb.inv_freq"); }
  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    const ShConfig h = parse(dir.config);
    WeightLoader w(dir.weights);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const nn::ParamDecl& p : declarations(h)) {
      const Tensor stored = w.get(p.name, p.shape, p.matrix);
      tensors.emplace_back(p.name, relayout(h, p.name, stored, false));
      if (tensors.back().second.storage() != stored.storage()) release_file_pages(stored);  // reordered: a copy
    }
    w.check_all_used("StripedHyena 2");
    // The linear weights stay bf16 as released (half the memory; the same results).
    return language_model(h.json, {.tensors = std::move(tensors), .keep_bf16 = true}, h.max_seqlen);
  }

  std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const override { return make_random(config, seed, false); }
  std::unique_ptr<LanguageModel> random_as_released(const Config& config, uint64_t seed) const override { return make_random(config, seed, true); }
};

}  // namespace

const Family& striped_hyena_family() {
  static const StripedHyenaFamily family;
  return family;
}

}  // namespace longseq
