// The XLA FFI signature both int8 kernels share: (thread pool; x f32 [M, K], w s8 [N, K],
// scale f32 [N]) -> y f32 [M, N]. Python (kernels/__init__.py) calls either with the same
// arguments, so the two must never drift apart.

#ifndef CODEGEMMA_INT8_MATMUL_SIGNATURE_H_
#define CODEGEMMA_INT8_MATMUL_SIGNATURE_H_

#include "xla/ffi/api/ffi.h"

namespace codegemma {

inline auto Int8MatmulSignature() {
  namespace ffi = xla::ffi;
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::S8>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>();
}

}  // namespace codegemma

#endif  // CODEGEMMA_INT8_MATMUL_SIGNATURE_H_
