#include "core/threadpool.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#include "core/error.h"

namespace sq {

namespace {

// The pool whose task this thread is running (workers: their pool, always; a caller: during its call).
thread_local const ThreadPool* tl_running = nullptr;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpinMicros have passed; returns done()'s last value. The clock is read only
// every 64 pauses (a pause is tens of cycles), so spinning does not hammer the clock.
template <class Pred>
bool spin_until(Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
  SQ_CHECK(n_threads <= kMaxThreads, "thread count ", n_threads, " is more than squeeze runs (--threads at most ", kMaxThreads,
           "; this machine has ", std::thread::hardware_concurrency(), " cores)");
  n_threads_ = n_threads;
  try {
    for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker(i); });
  } catch (const std::system_error& e) {
    // The destructor does not run for a half-built pool: stop and join the threads already started.
    const size_t started = threads_.size();
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_release);
    }
    cv_start_.notify_all();
    for (auto& t : threads_) t.join();
    fail("cannot start ", n_threads_, " threads (", started + 1, " running when the system refused another: ",
         e.what(), "); use fewer --threads");
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_start_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::work(int index) {
  for (;;) {
    uint64_t v = counter_.load(std::memory_order_acquire);
    Slot& s = slots_[(v >> 32) & 1];
    const size_t n = s.n_tasks.load(std::memory_order_acquire);
    const size_t task = size_t(v & 0xffffffffu);
    if (task >= n) return;
    // Succeeds only if the counter still reads v: the call that owns `s` is still in flight (it cannot
    // finish before this task is done), so `n` and `fn` below are that call's.
    if (!counter_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_relaxed))
      continue;
    if (!s.failed.load(std::memory_order_relaxed)) {
      try {
        (*s.fn.load(std::memory_order_acquire))(task, index);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
        s.failed.store(true, std::memory_order_relaxed);
      }
    }
    if (s.done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check under mu_
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::worker(int index) {
  tl_running = this;
  uint32_t seen = 0;
  auto ready = [&] {
    return stop_.load(std::memory_order_acquire) ||
           uint32_t(counter_.load(std::memory_order_acquire) >> 32) != seen;
  };
  for (;;) {
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = uint32_t(counter_.load(std::memory_order_acquire) >> 32);
    work(index);
  }
}

void ThreadPool::run_batch(size_t n_tasks, TaskFn fn) {
  generation_++;
  Slot& s = slots_[generation_ & 1];
  s.fn.store(&fn, std::memory_order_relaxed);
  s.n_tasks.store(n_tasks, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  s.failed.store(false, std::memory_order_relaxed);
  error_ = nullptr;
  {
    // Under mu_ so a worker between its predicate check and its wait cannot miss the new generation.
    std::lock_guard<std::mutex> lk(mu_);
    counter_.store(uint64_t(generation_) << 32, std::memory_order_release);
  }
  cv_start_.notify_all();
  work(0);

  auto all_done = [&] { return s.done.load(std::memory_order_acquire) == n_tasks; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, all_done);
  }
}

void ThreadPool::run(size_t n_tasks, TaskFn fn) {
  if (n_tasks == 0) return;
  if (n_threads_ == 1 || n_tasks == 1 || tl_running == this) {  // one thread, one task, or nested in a task
    for (size_t t = 0; t < n_tasks; t++) fn(t, 0);
    return;
  }
  std::lock_guard<std::mutex> turn(call_mu_);  // a call from another thread finishes first
  const ThreadPool* outer = tl_running;        // a task of another pool may call this one
  tl_running = this;
  constexpr size_t kMaxBatch = size_t(1) << 31;  // task indices share a 64-bit word with the generation
  std::exception_ptr err;
  for (size_t base = 0; base < n_tasks && !err; base += kMaxBatch) {
    const size_t n = std::min(kMaxBatch, n_tasks - base);
    if (base == 0 && n == n_tasks) {
      run_batch(n, fn);
    } else {
      auto shifted = [&](size_t t, int thread) { fn(base + t, thread); };
      run_batch(n, shifted);
    }
    err = std::move(error_);
    error_ = nullptr;
  }
  tl_running = outer;
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t, int)> fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  // About 4 chunks per thread balances uneven chunks without much scheduling overhead.
  size_t chunk = std::max(grain, (n + 4 * n_threads_ - 1) / (4 * n_threads_));
  size_t n_chunks = (n + chunk - 1) / chunk;
  run(n_chunks, [&](size_t c, int thread) {
    size_t b = c * chunk, e = std::min(n, b + chunk);
    fn(b, e, thread);
  });
}

}  // namespace sq
