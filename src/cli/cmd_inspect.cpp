// squeeze inspect -m DIR: architecture, dimensions, dtypes/formats, parameters, bytes, bits per weight.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/kv_cache.h"
#include "model/model.h"

namespace sq::cli {

void add_inspect(CLI::App& app) {
  struct Opts {
    std::string model;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("inspect", "describe a model directory");
  cmd->add_option("-m,--model", o->model, "model directory")->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto m = Model::load(o->model);
    const ModelConfig& c = m->cfg;
    // Formats of the linear layers and their storage, to report bits per weight incl. tables and sparse parts.
    std::map<std::string, int64_t> formats;
    int64_t lin_params = 0;
    size_t lin_bytes = 0;
    for (size_t i = 0; i < m->layers.size(); i++)
      for (auto& [name, w] : m->layers[i].linears(m->names, int64_t(i))) {
        formats[(*w)->describe()]++;
        lin_params += (*w)->rows() * (*w)->cols();
        lin_bytes += (*w)->weight_bytes();
      }
    std::map<std::string, int64_t> dtypes;
    for (auto& n : m->ckpt->names()) dtypes[std::string(dtype_name(m->ckpt->get(n).dtype))]++;
    double bpw = lin_params ? 8.0 * double(lin_bytes) / double(lin_params) : 0;
    // The engine's KV cache (src/engine/kv_cache.h): K and V of every layer, f32, per position.
    const size_t kv_per_pos = size_t(2 * c.n_layers * c.n_kv_heads * c.head_dim) * sizeof(float);
    nlohmann::json j = {{"model", o->model},
                        {"architecture", c.arch->model_type},
                        {"hidden_size", c.hidden},
                        {"intermediate_size", c.intermediate},
                        {"layers", c.n_layers},
                        {"heads", c.n_heads},
                        {"kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"vocab_size", c.vocab_size},
                        {"context", c.max_pos},
                        {"rope_theta", c.rope_theta},
                        {"sliding_window", c.sliding_window},
                        {"tied_embeddings", m->names.head_is_embed},
                        {"head_format", m->head->describe()},
                        {"parameters", m->n_params()},
                        {"linear_parameters", lin_params},
                        {"linear_bytes", lin_bytes},
                        {"linear_bits_per_weight", bpw},
                        {"linear_formats", formats},
                        {"tensor_dtypes", dtypes},
                        {"bytes_on_disk", m->ckpt->bytes_on_disk()},
                        {"kv_bytes_per_position", kv_per_pos},
                        {"kv_bytes_full_context", kv_per_pos * size_t(c.max_pos)},
                        {"quantization_config", c.quant}};
    if (o->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("model            %s\n", o->model.c_str());
    std::printf("architecture     %s (%s)\n", c.arch->model_type.c_str(), c.arch->hf_architecture.c_str());
    std::printf("dimensions       hidden %lld, intermediate %lld, layers %lld, heads %lld (kv %lld, head_dim %lld)\n",
                (long long)c.hidden, (long long)c.intermediate, (long long)c.n_layers, (long long)c.n_heads,
                (long long)c.n_kv_heads, (long long)c.head_dim);
    std::printf("vocab / context  %lld / %lld%s\n", (long long)c.vocab_size, (long long)c.max_pos,
                c.sliding_window ? cat(", sliding window ", c.sliding_window).c_str() : "");
    std::printf("head             %s\n",
                m->names.head_is_embed ? "tied to the embedding" : cat("separate lm_head, ", m->head->describe()).c_str());
    std::printf("parameters       %lld (%.3f M)\n", (long long)m->n_params(), m->n_params() / 1e6);
    std::string fs, ds;
    for (auto& [k, v] : formats) fs += cat(fs.empty() ? "" : ", ", k, " x", v);
    for (auto& [k, v] : dtypes) ds += cat(ds.empty() ? "" : ", ", k, " x", v);
    std::printf("linear formats   %s\n", fs.c_str());
    std::printf("linear storage   %zu bytes, %.3f bits per weight (incl. tables, scales, sparse)\n", lin_bytes, bpw);
    std::printf("tensor dtypes    %s\n", ds.c_str());
    std::printf("bytes on disk    %zu (%.2f MiB)\n", m->ckpt->bytes_on_disk(), m->ckpt->bytes_on_disk() / 1048576.0);
    std::printf("KV cache         %zu bytes per position (f32, blocks of %lld positions allocated as used); "
                "%.2f MiB for one full context\n",
                kv_per_pos, (long long)KvCache::kBlockTokens, double(kv_per_pos) * double(c.max_pos) / 1048576.0);
    if (!c.quant.is_null()) std::printf("quantization     %s\n", c.quant.dump().c_str());
  });
}

}  // namespace sq::cli
