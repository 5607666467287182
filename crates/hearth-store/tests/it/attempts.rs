//! Counted tries (issue 12): reserved before the check, all or none, kept across restarts.

use hearth_store::{Limit, Reserved, Store};

use crate::TestClock;

fn limit(key: &str, max: u32) -> Limit {
    Limit {
        key: key.into(),
        max,
        window_secs: 900,
    }
}

#[test]
fn tries_are_reserved_up_to_the_limit_then_blocked_until_the_window_ends() {
    let clock = TestClock::new(1_800_000_000);
    let store = clock.install(Store::open_in_memory().unwrap());
    let l = [limit("name:ana", 3)];
    for _ in 0..3 {
        assert_eq!(store.reserve_tries(&l).unwrap(), Reserved::Granted);
    }
    clock.advance(100);
    assert_eq!(
        store.reserve_tries(&l).unwrap(),
        Reserved::Blocked {
            key: "name:ana".into(),
            wait_secs: 800
        }
    );
    clock.advance(800);
    assert_eq!(store.reserve_tries(&l).unwrap(), Reserved::Granted);
}

#[test]
fn a_blocked_limit_charges_no_other() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(
        store.reserve_tries(&[limit("name:ana", 1)]).unwrap(),
        Reserved::Granted
    );
    let both = [limit("addr:1", 2), limit("name:ana", 1)];
    assert!(matches!(
        store.reserve_tries(&both).unwrap(),
        Reserved::Blocked { key, .. } if key == "name:ana"
    ));
    // addr:1 was not charged by the refused reservation: it still has both tries.
    let addr = [limit("addr:1", 2)];
    assert_eq!(store.reserve_tries(&addr).unwrap(), Reserved::Granted);
    assert_eq!(store.reserve_tries(&addr).unwrap(), Reserved::Granted);
    assert!(matches!(
        store.reserve_tries(&addr).unwrap(),
        Reserved::Blocked { .. }
    ));
}

#[test]
fn released_and_cleared_tries_come_back() {
    let store = Store::open_in_memory().unwrap();
    let l = [limit("k", 1)];
    assert_eq!(store.reserve_tries(&l).unwrap(), Reserved::Granted);
    store.release_try("k").unwrap();
    assert_eq!(store.reserve_tries(&l).unwrap(), Reserved::Granted);
    store.clear_tries("k").unwrap();
    assert_eq!(store.reserve_tries(&l).unwrap(), Reserved::Granted);
}

#[test]
fn lockouts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("household.db");
    let l = [limit("name:ana", 2)];
    {
        let store = Store::open(&path).unwrap();
        store.reserve_tries(&l).unwrap();
        store.reserve_tries(&l).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.reserve_tries(&l).unwrap(),
        Reserved::Blocked { .. }
    ));
}
