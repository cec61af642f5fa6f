#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/mmap_file.h"

namespace sq {

using json = nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string p = path.string();
  const size_t size = file_.size();
  if (size < 8) fail(p, ": not a safetensors file (", size, " bytes, shorter than the 8-byte header length)");
  uint64_t n;
  std::memcpy(&n, file_.data(), 8);
  if (n > size - 8) fail(p, ": safetensors header length ", n, " runs past the end of the file (", size, " bytes)");
  json h;
  try {
    h = json::parse(file_.data() + 8, file_.data() + 8 + n);
  } catch (const std::exception& e) {
    fail(p, ": safetensors header is not valid JSON");
  }
  if (!h.is_object()) fail(p, ": safetensors header is not a JSON object");
  const uint8_t* base = file_.data() + 8 + n;
  const uint64_t buf_size = size - 8 - n;
  std::vector<std::pair<uint64_t, std::pair<uint64_t, std::string>>> ranges;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(p, ": __metadata__ is not an object");
      for (auto& [k, mv] : v.items())
        metadata_[k] = mv.is_string() ? mv.get<std::string>() : mv.dump();
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(p, ": tensor '", name, "' lacks dtype, shape or data_offsets");
    TensorView t;
    t.name = name;
    t.file = p;
    const auto& dt = v["dtype"];
    if (!dt.is_string() || !dtype_from_name(dt.get<std::string>(), &t.dtype))
      fail(p, ": tensor '", name, "' has unsupported dtype ", dt.dump());
    const auto& sh = v["shape"];
    if (!sh.is_array()) fail(p, ": tensor '", name, "' shape is not an array");
    uint64_t numel = 1;
    for (auto& d : sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(p, ": tensor '", name, "' has a bad shape ", sh.dump());
      uint64_t dd = d.get<uint64_t>();
      if (dd && numel > (uint64_t(1) << 62) / dd) fail(p, ": tensor '", name, "' shape is too large");
      numel *= dd;
      t.shape.push_back(int64_t(dd));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(p, ": tensor '", name, "' data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > buf_size)
      fail(p, ": tensor '", name, "' data_offsets [", b, ", ", e, "] out of range (data section is ", buf_size, " bytes)");
    if (e - b != numel * dtype_size(t.dtype))
      fail(p, ": tensor '", name, "' has ", e - b, " bytes but shape ", t.shape_str(), " of ", dtype_name(t.dtype),
           " needs ", numel * dtype_size(t.dtype));
    t.data = base + b;
    t.mapped = true;
    t.nbytes = e - b;
    if (e > b) ranges.push_back({b, {e, name}});
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); i++)
    if (ranges[i].first < ranges[i - 1].second.first)
      fail(p, ": tensors '", ranges[i - 1].second.second, "' and '", ranges[i].second.second, "' overlap");
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail(path().string(), ": tensor '", name, "' not found");
  return *t;
}

Checkpoint::Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) fail(dir.string(), ": model directory not found");
  auto single = dir / "model.safetensors";
  auto index = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single, ec)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
  } else if (std::filesystem::exists(index, ec)) {
    json j;
    try {
      j = json::parse(read_text_file(index));
    } catch (const json::exception&) {
      fail(index.string(), ": not valid JSON");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail(index.string(), ": missing \"weight_map\"");
    std::map<std::string, size_t> shard_of;
    for (auto& [tensor, shard] : j["weight_map"].items()) {
      if (!shard.is_string()) fail(index.string(), ": weight_map entry for '", tensor, "' is not a file name");
      std::string s = shard.get<std::string>();
      if (s.find('/') != std::string::npos) fail(index.string(), ": shard name '", s, "' must be a plain file name");
      if (!shard_of.count(s)) {
        shard_of[s] = files_.size();
        files_.push_back(std::make_unique<SafetensorsFile>(dir / s));
      }
    }
    for (auto& [tensor, shard] : j["weight_map"].items()) {
      auto& f = *files_[shard_of[shard.get<std::string>()]];
      if (!f.find(tensor)) fail(index.string(), ": tensor '", tensor, "' is mapped to ", shard.get<std::string>(), " but not stored there");
    }
  } else {
    fail(dir.string(), ": no model.safetensors or model.safetensors.index.json");
  }
  for (auto& f : files_)
    for (auto& [name, t] : f->tensors()) {
      if (index_.count(name)) fail(f->path().string(), ": tensor '", name, "' appears in more than one shard");
      index_[name] = &t;
    }
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail(dir_.string(), ": tensor '", name, "' not found in the checkpoint");
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> v;
  for (auto& [k, _] : index_) v.push_back(k);
  return v;
}

size_t Checkpoint::bytes_on_disk() const {
  size_t s = 0;
  for (auto& f : files_) s += f->file_size();
  return s;
}

const std::map<std::string, std::string>& Checkpoint::metadata() const { return files_.front()->metadata(); }

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  uint64_t numel = 1;
  for (auto d : shape) numel *= uint64_t(d);
  SQ_CHECK(numel * dtype_size(dtype) == nbytes, "safetensors writer: tensor '", name, "' byte count ", nbytes,
           " does not match its shape");
  Entry e{dtype, std::move(shape), {}};
  e.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
  entries_[name] = std::move(e);
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  uint64_t numel = 1;
  for (auto d : shape) numel *= uint64_t(d);
  add(name, DType::F32, std::move(shape), data, numel * 4);
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  json h = json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  uint64_t off = 0;
  for (auto& [name, e] : entries_) {
    h[name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  uint64_t n = hs.size();
  AtomicFile f(path);
  f.write(&n, 8);
  f.write(hs);
  for (auto& [name, e] : entries_) f.write(e.bytes.data(), e.bytes.size());
  f.commit();
}

void release_pages(const TensorView& t) {
  if (t.mapped) release_pages(t.data, t.nbytes);
}

int64_t first_non_finite(const TensorView& t) {
  const int64_t n = t.numel();
  int64_t found = -1;
  // Exponent all ones is infinity or NaN, for every IEEE width.
  // Elements are loaded with memcpy: a tensor's offset in the file need not be aligned to its width.
  auto scan = [&](auto exp_mask) {
    const char* p = static_cast<const char*>(t.data);
    for (int64_t i = 0; i < n; i++) {
      decltype(exp_mask) bits;
      std::memcpy(&bits, p + i * int64_t(sizeof bits), sizeof bits);
      if ((bits & exp_mask) == exp_mask) return i;
    }
    return int64_t(-1);
  };
  switch (t.dtype) {
    case DType::F32:
      found = scan(uint32_t(0x7f800000u));
      break;
    case DType::F16:
      found = scan(uint16_t(0x7c00u));
      break;
    case DType::BF16:
      found = scan(uint16_t(0x7f80u));
      break;
    default:
      return -1;
  }
  if (t.mapped) release_pages(t.data, t.nbytes);
  return found;
}

void check_finite_weights(const Checkpoint& ckpt) {
  for (const std::string& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    const int64_t i = first_non_finite(t);
    if (i < 0) continue;
    float v = 0;
    if (t.dtype == DType::F32) std::memcpy(&v, static_cast<const char*>(t.data) + 4 * i, 4);
    else {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(t.data) + 2 * i, 2);
      v = t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    fail(t.file, ": tensor '", name, "' holds a non-finite value (", v, " at element ", i,
         "); squeeze needs finite weights to calibrate or quantize");
  }
}

}  // namespace sq
