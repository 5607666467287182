//! Limits on guessing: tries per person, per address and for the setup code, and how many
//! password checks run at once.
//!
//! * Each try is reserved in the database *before* argon2 runs (hearth-store's `attempts`), so
//!   fifty guesses sent together cannot all slip in before the first failure is counted, and a
//!   restart does not lift a lockout.
//! * argon2 is memory-hard on purpose (19 MiB a check). At most [`CHECKS_AT_ONCE`] run at once,
//!   with [`QUEUE`] more waiting; beyond that a login gets 429 at once, so a flood of logins
//!   costs a bounded amount of memory and the engine keeps its cores.
//! * Addresses are counted per IPv4 address and per IPv6 /64 (one home's devices share a
//!   prefix, and one device can take as many addresses in it as it likes).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use hearth_store::{Limit, Reserved, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::db;
use crate::error::ApiError;

/// Wrong logins allowed per person and per address within [`WINDOW_SECS`].
const PER_NAME: u32 = 5;
const PER_ADDR: u32 = 20;
const WINDOW_SECS: i64 = 15 * 60;
/// Wrong setup codes allowed per address within the window, and from all addresses together
/// (a code has a million values, so even the global limit leaves guessing hopeless). Loopback
/// is not held to the global limit: a neighbour using it up must not lock the keeper out at
/// the machine itself.
const SETUP_PER_ADDR: u32 = 10;
const SETUP_ALL: u32 = 100;
/// Password checks at once, and how many more may wait for one.
pub(crate) const CHECKS_AT_ONCE: usize = 2;
pub(crate) const QUEUE: usize = 8;

/// The gate in front of argon2.
pub(crate) struct Checks {
    permits: Arc<Semaphore>,
    /// Checks running or waiting.
    pending: Arc<AtomicUsize>,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            permits: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// A place in the password-check queue, then a permit to run. Move the permit into the
/// blocking task that runs argon2, so it is held for as long as argon2 runs even if the
/// client leaves.
pub(crate) struct Slot {
    _pending: Pending,
    pub(crate) permit: OwnedSemaphorePermit,
}

struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Checks {
    /// Waits for a turn to check a password, or refuses at once when the queue is full.
    pub(crate) async fn slot(&self) -> Result<Slot, ApiError> {
        let taken = self.pending.fetch_add(1, Ordering::AcqRel);
        let pending = Pending(self.pending.clone());
        if taken >= CHECKS_AT_ONCE + QUEUE {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(2),
                ..ApiError::bad_request(
                    "Hearth is busy checking other logins; try again in a few seconds",
                )
                .with_code("busy")
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the login checks were shut down"))?;
        Ok(Slot {
            _pending: pending,
            permit,
        })
    }
}

/// The key an address is counted under.
fn addr_key(prefix: &str, addr: Option<SocketAddr>) -> String {
    match addr.map(|a| a.ip().to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{prefix}:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(ip) => format!("{prefix}:{ip}"),
        // Only in tests through `oneshot`, which have no peer address.
        None => format!("{prefix}:unknown"),
    }
}

fn limit(key: String, max: u32) -> Limit {
    Limit {
        key,
        max,
        window_secs: WINDOW_SECS,
    }
}

fn too_many(what: &str, wait: u64) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(wait),
        ..ApiError::bad_request(format!(
            "too many wrong {what}; try again in {} minutes",
            wait.div_ceil(60)
        ))
        .with_code("rate_limited")
    }
}

/// A login try, reserved against the person's and the address's limits.
pub(crate) struct LoginTry {
    name_key: String,
    addr_key: String,
}

impl LoginTry {
    /// Reserves a try, or says how long to wait.
    pub(crate) fn reserve(
        store: &Store,
        name: &str,
        addr: Option<SocketAddr>,
    ) -> Result<LoginTry, ApiError> {
        let t = LoginTry {
            // The store's own folding, so every spelling that logs in as one person counts as one.
            name_key: format!("name:{}", hearth_store::name_key(name)),
            addr_key: addr_key("addr", addr),
        };
        let limits = [
            limit(t.name_key.clone(), PER_NAME),
            limit(t.addr_key.clone(), PER_ADDR),
        ];
        match store.reserve_tries(&limits).map_err(db)? {
            Reserved::Granted => Ok(t),
            Reserved::Blocked { wait_secs, .. } => Err(too_many("attempts", wait_secs)),
        }
    }

    /// Tries left before this name or this address is locked out, after this one.
    pub(crate) fn left(&self, store: &Store) -> u32 {
        let left = |key: &str, max| {
            store
                .tries_left(&limit(key.to_string(), max))
                .unwrap_or(max)
        };
        left(&self.name_key, PER_NAME).min(left(&self.addr_key, PER_ADDR))
    }

    /// The password was right: the person starts afresh and the address gets its try back.
    /// A wrong password keeps both tries (nothing to call).
    pub(crate) fn succeeded(self, store: &Store) {
        if let Err(e) = store
            .clear_tries(&self.name_key)
            .and_then(|()| store.release_try(&self.addr_key))
        {
            tracing::warn!("cannot give a login try back: {e}");
        }
    }
}

/// A setup-code try, reserved against the address's limit and the global one.
pub(crate) struct SetupTry {
    addr_key: String,
    counted_globally: bool,
}

const SETUP_ALL_KEY: &str = "setup:all";

impl SetupTry {
    pub(crate) fn reserve(store: &Store, addr: Option<SocketAddr>) -> Result<SetupTry, ApiError> {
        let loopback = addr.is_some_and(|a| a.ip().to_canonical().is_loopback());
        let t = SetupTry {
            addr_key: addr_key("setup", addr),
            counted_globally: !loopback,
        };
        let mut limits = vec![limit(t.addr_key.clone(), SETUP_PER_ADDR)];
        if t.counted_globally {
            limits.push(limit(SETUP_ALL_KEY.to_string(), SETUP_ALL));
        }
        match store.reserve_tries(&limits).map_err(db)? {
            Reserved::Granted => Ok(t),
            Reserved::Blocked { wait_secs, .. } => Err(too_many("setup codes", wait_secs)),
        }
    }

    /// The code was right: give the tries back.
    pub(crate) fn succeeded(self, store: &Store) {
        let mut r = store.release_try(&self.addr_key);
        if self.counted_globally {
            r = r.and_then(|()| store.release_try(SETUP_ALL_KEY));
        }
        if let Err(e) = r {
            tracing::warn!("cannot give a setup try back: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5000".parse().expect("addr");
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6000".parse().expect("addr");
        assert_eq!(addr_key("addr", Some(a)), addr_key("addr", Some(b)));
        let v4: SocketAddr = "[::ffff:192.168.1.5]:1".parse().expect("addr");
        assert_eq!(addr_key("addr", Some(v4)), "addr:192.168.1.5");
    }
}
