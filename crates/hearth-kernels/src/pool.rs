//! A persistent thread pool for fork–join kernels.
//!
//! A decode step calls [`ThreadPool::run`] a few hundred times (every matmul), so a call must
//! cost far less than the work it splits. The design:
//!
//! - **Persistent workers.** `n - 1` threads live as long as the pool; the caller is thread 0
//!   and does its share of every job, so no thread sits idle waiting for the others to start.
//! - **No allocation per call.** A job is published as a type-erased pointer to the caller's
//!   closure plus a generation counter. Workers compare the generation with the one they last
//!   served.
//! - **Spin, then sleep.** Waiting threads spin on the counter (with `spin_loop`, yielding the
//!   CPU between checks after a few µs in case the awaited thread shares this CPU) for a short
//!   while, because the next job usually follows within microseconds; after that they sleep on
//!   a `Condvar` so an idle pool costs no CPU. The publisher only takes the mutex and notifies
//!   when some thread actually sleeps (a `sleepers` count checked with sequentially consistent
//!   ordering on both sides, so a wake-up cannot be lost).
//! - **Scoped jobs.** The closure may borrow the caller's stack: `run` does not return, even
//!   when a job panics, until every worker has finished with it.
//! - **Panics propagate.** A panic on any thread is caught, the other threads finish, and
//!   `run` re-raises the first payload on the caller.
//!
//! `run` is not re-entrant: a job that calls `run` on its own pool (or two threads calling
//! `run` at once) gets the closure executed serially on the calling thread instead of
//! deadlocking.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before sleeping. Matmuls in a decode step are a
/// few to a few tens of µs apart; a futex wake-up costs several µs, so spinning across the
/// usual gap pays, while an idle pool still goes quiet almost at once.
const WORKER_SPIN: Duration = Duration::from_micros(50);
/// How long the caller spins waiting for the workers to finish before sleeping. Work is split
/// evenly, so the others normally finish within microseconds of the caller.
const CALLER_SPIN: Duration = Duration::from_micros(200);
/// After this long, waiting threads yield the CPU between checks instead of only spinning:
/// on an oversubscribed machine the thread being waited for may share this CPU, and a pure
/// spin would keep it off until the time slice ends.
const PURE_SPIN: Duration = Duration::from_micros(5);

/// Waits until `done()` holds or `limit` has passed (then returns false): a pure spin for
/// [`PURE_SPIN`], then spinning with `yield_now` between checks.
#[inline]
fn spin_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if done() {
            return true;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            let waited = start.elapsed();
            if waited > limit {
                return false;
            }
            if waited > PURE_SPIN {
                std::thread::yield_now();
                continue;
            }
        }
        std::hint::spin_loop();
    }
}

/// The job as the workers see it: the caller's closure with its lifetime erased.
type Job = *const (dyn Fn(usize, usize) + Sync + 'static);

struct Shared {
    n_threads: usize,
    /// Bumped once per job (and once at shutdown). Workers run a job when it differs from
    /// the value they last saw.
    generation: AtomicUsize,
    /// The current job; written by the caller before bumping `generation` (Release), read by
    /// workers after seeing the new generation (Acquire).
    job: UnsafeCell<Option<Job>>,
    /// Workers that have not yet finished the current job.
    remaining: AtomicUsize,
    shutdown: AtomicBool,
    /// Workers sleeping (or about to) on `wake`.
    sleepers: AtomicUsize,
    wake_lock: Mutex<()>,
    wake: Condvar,
    /// Whether the caller sleeps (or is about to) on `done`.
    caller_sleeping: AtomicBool,
    done_lock: Mutex<()>,
    done: Condvar,
    /// First panic payload of the current job from a worker.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` is the only non-Sync field. It is written only by the thread holding
// `run_lock` while no worker reads it (all workers finished the previous job: `remaining`
// was 0), and read by workers only between seeing a new `generation` (Acquire, pairing with
// the writer's Release) and decrementing `remaining`. The closure it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: the raw `Job` pointer is only dereferenced under the protocol above; the pointee is
// `Sync`, so using it from other threads is sound.
unsafe impl Send for Shared {}

/// A fixed set of worker threads that run one job at a time.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises `run`; `try_lock` failure means re-entrant or concurrent use.
    run_lock: Mutex<()>,
}

// A panicking job leaves no broken state behind: `run` waits for every thread, clears the job
// and resets the counters at the next call, so the pool may be used across `catch_unwind`.
impl std::panic::RefUnwindSafe for ThreadPool {}
impl std::panic::UnwindSafe for ThreadPool {}

impl ThreadPool {
    /// A pool of `n_threads` threads, the caller counting as one (`0` is treated as `1`).
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            generation: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            remaining: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            caller_sleeping: AtomicBool::new(false),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            panic: Mutex::new(None),
        });
        let workers = (1..n_threads)
            .map(|idx| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("hearth-worker-{idx}"))
                    .spawn(move || worker_loop(&shared, idx))
                    .unwrap_or_else(|e| panic!("cannot start thread pool worker {idx}: {e}"))
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    /// A pool with one thread per physical core.
    pub fn with_physical_cores() -> ThreadPool {
        ThreadPool::new(physical_cores())
    }

    /// Number of threads, the caller included.
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Runs `f(thread_index, n_threads)` once on every thread (the caller is thread 0) and
    /// returns when all calls have returned. If any call panics, the first panic is re-raised
    /// here after all threads are done.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.shared.n_threads;
        if n == 1 {
            f(0, 1);
            return;
        }
        let _guard = match self.run_lock.try_lock() {
            Ok(g) => g,
            // Re-entrant (a job calling `run`) or concurrent use: the workers are busy, so do
            // the whole job here. Results are the same; only the parallelism is lost.
            Err(TryLockError::WouldBlock) => {
                for i in 0..n {
                    f(i, n);
                }
                return;
            }
            // A poisoned lock only means an earlier `run` unwound; the pool state is reset
            // at the start of every job, so carry on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let s = &*self.shared;
        let job: &(dyn Fn(usize, usize) + Sync) = &f;
        // SAFETY: erasing the lifetime is sound because this function does not return (or
        // unwind) before every worker has decremented `remaining`, after which no worker
        // touches the pointer again; `f` outlives this whole function.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(job) };
        // SAFETY: we hold `run_lock`, and the previous job finished (`remaining` reached 0
        // before the previous `run` returned), so no worker reads `job` now.
        unsafe { *s.job.get() = Some(job) };
        s.remaining.store(n - 1, Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after any sleeper's check of `generation`.
            drop(lock(&s.wake_lock));
            s.wake.notify_all();
        }

        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        self.wait_workers();
        // SAFETY: all workers are done with this job; clear the pointer before `f` dies.
        unsafe { *s.job.get() = None };

        let theirs = lock(&s.panic).take();
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }

    fn wait_workers(&self) {
        let s = &*self.shared;
        if spin_until(CALLER_SPIN, || s.remaining.load(Ordering::Acquire) == 0) {
            return;
        }
        let mut g = lock(&s.done_lock);
        s.caller_sleeping.store(true, Ordering::SeqCst);
        while s.remaining.load(Ordering::SeqCst) != 0 {
            g = s.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        s.caller_sleeping.store(false, Ordering::SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        drop(lock(&s.wake_lock));
        s.wake.notify_all();
        for w in self.workers.drain(..) {
            // A worker never panics outside a job (jobs are caught), so there is nothing to
            // report here.
            let _ = w.join();
        }
    }
}

/// Locks ignoring poison: the data under these mutexes is `()` or an `Option` that is valid
/// in every state.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker_loop(s: &Shared, idx: usize) {
    let mut seen = 0usize;
    loop {
        seen = wait_generation(s, seen);
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: a new generation was observed with Acquire, so the caller's write of `job`
        // is visible, and the caller keeps the closure alive until `remaining` reaches 0.
        if let Some(job) = unsafe { *s.job.get() } {
            // SAFETY: see above; the pointee is `Sync` and alive.
            let f = unsafe { &*job };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(idx, s.n_threads))) {
                lock(&s.panic).get_or_insert(p);
            }
        }
        if s.remaining.fetch_sub(1, Ordering::SeqCst) == 1
            && s.caller_sleeping.load(Ordering::SeqCst)
        {
            drop(lock(&s.done_lock));
            s.done.notify_one();
        }
    }
}

/// Spins, then sleeps, until `generation` differs from `seen`; returns the new value.
fn wait_generation(s: &Shared, seen: usize) -> usize {
    if spin_until(WORKER_SPIN, || s.generation.load(Ordering::Acquire) != seen) {
        return s.generation.load(Ordering::Acquire);
    }
    let mut guard = lock(&s.wake_lock);
    s.sleepers.fetch_add(1, Ordering::SeqCst);
    let g = loop {
        let g = s.generation.load(Ordering::SeqCst);
        if g != seen {
            break g;
        }
        guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
    };
    s.sleepers.fetch_sub(1, Ordering::SeqCst);
    g
}

/// Number of physical CPU cores (the default thread count: hyper-threads share a core's
/// vector units, so a second thread per core rarely speeds up matmuls).
///
/// On Linux this counts distinct (`physical id`, `core id`) pairs in `/proc/cpuinfo`;
/// elsewhere, or if that file says nothing useful, it is
/// [`std::thread::available_parallelism`].
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match std::fs::read_to_string("/proc/cpuinfo") {
        // Never more than the logical CPUs this process may use (cgroups, taskset).
        Ok(text) => count_physical_cores(&text).map_or(logical, |p| p.min(logical)),
        Err(_) => logical,
    }
}

/// Distinct (`physical id`, `core id`) pairs in `/proc/cpuinfo` text, `None` if there are none.
pub fn count_physical_cores(cpuinfo: &str) -> Option<usize> {
    let mut pairs = std::collections::BTreeSet::new();
    for proc_block in cpuinfo.split("\n\n") {
        let field = |name: &str| {
            proc_block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        if let Some(core) = field("core id") {
            pairs.insert((field("physical id").unwrap_or_default(), core));
        }
    }
    (!pairs.is_empty()).then_some(pairs.len())
}
