//! `w3sim merge DIR... --out DIR`: combines the outputs of shards (`--shard K/N`) into
//! one directory, byte-identical to the same sweep run unsharded: `runs.csv` in
//! canonical order, `points.csv` recomputed from it, `sweep.json` copied.
//!
//! Every input must hold the same `sweep.json` (same sweep file, base scenario and
//! w3sim version). The merge replays the sweep's plan (including precision rounds)
//! over the union of the runs and refuses to write anything if a run is missing. `out`
//! must be new or empty (no non-empty `runs.csv`) and none of the inputs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::SweepError;
use super::run::{Records, final_manifest_json, plan, points_csv, read_runs, runs_csv};
use super::spec::Manifest;
use crate::output::write_atomic;

/// What a merge produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeReport {
    pub runs: usize,
    pub points: usize,
}

fn read_manifest(dir: &Path) -> Result<(String, Manifest), SweepError> {
    let p = dir.join("sweep.json");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| SweepError::BadInput(format!("cannot read {}: {e}", p.display())))?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| SweepError::BadInput(format!("{}: not a sweep.json: {e}", p.display())))?;
    Ok((text, m))
}

/// Refuses an `out` that is one of the inputs (compared as canonical paths) or that
/// already holds a non-empty `runs.csv`: a merge writes only into a new or empty
/// directory, so it never replaces finished runs.
fn check_out(dirs: &[PathBuf], out: &Path) -> Result<(), SweepError> {
    if let Ok(out_c) = std::fs::canonicalize(out) {
        if let Some(d) = dirs
            .iter()
            .find(|d| std::fs::canonicalize(d).is_ok_and(|c| c == out_c))
        {
            return Err(SweepError::BadInput(format!(
                "--out {} is one of the directories to merge ({}): merging into it would replace its runs.csv; choose a new --out",
                out.display(),
                d.display()
            )));
        }
    }
    let runs = out.join("runs.csv");
    if std::fs::metadata(&runs).is_ok_and(|md| md.len() > 0) {
        return Err(SweepError::BadInput(format!(
            "{} already exists: merge writes into a new or empty directory; choose another --out",
            runs.display()
        )));
    }
    Ok(())
}

/// Merges shard directories into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeReport, SweepError> {
    let Some(first) = dirs.first() else {
        return Err(SweepError::BadInput(
            "merge needs at least one directory".into(),
        ));
    };
    check_out(dirs, out)?;
    let (_, m) = read_manifest(first)?;
    let m = m.plan_only();
    let text = m.to_json();
    let mut all = Records::new();
    for d in dirs {
        let (_, other) = read_manifest(d)?;
        if other.plan_only().to_json() != text {
            return Err(SweepError::BadInput(format!(
                "{} and {} come from different sweeps (their sweep.json differ)",
                first.join("sweep.json").display(),
                d.join("sweep.json").display()
            )));
        }
        let runs = d.join("runs.csv");
        if !runs.exists() {
            return Err(SweepError::BadInput(format!(
                "{} is missing",
                runs.display()
            )));
        }
        for (k, r) in read_runs(&runs, &m)? {
            if let Some(prev) = all.get(&k) {
                if prev != &r {
                    // The inputs are at fault (bad input, exit 2), not this merge.
                    return Err(SweepError::BadInput(format!(
                        "point {} replication {} differs between inputs (same seed, different results): were they run with different w3sim builds?",
                        k.0, k.1
                    )));
                }
            }
            all.insert(k, r);
        }
    }
    let done = Mutex::new(all);
    let required = plan(&m, None, &done, |pending, _| {
        let (p, r) = pending[0];
        Err(SweepError::BadInput(format!(
            "{} run(s) of the sweep are in none of the inputs, e.g. point {p} replication {r}: is a shard missing or unfinished? (finish it with `w3sim sweep … --shard K/N --resume`)",
            pending.len()
        )))
    })?
    .expect("merge never stops early");
    let all: Records = done
        .into_inner()
        .expect("lock")
        .into_iter()
        .filter(|(k, _)| required.contains(k))
        .collect();
    std::fs::create_dir_all(out)
        .map_err(|e| SweepError::Internal(format!("cannot create {}: {e}", out.display())))?;
    write_atomic(&out.join("sweep.json"), &final_manifest_json(&m, &all))?;
    write_atomic(&out.join("runs.csv"), &runs_csv(&m, &all))?;
    write_atomic(&out.join("points.csv"), &points_csv(&m, &all))?;
    Ok(MergeReport {
        runs: all.len(),
        points: m.points.len(),
    })
}
