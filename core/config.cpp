#include "core/config.h"

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/yaml.h"
#include "core/fileio.h"

namespace longseq {

Config Config::load(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".yml" || ext == ".yaml") {
    Config c;
    c.source_ = path.string();
    c.json_ = parse_yaml(read_text_file(path), c.source_);
    if (!c.json_.is_object()) fail("{}: expected a mapping of config keys at the top level", c.source_);
    return c;
  }
  return parse(read_text_file(path), path.string());
}

Config Config::parse(const std::string& text, const std::string& source) {
  Config c;
  c.source_ = source;
  c.json_ = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (c.json_.is_discarded()) fail("{}: not valid JSON (check the file; it should be the model's config.json)", source);
  if (!c.json_.is_object()) fail("{}: expected a JSON object at the top level", source);
  return c;
}

const nlohmann::json* Config::find(const std::string& key) const {
  const nlohmann::json* node = &json_;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end() || it->is_null()) return nullptr;
    node = &*it;
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

void Config::invalid(const std::string& key, const std::string& why) const {
  fail("{}: key '{}' {} (fix the config)", source_, key, why);
}

const nlohmann::json& Config::require(const std::string& key, const char* type) const {
  const nlohmann::json* v = find(key);
  if (!v) fail("{}: missing required key '{}' ({}) (add it to the config)", source_, key, type);
  return *v;
}

int64_t Config::get_int(const std::string& key) const {
  const auto& v = require(key, "integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) invalid(key, "is too large, got " + v.dump());
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {  // 4.0 is 4; checked before the cast, which is undefined outside int64's range (found by fuzzing)
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && d >= -9.2e18 && d <= 9.2e18) return int64_t(d);
  }
  invalid(key, "must be an integer, got " + v.dump());
}

double Config::get_double(const std::string& key) const {
  const auto& v = require(key, "number");
  if (!v.is_number()) invalid(key, "must be a number, got " + v.dump());
  return v.get<double>();
}

bool Config::get_bool(const std::string& key) const {
  const auto& v = require(key, "true/false");
  if (!v.is_boolean()) invalid(key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string Config::get_string(const std::string& key) const {
  const auto& v = require(key, "string");
  if (!v.is_string()) invalid(key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

int64_t Config::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }
double Config::get_double(const std::string& key, double fallback) const { return has(key) ? get_double(key) : fallback; }
bool Config::get_bool(const std::string& key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }
std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

int64_t Config::get_int_in(const std::string& key, int64_t lo, int64_t hi) const {
  const int64_t v = get_int(key);
  if (v < lo || v > hi) invalid(key, fmt::format("must be in [{}, {}], got {}", lo, hi, v));
  return v;
}

int64_t round_up_multiple(int64_t v, int64_t multiple) { return multiple > 1 ? (v + multiple - 1) / multiple * multiple : v; }

int64_t pad_multiple(const Config& c) {
  if (!c.has("pad_vocab_size_multiple")) return 8;
  return c.get_int_in("pad_vocab_size_multiple", 1, 1 << 16);
}

}  // namespace longseq
