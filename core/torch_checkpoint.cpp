#include "core/torch_checkpoint.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/pickle.h"

#include <minizip/unzip.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>

namespace longseq {

namespace fs = std::filesystem;
using pickle::Kind;
using pickle::Value;

namespace {

constexpr int kMaxDepth = 64;  // nesting a state dict never needs; deeper is refused

// ---- the checkpoint's bytes: its parts mapped and read as one ---------------------------------

class Bytes {
 public:
  explicit Bytes(const std::vector<fs::path>& parts) {
    for (const auto& p : parts) {
      parts_.push_back({MappedFile::open(p), size_});
      size_ += parts_.back().map->size();
    }
  }
  uint64_t size() const { return size_; }
  // Copies [at, at + n); false when it runs past the end.
  bool read(uint64_t at, void* dst, uint64_t n) const {
    if (at > size_ || n > size_ - at) return false;
    auto* out = static_cast<std::byte*>(dst);
    for (const Part& p : parts_) {
      const uint64_t end = p.begin + p.map->size();
      if (n == 0) break;
      if (at >= end) continue;
      const uint64_t k = std::min(n, end - at);
      std::memcpy(out, p.map->data() + (at - p.begin), size_t(k));
      out += k, at += k, n -= k;
    }
    return true;
  }
  // The mapped bytes [at, at + n) when they lie in one part (nullptr otherwise); `owner` keeps them.
  const std::byte* span(uint64_t at, uint64_t n, std::shared_ptr<const void>& owner) const {
    for (const Part& p : parts_)
      if (at >= p.begin && at - p.begin <= p.map->size() && n <= p.map->size() - (at - p.begin)) {
        owner = p.map;
        return p.map->data() + (at - p.begin);
      }
    return nullptr;
  }

 private:
  struct Part {
    std::shared_ptr<const MappedFile> map;
    uint64_t begin;
  };
  std::vector<Part> parts_;
  uint64_t size_ = 0;
};

// minizip reads through these callbacks, so a checkpoint split in parts is one zip to it.
struct Cursor {
  const Bytes* bytes;
  uint64_t pos = 0;
};
voidpf z_open(voidpf opaque, const void*, int) { return new Cursor{static_cast<const Bytes*>(opaque)}; }
uLong z_read(voidpf, voidpf stream, void* buf, uLong size) {
  auto* c = static_cast<Cursor*>(stream);
  const uint64_t n = std::min<uint64_t>(size, c->bytes->size() - std::min(c->pos, c->bytes->size()));
  if (!c->bytes->read(c->pos, buf, n)) return 0;
  c->pos += n;
  return uLong(n);
}
uLong z_write(voidpf, voidpf, const void*, uLong) { return 0; }
ZPOS64_T z_tell(voidpf, voidpf stream) { return static_cast<Cursor*>(stream)->pos; }
long z_seek(voidpf, voidpf stream, ZPOS64_T offset, int origin) {
  auto* c = static_cast<Cursor*>(stream);
  const uint64_t base = origin == ZLIB_FILEFUNC_SEEK_SET ? 0 : origin == ZLIB_FILEFUNC_SEEK_CUR ? c->pos : c->bytes->size();
  if (offset > c->bytes->size() || base > c->bytes->size() - offset) return -1;
  c->pos = base + offset;
  return 0;
}
int z_close(voidpf, voidpf stream) {
  delete static_cast<Cursor*>(stream);
  return 0;
}
int z_error(voidpf, voidpf) { return 0; }

// ---- the zip format ----------------------------------------------------------------------------

class Zip {
 public:
  struct Entry {
    uint64_t offset = 0;  // of the data in the file (stored entries)
    uint64_t size = 0;    // uncompressed
    bool stored = true;
  };

  Zip(const Bytes& bytes, const std::string& file) : bytes_(bytes), file_(file) {
    zlib_filefunc64_def io{z_open, z_read, z_write, z_tell, z_seek, z_close, z_error, const_cast<Bytes*>(&bytes)};
    zip_.reset(unzOpen2_64("checkpoint", &io));
    if (!zip_) fail("{}: a damaged zip (no readable central directory; truncated?): re-download or re-save the checkpoint", file_);
    for (int rc = unzGoToFirstFile(zip_.get()); rc == UNZ_OK; rc = unzGoToNextFile(zip_.get())) {
      std::array<char, 1024> name{};
      unz_file_info64 info{};
      if (unzGetCurrentFileInfo64(zip_.get(), &info, name.data(), uLong(name.size() - 1), nullptr, 0, nullptr, 0) != UNZ_OK) bad("an entry header");
      Entry e{.offset = 0, .size = info.uncompressed_size, .stored = info.compression_method == 0};
      // deflate expands at most ~1032:1; a larger claim is a lie that would allocate without bound
      if (!e.stored && e.size > 1032 * info.compressed_size + 1024) bad(std::string("entry ") + name.data() + " (an implausible size)");
      if (e.stored) {
        if (unzOpenCurrentFile(zip_.get()) != UNZ_OK) bad(std::string("entry ") + name.data());
        e.offset = unzGetCurrentFileZStreamPos64(zip_.get());
        unzCloseCurrentFile(zip_.get());
        if (info.compressed_size != info.uncompressed_size || e.offset > bytes.size() || e.size > bytes.size() - e.offset)
          bad(std::string("entry ") + name.data() + " (its data runs past the end of the file; truncated?)");
      }
      entries_[name.data()] = e;
    }
  }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;

  const std::map<std::string, Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }
  // The whole entry, decompressed and CRC-checked, into `dst` (size bytes).
  void read(const std::string& name, std::byte* dst) {
    const Entry& e = entries_.at(name);
    if (e.stored) {
      if (!bytes_.read(e.offset, dst, e.size)) bad("entry " + name);
      return;
    }
    if (unzLocateFile(zip_.get(), name.c_str(), 1) != UNZ_OK || unzOpenCurrentFile(zip_.get()) != UNZ_OK) bad("entry " + name);
    uint64_t done = 0;
    while (done < e.size) {
      const int n = unzReadCurrentFile(zip_.get(), dst + done, unsigned(std::min<uint64_t>(e.size - done, 1u << 30)));
      if (n <= 0) break;
      done += uint64_t(n);
    }
    if (unzCloseCurrentFile(zip_.get()) != UNZ_OK || done != e.size) bad("entry " + name + " (it does not inflate to its size or its CRC is wrong)");
  }
  std::vector<std::byte> read(const std::string& name) {
    std::vector<std::byte> out(size_t(entries_.at(name).size));
    read(name, out.data());
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail("{}: a damaged zip: cannot read {} (re-download or re-save the checkpoint)", file_, what);
  }
  const Bytes& bytes_;
  std::string file_;
  struct Close {
    void operator()(void* z) const { unzClose(z); }
  };
  std::unique_ptr<void, Close> zip_;  // closed also when the constructor throws
  std::map<std::string, Entry> entries_;
};

// ---- what a state dict's pickle may name ---------------------------------------------------------

const std::map<std::string, DType, std::less<>>& storage_types() {
  static const std::map<std::string, DType, std::less<>> m = {
      {"torch.DoubleStorage", DType::F64}, {"torch.FloatStorage", DType::F32}, {"torch.HalfStorage", DType::F16},
      {"torch.BFloat16Storage", DType::BF16}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8}, {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::Bool}};
  return m;
}

constexpr std::string_view kRebuildTensor = "torch._utils._rebuild_tensor", kRebuildTensorV2 = "torch._utils._rebuild_tensor_v2",
                           kRebuildParameter = "torch._utils._rebuild_parameter",
                           kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

bool allowed_global(std::string_view name) {
  static const std::set<std::string, std::less<>> plain = {
      "collections.OrderedDict", std::string(kRebuildTensor), std::string(kRebuildTensorV2), std::string(kRebuildParameter),
      std::string(kRebuildParameterWithState),
      "torch.Size",
      // Transformer Engine's `_extra_state`: io.BytesIO over bytes (protocol 2 spells bytes as
      // _codecs.encode(str, "latin1")). Kept as inert values and skipped.
      "_io.BytesIO", "_codecs.encode", "__builtin__.bytes", "builtins.bytes"};
  return plain.count(name) != 0 || storage_types().count(name) != 0;
}

// A storage: its memory, and the element range of it that a tensor may reach.
struct StorageRef {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  int64_t numel = 0;
};

// Makes the state dict from a checkpoint's pickle. `storage(key, dtype, numel)` hands out the bytes
// of the storage a persistent id names (the same object for the same key: shared storages stay
// shared).
class StateDictReader {
 public:
  using StorageFn = std::function<std::shared_ptr<Storage>(const std::string& key, DType dtype, int64_t numel)>;
  StateDictReader(std::string file, StorageFn storage) : file_(std::move(file)), storage_(std::move(storage)) {}

  TorchCheckpoint read(const Value& root, std::string format) {
    TorchCheckpoint out;
    out.format = std::move(format);
    const Value* dict = &root;
    if (!dict_like(*dict)) fail("{}: the checkpoint holds a {}, not a state dict (save model.state_dict())", file_, kind_name(*dict));
    if (count_tensors(*dict) == 0)
      for (const char* key : {"state_dict", "model"})
        if (const Value* v = lookup(*dict, key); v && dict_like(*v)) {
          dict = v;
          out.state_dict_key = key;
          break;
        }
    std::set<std::string> seen;
    for (size_t k = 0; k < dict->pairs(); ++k) {
      const Value& key = *dict->items[2 * k];
      const Value& value = *dict->items[2 * k + 1];
      if (key.kind != Kind::Str) fail("{}: a state dict key is a {}, not a string", file_, kind_name(key));
      if (!seen.insert(key.s).second) fail("{}: tensor '{}' appears twice in the state dict", file_, key.s);
      if (key.s.ends_with("._extra_state") || !is_tensor(value)) {
        out.skipped.push_back(key.s);
        continue;
      }
      out.tensors.emplace_back(key.s, tensor(value, key.s, 0));
    }
    return out;
  }

 private:
  static bool dict_like(const Value& v) {
    return v.kind == Kind::Dict || (v.is_call("collections.OrderedDict") && v.items.size() % 2 == 0);
  }
  static const Value* lookup(const Value& dict, std::string_view key) {
    for (size_t k = 0; k < dict.pairs(); ++k)
      if (dict.items[2 * k]->kind == Kind::Str && dict.items[2 * k]->s == key) return dict.items[2 * k + 1];
    return nullptr;
  }
  static bool is_tensor(const Value& v) {
    return v.is_call(kRebuildTensorV2) || v.is_call(kRebuildTensor) || v.is_call(kRebuildParameter) || v.is_call(kRebuildParameterWithState);
  }
  static size_t count_tensors(const Value& dict) {
    size_t n = 0;
    for (size_t k = 0; k < dict.pairs(); ++k) n += is_tensor(*dict.items[2 * k + 1]);
    return n;
  }
  static std::string kind_name(const Value& v) {
    switch (v.kind) {
      case Kind::None: return "None";
      case Kind::Bool: return "bool";
      case Kind::Int: case Kind::BigInt: return "int";
      case Kind::Float: return "float";
      case Kind::Str: return "str";
      case Kind::Bytes: return "bytes";
      case Kind::Tuple: return "tuple";
      case Kind::List: return "list";
      case Kind::Dict: return "dict";
      case Kind::Global: return "global " + v.s;
      case Kind::Call: return "call of " + v.callee->s;
      case Kind::Persistent: return "persistent id";
    }
    return "value";
  }
  [[noreturn]] void bad(const std::string& name, const std::string& what) const {
    fail("{}: tensor '{}': {} (the checkpoint is damaged or was not written by torch.save)", file_, name, what);
  }
  const Value& arg(const Value& call, size_t i, const std::string& name) const {
    if (i >= call.args->items.size()) bad(name, fmt::format("{} takes more arguments than the {} given", call.callee->s, call.args->items.size()));
    return *call.args->items[i];
  }
  int64_t integer(const Value& v, const std::string& name, const char* what) const {
    if (v.kind != Kind::Int) bad(name, fmt::format("{} is a {}, not an integer", what, kind_name(v)));
    return v.i;
  }
  Shape ints(const Value& v, const std::string& name, const char* what) const {
    const Value* t = &v;
    if (t->is_call("torch.Size") && !t->args->items.empty()) t = t->args->items[0];
    if (t->kind != Kind::Tuple && t->kind != Kind::List) bad(name, fmt::format("{} is a {}, not a tuple", what, kind_name(*t)));
    if (t->items.size() > 16) bad(name, fmt::format("{} has {} dimensions", what, t->items.size()));
    Shape s;
    for (const Value* x : t->items) {
      s.push_back(integer(*x, name, what));
      if (s.back() < 0) bad(name, fmt::format("{} holds the negative value {}", what, s.back()));
    }
    return s;
  }

  Tensor tensor(const Value& v, const std::string& name, int depth) {
    if (depth > kMaxDepth) bad(name, "nested deeper than a tensor can be");
    if (v.is_call(kRebuildParameter) || v.is_call(kRebuildParameterWithState)) {
      const Value& data = arg(v, 0, name);
      if (!is_tensor(data)) bad(name, "a parameter whose data is not a tensor");
      return tensor(data, name, depth + 1);
    }
    // _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...)
    const StorageRef s = storage(arg(v, 0, name), name);
    const int64_t offset = integer(arg(v, 1, name), name, "the storage offset");
    Shape size = ints(arg(v, 2, name), name, "the size"), stride = ints(arg(v, 3, name), name, "the stride");
    if (offset < 0 || offset > s.numel) bad(name, fmt::format("storage offset {} outside its storage of {} elements", offset, s.numel));
    if (stride.size() != size.size()) bad(name, fmt::format("{} strides for {} dimensions", stride.size(), size.size()));
    // The storage's element range as its own storage, so the view is checked against it.
    const size_t es = dtype_size(s.dtype);
    auto range = Storage::borrow(s.storage->data(), size_t(s.numel) * es, s.storage);
    try {
      return Tensor::from_storage(std::move(range), size_t(offset) * es, std::move(size), std::move(stride), s.dtype);
    } catch (const Error& e) {
      bad(name, e.what());
    }
  }

  StorageRef storage(const Value& v, const std::string& name) {
    if (v.kind != Kind::Persistent || !v.args || v.args->kind != Kind::Tuple) bad(name, "its storage is not a persistent reference");
    const auto& id = v.args->items;
    // zip: ('storage', type, key, location, numel); legacy: the same plus view metadata.
    if (id.size() < 5 || id[0]->kind != Kind::Str || id[0]->s != "storage" || id[1]->kind != Kind::Global || id[2]->kind != Kind::Str)
      bad(name, "an unrecognised storage reference");
    const auto type = storage_types().find(id[1]->s);
    if (type == storage_types().end()) bad(name, fmt::format("storage type {} is not a tensor storage", id[1]->s));
    const int64_t numel = integer(*id[4], name, "the storage size");
    if (numel < 0) bad(name, "a negative storage size");
    StorageRef ref{storage_(id[2]->s, type->second, numel), type->second, numel};
    if (id.size() >= 6 && id[5]->kind == Kind::Tuple) {  // legacy view: (view_key, offset, size) of the root storage
      const auto& view = id[5]->items;
      if (view.size() != 3) bad(name, "an unrecognised storage view");
      const int64_t off = integer(*view[1], name, "the storage view offset"), n = integer(*view[2], name, "the storage view size");
      if (off < 0 || n < 0 || off > numel || n > numel - off) bad(name, "a storage view outside its storage");
      const size_t es = dtype_size(ref.dtype);
      ref.storage = Storage::borrow(ref.storage->data() + size_t(off) * es, size_t(n) * es, ref.storage);
      ref.numel = n;
    }
    return ref;
  }

  std::string file_;
  StorageFn storage_;
};

// The storage's bytes: a view of the mapping when in one part and aligned, else a copy.
std::shared_ptr<Storage> storage_bytes(const Bytes& bytes, uint64_t at, uint64_t n, size_t align) {
  std::shared_ptr<const void> owner;
  if (const std::byte* p = bytes.span(at, n, owner); p && reinterpret_cast<uintptr_t>(p) % align == 0)
    return Storage::borrow(const_cast<std::byte*>(p), size_t(n), std::move(owner));
  auto s = Storage::allocate(size_t(n));
  if (!bytes.read(at, s->data(), n)) fail("checkpoint storage [{}, {}) lies past the end of the file", at, at + n);
  return s;
}

uint64_t storage_need(const std::string& file, const std::string& key, DType dtype, int64_t numel) {
  uint64_t need = 0;
  if (__builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(dtype)), &need))
    fail("{}: storage '{}' of {} elements is too large", file, key, numel);
  return need;
}

TorchCheckpoint read_zip(const Bytes& bytes, const std::string& file) {
  Zip zip(bytes, file);
  std::string prefix;  // "<archive>/": the folder of data.pkl
  for (const auto& [name, e] : zip.entries()) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") prefix = name.substr(0, slash + 1);
  }
  if (prefix.empty()) fail("{}: a zip without <archive>/data.pkl: not a torch.save checkpoint", file);
  if (const auto* bo = zip.find(prefix + "byteorder"); bo && bo->size < 16) {
    const auto text = zip.read(prefix + "byteorder");
    if (std::string(reinterpret_cast<const char*>(text.data()), text.size()) == "big")
      fail("{}: a big-endian checkpoint; re-save it on a little-endian machine", file);
  }
  const auto pkl = zip.read(prefix + "data.pkl");
  const auto p = pickle::Pickle::read(pkl, file + ": " + prefix + "data.pkl", allowed_global);
  std::map<std::string, std::shared_ptr<Storage>> made;
  StateDictReader reader(file, [&](const std::string& key, DType dtype, int64_t numel) {
    if (auto it = made.find(key); it != made.end()) {
      if (it->second->bytes() < storage_need(file, key, dtype, numel)) fail("{}: storage '{}' is used with two sizes", file, key);
      return it->second;
    }
    const std::string name = prefix + "data/" + key;
    const Zip::Entry* e = zip.find(name);
    if (!e) fail("{}: storage '{}' is missing from the zip (truncated or damaged checkpoint)", file, name);
    const uint64_t need = storage_need(file, key, dtype, numel);
    if (e->size < need) fail("{}: storage '{}' holds {} bytes, {} needed for {} elements", file, name, e->size, need, numel);
    std::shared_ptr<Storage> s;
    if (e->stored) {
      s = storage_bytes(bytes, e->offset, need, dtype_size(dtype));
    } else {
      std::vector<std::byte> all = zip.read(name);
      s = Storage::allocate(size_t(need));
      if (need) std::memcpy(s->data(), all.data(), size_t(need));
    }
    made[key] = s;
    return s;
  });
  return reader.read(p.root(), "zip");
}

// Every storage a value graph refers to, key -> element type (the legacy format needs them to find
// its storages, which follow one another in the file).
std::map<std::string, DType> storage_types_of(const Value& root) {
  std::map<std::string, DType> out;
  std::set<const Value*> seen;
  std::vector<const Value*> todo = {&root};
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v).second) continue;
    if (v->kind == Kind::Persistent && v->args && v->args->items.size() >= 3 && v->args->items[1]->kind == Kind::Global &&
        v->args->items[2]->kind == Kind::Str)
      if (const auto t = storage_types().find(v->args->items[1]->s); t != storage_types().end()) out.emplace(v->args->items[2]->s, t->second);
    todo.insert(todo.end(), v->items.begin(), v->items.end());
    todo.insert(todo.end(), {v->callee, v->args, v->state});
  }
  return out;
}

// The legacy format: pickles of the magic number, the protocol version and the system info, then
// the object, then the list of storage keys; then each storage as an int64 element count and its
// bytes, in that list's order.
TorchCheckpoint read_legacy(const Bytes& bytes, const std::string& file) {
  std::shared_ptr<const void> owner;
  std::vector<std::byte> copy;
  const std::byte* base = bytes.span(0, bytes.size(), owner);
  if (!base) {  // split in parts: the pickles are read from a copy
    copy.resize(size_t(bytes.size()));
    bytes.read(0, copy.data(), bytes.size());
    base = copy.data();
  }
  const std::span<const std::byte> all(base, size_t(bytes.size()));
  size_t at = 0;
  const auto next = [&](const char* what) {
    auto p = pickle::Pickle::read(all.subspan(at), fmt::format("{}: {} (byte {})", file, what, at), allowed_global);
    at += p.size();
    return p;
  };
  static constexpr std::array<uint8_t, 10> kMagic = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  const auto magic = next("the magic number");
  if (magic.root().kind != Kind::BigInt || magic.root().s != std::string(kMagic.begin(), kMagic.end()))
    fail("{}: a pickle, but not a torch.save checkpoint (no PyTorch magic number)", file);
  const auto version = next("the protocol version");
  if (version.root().kind != Kind::Int || version.root().i != 1001)
    fail("{}: legacy checkpoint protocol {} is not 1001 (re-save it with a current PyTorch)", file, version.root().i);
  const auto sys = next("the system info");
  for (size_t k = 0; k < sys.root().pairs(); ++k)
    if (sys.root().items[2 * k]->s == "little_endian" && sys.root().items[2 * k + 1]->i == 0)
      fail("{}: a big-endian checkpoint; re-save it on a little-endian machine", file);
  const auto object = next("the object");
  const auto keys = next("the storage keys");
  if (keys.root().kind != Kind::List) fail("{}: the storage key list is a damaged pickle", file);
  const auto types = storage_types_of(object.root());
  std::map<std::string, std::pair<uint64_t, int64_t>> where;  // key -> byte offset, elements stored
  uint64_t pos = at;
  for (const Value* k : keys.root().items) {
    if (k->kind != Kind::Str) fail("{}: a storage key is not a string", file);
    const auto t = types.find(k->s);
    if (t == types.end()) fail("{}: storage '{}' is listed but no tensor refers to it (damaged checkpoint)", file, k->s);
    int64_t n = 0;
    if (!bytes.read(pos, &n, 8) || n < 0) fail("{}: storage '{}' lies past the end of the file (truncated?)", file, k->s);
    where[k->s] = {pos + 8, n};
    const uint64_t need = storage_need(file, k->s, t->second, n);
    if (need > bytes.size() - pos - 8) fail("{}: storage '{}' lies past the end of the file (truncated?)", file, k->s);
    pos += 8 + need;
  }
  std::map<std::string, std::shared_ptr<Storage>> made;
  StateDictReader reader(file, [&](const std::string& key, DType dtype, int64_t numel) {
    if (auto it = made.find(key); it != made.end()) return it->second;
    const auto w = where.find(key);
    if (w == where.end()) fail("{}: storage '{}' is not in the file's storage list", file, key);
    if (w->second.second < numel) fail("{}: storage '{}' holds {} elements, {} needed", file, key, w->second.second, numel);
    auto s = storage_bytes(bytes, w->second.first, storage_need(file, key, dtype, numel), dtype_size(dtype));
    made[key] = s;
    return s;
  });
  return reader.read(object.root(), "legacy");
}

}  // namespace

std::vector<fs::path> torch_checkpoint_parts(const fs::path& path) {
  fs::path base = path;
  if (path.extension() == ".part0") base = path.parent_path() / path.stem();
  else if (fs::exists(path) || !fs::exists(path.string() + ".part0")) return {path};
  std::vector<fs::path> parts;
  for (int k = 0; fs::exists(base.string() + ".part" + std::to_string(k)); ++k) parts.emplace_back(base.string() + ".part" + std::to_string(k));
  return parts;
}

bool looks_like_torch_checkpoint(const fs::path& path) {
  if (path.extension() == ".safetensors") return false;
  const auto parts = torch_checkpoint_parts(path);
  const Bytes bytes({parts.front()});
  std::array<uint8_t, 9> head{};
  if (!bytes.read(0, head.data(), 9)) return false;
  if (head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return true;  // zip
  if (head[8] == '{') return false;  // safetensors: an 8-byte header length, then its JSON
  return head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;  // a pickle (the legacy format)
}

TorchCheckpoint read_torch_checkpoint(const fs::path& path) {
  const auto parts = torch_checkpoint_parts(path);
  const std::string file = path.string();
  const Bytes bytes(parts);
  std::array<uint8_t, 4> head{};
  if (!bytes.read(0, head.data(), 4)) fail("{}: {} bytes: too short to be a PyTorch checkpoint", file, bytes.size());
  if (head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return read_zip(bytes, file);
  if (head[0] == 0x80) return read_legacy(bytes, file);
  std::array<char, 6> tar{};
  if (bytes.read(257, tar.data(), 5) && std::string(tar.data()) == "ustar")
    fail("{}: the tar format of PyTorch before 0.4 is not read; re-save the state dict with a current torch.save", file);
  fail("{}: not a PyTorch checkpoint (neither a torch.save zip nor a pickle) nor safetensors", file);
}

}  // namespace longseq
