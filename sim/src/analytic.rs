//! Textbook queueing results that the validation suite holds w3sim to.
//!
//! With every mechanism but the HTTP.SYS queue and a fixed pool of `c` threads
//! switched off, w3sim's pipeline *is* one of these queues: Poisson arrivals at λ,
//! `c` worker threads (min = max, so the pool never grows), a FIFO waiting room of
//! `queue_length` = K requests, and handler service times with mean 1/μ.

/// Steady-state figures of a queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueResult {
    /// Probability that an arrival is refused (M/M/c/K) or 0 (infinite room).
    pub blocking: f64,
    /// Probability that an accepted arrival has to wait.
    pub p_wait: f64,
    /// Mean wait in queue of accepted arrivals (seconds).
    pub wq: f64,
    /// Mean time in system of accepted arrivals (seconds).
    pub w: f64,
    /// Mean number in system.
    pub l: f64,
    /// Mean number waiting.
    pub lq: f64,
    /// Throughput (accepted arrivals per second).
    pub throughput: f64,
}

/// M/M/c/K with `k` waiting places (total capacity c + k), arrival rate `lambda`,
/// service rate `mu` per server. Exact, computed in log space (no overflow for large K).
pub fn mmck(lambda: f64, mu: f64, c: u32, k: u32) -> QueueResult {
    let a = lambda / mu;
    let cap = (c + k) as usize;
    let c = c as usize;
    // log of unnormalised p_n.
    let mut logp = Vec::with_capacity(cap + 1);
    logp.push(0.0f64);
    for n in 1..=cap {
        let prev = logp[n - 1];
        logp.push(prev + a.ln() - (n.min(c) as f64).ln());
    }
    let m = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logp.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|x| x / z).collect();
    let blocking = p[cap];
    let l: f64 = p.iter().enumerate().map(|(n, q)| n as f64 * q).sum();
    let lq: f64 = p
        .iter()
        .enumerate()
        .skip(c + 1)
        .map(|(n, q)| (n - c) as f64 * q)
        .sum();
    let lambda_eff = lambda * (1.0 - blocking);
    // An accepted arrival waits if it finds >= c in system (PASTA, conditioned on acceptance).
    let p_wait: f64 = p[c..cap].iter().sum::<f64>() / (1.0 - blocking);
    QueueResult {
        blocking,
        p_wait,
        wq: lq / lambda_eff,
        w: l / lambda_eff,
        l,
        lq,
        throughput: lambda_eff,
    }
}

/// Erlang C: M/M/c with an infinite waiting room. Requires λ < cμ.
pub fn erlang_c(lambda: f64, mu: f64, c: u32) -> QueueResult {
    let a = lambda / mu;
    let rho = a / c as f64;
    assert!(
        rho < 1.0,
        "Erlang C needs an unsaturated system (rho = {rho})"
    );
    // Erlang B by the stable recursion, then C from B.
    let mut b = 1.0;
    for n in 1..=c {
        b = a * b / (n as f64 + a * b);
    }
    let pw = b / (1.0 - rho * (1.0 - b));
    let wq = pw / (c as f64 * mu - lambda);
    QueueResult {
        blocking: 0.0,
        p_wait: pw,
        wq,
        w: wq + 1.0 / mu,
        l: lambda * (wq + 1.0 / mu),
        lq: lambda * wq,
        throughput: lambda,
    }
}

/// M/G/1 by Pollaczek–Khinchine: service mean `s` (seconds) and squared coefficient
/// of variation `scv` (0 for deterministic service: M/D/1; 1 for M/M/1).
pub fn mg1(lambda: f64, s: f64, scv: f64) -> QueueResult {
    let rho = lambda * s;
    assert!(rho < 1.0, "M/G/1 needs rho < 1 (rho = {rho})");
    let es2 = s * s * (1.0 + scv);
    let wq = lambda * es2 / (2.0 * (1.0 - rho));
    QueueResult {
        blocking: 0.0,
        p_wait: rho,
        wq,
        w: wq + s,
        l: lambda * (wq + s),
        lq: lambda * wq,
        throughput: lambda,
    }
}

/// The machine-repairman (finite-source) model: `users` users each thinking for an
/// exponential time of mean `z` seconds, `c` servers with exponential service of mean
/// `s` seconds, no waiting-room limit. Returns (throughput per second, mean response
/// time in seconds).
pub fn closed_mmc(users: u32, z: f64, s: f64, c: u32) -> (f64, f64) {
    let n_users = users as usize;
    let c = c as usize;
    let r = s / z;
    let mut logp = Vec::with_capacity(n_users + 1);
    logp.push(0.0f64);
    for n in 1..=n_users {
        // p_n / p_{n-1} = (N - n + 1) r / min(n, c)
        let prev = logp[n - 1];
        logp.push(prev + ((n_users - n + 1) as f64 * r).ln() - (n.min(c) as f64).ln());
    }
    let m = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logp.iter().map(|x| (x - m).exp()).collect();
    let total: f64 = w.iter().sum();
    let x: f64 = w
        .iter()
        .enumerate()
        .map(|(n, q)| q / total * n.min(c) as f64 / s)
        .sum();
    let resp = users as f64 / x - z;
    (x, resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmck_with_large_room_matches_erlang_c() {
        let a = mmck(14.4, 1.0, 16, 5000);
        let b = erlang_c(14.4, 1.0, 16);
        assert!((a.wq - b.wq).abs() < 1e-9, "{} vs {}", a.wq, b.wq);
        // The peers' README: Erlang C gives 0.3696 at rho = 0.9.
        assert!((b.wq - 0.3696).abs() < 5e-4, "{}", b.wq);
    }

    #[test]
    fn mm1k_matches_the_closed_form() {
        // M/M/1/K: blocking = (1-ρ)ρ^N / (1-ρ^{N+1}) with N = total capacity.
        let (rho, n) = (0.8f64, 11);
        let exact = (1.0 - rho) * rho.powi(n) / (1.0 - rho.powi(n + 1));
        let r = mmck(0.8, 1.0, 1, 10);
        assert!((r.blocking - exact).abs() < 1e-12);
    }

    #[test]
    fn md1_waits_half_as_long_as_mm1() {
        let d = mg1(0.8, 1.0, 0.0);
        let m = mg1(0.8, 1.0, 1.0);
        assert!((d.wq - 2.0).abs() < 1e-12);
        assert!((m.wq - 4.0).abs() < 1e-12);
        let e = erlang_c(0.8, 1.0, 1);
        assert!((e.wq - m.wq).abs() < 1e-12);
    }

    #[test]
    fn closed_model_obeys_the_response_time_law() {
        // With one user there is never a queue: R = S.
        let (x, r) = closed_mmc(1, 1.0, 0.1, 1);
        assert!((r - 0.1).abs() < 1e-12);
        assert!((x - 1.0 / 1.1).abs() < 1e-12);
    }
}
