// The XLA FFI signature every int8 kernel shares: (thread pool; x f32 [M, K], w s8 [N, K] or
// [G, N, K], scale f32 [N] or [G, N], layer s32 []) -> y f32 [M, N]. Python (native/__init__.py)
// calls each with the same arguments, so they must never drift apart.
//
// A stacked w holds one matrix per layer of a model whose layers run in a loop (model.py): the
// loop passes the whole stack and its index, and the kernel reads matrix `layer` where it lies.
// Passing w[layer] instead would make XLA copy that matrix out of the stack on every call, which
// for decoding doubles the memory traffic the kernels are bound by.

#ifndef CODEGEMMA_INT8_MATMUL_SIGNATURE_H_
#define CODEGEMMA_INT8_MATMUL_SIGNATURE_H_

#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace codegemma {

inline auto Int8MatmulSignature() {
  namespace ffi = xla::ffi;
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::S8>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::S32>>()
      .Ret<ffi::Buffer<ffi::F32>>();
}

// One weight matrix [n, k] and its row scales.
struct LayerWeights {
  const int8_t* w = nullptr;
  const float* scale = nullptr;
  int64_t n = 0, k = 0;
};

// The matrix a call multiplies: w itself, or matrix `layer` of a stack. False when the shapes do
// not fit each other or the layer is outside the stack.
inline bool SelectLayer(xla::ffi::Buffer<xla::ffi::S8> w, xla::ffi::Buffer<xla::ffi::F32> scale,
                        xla::ffi::Buffer<xla::ffi::S32> layer, LayerWeights* out) {
  const auto wd = w.dimensions();
  if (layer.element_count() != 1 || (wd.size() != 2 && wd.size() != 3)) return false;
  const int64_t stack = wd.size() == 3 ? wd[0] : 1;
  const int64_t index = wd.size() == 3 ? layer.typed_data()[0] : 0;
  out->n = wd[wd.size() - 2];
  out->k = wd[wd.size() - 1];
  if (index < 0 || index >= stack || scale.element_count() != static_cast<size_t>(stack * out->n)) return false;
  out->w = w.typed_data() + index * out->n * out->k;
  out->scale = scale.typed_data() + index * out->n;
  return true;
}

}  // namespace codegemma

#endif  // CODEGEMMA_INT8_MATMUL_SIGNATURE_H_
