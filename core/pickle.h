// A restricted reader of Python pickles, for PyTorch checkpoints (core/torch_checkpoint.h). Nothing
// in a pickle is executed: the reader is a stack machine over the opcodes that torch.save writes
// (protocols 2-5, binary forms) and builds inert values; a call of a global (REDUCE, NEWOBJ) is kept
// as a Call value for the caller to interpret, and a global outside the caller's allow-list is
// refused naming it, before anything is built from it. Values live in an arena owned by the Pickle
// and point at each other without ownership, so cycles and deep nesting cannot leak memory or
// overflow the stack when freed; consumers walk them with a depth limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace longseq::pickle {

enum class Kind : uint8_t {
  None,
  Bool,        // i
  Int,         // i
  BigInt,      // s: an integer wider than 64 bits, as its little-endian two's-complement bytes
  Float,       // f
  Str,         // s (UTF-8)
  Bytes,       // s
  Tuple,       // items
  List,        // items (sets and frozensets read as lists)
  Dict,        // items: key, value, key, value, ...
  Global,      // s: "module.name"
  Call,        // callee (a Global) applied to args (a Tuple); items: what SETITEM(S)/APPEND(S) added; state: BUILD's
  Persistent,  // args: the persistent id (torch: a tuple naming a storage)
};

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<const Value*> items;
  const Value* callee = nullptr;
  const Value* args = nullptr;
  const Value* state = nullptr;

  bool is_global(std::string_view name) const { return kind == Kind::Global && s == name; }
  // A Call of the global `name`.
  bool is_call(std::string_view name) const { return kind == Kind::Call && callee && callee->is_global(name); }
  // Dict (or a Call that received SETITEMS, e.g. collections.OrderedDict()) entries: key, value pairs.
  size_t pairs() const { return items.size() / 2; }
};

// Whether a global ("module.name") may appear in the pickle.
using GlobalFilter = std::function<bool(std::string_view name)>;

class Pickle {
 public:
  // Reads one pickle from `bytes` (up to its STOP opcode). `context` names the source in errors
  // ("model.pt: archive/data.pkl"). Throws longseq::Error naming the context, the byte offset and
  // the problem for a truncated or malformed pickle, an opcode outside the supported set, or a
  // global that `allowed` refuses. `bytes` need not outlive the Pickle.
  static Pickle read(std::span<const std::byte> bytes, const std::string& context, const GlobalFilter& allowed);
  Pickle(Pickle&&) noexcept = default;
  Pickle& operator=(Pickle&&) noexcept = default;

  // The value the pickle returns (owned by this Pickle).
  const Value& root() const { return *root_; }
  // Bytes consumed, STOP included (pickles written back to back: the next one starts here).
  size_t size() const { return size_; }

 private:
  Pickle() = default;
  std::deque<Value> arena_;
  const Value* root_ = nullptr;
  size_t size_ = 0;
  friend class Reader;
};

}  // namespace longseq::pickle
