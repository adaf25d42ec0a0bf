//! A load balancer in front of a farm of web servers: routing, health probes, removal
//! of a failing server for a hold time and its reinstatement.
//!
//! **Models** the hardware or software balancer of seed 003: "when the server responds
//! with a HTTP 503 error, the load balancer will automatically remove the web server
//! from being active in production for a 15 second period. This means that the other
//! servers will take the increased load during the time frame. During the cooling
//! period, the server may finish serving its request and it will automatically be
//! reinstated when the load balancer does its next ping."
//!
//! - Routing: round-robin over the servers in rotation, least connections (fewest
//!   requests the balancer has sent there and not yet seen answered; ties by index),
//!   or uniformly random.
//! - Weights (ARR's weighted round robin, F5's ratio, HAProxy's `weight`): a server of
//!   weight 2 gets twice the requests of one of weight 1. Round-robin then becomes
//!   nginx's smooth weighted round-robin (the heavy server's turns are spread, not
//!   bunched: 5:1:1 give a, a, b, a, c, a, a), least connections compares requests
//!   outstanding per unit of weight (HAProxy's `leastconn`), random draws in proportion
//!   to the weights. Equal weights (the default) route exactly as unweighted.
//! - Cost per request: least connections reads the root of a tournament tree and random
//!   descends a Fenwick tree of weights (O(log n) per change, checked against the linear
//!   scans by a proptest); round-robin is O(1) unless servers are out; weighted
//!   round-robin visits every server (nginx's algorithm), so a farm of hundreds of
//!   weighted servers pays for it.
//! - Passive health: a 503 answer to a user request (`remove_on_503`) takes the server
//!   out for `hold` (seed 003: 15 s).
//! - Active health: every `probe_interval` the balancer sends one probe request to
//!   every server (one outstanding per server); a probe that fails or is not answered
//!   within `probe_timeout` takes the server out too. When the hold is over the server
//!   waits for its next probe to pass, then goes back into rotation ("reinstated when
//!   the load balancer does its next ping"). The probes' timeouts all last the same, so
//!   they wait in [`crate::deadlines`] with one timer outstanding, not one per probe.
//! - With every server out, the balancer either answers 503 itself (`Reject`, the
//!   default: the seed's "all servers have a problem at once") or spreads the load over
//!   all servers anyway (`FailOpen`, what some cloud balancers do).
//!
//! **Leaves out**: session affinity, slow start after reinstatement, the
//! balancer's own capacity and latency (it is taken as instantaneous), connection
//! reuse between balancer and servers.

use rand::{Rng, RngExt};

use crate::deadlines::Deadlines;
use crate::effects::Effects;
use crate::stat::Gauge;
use crate::time::SimTime;

/// No server (an empty node of the least-connections tree).
const NO_SERVER: u32 = u32::MAX;

/// How a request is given a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    LeastConnections,
    Random,
}

/// What the balancer does when no server is in rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenAllOut {
    /// Answer 503 itself.
    Reject,
    /// Send to every server anyway, by the same policy.
    FailOpen,
}

/// Settings of the balancer.
#[derive(Clone, Debug, PartialEq)]
pub struct LbConfig {
    pub servers: usize,
    pub policy: Policy,
    /// Time between two probe rounds; 0 disables active probes (a held-out server then
    /// comes back as soon as its hold ends).
    pub probe_interval_ns: u64,
    /// A probe not answered within this fails.
    pub probe_timeout_ns: u64,
    /// How long a failing server is kept out before its next probe may reinstate it.
    pub hold_ns: u64,
    /// Whether a 503 answer to a user request takes the server out.
    pub remove_on_503: bool,
    pub when_all_out: WhenAllOut,
    /// Each server's weight (≥ 1), in server order; empty: every server weighs 1.
    pub weights: Vec<u32>,
}

/// Where a server stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    InRotation,
    /// Out until the hold ends.
    HeldOut {
        until: SimTime,
    },
    /// The hold is over; the next passing probe reinstates it.
    AwaitingProbe,
}

/// The balancer's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbTimer {
    /// Time for a probe round.
    ProbeRound,
    /// The oldest unanswered probe's timeout is due (one timer outstanding for all the
    /// probes out, [`crate::deadlines`]).
    ProbeTimeouts,
    /// The hold of `server` (removal number `removal`) is over.
    HoldOver { server: u16, removal: u32 },
}

/// What happened to a server's place in rotation (for the run's marked events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbEvent {
    Removed { server: u16, reason: &'static str },
    Reinstated { server: u16 },
}

/// A probe the driver must send: its answer goes back through [`LoadBalancer::probe_answered`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub server: u16,
    pub seq: u32,
}

#[derive(Clone, Debug)]
struct Member {
    state: ServerState,
    /// Requests sent and not answered yet (least connections).
    active: u32,
    /// The outstanding probe's sequence number.
    probe_pending: Option<u32>,
    probe_seq: u32,
    removals: u32,
    routed: u64,
    reinstated: u32,
    out_since: SimTime,
    out_ns: u128,
    weight: u32,
    /// Smooth weighted round-robin's running credit.
    credit: i64,
}

/// The load balancer's state and counters.
#[derive(Debug)]
pub struct LoadBalancer<R> {
    cfg: LbConfig,
    members: Vec<Member>,
    cursor: usize,
    /// Not every weight is the same: route by weight.
    weighted: bool,
    /// Sum of the weights of the servers in rotation, and of all servers.
    weight_in_rotation: u64,
    weight_total: u64,
    /// Least connections: a tournament tree of servers (`NO_SERVER` for one not
    /// eligible), the best at the root: O(log n) per change instead of a scan per request.
    least: Vec<u32>,
    /// Random: a Fenwick tree of the eligible servers' weights (one each when unweighted).
    fenwick: Vec<u64>,
    /// Whether a server was in rotation when the indexes were last built (with none,
    /// fail-open makes every server eligible).
    indexed_any_in: bool,
    rng: R,
    probes: Vec<ProbeRequest>,
    /// (server, seq) of the probes sent, by timeout: they all last `probe_timeout_ns`,
    /// so one timer is outstanding instead of one per probe that outlives its answer.
    probe_deadlines: Deadlines<(u16, u32)>,
    events: Vec<LbEvent>,
    /// Servers in rotation (time-weighted).
    pub in_rotation: Gauge,
    /// Requests the balancer answered itself because no server was in rotation.
    pub rejected_all_out: u64,
    /// Probes sent, and probes that failed or timed out.
    pub probes_sent: u64,
    pub probes_failed: u64,
}

/// Whether probe (server, seq) is still out: not answered and not timed out.
fn probe_out(members: &[Member]) -> impl Fn((u16, u32)) -> bool + '_ {
    |(s, q)| members[s as usize].probe_pending == Some(q)
}

impl<R: Rng> LoadBalancer<R> {
    pub fn new(cfg: LbConfig, rng: R) -> Self {
        let n = cfg.servers.max(1);
        let mut in_rotation = Gauge::new();
        in_rotation.set(0, n as u64);
        let weight = |i: usize| cfg.weights.get(i).copied().unwrap_or(1).max(1);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                state: ServerState::InRotation,
                active: 0,
                probe_pending: None,
                probe_seq: 0,
                removals: 0,
                routed: 0,
                reinstated: 0,
                out_since: 0,
                out_ns: 0,
                weight: weight(i),
                credit: 0,
            })
            .collect();
        let weighted = members.iter().any(|m| m.weight != members[0].weight);
        let weight_total = members.iter().map(|m| m.weight as u64).sum();
        let mut b = Self {
            members,
            cfg,
            cursor: 0,
            weighted,
            weight_in_rotation: weight_total,
            weight_total,
            least: Vec::new(),
            fenwick: Vec::new(),
            indexed_any_in: true,
            rng,
            probes: Vec::new(),
            probe_deadlines: Deadlines::new(),
            events: Vec::new(),
            in_rotation,
            rejected_all_out: 0,
            probes_sent: 0,
            probes_failed: 0,
        };
        b.rebuild_indexes();
        b
    }

    /// Whether `i` may be routed to: in rotation, or any server when none is (fail-open).
    #[inline]
    fn eligible(&self, i: usize) -> bool {
        self.in_rotation.get() == 0 || self.members[i].state == ServerState::InRotation
    }

    /// The better of two servers for least connections: eligible, fewest outstanding per
    /// unit of weight (a/w < b/v as a·v < b·w), lowest index.
    #[inline]
    fn least_of(&self, a: u32, b: u32) -> u32 {
        if a == NO_SERVER {
            return b;
        }
        if b == NO_SERVER {
            return a;
        }
        let (x, y) = (&self.members[a as usize], &self.members[b as usize]);
        let (l, r) = (
            x.active as u64 * y.weight as u64,
            y.active as u64 * x.weight as u64,
        );
        if l < r || (l == r && a < b) { a } else { b }
    }

    fn rebuild_indexes(&mut self) {
        let n = self.members.len();
        self.indexed_any_in = self.in_rotation.get() > 0;
        match self.cfg.policy {
            Policy::LeastConnections => {
                let size = n.next_power_of_two();
                self.least = vec![NO_SERVER; 2 * size];
                for i in 0..n {
                    if self.eligible(i) {
                        self.least[size + i] = i as u32;
                    }
                }
                for k in (1..size).rev() {
                    self.least[k] = self.least_of(self.least[2 * k], self.least[2 * k + 1]);
                }
            }
            Policy::Random => {
                self.fenwick = vec![0; n + 1];
                for i in 0..n {
                    let w = self.random_weight(i);
                    self.fenwick_add(i, w as i64);
                }
            }
            Policy::RoundRobin => {}
        }
    }

    /// Server `i`'s share in a random draw: its weight (1 when unweighted) if eligible.
    fn random_weight(&self, i: usize) -> u64 {
        match (self.eligible(i), self.weighted) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => self.members[i].weight as u64,
        }
    }

    fn fenwick_add(&mut self, i: usize, d: i64) {
        let mut k = i + 1;
        while k < self.fenwick.len() {
            self.fenwick[k] = (self.fenwick[k] as i64 + d) as u64;
            k += k & k.wrapping_neg();
        }
    }

    /// The first server whose running sum of weights exceeds `k`.
    fn fenwick_find(&self, mut k: u64) -> usize {
        let n = self.fenwick.len() - 1;
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            if pos + step <= n && self.fenwick[pos + step] <= k {
                pos += step;
                k -= self.fenwick[pos];
            }
            step /= 2;
        }
        pos.min(n.saturating_sub(1))
    }

    /// Server `i`'s load or state changed: update the routing index (all of it when the
    /// last server left rotation or the first came back, which changes who is eligible).
    fn touch(&mut self, i: usize) {
        if (self.in_rotation.get() > 0) != self.indexed_any_in {
            self.rebuild_indexes();
            return;
        }
        match self.cfg.policy {
            Policy::LeastConnections => {
                let size = self.least.len() / 2;
                let mut k = size + i;
                self.least[k] = if self.eligible(i) {
                    i as u32
                } else {
                    NO_SERVER
                };
                while k > 1 {
                    k /= 2;
                    self.least[k] = self.least_of(self.least[2 * k], self.least[2 * k + 1]);
                }
            }
            Policy::Random => {
                // The leaf's current weight is its prefix difference; set it anew.
                let now = self.random_weight(i) as i64;
                let was = self.fenwick_prefix(i + 1) as i64 - self.fenwick_prefix(i) as i64;
                if now != was {
                    self.fenwick_add(i, now - was);
                }
            }
            Policy::RoundRobin => {}
        }
    }

    fn fenwick_prefix(&self, mut k: usize) -> u64 {
        let mut s = 0;
        while k > 0 {
            s += self.fenwick[k];
            k &= k - 1;
        }
        s
    }

    pub fn config(&self) -> &LbConfig {
        &self.cfg
    }

    /// Arms the first probe round (one interval after `now`).
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<LbTimer>) {
        if self.cfg.probe_interval_ns > 0 {
            fx.at(now + self.cfg.probe_interval_ns, LbTimer::ProbeRound);
        }
    }

    pub fn state(&self, server: usize) -> ServerState {
        self.members[server].state
    }

    pub fn in_rotation_now(&self) -> u64 {
        self.in_rotation.get()
    }

    /// The weight of `server`.
    pub fn weight(&self, server: usize) -> u32 {
        self.members[server].weight
    }

    /// Picks the server for a user request and counts it as active there; `None`
    /// when every server is out and the policy is [`WhenAllOut::Reject`].
    pub fn route(&mut self) -> Option<usize> {
        let n = self.members.len();
        let any_in = self.in_rotation.get() > 0;
        if !any_in && self.cfg.when_all_out == WhenAllOut::Reject {
            self.rejected_all_out += 1;
            return None;
        }
        let eligible = |m: &Member| !any_in || m.state == ServerState::InRotation;
        let pick = match self.cfg.policy {
            Policy::RoundRobin if self.weighted => {
                // nginx's smooth weighted round-robin: every eligible server earns its
                // weight, the richest (lowest index on ties) is picked and pays the total.
                let mut total = 0i64;
                let mut pick = 0;
                let mut best = i64::MIN;
                for (i, m) in self.members.iter_mut().enumerate() {
                    if eligible(m) {
                        m.credit += m.weight as i64;
                        total += m.weight as i64;
                        if m.credit > best {
                            best = m.credit;
                            pick = i;
                        }
                    }
                }
                self.members[pick].credit -= total;
                pick
            }
            Policy::RoundRobin => {
                // The first eligible server from the cursor on, wrapping once (no
                // division: this runs for every request).
                let c = if self.cursor < n { self.cursor } else { 0 };
                let pick = (c..n)
                    .chain(0..c)
                    .find(|&i| eligible(&self.members[i]))
                    .unwrap_or(0);
                self.cursor = if pick + 1 == n { 0 } else { pick + 1 };
                pick
            }
            // The eligible server with the fewest outstanding per unit of weight, lowest
            // index on ties: the root of the tree.
            Policy::LeastConnections => match self.least[1] {
                NO_SERVER => 0,
                i => i as usize,
            },
            Policy::Random => {
                // A draw over the eligible servers' weights (one unit each when equal),
                // found in the Fenwick tree: the k-th unit in server order.
                let count = match (any_in, self.weighted) {
                    (true, false) => self.in_rotation.get() as usize,
                    (false, false) => n,
                    (true, true) => self.weight_in_rotation as usize,
                    (false, true) => self.weight_total as usize,
                };
                let k = self.rng.random_range(0..count);
                self.fenwick_find(k as u64)
            }
        };
        let m = &mut self.members[pick];
        m.active += 1;
        m.routed += 1;
        if self.cfg.policy == Policy::LeastConnections {
            self.touch(pick);
        }
        Some(pick)
    }

    /// A user request routed to `server` was answered; `unavailable` is a 503.
    pub fn answered(
        &mut self,
        now: SimTime,
        server: usize,
        unavailable: bool,
        fx: &mut impl Effects<LbTimer>,
    ) {
        self.answered_with(now, server, unavailable.then_some("answered 503"), fx);
    }

    /// A user request routed to `server` was answered; `failure` names a passive health
    /// check's failure ("answered 503", a reset connection), which takes the server out.
    pub fn answered_with(
        &mut self,
        now: SimTime,
        server: usize,
        failure: Option<&'static str>,
        fx: &mut impl Effects<LbTimer>,
    ) {
        let m = &mut self.members[server];
        m.active = m.active.saturating_sub(1);
        if self.cfg.policy == Policy::LeastConnections {
            self.touch(server);
        }
        if let Some(reason) = failure.filter(|_| self.cfg.remove_on_503) {
            self.fail(now, server, reason, fx);
        }
    }

    /// The timer fired.
    pub fn on_timer(&mut self, now: SimTime, t: LbTimer, fx: &mut impl Effects<LbTimer>) {
        match t {
            LbTimer::ProbeRound => {
                let out = self
                    .members
                    .iter()
                    .filter(|m| m.probe_pending.is_some())
                    .count();
                for i in 0..self.members.len() {
                    let m = &mut self.members[i];
                    if m.probe_pending.is_some() {
                        continue;
                    }
                    m.probe_seq = m.probe_seq.wrapping_add(1);
                    m.probe_pending = Some(m.probe_seq);
                    let seq = m.probe_seq;
                    self.probes.push(ProbeRequest {
                        server: i as u16,
                        seq,
                    });
                    self.probes_sent += 1;
                    let members = &self.members;
                    if let Some(t) = self.probe_deadlines.push(
                        now + self.cfg.probe_timeout_ns,
                        (i as u16, seq),
                        out + self.probes.len(),
                        probe_out(members),
                    ) {
                        fx.at(t, LbTimer::ProbeTimeouts);
                    }
                }
                fx.at(now + self.cfg.probe_interval_ns, LbTimer::ProbeRound);
            }
            LbTimer::ProbeTimeouts => {
                self.probe_deadlines.fired();
                while let Some((server, _)) =
                    self.probe_deadlines.pop_due(now, probe_out(&self.members))
                {
                    let s = server as usize;
                    self.members[s].probe_pending = None;
                    self.probes_failed += 1;
                    self.fail(now, s, "probe timed out", fx);
                }
                let members = &self.members;
                if let Some(t) = self.probe_deadlines.rearm(probe_out(members)) {
                    fx.at(t, LbTimer::ProbeTimeouts);
                }
            }
            LbTimer::HoldOver { server, removal } => {
                let s = server as usize;
                let m = &mut self.members[s];
                if m.removals == removal && matches!(m.state, ServerState::HeldOut { .. }) {
                    m.state = ServerState::AwaitingProbe;
                    if self.cfg.probe_interval_ns == 0 {
                        self.reinstate(now, s);
                    }
                }
            }
        }
    }

    /// The answer to probe `seq` of `server` came back; `passed` means 200 in time.
    pub fn probe_answered(
        &mut self,
        now: SimTime,
        server: usize,
        seq: u32,
        passed: bool,
        fx: &mut impl Effects<LbTimer>,
    ) {
        if self.members[server].probe_pending != Some(seq) {
            return; // already timed out
        }
        self.members[server].probe_pending = None;
        if passed {
            if self.members[server].state == ServerState::AwaitingProbe {
                self.reinstate(now, server);
            }
        } else {
            self.probes_failed += 1;
            self.fail(now, server, "probe failed", fx);
        }
    }

    /// Probes to send now (drain after every call).
    /// Whether probes or events wait to be polled (cheap: checked after every answer).
    #[inline]
    pub fn has_output(&self) -> bool {
        !self.probes.is_empty() || !self.events.is_empty()
    }

    pub fn poll_probe(&mut self) -> Option<ProbeRequest> {
        if self.probes.is_empty() {
            None
        } else {
            Some(self.probes.remove(0))
        }
    }

    /// Removals and reinstatements since the last call, in order.
    pub fn poll_event(&mut self) -> Option<LbEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    fn fail(
        &mut self,
        now: SimTime,
        s: usize,
        reason: &'static str,
        fx: &mut impl Effects<LbTimer>,
    ) {
        let m = &mut self.members[s];
        match m.state {
            ServerState::InRotation => {
                m.removals += 1;
                m.out_since = now;
                m.state = ServerState::HeldOut {
                    until: now + self.cfg.hold_ns,
                };
                fx.at(
                    now + self.cfg.hold_ns,
                    LbTimer::HoldOver {
                        server: s as u16,
                        removal: m.removals,
                    },
                );
                self.in_rotation.dec(now);
                self.weight_in_rotation -= m.weight as u64;
                self.events.push(LbEvent::Removed {
                    server: s as u16,
                    reason,
                });
                self.touch(s);
            }
            // Still cooling, or waiting for a probe that just failed: stays out.
            ServerState::HeldOut { .. } | ServerState::AwaitingProbe => {}
        }
    }

    fn reinstate(&mut self, now: SimTime, s: usize) {
        let m = &mut self.members[s];
        m.state = ServerState::InRotation;
        m.reinstated += 1;
        m.out_ns += (now - m.out_since) as u128;
        self.weight_in_rotation += m.weight as u64;
        self.in_rotation.inc(now);
        self.events.push(LbEvent::Reinstated { server: s as u16 });
        self.touch(s);
    }

    /// Times `server` was taken out of rotation.
    pub fn removals(&self, server: usize) -> u32 {
        self.members[server].removals
    }

    /// User requests sent to `server`.
    pub fn routed(&self, server: usize) -> u64 {
        self.members[server].routed
    }

    /// Requests sent to `server` and not answered yet.
    pub fn active(&self, server: usize) -> u32 {
        self.members[server].active
    }

    /// Time `server` spent out of rotation up to `now`, ns.
    pub fn out_ns(&self, server: usize, now: SimTime) -> u128 {
        let m = &self.members[server];
        m.out_ns
            + match m.state {
                ServerState::InRotation => 0,
                _ => (now - m.out_since) as u128,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::SECONDS;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn lb(n: usize, policy: Policy) -> LoadBalancer<Xoshiro256PlusPlus> {
        LoadBalancer::new(
            LbConfig {
                servers: n,
                policy,
                probe_interval_ns: 5 * SECONDS,
                probe_timeout_ns: 2 * SECONDS,
                hold_ns: 15 * SECONDS,
                remove_on_503: true,
                when_all_out: WhenAllOut::Reject,
                weights: Vec::new(),
            },
            Xoshiro256PlusPlus::seed_from_u64(7),
        )
    }

    /// Routes `n` requests and counts them per server.
    fn routed_counts(b: &mut LoadBalancer<Xoshiro256PlusPlus>, n: usize) -> Vec<u32> {
        let mut c = vec![0u32; b.members.len()];
        for _ in 0..n {
            c[b.route().unwrap()] += 1;
        }
        c
    }

    /// Fires the balancer's timers up to `until`, answering at once (passed) every
    /// probe that `answers` accepts; `after` sees each timer's moment once it is handled.
    fn run_probes(
        b: &mut LoadBalancer<Xoshiro256PlusPlus>,
        fx: &mut Recorder<LbTimer>,
        until: SimTime,
        answers: impl Fn(SimTime, &ProbeRequest) -> bool,
        mut after: impl FnMut(SimTime, &LoadBalancer<Xoshiro256PlusPlus>, &Recorder<LbTimer>),
    ) {
        while let Some((t, timer)) = fx.pop_earliest() {
            if t > until {
                break;
            }
            b.on_timer(t, timer, fx);
            while let Some(p) = b.poll_probe() {
                if answers(t, &p) {
                    b.probe_answered(t, p.server as usize, p.seq, true, fx);
                }
            }
            after(t, b, fx);
        }
    }

    #[test]
    fn round_robin_skips_a_removed_server_and_spreads_its_share() {
        let mut b = lb(4, Policy::RoundRobin);
        let mut fx = Recorder::default();
        let picks: Vec<usize> = (0..8).map(|_| b.route().unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
        b.answered(SECONDS, 2, true, &mut fx);
        assert_eq!(b.in_rotation_now(), 3);
        assert_eq!(routed_counts(&mut b, 300), [100, 100, 0, 100]);
        assert_eq!(b.removals(2), 1);
    }

    #[test]
    fn a_held_out_server_comes_back_at_the_first_passing_probe_after_its_hold() {
        let mut b = lb(2, Policy::RoundRobin);
        let mut fx = Recorder::default();
        b.start(0, &mut fx);
        b.answered(SECONDS, 0, true, &mut fx); // removed at 1 s, hold until 16 s
        assert_eq!(
            b.poll_event(),
            Some(LbEvent::Removed {
                server: 0,
                reason: "answered 503"
            })
        );
        // Run the timers to 30 s, answering every probe at once with "passed".
        let mut back_at = None;
        run_probes(
            &mut b,
            &mut fx,
            30 * SECONDS,
            |_, _| true,
            |t, b, _| {
                if back_at.is_none() && b.state(0) == ServerState::InRotation {
                    back_at = Some(t);
                }
            },
        );
        // Probes at 5, 10, 15, 20 s: the hold ends at 16 s, the 20 s probe reinstates.
        assert_eq!(back_at, Some(20 * SECONDS));
        assert_eq!(b.poll_event(), Some(LbEvent::Reinstated { server: 0 }));
        assert_eq!(b.out_ns(0, 30 * SECONDS), 19 * SECONDS as u128);
    }

    #[test]
    fn an_unanswered_probe_removes_the_server_and_a_late_answer_is_ignored() {
        let mut b = lb(2, Policy::LeastConnections);
        let mut fx = Recorder::default();
        b.start(0, &mut fx);
        let (t, timer) = fx.pop_earliest().unwrap();
        b.on_timer(t, timer, &mut fx);
        let p0 = b.poll_probe().unwrap();
        let p1 = b.poll_probe().unwrap();
        b.probe_answered(t, p1.server as usize, p1.seq, true, &mut fx);
        // The probe round's next timer (10 s) and the timeout of server 0's probe (7 s).
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 7 * SECONDS);
        b.on_timer(t, timer, &mut fx);
        assert!(matches!(b.state(0), ServerState::HeldOut { .. }));
        b.probe_answered(8 * SECONDS, p0.server as usize, p0.seq, true, &mut fx);
        assert!(matches!(b.state(0), ServerState::HeldOut { .. }));
        assert_eq!(b.probes_failed, 1);
    }

    /// Probe timeouts longer than the probe interval: every answered probe's deadline
    /// would leave a stale timer behind; the balancer keeps one outstanding, and the
    /// probe nobody answers still times out at exactly its deadline.
    #[test]
    fn probe_timeouts_keep_one_timer_and_still_end_on_time() {
        let mut b = lb(8, Policy::RoundRobin);
        b.cfg.probe_timeout_ns = 60 * SECONDS;
        let mut fx = Recorder::default();
        b.start(0, &mut fx);
        let mut failed_at = None;
        // Server 5 never answers its probe of 20 s (its fourth); the rest pass.
        let answers = |t, p: &ProbeRequest| !(p.server == 5 && t == 20 * SECONDS);
        run_probes(&mut b, &mut fx, 120 * SECONDS, answers, |t, b, fx| {
            if failed_at.is_none() && b.removals(5) > 0 {
                failed_at = Some(t);
            }
            let outstanding = fx
                .timers
                .iter()
                .filter(|(_, k)| *k == LbTimer::ProbeTimeouts)
                .count();
            assert!(
                outstanding <= 1,
                "{outstanding} probe-timeout timers at {t}"
            );
        });
        assert_eq!(failed_at, Some(80 * SECONDS));
        assert_eq!(b.probes_failed, 1);
        assert_eq!(b.removals(5), 1);
        assert!((0..8).filter(|&s| s != 5).all(|s| b.removals(s) == 0));
    }

    #[test]
    fn least_connections_prefers_the_server_with_fewest_outstanding() {
        let mut b = lb(3, Policy::LeastConnections);
        let mut fx = Recorder::default();
        assert_eq!(b.route(), Some(0));
        assert_eq!(b.route(), Some(1));
        assert_eq!(b.route(), Some(2));
        b.answered(SECONDS, 1, false, &mut fx);
        assert_eq!(b.route(), Some(1));
        assert_eq!(b.active(1), 1);
    }

    #[test]
    fn with_every_server_out_reject_answers_itself_and_fail_open_spreads() {
        let mut b = lb(2, Policy::Random);
        let mut fx = Recorder::default();
        b.answered(0, 0, true, &mut fx);
        b.answered(0, 1, true, &mut fx);
        assert_eq!(b.route(), None);
        assert_eq!(b.rejected_all_out, 1);
        let mut cfg = b.config().clone();
        cfg.when_all_out = WhenAllOut::FailOpen;
        let mut b = LoadBalancer::new(cfg, Xoshiro256PlusPlus::seed_from_u64(1));
        b.answered(0, 0, true, &mut fx);
        b.answered(0, 1, true, &mut fx);
        let seen = routed_counts(&mut b, 1000);
        assert!(seen[0] > 400 && seen[1] > 400, "{seen:?}");
    }

    fn weighted(weights: &[u32], policy: Policy) -> LoadBalancer<Xoshiro256PlusPlus> {
        let mut b = lb(weights.len(), policy);
        let mut cfg = b.config().clone();
        cfg.weights = weights.to_vec();
        b = LoadBalancer::new(cfg, Xoshiro256PlusPlus::seed_from_u64(7));
        b
    }

    #[test]
    fn weighted_round_robin_is_smooth_and_exact_per_cycle() {
        // nginx's example: weights 5, 1, 1 give a a b a c a a.
        let mut b = weighted(&[5, 1, 1], Policy::RoundRobin);
        let picks: Vec<usize> = (0..14).map(|_| b.route().unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
        // Any weights: every cycle of sum(weights) picks gives each server its weight.
        let w = [3, 1, 2, 7];
        let mut b = weighted(&w, Policy::RoundRobin);
        for _ in 0..5 {
            assert_eq!(routed_counts(&mut b, 13), w);
        }
        // A removed server's share goes to the others by their weights.
        let mut fx = Recorder::default();
        b.answered(SECONDS, 3, true, &mut fx);
        assert_eq!(routed_counts(&mut b, 600), [300, 100, 200, 0]);
    }

    #[test]
    fn weighted_least_connections_fills_servers_in_proportion_to_their_weights() {
        let mut b = weighted(&[3, 1], Policy::LeastConnections);
        let picks: Vec<usize> = (0..6).map(|_| b.route().unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 0, 0, 1]);
        for _ in 0..394 {
            b.route();
        }
        assert_eq!((b.active(0), b.active(1)), (300, 100));
    }

    #[test]
    fn weighted_random_draws_in_proportion_to_the_weights() {
        let mut b = weighted(&[3, 1, 0], Policy::Random);
        assert_eq!(b.weight(2), 1, "a weight of 0 counts as 1");
        let mut fx = Recorder::default();
        b.answered(0, 2, true, &mut fx);
        let seen = routed_counts(&mut b, 40_000);
        assert_eq!(seen[2], 0);
        assert!((seen[0] as f64 / 40_000.0 - 0.75).abs() < 0.01, "{seen:?}");
    }

    #[test]
    fn equal_weights_route_exactly_as_no_weights() {
        for policy in [Policy::RoundRobin, Policy::LeastConnections, Policy::Random] {
            let mut a = lb(4, policy);
            let mut b = weighted(&[2, 2, 2, 2], policy);
            let mut fx = Recorder::default();
            for k in 0..2000u64 {
                if k == 500 {
                    a.answered(k, 1, true, &mut fx);
                    b.answered(k, 1, true, &mut fx);
                }
                let (pa, pb) = (a.route(), b.route());
                assert_eq!(pa, pb, "{policy:?} at {k}");
                if k % 3 == 0 {
                    a.answered(k, pa.unwrap(), false, &mut fx);
                    b.answered(k, pb.unwrap(), false, &mut fx);
                }
            }
        }
    }

    /// The linear scans the indexes replace: the least-connections pick and the
    /// eligible weight of each server.
    fn linear_least(b: &LoadBalancer<Xoshiro256PlusPlus>) -> usize {
        let m = &b.members;
        (0..m.len())
            .filter(|&i| b.eligible(i))
            .min_by(|&i, &j| {
                (m[i].active as u64 * m[j].weight as u64)
                    .cmp(&(m[j].active as u64 * m[i].weight as u64))
                    .then(i.cmp(&j))
            })
            .unwrap_or(0)
    }

    proptest::proptest! {
        /// Whatever the routes, answers, removals and reinstatements, the least-connections
        /// tree's root is the linear scan's pick, and a random draw of unit k lands where
        /// a walk over the eligible servers' weights does.
        #[test]
        fn routing_indexes_match_a_linear_scan(
            weights in proptest::collection::vec(1u32..5, 1..12),
            equal in proptest::bool::ANY,
            fail_open in proptest::bool::ANY,
            ops in proptest::collection::vec((0u8..4, 0usize..12), 0..300),
        ) {
            for policy in [Policy::LeastConnections, Policy::Random] {
                let n = weights.len();
                let mut cfg = lb(n, policy).config().clone();
                cfg.weights = if equal { vec![3; n] } else { weights.clone() };
                cfg.when_all_out = if fail_open { WhenAllOut::FailOpen } else { WhenAllOut::Reject };
                let mut b = LoadBalancer::new(cfg, Xoshiro256PlusPlus::seed_from_u64(3));
                let mut fx = Recorder::default();
                for (k, &(op, s)) in ops.iter().enumerate() {
                    let s = s % n;
                    let now = k as u64;
                    match op {
                        0 | 1 => {
                            let expect = (b.in_rotation_now() > 0 || fail_open)
                                .then(|| linear_least(&b));
                            let got = b.route();
                            if policy == Policy::LeastConnections {
                                proptest::prop_assert_eq!(got, expect);
                            }
                        }
                        2 => b.answered(now, s, k % 3 == 0, &mut fx),
                        _ => {
                            if b.state(s) != ServerState::InRotation {
                                b.reinstate(now, s);
                            }
                        }
                    }
                    if policy == Policy::Random {
                        let mut unit = 0u64;
                        for i in 0..n {
                            let w = b.random_weight(i);
                            for _ in 0..w {
                                proptest::prop_assert_eq!(b.fenwick_find(unit), i);
                                unit += 1;
                            }
                        }
                        proptest::prop_assert_eq!(b.fenwick_prefix(n), unit);
                    } else {
                        proptest::prop_assert_eq!(b.least[1] as usize,
                            if (0..n).any(|i| b.eligible(i)) { linear_least(&b) } else { NO_SERVER as usize });
                    }
                }
            }
        }
    }

    #[test]
    fn random_routing_spreads_evenly_over_servers_in_rotation() {
        let mut b = lb(4, Policy::Random);
        let mut fx = Recorder::default();
        b.answered(0, 3, true, &mut fx);
        let seen = routed_counts(&mut b, 30_000);
        assert_eq!(seen[3], 0);
        for s in &seen[..3] {
            assert!((*s as f64 - 10_000.0).abs() < 400.0, "{seen:?}");
        }
    }
}
