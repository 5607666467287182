//! `hearth discover`: the Hearth servers announced on this network.

use std::time::Duration;

use clap::Args;

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Seconds to listen for announcements.
    #[arg(long, default_value_t = 3)]
    pub wait: u64,
}

pub fn run(a: DiscoverArgs) -> anyhow::Result<()> {
    let found = crate::mdns::discover(Duration::from_secs(a.wait.max(1)))?;
    if found.is_empty() {
        eprintln!(
            "no Hearth found on this network in {} s (is it listening beyond loopback, without --no-mdns?)",
            a.wait
        );
        return Ok(());
    }
    for f in found {
        let addrs: Vec<String> = f
            .addrs
            .iter()
            .map(|ip| format!("http://{}", std::net::SocketAddr::new(*ip, f.port)))
            .collect();
        println!(
            "{}\thttp://{}:{}\t{}",
            f.name,
            f.host.trim_end_matches('.'),
            f.port,
            addrs.join(" ")
        );
    }
    Ok(())
}
