//! `hearth plan MODEL --pool`: the household plan (route or split) over this machine and the
//! pool's members as the running head last heard from them, or over `--member` machines given
//! on the command line for planning offline. The arithmetic is `hearth_plan::pool`'s.

use anyhow::{bail, Context};
use hearth_gguf::Header;
use hearth_plan::pool::{describe, pool_plan, PoolMachine, PoolModel};
use hearth_plan::{Machine, ModelFacts, Request};

use super::plan::PlanArgs;

pub fn run(
    a: &PlanArgs,
    name: &str,
    header: &Header,
    facts: &ModelFacts,
    req: &Request,
    this: &Machine,
    notes: &[String],
) -> anyhow::Result<()> {
    let model = PoolModel::from_header(header, facts, req)
        .with_context(|| format!("cannot plan {name} over the pool"))?;
    let machines = if a.member.is_empty() {
        from_household(this)?
    } else {
        a.member
            .iter()
            .map(|s| parse_member(s))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let plan = pool_plan(&model, &machines, req.users);
    if a.json {
        let out = serde_json::json!({
            "model": name,
            "users": req.users,
            "ctx": req.ctx,
            "machines": machines.iter().map(|m| serde_json::json!({
                "name": m.name, "usable_bytes": m.usable_bytes,
                "bandwidth_bytes_per_s": m.bandwidth_bytes_per_s, "flops_per_s": m.flops_per_s,
                "rtt_s": m.rtt_s, "link_bytes_per_s": m.link_bytes_per_s, "busy": m.busy,
            })).collect::<Vec<_>>(),
            "choice": format!("{:?}", plan.choice).to_lowercase(),
            "route": plan.route.as_ref().map(|r| serde_json::json!({
                "machines": r.machines.iter().map(|&i| &machines[i].name).collect::<Vec<_>>(),
                "next": machines[r.next].name,
                "single_tok_s": r.speed.single_tok_s,
                "aggregate_tok_s": r.speed.aggregate_tok_s,
            })),
            "split": plan.split.as_ref().map(|s| serde_json::json!({
                "stages": s.stages.iter().map(|st| serde_json::json!({
                    "machine": machines[st.machine].name,
                    "layers": [st.layers.start, st.layers.end],
                    "bytes": st.bytes,
                })).collect::<Vec<_>>(),
                "left_out": s.left_out.iter().map(|&i| &machines[i].name).collect::<Vec<_>>(),
                "single_tok_s": s.speed.single_tok_s,
                "aggregate_tok_s": s.speed.aggregate_tok_s,
            })),
            "words": describe(&plan, &machines),
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{name} for {} user{} at {} tokens of context, over {} machine{}:",
        req.users,
        if req.users == 1 { "" } else { "s" },
        req.ctx,
        machines.len(),
        if machines.len() == 1 { "" } else { "s" }
    );
    for m in &machines {
        println!(
            "  {}: {:.1} GiB free, {:.1} GB/s{}",
            m.name,
            m.usable_bytes as f64 / (1u64 << 30) as f64,
            m.bandwidth_bytes_per_s / 1e9,
            if m.rtt_s > 0.0 {
                format!(
                    ", link {:.1} ms, {:.0} Mbit/s",
                    m.rtt_s * 1e3,
                    m.link_bytes_per_s * 8.0 / 1e6
                )
            } else {
                String::new()
            }
        );
    }
    for line in describe(&plan, &machines) {
        println!("{line}");
    }
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}

/// This machine (the head) and every member whose link is up, from what the head stored.
fn from_household(this: &Machine) -> anyhow::Result<Vec<PoolMachine>> {
    let home = hearth_fetch::Home::from_env()?;
    let path = home.root().join("household.db");
    let mut machines = vec![PoolMachine {
        name: "this machine".into(),
        usable_bytes: this.usable_bytes(),
        bandwidth_bytes_per_s: this.bandwidth_bytes_per_s,
        flops_per_s: this.flops_per_s,
        rtt_s: 0.0,
        link_bytes_per_s: f64::INFINITY,
        busy: 0,
    }];
    if !path.exists() {
        return Ok(machines);
    }
    let store = hearth_store::Store::open(&path)
        .with_context(|| format!("cannot open the household's data at {}", path.display()))?;
    let now = store.now();
    for m in store.pool_members()? {
        let online = m
            .last_seen
            .is_some_and(|t| now - t <= hearth_pool::LOST_AFTER.as_secs() as i64 + 2);
        let link: Option<hearth_pool::LinkReport> = m
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let (true, Some(link)) = (online, link) else {
            continue;
        };
        machines.push(PoolMachine {
            name: m.name,
            usable_bytes: link.report.available_bytes,
            bandwidth_bytes_per_s: link.report.bandwidth_bytes_per_s,
            flops_per_s: link.report.flops_per_s,
            rtt_s: link.rtt_ms.unwrap_or(1.0) / 1e3,
            link_bytes_per_s: link.throughput_bytes_per_s.unwrap_or(125e6),
            busy: 0,
        });
    }
    Ok(machines)
}

/// `NAME,memory=16GiB,bandwidth=60GB/s[,flops=1e12][,rtt=1ms][,link=1Gbit/s][,busy=N]`.
pub fn parse_member(spec: &str) -> anyhow::Result<PoolMachine> {
    let mut parts = spec.split(',').map(str::trim);
    let name = parts.next().filter(|n| !n.is_empty() && !n.contains('='));
    let Some(name) = name else {
        bail!("--member {spec:?}: start with the machine's name, e.g. mini,memory=16GiB,bandwidth=60GB/s");
    };
    let mut m = PoolMachine {
        name: name.to_string(),
        usable_bytes: 0,
        bandwidth_bytes_per_s: 0.0,
        // An 8-core AVX2 machine at 3 GHz, as hearth-host assumes, unless given.
        flops_per_s: 8.0 * 32.0 * 3e9,
        rtt_s: 0.001,
        link_bytes_per_s: 125e6,
        busy: 0,
    };
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            bail!("--member {spec:?}: {part:?} is not key=value");
        };
        let v = v.trim();
        match k.trim() {
            "memory" | "mem" => m.usable_bytes = hearth_plan::parse_bytes(v)?,
            "bandwidth" | "bw" => m.bandwidth_bytes_per_s = hearth_plan::parse_rate(v)?,
            "flops" => {
                m.flops_per_s = v
                    .parse()
                    .with_context(|| format!("--member {spec:?}: flops={v:?} is not a number"))?
            }
            "rtt" => m.rtt_s = parse_ms(v).with_context(|| format!("--member {spec:?}: rtt"))?,
            "link" => m.link_bytes_per_s = parse_link(v).with_context(|| format!("--member {spec:?}: link"))?,
            "busy" => {
                m.busy = v
                    .parse()
                    .with_context(|| format!("--member {spec:?}: busy={v:?} is not a count"))?
            }
            other => bail!(
                "--member {spec:?}: unknown {other:?}; use memory, bandwidth, flops, rtt, link, busy"
            ),
        }
    }
    if m.usable_bytes == 0 || m.bandwidth_bytes_per_s <= 0.0 {
        bail!("--member {spec:?}: give at least memory=... and bandwidth=...");
    }
    Ok(m)
}

/// `1ms`, `0.5 ms`, `200us`: seconds.
fn parse_ms(v: &str) -> anyhow::Result<f64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        bail!("{v:?}: give a unit, like 1ms");
    };
    let x: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("{v:?} is not a time"))?;
    anyhow::ensure!(x >= 0.0 && x.is_finite(), "{v:?} is not a time");
    Ok(x * scale)
}

/// `1Gbit/s`, `100Mbit/s`, `125MB/s`: bytes per second.
fn parse_link(v: &str) -> anyhow::Result<f64> {
    let v = v.trim();
    for (suffix, scale) in [("Gbit/s", 1e9 / 8.0), ("Mbit/s", 1e6 / 8.0)] {
        if let Some(n) = v.strip_suffix(suffix) {
            let x: f64 = n
                .trim()
                .parse()
                .with_context(|| format!("{v:?} is not a rate"))?;
            anyhow::ensure!(x > 0.0 && x.is_finite(), "{v:?} is not a rate");
            return Ok(x * scale);
        }
    }
    Ok(hearth_plan::parse_rate(v)?)
}
