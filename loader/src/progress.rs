//! Progress of a pass: a bar on a terminal (objects and rows, with rates), structured logs
//! otherwise.

use crate::object::Outcome;
use crate::pass::Progress;
use crate::source::ObjectInfo;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar { bar: None, rows: 0 })
    } else {
        Box::new(Log)
    }
}

struct Bar {
    bar: Option<ProgressBar>,
    rows: u64,
}

impl Progress for Bar {
    fn start(&mut self, objects: u64, _bytes: u64) {
        let bar = ProgressBar::new(objects);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} objects ({per_sec}) {msg}",
            )
            .expect("a valid template"),
        );
        self.bar = Some(bar);
    }

    fn object_done(&mut self, object: &ObjectInfo, outcome: &Outcome) {
        if let Outcome::Loaded { rows_attested, .. } = outcome {
            self.rows += rows_attested;
        }
        if let Some(bar) = &self.bar {
            let rate = self.rows as f64 / bar.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{} rows ({rate:.0} rows/s)", self.rows));
            bar.inc(1);
            if let Outcome::Rejected { reason } = outcome {
                bar.suspend(|| tracing::info!(key = %object.key, %reason, "rejected"));
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

struct Log;

impl Progress for Log {
    fn start(&mut self, objects: u64, bytes: u64) {
        tracing::info!(objects, bytes, "objects to load");
    }

    fn object_done(&mut self, object: &ObjectInfo, outcome: &Outcome) {
        match outcome {
            Outcome::Loaded { rows_read, rows_attested } => {
                tracing::info!(key = %object.key, rows_read, rows_attested, "loaded")
            }
            Outcome::Rejected { reason } => tracing::info!(key = %object.key, %reason, "rejected"),
            Outcome::Deferred { reason } => tracing::warn!(key = %object.key, %reason, "deferred"),
            Outcome::Skipped => tracing::debug!(key = %object.key, "skipped: claimed by another loader"),
        }
    }
}

/// No output at all (tests).
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: u64, _: u64) {}
    fn object_done(&mut self, _: &ObjectInfo, _: &Outcome) {}
}
