//! The pool on a busy machine: a run of decode-sized matmuls on two threads while two other
//! threads burn the same two CPUs finishes within a generous bound of its quiet time, with the
//! same bits.
//!
//! With work split statically, every matmul waited for whichever thread the OS had just
//! descheduled, and such a run took tens of times its quiet time. With chunks that running
//! threads claim, the cost is about the CPU share the hogs take. The bound (ten times the quiet
//! time plus two seconds) is far from both, so a loaded CI machine does not make it flaky.

use crate::common::*;
use hearth_kernels::packed;
use hearth_kernels::{activation_type, matmul, row_bytes, GgmlType, QMatrix, ThreadPool};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pins the calling thread (and so every thread it starts afterwards) to at most two of the
/// CPUs it may use, so the hogs and the pool compete for the same two CPUs on any machine.
#[cfg(target_os = "linux")]
fn pin_to_two_cpus() {
    // SAFETY: `cpu_set_t` is plain data, zeroed is a valid empty set; the calls get a pointer
    // to it and its exact size, and only affect the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_getaffinity(0, size, &mut set),
            0,
            "sched_getaffinity"
        );
        let mut mine: libc::cpu_set_t = std::mem::zeroed();
        let mut n = 0;
        for cpu in 0..libc::CPU_SETSIZE as usize {
            if n < 2 && libc::CPU_ISSET(cpu, &set) {
                libc::CPU_SET(cpu, &mut mine);
                n += 1;
            }
        }
        assert_eq!(
            libc::sched_setaffinity(0, size, &mine),
            0,
            "sched_setaffinity"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_two_cpus() {}

struct Work {
    packed: Vec<u8>,
    rows: Vec<u8>,
    x_packed: Vec<u8>,
    x_rows: Vec<u8>,
}

const PACKED_TY: GgmlType = GgmlType::Q4_0;
const ROWS_TY: GgmlType = GgmlType::Q4_K;
/// SmolLM2-135M's feed-forward shape: 1536 × 576 up, 576 × 1536 down.
const FF: usize = 1536;
const EMBD: usize = 576;

fn work() -> Work {
    let mut r = rng(91);
    let orig: Vec<u8> = (0..FF)
        .flat_map(|_| random_bytes_row(&mut r, PACKED_TY, EMBD))
        .collect();
    let mut packed = vec![0u8; orig.len()];
    packed::pack_into(PACKED_TY, FF, EMBD, &orig, &mut packed).unwrap();
    let rows = (0..EMBD)
        .flat_map(|_| random_bytes_row(&mut r, ROWS_TY, FF))
        .collect();
    Work {
        packed,
        rows,
        x_packed: activation_row(&mut r, PACKED_TY, EMBD),
        x_rows: activation_row(&mut r, ROWS_TY, FF),
    }
}

/// `steps` pairs of one-token matmuls (a packed one and a row-major one, as a decode step runs
/// both kinds), returning an FNV-1a hash of every output's bits and the time taken.
fn decode_steps(pool: &ThreadPool, w: &Work, steps: usize) -> (u64, Duration) {
    let up = QMatrix::packed(PACKED_TY, &w.packed, FF, EMBD).unwrap();
    let down = QMatrix::new(ROWS_TY, &w.rows, EMBD, FF).unwrap();
    assert_eq!(
        w.x_rows.len(),
        row_bytes(activation_type(ROWS_TY).unwrap(), FF)
    );
    let mut a = vec![0f32; FF];
    let mut b = vec![0f32; EMBD];
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let start = Instant::now();
    for _ in 0..steps {
        matmul(pool, &up, &w.x_packed, 1, &mut a);
        matmul(pool, &down, &w.x_rows, 1, &mut b);
        for v in a.iter().chain(&b) {
            hash = (hash ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3);
        }
        a.fill(f32::NAN);
        b.fill(f32::NAN);
    }
    (hash, start.elapsed())
}

#[test]
fn matmuls_finish_beside_cpu_hogs_with_the_same_bits() {
    let w = work();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_two_cpus();
            let pool = ThreadPool::new(2);
            let steps = 4000;
            decode_steps(&pool, &w, 200);
            let (quiet_bits, quiet) = decode_steps(&pool, &w, steps);

            let stop = Arc::new(AtomicBool::new(false));
            let hogs: Vec<_> = (0..2)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let mut x = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = std::hint::black_box(x.wrapping_mul(6364136223846793005) + 1);
                            }
                        }
                    })
                })
                .collect();
            // Let the hogs settle onto the CPUs.
            std::thread::sleep(Duration::from_millis(50));
            let (busy_bits, busy) = decode_steps(&pool, &w, steps);
            stop.store(true, Ordering::Relaxed);
            for h in hogs {
                h.join().unwrap();
            }
            eprintln!("{steps} decode steps on 2 threads: quiet {quiet:?}, beside 2 hogs {busy:?}");
            assert_eq!(busy_bits, quiet_bits, "outputs differ beside the hogs");
            let bound = quiet * 10 + Duration::from_secs(2);
            assert!(
                busy < bound,
                "beside 2 CPU hogs the run took {busy:?}, quiet {quiet:?} (bound {bound:?})"
            );
        });
    });
}
