#include "core/config.h"
#include "core/error.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"

#include <gtest/gtest.h>

using namespace longseq;

namespace {
std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, TypedAccessNamesKeyOnError) {
  const Config c = Config::parse(R"({"d_model": 64, "eps": 1e-5, "flag": true, "name": "x", "ssm_cfg": {"d_state": 8},
                                     "bad": "12", "null_key": null})", "cfg.json");
  EXPECT_EQ(c.get_int("d_model"), 64);
  EXPECT_EQ(c.get_int("ssm_cfg.d_state"), 8);
  EXPECT_DOUBLE_EQ(c.get_double("eps"), 1e-5);
  EXPECT_TRUE(c.get_bool("flag"));
  EXPECT_EQ(c.get_string("name"), "x");
  EXPECT_EQ(c.get_int("ssm_cfg.d_conv", 4), 4);
  EXPECT_EQ(c.get_int("null_key", 3), 3);  // null means "default", as in Hugging Face configs
  EXPECT_FALSE(c.has("ssm_cfg.nope"));
  const std::string missing = error_of([&] { c.get_int("n_layer"); });
  EXPECT_NE(missing.find("cfg.json"), std::string::npos);
  EXPECT_NE(missing.find("'n_layer'"), std::string::npos);
  const std::string wrong = error_of([&] { c.get_int("bad"); });
  EXPECT_NE(wrong.find("'bad' must be an integer"), std::string::npos) << wrong;
  EXPECT_NE(error_of([&] { c.get_int_in("d_model", 1, 10); }).find("must be in [1, 10]"), std::string::npos);
  EXPECT_THROW(Config::parse("{not json", "x"), Error);
  EXPECT_THROW(Config::parse("[1]", "x"), Error);
}

TEST(MambaConfig, StateSpacesDefaults) {
  const Config c = Config::parse(R"({"d_model": 64, "n_layer": 2, "vocab_size": 13, "ssm_cfg": {},
                                     "pad_vocab_size_multiple": 8, "tie_embeddings": true})", "c");
  ASSERT_TRUE(looks_like_mamba(c));
  const MambaConfig m = parse_mamba_config(c);
  EXPECT_EQ(m.d_inner, 128);
  EXPECT_EQ(m.dt_rank, 4);  // ceil(64/16)
  EXPECT_EQ(m.d_state, 16);
  EXPECT_EQ(m.d_conv, 4);
  EXPECT_EQ(m.padded_vocab, 16);
  EXPECT_EQ(m.embedding_name(), "backbone.embedding.weight");
  const MambaConfig r = parse_mamba_config(Config::parse(R"({"d_model": 100, "n_layer": 1, "vocab_size": 4,
                                                           "ssm_cfg": {"dt_rank": "auto"}})", "c"));
  EXPECT_EQ(r.dt_rank, 7);  // ceil(100/16)
}

TEST(MambaConfig, HuggingFaceFormat) {
  const Config c = Config::parse(R"({"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24, "vocab_size": 50280,
      "state_size": 16, "conv_kernel": 4, "expand": 2, "intermediate_size": 1536, "time_step_rank": 48,
      "layer_norm_epsilon": 1e-5, "use_conv_bias": true, "use_bias": false, "tie_word_embeddings": true})", "hf");
  const MambaConfig m = parse_mamba_config(c);
  EXPECT_EQ(m.format, MambaConfig::Format::HuggingFace);
  EXPECT_EQ(m.d_inner, 1536);
  EXPECT_EQ(m.dt_rank, 48);
  EXPECT_EQ(m.embedding_name(), "backbone.embeddings.weight");
}

TEST(MambaConfig, UnsupportedAndInvalid) {
  EXPECT_NE(error_of([] { parse_mamba_config(Config::parse(R"({"d_model": 64, "n_layer": 2, "vocab_size": 8,
                                                               "ssm_cfg": {"layer": "Mamba2"}})", "c")); })
                .find("ssm_cfg.layer"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_mamba_config(Config::parse(R"({"d_model": 64, "n_layer": 2, "vocab_size": 8,
                                                               "attn_layer_idx": [1]})", "c")); })
                .find("attn_layer_idx"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_mamba_config(Config::parse(R"({"d_model": -4, "n_layer": 2, "vocab_size": 8})", "c")); })
                .find("d_model"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_mamba_config(Config::parse(R"({"d_model": 64, "n_layer": 2, "vocab_size": 8,
                                                               "ssm_cfg": {"dt_rank": "big"}})", "c")); })
                .find("dt_rank"),
            std::string::npos);
}

TEST(HyenaConfig, ParsesAndValidates) {
  const Config c = Config::parse(R"({"model_type": "hyenadna", "d_model": 128, "n_layer": 2, "d_inner": 512, "vocab_size": 12,
      "max_seq_len": 1026, "emb_dim": 5, "filter_order": 64, "short_filter_order": 3, "hyena_order": 2,
      "activation_freq": 10, "num_inner_mlps": 2, "pad_vocab_size_multiple": 8})", "h");
  ASSERT_TRUE(looks_like_hyena(c));
  EXPECT_FALSE(looks_like_mamba(c));
  const HyenaConfig h = parse_hyena_config(c);
  EXPECT_EQ(h.padded_vocab, 16);
  EXPECT_EQ(h.max_seq_len, 1026);
  const Config bad = Config::parse(R"({"model_type": "hyenadna", "d_model": 128, "n_layer": 2, "vocab_size": 12,
      "max_seq_len": 1026, "emb_dim": 4, "filter_order": 64, "short_filter_order": 3})", "h");
  EXPECT_NE(error_of([&] { parse_hyena_config(bad); }).find("emb_dim"), std::string::npos);
}
