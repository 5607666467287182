//! The pool's memory: paired machines by key, open pairing codes with expiry and tries.

use hearth_store::{InviteTry, Store};

use crate::TestClock;

const KEY_A: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const KEY_B: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

#[test]
fn an_invite_pairs_one_machine_once() {
    let store = Store::open_in_memory().unwrap();
    store.add_pool_invite("K7Q", "SECRET12", 600, 3).unwrap();
    assert_eq!(
        store.take_pool_invite_try("K7Q").unwrap(),
        InviteTry::Secret("SECRET12".into())
    );
    store.pair_pool_member("K7Q", KEY_A, "desk").unwrap();
    // Used up by the pairing, whatever tries were left.
    assert_eq!(
        store.take_pool_invite_try("K7Q").unwrap(),
        InviteTry::Unknown
    );
    let members = store.pool_members().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "desk");
    assert!(store.pool_member(KEY_A).unwrap().is_some());
    assert!(store.pool_member(KEY_B).unwrap().is_none());
}

#[test]
fn an_invite_runs_out_of_tries_and_expires() {
    let clock = TestClock::new(1_000_000);
    let store = clock.install(Store::open_in_memory().unwrap());
    store.add_pool_invite("AAA", "S1", 600, 2).unwrap();
    assert!(matches!(
        store.take_pool_invite_try("AAA").unwrap(),
        InviteTry::Secret(_)
    ));
    assert!(matches!(
        store.take_pool_invite_try("AAA").unwrap(),
        InviteTry::Secret(_)
    ));
    assert_eq!(
        store.take_pool_invite_try("AAA").unwrap(),
        InviteTry::Unknown
    );

    store.add_pool_invite("BBB", "S2", 600, 5).unwrap();
    clock.advance(599);
    assert!(matches!(
        store.take_pool_invite_try("BBB").unwrap(),
        InviteTry::Secret(_)
    ));
    clock.advance(1);
    assert_eq!(
        store.take_pool_invite_try("BBB").unwrap(),
        InviteTry::Unknown
    );
}

#[test]
fn a_machine_pairing_again_is_still_one_machine() {
    let store = Store::open_in_memory().unwrap();
    store.add_pool_invite("A1A", "x", 600, 3).unwrap();
    store.pair_pool_member("A1A", KEY_A, "desk").unwrap();
    store.add_pool_invite("B2B", "y", 600, 3).unwrap();
    store.pair_pool_member("B2B", KEY_A, "study desk").unwrap();
    let members = store.pool_members().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "study desk");
}

#[test]
fn removing_by_name_or_key_forgets_the_machine() {
    let store = Store::open_in_memory().unwrap();
    store.add_pool_invite("A1A", "x", 600, 3).unwrap();
    store.pair_pool_member("A1A", KEY_A, "desk").unwrap();
    store.add_pool_invite("B2B", "y", 600, 3).unwrap();
    store.pair_pool_member("B2B", KEY_B, "mini").unwrap();
    assert!(store.pool_member_seen(KEY_B, Some("{\"x\":1}")).unwrap());
    assert_eq!(
        store.pool_member(KEY_B).unwrap().unwrap().report.as_deref(),
        Some("{\"x\":1}")
    );

    assert!(store.remove_pool_member("nobody").is_err());
    // Too short a key start is not taken as a key.
    assert!(store.remove_pool_member("aa00").is_err());
    assert_eq!(store.remove_pool_member("DESK").unwrap().key, KEY_A);
    assert_eq!(store.remove_pool_member(&KEY_B[..12]).unwrap().name, "mini");
    assert!(store.pool_members().unwrap().is_empty());
    // A heartbeat from a removed machine does not bring it back.
    assert!(!store.pool_member_seen(KEY_B, None).unwrap());
    assert!(store.pool_member(KEY_B).unwrap().is_none());
}

#[test]
fn a_key_must_be_a_node_key() {
    let store = Store::open_in_memory().unwrap();
    store.add_pool_invite("A1A", "x", 600, 3).unwrap();
    assert!(store.pair_pool_member("A1A", "not-a-key", "desk").is_err());
    assert!(store
        .pair_pool_member("A1A", &KEY_A.to_uppercase(), "desk")
        .is_err());
}

/// Two joiners holding the same code whose exchanges run at once: the code pairs one of them,
/// including on its last try, and none after it expired.
#[test]
fn concurrent_exchanges_on_one_code_pair_one_machine() {
    let clock = TestClock::new(1_000_000);
    let store = clock.install(Store::open_in_memory().unwrap());
    store.add_pool_invite("C3C", "S", 600, 2).unwrap();
    assert!(matches!(
        store.take_pool_invite_try("C3C").unwrap(),
        InviteTry::Secret(_)
    ));
    // The last try: both exchanges now hold the secret.
    assert!(matches!(
        store.take_pool_invite_try("C3C").unwrap(),
        InviteTry::Secret(_)
    ));
    store.pair_pool_member("C3C", KEY_A, "desk").unwrap();
    assert!(store.pair_pool_member("C3C", KEY_B, "mini").is_err());
    assert_eq!(store.pool_members().unwrap().len(), 1);

    store.add_pool_invite("D4D", "S", 600, 3).unwrap();
    assert!(matches!(
        store.take_pool_invite_try("D4D").unwrap(),
        InviteTry::Secret(_)
    ));
    clock.advance(600);
    assert!(store.pair_pool_member("D4D", KEY_B, "mini").is_err());
    assert!(store.pool_member(KEY_B).unwrap().is_none());
}

#[test]
fn a_machine_name_is_checked_before_any_try() {
    assert!(hearth_store::check_machine_name("desk").is_ok());
    assert!(hearth_store::check_machine_name(" ").is_err());
    assert!(hearth_store::check_machine_name(&"x".repeat(61)).is_err());
    assert!(hearth_store::check_machine_name("a\u{1b}[2J").is_err());
}
