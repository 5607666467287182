//! API keys.

use hearth_store::{Error, KEY_PREFIX};

use crate::{household, TestClock};

#[test]
fn keys_verify_until_revoked() {
    let clock = TestClock::new(1_800_000_000);
    let (store, ana, _) = household();
    let store = clock.install(store);
    let (info, key) = store.create_api_key("Home Assistant", ana.id).unwrap();
    assert!(key.starts_with(KEY_PREFIX), "{key}");
    assert_eq!(key.len(), KEY_PREFIX.len() + 64);
    assert_eq!(info.last_used, None);
    assert_eq!(info.created_by, Some(ana.id));
    let (_, other) = store.create_api_key("editor", ana.id).unwrap();
    assert_ne!(key, other);

    assert!(store.verify_api_key(&key).unwrap());
    assert_eq!(store.api_keys().unwrap()[0].last_used, Some(1_800_000_000));
    clock.advance(3600);
    assert!(store.verify_api_key(&key).unwrap());
    assert_eq!(store.api_keys().unwrap()[0].last_used, Some(1_800_003_600));

    // Near misses fail.
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('0') { '1' } else { '0' });
    assert!(!store.verify_api_key(&wrong).unwrap());
    assert!(!store.verify_api_key(&key[KEY_PREFIX.len()..]).unwrap());
    assert!(!store.verify_api_key("").unwrap());

    store.revoke_api_key(info.id).unwrap();
    assert!(!store.verify_api_key(&key).unwrap());
    assert!(store.verify_api_key(&other).unwrap());
    assert!(matches!(
        store.revoke_api_key(info.id),
        Err(Error::NotFound { .. })
    ));
    let listed = store.api_keys().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "editor");
}

#[test]
fn key_names_are_checked() {
    let (store, ana, _) = household();
    assert!(matches!(
        store.create_api_key("  ", ana.id),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store.create_api_key("app", 999),
        Err(Error::NotFound { .. })
    ));
}
