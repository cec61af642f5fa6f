#include "formats/linear.h"

namespace sq {

std::vector<float> LinearWeight::dequantize() const {
  std::vector<float> w(size_t(rows_) * size_t(cols_));
  for (int64_t r = 0; r < rows_; r++) dequant_row(r, w.data() + size_t(r) * size_t(cols_));
  return w;
}

}  // namespace sq
