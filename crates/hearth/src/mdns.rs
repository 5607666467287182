//! Being found on the home network: mDNS / DNS-SD announcements of `hearth.local`.
//!
//! Phones and laptops find Hearth at `http://hearth.local:PORT` without anyone typing an IP
//! address. Announcing is only done on a listener beyond loopback (never multicast for a server
//! that only this machine can reach), and `--no-mdns` turns it off. `.local` names do not
//! resolve on every phone, so the plain addresses are printed too.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

/// The host name announced.
pub const HOST: &str = "hearth.local.";
/// Hearth's own service type, and the generic web one.
pub const SERVICE_TYPES: [&str; 2] = ["_hearth._tcp.local.", "_http._tcp.local."];

/// Keeps the announcements alive; dropping it stops them.
pub struct Announcer {
    daemon: ServiceDaemon,
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// The addresses a listener is reachable at: the one it is bound to, or, for an unspecified
/// address (0.0.0.0 / ::), every non-loopback interface address of that family.
pub fn reachable_ips(listen: SocketAddr) -> Vec<IpAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen.ip()];
    }
    let v4 = listen.is_ipv4();
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && ip.is_ipv4() == v4)
        .collect()
}

/// Announces `instance` (the household's name) at `listen`'s addresses.
pub fn announce(listen: SocketAddr, instance: &str) -> anyhow::Result<Announcer> {
    let ips = reachable_ips(listen);
    anyhow::ensure!(
        !ips.is_empty(),
        "no network address to announce for {listen}"
    );
    let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
    let props = [("path", "/"), ("version", env!("CARGO_PKG_VERSION"))];
    for ty in SERVICE_TYPES {
        let info = ServiceInfo::new(ty, instance, HOST, &ips[..], listen.port(), &props[..])
            .with_context(|| format!("cannot describe the {ty} service"))?;
        daemon
            .register(info)
            .with_context(|| format!("cannot announce {ty}"))?;
    }
    Ok(Announcer { daemon })
}

/// One Hearth found on the network.
pub struct Found {
    pub name: String,
    pub host: String,
    pub addrs: Vec<IpAddr>,
    pub port: u16,
}

/// Browses for Hearth servers for `wait`, returning each one found once.
pub fn discover(wait: Duration) -> anyhow::Result<Vec<Found>> {
    let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
    let rx = daemon
        .browse(SERVICE_TYPES[0])
        .context("cannot browse for Hearth servers")?;
    let deadline = Instant::now() + wait;
    let mut found: Vec<Found> = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(info)) => {
                let name = info.get_fullname().to_string();
                if found.iter().any(|f| f.name == name) {
                    continue;
                }
                let mut addrs: Vec<IpAddr> = info.get_addresses().iter().copied().collect();
                addrs.sort();
                found.push(Found {
                    name,
                    host: info.get_hostname().to_string(),
                    addrs,
                    port: info.get_port(),
                });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.shutdown();
    Ok(found)
}

/// The pool's service: the head's QUIC port, its node key in the TXT record.
pub const POOL_SERVICE: &str = "_hearth-pool._udp.local.";

/// Announces the pool's head at `listen` (its UDP port) with its node key, so members find it
/// without an address. The key is a hint only: pairing proves it.
pub fn announce_pool(listen: SocketAddr, key: &str) -> anyhow::Result<Announcer> {
    let ips = reachable_ips(listen);
    anyhow::ensure!(
        !ips.is_empty(),
        "no network address to announce for {listen}"
    );
    let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
    let props = [("key", key), ("version", env!("CARGO_PKG_VERSION"))];
    let instance = format!("hearth-pool-{}", &key[..12]);
    let info = ServiceInfo::new(
        POOL_SERVICE,
        &instance,
        HOST,
        &ips[..],
        listen.port(),
        &props[..],
    )
    .context("cannot describe the pool service")?;
    daemon.register(info).context("cannot announce the pool")?;
    Ok(Announcer { daemon })
}

/// A pool head found on the network.
pub struct FoundHead {
    pub addr: SocketAddr,
    /// The node key it announces (unproven until pairing or a link checks it).
    pub key: String,
}

/// Browses for pool heads, one entry per head (its first address): for `settle`, or when none
/// has answered by then, until the first does or `longest` passes.
pub fn discover_pool(settle: Duration, longest: Duration) -> anyhow::Result<Vec<FoundHead>> {
    let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
    let rx = daemon
        .browse(POOL_SERVICE)
        .context("cannot browse for the pool's head")?;
    let start = Instant::now();
    let deadline = start + longest.max(settle);
    let mut found: Vec<FoundHead> = Vec::new();
    loop {
        // Every head that answers within `settle` is listed (so several are told apart); when
        // none has by then, the first to answer before `longest` ends the wait.
        let until = if found.is_empty() {
            deadline
        } else {
            deadline.min(start + settle)
        };
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(info)) => {
                let key = info
                    .get_property_val_str("key")
                    .unwrap_or_default()
                    .to_string();
                let mut addrs: Vec<IpAddr> = info.get_addresses().iter().copied().collect();
                addrs.sort();
                let Some(ip) = addrs.into_iter().find(|a| a.is_ipv4()) else {
                    continue;
                };
                if found.iter().any(|f| f.key == key) {
                    continue;
                }
                found.push(FoundHead {
                    addr: SocketAddr::new(ip, info.get_port()),
                    key,
                });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.shutdown();
    Ok(found)
}
