// parse_yaml (yaml.h): libyaml events folded into a JSON tree with a stack of open containers.
#include "core/yaml.h"

#include "core/error.h"

#include <yaml.h>

#include <cmath>
#include <limits>
#include <memory>
#include <regex>
#include <vector>

namespace longseq {

namespace {

// A plain (unquoted) scalar as PyYAML's resolver reads it.
nlohmann::json resolve_plain(const std::string& s) {
  static const std::regex null_re("~|null|Null|NULL|"), true_re("true|True|TRUE|yes|Yes|YES|on|On|ON"),
      false_re("false|False|FALSE|no|No|NO|off|Off|OFF"), int_re("[-+]?(0|[1-9][0-9_]*)"),
      float_re("[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*([.][0-9_]*)?[eE][-+]?[0-9]+"),
      inf_re("[-+]?\\.(inf|Inf|INF)"), nan_re("\\.(nan|NaN|NAN)");
  const auto strip = [](std::string v) {
    std::erase(v, '_');
    return v;
  };
  if (std::regex_match(s, null_re)) return nullptr;
  if (std::regex_match(s, true_re)) return true;
  if (std::regex_match(s, false_re)) return false;
  if (std::regex_match(s, int_re)) {
    try {
      return std::stoll(strip(s));
    } catch (const std::out_of_range&) {
      return std::stod(strip(s));
    }
  }
  if (std::regex_match(s, float_re) && s != "." && s != "-." && s != "+.") return std::stod(strip(s));
  if (std::regex_match(s, inf_re)) return s[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (std::regex_match(s, nan_re)) return std::numeric_limits<double>::quiet_NaN();
  return s;
}

struct Open {
  nlohmann::json value;
  std::string key;  // a mapping's key awaiting its value
  bool have_key = false;
};

}  // namespace

nlohmann::json parse_yaml(const std::string& text, const std::string& source) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) fail("{}: could not start the YAML parser (out of memory)", source);
  const std::unique_ptr<yaml_parser_t, void (*)(yaml_parser_t*)> guard(&parser, yaml_parser_delete);
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  std::vector<Open> stack;
  nlohmann::json root;
  bool done = false;
  // Adds a finished value to the innermost open container (or makes it the document).
  const auto add = [&](nlohmann::json v, size_t line) {
    if (stack.empty()) {
      root = std::move(v);
      done = true;
      return;
    }
    Open& top = stack.back();
    if (top.value.is_array()) {
      top.value.push_back(std::move(v));
    } else if (!top.have_key) {
      if (!v.is_string() && !v.is_number() && !v.is_boolean()) fail("{}:{}: a mapping key must be a scalar", source, line);
      top.key = v.is_string() ? v.get<std::string>() : v.dump();
      top.have_key = true;
    } else {
      top.value[top.key] = std::move(v);
      top.have_key = false;
    }
  };
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev))
      fail("{}:{}: not valid YAML ({}); check the file", source, parser.problem_mark.line + 1, parser.problem ? parser.problem : "syntax error");
    const std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> ev_guard(&ev, yaml_event_delete);
    const size_t line = ev.start_mark.line + 1;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_ALIAS_EVENT:
        fail("{}:{}: YAML aliases are not supported in a config; write the value out", source, line);
      case YAML_SCALAR_EVENT: {
        if (ev.data.scalar.anchor || (ev.data.scalar.tag && !ev.data.scalar.plain_implicit && !ev.data.scalar.quoted_implicit))
          fail("{}:{}: YAML anchors and tags are not supported in a config", source, line);
        const std::string s(reinterpret_cast<const char*>(ev.data.scalar.value), ev.data.scalar.length);
        add(ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(s) : nlohmann::json(s), line);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
        if (seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor) fail("{}:{}: YAML anchors are not supported in a config", source, line);
        if (stack.size() >= 64) fail("{}:{}: YAML nested more than 64 levels deep", source, line);
        stack.push_back({seq ? nlohmann::json::array() : nlohmann::json::object(), "", false});
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        nlohmann::json v = std::move(stack.back().value);
        stack.pop_back();
        add(std::move(v), line);
        break;
      }
      default:  // stream/document start and end
        break;
    }
  }
  return root;
}

}  // namespace longseq
