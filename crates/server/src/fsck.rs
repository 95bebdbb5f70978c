//! `openkvs fsck`: checks (and with `--repair`, fixes) a data directory's fragment index against
//! its segment files, offline. See `crates/store/DESIGN.md`, "Crash recovery".

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::FsckArgs;

/// Runs the command; the exit status is 0 only when the store is clean at the end (after a
/// repair, when the check that follows it finds nothing).
pub(crate) fn command(args: &FsckArgs) -> anyhow::Result<std::process::ExitCode> {
    match check(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            // 1 means "problems remain"; a directory that cannot be checked is 2 (like e2fsck's
            // "errors left uncorrected" vs "operational error").
            let _ = writeln!(std::io::stderr().lock(), "Error: {e:#}");
            Ok(std::process::ExitCode::from(2))
        }
    }
}

fn check(args: &FsckArgs) -> anyhow::Result<std::process::ExitCode> {
    let dir = &args.data_dir;
    // Opening creates a store; a typo in --data-dir must not produce an empty "clean" one.
    if !dir.join("fragments.db").is_file() {
        bail!(
            "{} is not an openkvs data directory (no fragments.db)",
            dir.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bar = spinner(args.quiet);
    let started = Instant::now();
    bar.set_message("opening the store (crash recovery)");
    // Fails with DataDirInUse while `openkvs serve` holds the directory: fsck works offline.
    let store = match store::LocalFragmentStore::open(dir) {
        Ok(s) => s,
        Err(e @ store::Error::DataDirInUse { .. }) => {
            bar.finish_and_clear();
            return Err(e).context(format!(
                "{} is in use: stop `openkvs serve` first (fsck works offline)",
                dir.display()
            ));
        }
        Err(e) => {
            bar.finish_and_clear();
            return Err(e)
                .with_context(|| format!("opening the fragment store in {}", dir.display()));
        }
    };
    let recovery = store.recovery().clone();
    bar.set_message(if args.repair {
        "checking and repairing every fragment against its segment file"
    } else {
        "checking every fragment against its segment file"
    });
    let first = rt.block_on(store.fsck(args.repair))?;
    let last = if args.repair && !first.is_clean() {
        bar.set_message("checking again after the repair");
        Some(rt.block_on(store.fsck(false))?)
    } else {
        None
    };
    bar.finish_and_clear();
    let took = started.elapsed();
    let clean = last.as_ref().unwrap_or(&first).is_clean();

    if args.json {
        let v = serde_json::json!({
            "data_dir": dir.display().to_string(),
            "recovery": {
                "streams": recovery.streams,
                "truncated_files": recovery.truncated_files,
                "removed_files": recovery.removed_files,
                "orphan_bytes": recovery.orphan_bytes,
                "damaged_files": recovery.damaged_files,
            },
            "check": report_json(&first),
            "after_repair": last.as_ref().map(report_json),
            "clean": clean,
            "seconds": took.as_secs_f64(),
        });
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&v)?
        )?;
    } else {
        let mut out = String::new();
        print_human(&mut out, dir, &recovery, &first, last.as_ref(), took);
        std::io::stdout().lock().write_all(out.as_bytes())?;
    }
    Ok(if clean {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

fn spinner(quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        // Hidden by indicatif when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    };
    // The store's fsck is one call on its writer thread (about 1 s per million fragments) and
    // reports no intermediate progress, so this is a spinner with the elapsed time.
    let bar = ProgressBar::with_draw_target(None, target).with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn report_json(r: &store::FsckReport) -> serde_json::Value {
    let paths = |v: &[std::path::PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "repaired": r.repaired,
        "clean": r.is_clean(),
        "streams": r.streams,
        "fragments": r.fragments,
        "segment_files": r.segment_files,
        "orphan_files": paths(&r.orphan_files),
        "orphan_dirs": paths(&r.orphan_dirs),
        "orphan_tails": r.orphan_tails.iter().map(|t| serde_json::json!({
            "path": t.path.display().to_string(),
            "file_len": t.file_len,
            "indexed_end": t.indexed_end,
        })).collect::<Vec<_>>(),
        "missing_files": paths(&r.missing_files),
        "bad_fragments": r.bad_fragments.iter().map(|b| serde_json::json!({
            "stream_arn": b.stream_arn,
            "fragment_number": b.number.to_string(),
            "problem": problem_text(&b.problem),
        })).collect::<Vec<_>>(),
        "unknown_entries": paths(&r.unknown_entries),
    })
}

fn problem_text(p: &store::FragmentProblem) -> String {
    match p {
        store::FragmentProblem::MissingFile { path } => {
            format!("segment file {} is missing", path.display())
        }
        store::FragmentProblem::PastEnd {
            path,
            file_len,
            end,
        } => format!(
            "segment file {} is {file_len} bytes, the fragment ends at {end}",
            path.display()
        ),
        store::FragmentProblem::CorruptFrames { reason } => format!("frame table: {reason}"),
    }
}

fn print_problems(out: &mut String, r: &store::FsckReport) {
    let verb = |repaired: &'static str, found: &'static str| {
        if r.repaired { repaired } else { found }
    };
    for p in &r.orphan_files {
        let _ = writeln!(
            out,
            "  orphan segment file {} ({})",
            p.display(),
            verb("removed", "no fragment references it")
        );
    }
    for p in &r.orphan_dirs {
        let _ = writeln!(
            out,
            "  orphan directory {} ({})",
            p.display(),
            verb("removed", "no stream in the index")
        );
    }
    for t in &r.orphan_tails {
        let _ = writeln!(
            out,
            "  unindexed tail in {}: {} bytes after offset {} ({})",
            t.path.display(),
            t.file_len - t.indexed_end,
            t.indexed_end,
            verb("cut", "not referenced")
        );
    }
    for p in &r.missing_files {
        let _ = writeln!(out, "  missing segment file {}", p.display());
    }
    for b in &r.bad_fragments {
        let _ = writeln!(
            out,
            "  damaged fragment {} of {}: {} ({})",
            b.number,
            b.stream_arn,
            problem_text(&b.problem),
            verb("index row deleted", "unreadable")
        );
    }
    for p in &r.unknown_entries {
        let _ = writeln!(out, "  not created by openkvs, left alone: {}", p.display());
    }
}

fn print_human(
    out: &mut String,
    dir: &Path,
    recovery: &store::RecoveryReport,
    first: &store::FsckReport,
    last: Option<&store::FsckReport>,
    took: Duration,
) {
    let _ = writeln!(out, "fsck {}", dir.display());
    if recovery.truncated_files + recovery.removed_files + recovery.damaged_files > 0 {
        let _ = writeln!(
            out,
            "crash recovery at open: {} files cut, {} removed, {} orphan bytes; {} damaged",
            recovery.truncated_files,
            recovery.removed_files,
            recovery.orphan_bytes,
            recovery.damaged_files
        );
    }
    let _ = writeln!(
        out,
        "checked {} streams, {} fragments, {} segment files in {:.2?}",
        first.streams, first.fragments, first.segment_files, took
    );
    print_problems(out, first);
    let verdict = match (first.is_clean(), last) {
        (true, _) => "clean",
        (false, None) if first.repaired => "repaired",
        (false, None) => "problems found; run again with --repair to fix them",
        (false, Some(after)) if after.is_clean() => "repaired; the store is now clean",
        (false, Some(after)) => {
            let _ = writeln!(out, "problems remain after the repair:");
            print_problems(out, after);
            "not clean"
        }
    };
    let _ = writeln!(out, "{verdict}");
}
