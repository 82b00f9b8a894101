// Typed, read-only access to a model's config.json. Every accessor names the file and the key (dotted
// for nested objects, e.g. "ssm_cfg.d_state") when a key is missing or has the wrong type.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace longseq {

class Config {
 public:
  Config() = default;
  // Throws longseq::Error naming the file when it is missing, not JSON, or not a JSON object. A .yml
  // or .yaml file is read as YAML (core/yaml.h) into the same tree.
  static Config load(const std::filesystem::path& path);
  // `source` names the text in error messages.
  static Config parse(const std::string& text, const std::string& source);

  const std::string& source() const { return source_; }
  const nlohmann::json& json() const { return json_; }
  bool has(const std::string& key) const { return find(key) != nullptr; }

  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;

  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  // A value checked to lie in [lo, hi]; error names the key and the allowed range.
  int64_t get_int_in(const std::string& key, int64_t lo, int64_t hi) const;

  // Null when absent (a JSON null counts as absent, as Hugging Face configs use it for "default").
  const nlohmann::json* find(const std::string& key) const;

  [[noreturn]] void invalid(const std::string& key, const std::string& why) const;

 private:
  const nlohmann::json& require(const std::string& key, const char* type) const;
  std::string source_;
  nlohmann::json json_;
};

// v rounded up to a multiple of `multiple` (v itself for multiple <= 1): padded vocabularies.
int64_t round_up_multiple(int64_t v, int64_t multiple);
// The config's pad_vocab_size_multiple, default 8 (mamba_ssm's and transformers' default), validated.
int64_t pad_multiple(const Config& c);

}  // namespace longseq
