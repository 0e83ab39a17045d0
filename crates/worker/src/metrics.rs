//! In-process figures of this instance's background work, rendered in the Prometheus
//! text format next to the HTTP metrics. Queue depth and dispatcher lag are read from
//! Postgres at scrape time (they are the same for every instance); these are what this
//! process did.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        for (i, le) in BUCKETS.iter().enumerate() {
            if v <= *le {
                self.counts[i] += 1;
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// (queue, kind, outcome) -> runs.
    runs: BTreeMap<(String, String, &'static str), u64>,
    /// queue -> run time.
    run_time: BTreeMap<String, Histogram>,
    /// subscriber -> events handled.
    handled: BTreeMap<String, u64>,
    /// subscriber -> events whose handling failed (queued for redelivery).
    handle_failures: BTreeMap<String, u64>,
    /// Commit to handled, seconds.
    lag: Histogram,
}

#[derive(Default)]
pub struct WorkerMetrics {
    inner: Mutex<Inner>,
}

impl WorkerMetrics {
    pub fn job(&self, queue: &str, kind: &str, outcome: &'static str, seconds: f64) {
        let mut i = self.inner.lock();
        *i.runs.entry((queue.to_owned(), kind.to_owned(), outcome)).or_default() += 1;
        i.run_time.entry(queue.to_owned()).or_default().observe(seconds);
    }

    pub fn handled(&self, subscriber: &str, lag_seconds: f64, ok: bool) {
        let mut i = self.inner.lock();
        *i.handled.entry(subscriber.to_owned()).or_default() += 1;
        if !ok {
            *i.handle_failures.entry(subscriber.to_owned()).or_default() += 1;
        }
        i.lag.observe(lag_seconds.max(0.0));
    }

    /// Runs recorded so far for one outcome (`ok`, `retry`, `dead`, `lost`), all queues.
    pub fn runs(&self, outcome: &str) -> u64 {
        let i = self.inner.lock();
        i.runs
            .iter()
            .filter(|((_, _, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn render(&self) -> String {
        let i = self.inner.lock();
        let mut out = String::new();
        out.push_str("# HELP crm_jobs_total Jobs this instance ran, by queue, kind and outcome.\n");
        out.push_str("# TYPE crm_jobs_total counter\n");
        for ((q, k, o), n) in &i.runs {
            let _ = writeln!(out, "crm_jobs_total{{queue=\"{q}\",kind=\"{k}\",outcome=\"{o}\"}} {n}");
        }
        out.push_str("# HELP crm_job_failures_total Failed job runs (retried or dead) by queue.\n");
        out.push_str("# TYPE crm_job_failures_total counter\n");
        let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
        for ((q, _, o), n) in &i.runs {
            if *o != "ok" {
                *failures.entry(q.as_str()).or_default() += n;
            }
        }
        for (q, n) in failures {
            let _ = writeln!(out, "crm_job_failures_total{{queue=\"{q}\"}} {n}");
        }
        out.push_str("# HELP crm_job_run_seconds Job run time by queue.\n");
        out.push_str("# TYPE crm_job_run_seconds histogram\n");
        for (q, h) in &i.run_time {
            h.render(&mut out, "crm_job_run_seconds", &format!("queue=\"{q}\""));
        }
        out.push_str("# HELP crm_events_handled_total Outbox events handed to each subscriber.\n");
        out.push_str("# TYPE crm_events_handled_total counter\n");
        for (s, n) in &i.handled {
            let _ = writeln!(out, "crm_events_handled_total{{subscriber=\"{s}\"}} {n}");
        }
        out.push_str("# HELP crm_event_handle_failures_total Events a subscriber failed on (redelivered as jobs).\n");
        out.push_str("# TYPE crm_event_handle_failures_total counter\n");
        for (s, n) in &i.handle_failures {
            let _ = writeln!(out, "crm_event_handle_failures_total{{subscriber=\"{s}\"}} {n}");
        }
        out.push_str("# HELP crm_dispatch_lag_seconds Time from an event's commit to its handling.\n");
        out.push_str("# TYPE crm_dispatch_lag_seconds histogram\n");
        i.lag.render(&mut out, "crm_dispatch_lag_seconds", "");
        out
    }
}
