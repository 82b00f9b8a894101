#include "core/families/hyena_config.h"


namespace longseq {

bool looks_like_hyena(const Config& c) {
  return c.get_string("model_type", "") == "hyenadna" || (c.has("d_inner") && c.has("filter_order"));
}

HyenaConfig parse_hyena_config(const Config& c) {
  HyenaConfig h;
  const int64_t big = int64_t(1) << 24;
  h.d_model = c.get_int_in("d_model", 1, big);
  h.n_layer = c.get_int_in("n_layer", 1, 4096);
  h.d_inner = c.get_int("d_inner", 4 * h.d_model);
  if (h.d_inner < 1) c.invalid("d_inner", "must be positive");
  h.vocab_size = c.get_int_in("vocab_size", 1, big);
  h.pad_vocab_multiple = pad_multiple(c);
  h.padded_vocab = round_up_multiple(h.vocab_size, h.pad_vocab_multiple);
  h.max_seq_len = c.get_int_in("max_seq_len", 1, int64_t(1) << 32);
  h.emb_dim = c.get_int("emb_dim", 3);
  if (h.emb_dim < 3 || h.emb_dim % 2 == 0) c.invalid("emb_dim", "must be odd and >= 3");
  h.filter_order = c.get_int_in("filter_order", 1, 1 << 16);
  h.short_filter_order = c.get_int_in("short_filter_order", 1, 64);
  h.hyena_order = c.get_int("hyena_order", 2);
  if (h.hyena_order != 2) c.invalid("hyena_order", "must be 2 (the only order HyenaDNA releases use)");
  h.activation_freq = c.get_double("activation_freq", 1.0);
  h.num_inner_mlps = c.get_int_in("num_inner_mlps", 0, 64);
  h.train_freq = c.get_bool("train_freq", true);
  h.layer_norm_eps = c.get_double("layer_norm_epsilon", 1e-5);
  h.tie_embeddings = c.get_bool("tie_word_embeddings", false);
  return h;
}

nlohmann::json hyena_config_json(const HyenaConfig& h) {
  return {{"model_type", "hyenadna"},
          {"architectures", {"HyenaDNAForCausalLM"}},
          {"d_model", h.d_model},
          {"n_layer", h.n_layer},
          {"d_inner", h.d_inner},
          {"vocab_size", h.vocab_size},
          {"pad_vocab_size_multiple", h.pad_vocab_multiple},
          {"max_seq_len", h.max_seq_len},
          {"emb_dim", h.emb_dim},
          {"filter_order", h.filter_order},
          {"short_filter_order", h.short_filter_order},
          {"hyena_order", h.hyena_order},
          {"activation_freq", h.activation_freq},
          {"num_inner_mlps", h.num_inner_mlps},
          {"train_freq", h.train_freq},
          {"use_bias", true},
          {"layer_norm_epsilon", h.layer_norm_eps},
          {"tie_word_embeddings", h.tie_embeddings},
          {"embed_dropout", 0.1},
          {"hyena_dropout", 0.0},
          {"hyena_filter_dropout", 0.0}};
}

}  // namespace longseq
