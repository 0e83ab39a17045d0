//! Waking workers: `LISTEN crm_jobs` (a job was enqueued) and `LISTEN crm_outbox` (a
//! transaction with events committed) on a connection of its own, with polling as the
//! fallback when notifications are lost (connection dropped, Postgres restarted).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use parking_lot::{Condvar, Mutex};

/// A wake-up signal several threads wait on.
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Signal {
    pub fn wake(&self) {
        *self.generation.lock() += 1;
        self.cv.notify_all();
    }

    /// The current generation, taken before looking for work.
    pub fn seen(&self) -> u64 {
        *self.generation.lock()
    }

    /// Waits until woken after generation `seen`, or `timeout`.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let mut g = self.generation.lock();
        if *g == seen {
            let _ = self.cv.wait_for(&mut g, timeout);
        }
    }
}

/// The signals of one worker process.
#[derive(Default)]
pub struct Signals {
    pub jobs: Signal,
    pub outbox: Signal,
}

impl Signals {
    pub fn wake_all(&self) {
        self.jobs.wake();
        self.outbox.wake();
    }
}

/// Listens until `stop`, reconnecting after errors.
pub fn listen(url: String, signals: Arc<Signals>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match PgConnection::establish(&url) {
            Ok(mut conn) => {
                if diesel::sql_query("LISTEN crm_jobs").execute(&mut conn).is_err()
                    || diesel::sql_query("LISTEN crm_outbox").execute(&mut conn).is_err()
                {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                // Anything sent while we were not listening is picked up by the workers'
                // own look when they start, and by polling.
                signals.wake_all();
                while !stop.load(Ordering::SeqCst) {
                    // A cheap round trip lets libpq read pending notifications.
                    if diesel::sql_query("SELECT 1").execute(&mut conn).is_err() {
                        break;
                    }
                    let (mut jobs, mut outbox) = (false, false);
                    for n in conn.notifications_iter() {
                        match n {
                            Ok(n) if n.channel == "crm_jobs" => jobs = true,
                            Ok(_) => outbox = true,
                            Err(_) => break,
                        }
                    }
                    if jobs {
                        signals.jobs.wake();
                    }
                    if outbox {
                        signals.outbox.wake();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Err(e) => tracing::warn!(error = %e, "job listener cannot connect; retrying"),
        }
        for _ in 0..20 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
