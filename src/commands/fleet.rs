//! `realmguard fleet status|migrate|verify|init`: the fleet file and flags turned into
//! [`crate::fleet::FleetOptions`], a live view on stderr while it runs (one line per running
//! target, an overall bar), the report on stdout, Ctrl-C and the exit code.

use super::cli::{FleetArgs, FleetCommand, FleetInitArgs, GlobalOpts};
use super::Outcome;
use crate::events::{Event, EventSink, Unit};
use crate::fleet::{self, Action, FleetFile, FleetOptions, OnError, Verdict};
use crate::migrate::{source, MigrateOptions};
use crate::output::Format;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) async fn run(g: &GlobalOpts, c: &FleetCommand) -> anyhow::Result<Outcome> {
    match c {
        FleetCommand::Init(a) => init(g, a).await,
        FleetCommand::Status(a) => {
            let opts = MigrateOptions::default();
            run_fleet(
                g,
                &a.fleet,
                &a.source.dir,
                Action::Status,
                opts,
                a.exit_code,
            )
            .await
        }
        FleetCommand::Verify(a) => {
            let opts = MigrateOptions::default();
            run_fleet(g, &a.fleet, &a.source.dir, Action::Verify, opts, false).await
        }
        FleetCommand::Migrate(a) => {
            let opts = super::migrate::options(&a.migrate);
            run_fleet(
                g,
                &a.fleet,
                &a.migrate.source.dir,
                Action::Migrate,
                opts,
                false,
            )
            .await
        }
    }
}

async fn run_fleet(
    g: &GlobalOpts,
    a: &FleetArgs,
    dir: &Path,
    action: Action,
    migrate: MigrateOptions,
    pending_is_finding: bool,
) -> anyhow::Result<Outcome> {
    let cfg = g.config()?;
    let files = source::load_dir(dir)?;
    let file = FleetFile::load(a.fleet.as_deref())?;
    let targets = fleet::targets::resolve(&file).await?;
    let targets = fleet::targets::only(targets, &a.only)?;
    let canary = a.canary.clone().or_else(|| file.canary.clone());
    if let Some(c) = &a.canary {
        if !targets.iter().any(|t| t.group.as_ref() == Some(c)) {
            anyhow::bail!("--canary {c}: no target of the fleet is in group `{c}`");
        }
    }
    let on_error = match a.on_error.as_deref() {
        Some("continue") => OnError::Continue,
        Some(_) => OnError::Stop,
        None => file.on_error.unwrap_or(OnError::Stop),
    };
    let jobs = a
        .jobs
        .map(|j| j as usize)
        .or(file.jobs)
        .unwrap_or_else(|| targets.len().clamp(1, 8));
    let cancel = super::cancel_on_ctrl_c();
    let opts = FleetOptions {
        action,
        jobs,
        on_error,
        max_failures: a.max_failures.or(file.max_failures).unwrap_or(0),
        canary,
        migrate,
        cancel: cancel.clone(),
    };
    let view = Arc::new(LiveView::default());
    let report = fleet::run(targets, cfg, files, opts, view.clone()).await;
    view.clear();
    if cancel.is_cancelled() {
        eprintln!(
            "realmguard: interrupted: no new target was started; running ones stopped after the migration in hand"
        );
    }
    let mut out = std::io::stdout().lock();
    fleet::report::render(&report, g.format, &mut out)?;
    out.flush()?;
    Ok(match report.verdict(pending_is_finding) {
        Verdict::Clean => Outcome::Clean,
        Verdict::Findings => Outcome::Findings,
        Verdict::Failed => Outcome::Failed,
    })
}

async fn init(g: &GlobalOpts, a: &FleetInitArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("fleet init")?;
    let path = a
        .fleet
        .clone()
        .unwrap_or_else(|| fleet::config::DEFAULT_PATH.into());
    let r = fleet::init_local(a.local as usize, &path, a.force).await?;
    let mut out = std::io::stdout().lock();
    match g.format {
        Format::Json => crate::output::write_json(&mut out, &r)?,
        _ => writeln!(
            out,
            "Wrote {} for {} database(s) on the embedded local cluster ({}; {} created). Next: realmguard fleet migrate",
            r.fleet_file,
            r.targets.len(),
            r.targets.join(", "),
            r.created.len()
        )?,
    }
    Ok(Outcome::Clean)
}

/// The fleet's live view: a line per running target (name, current migration, elapsed) above
/// an overall bar (done / total, failures). Drawn only on a terminal; elsewhere only the
/// targets' diagnostic lines are printed.
#[derive(Default)]
struct LiveView {
    state: Mutex<ViewState>,
    failed: AtomicUsize,
}

#[derive(Default)]
struct ViewState {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    running: HashMap<String, ProgressBar>,
}

impl LiveView {
    fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            for (_, b) in s.running.drain() {
                b.finish_and_clear();
            }
            if let Some(o) = s.overall.take() {
                o.finish_and_clear();
            }
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl EventSink for LiveView {
    fn emit(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        match event {
            Event::WorkStarted {
                unit: Unit::Targets,
                total,
                ..
            } => {
                let multi = MultiProgress::new();
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(style("{bar:30} {pos}/{len} targets  {msg}"));
                bar.set_message("0 failed");
                s.overall = Some(bar);
                s.multi = Some(multi);
            }
            Event::TargetStarted { target } => {
                let (Some(multi), Some(overall)) = (&s.multi, &s.overall) else {
                    return;
                };
                let line = multi.insert_before(overall, ProgressBar::new_spinner());
                line.set_style(style("{spinner} {prefix:20} {msg:40} {elapsed}"));
                line.set_prefix(target.clone());
                line.set_message("connecting");
                line.enable_steady_tick(Duration::from_millis(200));
                s.running.insert(target, line);
            }
            Event::Target { target, inner } => match *inner {
                Event::MigrationStarted {
                    version,
                    description,
                } => {
                    if let Some(line) = s.running.get(&target) {
                        line.set_message(format!("{version} {description}"));
                    }
                }
                Event::Line { text } => {
                    let rest = text.strip_prefix("realmguard: ").unwrap_or(&text);
                    let text = format!("realmguard: {target}: {rest}");
                    match &s.multi {
                        Some(m) if !m.is_hidden() => {
                            let _ = m.println(text);
                        }
                        _ => eprintln!("{text}"),
                    }
                }
                _ => {}
            },
            Event::TargetFinished { target, state } => {
                if let Some(line) = s.running.remove(&target) {
                    line.finish_and_clear();
                }
                if state == "failed" {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(o) = &s.overall {
                    o.inc(1);
                    o.set_message(format!("{} failed", self.failed.load(Ordering::SeqCst)));
                }
            }
            Event::Line { text } => eprintln!("{text}"),
            _ => {}
        }
    }
}
