#include "core/safetensors.h"

#include "core/error.h"
#include "core/fileio.h"

#include <nlohmann/json.hpp>


#include <algorithm>
#include <cstring>

namespace longseq {

namespace {

using json = nlohmann::json;

// Header length above this is certainly corrupt (the format's own reference reader uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& what) {
  fail("{}: not a valid safetensors file: {} (re-export or re-download the file)", path.string(), what);
}

Shape parse_shape(const std::filesystem::path& path, const std::string& name, const json& j) {
  if (!j.is_array()) bad(path, fmt::format("tensor '{}': shape is not a list", name));
  Shape s;
  for (const auto& d : j) {
    if (!d.is_number_unsigned()) bad(path, fmt::format("tensor '{}': shape entry {} is not a non-negative integer", name, d.dump()));
    s.push_back(d.get<int64_t>());
  }
  return s;
}

TensorInfo parse_entry(const std::filesystem::path& path, const std::string& name, const json& e, uint64_t data_bytes) {
  if (!e.is_object()) bad(path, fmt::format("tensor '{}': entry is not an object", name));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) bad(path, fmt::format("tensor '{}': missing '{}'", name, key));
  if (!e["dtype"].is_string()) bad(path, fmt::format("tensor '{}': dtype is not a string", name));
  const std::string dt = e["dtype"].get<std::string>();
  const auto dtype = dtype_from_name(dt);
  if (!dtype) bad(path, fmt::format("tensor '{}': unsupported dtype '{}'", name, dt));
  TensorInfo info{name, *dtype, parse_shape(path, name, e["shape"]), 0, 0};
  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    bad(path, fmt::format("tensor '{}': data_offsets must be two non-negative integers", name));
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  if (info.begin > info.end) bad(path, fmt::format("tensor '{}': data_offsets [{}, {}] are reversed", name, info.begin, info.end));
  if (info.end > data_bytes)
    bad(path, fmt::format("tensor '{}': bytes [{}, {}) lie past the end of the data section ({} bytes; truncated file?)",
                          name, info.begin, info.end, data_bytes));
  // numel * itemsize with overflow checks.
  uint64_t expect = dtype_size(info.dtype);
  for (int64_t d : info.shape)
    if (__builtin_mul_overflow(expect, uint64_t(d), &expect))
      bad(path, fmt::format("tensor '{}': shape {} is too large", name, shape_str(info.shape)));
  if (expect != info.end - info.begin)
    bad(path, fmt::format("tensor '{}': shape {} of {} needs {} bytes but data_offsets give {}", name, shape_str(info.shape), dt,
                          expect, info.end - info.begin));
  return info;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.path_ = path;
  const auto mapping = MappedFile::open(path);
  const uint64_t file_bytes = mapping->size();
  f.mapping_ = mapping;
  const std::byte* base = mapping->data();

  if (file_bytes < 8) bad(path, fmt::format("file is {} bytes, shorter than the 8-byte header length", file_bytes));
  uint64_t header_bytes;
  std::memcpy(&header_bytes, base, 8);
  if (header_bytes > kMaxHeaderBytes) bad(path, fmt::format("header length {} is implausible", header_bytes));
  if (8 + header_bytes > file_bytes)
    bad(path, fmt::format("header length {} runs past the end of the {}-byte file (truncated?)", header_bytes, file_bytes));
  const char* hdr = reinterpret_cast<const char*>(base + 8);
  json header = json::parse(hdr, hdr + header_bytes, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) bad(path, "header is not well-formed JSON");
  if (!header.is_object()) bad(path, "header is not a JSON object");

  f.data_ = base + 8 + header_bytes;
  f.data_bytes_ = file_bytes - 8 - header_bytes;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) bad(path, fmt::format("__metadata__ value for '{}' is not a string", m.key()));
        f.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(path, it.key(), *it, f.data_bytes_));
  }
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const TensorInfo* prev = nullptr;
  for (const auto& t : f.tensors_) {
    if (t.begin == t.end) continue;  // empty tensors occupy no bytes
    if (prev && t.begin < prev->end)
      bad(path, fmt::format("tensors '{}' and '{}' overlap (bytes [{}, {}) and [{}, {}))", prev->name, t.name, prev->begin,
                            prev->end, t.begin, t.end));
    prev = &t;
  }
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}' (is this the right model/file?)", path_.string(), name);
  return tensors_[it->second];
}

Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  const std::byte* p = data_ + t.begin;
  const size_t bytes = t.end - t.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) == 0) {
    auto storage = Storage::borrow(const_cast<std::byte*>(p), bytes, mapping_);
    return Tensor::from_storage(std::move(storage), 0, t.shape, t.dtype);
  }
  Tensor copy = Tensor::empty(t.shape, t.dtype);
  if (bytes) std::memcpy(copy.raw(), p, bytes);
  return copy;
}

Tensor SafetensorsFile::load_f32(const std::string& name) const { return finite_f32(view(name), path_, name); }

Tensor finite_f32(const Tensor& t, const std::filesystem::path& file, const std::string& name) {
  return finite_weight(t, file, name, false);
}

Tensor finite_weight(const Tensor& t, const std::filesystem::path& file, const std::string& name, bool keep_bf16) {
  LS_CHECK(dtype_is_float(t.dtype()), "{}: tensor '{}' is {}, expected a floating-point tensor", file.string(), name,
           dtype_name(t.dtype()));
  const bool keep = keep_bf16 && t.dtype() == DType::BF16;
  Tensor f = t.dtype() == DType::F32 || keep ? t.contiguous() : t.to(DType::F32);
  const int64_t bad = first_non_finite(f);
  LS_CHECK(bad < 0, "{}: tensor '{}' holds a non-finite value ({} at flat index {}); the checkpoint is corrupt or came from a "
           "diverged run: use an earlier checkpoint or retrain", file.string(), name, f.to_vector()[size_t(bad)], bad);
  return f;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& t : tensors) {
    LS_CHECK(t.second.defined(), "{}: tensor '{}' is undefined", path.string(), t.first);
    LS_CHECK(t.first != "__metadata__", "{}: '__metadata__' is reserved", path.string());
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    const size_t sa = dtype_size(a->second.dtype()), sb = dtype_size(b->second.dtype());
    return sa != sb ? sa > sb : a->first < b->first;
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* t : order) {
    LS_CHECK(!header.contains(t->first), "{}: duplicate tensor name '{}'", path.string(), t->first);
    const uint64_t n = t->second.nbytes();
    header[t->first] = {{"dtype", std::string(dtype_name(t->second.dtype()))},
                        {"shape", t->second.shape()},
                        {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile out(path);
  const uint64_t header_bytes = text.size();
  out.write(&header_bytes, 8);
  out.write(text.data(), text.size());
  for (const auto* t : order) {
    const Tensor c = t->second.contiguous();
    out.write(c.raw(), c.nbytes());
  }
  out.commit();
}

}  // namespace longseq
