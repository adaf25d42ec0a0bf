//! The calibrated GC pause model against the real runtime's blocking gen2 pauses
//! (`shared/reference/clr/gc`, CoreCLR 3.1 on 2 cores, copied to
//! `experiments/clr-reference/data/`): for 0.5 M, 3 M and 10 M live small objects the
//! simulated blocking gen2 pause must be within 20 % of the measured median, for
//! workstation and server GC, with the *default* [`GcPauseModel`] (one set of constants).

use std::path::PathBuf;

use w3sim_models::gc::{Gc, GcConfig, GcFlavor, GcPauseModel};

struct Row {
    live_objects: u64,
    gen2_ms_median: f64,
}

fn read(name: &str) -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/clr-reference/data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| header.iter().position(|h| h.trim() == n).expect(n);
    let (obj, med) = (col("live_objects"), col("gen2_ms_median"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                live_objects: f[obj].trim().parse().expect("live_objects"),
                gen2_ms_median: f[med].trim().parse().expect("gen2_ms_median"),
            }
        })
        .collect()
}

#[test]
fn blocking_gen2_pause_within_20_percent_of_the_measured_median() {
    let mut failures = Vec::new();
    println!("flavor        live_objects  measured_ms  simulated_ms   error");
    for (flavor, file) in [
        (GcFlavor::Workstation, "GC-workstation.csv"),
        (GcFlavor::Server, "GC-server.csv"),
    ] {
        let cfg = GcConfig::new(flavor, false, 2);
        assert_eq!(cfg.pause, GcPauseModel::default());
        assert_eq!(cfg.flavor, flavor);
        let rows = read(file);
        assert_eq!(rows.len(), 6, "{file}");
        for r in &rows {
            let sim = Gc::blocking_gen2_pause_ns(&cfg, r.live_objects) as f64 * 1e-6;
            let err = sim / r.gen2_ms_median - 1.0;
            let checked = [500_000, 3_000_000, 10_000_000].contains(&r.live_objects);
            println!(
                "{:<12} {:>13} {:>12.2} {:>13.2} {:>+7.1}%{}",
                format!("{flavor:?}"),
                r.live_objects,
                r.gen2_ms_median,
                sim,
                err * 100.0,
                if checked { "  (checked)" } else { "" }
            );
            if checked && err.abs() > 0.20 {
                failures.push(format!("{flavor:?} {}: {err:+.3}", r.live_objects));
            }
        }
    }
    assert!(failures.is_empty(), "outside 20 %: {failures:?}");
}
