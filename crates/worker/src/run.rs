//! The worker threads: one set per queue, the scheduler, the dispatcher and the
//! listener.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crm_db::repo::{jobs, outbox};
use diesel::prelude::*;

use crate::listen::{listen, Signals};
use crate::{backoff, BoxError, JobContext, Setup};

/// A running worker process part; dropping it does not stop it, [`Worker::shutdown`]
/// does.
pub struct Worker {
    stop: Arc<AtomicBool>,
    signals: Arc<Signals>,
    threads: Vec<JoinHandle<()>>,
    /// This process's name in `locked_by`.
    pub name: String,
}

impl Worker {
    /// Registers the schedules and subscribers, then starts the threads.
    pub fn start(setup: Setup) -> Result<Worker, BoxError> {
        let name = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        {
            let mut c = setup.pool.get()?;
            for s in &setup.registry.schedules {
                let secs = i32::try_from(s.every.as_secs().max(1)).unwrap_or(i32::MAX);
                jobs::register_schedule(&mut c, &s.name, &s.queue, &s.kind, secs)?;
            }
            for s in &setup.registry.subscribers {
                outbox::register(&mut c, s.name())?;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let signals = Arc::new(Signals::default());
        let setup = Arc::new(setup);
        let mut threads = Vec::new();
        let spawn = |label: String, f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(label).spawn(f);
        {
            let (url, signals, stop) = (setup.database_url.clone(), signals.clone(), stop.clone());
            threads.push(spawn(
                "job-listen".into(),
                Box::new(move || listen(url, signals, stop)),
            )?);
        }
        for (queue, n) in &setup.config.queues {
            for i in 0..*n {
                let (setup, signals, stop, name, queue) = (
                    setup.clone(),
                    signals.clone(),
                    stop.clone(),
                    name.clone(),
                    queue.clone(),
                );
                threads.push(spawn(
                    format!("job-{queue}-{i}"),
                    Box::new(move || work_queue(&setup, &signals, &stop, &name, &queue)),
                )?);
            }
        }
        if setup.config.schedules && !setup.registry.schedules.is_empty() {
            let (setup, stop) = (setup.clone(), stop.clone());
            threads.push(spawn("job-schedule".into(), Box::new(move || schedule(&setup, &stop)))?);
        }
        if setup.config.dispatch && !setup.registry.subscribers.is_empty() {
            let (setup, signals, stop) = (setup.clone(), signals.clone(), stop.clone());
            threads.push(spawn(
                "outbox-dispatch".into(),
                Box::new(move || crate::dispatch::run(&setup, &signals, &stop)),
            )?);
        }
        tracing::info!(worker = %name, queues = ?setup.config.queues, "background worker started");
        Ok(Worker {
            stop,
            signals,
            threads,
            name,
        })
    }

    /// Stops taking work, lets running jobs finish (up to `grace`), and returns whether
    /// every thread ended in time. A job still running after it is left to its lease:
    /// the process ends, its transaction rolls back, another worker runs it again.
    pub fn shutdown(self, grace: Duration) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        self.signals.wake_all();
        let deadline = Instant::now() + grace;
        let mut all = true;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                all = false;
            }
        }
        tracing::info!(worker = %self.name, clean = all, "background worker stopped");
        all
    }
}

/// What one claimed job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    Failed(jobs::Fate),
    /// The claim was no longer ours when the run started.
    Lost,
}

fn work_queue(setup: &Setup, signals: &Signals, stop: &AtomicBool, me: &str, queue: &str) {
    let lease = i32::try_from(setup.config.lease.as_secs().max(1)).unwrap_or(i32::MAX);
    while !stop.load(Ordering::SeqCst) {
        let seen = signals.jobs.seen();
        let claimed = setup
            .pool
            .get()
            .map_err(BoxError::from)
            .and_then(|mut c| Ok((jobs::claim(&mut c, queue, me, lease)?, c)));
        match claimed {
            Ok((Some(job), mut c)) => {
                if stop.load(Ordering::SeqCst) {
                    let _ = jobs::release(&mut c, job.id, me);
                    break;
                }
                run_one(setup, &mut c, me, job);
            }
            Ok((None, _)) => signals.jobs.wait(seen, setup.config.poll),
            Err(e) => {
                tracing::warn!(queue, error = %e, "claiming a job failed");
                signals.jobs.wait(seen, setup.config.poll);
            }
        }
    }
}

fn run_one(setup: &Setup, c: &mut PgConnection, me: &str, job: jobs::Job) {
    let started = Instant::now();
    let ctx = JobContext {
        clock: setup.clock.clone(),
        attempt: job.attempts,
    };
    let outcome: Result<Ran, BoxError> = match setup.registry.handlers.get(&job.kind) {
        None => {
            let _ = jobs::bury(c, job.id, me, &format!("no handler for job kind `{}`", job.kind));
            Ok(Ran::Failed(jobs::Fate::Dead))
        }
        // Claimed again after its worker died on the last attempt.
        Some(_) if job.attempts > job.max_attempts => {
            let _ = jobs::bury(c, job.id, me, "lease expired on the last attempt (worker died)");
            Ok(Ran::Failed(jobs::Fate::Dead))
        }
        Some(handler) => {
            let result = c.transaction::<_, BoxError, _>(|c| {
                if !jobs::start(c, job.id, me)? {
                    return Ok(Ran::Lost);
                }
                match catch_unwind(AssertUnwindSafe(|| handler(c, &ctx, &job.payload))) {
                    Ok(r) => r?,
                    Err(_) => return Err("the job handler panicked".into()),
                }
                jobs::finish(c, job.id)?;
                Ok(Ran::Ok)
            });
            match result {
                Ok(r) => Ok(r),
                Err(e) => {
                    let delay = backoff(&setup.config, job.attempts).as_secs_f64();
                    jobs::fail(c, job.id, me, &e.to_string(), delay)
                        .map(Ran::Failed)
                        .map_err(BoxError::from)
                        .inspect(|fate| {
                            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, fate = ?fate,
                                error = %e, "job failed")
                        })
                }
            }
        }
    };
    let label = match outcome {
        Ok(Ran::Ok) => "ok",
        Ok(Ran::Failed(jobs::Fate::Dead)) => "dead",
        Ok(Ran::Failed(_)) => "retry",
        Ok(Ran::Lost) => "lost",
        // The connection is gone: the job waits for its lease to expire.
        Err(e) => {
            tracing::warn!(job = job.id, kind = %job.kind, error = %e, "job outcome not recorded");
            "lost"
        }
    };
    setup
        .metrics
        .job(&job.queue, &job.kind, label, started.elapsed().as_secs_f64());
}

fn schedule(setup: &Setup, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match setup.pool.get() {
            Ok(mut c) => {
                if let Err(e) = jobs::fire_due_schedules(&mut c) {
                    tracing::warn!(error = %e, "firing schedules failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduler has no connection"),
        }
        // Schedules are seconds apart at the finest; a tick of a fraction of the finest
        // period keeps them on time without busy polling.
        let tick = setup
            .registry
            .schedules
            .iter()
            .map(|s| s.every / 4)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let until = Instant::now() + tick;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(25).min(tick));
        }
    }
}
