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
#include <mutex>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace sq {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  // At most kMaxThreads (a mistyped --threads 100000 would exhaust the machine's processes); a system
  // that refuses a thread part-way gets the started ones joined and an sq::Error.
  static constexpr int kMaxThreads = 1024;
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread_index) for task in [0, n_tasks); the caller's thread takes part as index 0.
  // Tasks are handed out dynamically (an atomic counter), so uneven tasks balance themselves.
  // Returns when all tasks are done; it never waits for a worker that has not woken up yet (the
  // caller runs the unclaimed tasks itself). Exceptions in tasks are rethrown here (the first one;
  // the tasks not yet started are skipped).
  // A call made from inside one of this pool's tasks runs its tasks inline on the calling thread, as
  // thread index 0 (the outer call already occupies every thread). A call from another thread while a
  // call is in flight waits until that call has finished and then runs on every thread: callers on
  // different threads take turns, and no call is silently run on one thread.
  // fn is not copied and never allocated for (FunctionRef).
  void run(size_t n_tasks, FunctionRef<void(size_t task, int thread)> fn);

  // Splits [0, n) into chunks of at least `grain` and calls fn(begin, end, thread) on each.
  void parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t, int)> fn);

  // How long an idle worker spins before sleeping.
  static constexpr int kSpinMicros = 200;

 private:
  using TaskFn = FunctionRef<void(size_t, int)>;
  // The parameters of one call. Two slots alternate by generation parity, so a worker that wakes late
  // for call g reads call g's slot even while the caller fills the next call's.
  struct Slot {
    std::atomic<const TaskFn*> fn{nullptr};  // the caller's TaskFn, alive until the call returns
    std::atomic<size_t> n_tasks{0};
    std::atomic<size_t> done{0};       // tasks finished (run or skipped after a failure)
    std::atomic<bool> failed{false};   // a task threw: skip the rest
  };

  void worker(int index);
  void work(int index);  // claims and runs tasks of the current call until none is left
  void run_batch(size_t n_tasks, TaskFn fn);

  int n_threads_;
  std::vector<std::thread> threads_;

  // (generation << 32) | next unclaimed task. Tasks are claimed by compare-and-swap, which fails once
  // the caller has moved to another generation, so a late worker can never claim a task of a call
  // other than the one whose slot it read. The caller returns when its slot's `done` reaches n_tasks,
  // never waiting for workers that have not woken up yet.
  std::atomic<uint64_t> counter_{0};
  Slot slots_[2];
  uint32_t generation_ = 0;  // the caller's (guarded by call_mu_)
  std::mutex call_mu_;  // held by the call in flight: callers on other threads wait for it
  std::atomic<bool> stop_{false};

  std::mutex mu_;  // only for sleeping: cv_start_ (workers) and cv_done_ (the caller)
  std::condition_variable cv_start_, cv_done_;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace sq
