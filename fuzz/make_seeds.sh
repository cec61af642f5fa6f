#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/ (committed; CI does not run this). Needs python3 and a
# built squeeze: fuzz/make_seeds.sh [BUILD_DIR]. A tiny LLaMA-shaped model (vocab 16, hidden 8, one
# layer) is written, then quantized to SqueezeLLM 3-bit (lut) and GPTQ int4 with squeeze itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SQ=${1:-build}/squeeze
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/dense"
python3 - "$T/dense" <<'PY'
import json, struct, sys, random
out = sys.argv[1]
random.seed(0)
V, H, I = 16, 8, 12
shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H],
          "model.layers.0.input_layernorm.weight": [H], "model.layers.0.post_attention_layernorm.weight": [H],
          "model.layers.0.self_attn.q_proj.weight": [H, H], "model.layers.0.self_attn.k_proj.weight": [4, H],
          "model.layers.0.self_attn.v_proj.weight": [4, H], "model.layers.0.self_attn.o_proj.weight": [H, H],
          "model.layers.0.mlp.gate_proj.weight": [I, H], "model.layers.0.mlp.up_proj.weight": [I, H],
          "model.layers.0.mlp.down_proj.weight": [H, I]}
header, data = {}, b""
for name, shape in shapes.items():
    n = 1
    for d in shape: n *= d
    vals = [1.0] * n if "norm" in name else [random.gauss(0, 0.5) for _ in range(n)]
    b = struct.pack("<%df" % n, *vals)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
    data += b
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(out + "/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + data)
json.dump({"model_type": "llama", "vocab_size": V, "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
           "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "tie_word_embeddings": False},
          open(out + "/config.json", "w"))
PY
"$SQ" quantize -q -m "$T/dense" -o "$T/lut" --method squeezellm --bits 3 --sensitivity uniform >/dev/null
"$SQ" quantize -q -m "$T/dense" -o "$T/gptq" --method rtn --bits 4 --group-size 4 >/dev/null
C=fuzz/corpus
mkdir -p $C/safetensors $C/config $C/tokenizer $C/checkpoint
i=0
for kind in dense lut gptq; do
  { printf '\x00'; cat "$T/$kind/model.safetensors"; } > $C/safetensors/$kind
  { printf "\\x0$i"; cat "$T/$kind/model.safetensors"; } > $C/checkpoint/$kind
  cp "$T/$kind/config.json" $C/config/$kind.json
  cp "$T/$kind/config.json" "fuzz/config_$kind.json"  # the configs fuzz_checkpoint pairs with its inputs
  i=$((i + 1))
done
printf '\x01{"metadata":{"total_size":8},"weight_map":{"x":"a.safetensors"}}' > $C/safetensors/index
printf '\x01{"weight_map":{"x":"a.safetensors","y":"b.safetensors"}}' > $C/safetensors/index-missing-shard
for m in models/stories260K; do cp $m/config.json $C/config/stories260K.json; done
printf '{"model_type":"opt","vocab_size":16,"hidden_size":8,"ffn_dim":12,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32,"word_embed_proj_dim":8,"do_layer_norm_before":true}' > $C/config/opt.json
printf '{"model_type":"mistral","vocab_size":16,"hidden_size":8,"intermediate_size":12,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":32,"sliding_window":4}\0{"bos_token_id":1,"eos_token_id":2}' > $C/config/mistral-with-generation
# Tokenizers: a byte-level BPE over a handful of pieces, as tokenizer.json, vocab+merges, and with a config.
python3 - $C/tokenizer <<'PY'
import json, sys
out = sys.argv[1]
vocab = {chr(c) if 33 <= c <= 126 else None: None for c in []}
# ByteLevel maps bytes to printable code points; ASCII letters map to themselves, space to U+0120.
pieces = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a", "he", "ll", "hell", "hello", "\u0120w", "or", "\u0120wor", "ld", "\u0120world"]
vocab = {p: i for i, p in enumerate(pieces)}
merges = ["h e", "l l", "he ll", "hell o", "\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld"]
tj = {"model": {"type": "BPE", "vocab": vocab, "merges": merges},
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
      "added_tokens": [{"id": len(pieces), "content": "<|endoftext|>", "special": True}],
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>"}}]}}
open(out + "/json", "wb").write(b"\x00" + json.dumps(tj).encode())
open(out + "/vocab-merges", "wb").write(b"\x01" + json.dumps(vocab).encode() + b"\x00" + ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
cfg = {"add_bos_token": True, "bos_token": "<|endoftext|>", "added_tokens_decoder": {str(len(pieces)): {"content": "<|endoftext|>", "special": True}}}
open(out + "/json-config", "wb").write(b"\x03" + json.dumps(tj).encode() + b"\x00" + json.dumps(cfg).encode())
PY
{ printf '\x02'; cat models/stories260K/tokenizer.model; } > $C/tokenizer/sentencepiece
du -sh $C
