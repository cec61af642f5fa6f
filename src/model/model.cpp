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
  auto names = n.linears(i);
  std::vector<std::pair<std::string, std::unique_ptr<LinearWeight>*>> out;
  if (n.arch == Arch::kOpt) {
    std::unique_ptr<LinearWeight>* w[] = {&q, &k, &v, &o, &up, &down};
    for (size_t j = 0; j < 6; j++) out.push_back({names[j], w[j]});
  } else {
    std::unique_ptr<LinearWeight>* w[] = {&q, &k, &v, &o, &gate, &up, &down};
    for (size_t j = 0; j < 7; j++) out.push_back({names[j], w[j]});
  }
  return out;
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir) {
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->cfg = ModelConfig::load(dir);
  m->ckpt = std::make_unique<Checkpoint>(dir);
  const ModelConfig& c = m->cfg;
  const Checkpoint& ck = *m->ckpt;
  m->names = tensor_names(c, ck);
  const TensorNames& n = m->names;
  const int64_t H = c.hidden, D = c.head_dim, I = c.intermediate;
  const bool opt = c.arch == Arch::kOpt;

  m->embed = check_matrix(ck, n.embed, c.vocab_size, H);
  if (opt) m->pos_embed = check_matrix(ck, n.pos_embed, c.max_pos + 2, H);
  m->final_norm_w = load_vector(ck, n.final_norm + ".weight", H);
  if (opt) m->final_norm_b = load_vector(ck, n.final_norm + ".bias", H);
  // The head is dense unless `quantize --head-bits` stored it in the model's quantized format. A tied
  // head is the embedding matrix (n.head names it), always dense.
  const bool head_dense = ck.has(n.head);
  if (head_dense) check_matrix(ck, n.head, c.vocab_size, H);
  const std::string head = n.head.substr(0, n.head.size() - 7);  // minus ".weight"
  m->head = load_linear(ck, head, c.vocab_size, H, head_dense ? nullptr : c.quant);

  m->layers.resize(c.n_layers);
  for (int64_t i = 0; i < c.n_layers; i++) {
    LayerWeights& L = m->layers[i];
    L.attn_norm_w = load_vector(ck, n.attn_norm(i) + ".weight", H);
    L.mlp_norm_w = load_vector(ck, n.mlp_norm(i) + ".weight", H);
    if (opt) {
      L.attn_norm_b = load_vector(ck, n.attn_norm(i) + ".bias", H);
      L.mlp_norm_b = load_vector(ck, n.mlp_norm(i) + ".bias", H);
    }
    // [rows, cols] of each linear in forward order.
    std::vector<std::pair<int64_t, int64_t>> shapes = {
        {c.n_heads * D, H}, {c.n_kv_heads * D, H}, {c.n_kv_heads * D, H}, {H, c.n_heads * D}};
    if (opt) shapes.insert(shapes.end(), {{I, H}, {H, I}});
    else shapes.insert(shapes.end(), {{I, H}, {I, H}, {H, I}});
    auto lin = L.linears(n, i);
    for (size_t j = 0; j < lin.size(); j++)
      *lin[j].second = load_linear(ck, lin[j].first, shapes[j].first, shapes[j].second, c.quant);
    if (opt) {
      L.bq = load_vector(ck, lin[0].first + ".bias", shapes[0].first);
      L.bk = load_vector(ck, lin[1].first + ".bias", shapes[1].first);
      L.bv = load_vector(ck, lin[2].first + ".bias", shapes[2].first);
      L.bo = load_vector(ck, lin[3].first + ".bias", H);
      L.bup = load_vector(ck, lin[4].first + ".bias", I);
      L.bdown = load_vector(ck, lin[5].first + ".bias", H);
    }
  }
  return m;
}

int64_t Model::n_params() const {
  int64_t p = embed->numel() + (pos_embed ? pos_embed->numel() : 0);
  if (!names.head_is_embed) p += head->rows() * head->cols();
  p += int64_t(final_norm_w.size() + final_norm_b.size());
  for (auto& L : layers) {
    p += int64_t(L.attn_norm_w.size() + L.attn_norm_b.size() + L.mlp_norm_w.size() + L.mlp_norm_b.size());
    for (auto* w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      if (*w) p += (*w)->rows() * (*w)->cols();
    p += int64_t(L.bq.size() + L.bk.size() + L.bv.size() + L.bo.size() + L.bup.size() + L.bdown.size());
  }
  return p;
}

size_t Model::weight_bytes() const {
  size_t b = embed->nbytes + (pos_embed ? pos_embed->nbytes : 0);
  if (!names.head_is_embed) b += head->weight_bytes();
  for (auto& L : layers)
    for (auto* w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      if (*w) b += (*w)->weight_bytes();
  return b;
}

size_t Model::bytes_per_token() const {
  size_t b = head->weight_bytes() + embed->nbytes / size_t(cfg.vocab_size);
  for (auto& L : layers)
    for (auto* w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      if (*w) b += (*w)->weight_bytes();
  return b;
}

}  // namespace sq
