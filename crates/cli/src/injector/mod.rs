//! `aicpw task inject-known-answers`: a requester's long-running process that mixes known-answer
//! tasks from its library into the account's own traffic and reveals their answers.
//!
//! It follows the node's event stream. For each `task_submitted` by its account that is not one
//! of its own injections it draws (OS randomness) whether to inject, with probability `rate` in
//! parts per million, so injections are about `rate` of the account's traffic. An injection is
//! scheduled a random delay (at most `delay_max`) later, so it does not always sit right after
//! the task that triggered it, and submitted exactly like a normal task (`submit_bundle`: fresh
//! content key, sealed grants) with a commitment to the entry's answer under a fresh salt. It
//! wears the terms of the task that drew it (`dressed_as`: limits, budget, prices,
//! verification), so that they do not tell it from the account's real tasks; an entry that needs
//! more than that task grants is not used for it. The salt is journaled before the submission leaves. When the task is `verifying`
//! the injector sends `RevealAnswer`, at once: the ledger accepts it only while the result awaits
//! acceptance (`acceptance_window_ms`, 10 min, from the result's commitment). A result that
//! differs is not proven wrong by the reveal: the ledger opens a dispute (taking the minimum bond,
//! two runs at the task's maximum price, from the account) whose committee re-runs the task, and
//! the injector records what the task's end says: `caught` (the committee agreed with the known
//! answer: the producers slashed), `refuted` (it agreed with the result: the library entry is
//! suspect, the bond lost) or `unchecked` (no agreement).

mod journal;

pub use journal::{Journal, Pending, Verdict};

use crate::known_answers::{self, unix_ms, unix_secs, EntryInfo};
use crate::requester::{fresh_salt, submit_bundle};
use aicpw_provider::client::{Client, ClientError};
use aicpw_types::spec::TaskFile;
use aicpw_types::{Keypair, TaskTerms};
use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// 1.5% of the account's tasks, `verify::KnownAnswerPolicy`'s default.
pub const RATE_DEFAULT_PPM: u32 = 15_000;
/// Highest rate allowed: known answers cost the requester a run each, and at more than 10% of
/// the traffic their pattern is easier to spot.
pub const RATE_MAX_PPM: u32 = 100_000;
/// Set to `1` to allow any rate up to 1,000,000 ppm: for tests that need an injection now.
pub const TEST_RATES_ENV: &str = "AICPW_TEST_ANY_KNOWN_ANSWER_RATE";
/// Times one entry is injected by default before it is retired.
pub const USES_DEFAULT: u32 = 4;
/// Highest `--uses-max`.
pub const USES_MAX: u32 = 1_000;
/// Longest random delay before an injection, by default.
pub const DELAY_DEFAULT_SECS: u64 = 60;
/// Highest `--delay-max-secs`: well inside every window of the task's life.
pub const DELAY_MAX_SECS: u64 = 3_600;
/// How often pending injections are checked even without an event naming them.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Wait before reconnecting a broken event stream.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long a journaled injection whose submission got no answer is looked for on the ledger.
const UNSUBMITTED_FORGET_MS: u64 = 120_000;

pub struct Config {
    pub library: PathBuf,
    pub rate_ppm: u32,
    pub uses_max: u32,
    pub delay_max: Duration,
}

/// Refuses rates above [`RATE_MAX_PPM`] (unless [`TEST_RATES_ENV`] is `1`) and above 100%.
pub fn check_rate(rate_ppm: u32, test_rates: bool) -> Result<()> {
    let max = if test_rates { aicpw_verify::PPM } else { RATE_MAX_PPM };
    if rate_ppm > max {
        bail!("--rate {rate_ppm} ppm is above the limit of {max} ppm");
    }
    Ok(())
}

/// Whether this task of the account's traffic is followed by an injection: true with
/// probability `rate_ppm` / 1,000,000.
pub fn draws_injection(rng: &mut impl RngCore, rate_ppm: u32) -> bool {
    // Multiply-and-shift maps a uniform u64 onto 0..PPM (bias below 2^-44).
    let draw = (u128::from(rng.next_u64()) * u128::from(aicpw_verify::PPM)) >> 64;
    draw < u128::from(rate_ppm)
}

/// The entry to inject: one of the least used entries still under `uses_max`, at random, so
/// each entry is shown to providers as few times as the library allows.
pub fn pick_entry<'a>(
    entries: &'a [EntryInfo],
    uses: &BTreeMap<String, u32>,
    uses_max: u32,
    rng: &mut impl RngCore,
) -> Option<&'a EntryInfo> {
    let used = |entry: &EntryInfo| uses.get(&entry.id).copied().unwrap_or(0);
    let least = entries.iter().map(used).filter(|n| *n < uses_max).min()?;
    let candidates: Vec<&EntryInfo> = entries.iter().filter(|e| used(e) == least).collect();
    let index = usize::try_from(rng.next_u64() % candidates.len() as u64).unwrap_or(0);
    candidates.get(index).copied()
}

/// The entry's task file in the terms of `real`, the account's task that drew the injection:
/// its kind, resources, time limit, budget, maximum price, verification, strategy and
/// reputation floor, so that a provider comparing an injection with the account's
/// traffic finds nothing in them that differs (a library entry's own terms would give it away).
/// The name stays the entry's (the drawing task's, a minute after it, would be a tell), and so
/// does whether its inputs are sealed (encrypted by default, as every task file). `None`
/// where `real` grants less than the entry was checked with (another runtime, a shorter time
/// limit, fewer cores, less memory or disk) or grants what no entry may use (network, GPUs, a
/// non-deterministic comparison: a known answer is an exact hash).
pub fn dressed_as(entry: &TaskFile, real: &TaskTerms) -> Option<TaskFile> {
    let (needs, grants) = (&entry.resources, &real.resources);
    let fits = real.runtime == entry.runtime
        && !real.network
        && grants.gpu_count == 0
        && real.nondeterministic.is_none()
        && entry.time_limit_secs <= real.time_limit_secs
        && needs.cpu_cores <= grants.cpu_cores
        && needs.memory_mb <= grants.memory_mb
        && needs.disk_mb <= grants.disk_mb;
    fits.then(|| TaskFile {
        kind: real.kind,
        resources: grants.clone(),
        time_limit_secs: real.time_limit_secs,
        budget: real.budget,
        max_price_per_hour: real.max_price_per_hour,
        verification: real.verification,
        strategy: real.strategy,
        reputation_min: real.reputation_min,
        ..entry.clone()
    })
}

struct Injector<'a> {
    client: &'a Client,
    key: &'a Keypair,
    config: Config,
    journal: Journal,
    /// Injections drawn and waiting for their moment: (when, the task that drew it).
    scheduled: Vec<(Instant, u64)>,
    last_poll: Instant,
    warned_empty: bool,
    /// Whether the event stream answered since it was (re)opened.
    connected: bool,
    /// An error that stops the process: the journal could not be written.
    fatal: Option<anyhow::Error>,
}

/// Runs until the process is stopped; returns only on an error that would break its promises.
pub fn run(client: &Client, key: &Keypair, config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.library)
        .with_context(|| format!("cannot create {}", config.library.display()))?;
    let lock_path = config.library.join("injector.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // Two injectors on one journal would reveal, and count, each other's injections.
    if lock.try_lock().is_err() {
        bail!("another injector is using the library {}", config.library.display());
    }
    let journal = Journal::load(&config.library)?;
    let entries = known_answers::list(&config.library)?.len();
    println!(
        "injecting known answers at {} ppm into the tasks of {} from {} (entries: {entries}, \
         pending: {})",
        config.rate_ppm,
        key.account(),
        config.library.display(),
        journal.pending.len()
    );
    let mut injector = Injector {
        client,
        key,
        config,
        journal,
        scheduled: Vec::new(),
        last_poll: Instant::now(),
        warned_empty: false,
        connected: false,
        fatal: None,
    };
    injector.poll();
    loop {
        injector.connected = false;
        let followed = client.follow_events(aicpw_provider::client::EventsAbout::All, |event| {
            injector.on_event(event)
        });
        if let Some(error) = injector.fatal.take() {
            return Err(error);
        }
        if let Err(e) = followed {
            eprintln!("event stream: {e}; reconnecting");
            std::thread::sleep(RECONNECT_DELAY);
        }
        injector.poll();
    }
}

impl Injector<'_> {
    fn on_event(&mut self, event: &Value) -> bool {
        if !self.connected {
            // From here on no task of the account is missed (a keep-alive comes every second).
            self.connected = true;
            println!("following the events of {}", self.client.base());
        }
        let task = event["task"].as_u64();
        let ours = event["requester"].as_str() == Some(self.key.account().to_string().as_str());
        if event["event"] == "task_submitted" && ours {
            if let Some(id) = task.filter(|id| !self.journal.knows(*id)) {
                self.on_traffic(id);
            }
        } else if task.is_some_and(|id| self.pending_index(id).is_some()) {
            self.check(task.unwrap_or_default());
        }
        self.inject_due();
        if self.last_poll.elapsed() >= POLL_INTERVAL {
            self.poll();
        }
        self.fatal.is_none()
    }

    fn save(&mut self) {
        if let Err(e) = self.journal.save(&self.config.library) {
            self.fatal = Some(e.context("the injector cannot keep its journal"));
        }
    }

    fn pending_index(&self, task: u64) -> Option<usize> {
        let me = self.key.account();
        self.journal.pending.iter().position(|p| p.task == Some(task) && p.requester == me)
    }

    /// A task of the account's own traffic: draw whether an injection follows it.
    fn on_traffic(&mut self, id: u64) {
        if !draws_injection(&mut OsRng, self.config.rate_ppm) {
            return;
        }
        let max_ms = u64::try_from(self.config.delay_max.as_millis()).unwrap_or(u64::MAX);
        let delay = if max_ms == 0 { 0 } else { OsRng.next_u64() % (max_ms + 1) };
        self.scheduled.push((Instant::now() + Duration::from_millis(delay), id));
    }

    fn inject_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.scheduled.drain(..).partition(|(at, _)| *at <= now);
        self.scheduled = later;
        for (_, after) in due {
            if let Err(e) = self.inject(after) {
                eprintln!("no injection after task {after}: {e:#}");
            }
        }
    }

    /// Submits one library entry as a known-answer task of this account.
    fn inject(&mut self, after: u64) -> Result<()> {
        if self.journal.pending.len() >= journal::PENDING_MAX {
            bail!("{} injections are in flight, the limit", journal::PENDING_MAX);
        }
        let real: TaskTerms =
            serde_json::from_value(self.client.get(&format!("/v1/tasks/{after}"))?["terms"].take())
                .context("the terms of the task that drew the injection")?;
        let mut fitting = Vec::new();
        for info in known_answers::list(&self.config.library)? {
            let spec = known_answers::load(&self.config.library, &info.id)?.spec;
            if dressed_as(&spec, &real).is_some() {
                fitting.push(info);
            }
        }
        let Some(info) = pick_entry(&fitting, &self.journal.uses, self.config.uses_max, &mut OsRng)
        else {
            if !self.warned_empty {
                self.warned_empty = true;
                bail!(
                    "the library has no entry used fewer than {} times that fits the terms of \
                     task {after}: add some like the account's tasks with `aicpw task \
                     known-answer add`",
                    self.config.uses_max
                );
            }
            return Ok(());
        };
        let entry = known_answers::load(&self.config.library, &info.id)?;
        let spec = dressed_as(&entry.spec, &real).context("the entry fits the task's terms")?;
        let pending = Pending {
            task: None,
            requester: self.key.account(),
            entry: entry.info.id.clone(),
            answer_hash: entry.info.answer_hash,
            salt: fresh_salt(),
            created_unix_ms: unix_ms(),
        };
        let answer = (pending.answer_hash, pending.salt);
        // The salt is on disk before the commitment leaves: a crash cannot lose the reveal.
        self.journal.pending.push(pending);
        *self.journal.uses.entry(entry.info.id.clone()).or_insert(0) += 1;
        self.journal.totals.injected += 1;
        self.save();
        if self.fatal.is_some() {
            bail!("the salt could not be journaled, so nothing was submitted");
        }
        let last = self.journal.pending.len() - 1;
        match submit_bundle(self.client, self.key, &spec, &entry.bundle, Some(&answer), false) {
            Ok(id) => {
                self.journal.pending[last].task = Some(id);
                self.save();
                let (entry_id, name) = (&entry.info.id, &entry.info.name);
                println!("injected task {id}: known answer {entry_id} ({name}) after task {after}");
                Ok(())
            }
            Err(e) if is_rejection(&e) => {
                self.journal.finish(last, Verdict::NotSubmitted, format!("{e:#}"), unix_secs());
                self.save();
                Err(e)
            }
            // The node may have taken it: the next poll looks for it by its commitment.
            Err(e) => Err(e.context("the submission's fate is unknown; looking for it")),
        }
    }

    /// Checks every pending injection (and finds the ones whose receipt was lost).
    fn poll(&mut self) {
        self.last_poll = Instant::now();
        if self.journal.pending.iter().any(|p| p.task.is_none()) {
            if let Err(e) = self.recover() {
                eprintln!("cannot look for unconfirmed injections: {e:#}");
            }
        }
        let me = self.key.account();
        let ids: Vec<u64> = self
            .journal
            .pending
            .iter()
            .filter(|p| p.requester == me)
            .filter_map(|p| p.task)
            .collect();
        for id in ids {
            self.check(id);
        }
    }
}

fn is_rejection(error: &anyhow::Error) -> bool {
    error.downcast_ref::<ClientError>().and_then(ClientError::reject).is_some()
}

mod reveal;

#[cfg(test)]
mod tests;
