#include "model/arch/arch.h"

#include "core/error.h"
#include "io/config.h"

namespace sq {

const char* role_name(Role r) {
  static const char* const kNames[kRoles] = {"q", "k", "v", "o", "gate", "up", "down"};
  return kNames[role_index(r)];
}

int64_t dim(const ModelConfig& c, Dim d) {
  switch (d) {
    case Dim::kHidden: return c.hidden;
    case Dim::kQ: return c.n_heads * c.head_dim;
    case Dim::kKV: return c.n_kv_heads * c.head_dim;
    case Dim::kInter: return c.intermediate;
  }
  return 0;
}

const LinearDesc* ArchDesc::find(Role r) const {
  for (const LinearDesc& l : linears)
    if (l.role == r) return &l;
  return nullptr;
}

std::vector<const ArchDesc*> all_archs() { return {&llama_arch(), &mistral_arch(), &opt_arch()}; }

const ArchDesc& arch_for(const std::string& model_type, const std::string& file) {
  std::string names;
  for (const ArchDesc* a : all_archs()) {
    if (a->model_type == model_type) return *a;
    names += (names.empty() ? "" : ", ") + a->model_type;
  }
  fail(file, ": unsupported model_type \"", model_type, "\" (supported: ", names, ")");
}

}  // namespace sq
