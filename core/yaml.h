// YAML configs (the released Evo 2 configs are PyYAML files) read into the same JSON tree that
// config.json gives, through libyaml's event parser. Scalars resolve as PyYAML's YAML 1.1 loader
// does for what configs use: null (~, null, empty), booleans (true/false/yes/no/on/off, any case
// PyYAML accepts), integers, floats (1e-6, .5, .inf, .nan) and otherwise strings; quoted scalars
// are strings. Anchors, aliases and tags are refused (no config needs them).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace longseq {

// The first document of `text` as JSON. Throws longseq::Error naming `source` and the line for a
// syntax error, an alias/anchor/tag, or a mapping key that is not a scalar.
nlohmann::json parse_yaml(const std::string& text, const std::string& source);

}  // namespace longseq
