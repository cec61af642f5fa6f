#include "model/bpe.h"

#include <algorithm>
#include <array>
#include <climits>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/unicode.h"

namespace sq {
namespace fs = std::filesystem;
using unicode::CharClass;

namespace {

bool byte_is_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

// Calls fn(begin, end) for every pre-token of text, left to right. At each position the first
// alternative of the pattern that matches wins, as in a backtracking regex engine:
//   1. 's 't 're 've 'm 'll 'd          (ASCII, case-sensitive)
//   2-4. optional ' ' then a run of letters / of numbers / of "other" (not space, letter or number)
//   5. \s+(?!\S): a whitespace run reaching the end of the text, or all of a longer run but its last
//      character (which then joins the next word as its optional ' ', or stands alone)
//   6. \s+: the single whitespace character left before a non-space
template <typename Fn>
void for_each_pretoken(std::string_view s, Fn&& fn) {
  const size_t n = s.size();
  // Code point at byte offset i: its length and class; an invalid sequence is one "other" character.
  auto at = [&](size_t i, char32_t* cp, CharClass* cls) -> size_t {
    const int len = unicode::next_utf8(s, i, cp);
    if (len < 0) {
      *cp = 0xFFFD;
      *cls = CharClass::kOther;
      return static_cast<size_t>(-len);
    }
    *cls = unicode::classify(*cp);
    return static_cast<size_t>(len);
  };
  // End of the run of class k starting at byte j.
  auto run_end = [&](size_t j, CharClass k) {
    char32_t cp;
    CharClass c;
    while (j < n) {
      const size_t len = at(j, &cp, &c);
      if (c != k) break;
      j += len;
    }
    return j;
  };

  size_t i = 0;
  while (i < n) {
    char32_t cp0;
    CharClass c0;
    const size_t len0 = at(i, &cp0, &c0);
    if (cp0 == '\'' && i + 1 < n) {
      const char a = s[i + 1], b = i + 2 < n ? s[i + 2] : '\0';
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) len = 3;
      if (len) {
        fn(i, i + len);
        i += len;
        continue;
      }
    }
    if (cp0 == ' ' && i + 1 < n) {
      char32_t cp1;
      CharClass c1;
      const size_t len1 = at(i + 1, &cp1, &c1);
      if (c1 != CharClass::kSpace) {
        const size_t end = run_end(i + 1 + len1, c1);
        fn(i, end);
        i = end;
        continue;
      }
    }
    if (c0 != CharClass::kSpace) {
      const size_t end = run_end(i + len0, c0);
      fn(i, end);
      i = end;
      continue;
    }
    // Whitespace run [i, j); last = start of its final character.
    size_t j = i, last = i, count = 0;
    while (j < n) {
      char32_t cp;
      CharClass c;
      const size_t len = at(j, &cp, &c);
      if (c != CharClass::kSpace) break;
      last = j;
      j += len;
      ++count;
    }
    const size_t end = (j == n || count == 1) ? j : last;
    fn(i, end);
    i = end;
  }
}

// j[key] for a const object without undefined behaviour: a null value when j is no object or lacks key
// (nlohmann's const operator[] requires the key to exist).
const nlohmann::json& member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json null_value;
  if (!j.is_object()) return null_value;
  const auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

nlohmann::json parse_json(const fs::path& file) {
  const std::string text = read_whole_file(file);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(file.string(), ": invalid JSON (", e.what(), ")");
  }
}

std::unordered_map<std::string, int32_t> vocab_from_json(const nlohmann::json& v, const std::string& where) {
  SQ_CHECK(v.is_object(), where, ": vocab must be an object {token: id}");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(v.size());
  for (const auto& [tok, id] : v.items()) {
    SQ_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX, where,
             ": token '", tok, "' has a bad id ", id.dump());
    vocab.emplace(tok, id.get<int32_t>());
  }
  return vocab;
}

}  // namespace

char32_t byte_to_unicode(uint8_t b) {
  if (byte_is_printable(b)) return b;
  int before = 0;  // non-printable bytes below b
  for (int c = 0; c < b; ++c) before += !byte_is_printable(c);
  return 0x100 + before;
}

std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> out;
  for_each_pretoken(text, [&](size_t b, size_t e) { out.emplace_back(b, e); });
  return out;
}

// ---- readers -----------------------------------------------------------------------------------

BpeData read_gpt2_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  BpeData d;
  d.source = vocab_json.string() + " + " + merges_txt.string();
  d.vocab = vocab_from_json(parse_json(vocab_json), vocab_json.string());
  const std::string text = read_whole_file(merges_txt);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const size_t sp = line.find(' ');
    SQ_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                 line.find(' ', sp + 1) == std::string_view::npos,
             merges_txt.string(), ":", line_no, ": expected two tokens separated by one space");
    d.merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  return d;
}

BpeData read_tokenizer_json(const fs::path& file) {
  const nlohmann::json j = parse_json(file);
  const std::string where = file.string();
  BpeData d;
  d.source = where;
  try {
    SQ_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), where, ": no \"model\" object");
    const auto& m = j["model"];
    const std::string type = m.value("type", m.contains("merges") ? "BPE" : "");
    SQ_CHECK(type == "BPE", where, ": model type '", type,
             "' is not supported (only byte-level BPE; SentencePiece models load from tokenizer.model)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      SQ_CHECK(!m.contains(key) || m[key].is_null() || m[key] == "", where, ": BPE ", key, " ", m[key].dump(),
               " is not supported");
    }
    d.ignore_merges = m.value("ignore_merges", false);

    // Pre-tokenizer: ByteLevel, alone or as the only member of a Sequence.
    const nlohmann::json* bl = nullptr;
    const auto& pre = member(j, "pre_tokenizer");
    const std::string pre_type = pre.is_object() ? pre.value("type", "") : "none";
    const auto& seq = member(pre, "pretokenizers");
    if (pre_type == "Sequence") SQ_CHECK(seq.is_array(), where, ": Sequence pre_tokenizer without a pretokenizers list");
    if (pre_type == "ByteLevel") {
      bl = &pre;
    } else if (pre_type == "Sequence" && seq.size() == 1 && seq[0].is_object() &&
               seq[0].value("type", "") == "ByteLevel") {
      bl = &seq[0];
    }
    if (!bl) {
      std::string desc = pre_type;
      if (pre_type == "Sequence") {
        desc += " [";
        for (const auto& p : seq) desc += (p.is_object() ? p.value("type", "?") : "?") + " ";
        desc.back() = ']';
      }
      fail(where, ": pre_tokenizer ", desc, " is not supported (only ByteLevel byte-level BPE)");
    }
    SQ_CHECK(bl->value("use_regex", true), where,
             ": ByteLevel pre_tokenizer with use_regex=false (a custom Split pattern) is not supported");
    d.add_prefix_space = bl->value("add_prefix_space", false);
    if (const auto& norm = member(j, "normalizer"); !norm.is_null()) {
      fail(where, ": normalizer ", norm.is_object() ? norm.value("type", "?") : norm.dump(), " is not supported");
    }

    SQ_CHECK(m.contains("vocab"), where, ": model has no \"vocab\"");
    d.vocab = vocab_from_json(m["vocab"], where);
    SQ_CHECK(m.contains("merges") && m["merges"].is_array(), where, ": model.merges must be an array");
    d.merges.reserve(m["merges"].size());
    for (const auto& e : m["merges"]) {
      if (e.is_string()) {  // "a b"
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        SQ_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                 where, ": bad merge \"", s, "\"");
        d.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else {  // ["a", "b"]
        SQ_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), where, ": bad merge ",
                 e.dump());
        d.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      }
    }
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const auto& t : j["added_tokens"]) {
        AddedToken a;
        a.id = t.at("id").get<int32_t>();
        a.content = t.at("content").get<std::string>();
        a.special = t.value("special", false);
        SQ_CHECK(a.id >= 0 && !a.content.empty(), where, ": bad added token ", t.dump());
        d.added.push_back(std::move(a));
      }
    }
    const auto& post = member(j, "post_processor");
    if (post.is_object() && post.value("type", "") == "TemplateProcessing" && post.contains("single")) {
      const auto& single = post["single"];
      d.template_adds_bos = single.is_array() && !single.empty() && single[0].is_object() &&
                            single[0].contains("SpecialToken");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": unexpected tokenizer.json structure (", e.what(), ")");
  }
  return d;
}

// ---- the tokenizer -----------------------------------------------------------------------------

ByteLevelBpe::ByteLevelBpe(BpeData d)
    : add_prefix_space_(d.add_prefix_space),
      ignore_merges_(d.ignore_merges),
      template_adds_bos_(d.template_adds_bos),
      source_(std::move(d.source)) {
  int64_t size = 0;
  for (const auto& [tok, id] : d.vocab) size = std::max<int64_t>(size, int64_t{id} + 1);
  for (const auto& a : d.added) size = std::max<int64_t>(size, int64_t{a.id} + 1);
  SQ_CHECK(size > 0, source_, ": empty vocabulary");
  // Ids index dense tables: refuse far-apart ids rather than allocating for them.
  const size_t entries = d.vocab.size() + d.added.size();
  SQ_CHECK(static_cast<size_t>(size) <= 2 * entries + 1024, source_, ": token ids reach ", size - 1, " for only ",
           entries, " tokens");
  pieces_.resize(size);
  id_bytes_.resize(size);
  special_.assign(size, 0);

  // Inverse of byte_to_unicode: mapped code points are < U+0144.
  std::array<int, 0x144> to_byte;
  to_byte.fill(-1);
  std::array<std::string, 256> byte_piece;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = byte_to_unicode(static_cast<uint8_t>(b));
    to_byte[cp] = b;
    unicode::append_utf8(byte_piece[b], cp);
  }

  piece_ids_.reserve(d.vocab.size() + d.added.size());
  for (auto& [tok, id] : d.vocab) {
    SQ_CHECK(pieces_[id].empty(), source_, ": id ", id, " is used by two tokens ('", pieces_[id], "' and '", tok, "')");
    // Vocabulary entries are byte-mapped text; an entry with characters outside the map is kept as is.
    std::string bytes;
    bool mapped = true;
    char32_t cp;
    for (size_t i = 0; i < tok.size() && mapped;) {
      const int len = unicode::next_utf8(tok, i, &cp);
      mapped = len > 0 && cp < to_byte.size() && to_byte[cp] >= 0;
      if (mapped) bytes += static_cast<char>(to_byte[cp]);
      i += len > 0 ? len : 1;
    }
    id_bytes_[id] = mapped ? std::move(bytes) : tok;
    pieces_[id] = tok;
    piece_ids_.emplace(tok, id);
  }
  for (const auto& a : d.added) {
    // Added tokens decode to their content as is; they may repeat a vocabulary entry (GPT-2's
    // <|endoftext|>), which then must have the same id.
    auto it = piece_ids_.find(a.content);
    SQ_CHECK(it == piece_ids_.end() || it->second == a.id, source_, ": added token '", a.content, "' has id ", a.id,
             " but the vocabulary gives it ", it->second);
    SQ_CHECK(pieces_[a.id].empty() || pieces_[a.id] == a.content, source_, ": added token '", a.content,
             "' reuses id ", a.id, " of '", pieces_[a.id], "'");
    pieces_[a.id] = a.content;
    id_bytes_[a.id] = a.content;
    piece_ids_.emplace(a.content, a.id);
    if (a.special) special_[a.id] = 1;
    else matchable_.push_back(a);
  }
  std::sort(matchable_.begin(), matchable_.end(),
            [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });

  for (int b = 0; b < 256; ++b) {
    auto it = piece_ids_.find(byte_piece[b]);
    SQ_CHECK(it != piece_ids_.end(), source_, ": the vocabulary has no token for byte 0x", std::hex, b,
             " (not a byte-level BPE vocabulary)");
    byte_ids_[b] = it->second;
  }

  merges_.reserve(d.merges.size());
  for (size_t r = 0; r < d.merges.size(); ++r) {
    const auto& [a, b] = d.merges[r];
    auto ia = piece_ids_.find(a), ib = piece_ids_.find(b), ir = piece_ids_.find(a + b);
    SQ_CHECK(ia != piece_ids_.end() && ib != piece_ids_.end() && ir != piece_ids_.end(), source_, ": merge ", r + 1,
             " '", a, " ", b, "' uses or makes a token that is not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), Merge{static_cast<int32_t>(r), ir->second});
  }
}

void ByteLevelBpe::mark_special(int32_t id) {
  if (id >= 0 && id < vocab_size()) special_[id] = 1;
}

std::string ByteLevelBpe::id_to_piece(int32_t id) const {
  SQ_CHECK(id >= 0 && id < vocab_size(), source_, ": token id ", id, " outside [0, ", vocab_size(), ")");
  return pieces_[id];
}

int32_t ByteLevelBpe::piece_to_id(std::string_view piece) const {
  auto it = piece_ids_.find(std::string(piece));
  return it == piece_ids_.end() ? -1 : it->second;
}

void ByteLevelBpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    std::string mapped;
    for (unsigned char b : word) unicode::append_utf8(mapped, byte_to_unicode(b));
    if (auto it = piece_ids_.find(mapped); it != piece_ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const size_t n = word.size();
  if (n <= 64) {
    // Short words (nearly all): find the lowest-ranked adjacent pair, merge every occurrence of it
    // left to right, repeat. O(n^2) lookups, no allocation beyond the symbol list.
    int32_t syms_buf[64];
    size_t m = n;
    for (size_t i = 0; i < n; ++i) syms_buf[i] = byte_ids_[static_cast<uint8_t>(word[i])];
    while (m > 1) {
      int32_t best_rank = INT32_MAX, result = -1;
      size_t best = 0;
      for (size_t i = 0; i + 1 < m; ++i) {
        auto it = merges_.find(pair_key(syms_buf[i], syms_buf[i + 1]));
        if (it != merges_.end() && it->second.rank < best_rank) {
          best_rank = it->second.rank;
          result = it->second.result;
          best = i;
        }
      }
      if (result < 0) break;
      const int32_t a = syms_buf[best], b = syms_buf[best + 1];
      size_t w = best;
      for (size_t r = best; r < m;) {
        if (r + 1 < m && syms_buf[r] == a && syms_buf[r + 1] == b) {
          syms_buf[w++] = result;
          r += 2;
        } else {
          syms_buf[w++] = syms_buf[r++];
        }
      }
      m = w;
    }
    out.insert(out.end(), syms_buf, syms_buf + m);
    return;
  }

  // Long words: symbols in a linked list, candidate pairs in a min-heap ordered by (rank, position),
  // O(n log n). Same result as above: pairs of equal rank merge left to right, and a merge never
  // makes a pair ranked below the one just applied (a token's merges come after the merge making it).
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> syms(n);
  for (size_t i = 0; i < n; ++i) {
    syms[i] = {byte_ids_[static_cast<uint8_t>(word[i])], static_cast<int32_t>(i) - 1,
               i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || syms[pos].next < 0) return;
    const int32_t l = syms[pos].id, r = syms[syms[pos].next].id;
    if (auto it = merges_.find(pair_key(l, r)); it != merges_.end()) heap.push({it->second.rank, pos, l, r});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& s = syms[c.pos];
    // Stale entries: the symbol at pos (or its right neighbour) changed since the pair was pushed.
    if (s.id != c.left || s.next < 0 || syms[s.next].id != c.right) continue;
    s.id = merges_.at(pair_key(c.left, c.right)).result;
    const int32_t gone = s.next;
    s.next = syms[gone].next;
    if (s.next >= 0) syms[s.next].prev = c.pos;
    syms[gone].id = -1;
    consider(s.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void ByteLevelBpe::encode_plain(std::string_view text, std::vector<int32_t>& out,
                                std::unordered_map<std::string_view, std::vector<int32_t>>& cache) const {
  for_each_pretoken(text, [&](size_t b, size_t e) {
    const std::string_view word = text.substr(b, e - b);
    auto it = cache.find(word);
    if (it == cache.end()) {
      std::vector<int32_t> ids;
      encode_word(word, ids);
      it = cache.emplace(word, std::move(ids)).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  });
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  // Per-call cache of pre-token -> ids (text repeats words a lot); keys point into text or into
  // `prefixed`, both alive until return.
  std::unordered_map<std::string_view, std::vector<int32_t>> cache;
  std::deque<std::string> prefixed;
  auto plain = [&](std::string_view seg) {
    if (seg.empty()) return;
    if (add_prefix_space_ && seg[0] != ' ') {
      std::string& p = prefixed.emplace_back();
      p.reserve(seg.size() + 1);
      p += ' ';
      p += seg;
      seg = p;
    }
    encode_plain(seg, out, cache);
  };
  if (matchable_.empty()) {
    plain(text);
    return out;
  }
  // Non-special added tokens are cut out of the text first (longest match at each position).
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (const auto& t : matchable_) {
      if (text.compare(i, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    plain(text.substr(start, i - start));
    out.push_back(hit->id);
    i += hit->content.size();
    start = i;
  }
  plain(text.substr(start));
  return out;
}

std::string ByteLevelBpe::decode(const std::vector<int32_t>& ids) const {
  std::string raw;
  for (int32_t id : ids) {
    SQ_CHECK(id >= 0 && id < vocab_size(), source_, ": cannot decode token id ", id, " (vocabulary size ",
             vocab_size(), ")");
    if (!special_[id]) raw += id_bytes_[id];
  }
  return unicode::sanitize_utf8(raw);
}

}  // namespace sq
