// The public API (include/squeeze/squeeze.h) over the internal classes: sq::Model, sq::Tokenizer,
// sq::StreamDecoder, sq::Engine, sq::Sampler. Errors thrown inside are sq::Error, which is
// squeeze::Error (core/error.h).
#include <cmath>
#include <squeeze/squeeze.h>

#include "core/context.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace squeeze {

struct Model::Impl {
  std::unique_ptr<sq::Model> m;
  ModelInfo info;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }

std::shared_ptr<Model> Model::load(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->m = sq::Model::load(dir);
  const sq::Model& m = *impl->m;
  ModelInfo& i = impl->info;
  i.path = dir;
  i.architecture = m.cfg.model_type;
  i.format = m.layers.empty() ? "?" : m.layers[0].linear(sq::Role::kQ)->describe();
  i.vocab_size = m.cfg.vocab_size;
  i.context_length = m.cfg.max_pos;
  i.hidden_size = m.cfg.hidden;
  i.layers = m.cfg.n_layers;
  i.bos_id = int32_t(m.cfg.bos_id);
  i.eos_id = int32_t(m.cfg.eos_id);
  i.parameters = m.n_params();
  i.bytes_on_disk = m.ckpt->bytes_on_disk();
  return std::shared_ptr<Model>(new Model(std::move(impl)));
}

struct Tokenizer::Impl {
  std::unique_ptr<sq::Tokenizer> t;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const Model& model) {
  auto impl = std::make_unique<Impl>();
  const sq::Model& m = *model.impl().m;
  impl->t = sq::Tokenizer::load(m.dir, m.cfg.bos_id, m.cfg.eos_id);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  return add_bos ? impl_->t->encode_prompt(text) : impl_->t->encode(text);
}
std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  return impl_->t->decode(std::vector<int32_t>(ids.begin(), ids.end()));
}
int32_t Tokenizer::bos_id() const { return impl_->t->bos_id(); }
int32_t Tokenizer::eos_id() const { return impl_->t->eos_id(); }
int64_t Tokenizer::vocab_size() const { return impl_->t->vocab_size(); }

struct TextStream::Impl {
  sq::StreamDecoder d;
};

TextStream::TextStream(const Tokenizer& tok, std::span<const int32_t> prefix)
    : impl_(new Impl{sq::StreamDecoder(*tok.impl().t, std::vector<int32_t>(prefix.begin(), prefix.end()))}) {}
TextStream::~TextStream() = default;
std::string TextStream::push(int32_t id) { return impl_->d.push(id); }
std::string TextStream::flush() { return impl_->d.flush(); }

struct Engine::Impl {
  std::shared_ptr<const Model> model;
  sq::OwnedContext ctx;
  std::unique_ptr<sq::Engine> e;
  std::vector<sq::BatchRow> rows;  // grow-only: a step allocates nothing once it has seen its size
};

Engine::Engine(std::shared_ptr<const Model> model, const EngineOptions& o) : impl_(std::make_unique<Impl>()) {
  if (!model) throw Error("engine: no model");
  impl_->model = std::move(model);
  impl_->ctx = sq::make_context(o.threads, o.isa);
  sq::EngineOptions eo;
  eo.kv_tokens = o.kv_tokens;
  eo.kv_bytes = o.kv_bytes;
  eo.max_batch = o.max_batch;
  impl_->e = std::make_unique<sq::Engine>(*impl_->model->impl().m, impl_->ctx.ctx, eo);
}
Engine::~Engine() = default;

SeqId Engine::add_sequence() { return impl_->e->add_sequence(); }
void Engine::remove_sequence(SeqId seq) { impl_->e->free_sequence(seq); }
void Engine::clear_sequence(SeqId seq) { impl_->e->clear_sequence(seq); }
int64_t Engine::sequence_length(SeqId seq) const { return impl_->e->length(seq); }
int64_t Engine::max_sequence_length() const { return impl_->e->max_length(); }

void Engine::step(std::span<const Token> batch) {
  auto& rows = impl_->rows;
  if (rows.size() < batch.size()) rows.resize(batch.size());
  for (size_t i = 0; i < batch.size(); i++) rows[i] = {batch[i].id, batch[i].pos, batch[i].seq, batch[i].logits};
  impl_->e->step(std::span<const sq::BatchRow>(rows.data(), batch.size()));
}

std::span<const float> Engine::logits(size_t i) const {
  return {impl_->e->logits(int64_t(i)), size_t(impl_->model->info().vocab_size)};
}
size_t Engine::n_logits() const { return size_t(impl_->e->n_logits()); }

KvStats Engine::kv_stats() const {
  const sq::KvUsage u = impl_->e->kv_usage();
  return {u.block_tokens, u.blocks_total, u.blocks_used, u.blocks_allocated, u.bytes_per_position,
          u.bytes_allocated, u.bytes_capacity};
}
const Model& Engine::model() const { return *impl_->model; }
std::string Engine::isa() const { return sq::isa_name(sq::resolve_isa(impl_->ctx.ctx.isa)); }
int Engine::threads() const { return impl_->ctx.pool->size(); }

struct Sampler::Impl {
  sq::Sampler s;
};

namespace {
const SamplerOptions& checked(const SamplerOptions& o) {
  if (!(std::isfinite(o.temperature) && o.temperature >= 0))
    throw Error("sampler: temperature must be a finite number >= 0, got " + std::to_string(o.temperature));
  if (!(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1))
    throw Error("sampler: top_p must be in (0, 1], got " + std::to_string(o.top_p));
  if (o.top_k < 0) throw Error("sampler: top_k must be >= 0, got " + std::to_string(o.top_k));
  return o;
}
}  // namespace

Sampler::Sampler(const SamplerOptions& options) {
  const SamplerOptions& o = checked(options);
  impl_.reset(new Impl{sq::Sampler(sq::SamplerOptions{o.temperature, o.top_k, o.top_p, o.seed})});
}
Sampler::~Sampler() = default;
int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: no logits");
  return impl_->s.sample(logits.data(), int64_t(logits.size()));
}

}  // namespace squeeze
