//! The keeper's model advice on the household page (Settings): which catalog models can chat
//! and run well on this machine, with their speed and how many people they serve at once.
//!
//! The arithmetic is `hearth plan --recommend`'s (`hearth_plan::advice`): each catalog model's
//! own file planned on this machine for the household's context and conversations, ranked the
//! same way. Speeds come from this machine's calibration (`hearth plan --calibrate`) when
//! there is one, else from the planner's estimate on a bandwidth measured once per run of the
//! server (in the background, from the first time Settings asks); without either, a model's
//! speed is unknown (`null`), never a made-up number.

use std::sync::Mutex;

use hearth_fetch::{Catalog, CatalogEntry, Home, Source};
use hearth_plan::{advice, Pick, Recommendation, Request};
use serde_json::{json, Value};

use super::plan::{load_calibration, Calib};

/// Words in a token of English text, about: speeds are said in words on the page.
const WORDS_PER_TOKEN: f64 = 0.75;

/// Where the measurement of this machine's memory bandwidth stands.
#[derive(Clone, Copy)]
enum Probe {
    /// Under way on a thread of its own.
    Running,
    /// Measured (`None`: it could not be).
    Done(Option<f64>),
}

/// This machine's memory bandwidth for the estimates: `Err(())` while it is being measured.
/// The first call starts the measurement on a thread of its own, so Settings answers at once:
/// it reads a buffer of a GiB or more several times, seconds on a busy machine, and is kept
/// for the server's life.
fn measured_bandwidth(idle: bool) -> Result<Option<f64>, ()> {
    static PROBE: Mutex<Option<Probe>> = Mutex::new(None);
    let mut probe = PROBE.lock().unwrap_or_else(|p| p.into_inner());
    match *probe {
        Some(Probe::Done(bw)) => Ok(bw),
        Some(Probe::Running) => Err(()),
        // Not while someone's reply is being written: the probe would slow it, and the reply
        // would make the figure, kept for the server's life, too low.
        None if !idle => Err(()),
        None => {
            *probe = Some(Probe::Running);
            let started = std::thread::Builder::new()
                .name("bandwidth".to_string())
                .spawn(|| {
                    // A panic in the probe must not leave Settings "measuring" for ever.
                    struct Unknown;
                    impl Drop for Unknown {
                        fn drop(&mut self) {
                            if std::thread::panicking() {
                                *PROBE.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(Probe::Done(None));
                            }
                        }
                    }
                    let _unknown = Unknown;
                    let threads = hearth_kernels::pool::physical_cores();
                    let bw = match hearth_host::measure_bandwidth(threads) {
                        Ok(p) if p.bytes_per_s.is_finite() && p.bytes_per_s > 0.0 => {
                            Some(p.bytes_per_s)
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(
                                "cannot measure memory bandwidth for the model advice: {e}"
                            );
                            None
                        }
                    };
                    *PROBE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Probe::Done(bw));
                });
            if let Err(e) = started {
                tracing::warn!("cannot start measuring memory bandwidth: {e}");
                *probe = Some(Probe::Done(None));
                return Ok(None);
            }
            Err(())
        }
    }
}

/// Whether a model can hold a conversation: the catalog pins a chat template for it, or its
/// file carries one (`path`, when installed); before a download, what the catalog says.
pub(crate) fn can_chat(entry: Option<&CatalogEntry>, path: Option<&std::path::Path>) -> bool {
    if entry.is_some_and(|e| e.template.is_some()) {
        return true;
    }
    match path {
        Some(p) => hearth_fetch::inspect(p).is_ok_and(|i| i.chat_template),
        None => !entry.is_some_and(|e| e.base),
    }
}

/// The advice for `GET /api/settings`: `{"speed": "calibrated" | "estimated" | "measuring" |
/// "unknown",
/// "calibrated_on", "machine", "usable_bytes", "ctx", "models": [...]}`, each model with `name`,
/// `description`, `size`, `installed`, `in_use`, `chat`, `fits`, `recommended`,
/// `words_per_second` and `tokens_per_second` (`null` where the planner has no speed),
/// `people_at_once` (`null` before the download, when only the file size is known),
/// `memory_bytes` and `from_size`. Recommended models come first, best first; they can chat,
/// fit, and are fast enough to read along with (or their speed is not known yet).
pub(crate) fn household_advice(
    ctx: usize,
    users: usize,
    in_use: &str,
    held: u64,
    idle: bool,
) -> anyhow::Result<Value> {
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    // A calibration that cannot be read is no calibration: the advice goes on without it.
    let calib = load_calibration().unwrap_or_else(|e| {
        tracing::warn!("the model advice ignores this machine's calibration: {e:#}");
        Calib::Default(None)
    });
    let mut machine = hearth_host::detect(false)?;
    // The memory reported free is what is left beside the served model: each model is judged
    // against what it would have in its place.
    machine.memory_bytes += held;
    let speed = match &calib {
        Calib::Used(c) => {
            machine.bandwidth_bytes_per_s = c.bandwidth_bytes_per_s;
            machine.flops_per_s = c.flops_per_s;
            "calibrated"
        }
        Calib::Default(_) => match measured_bandwidth(idle) {
            Ok(Some(bw)) => {
                machine.bandwidth_bytes_per_s = bw;
                "estimated"
            }
            Ok(None) => "unknown",
            Err(()) => "measuring",
        },
    };
    let mut notes = Vec::new();
    let mut base = Request::new(ctx.max(1), users.max(1));
    base.threads = hearth_kernels::pool::physical_cores();
    calib.apply(&mut base, &mut notes);

    let mut rows: Vec<(Pick, &CatalogEntry, bool)> = Vec::new();
    for entry in catalog.entries() {
        // A model directory (the embedding model) is not a language model to chat with.
        if matches!(entry.source, Source::Files { .. }) {
            continue;
        }
        let path = hearth_fetch::resolve(&home, &catalog, &entry.name)
            .ok()
            .map(|r| r.path)
            .filter(|p| p.is_file());
        let pick = match &path {
            Some(p) => {
                let header = match hearth_fetch::read_header(p) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!("model advice leaves {} out: {e}", entry.name);
                        continue;
                    }
                };
                // Only the catalog's own file: the other quantizations are not downloadable.
                advice::header_picks(&entry.name, true, &header, &machine, &base, &mut notes)?
                    .into_iter()
                    .find(|p| p.basis == "catalog")
            }
            None => Some(advice::size_pick(&entry.name, entry.size, &machine, &base)),
        };
        if let Some(pick) = pick {
            rows.push((pick, entry, can_chat(Some(entry), path.as_deref())));
        }
    }
    for n in &notes {
        tracing::debug!("model advice: {n}");
    }

    // `hearth plan --recommend`'s order, among the models that can chat.
    let Recommendation { picks: ranked, .. } = advice::rank(
        rows.iter()
            .filter(|(_, _, chat)| *chat)
            .map(|(p, _, _)| p.clone())
            .collect(),
        &machine,
        &mut Vec::new(),
    );
    let known = |tg: f64| (tg.is_finite() && tg > 0.0).then_some(tg);
    let runs_well = |p: &Pick| known(p.est_tg_tok_s).is_none_or(|tg| tg >= advice::SLOW_TOK_S);
    let recommended: Vec<&str> = ranked
        .iter()
        .filter(|p| runs_well(p))
        .map(|p| p.model.as_str())
        .collect();
    let position = |name: &str| recommended.iter().position(|r| *r == name);
    rows.sort_by_key(|(p, _, _)| position(&p.model).unwrap_or(usize::MAX));

    let models: Vec<Value> = rows
        .iter()
        .map(|(p, entry, chat)| {
            let tg = known(p.est_tg_tok_s);
            json!({
                "name": p.model,
                "description": entry.description,
                "size": entry.size,
                "installed": p.installed,
                "in_use": p.model == in_use,
                "chat": chat,
                "fits": p.fits,
                "recommended": position(&p.model).is_some(),
                "tokens_per_second": tg,
                "words_per_second": tg.map(|t| t * WORDS_PER_TOKEN),
                "people_at_once": p.max_users_at_ctx.map(|n| n.min(base.users)),
                "memory_bytes": p.total_bytes,
                "from_size": p.basis == "size",
            })
        })
        .collect();
    Ok(json!({
        "speed": speed,
        "calibrated_on": match &calib {
            Calib::Used(c) => Some(c.date.clone()),
            Calib::Default(_) => None,
        },
        "machine": machine.label,
        "usable_bytes": machine.usable_bytes(),
        "ctx": base.ctx,
        "models": models,
    }))
}
