// A persistent pool of worker threads. Kernels split work over it with parallel_for; threads are
// created once (per pool) and wait between calls, so a matvec per layer per token costs a wake-up,
// not a thread creation. The pool is passed explicitly (no global pool).
//
// Waiting: after a call, workers spin for a short while (kSpinMicros) watching for the next call
// before parking on a condition variable. Decode issues hundreds of matvecs per token back to back,
// so the next call usually arrives within the spin and starts in well under a microsecond instead of
// paying a futex wake-up (tens of microseconds on a busy machine). The spin is bounded so an idle
// pool costs no CPU.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sq {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread_index) for task in [0, n_tasks); the caller's thread takes part as index 0.
  // Tasks are handed out dynamically (an atomic counter), so uneven tasks balance themselves.
  // Returns when all tasks are done. Exceptions in tasks are rethrown here (the first one; the tasks
  // not yet started are skipped).
  // A call made while the pool is already running one (from inside a task, or from another thread)
  // runs its tasks serially on the calling thread, as thread index 0, instead of deadlocking.
  void run(size_t n_tasks, const std::function<void(size_t task, int thread)>& fn);

  // Splits [0, n) into chunks of at least `grain` and calls fn(begin, end, thread) on each.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t, int)>& fn);

  // How long an idle worker spins before sleeping.
  static constexpr int kSpinMicros = 200;

 private:
  void worker(int index);
  void work(int index);
  void run_serial(size_t n_tasks, const std::function<void(size_t, int)>& fn);

  int n_threads_;
  std::vector<std::thread> threads_;

  // Start of a call: the caller fills fn_/n_tasks_/next_, then bumps generation_ (release) under mu_
  // and notifies; workers see the new generation by spinning on it or from cv_start_.
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};  // a call is in flight (guards against re-entrant calls)
  // End of a call: each worker decrements active_ after its last task; the caller spins, then
  // sleeps on cv_done_, until it reaches 0.
  std::atomic<int> active_{0};

  const std::function<void(size_t, int)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;
  std::mutex error_mu_;
};

}  // namespace sq
