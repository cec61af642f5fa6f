#include "core/threadpool.h"

#include <algorithm>
#include <chrono>

namespace sq {

namespace {

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
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker(i); });
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
    size_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n_tasks_) break;
    try {
      (*fn_)(t, index);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_tasks_, std::memory_order_relaxed);  // skip the tasks not yet started
    }
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  auto ready = [&] {
    return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
  };
  for (;;) {
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    // The caller cannot start another call before this worker has decremented active_ below, so
    // generation_ moved by exactly one.
    seen = generation_.load(std::memory_order_acquire);
    work(index);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check under mu_
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::run_serial(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
  for (size_t t = 0; t < n_tasks; t++) fn(t, 0);
}

void ThreadPool::run(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
  if (n_tasks == 0) return;
  if (n_threads_ == 1 || n_tasks == 1) return run_serial(n_tasks, fn);
  if (busy_.exchange(true, std::memory_order_acquire)) return run_serial(n_tasks, fn);  // re-entrant

  fn_ = &fn;
  n_tasks_ = n_tasks;
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  active_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Under mu_ so a worker between its predicate check and its wait cannot miss the bump.
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_start_.notify_all();
  work(0);

  auto all_done = [&] { return active_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, all_done);
  }
  fn_ = nullptr;
  std::exception_ptr err = std::move(error_);
  error_ = nullptr;
  busy_.store(false, std::memory_order_release);
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(size_t n, size_t grain,
                              const std::function<void(size_t, size_t, int)>& fn) {
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
