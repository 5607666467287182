//! The household's pool of machines from the command line: `hearth pool invite|list|remove` on
//! the head, `hearth node join CODE` and `hearth node` on each other machine, and the head's
//! start inside `hearth serve --pool`.
//!
//! The head's state lives in the household database (paired keys, open codes, each member's
//! last report), so these commands work beside a running `hearth serve`: a code made here is
//! answered by the running head, and a machine removed here is cut off at its next heartbeat.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hearth_fetch::Home;
use hearth_pool::member::{self, Event, HeadRecord};
use hearth_pool::{code::Code, LinkReport, Report};

/// Arguments of `hearth pool`.
#[derive(Args, Debug)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub cmd: PoolCmd,
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Make a one-time code that pairs another machine (valid 10 minutes, 3 tries, once).
    Invite,
    /// The paired machines: online or when last seen, memory, bandwidth, their link.
    List,
    /// Forget a machine (by its name or the start of its key); its link is cut off.
    Remove { machine: String },
}

/// Arguments of `hearth node`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub cmd: Option<NodeCmd>,
    /// The head's address, HOST:PORT, for networks that drop multicast (mDNS); may be repeated.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Pair this machine with the household's head, using a code from `hearth pool invite`.
    Join {
        code: String,
        /// The head's address, HOST:PORT (else it is looked for with mDNS).
        #[arg(long, value_name = "HOST:PORT")]
        peer: Option<String>,
        /// The name the keeper will see (default: this machine's host name).
        #[arg(long)]
        name: Option<String>,
        /// Seconds to keep looking for the head by mDNS while none has answered.
        #[arg(long, value_name = "SECONDS", default_value_t = 3)]
        wait: u64,
    },
}

fn home() -> anyhow::Result<Home> {
    Ok(Home::from_env()?)
}

fn key_path(home: &Home) -> PathBuf {
    home.root().join("pool").join("node.key")
}

fn head_path(home: &Home) -> PathBuf {
    home.root().join("pool").join("head.json")
}

/// The household database, opened beside a running server (SQLite in WAL mode takes both).
fn store(home: &Home) -> anyhow::Result<hearth_store::Store> {
    let path = home.root().join("household.db");
    hearth_store::Store::open(&path)
        .with_context(|| format!("cannot open the household's data at {}", path.display()))
}

pub fn run_pool(a: PoolArgs) -> anyhow::Result<()> {
    let home = home()?;
    let store = store(&home)?;
    match a.cmd {
        PoolCmd::Invite => {
            let code = hearth_pool::head::invite(&store)?;
            println!("{code}");
            eprintln!(
                "On the new machine run: hearth node join {code}\n  \
                 (add --peer HEAD:{} where the network drops multicast)\n\
                 The code works once, for 10 minutes, and allows 3 tries. The head must be \
                 running `hearth serve --pool`.",
                hearth_pool::DEFAULT_PORT
            );
        }
        PoolCmd::List => list(&store)?,
        PoolCmd::Remove { machine } => {
            let gone = store.remove_pool_member(&machine)?;
            println!(
                "Removed {} ({}); a running head cuts its link within {} s.",
                gone.name,
                &gone.key[..12],
                hearth_pool::HEARTBEAT.as_secs().max(1)
            );
        }
    }
    Ok(())
}

/// One line per paired machine, from what the head last stored.
fn list(store: &hearth_store::Store) -> anyhow::Result<()> {
    let members = store.pool_members()?;
    if members.is_empty() {
        println!("No machines are paired. Pair one with `hearth pool invite`.");
        return Ok(());
    }
    let now = store.now();
    for m in members {
        let seen = match m.last_seen {
            // A few missed heartbeats and the head would have dropped the link.
            Some(t) if now - t <= hearth_pool::LOST_AFTER.as_secs() as i64 + 2 => {
                "online".to_string()
            }
            Some(t) => format!("last seen {} ago", ago(now - t)),
            None => "never connected".to_string(),
        };
        let link: Option<LinkReport> = m
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let mut line = format!("{}  {}  {seen}", m.name, &m.key[..12]);
        if let Some(l) = link {
            let r = &l.report;
            line += &format!(
                "  {} free of {}, {:.1} GB/s ({})",
                gib(r.available_bytes),
                gib(r.memory_bytes),
                r.bandwidth_bytes_per_s / 1e9,
                r.bandwidth_source
            );
            if !r.gpus.is_empty() {
                let g: Vec<String> = r
                    .gpus
                    .iter()
                    .map(|g| format!("{} {}", g.name, gib(g.memory_bytes)))
                    .collect();
                line += &format!(", GPU {}", g.join(", "));
            }
            if let Some(rtt) = l.rtt_ms {
                line += &format!(", round trip {rtt:.1} ms");
            }
            if let Some(t) = l.throughput_bytes_per_s {
                line += &format!(", link {:.0} Mbit/s", t * 8.0 / 1e6);
            }
        }
        println!("{line}");
    }
    Ok(())
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn resolve(peer: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let with_port = if peer
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        peer.to_string()
    } else {
        format!("{peer}:{}", hearth_pool::DEFAULT_PORT)
    };
    Ok(with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot find the address of --peer {peer}"))?
        .collect())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn host_name() -> String {
    gethostname::gethostname()
        .to_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("machine")
        .chars()
        .take(hearth_store::MAX_MACHINE_NAME_CHARS)
        .collect()
}

pub fn run_node(a: NodeArgs) -> anyhow::Result<()> {
    let home = home()?;
    let key = hearth_pool::load_or_create_key(&key_path(&home))?;
    if let Some(NodeCmd::Join {
        code,
        peer,
        name,
        wait,
    }) = a.cmd
    {
        let code = Code::parse(&code)?;
        // Checked before looking for the head: a name it would refuse is no reason to spend a
        // try of the code.
        let name = name.unwrap_or_else(host_name);
        hearth_store::check_machine_name(&name)?;
        let addr = match peer {
            Some(p) => *resolve(&p)?.first().context("--peer has no address")?,
            None => {
                let heads =
                    crate::mdns::discover_pool(Duration::from_secs(3), Duration::from_secs(wait));
                let heads = heads.map_err(|e| {
                    anyhow::anyhow!(
                        "no head found on this network (mDNS: {e:#}); give its address: \
                         hearth node join CODE --peer HOST:{}",
                        hearth_pool::DEFAULT_PORT
                    )
                })?;
                match heads.as_slice() {
                    [] => bail!(
                        "no head found on this network (mDNS); give its address: \
                         hearth node join CODE --peer HOST:{}",
                        hearth_pool::DEFAULT_PORT
                    ),
                    [one] => one.addr,
                    many => {
                        let list: Vec<String> = many.iter().map(|h| h.addr.to_string()).collect();
                        bail!(
                            "several heads answer on this network ({}); choose one with --peer",
                            list.join(", ")
                        )
                    }
                }
            }
        };
        eprintln!("Pairing with the head at {addr}...");
        let head = runtime()?.block_on(member::join(key, &code, addr, &name))?;
        head.save(&head_path(&home))?;
        println!("Paired with the head at {addr} as {name:?}. Start this machine as a member with: hearth node");
        return Ok(());
    }
    let head = HeadRecord::load(&head_path(&home))?.context(
        "this machine is not paired yet: on the head run `hearth pool invite`, then here \
         `hearth node join CODE`",
    )?;
    let mut peers = Vec::new();
    for p in &a.peer {
        peers.extend(resolve(p)?);
    }
    let head_key = head.key.clone();
    let find: member::Finder = Arc::new(move || {
        let mut addrs = peers.clone();
        // mDNS too, unless the keeper named the head: only heads with the paired key count.
        if addrs.is_empty() {
            if let Ok(found) =
                crate::mdns::discover_pool(Duration::from_secs(2), Duration::from_secs(2))
            {
                addrs.extend(
                    found
                        .into_iter()
                        .filter(|h| h.key == head_key)
                        .map(|h| h.addr),
                );
            }
        }
        addrs
    });
    eprintln!("Measuring this machine...");
    let report = this_report(&home)?;
    eprintln!(
        "{}: {} free of {}, {:.1} GB/s ({}), {} cores",
        report.name,
        gib(report.available_bytes),
        gib(report.memory_bytes),
        report.bandwidth_bytes_per_s / 1e9,
        report.bandwidth_source,
        report.cores
    );
    let reporter: member::Reporter = {
        let report = report.clone();
        Arc::new(move || {
            let mut r = report.clone();
            r.available_bytes = available().unwrap_or(r.available_bytes);
            r
        })
    };
    let avail: member::Available = Arc::new(move || available().unwrap_or(0));
    let on_event = |e: Event| match e {
        Event::Connected(addr) => eprintln!("Linked to the head at {addr}."),
        Event::Retrying { why, after } => {
            eprintln!(
                "No link to the head ({why}); trying again in {} s.",
                after.as_secs()
            )
        }
    };
    runtime()?.block_on(member::run(key, head, find, reporter, avail, on_event))?;
    Ok(())
}

fn available() -> Option<u64> {
    hearth_host::detect(false)
        .ok()
        .map(|m| m.memory_bytes - m.reserved_bytes)
}

/// This machine as the head should see it: the stored calibration's bandwidth if it was made
/// here, else a short measurement now.
fn this_report(_home: &Home) -> anyhow::Result<Report> {
    let calib = super::plan::load_calibration()?;
    let (mut m, source) = match &calib {
        super::plan::Calib::Used(c) => {
            let mut m = hearth_host::detect(false)?;
            m.bandwidth_bytes_per_s = c.bandwidth_bytes_per_s;
            m.flops_per_s = c.flops_per_s;
            (m, "calibrated".to_string())
        }
        super::plan::Calib::Default(_) => (hearth_host::detect(true)?, "measured".to_string()),
    };
    m.name = host_name();
    let gpus = hearth_host::gpus()
        .unwrap_or_default()
        .into_iter()
        .map(|g| hearth_pool::Gpu {
            name: g.name,
            memory_bytes: g.memory_bytes,
        })
        .collect();
    Ok(Report {
        name: m.name.clone(),
        hearth_version: env!("CARGO_PKG_VERSION").to_string(),
        memory_bytes: m.memory_bytes,
        available_bytes: m.memory_bytes - m.reserved_bytes,
        bandwidth_bytes_per_s: m.bandwidth_bytes_per_s,
        flops_per_s: m.flops_per_s,
        bandwidth_source: source,
        cores: hearth_kernels::pool::physical_cores(),
        gpus,
    })
}

/// The head inside `hearth serve --pool`: binds, announces itself on mDNS (beyond loopback),
/// and logs what it does. Dropping the returned value stops the announcement; the head runs
/// until the runtime ends.
pub async fn start_head(
    bind: SocketAddr,
    store: Arc<hearth_store::Store>,
    mdns: bool,
) -> anyhow::Result<(hearth_pool::head::Head, Option<crate::mdns::Announcer>)> {
    let home = home()?;
    let key = hearth_pool::load_or_create_key(&key_path(&home))?;
    let head = hearth_pool::head::Head::start(key, bind, store).await?;
    let addr = head.addr();
    eprintln!(
        "Pool: listening on {addr} as {}; pair a machine with `hearth pool invite`",
        hearth_pool::key_hex(&head.id())
    );
    let announcer = if mdns && !addr.ip().is_loopback() {
        match crate::mdns::announce_pool(addr, &hearth_pool::key_hex(&head.id())) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("  pool not announced on mDNS ({e:#}); members need --peer");
                None
            }
        }
    } else {
        None
    };
    Ok((head, announcer))
}
