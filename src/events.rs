//! Progress and diagnostics from the domain modules, as data.
//!
//! Domain code never writes to a terminal: it tells an [`EventSink`] what is happening (a
//! migration started, a fill batch committed, a lock is being waited for) and returns a typed
//! report at the end. The commands layer renders events on stderr with indicatif; tests and the
//! fleet runner collect them or drop them. See `docs/architecture.md`.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One thing worth telling the person (or program) watching a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A diagnostic line, rendered on stderr exactly as given (it carries its own
    /// `realmguard: ` or `warning: ` prefix).
    Line { text: String },
    /// A run of `total` units of work starts (migrations, rows of a fill); `unit` names them.
    WorkStarted {
        unit: Unit,
        total: u64,
        label: String,
    },
    /// The current run of work reached `done` of its total; `label` says what it is at now.
    WorkProgress { done: u64, label: String },
    /// The current run of work ended (done or not).
    WorkFinished,
    /// Migration `version` starts (inside its lock, before its first statement).
    MigrationStarted { version: i64, description: String },
    /// Migration `version` committed.
    MigrationApplied { version: i64, duration_ms: u64 },
    /// A fleet target starts its work (a connection, a read, maybe migrations).
    TargetStarted { target: String },
    /// An event from inside one fleet target's run, tagged with the target's name.
    Target { target: String, inner: Box<Event> },
    /// A fleet target is done; `state` is its final state (`ok`, `failed`, …).
    TargetFinished { target: String, state: String },
}

/// What a run of work counts, which decides how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Migrations,
    Rows,
    /// Databases of a fleet.
    Targets,
}

impl Event {
    /// A diagnostic line (see [`Event::Line`]).
    pub fn line(text: impl Into<String>) -> Event {
        Event::Line { text: text.into() }
    }
}

/// Where domain code sends its events. Implementations must be cheap: events arrive from inside
/// transactions and fill loops.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Passes every event on to `inner` wrapped as [`Event::Target`] with the target's name: the
/// sink a fleet gives each target's run.
pub struct Tagged<'a> {
    pub target: String,
    pub inner: &'a dyn EventSink,
}

impl EventSink for Tagged<'_> {
    fn emit(&self, event: Event) {
        self.inner.emit(Event::Target {
            target: self.target.clone(),
            inner: Box::new(event),
        });
    }
}

/// Drops every event: for callers that only want the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl EventSink for Silent {
    fn emit(&self, _event: Event) {}
}

/// Keeps every event, in order: for tests and for runners that render them later.
#[derive(Debug, Default)]
pub struct Collect(Mutex<Vec<Event>>);

impl Collect {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for Collect {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

/// A request to stop, shared between the commands layer (which owns Ctrl-C and sets it) and the
/// domain code (which checks it between units of work, or races long waits against it).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// Ask every holder to stop.
    pub fn cancel(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once [`Cancel::cancel`] was called (at once when it already was).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_keeps_events_in_order() {
        let c = Collect::default();
        c.emit(Event::line("a"));
        c.emit(Event::WorkFinished);
        assert_eq!(c.events(), vec![Event::line("a"), Event::WorkFinished]);
    }

    #[tokio::test]
    async fn cancel_wakes_a_waiter_and_stays_set() {
        let c = Cancel::default();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.cancelled().await })
        };
        tokio::task::yield_now().await;
        c.cancel();
        waiter.await.unwrap();
        assert!(c.is_cancelled());
        c.cancelled().await;
    }
}
