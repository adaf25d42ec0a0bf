//! Comparison of a simulated thread-pool trajectory with a real CLR capture
//! (`experiments/clr-reference/data/*.csv`, written by `tp_capture.py`: a `#` setup line,
//! a `t_s,threads,pending,completed` header, one row per 100 ms poll).
//!
//! Pure functions, no I/O: the caller reads the file and builds the simulated trajectory.

/// A trajectory of the thread pool, one entry per sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trajectory {
    pub t_s: Vec<f64>,
    pub threads: Vec<f64>,
    pub pending: Vec<f64>,
    pub completed: Vec<f64>,
}

impl Trajectory {
    /// Appends a sample.
    pub fn push(&mut self, t_s: f64, threads: f64, pending: f64, completed: f64) {
        self.t_s.push(t_s);
        self.threads.push(threads);
        self.pending.push(pending);
        self.completed.push(completed);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t_s.len()
    }

    /// True if there are no samples.
    pub fn is_empty(&self) -> bool {
        self.t_s.is_empty()
    }

    /// Index of the last sample at or before `t_s` (the first sample if none is).
    pub fn index_at(&self, t_s: f64) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        Some(self.t_s.iter().rposition(|&t| t <= t_s + 1e-9).unwrap_or(0))
    }
}

/// The comparison at one whole second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondError {
    pub t_s: u32,
    pub ref_threads: f64,
    pub sim_threads: f64,
    pub ref_pending: f64,
    pub sim_pending: f64,
}

/// Parses a capture: `#` lines and the header are skipped; every other non-empty line must be
/// four numbers.
pub fn parse_csv(text: &str) -> Result<Trajectory, String> {
    let mut tr = Trajectory::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("t_s") {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 4 {
            return Err(format!(
                "line {}: expected 4 fields, found {}",
                i + 1,
                f.len()
            ));
        }
        let mut v = [0.0f64; 4];
        for (k, s) in f.iter().enumerate() {
            v[k] = s
                .parse::<f64>()
                .map_err(|e| format!("line {}: field {} {s:?}: {e}", i + 1, k + 1))?;
        }
        tr.push(v[0], v[1], v[2], v[3]);
    }
    if tr.is_empty() {
        return Err("no data rows".to_string());
    }
    Ok(tr)
}

/// One row per whole second from 1 s up to the end of the shorter trajectory, each value
/// taken from the nearest sample at or before that second.
pub fn compare(reference: &Trajectory, simulated: &Trajectory) -> Vec<SecondError> {
    let end = match (reference.t_s.last(), simulated.t_s.last()) {
        (Some(&a), Some(&b)) => a.min(b),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut s = 1u32;
    while (s as f64) <= end + 1e-9 {
        let t = s as f64;
        let (Some(i), Some(j)) = (reference.index_at(t), simulated.index_at(t)) else {
            break;
        };
        out.push(SecondError {
            t_s: s,
            ref_threads: reference.threads[i],
            sim_threads: simulated.threads[j],
            ref_pending: reference.pending[i],
            sim_pending: simulated.pending[j],
        });
        s += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# cores=2 clr=3.1.23\nt_s,threads,pending,completed\n0.006,2,298,1\n0.903,2,299,1\n1.005,3,297,2\n1.903,3,298,2\n2.004,4,297,3\n";

    #[test]
    fn parses_a_capture() {
        let t = parse_csv(CSV).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.threads[2], 3.0);
        assert_eq!(t.completed[0], 1.0);
        assert!(parse_csv("t_s,threads\n1,2\n").is_err());
        assert!(parse_csv("# only\n").is_err());
    }

    #[test]
    fn compares_per_whole_second_with_the_sample_at_or_before() {
        let r = parse_csv(CSV).unwrap();
        let mut s = Trajectory::default();
        for k in 0..25 {
            let t = 0.005 + 0.1 * k as f64;
            s.push(t, 2.0 + t.floor(), 300.0 - t.floor(), 1.0);
        }
        let e = compare(&r, &s);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].t_s, 1);
        assert_eq!((e[0].ref_threads, e[0].sim_threads), (2.0, 2.0));
        assert_eq!((e[1].ref_threads, e[1].sim_threads), (3.0, 3.0));
        assert_eq!(e[1].ref_pending, 298.0);
    }
}
