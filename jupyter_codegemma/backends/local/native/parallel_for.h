// Runs fn(0) … fn(units - 1) on XLA's intra-op thread pool and the calling thread.
//
// The calling thread claims units too and never waits for a task that has not started, so a
// busy pool only costs parallelism, never a deadlock. Tasks that start after every unit is
// claimed find nothing to do; they share the state (not the caller's stack), so they may
// outlive the call safely.

#ifndef CODEGEMMA_PARALLEL_FOR_H_
#define CODEGEMMA_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace codegemma {

inline void ParallelFor(xla::ffi::ThreadPool& pool, int64_t units, std::function<void(int64_t)> fn) {
  struct State {
    std::function<void(int64_t)> fn;
    int64_t units;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    void Drain() {
      for (int64_t u; (u = next.fetch_add(1)) < units;) {
        fn(u);
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };
  auto state = std::make_shared<State>();
  state->fn = std::move(fn);
  state->units = units;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), units - 1);
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([state] { state->Drain(); });
  state->Drain();
  // Every unit is claimed; wait for those still running on other threads.
  while (state->done.load(std::memory_order_acquire) < units) std::this_thread::yield();
}

// Runs fn(begin, end) over [0, n) split into one contiguous range per pool thread (the calling
// thread takes the first), each at least min_size long. For products bound by memory: each core
// then reads its weight rows as one sequential stream, which the hardware prefetcher follows to
// the end; small chunks handed out in turn interleave the cores' streams and start a new one at
// every chunk. (A late thread's range is still taken by the caller, as in ParallelFor.)
inline void ParallelRanges(xla::ffi::ThreadPool& pool, int64_t n, int64_t min_size,
                           const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t units = std::clamp<int64_t>(n / std::max<int64_t>(1, min_size), 1, threads);
  const int64_t size = (n + units - 1) / units;
  ParallelFor(pool, units, [&](int64_t u) { fn(u * size, std::min(n, (u + 1) * size)); });
}

}  // namespace codegemma

#endif  // CODEGEMMA_PARALLEL_FOR_H_
