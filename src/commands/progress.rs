//! Events rendered for a person at a terminal: diagnostic lines on stderr, runs of work as an
//! indicatif bar (drawn only when stderr is a terminal), lines printed above a bar without
//! tearing it.

use crate::events::{Event, EventSink, Unit};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// The sink every single-database command renders its progress with.
#[derive(Default)]
pub struct Stderr {
    bar: Mutex<Option<ProgressBar>>,
}

impl Stderr {
    /// A bar for a run of `total` units, labelled `label`: migrations show it as the message,
    /// a fill (rows) as the prefix, its message being the rows filled and the rate so far.
    fn bar_for(unit: Unit, total: u64, label: String) -> Option<ProgressBar> {
        let bar = ProgressBar::new(total);
        match unit {
            // One migration needs no bar: its line in the report says it all.
            Unit::Migrations if total > 1 => {
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:30} {pos}/{len} migrations  {msg}")
                {
                    bar.set_style(style);
                }
                bar.set_message(label);
            }
            Unit::Migrations => return None,
            Unit::Rows => {
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {percent:>3}% {msg} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(label);
            }
            Unit::Targets => {
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:30} {pos}/{len} targets  {msg}")
                {
                    bar.set_style(style);
                }
                bar.set_message(label);
            }
        }
        Some(bar)
    }
}

impl EventSink for Stderr {
    fn emit(&self, event: Event) {
        let Ok(mut bar) = self.bar.lock() else {
            return;
        };
        match event {
            Event::Line { text } => match bar.as_ref() {
                Some(b) => b.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            },
            Event::WorkStarted { unit, total, label } => {
                if let Some(old) = bar.take() {
                    old.finish_and_clear();
                }
                *bar = Self::bar_for(unit, total, label);
            }
            Event::WorkProgress { done, label } => {
                if let Some(b) = bar.as_ref() {
                    b.set_position(done);
                    b.set_message(label);
                }
            }
            Event::WorkFinished => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
            // Fleet events are drawn by the fleet's own view (commands/fleet.rs).
            Event::MigrationStarted { .. }
            | Event::MigrationApplied { .. }
            | Event::TargetStarted { .. }
            | Event::Target { .. }
            | Event::TargetFinished { .. } => {}
        }
    }
}
