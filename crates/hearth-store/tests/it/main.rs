//! hearth-store's integration tests, one binary (through the public API, plus raw SQLite reads
//! of the file where a test must see what is really on disk).

mod agent;
mod attempts;
mod branches;
mod chat;
mod files;
mod keys;
mod people;
mod pool;
mod profile;
mod responses;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use hearth_store::{Secret, Store, User};

/// A store with an owner ("Ana") and a member ("Ben").
pub fn household() -> (Store, User, User) {
    let store = Store::open_in_memory().unwrap();
    let ana = store.setup("The Hearths", "Ana", "ana-password").unwrap();
    let ben = store
        .add_person("Ben", &Secret::Password("ben-password".into()))
        .unwrap();
    (store, ana, ben)
}

/// A clock tests can move, in Unix seconds.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn new(start: i64) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(start)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn install(&self, store: Store) -> Store {
        let now = self.0.clone();
        store.with_clock(move || now.load(Ordering::SeqCst))
    }
}
