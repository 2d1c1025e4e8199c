// Which instruction sets the CPU running this process has (cpuid, and for AVX/AVX-512 whether
// the OS saves their registers), so that __init__.py picks kernels by the machine it runs on,
// never by the one that compiled the library: the library is built without -m flags (each
// kernel enables its own instruction set for its own functions), so it loads on any x86-64.

extern "C" int CodegemmaCpuFeatures() {
  __builtin_cpu_init();
  int features = 0;
  // F16C (widening a float16 KV cache) came before AVX2 in every x86 line, so it rides on this bit.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    features |= 1;
  }
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    features |= 2;
  }
  if (__builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-int8")) features |= 4;
  return features;
}
