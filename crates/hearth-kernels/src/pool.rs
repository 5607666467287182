//! Persistent thread pool (being written).

/// A fixed set of worker threads that run one job at a time.
pub struct ThreadPool {
    n_threads: usize,
}

impl ThreadPool {
    /// A pool of `n_threads` threads, the caller counting as one.
    pub fn new(n_threads: usize) -> ThreadPool {
        ThreadPool { n_threads: n_threads.max(1) }
    }

    /// Number of threads, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f(thread_index, n_threads)` once on every thread (the caller is thread 0) and
    /// returns when all calls have returned.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        for i in 0..self.n_threads {
            f(i, self.n_threads);
        }
    }
}
