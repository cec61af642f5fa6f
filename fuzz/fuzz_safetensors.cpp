// safetensors header and data offsets (io/safetensors.cpp), and the sharded index
// (model.safetensors.index.json). First byte: 0 = the rest is a whole .safetensors file; 1 = the rest is
// an index naming shards, of which "a.safetensors" exists (a tiny valid file) and others do not.
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"

namespace {

// Every tensor's bytes are touched, so an offset past the mapping is an ASan report.
void read_all(const sq::TensorView& t) {
  volatile uint8_t sink = 0;
  const auto* p = static_cast<const uint8_t*>(t.data);
  for (size_t i = 0; i < t.nbytes; i++) sink = sink ^ p[i];
  (void)t.numel();
  (void)t.shape_str();
}

std::string tiny_shard() {
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  uint64_t n = header.size();
  std::string s(reinterpret_cast<const char*>(&n), 8);
  return s + header + std::string(8, '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto dir = sqfuzz::fresh_dir("st");
  if (data[0] % 2 == 0) {
    sqfuzz::write(dir / "model.safetensors", rest);
    sqfuzz::expect_only_sq_errors([&] {
      sq::SafetensorsFile f(dir / "model.safetensors");
      for (const auto& [name, t] : f.tensors()) read_all(t);
      (void)f.metadata();
    });
  } else {
    sqfuzz::write(dir / "a.safetensors", tiny_shard());
    sqfuzz::write(dir / "model.safetensors.index.json", rest);
    sqfuzz::expect_only_sq_errors([&] {
      sq::Checkpoint c(dir);
      for (const std::string& name : c.names()) read_all(c.get(name));
      (void)c.bytes_on_disk();
      (void)c.metadata();
    });
  }
  return 0;
}
