#include "core/models/summary.h"

#include "core/error.h"
#include "core/models/hyena_config.h"
#include "core/models/mamba_config.h"

namespace longseq {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void count_tensors(const ModelDir& m, ModelSummary& s) {
  for (const auto& t : m.weights.tensors()) {
    const int64_t n = shape_numel(t.shape);
    s.weight_bytes += double(t.end - t.begin);
    (is_buffer_tensor(t.name) ? s.buffer_elements : s.parameters) += n;
  }
}

std::string yes_no(bool b) { return b ? "true" : "false"; }

void summarize_mamba(const ModelDir& m, ModelSummary& s) {
  const MambaConfig c = parse_mamba_config(m.config);
  s.family = "mamba";
  s.format = c.format == MambaConfig::Format::HuggingFace ? "huggingface" : "state-spaces";
  s.hyperparameters = {{"d_model", std::to_string(c.d_model)},   {"n_layer", std::to_string(c.n_layer)},
                       {"vocab (padded)", fmt::format("{} ({})", c.vocab_size, c.padded_vocab)},
                       {"d_inner (D)", std::to_string(c.d_inner)}, {"d_state (N)", std::to_string(c.d_state)},
                       {"d_conv", std::to_string(c.d_conv)},      {"dt_rank (R)", std::to_string(c.dt_rank)},
                       {"norm", c.rms_norm ? "RMSNorm" : "LayerNorm"}, {"residual_in_fp32", yes_no(c.residual_in_fp32)},
                       {"tie_embeddings", yes_no(c.tie_embeddings)}};
  // Live per token while one chunk streams through one layer at a time: residual + hidden + normed,
  // x|z, conv output, dt|B|C, delta, y, and the logits row. States are O(n_layer*D*N), not per token.
  const double floats = 3.0 * c.d_model + 2.0 * c.d_inner + c.d_inner + (c.dt_rank + 2.0 * c.d_state) + 2.0 * c.d_inner +
                        double(c.padded_vocab);
  s.activation_bytes_per_token = 4 * floats;
  s.memory_note = fmt::format("streamed in chunks: peak is chunk x this, plus {:.1f} KiB of carried state, independent of length",
                              4.0 * c.n_layer * c.d_inner * (c.d_state + c.d_conv) / 1024);
  if (c.tie_embeddings && !m.weights.contains("lm_head.weight"))
    s.notes.push_back("lm_head.weight is tied to " + c.embedding_name() + " (stored once)");
}

void summarize_hyena(const ModelDir& m, ModelSummary& s) {
  const HyenaConfig c = parse_hyena_config(m.config);
  s.family = "hyenadna";
  s.format = "huggingface";
  s.hyperparameters = {{"d_model", std::to_string(c.d_model)},
                       {"n_layer", std::to_string(c.n_layer)},
                       {"d_inner", std::to_string(c.d_inner)},
                       {"vocab (padded)", fmt::format("{} ({})", c.vocab_size, c.padded_vocab)},
                       {"max_seq_len", std::to_string(c.max_seq_len)},
                       {"emb_dim", std::to_string(c.emb_dim)},
                       {"filter_order", std::to_string(c.filter_order)},
                       {"short_filter_order", std::to_string(c.short_filter_order)},
                       {"hyena_order", std::to_string(c.hyena_order)}};
  // Per token: residual + normed + in_proj (3 d_model) + short conv (3 d_model) + long-conv output,
  // MLP hidden, logits; the FFT work buffer is (fft size / L) ~ 2x complex per channel in a block.
  const double floats = 2.0 * c.d_model + 3.0 * c.d_model * 2 + c.d_model + double(c.d_inner) + double(c.padded_vocab);
  s.activation_bytes_per_token = 4 * floats;
  s.memory_note = "whole window: grows linearly with the window length; filter spectra are cached per length";
  const std::string f = "hyena.backbone.layers.0.mixer.filter_fn.";
  for (const char* buffer : {"pos_emb.z", "pos_emb.t", "modulation.deltas"})
    s.notes.push_back(std::string(buffer) + (m.weights.contains(f + buffer) ? ": used as stored"
                                                                            : ": not stored, recomputed from the config"));
  s.notes.push_back("implicit_filter.{1,3,5}.freq is one shared tensor (stored as implicit_filter.1.freq)");
}

void summarize_caduceus(const ModelDir& m, ModelSummary& s) {
  s.family = "caduceus";
  s.format = "huggingface";
  const Config& c = m.config;
  s.hyperparameters = {{"d_model", std::to_string(c.get_int("d_model"))},
                       {"n_layer", std::to_string(c.get_int("n_layer"))},
                       {"vocab_size", std::to_string(c.get_int("vocab_size"))},
                       {"rcps", yes_no(c.get_bool("rcps", false))},
                       {"bidirectional", yes_no(c.get_bool("bidirectional", true))}};
  s.notes.push_back("Caduceus: inspection only; forward passes are not implemented yet");
}

}  // namespace

bool is_buffer_tensor(const std::string& name) {
  return ends_with(name, "pos_emb.t") || ends_with(name, "modulation.deltas") || ends_with(name, "complement_map");
}

ModelSummary summarize_model(const ModelDir& m) {
  ModelSummary s;
  const std::string type = m.config.get_string("model_type", "");
  if (type == "caduceus")
    summarize_caduceus(m, s);
  else if (looks_like_hyena(m.config))
    summarize_hyena(m, s);
  else if (looks_like_mamba(m.config))
    summarize_mamba(m, s);
  else
    fail("{}: unknown model family (model_type '{}'); longseq reads Mamba-1, HyenaDNA and Caduceus configs", m.config.source(),
         type);
  count_tensors(m, s);
  return s;
}

}  // namespace longseq
