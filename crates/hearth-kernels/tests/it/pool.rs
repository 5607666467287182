//! Thread pool: every index and chunk runs once, borrows work, panics propagate, a stuck thread
//! holds up no one, overhead is small.

use hearth_kernels::pool::{count_physical_cores, physical_cores};
use hearth_kernels::ThreadPool;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn every_thread_runs_once_per_call() {
    for n in 1..=4 {
        let pool = ThreadPool::new(n);
        assert_eq!(pool.n_threads(), n);
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(|i, nt| {
                assert_eq!(nt, n);
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }
    assert_eq!(ThreadPool::new(0).n_threads(), 1);
}

#[test]
fn jobs_borrow_the_callers_stack() {
    let pool = ThreadPool::new(3);
    let input: Vec<u64> = (0..10_000).collect();
    let mut out = [0u64; 3];
    let slots: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
    pool.run(|i, n| {
        let chunk = &input[i * input.len() / n..(i + 1) * input.len() / n];
        slots[i].store(chunk.iter().sum::<u64>() as usize, Ordering::Relaxed);
    });
    for (o, s) in out.iter_mut().zip(&slots) {
        *o = s.load(Ordering::Relaxed) as u64;
    }
    assert_eq!(out.iter().sum::<u64>(), input.iter().sum::<u64>());
}

#[test]
fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
    let pool = ThreadPool::new(3);
    for bad in [0, 2] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(|i, _| {
                if i == bad {
                    panic!("job {i} failed");
                }
            })
        }));
        let msg = r.expect_err("panic must propagate");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(msg, format!("job {bad} failed"));
    }
    let count = AtomicUsize::new(0);
    pool.run(|_, _| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 3);
}

#[test]
fn nested_run_does_not_deadlock() {
    let pool = ThreadPool::new(2);
    let count = AtomicUsize::new(0);
    pool.run(|_, _| {
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(count.load(Ordering::Relaxed), 4);
}

#[test]
fn workers_wake_after_sleeping() {
    let pool = ThreadPool::new(2);
    let count = AtomicUsize::new(0);
    for _ in 0..3 {
        // Longer than the spin phase, so workers are asleep on the condition variable.
        std::thread::sleep(Duration::from_millis(5));
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    }
    assert_eq!(count.load(Ordering::Relaxed), 6);
}

#[test]
fn physical_core_count() {
    let two_cores_ht = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                        processor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\n\
                        processor\t: 2\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                        processor\t: 3\nphysical id\t: 0\ncore id\t\t: 1\n";
    assert_eq!(count_physical_cores(two_cores_ht), Some(2));
    let two_sockets = "physical id\t: 0\ncore id\t: 0\n\nphysical id\t: 1\ncore id\t: 0\n";
    assert_eq!(count_physical_cores(two_sockets), Some(2));
    assert_eq!(
        count_physical_cores("processor : 0\nmodel name : x\n"),
        None
    );
    assert!(physical_cores() >= 1);
}

/// Per-call overhead of `run` with 2 threads. Printed (run with `--nocapture`); the assertion
/// is loose because CI machines are shared and noisy.
#[test]
fn run_overhead_with_two_threads() {
    let pool = ThreadPool::new(2);
    let sink = AtomicUsize::new(0);
    let calls = 20_000;
    for _ in 0..1000 {
        pool.run(|i, _| {
            sink.fetch_add(i, Ordering::Relaxed);
        });
    }
    let t = Instant::now();
    for _ in 0..calls {
        pool.run(|i, _| {
            sink.fetch_add(i, Ordering::Relaxed);
        });
    }
    let per_call = t.elapsed() / calls;
    eprintln!("ThreadPool::run overhead, 2 threads: {per_call:?} per call");
    assert!(
        per_call < Duration::from_millis(2),
        "{per_call:?} per run call"
    );
}

#[test]
fn every_chunk_runs_once_and_threads_never_overlap() {
    for n in 1..=4 {
        let pool = ThreadPool::new(n);
        let busy: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
        for chunks in [0, 1, 2, 3, 7, 64, 500] {
            for _ in 0..50 {
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                pool.run_chunks(chunks, |thread, c| {
                    assert!(thread < n, "thread {thread} of {n}");
                    assert!(
                        !busy[thread].swap(true, Ordering::SeqCst),
                        "two calls at once on thread {thread}"
                    );
                    hits[c].fetch_add(1, Ordering::Relaxed);
                    busy[thread].store(false, Ordering::SeqCst);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{n} threads, {chunks} chunks"
                );
            }
        }
    }
}

/// A thread stuck in one chunk (as a descheduled thread is) holds up nothing else: the other
/// threads, the caller included, claim every other chunk while it waits for them.
#[test]
fn a_stuck_thread_leaves_the_other_chunks_to_the_rest() {
    for n in 2..=3 {
        let pool = ThreadPool::new(n);
        for _ in 0..20 {
            let chunks = 64;
            let done = AtomicUsize::new(0);
            let stuck = AtomicBool::new(false);
            pool.run_chunks(chunks, |_, _| {
                if !stuck.swap(true, Ordering::SeqCst) {
                    let start = Instant::now();
                    while done.load(Ordering::SeqCst) < chunks - 1 {
                        assert!(
                            start.elapsed() < Duration::from_secs(20),
                            "the other chunks waited for the stuck thread ({} of {} done)",
                            done.load(Ordering::SeqCst),
                            chunks - 1
                        );
                        std::thread::yield_now();
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(done.load(Ordering::SeqCst), chunks);
        }
    }
}

#[test]
fn a_panicking_chunk_reaches_the_caller_after_the_others_ran() {
    let pool = ThreadPool::new(2);
    let ran = AtomicUsize::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run_chunks(16, |_, c| {
            ran.fetch_add(1, Ordering::SeqCst);
            if c == 5 {
                panic!("chunk {c} failed");
            }
        })
    }));
    let msg = r.expect_err("panic must propagate");
    assert_eq!(
        msg.downcast_ref::<String>().map(String::as_str),
        Some("chunk 5 failed")
    );
    assert_eq!(ran.load(Ordering::SeqCst), 16);
}
