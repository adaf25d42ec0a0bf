//! Ephemeral-port exhaustion (`w3sim_models::tcp`) against Erlang's loss formula and the
//! `ports / TcpTimedWaitDelay` rule of thumb (DOMAIN §7).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use w3sim_models::tcp::{ConnectError, Tcp, TcpConfig};
use w3sim_models::time::{SECONDS, from_secs};

/// Erlang B by the stable recursion B(0) = 1, B(k) = A·B(k−1) / (k + A·B(k−1)).
fn erlang_b(servers: u32, offered: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=servers {
        b = offered * b / (k as f64 + offered * b);
    }
    b
}

/// Poisson connects at `rate`/s, each held an exponential `hold_s` then actively closed.
/// Returns the fraction refused.
fn poisson_loss(cfg: TcpConfig, rate: f64, hold_s: f64, arrivals: u64, seed: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut tcp = Tcp::new(cfg);
    let mut closes: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut t = 0.0f64;
    let warmup = arrivals / 10;
    let (mut offered, mut lost) = (0u64, 0u64);
    for i in 0..arrivals {
        t += -(1.0 - rng.random::<f64>()).ln() / rate;
        let now = from_secs(t);
        while let Some(&Reverse(c)) = closes.peek() {
            if c > now {
                break;
            }
            closes.pop();
            tcp.close(c, 0, true);
        }
        let ok = tcp.connect(now, 0).is_ok();
        if ok {
            let hold = -(1.0 - rng.random::<f64>()).ln() * hold_s;
            closes.push(Reverse(now + from_secs(hold)));
        }
        if i >= warmup {
            offered += 1;
            lost += u64::from(!ok);
        }
        let used = tcp.ports_in_use.get() + tcp.ports_time_wait.get();
        assert!(used <= tcp.config().dynamic_port_count as u64);
    }
    assert_eq!(tcp.wsaenobufs.total(), tcp.connection_failures.total());
    lost as f64 / offered as f64
}

#[test]
fn port_exhaustion_is_an_erlang_loss_system() {
    // 200 ports, TIME_WAIT 1 s, calls of mean 0.5 s: holding time 1.5 s.
    let cfg = TcpConfig {
        dynamic_port_start: 49152,
        dynamic_port_count: 200,
        tcp_timed_wait_delay_ns: SECONDS,
        reuse_time_wait_ports: false,
    };
    for (rate, tol) in [(120.0, 0.003), (133.3, 0.005), (160.0, 0.006)] {
        let expected = erlang_b(200, rate * 1.5);
        let got = poisson_loss(cfg.clone(), rate, 0.5, 400_000, 11);
        assert!(
            (got - expected).abs() < tol,
            "rate {rate}/s: loss {got:.5}, Erlang B {expected:.5}"
        );
    }
}

/// Deterministic connects at `rate`/s for `secs`, each closed actively 10 ms later.
/// Returns (failures, failures in the last 240 s).
fn constant_rate(cfg: TcpConfig, rate: u64, secs: u64) -> (u64, u64) {
    let mut tcp = Tcp::new(cfg);
    let gap = SECONDS / rate;
    let hold = 10_000_000;
    let mut late = 0;
    for i in 0..rate * secs {
        let now = i * gap;
        if let Err(e) = tcp.connect(now, 0) {
            assert_eq!(e, ConnectError::NoBufs);
            if now >= (secs - 240) * SECONDS {
                late += 1;
            }
        } else {
            tcp.close(now + hold, 0, true);
        }
    }
    (tcp.wsaenobufs.total(), late)
}

#[test]
fn sustainable_rate_is_ports_over_time_wait() {
    // 16,384 / 240 s ≈ 68.3 connections/s.
    let (fails, _) = constant_rate(TcpConfig::windows_2008(), 60, 900);
    assert_eq!(fails, 0);
    let (fails, late) = constant_rate(TcpConfig::windows_2008(), 80, 900);
    assert!(fails > 0);
    // In steady state the excess fails, 80 − 68.27 ≈ 11.7/s on average over a
    // TIME_WAIT period. With deterministic arrivals they come in bursts: every 240 s all
    // connects fail for 35 s until the ports of the previous burst of successes expire.
    let per_s = late as f64 / 240.0;
    assert!(
        (per_s - (80.0 - 16384.0 / 240.0)).abs() < 0.5,
        "{per_s}/s fail"
    );
}

#[test]
fn windows_2003_profile_sustains_about_16_connections_per_second() {
    // 3976 / 240 s ≈ 16.6/s.
    let (fails, _) = constant_rate(TcpConfig::max_user_port_2003(), 15, 900);
    assert_eq!(fails, 0);
    let (fails, _) = constant_rate(TcpConfig::max_user_port_2003(), 20, 900);
    assert!(fails > 0);
    // 120 s TIME_WAIT doubles it.
    let mut cfg = TcpConfig::max_user_port_2003();
    cfg.tcp_timed_wait_delay_ns = 120 * SECONDS;
    let (fails, _) = constant_rate(cfg, 32, 900);
    assert_eq!(fails, 0);
}

#[derive(Clone, Debug)]
enum Op {
    Connect(u32),
    Close(bool),
    Advance,
}

fn op() -> impl Strategy<Value = (u64, Op)> {
    (
        0u64..3 * SECONDS,
        prop_oneof![
            (0u32..3).prop_map(Op::Connect),
            any::<bool>().prop_map(Op::Close),
            Just(Op::Advance),
        ],
    )
}

proptest! {
    #[test]
    fn ports_never_exceed_the_range_and_all_free_after_time_wait(
        ops in prop::collection::vec(op(), 1..300),
        reuse in any::<bool>(),
        ports in 1u32..20,
    ) {
        let cfg = TcpConfig {
            dynamic_port_start: 49152,
            dynamic_port_count: ports,
            tcp_timed_wait_delay_ns: 10 * SECONDS,
            reuse_time_wait_ports: reuse,
        };
        let delay = cfg.tcp_timed_wait_delay_ns;
        let mut tcp = Tcp::new(cfg);
        let mut open: Vec<u32> = Vec::new();
        let mut now = 0;
        let mut last_close = 0;
        for (dt, op) in ops {
            now += dt;
            match op {
                Op::Connect(ep) => {
                    if tcp.connect(now, ep).is_ok() {
                        open.push(ep);
                    }
                }
                Op::Close(active) => {
                    if let Some(ep) = open.pop() {
                        tcp.close(now, ep, active);
                        last_close = now;
                    }
                }
                Op::Advance => tcp.advance(now),
            }
            let used = tcp.ports_in_use.get() + tcp.ports_time_wait.get();
            prop_assert!(used <= ports as u64);
            // ports_free counts entries expired by `now` without releasing them.
            let free = tcp.ports_free(now);
            tcp.advance(now);
            let used = tcp.ports_in_use.get() + tcp.ports_time_wait.get();
            prop_assert_eq!(free as u64, ports as u64 - used);
            prop_assert_eq!(tcp.ports_in_use.get(), open.len() as u64);
        }
        for ep in open.drain(..) {
            tcp.close(now, ep, true);
            last_close = now;
        }
        let end = now.max(last_close + delay);
        prop_assert_eq!(tcp.ports_free(end), ports);
        tcp.advance(end);
        prop_assert_eq!(tcp.ports_time_wait.get(), 0);
        prop_assert_eq!(tcp.ports_in_use.get(), 0);
        prop_assert_eq!(tcp.ports_time_wait.underflows(), 0);
        prop_assert_eq!(tcp.ports_in_use.underflows(), 0);
        prop_assert_eq!(tcp.established.underflows(), 0);
    }
}
