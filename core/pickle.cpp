#include "core/pickle.h"

#include "core/error.h"

#include <cstring>
#include <unordered_map>

namespace longseq::pickle {

// The stack machine. Opcodes are read with every length checked against the bytes left, so a
// truncated or lying pickle fails with its offset; text-protocol opcodes (protocol 0) are refused,
// since torch.save never writes them.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& context, const GlobalFilter& allowed, Pickle& out)
      : b_(bytes), context_(context), allowed_(allowed), out_(out) {}

  void run() {
    for (;;) {
      const size_t at = pos_;
      const auto op = uint8_t(u8());
      if (op == '.') {  // STOP
        out_.root_ = pop(at, "STOP");
        out_.size_ = pos_;
        return;
      }
      step(op, at);
    }
  }

 private:
  [[noreturn]] void bad(size_t at, const std::string& what) const {
    fail("{}: malformed pickle at byte {}: {} (the file is damaged or not a PyTorch checkpoint)", context_, at, what);
  }
  void need(size_t n) const {
    if (n > b_.size() - pos_) bad(pos_, fmt::format("{} bytes needed, {} left (truncated?)", n, b_.size() - pos_));
  }
  uint64_t le(size_t n) {  // little-endian unsigned
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(uint8_t(b_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  uint8_t u8() { return uint8_t(le(1)); }
  std::string text(uint64_t n) {
    if (n > b_.size() - pos_) bad(pos_, fmt::format("a string of {} bytes, {} left (truncated?)", n, b_.size() - pos_));
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  std::string line() {  // up to '\n' (GLOBAL's operands)
    const size_t start = pos_;
    while (pos_ < b_.size() && char(b_[pos_]) != '\n') ++pos_;
    if (pos_ == b_.size()) bad(start, "unterminated line");
    std::string s(reinterpret_cast<const char*>(b_.data() + start), pos_ - start);
    ++pos_;
    return s;
  }

  Value* make(Kind k) {
    out_.arena_.emplace_back();
    out_.arena_.back().kind = k;
    return &out_.arena_.back();
  }
  Value* pop(size_t at, const char* op) {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad(at, fmt::format("{} on an empty stack", op));
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top(size_t at, const char* op) {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad(at, fmt::format("{} on an empty stack", op));
    return stack_.back();
  }
  // The values above the topmost mark, which is removed.
  std::vector<Value*> pop_mark(size_t at, const char* op) {
    if (marks_.empty()) bad(at, fmt::format("{} without a MARK", op));
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> v(stack_.begin() + std::ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    return v;
  }
  void push(Value* v) { stack_.push_back(v); }
  Value* integer(int64_t i) {
    Value* v = make(Kind::Int);
    v->i = i;
    return v;
  }
  Value* tuple(std::vector<Value*> items) {
    Value* v = make(Kind::Tuple);
    v->items.assign(items.begin(), items.end());
    return v;
  }
  Value* global(size_t at, std::string name) {
    if (!allowed_(name))
      fail("{}: the pickle asks for the Python global '{}', which a state dict does not use; refused (nothing in it was run: "
           "re-save the weights with torch.save(model.state_dict()) or as safetensors)", context_, name);
    (void)at;
    Value* v = make(Kind::Global);
    v->s = std::move(name);
    return v;
  }
  // A container that SETITEM(S)/APPEND(S)/ADDITEMS may extend: a dict, list, or a Call's items.
  Value* container(Value* v, size_t at, const char* op, bool dict) {
    const bool ok = v->kind == Kind::Call || (dict ? v->kind == Kind::Dict : v->kind == Kind::List);
    if (!ok) bad(at, fmt::format("{} on a value that is not a {}", op, dict ? "dict" : "list"));
    return v;
  }
  Value* memo_get(size_t at, uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) bad(at, fmt::format("memo entry {} read before it was written", key));
    return it->second;
  }
  Value* long_bytes(uint64_t n) {  // LONG1/LONG4: little-endian two's complement
    if (n > 8) {
      Value* v = make(Kind::BigInt);
      v->s = text(n);
      return v;
    }
    need(size_t(n));
    uint64_t v = 0;
    for (uint64_t k = 0; k < n; ++k) v |= uint64_t(uint8_t(b_[pos_ + k])) << (8 * k);
    if (n > 0 && n < 8 && (uint8_t(b_[pos_ + n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    pos_ += size_t(n);
    return integer(int64_t(v));
  }

  void step(uint8_t op, size_t at) {
    switch (op) {
      case 0x80: u8(); return;           // PROTO
      case 0x95: le(8); return;          // FRAME: a length prefix only
      case '(': marks_.push_back(stack_.size()); return;  // MARK
      case '0': pop(at, "POP"); return;
      case '1': pop_mark(at, "POP_MARK"); return;
      case '2': push(top(at, "DUP")); return;
      case 'N': push(make(Kind::None)); return;
      case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
        Value* v = make(Kind::Bool);
        v->i = op == 0x88;
        push(v);
        return;
      }
      case 'J': push(integer(int32_t(uint32_t(le(4))))); return;  // BININT
      case 'K': push(integer(int64_t(le(1)))); return;            // BININT1
      case 'M': push(integer(int64_t(le(2)))); return;            // BININT2
      case 0x8a: push(long_bytes(le(1))); return;  // LONG1
      case 0x8b: push(long_bytes(le(4))); return;  // LONG4
      case 'G': {  // BINFLOAT: big-endian double
        need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = bits << 8 | uint8_t(b_[pos_ + size_t(k)]);
        pos_ += 8;
        Value* v = make(Kind::Float);
        std::memcpy(&v->f, &bits, 8);
        push(v);
        return;
      }
      case 'X': case 0x8c: case 0x8d: case 'T': case 'U': {  // BINUNICODE(8), SHORT_BINUNICODE, BINSTRING, SHORT_BINSTRING
        const uint64_t n = le(op == 0x8c || op == 'U' ? 1 : op == 0x8d ? 8 : 4);
        Value* v = make(Kind::Str);
        v->s = text(n);
        push(v);
        return;
      }
      case 'B': case 'C': case 0x8e: case 0x96: {  // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
        const uint64_t n = le(op == 'C' ? 1 : op == 'B' ? 4 : 8);
        Value* v = make(Kind::Bytes);
        v->s = text(n);
        push(v);
        return;
      }
      case ')': push(make(Kind::Tuple)); return;  // EMPTY_TUPLE
      case 't': push(tuple(pop_mark(at, "TUPLE"))); return;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        const size_t n = size_t(op - 0x84);
        std::vector<Value*> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop(at, "TUPLEn");
        push(tuple(std::move(items)));
        return;
      }
      case ']': case 0x8f: push(make(Kind::List)); return;  // EMPTY_LIST, EMPTY_SET
      case 'l': case 0x91: {  // LIST, FROZENSET
        Value* v = make(Kind::List);
        for (Value* x : pop_mark(at, "LIST")) v->items.push_back(x);
        push(v);
        return;
      }
      case 'a': {  // APPEND
        Value* x = pop(at, "APPEND");
        container(top(at, "APPEND"), at, "APPEND", false)->items.push_back(x);
        return;
      }
      case 'e': case 0x90: {  // APPENDS, ADDITEMS
        const auto xs = pop_mark(at, "APPENDS");
        Value* list = container(top(at, "APPENDS"), at, "APPENDS", false);
        for (Value* x : xs) list->items.push_back(x);
        return;
      }
      case '}': push(make(Kind::Dict)); return;  // EMPTY_DICT
      case 'd': {  // DICT
        const auto xs = pop_mark(at, "DICT");
        if (xs.size() % 2) bad(at, "DICT with an odd number of items");
        Value* v = make(Kind::Dict);
        v->items.assign(xs.begin(), xs.end());
        push(v);
        return;
      }
      case 's': {  // SETITEM
        Value* value = pop(at, "SETITEM");
        Value* key = pop(at, "SETITEM");
        Value* d = container(top(at, "SETITEM"), at, "SETITEM", true);
        d->items.push_back(key);
        d->items.push_back(value);
        return;
      }
      case 'u': {  // SETITEMS
        const auto xs = pop_mark(at, "SETITEMS");
        if (xs.size() % 2) bad(at, "SETITEMS with an odd number of items");
        Value* d = container(top(at, "SETITEMS"), at, "SETITEMS", true);
        for (Value* x : xs) d->items.push_back(x);
        return;
      }
      case 'q': memo_[le(1)] = top(at, "BINPUT"); return;
      case 'r': memo_[le(4)] = top(at, "LONG_BINPUT"); return;
      case 0x94: memo_[memo_.size()] = top(at, "MEMOIZE"); return;
      case 'h': push(memo_get(at, le(1))); return;  // BINGET
      case 'j': push(memo_get(at, le(4))); return;  // LONG_BINGET
      case 'c': {  // GLOBAL
        std::string module = line();
        push(global(at, module + "." + line()));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop(at, "STACK_GLOBAL");
        Value* module = pop(at, "STACK_GLOBAL");
        if (name->kind != Kind::Str || module->kind != Kind::Str) bad(at, "STACK_GLOBAL of non-strings");
        push(global(at, module->s + "." + name->s));
        return;
      }
      case 'R': case 0x81: {  // REDUCE, NEWOBJ: callee(*args), not evaluated
        Value* args = pop(at, "REDUCE");
        Value* callee = pop(at, "REDUCE");
        if (callee->kind != Kind::Global) bad(at, "REDUCE of something that is not a global");
        if (args->kind != Kind::Tuple) bad(at, "REDUCE with arguments that are not a tuple");
        Value* v = make(Kind::Call);
        v->callee = callee;
        v->args = args;
        push(v);
        return;
      }
      case 0x92: {  // NEWOBJ_EX: cls, args, kwargs
        Value* kwargs = pop(at, "NEWOBJ_EX");
        Value* args = pop(at, "NEWOBJ_EX");
        Value* callee = pop(at, "NEWOBJ_EX");
        if (callee->kind != Kind::Global || args->kind != Kind::Tuple) bad(at, "NEWOBJ_EX of something that is not a global");
        Value* v = make(Kind::Call);
        v->callee = callee;
        v->args = args;
        v->state = kwargs;
        push(v);
        return;
      }
      case 'b': {  // BUILD: kept as the object's state, not applied
        Value* state = pop(at, "BUILD");
        Value* obj = top(at, "BUILD");
        if (obj->kind != Kind::Call) bad(at, "BUILD on a value that is not an object");
        obj->state = state;
        return;
      }
      case 'Q': {  // BINPERSID
        Value* v = make(Kind::Persistent);
        v->args = pop(at, "BINPERSID");
        push(v);
        return;
      }
      default:
        bad(at, fmt::format("opcode 0x{:02x} is not one torch.save writes", op));
    }
  }

  std::span<const std::byte> b_;
  const std::string& context_;
  const GlobalFilter& allowed_;
  Pickle& out_;
  size_t pos_ = 0;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

Pickle Pickle::read(std::span<const std::byte> bytes, const std::string& context, const GlobalFilter& allowed) {
  Pickle p;
  Reader(bytes, context, allowed, p).run();
  return p;
}

}  // namespace longseq::pickle
