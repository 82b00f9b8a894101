// Runs CUDA kernel source on the CPU, so tests execute the kernels themselves (not only a CPU twin)
// on machines without a GPU. Include this instead of the CUDA headers, then include the kernel's
// .cuh and call emu::launch(grid, block, kernel, args...).
//
// The model: blocks run one after another; the threads of a block are real std::threads, so
// __syncthreads() is a std::barrier across them and `__shared__` (mapped to `static`) is one array
// per kernel instantiation, shared by the block's threads and reused by the next block, as shared
// memory is. Kernels written for this path synchronise only through __syncthreads and the
// project's block primitives (kernels/block_scan.cuh), never warp shuffles or inline PTX, so the
// emulated and the device runs execute the same statements. Data races the barrier does not order
// show up as wrong results or under ThreadSanitizer, as they would on a GPU.
// Limits: every thread of a block must reach each __syncthreads (as CUDA requires); grid and block
// sizes are meant for tests (a few thousand threads in all).
#pragma once

#define LONGSEQ_CUDA_EMULATION 1  // kernels/kernel_namespace.h: emulated kernels get their own symbols

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <functional>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#define __global__ inline  // several test files may include the same kernel source
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace longseq::emu {

inline thread_local dim3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;
inline std::barrier<>* block_barrier = nullptr;

// Worker threads kept for the whole process and handed each launch (creating a thread per block
// thread per launch dominated the tests' time). run(n, f) calls f(0..n-1) on n workers at once.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }
  void run(unsigned n, const std::function<void(unsigned)>& f) {
    const std::lock_guard one_launch(launch_mutex_);
    std::unique_lock lock(mutex_);
    while (workers_.size() < n) {
      const unsigned id = unsigned(workers_.size());
      workers_.emplace_back([this, id] { work(id); });
    }
    job_ = &f;
    active_ = n;
    remaining_ = n;
    ++generation_;
    start_.notify_all();
    done_.wait(lock, [&] { return remaining_ == 0; });
    job_ = nullptr;
  }
  ~ThreadPool() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    start_.notify_all();
    for (auto& w : workers_) w.join();
  }

 private:
  void work(unsigned id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(unsigned)>* f = nullptr;
      {
        std::unique_lock lock(mutex_);
        start_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (id >= active_) continue;
        f = job_;
      }
      (*f)(id);
      const std::lock_guard lock(mutex_);
      if (--remaining_ == 0) done_.notify_one();
    }
  }
  std::mutex launch_mutex_, mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned active_ = 0, remaining_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// Runs kernel(args...) over grid x block threads; rethrows the first exception a thread raised.
// The block's threads are pool workers that walk the blocks in turn (a barrier separates the
// blocks, so shared memory is handed from one block to the next as on a device).
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, const Args&... args) {
  grid_dim = grid;
  block_dim = block;
  const unsigned threads = block.x * block.y * block.z;
  std::exception_ptr error;
  std::mutex error_mutex;
  std::atomic<bool> failed{false};
  std::barrier<> barrier(threads);
  block_barrier = &barrier;
  const std::function<void(unsigned)> body = [&](unsigned t) {
    thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          block_idx = dim3(bx, by, bz);
          try {
            kernel(args...);
          } catch (...) {
            {
              const std::lock_guard lock(error_mutex);
              if (!error) error = std::current_exception();
            }
            failed = true;
            barrier.arrive_and_drop();  // the others' later barriers stop waiting for this thread
            return;
          }
          barrier.arrive_and_wait();  // the block ends for all its threads before the next begins
          if (failed) return;
        }
  };
  ThreadPool::instance().run(threads, body);
  block_barrier = nullptr;
  if (error) std::rethrow_exception(error);
}

// The `launch` argument of the kernels' .cuh drivers, on the CPU (kernels/device_util.h has the
// device's launch_on_device).
inline constexpr auto launcher = [](dim3 grid, dim3 block, auto kernel, const auto& params) { launch(grid, block, kernel, params); };

}  // namespace longseq::emu

#define threadIdx (::longseq::emu::thread_idx)
#define blockIdx (::longseq::emu::block_idx)
#define blockDim (::longseq::emu::block_dim)
#define gridDim (::longseq::emu::grid_dim)

inline void __syncthreads() { ::longseq::emu::block_barrier->arrive_and_wait(); }
