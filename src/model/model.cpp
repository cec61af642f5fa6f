#include "model/model.h"

#include "core/error.h"

namespace sq {

std::vector<float> load_vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  const TensorView& t = ckpt.get(name);
  if (t.shape.size() != 1 || t.shape[0] != n)
    fail(t.file, ": tensor '", name, "' has shape ", t.shape_str(), ", expected [", n, "] from config.json");
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor '", name, "' has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  std::vector<float> v(n);
  convert_to_f32(t.data, t.dtype, v.data(), n);
  return v;
}

namespace {

const TensorView* check_matrix(const Checkpoint& ckpt, const std::string& name, int64_t rows, int64_t cols) {
  const TensorView& t = ckpt.get(name);
  if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
    fail(t.file, ": tensor '", name, "' has shape ", t.shape_str(), ", expected [", rows, ", ", cols,
         "] from config.json");
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor '", name, "' has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  return &t;
}

}  // namespace

std::vector<std::pair<std::string, std::unique_ptr<LinearWeight>*>> LayerWeights::linears(const TensorNames& n,
                                                                                         int64_t i) {
  std::vector<std::pair<std::string, std::unique_ptr<LinearWeight>*>> out;
  for (const LinearDesc& l : n.arch->linears) out.push_back({n.layer_prefix(i) + l.name, &lin[role_index(l.role)]});
  return out;
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir) {
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->cfg = ModelConfig::load(dir);
  m->ckpt = std::make_unique<Checkpoint>(dir);
  const ModelConfig& c = m->cfg;
  const ArchDesc& a = *c.arch;
  const Checkpoint& ck = *m->ckpt;
  m->names = tensor_names(c, ck);
  const TensorNames& n = m->names;
  const int64_t H = c.hidden;

  m->embed = check_matrix(ck, n.embed, c.vocab_size, H);
  if (a.pos == PosKind::kLearned) m->pos_embed = check_matrix(ck, n.pos_embed, c.max_pos + a.pos_offset, H);
  m->final_norm_w = load_vector(ck, n.final_norm + ".weight", H);
  if (a.norm_bias()) m->final_norm_b = load_vector(ck, n.final_norm + ".bias", H);
  // The head is dense unless `quantize --head-bits` stored it in the model's quantized format. A tied
  // head is the embedding matrix (n.head names it), always dense.
  const bool head_dense = ck.has(n.head);
  if (head_dense) check_matrix(ck, n.head, c.vocab_size, H);
  m->head = load_linear(ck, n.head_is_embed ? n.embed.substr(0, n.embed.size() - 7) : head_prefix(n), c.vocab_size,
                        H, head_dense ? nullptr : c.quant);

  m->layers.resize(c.n_layers);
  for (int64_t i = 0; i < c.n_layers; i++) {
    LayerWeights& L = m->layers[i];
    for (int which = 0; which < 2; which++) {
      L.norm_w[which] = load_vector(ck, n.norm(i, which) + ".weight", H);
      if (a.norm_bias()) L.norm_b[which] = load_vector(ck, n.norm(i, which) + ".bias", H);
    }
    for (const LinearDesc& l : a.linears) {
      const std::string p = n.layer_prefix(i) + l.name;
      const int64_t rows = dim(c, l.out), cols = dim(c, l.in);
      L.lin[role_index(l.role)] = load_linear(ck, p, rows, cols, c.quant);
      if (l.bias) L.bias[role_index(l.role)] = load_vector(ck, p + ".bias", rows);
    }
  }
  return m;
}

int64_t Model::n_params() const {
  int64_t p = embed->numel() + (pos_embed ? pos_embed->numel() : 0);
  if (!names.head_is_embed) p += head->rows() * head->cols();
  p += int64_t(final_norm_w.size() + final_norm_b.size());
  for (auto& L : layers) {
    for (int which = 0; which < 2; which++) p += int64_t(L.norm_w[which].size() + L.norm_b[which].size());
    for (int r = 0; r < kRoles; r++) {
      if (L.lin[r]) p += L.lin[r]->rows() * L.lin[r]->cols();
      p += int64_t(L.bias[r].size());
    }
  }
  return p;
}

size_t Model::weight_bytes() const {
  size_t b = embed->nbytes + (pos_embed ? pos_embed->nbytes : 0);
  if (!names.head_is_embed) b += head->weight_bytes();
  for (auto& L : layers)
    for (auto& w : L.lin)
      if (w) b += w->weight_bytes();
  return b;
}

size_t Model::bytes_per_token() const {
  size_t b = head->weight_bytes() + embed->nbytes / size_t(cfg.vocab_size);
  for (auto& L : layers)
    for (auto& w : L.lin)
      if (w) b += w->weight_bytes();
  return b;
}

}  // namespace sq
