//! The network adapter's receive side: RSS queues, receive descriptor rings and DPCs.
//!
//! **Models** (DOMAIN.md §1): the NIC DMAs each frame into a free descriptor of a
//! receive ring and interrupts; the miniport's ISR queues a DPC that indicates the
//! received frames up the stack and frees their descriptors. With RSS, a hash of the
//! connection's 4-tuple picks one of `rss_queues` rings, each drained by its own DPC on
//! its own CPU, so one connection always lands on the same queue. A frame that arrives
//! while its ring has no free descriptor is discarded
//! (`Network Interface(*)\Packets Received Discarded` = ifInDiscards, OID_GEN_RCV_NO_BUFFER)
//! and TCP recovers it by retransmission after the retransmission timeout, which doubles
//! on every retry.
//!
//! **Mechanics here**: a request of `packets_per_request` frames arrives as a burst on
//! the queue its token hashes to. Each queue has `ring_descriptors` descriptors. When
//! frames are in a ring and its DPC is idle, a DPC is queued (`DPCs Queued/sec`) for the
//! frames present then: the engine runs `frames × dpc_cpu_per_packet_ns` of CPU at DPC
//! level ([`NicEvent::Dpc`], [`crate::cpu::Priority::DPC`]) and calls [`Nic::dpc_done`];
//! only then are those descriptors free and the frames indicated. Frames that arrived
//! meanwhile wait for the next DPC (as after the miniport re-enables interrupts). A
//! request is [`NicEvent::Delivered`] once all its frames are indicated. A discarded
//! frame is retried after `initial_rto_ns × 2^(retry)`.
//!
//! **Defaults and sources**: 2 RSS queues (Windows Server tuning guide: "the default of
//! two", driver-dependent); 512 descriptors per ring is an **example** (the count is
//! driver-specific, "hundreds"; some adapters ship low); initial RTO 3 s
//! (`netsh int tcp show global` on Server 2016+, ⚠ 2008 R2 not checked);
//! `dpc_cpu_per_packet_ns` = 2 µs and `packets_per_request` = 1 are **assumptions**.
//!
//! **Leaves out**: interrupt moderation and ISR cost, descriptors freed one by one during
//! a DPC, fast retransmit/SACK (a lost segment among many is usually recovered by
//! duplicate ACKs well before the RTO: this model is pessimistic), TCP giving up after
//! `TcpMaxDataRetransmissions`, the RSS indirection table (a plain hash modulo the
//! queue count) and the send side.

use std::collections::{HashMap, VecDeque};

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::{MICROS, SECONDS, SimTime};

/// Settings of the adapter's receive side.
#[derive(Clone, Debug, PartialEq)]
pub struct NicConfig {
    /// RSS receive queues, each with its own ring and DPC (2).
    pub rss_queues: u32,
    /// Receive descriptors per ring (driver-specific; 512 as an example).
    pub ring_descriptors: u32,
    /// DPC CPU to indicate one frame, ns (assumption: 2 µs).
    pub dpc_cpu_per_packet_ns: u64,
    /// Frames a request arrives as (1).
    pub packets_per_request: u32,
    /// TCP initial retransmission timeout, ns (3 s).
    pub initial_rto_ns: u64,
}

impl Default for NicConfig {
    fn default() -> Self {
        Self {
            rss_queues: 2,
            ring_descriptors: 512,
            dpc_cpu_per_packet_ns: 2 * MICROS,
            packets_per_request: 1,
            initial_rto_ns: 3 * SECONDS,
        }
    }
}

/// Timers of the NIC model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicTimer {
    /// The sender retransmits a discarded frame of `token` (`retry` = 1 for the first).
    Retransmit { token: u64, retry: u32 },
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicEvent {
    /// Run `cpu_ns` at DPC level on `queue`'s RSS CPU, then call [`Nic::dpc_done`].
    Dpc { queue: u32, cpu_ns: u64 },
    /// Every frame of `token` has been indicated up the stack.
    Delivered { token: u64 },
}

#[derive(Debug, Default)]
struct Queue {
    /// Frames in descriptors not yet taken by a DPC (tokens).
    ring: VecDeque<u64>,
    /// Frames the running DPC is indicating (their descriptors are still in use).
    in_dpc: Vec<u64>,
    dpc_running: bool,
}

/// The adapter's receive queues and counters.
#[derive(Debug)]
pub struct Nic {
    cfg: NicConfig,
    queues: Vec<Queue>,
    /// Frames still to be indicated per token.
    pending: HashMap<u64, u32>,
    events: VecDeque<NicEvent>,
    /// `Network Interface(*)\Packets Received/sec`: frames that got a descriptor.
    pub packets_received: Counter,
    /// `Network Interface(*)\Packets Received Discarded`: frames with no free descriptor.
    pub packets_received_discarded: Counter,
    /// `Processor Information(*)\DPCs Queued/sec` (receive DPCs of this adapter).
    pub dpcs_queued: Counter,
    /// `TCPv4\Segments Retransmitted/sec` caused by the discards (sender side).
    pub segments_retransmitted: Counter,
    /// Descriptors in use per RSS queue.
    pub ring_occupancy: Vec<Gauge>,
}

/// SplitMix64 finaliser: a stand-in for the Toeplitz hash of the connection's 4-tuple.
fn rss_hash(token: u64) -> u64 {
    let mut z = token.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Nic {
    pub fn new(cfg: NicConfig) -> Self {
        let n = cfg.rss_queues.max(1) as usize;
        Self {
            cfg,
            queues: (0..n).map(|_| Queue::default()).collect(),
            pending: HashMap::new(),
            events: VecDeque::new(),
            packets_received: Counter::default(),
            packets_received_discarded: Counter::default(),
            dpcs_queued: Counter::default(),
            segments_retransmitted: Counter::default(),
            ring_occupancy: (0..n).map(|_| Gauge::new()).collect(),
        }
    }

    pub fn config(&self) -> &NicConfig {
        &self.cfg
    }

    /// The RSS queue `token`'s frames land on.
    pub fn queue_of(&self, token: u64) -> u32 {
        (rss_hash(token) % self.queues.len() as u64) as u32
    }

    /// Descriptors in use on `queue` (in the ring or being indicated by its DPC).
    pub fn occupancy(&self, queue: u32) -> u32 {
        let q = &self.queues[queue as usize];
        (q.ring.len() + q.in_dpc.len()) as u32
    }

    /// A request's frames arrive from the wire.
    pub fn receive(&mut self, now: SimTime, token: u64, fx: &mut impl Effects<NicTimer>) {
        let n = self.cfg.packets_per_request.max(1);
        *self.pending.entry(token).or_insert(0) += n;
        for _ in 0..n {
            self.frame(now, token, 0, fx);
        }
        self.kick(now, self.queue_of(token));
    }

    pub fn on_timer(&mut self, now: SimTime, t: NicTimer, fx: &mut impl Effects<NicTimer>) {
        match t {
            NicTimer::Retransmit { token, retry } => {
                self.segments_retransmitted.inc();
                self.frame(now, token, retry, fx);
                self.kick(now, self.queue_of(token));
            }
        }
    }

    /// The DPC of `queue` finished: its frames are indicated, their descriptors freed.
    pub fn dpc_done(&mut self, now: SimTime, queue: u32) {
        let q = &mut self.queues[queue as usize];
        debug_assert!(q.dpc_running, "dpc_done on queue {queue} without a DPC");
        q.dpc_running = false;
        for token in std::mem::take(&mut q.in_dpc) {
            if let Some(left) = self.pending.get_mut(&token) {
                *left -= 1;
                if *left == 0 {
                    self.pending.remove(&token);
                    self.events.push_back(NicEvent::Delivered { token });
                }
            }
        }
        self.kick(now, queue);
    }

    /// The next thing the engine must do.
    pub fn poll(&mut self) -> Option<NicEvent> {
        self.events.pop_front()
    }

    /// One frame of `token` (attempt `retry`) reaches its ring.
    fn frame(&mut self, now: SimTime, token: u64, retry: u32, fx: &mut impl Effects<NicTimer>) {
        let queue = self.queue_of(token);
        if self.occupancy(queue) >= self.cfg.ring_descriptors {
            self.packets_received_discarded.inc();
            let rto = self
                .cfg
                .initial_rto_ns
                .saturating_mul(1u64 << retry.min(32));
            fx.at(
                now.saturating_add(rto),
                NicTimer::Retransmit {
                    token,
                    retry: retry.saturating_add(1),
                },
            );
            return;
        }
        self.packets_received.inc();
        self.queues[queue as usize].ring.push_back(token);
    }

    /// Queues the DPC of `queue` if it has frames and none is running; updates the gauge.
    fn kick(&mut self, now: SimTime, queue: u32) {
        let per = self.cfg.dpc_cpu_per_packet_ns;
        let q = &mut self.queues[queue as usize];
        if !q.dpc_running && !q.ring.is_empty() {
            q.in_dpc.extend(q.ring.drain(..));
            q.dpc_running = true;
            self.dpcs_queued.inc();
            self.events.push_back(NicEvent::Dpc {
                queue,
                cpu_ns: per.saturating_mul(q.in_dpc.len() as u64),
            });
        }
        let occ = self.occupancy(queue) as u64;
        self.ring_occupancy[queue as usize].set(now, occ);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::MILLIS;

    /// A tiny engine: each queue's DPC runs on its own idle CPU (ends `cpu_ns` after it
    /// is queued); requests arrive every `gap` ns until `until`, then the run drains.
    /// Returns (arrival, delivery) per request.
    fn run(nic: &mut Nic, gap: u64, until: SimTime) -> Vec<(SimTime, Option<SimTime>)> {
        let mut fx = Recorder::default();
        let mut dpcs: Vec<(SimTime, u32)> = Vec::new();
        let mut reqs: Vec<(SimTime, Option<SimTime>)> = Vec::new();
        let mut next = 0;
        loop {
            let t_timer = fx.timers.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            let t_dpc = dpcs.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            let t_req = if next < until { next } else { u64::MAX };
            let now = t_timer.min(t_dpc).min(t_req);
            if now == u64::MAX {
                break;
            }
            if now == t_req {
                nic.receive(now, reqs.len() as u64, &mut fx);
                reqs.push((now, None));
                next += gap;
            } else if now == t_dpc {
                let i = dpcs.iter().position(|(t, _)| *t == now).unwrap();
                let (_, q) = dpcs.swap_remove(i);
                nic.dpc_done(now, q);
            } else {
                let (at, t) = fx.pop_earliest().unwrap();
                nic.on_timer(at, t, &mut fx);
            }
            while let Some(e) = nic.poll() {
                match e {
                    NicEvent::Dpc { queue, cpu_ns } => dpcs.push((now + cpu_ns, queue)),
                    NicEvent::Delivered { token } => reqs[token as usize].1 = Some(now),
                }
            }
        }
        reqs
    }

    fn nic(ring: u32, dpc_ns: u64, packets: u32) -> Nic {
        Nic::new(NicConfig {
            rss_queues: 2,
            ring_descriptors: ring,
            dpc_cpu_per_packet_ns: dpc_ns,
            packets_per_request: packets,
            initial_rto_ns: 3 * SECONDS,
        })
    }

    #[test]
    fn below_the_drain_rate_nothing_is_dropped() {
        // 4 frames every 10 µs = 400k frames/s; two queues drain 2 × 500k/s at 2 µs each.
        let mut n = nic(64, 2 * MICROS, 4);
        let reqs = run(&mut n, 10 * MICROS, 100 * MILLIS);
        assert_eq!(n.packets_received_discarded.total(), 0);
        assert_eq!(n.packets_received.total(), 4 * reqs.len() as u64);
        assert!(reqs.iter().all(|(a, d)| d.is_some_and(|d| d - a < MILLIS)));
        assert!(n.dpcs_queued.total() > 0);
        assert!(n.dpcs_queued.total() <= n.packets_received.total());
        assert!((0..2).all(|q| n.occupancy(q) == 0));
    }

    #[test]
    fn above_the_drain_rate_the_ring_fills_and_discards_are_retransmitted_after_the_rto() {
        // 4 frames every 4 µs = 1M frames/s against 2 × 250k/s of DPC drain (4 µs each).
        let mut n = nic(64, 4 * MICROS, 4);
        let until = 20 * MILLIS;
        let reqs = run(&mut n, 4 * MICROS, until);
        assert!(n.ring_occupancy.iter().any(|g| g.peak() == 64));
        let dropped = n.packets_received_discarded.total();
        assert!(dropped > 1_000, "{dropped}");
        assert_eq!(n.segments_retransmitted.total(), dropped);
        assert!(reqs.iter().all(|(_, d)| d.is_some()), "all recovered");
        let late = reqs
            .iter()
            .filter(|(a, d)| d.unwrap() - a >= 3 * SECONDS)
            .count();
        assert!(late > 0);
        // Every request with a discarded frame is late by at least one RTO; none is in
        // between (the ring drains in well under an RTO).
        assert!(
            reqs.iter()
                .all(|(a, d)| d.unwrap() - a < 100 * MILLIS || d.unwrap() - a >= 3 * SECONDS)
        );
        // Every frame eventually got a descriptor.
        assert_eq!(n.packets_received.total(), 4 * reqs.len() as u64);
    }

    #[test]
    fn the_rto_doubles_per_retry() {
        let mut n = nic(1, MILLIS, 1);
        let mut fx = Recorder::default();
        // Fill queue 0's only descriptor with a token that hashes there.
        let toks: Vec<u64> = (0..100).filter(|t| n.queue_of(*t) == 0).take(2).collect();
        n.receive(0, toks[0], &mut fx);
        n.receive(0, toks[1], &mut fx);
        assert_eq!(n.packets_received_discarded.total(), 1);
        assert_eq!(
            fx.timers,
            vec![(
                3 * SECONDS,
                NicTimer::Retransmit {
                    token: toks[1],
                    retry: 1
                }
            )]
        );
        // The ring is still full: the DPC has not finished.
        let (at, t) = fx.pop_earliest().unwrap();
        n.on_timer(at, t, &mut fx);
        assert_eq!(
            fx.timers,
            vec![(
                9 * SECONDS,
                NicTimer::Retransmit {
                    token: toks[1],
                    retry: 2
                }
            )]
        );
        assert_eq!(n.dpcs_queued.total(), 1);
    }
}
