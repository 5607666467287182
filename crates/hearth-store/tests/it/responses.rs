//! Stored Responses: scoped to their owner, deleted for good, gone with their person or key.

use hearth_store::{api_key_owner, person_owner, Store, StoredResponse, RESPONSE_KEEP_SECS};

use crate::{household, TestClock};

/// A response made now (the stores here keep the system clock unless a test moves it).
fn stored(id: &str) -> StoredResponse {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    stored_at(id, created)
}

fn stored_at(id: &str, created: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        created,
        context: "[]".into(),
        input: r#"[{"type":"message","role":"user","content":"hi"}]"#.into(),
        response: format!(r#"{{"id":"{id}","object":"response"}}"#),
    }
}

#[test]
fn a_response_is_read_back_by_its_owner_only() {
    let store = Store::open_in_memory().unwrap();
    let r = stored("resp_1");
    store.save_response("apikey:1", &r).unwrap();
    assert_eq!(store.response("apikey:1", "resp_1").unwrap(), Some(r));
    // Another owner gets what a missing id gets.
    assert_eq!(store.response("apikey:2", "resp_1").unwrap(), None);
    assert_eq!(store.response("open", "resp_1").unwrap(), None);
    assert_eq!(store.response("apikey:1", "resp_2").unwrap(), None);
}

#[test]
fn another_owner_cannot_delete_a_response() {
    let store = Store::open_in_memory().unwrap();
    store.save_response("person:1", &stored("resp_a")).unwrap();
    assert!(!store.delete_response("person:2", "resp_a").unwrap());
    assert!(store.response("person:1", "resp_a").unwrap().is_some());
    assert!(store.delete_response("person:1", "resp_a").unwrap());
    assert_eq!(store.response("person:1", "resp_a").unwrap(), None);
    assert!(!store.delete_response("person:1", "resp_a").unwrap());
}

#[test]
fn an_id_is_stored_once_whoever_asks() {
    let store = Store::open_in_memory().unwrap();
    store.save_response("person:1", &stored("resp_x")).unwrap();
    assert!(store.save_response("person:2", &stored("resp_x")).is_err());
    assert!(store.response("person:2", "resp_x").unwrap().is_none());
}

#[test]
fn responses_expire_after_thirty_days() {
    let clock = TestClock::new(1_000_000);
    let store = clock.install(Store::open_in_memory().unwrap());
    store
        .save_response("open", &stored_at("resp_old", 1_000_000))
        .unwrap();
    clock.advance(RESPONSE_KEEP_SECS - 1);
    assert!(store.response("open", "resp_old").unwrap().is_some());
    clock.advance(2);
    assert_eq!(store.response("open", "resp_old").unwrap(), None);
    // Saving another prunes the expired row for good.
    store
        .save_response(
            "open",
            &stored_at("resp_new", 1_000_000 + RESPONSE_KEEP_SECS + 1),
        )
        .unwrap();
    assert!(store.response("open", "resp_new").unwrap().is_some());
}

#[test]
fn removing_a_person_or_revoking_a_key_deletes_what_they_stored() {
    let (store, ana, ben) = household();
    let (key, _) = store.create_api_key("notes app", ana.id).unwrap();
    store
        .save_response(&person_owner(ben.id), &stored("resp_ben"))
        .unwrap();
    store
        .save_response(&api_key_owner(key.id), &stored("resp_app"))
        .unwrap();
    store
        .save_response(&person_owner(ana.id), &stored("resp_ana"))
        .unwrap();
    store.remove_person(ben.id).unwrap();
    store.revoke_api_key(key.id).unwrap();
    assert_eq!(
        store.response(&person_owner(ben.id), "resp_ben").unwrap(),
        None
    );
    assert_eq!(
        store.response(&api_key_owner(key.id), "resp_app").unwrap(),
        None
    );
    assert!(store
        .response(&person_owner(ana.id), "resp_ana")
        .unwrap()
        .is_some());
}
