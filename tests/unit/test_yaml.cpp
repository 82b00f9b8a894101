// parse_yaml (core/yaml.h): the released Evo 2 configs' YAML read as PyYAML reads them, and bad
// YAML as one-line errors.
#include "core/error.h"
#include "core/yaml.h"
#include "tests/testing.h"

#include <cmath>

using namespace longseq;

TEST(Yaml, ScalarsListsAndCommentsAsPyYamlReadsThem) {
  const auto j = parse_yaml(R"(# a released-style config
model_name: shc-evo2-1b-8k-2T-v2
hidden_size: 1920
attn_layer_idxs: [3,10,17,24]
eps: 0.000001
tiny: 1e-6
big: 1_000
short_filter_length: 3 # trailing comment
tie_embeddings: True
column_split_hyena: False
quoted: "123"
nothing: ~
empty:
octal: 012
inf: .inf
nested:
  a: [1, 2.5, x]
  b: {c: yes}
)",
                            "test.yml");
  EXPECT_EQ(j["model_name"], "shc-evo2-1b-8k-2T-v2");
  EXPECT_EQ(j["hidden_size"], 1920);
  EXPECT_EQ(j["attn_layer_idxs"], nlohmann::json({3, 10, 17, 24}));
  EXPECT_DOUBLE_EQ(j["eps"].get<double>(), 1e-6);
  EXPECT_DOUBLE_EQ(j["tiny"].get<double>(), 1e-6);
  EXPECT_EQ(j["big"], 1000);
  EXPECT_EQ(j["short_filter_length"], 3);
  EXPECT_EQ(j["tie_embeddings"], true);
  EXPECT_EQ(j["column_split_hyena"], false);
  EXPECT_EQ(j["quoted"], "123");
  EXPECT_TRUE(j["nothing"].is_null());
  EXPECT_TRUE(j["empty"].is_null());
  EXPECT_EQ(j["octal"], "012");
  EXPECT_TRUE(std::isinf(j["inf"].get<double>()));
  EXPECT_EQ(j["nested"]["a"], nlohmann::json({1, 2.5, "x"}));
  EXPECT_EQ(j["nested"]["b"]["c"], true);
}

TEST(Yaml, BadYamlIsOneLineNamingTheFileAndLine) {
  for (const char* bad : {"a: [1, 2\nb: 3\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "key: value\n  bad indent: 2\n"}) {
    try {
      (void)parse_yaml(bad, "bad.yml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_EQ(m.rfind("bad.yml:", 0), 0u) << m;
    }
  }
  EXPECT_DOUBLE_EQ(parse_yaml("x: 1e999\n", "f.yml")["x"].get<double>(), INFINITY);  // no exception from range
}
