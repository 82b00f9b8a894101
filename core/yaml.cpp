// parse_yaml (yaml.h): libyaml events folded into a JSON tree with a stack of open containers.
#include "core/yaml.h"

#include "core/error.h"

#include <yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

namespace longseq {

namespace {

bool one_of(const std::string& s, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return s == w; });
}

// A number's text: an optional sign, then digits, '_', '.', and an exponent; underscores dropped.
// Empty when `s` is not one (then it stays a string).
std::string number_text(const std::string& s, bool& is_int) {
  if (s.empty() || s.size() > 64) return {};
  std::string out;
  bool digit = false, dot = false, exp = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c == '+' || c == '-') && (i == 0 || s[i - 1] == 'e' || s[i - 1] == 'E')) {
      out += c;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      out += c, digit = true;
    } else if (c == '_' && digit) {
      continue;
    } else if (c == '.' && !dot && !exp) {
      out += c, dot = true;
    } else if ((c == 'e' || c == 'E') && digit && !exp) {
      out += c, exp = true;
    } else {
      return {};
    }
  }
  if (!digit || out.back() == 'e' || out.back() == 'E' || out.back() == '+' || out.back() == '-') return {};
  is_int = !dot && !exp;
  const size_t first = out[0] == '+' || out[0] == '-' ? 1 : 0;
  if (is_int && out.size() > first + 1 && out[first] == '0') return {};  // 012 is YAML 1.1 octal: kept a string
  return out;
}

// A plain (unquoted) scalar as PyYAML's resolver reads it.
nlohmann::json resolve_plain(const std::string& s) {
  if (one_of(s, {"", "~", "null", "Null", "NULL"})) return nullptr;
  if (one_of(s, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})) return true;
  if (one_of(s, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})) return false;
  if (one_of(s, {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})) return std::numeric_limits<double>::infinity();
  if (one_of(s, {"-.inf", "-.Inf", "-.INF"})) return -std::numeric_limits<double>::infinity();
  if (one_of(s, {".nan", ".NaN", ".NAN"})) return std::numeric_limits<double>::quiet_NaN();
  bool is_int = false;
  const std::string num = number_text(s, is_int);
  if (num.empty()) return s;
  if (is_int) {
    errno = 0;
    const long long v = std::strtoll(num.c_str(), nullptr, 10);
    if (errno != ERANGE) return int64_t(v);
  }
  return std::strtod(num.c_str(), nullptr);  // out of range: +-inf or 0, never an exception
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
