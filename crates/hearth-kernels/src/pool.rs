//! A persistent thread pool for fork–join kernels, built to keep going on a busy machine.
//!
//! A decode step calls the pool a few hundred times (every matmul), so a call must cost far
//! less than the work it splits. The design:
//!
//! - **Persistent workers.** `n - 1` threads live as long as the pool; the caller is thread 0
//!   and works on every job too.
//! - **Chunks that threads claim.** A job is `n_chunks` independent pieces of work. Threads
//!   take the next unclaimed chunk from one atomic counter until none is left, so a thread the
//!   operating system has descheduled (or one that has not even woken up yet) holds up nothing
//!   but a chunk it already started: its share is done by whichever threads are running,
//!   the caller included. With static halves, every job waited for the slowest thread, and on a
//!   machine running other work that made each matmul wait for a whole OS time slice. The caller
//!   only ever waits for chunks already claimed; it never waits while a chunk sits unclaimed.
//!   Which thread runs a chunk never changes what the chunk computes (drivers split output
//!   rows, never a reduction), so results do not depend on it.
//! - **No allocation per call.** A job is published as a type-erased pointer to the caller's
//!   closure plus one 64-bit state word (job sequence number, chunk count, next chunk), which
//!   threads claim chunks from with a compare-and-swap. A thread that wakes up late sees a new
//!   sequence number or no chunk left and claims nothing, so it never touches a finished job.
//! - **Spin, then sleep.** Waiting threads spin (with `spin_loop`, yielding the CPU between
//!   checks after a few µs in case the awaited thread shares this CPU) for a short while,
//!   because the next job usually follows within microseconds; after that they sleep on a
//!   `Condvar` so an idle pool costs no CPU. The publisher only takes the mutex and notifies
//!   when some thread actually sleeps (a `sleepers` count checked with sequentially consistent
//!   ordering on both sides, so a wake-up cannot be lost).
//! - **Scoped jobs.** The closure may borrow the caller's stack: a call does not return, even
//!   when a chunk panics, until every chunk is finished, and no thread claims a chunk after
//!   that.
//! - **Panics propagate.** A panic in any chunk is caught, the other chunks still run, and the
//!   call re-raises the first payload on the caller.
//!
//! The pool is not re-entrant: a job that calls it again (or two threads calling it at once)
//! gets the closure run serially on the calling thread instead of deadlocking.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before sleeping. Matmuls in a decode step are a
/// few to a few tens of µs apart; a futex wake-up costs several µs, so spinning across the
/// usual gap pays, while an idle pool still goes quiet almost at once.
const WORKER_SPIN: Duration = Duration::from_micros(50);
/// How long the caller spins waiting for claimed chunks to finish before sleeping. Chunks are
/// small, so a running thread finishes its last one within microseconds of the caller.
const CALLER_SPIN: Duration = Duration::from_micros(200);
/// After this long, waiting threads yield the CPU between checks instead of only spinning:
/// on an oversubscribed machine the thread being waited for may share this CPU, and a pure
/// spin would keep it off until the time slice ends.
const PURE_SPIN: Duration = Duration::from_micros(5);

/// The most chunks one job may have (the state word holds the count in 16 bits).
pub const MAX_CHUNKS: usize = 0xffff;

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

/// The job as the workers see it: the caller's closure, `f(thread, chunk)`, with its lifetime
/// erased.
type Job = *const (dyn Fn(usize, usize) + Sync + 'static);

/// The state word: job sequence number (high 32 bits), chunk count (16 bits), next unclaimed
/// chunk (low 16 bits). One word, so a claim (a compare-and-swap) can only succeed on the job
/// whose count it checked against.
#[derive(Clone, Copy)]
struct State(u64);

impl State {
    fn new(seq: u32, n_chunks: usize) -> State {
        State((u64::from(seq) << 32) | ((n_chunks as u64) << 16))
    }
    fn seq(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn n_chunks(self) -> usize {
        ((self.0 >> 16) & 0xffff) as usize
    }
    fn next(self) -> usize {
        (self.0 & 0xffff) as usize
    }
}

struct Shared {
    n_threads: usize,
    /// The current job's [`State`]. Threads wait for its sequence number to change and claim
    /// chunks by incrementing its low bits.
    state: AtomicU64,
    /// The current job; written by the caller before publishing a new state (Release), read
    /// by a thread only after it claimed one of the job's chunks (Acquire).
    job: UnsafeCell<Option<Job>>,
    /// Chunks of the current job finished (by any thread).
    finished: AtomicUsize,
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
// `run_lock`, while every chunk of the previous job is finished (`finished` equals its chunk
// count, so no thread holds a claim and none can claim one), and read by a thread only between
// claiming a chunk of the job (Acquire, pairing with the writer's Release publication) and
// reporting that chunk finished. The closure it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: the raw `Job` pointer is only dereferenced under the protocol above; the pointee is
// `Sync`, so using it from other threads is sound.
unsafe impl Send for Shared {}

impl Shared {
    /// Claims the next chunk of job `seq`, or `None` when that job has none left (or is no
    /// longer the current job).
    fn claim(&self, seq: u32) -> Option<usize> {
        let mut cur = State(self.state.load(Ordering::Acquire));
        loop {
            if cur.seq() != seq || cur.next() >= cur.n_chunks() {
                return None;
            }
            match self.state.compare_exchange_weak(
                cur.0,
                cur.0 + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(cur.next()),
                Err(now) => cur = State(now),
            }
        }
    }

    /// Runs chunks of job `seq` as thread `thread` until none is left; a panic's payload is
    /// kept for the caller (the first one wins) and the chunk still counts as finished.
    fn work(&self, seq: u32, thread: usize, n_chunks: usize) {
        while let Some(chunk) = self.claim(seq) {
            // SAFETY: this thread holds an unfinished chunk of job `seq`, so the caller has
            // published `job` for it (made visible by the claim's Acquire) and keeps both the
            // pointer and the closure alive until `finished` reaches the chunk count.
            let f = unsafe { &*(*self.job.get()).expect("a published job") };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(thread, chunk))) {
                lock(&self.panic).get_or_insert(p);
            }
            if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == n_chunks
                && thread != 0
                && self.caller_sleeping.load(Ordering::SeqCst)
            {
                drop(lock(&self.done_lock));
                self.done.notify_one();
            }
        }
    }
}

/// A fixed set of worker threads that run one job at a time.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises jobs; `try_lock` failure means re-entrant or concurrent use.
    run_lock: Mutex<()>,
}

// A panicking job leaves no broken state behind: the call waits for every chunk, clears the
// job and the next call resets the counters, so the pool may be used across `catch_unwind`.
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
            state: AtomicU64::new(State::new(0, 0).0),
            job: UnsafeCell::new(None),
            finished: AtomicUsize::new(0),
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

    /// Runs `f(i, n_threads)` once for every `i` in `0..n_threads` and returns when all calls
    /// have returned: [`ThreadPool::run_chunks`] with one chunk per thread. `i` names a piece
    /// of the work, not the thread that runs it: a running thread also takes the pieces of a
    /// thread that is descheduled, so one thread may run several, one after another: the calls
    /// must never wait for each other. If any call panics, the first panic is re-raised here
    /// after all calls are done.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.shared.n_threads;
        self.run_chunks(n, |_, i| f(i, n));
    }

    /// Runs `f(thread, chunk)` once for every `chunk` in `0..n_chunks`, on whichever threads
    /// claim them, and returns when all calls have returned. `thread` (in `0..n_threads`, the
    /// caller is 0) is the thread running the call; no two calls run at the same time with the
    /// same `thread`, so it can index per-thread scratch space. A chunk must never wait for
    /// another chunk to start (it may not be claimed until this one ends). If any call panics,
    /// the first panic is re-raised here after all calls are done.
    ///
    /// Split the work into a few chunks per thread: enough that the running threads can take
    /// over a descheduled one's share in small pieces, few enough that claiming (one atomic
    /// operation per chunk) stays negligible.
    ///
    /// # Panics
    /// If `n_chunks` is over [`MAX_CHUNKS`].
    pub fn run_chunks<F: Fn(usize, usize) + Sync>(&self, n_chunks: usize, f: F) {
        assert!(
            n_chunks <= MAX_CHUNKS,
            "ThreadPool::run_chunks: {n_chunks} chunks, at most {MAX_CHUNKS}"
        );
        if n_chunks == 0 {
            return;
        }
        if self.shared.n_threads == 1 || n_chunks == 1 {
            return (0..n_chunks).for_each(|c| f(0, c));
        }
        let _guard = match self.run_lock.try_lock() {
            Ok(g) => g,
            // Re-entrant (a job calling the pool) or concurrent use: the workers are busy, so
            // do the whole job here. Results are the same; only the parallelism is lost.
            Err(TryLockError::WouldBlock) => return (0..n_chunks).for_each(|c| f(0, c)),
            // A poisoned lock only means an earlier job unwound; the pool state is reset at
            // the start of every job, so carry on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let s = &*self.shared;
        let job: &(dyn Fn(usize, usize) + Sync) = &f;
        // SAFETY: erasing the lifetime is sound because this function does not return (or
        // unwind) before every chunk is finished, after which no thread can claim a chunk of
        // this job and so none dereferences the pointer again; `f` outlives this function.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(job) };
        // SAFETY: we hold `run_lock` and every chunk of the previous job finished before its
        // call returned, so no thread holds a claim and none reads `job` now.
        unsafe { *s.job.get() = Some(job) };
        s.finished.store(0, Ordering::Relaxed);
        let seq = State(s.state.load(Ordering::Relaxed)).seq().wrapping_add(1);
        s.state.store(State::new(seq, n_chunks).0, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after any sleeper's check of `state`.
            drop(lock(&s.wake_lock));
            s.wake.notify_all();
        }

        s.work(seq, 0, n_chunks);
        self.wait_chunks(n_chunks);
        // SAFETY: every chunk is finished; clear the pointer before `f` dies.
        unsafe { *s.job.get() = None };

        if let Some(p) = lock(&s.panic).take() {
            resume_unwind(p);
        }
    }

    /// Waits until all `n_chunks` chunks of the current job are finished. Called once the
    /// caller found no chunk left to claim, so every unfinished chunk is one a thread is
    /// running.
    fn wait_chunks(&self, n_chunks: usize) {
        let s = &*self.shared;
        if spin_until(CALLER_SPIN, || {
            s.finished.load(Ordering::Acquire) == n_chunks
        }) {
            return;
        }
        let mut g = lock(&s.done_lock);
        s.caller_sleeping.store(true, Ordering::SeqCst);
        while s.finished.load(Ordering::SeqCst) != n_chunks {
            g = s.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        s.caller_sleeping.store(false, Ordering::SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        let seq = State(s.state.load(Ordering::Relaxed)).seq().wrapping_add(1);
        s.state.store(State::new(seq, 0).0, Ordering::SeqCst);
        drop(lock(&s.wake_lock));
        s.wake.notify_all();
        for w in self.workers.drain(..) {
            // A worker never panics outside a job (chunks are caught), so there is nothing to
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
    let mut seen = 0u32;
    loop {
        let state = wait_job(s, seen);
        seen = state.seq();
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        s.work(seen, idx, state.n_chunks());
    }
}

/// Spins, then sleeps, until the state's sequence number differs from `seen`; returns the new
/// state. A worker that was descheduled across several jobs joins the current one.
fn wait_job(s: &Shared, seen: u32) -> State {
    let current = || State(s.state.load(Ordering::Acquire));
    if spin_until(WORKER_SPIN, || current().seq() != seen) {
        return current();
    }
    let mut guard = lock(&s.wake_lock);
    s.sleepers.fetch_add(1, Ordering::SeqCst);
    let st = loop {
        let st = State(s.state.load(Ordering::SeqCst));
        if st.seq() != seen {
            break st;
        }
        guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
    };
    s.sleepers.fetch_sub(1, Ordering::SeqCst);
    st
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
