//! The engine loop: one thread owns the [`Engine`] and runs continuous batching for every client.
//!
//! Handlers submit [`Job`]s through a channel and receive [`Update`]s on their own channel.
//! Between steps the loop takes new jobs, admits queued ones in arrival order while the engine
//! has room (sequence slots and KV blocks), and drops the ones whose client went away. Each
//! step carries one token of every decoding sequence and a prompt chunk of each prefilling one,
//! so a long prompt never freezes the others' streams. A client that disconnects closes its
//! channel; the next token sent to it fails and its sequence is cancelled at once, freeing its
//! KV blocks.
//!
//! The loop is a plain thread rather than a task: a step is tens of milliseconds of CPU work
//! that would otherwise stall the async runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use hearth_engine::{Engine, Error as EngineError, Event, FinishReason, Logprob, Request, SeqId};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::metrics::Metrics;

/// Work for the engine.
pub struct Job {
    pub request: Request,
    pub updates: UnboundedSender<Update>,
}

/// What a handler hears about its job.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Still waiting because every slot (or the KV memory) is taken: `ahead` requests must
    /// start or finish before this one runs (the waiting ones before it, plus one running).
    Queued { ahead: usize },
    /// Admitted: the prompt is being processed. `cached` prompt tokens come from the prefix cache.
    Started { prompt_tokens: usize, cached: usize },
    /// One generated token.
    Token {
        token: u32,
        logprob: Option<Logprob>,
    },
    /// Generation ended.
    Finished { reason: FinishReason },
    /// The engine failed this job.
    Failed { message: String },
}

/// The handlers' side of the loop.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    /// Set when another model's loop took over: this one finishes its work without
    /// publishing gauges, which are the new loop's to say.
    retired: Arc<AtomicBool>,
}

/// Why a job was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds `max_queue` jobs already.
    QueueFull { depth: usize },
    /// The engine thread has stopped.
    Stopped,
}

impl Scheduler {
    /// Starts the loop on its own thread.
    pub fn start(engine: Engine, metrics: Arc<Metrics>, max_queue: usize) -> Scheduler {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let retired = Arc::new(AtomicBool::new(false));
        let (q, r) = (queued.clone(), retired.clone());
        std::thread::Builder::new()
            .name("hearth-engine".into())
            .spawn(move || Loop::new(engine, rx, metrics, q, r).run())
            .expect("spawning the engine thread");
        Scheduler {
            tx,
            queued,
            max_queue,
            retired,
        }
    }

    /// Another loop serves from now on: this one finishes what it has, keeps quiet about the
    /// gauges, and ends when the last handle to it is dropped.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Queues a request; its updates arrive on the returned channel, which the handler drops to
    /// cancel.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Update>, SubmitError> {
        let depth = self.queued.load(Ordering::Relaxed);
        if depth >= self.max_queue {
            return Err(SubmitError::QueueFull { depth });
        }
        let (updates, rx) = unbounded_channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Job { request, updates })
            .map_err(|_| SubmitError::Stopped)?;
        Ok(rx)
    }

    /// Jobs waiting for admission.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

struct Running {
    updates: UnboundedSender<Update>,
}

struct Loop {
    engine: Engine,
    rx: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    retired: Arc<AtomicBool>,
    pending: VecDeque<Job>,
    running: HashMap<SeqId, Running>,
    events: Vec<Event>,
    gone: Vec<SeqId>,
}

impl Loop {
    fn new(
        engine: Engine,
        rx: mpsc::Receiver<Job>,
        metrics: Arc<Metrics>,
        queued: Arc<AtomicUsize>,
        retired: Arc<AtomicBool>,
    ) -> Loop {
        Loop {
            engine,
            rx,
            metrics,
            queued,
            retired,
            pending: VecDeque::new(),
            running: HashMap::new(),
            events: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn run(mut self) {
        self.publish_gauges();
        loop {
            if self.running.is_empty() && self.pending.is_empty() {
                // Idle: sleep until a job arrives; a closed channel means the server stopped.
                match self.rx.recv() {
                    Ok(job) => self.pending.push_back(job),
                    Err(_) => return,
                }
            }
            let mut announce = false;
            while let Ok(job) = self.rx.try_recv() {
                self.pending.push_back(job);
                announce = true;
            }
            self.admit(announce);
            // Gauges once per turn of the loop: after the step, or after admission when idle.
            if !self.running.is_empty() {
                self.step();
            }
            self.publish_gauges();
        }
    }

    /// Moves queued jobs into the engine while it has room, in arrival order.
    fn admit(&mut self, announce: bool) {
        let before = self.pending.len();
        self.pending.retain(|j| !j.updates.is_closed());
        let mut changed = before != self.pending.len();
        while let Some(job) = self.pending.pop_front() {
            let Job { request, updates } = job;
            match self.engine.try_add(request).map_err(|refused| *refused) {
                Ok(id) => {
                    let (prompt_tokens, cached) = self
                        .engine
                        .sequence(id)
                        .map_or((0, 0), |s| (s.prompt_len(), s.reused_tokens()));
                    self.metrics.prompt_tokens(prompt_tokens, cached);
                    let _ = updates.send(Update::Started {
                        prompt_tokens,
                        cached,
                    });
                    self.running.insert(id, Running { updates });
                }
                // No room yet: it waits for a running sequence to finish. With nothing
                // running (the prefix cache is evictable), it can never fit.
                Err((EngineError::Busy(_) | EngineError::NoKvSpace { .. }, request))
                    if !self.running.is_empty() =>
                {
                    self.pending.push_front(Job { request, updates });
                    break;
                }
                Err((e, _)) => {
                    let _ = updates.send(Update::Failed {
                        message: e.to_string(),
                    });
                }
            }
            changed = true;
        }
        self.queued.store(self.pending.len(), Ordering::Relaxed);
        if changed || announce {
            for (i, job) in self.pending.iter().enumerate() {
                let _ = job.updates.send(Update::Queued { ahead: i + 1 });
            }
        }
    }

    fn step(&mut self) {
        let active = self.running.len();
        let started = Instant::now();
        self.events.clear();
        if let Err(e) = self.engine.step_into(&mut self.events) {
            self.fail_all(&e);
            return;
        }
        let mut generated = 0;
        for ev in &self.events {
            match *ev {
                Event::Token { seq, token } => {
                    generated += 1;
                    let logprob = self
                        .engine
                        .sequence(seq)
                        .and_then(|s| s.last_logprob())
                        .cloned();
                    if let Some(r) = self.running.get(&seq) {
                        if r.updates.send(Update::Token { token, logprob }).is_err() {
                            self.gone.push(seq);
                        }
                    }
                }
                Event::Finished { seq, reason } => {
                    if let Some(r) = self.running.remove(&seq) {
                        let _ = r.updates.send(Update::Finished { reason });
                    }
                    let _ = self.engine.remove(seq);
                }
            }
        }
        self.metrics
            .step(active, generated, started.elapsed().as_secs_f64());
        self.metrics.speculation(self.engine.take_spec_counts());
        // Clients that went away: cancel at once so their blocks return to the pool.
        for seq in self.gone.drain(..) {
            if self.running.remove(&seq).is_some() {
                let _ = self.engine.cancel(seq);
                self.metrics.cancelled();
            }
        }
        // A client may also vanish while its prompt is still being processed.
        let closed: Vec<SeqId> = self
            .running
            .iter()
            .filter(|(_, r)| r.updates.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for seq in closed {
            self.running.remove(&seq);
            let _ = self.engine.cancel(seq);
            self.metrics.cancelled();
        }
    }

    fn fail_all(&mut self, e: &EngineError) {
        tracing::error!("engine step failed: {e}");
        for (id, r) in self.running.drain() {
            let _ = r.updates.send(Update::Failed {
                message: format!("the engine failed: {e}"),
            });
            let _ = self.engine.cancel(id);
        }
    }

    fn publish_gauges(&self) {
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        self.metrics
            .set_gauges(self.pending.len(), self.running.len(), &self.engine);
    }
}
