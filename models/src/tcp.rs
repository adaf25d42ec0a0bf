//! The TCP layer's connection resources: ephemeral ports, TIME_WAIT, connection counts.
//!
//! **Models** what an outgoing connection costs the host (DOMAIN §2.3, §7). Every outgoing
//! connection binds a port of the dynamic (ephemeral) range for as long as it is open; the side
//! that closes first (the *active closer*, RFC 793) then keeps the port in **TIME_WAIT** for
//! `TcpTimedWaitDelay` before it is free again. .NET Framework's `HttpWebRequest` connects with
//! an explicit wildcard bind (ConnectEx), so on 2008 R2 each outgoing connection takes a
//! host-wide port (DOMAIN §7 ".NET note"). When no port is free, `connect` fails with
//! **WSAENOBUFS (10055)** ("…lacked sufficient buffer space or because a queue was full"),
//! Tcpip event 4231. Incoming connections (to port 80) take no ephemeral port; a server-side
//! close still leaves a TIME_WAIT TCB, counted separately.
//!
//! TIME_WAIT has a fixed length, so expiries come out in the order the closes went in: the
//! model keeps a FIFO of expiry times and releases it lazily (at the next call, or
//! [`Tcp::advance`]), setting the gauges *at each expiry time* in order, so their time-weighted
//! means are exact without a timer per port.
//!
//! **Seed**: 003 (2008 R2, 16,384 ports, TIME_WAIT 240 s, "SocketException: … lacked
//! sufficient buffer space or because a queue was full" at ~600 outgoing requests/s;
//! `TCPv4\Connections Established` peaking near 12,000 while the ports were exhausted). Ports
//! in TIME_WAIT are not "established" ([`Tcp::ports_time_wait`] shows them): with aborted
//! cancellations the counter stays near its 2–3k; it climbs to ~12k when cancelled calls keep
//! their connections and the partner falls behind (`so-2013-async-outgoing-pooled.toml`'s
//! variant), every late call holding an established connection and its port.
//!
//! **Capacity rule** (DOMAIN §7): when every call opens and actively closes a connection, the
//! port range is an Erlang loss system with `dynamic_port_count` servers and holding time
//! `call time + TcpTimedWaitDelay`; the sustainable rate is about `ports / TcpTimedWaitDelay`
//! = 16,384 / 240 s ≈ 68 connections/s (137/s at 120 s; 3976 / 240 s ≈ 16.6/s on 2003).
//!
//! **Defaults and sources** ([`TcpConfig::windows_2008`], [`TcpConfig::max_user_port_2003`]):
//! * dynamic range 49152–65535 = 16,384 ports (Vista/2008+; KB 929851, "TCP/IP port
//!   exhaustion troubleshooting"); 2003: 1025–5000 = 3976 ports (`MaxUserPort` 5000, TechNet).
//! * `TcpTimedWaitDelay` 240 s (Win2000/XP TechNet cc938217, Windows 10 port-exhaustion
//!   article, seed 003). ⚠ Disputed: the WS2003 TechNet table and the BizTalk tuning guide say
//!   120 s (DOMAIN §10.1); run 120 s as a sensitivity case. Range 30–300 s (2–300 s on 2012 R2+).
//! * `reuse_time_wait_ports` false. ⚠ Undocumented algorithm (DOMAIN §7 "Port sharing per
//!   destination"): event 4227 shows that when ports run out the Vista+ stack may reuse a local
//!   port whose TIME_WAIT entry is for a *different* remote endpoint; a connect that can only
//!   collide with TIME_WAIT entries for the *same* remote endpoint fails with **WSAEADDRINUSE
//!   (10048)** (KB for event 4227 on 2008 SP2). With the option on, the model reuses the oldest
//!   TIME_WAIT port of another endpoint; 10048 when only same-endpoint ones are left; 10055
//!   when no port is in TIME_WAIT at all (every port carries an open connection).
//!
//! **Counters**: `TCPv4\Connections Established` ([`Tcp::established`]; outgoing + incoming).
//! [`Tcp::connection_failures`] counts every connect refused here (10055 + 10048). ⚠ The real
//! `TCPv4\Connection Failures` (RFC 1213 `tcpAttemptFails`) counts SYN-SENT/SYN-RCVD → CLOSED
//! transitions; a connect that fails to bind a port never reaches SYN-SENT, so on a real host
//! port exhaustion may not move that counter at all.
//!
//! **Leaves out**: the handshake itself (SYN retries, RST, connect timeouts: the engine adds
//! a latency), `MaxFreeTcbs` early TIME_WAIT reuse (not honoured by the Vista+ stack),
//! `SO_PORT_SCALABILITY` (several local IPs), port numbers (only counts matter), UDP,
//! and TIME_WAIT assassination by a new SYN on incoming connections.

use std::collections::{BTreeMap, VecDeque};

use crate::stat::{Counter, Gauge};
use crate::time::{SECONDS, SimTime};

/// A remote endpoint (ip:port of a backend).
pub type EndpointId = u32;

/// Settings of the host's TCP/IP stack that limit outgoing connections.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConfig {
    /// First port of the dynamic range: 49152 (Vista/2008+); 1025 with the 2003 profile.
    /// Informational: only the count limits connections.
    pub dynamic_port_start: u32,
    /// Ports in the dynamic range: 16384; 3976 for `MaxUserPort` 5000 (2003).
    pub dynamic_port_count: u32,
    /// `TcpTimedWaitDelay` in ns: 240 s (⚠ 120 s per the WS2003 table / BizTalk guide).
    pub tcp_timed_wait_delay_ns: u64,
    /// When no port is free, reuse a port whose TIME_WAIT entry is for another remote
    /// endpoint (event 4227 case); the same endpoint still in TIME_WAIT gives 10048.
    pub reuse_time_wait_ports: bool,
}

impl TcpConfig {
    /// Windows Vista / Server 2008 / 2008 R2 defaults: 49152–65535, TIME_WAIT 240 s.
    pub fn windows_2008() -> Self {
        Self {
            dynamic_port_start: 49152,
            dynamic_port_count: 16384,
            tcp_timed_wait_delay_ns: 240 * SECONDS,
            reuse_time_wait_ports: false,
        }
    }

    /// Windows Server 2003 / XP defaults: `MaxUserPort` 5000 → ports 1025–5000 (3976),
    /// TIME_WAIT 240 s (⚠ 120 s per the WS2003 TechNet table).
    pub fn max_user_port_2003() -> Self {
        Self {
            dynamic_port_start: 1025,
            dynamic_port_count: 5000 - 1025 + 1,
            tcp_timed_wait_delay_ns: 240 * SECONDS,
            reuse_time_wait_ports: false,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self::windows_2008()
    }
}

/// Why an outgoing connect failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// WSAENOBUFS (10055): no ephemeral port free (Tcpip event 4231).
    NoBufs,
    /// WSAEADDRINUSE (10048): the only reusable ports are in TIME_WAIT for the same remote
    /// endpoint (Tcpip event 4227).
    AddrInUse,
}

impl ConnectError {
    /// The Winsock error code.
    pub fn wsa_code(self) -> u32 {
        match self {
            ConnectError::NoBufs => 10055,
            ConnectError::AddrInUse => 10048,
        }
    }
}

/// TIME_WAIT entries of one remote endpoint.
#[derive(Debug, Default)]
struct EndpointTw {
    /// Expiry times of this endpoint's live TIME_WAIT ports, oldest first.
    live: VecDeque<SimTime>,
    /// How many of this endpoint's oldest entries in the global FIFO were taken by port
    /// reuse and must be skipped when they come out.
    reused: u32,
}

/// The host's TCP connection resources and their perfmon counters.
#[derive(Debug)]
pub struct Tcp {
    cfg: TcpConfig,
    /// Every outgoing TIME_WAIT entry in expiry order (including reused ones, skipped).
    tw_order: VecDeque<(SimTime, EndpointId)>,
    /// Live entries per endpoint (deterministic iteration for the reuse choice).
    tw_by_endpoint: BTreeMap<EndpointId, EndpointTw>,
    /// Expiry times of incoming TIME_WAIT TCBs.
    incoming_tw: VecDeque<SimTime>,
    /// Latest time seen (expiries are released up to here).
    clock: SimTime,
    /// `TCPv4\Connections Established`: outgoing plus incoming.
    pub established: Gauge,
    /// Ephemeral ports bound by established outgoing connections.
    pub ports_in_use: Gauge,
    /// Ephemeral ports held in TIME_WAIT by outgoing connections this side closed.
    pub ports_time_wait: Gauge,
    /// Incoming connections (port 80) in TIME_WAIT after the server closed them.
    pub incoming_time_wait: Gauge,
    /// Outgoing connects refused here (WSAENOBUFS + WSAEADDRINUSE); see the module doc ⚠.
    pub connection_failures: Counter,
    /// Connects refused with WSAENOBUFS (10055).
    pub wsaenobufs: Counter,
    /// Connects refused with WSAEADDRINUSE (10048).
    pub addr_in_use: Counter,
    /// Connects that succeeded only by reusing a TIME_WAIT port (event 4227 case).
    pub ports_reused: Counter,
}

impl Tcp {
    pub fn new(cfg: TcpConfig) -> Self {
        Self {
            cfg,
            tw_order: VecDeque::new(),
            tw_by_endpoint: BTreeMap::new(),
            incoming_tw: VecDeque::new(),
            clock: 0,
            established: Gauge::new(),
            ports_in_use: Gauge::new(),
            ports_time_wait: Gauge::new(),
            incoming_time_wait: Gauge::new(),
            connection_failures: Counter::default(),
            wsaenobufs: Counter::default(),
            addr_in_use: Counter::default(),
            ports_reused: Counter::default(),
        }
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Binds an ephemeral port for a new outgoing connection to `remote` (expired TIME_WAIT
    /// entries are released first).
    pub fn connect(&mut self, now: SimTime, remote: EndpointId) -> Result<(), ConnectError> {
        self.advance(now);
        let now = self.clock;
        let used = self.ports_in_use.get() + self.ports_time_wait.get();
        if used < self.cfg.dynamic_port_count as u64 {
            self.ports_in_use.inc(now);
            self.established.inc(now);
            return Ok(());
        }
        let err = if self.cfg.reuse_time_wait_ports && self.ports_time_wait.get() > 0 {
            // The oldest live TIME_WAIT port of another endpoint.
            let pick = self
                .tw_by_endpoint
                .iter()
                .filter(|&(&ep, tw)| ep != remote && !tw.live.is_empty())
                .min_by_key(|&(&ep, tw)| (tw.live[0], ep))
                .map(|(&ep, _)| ep);
            match pick {
                Some(ep) => {
                    let tw = self.tw_by_endpoint.get_mut(&ep).expect("picked endpoint");
                    tw.live.pop_front();
                    tw.reused += 1;
                    self.ports_time_wait.dec(now);
                    self.ports_in_use.inc(now);
                    self.established.inc(now);
                    self.ports_reused.inc();
                    return Ok(());
                }
                None => ConnectError::AddrInUse,
            }
        } else {
            ConnectError::NoBufs
        };
        self.connection_failures.inc();
        match err {
            ConnectError::NoBufs => self.wsaenobufs.inc(),
            ConnectError::AddrInUse => self.addr_in_use.inc(),
        }
        Err(err)
    }

    /// An outgoing connection to `remote` ends. `active_close`: this side closed first (or
    /// aborted it), so its port stays in TIME_WAIT for `TcpTimedWaitDelay`; otherwise the
    /// port is free at once.
    pub fn close(&mut self, now: SimTime, remote: EndpointId, active_close: bool) {
        self.advance(now);
        let now = self.clock;
        self.ports_in_use.dec(now);
        self.established.dec(now);
        if active_close && self.cfg.tcp_timed_wait_delay_ns > 0 {
            let expiry = now.saturating_add(self.cfg.tcp_timed_wait_delay_ns);
            self.tw_order.push_back((expiry, remote));
            self.tw_by_endpoint
                .entry(remote)
                .or_default()
                .live
                .push_back(expiry);
            self.ports_time_wait.inc(now);
        }
    }

    /// An incoming connection (to port 80: no ephemeral port) is accepted.
    pub fn incoming_open(&mut self, now: SimTime) {
        self.incoming_open_many(now, 1);
    }

    /// `n` incoming connections are established at once (the clients' keep-alive
    /// connections at the start of a run).
    pub fn incoming_open_many(&mut self, now: SimTime, n: u64) {
        self.advance(now);
        let v = self.established.get() + n;
        self.established.set(self.clock, v);
    }

    /// An incoming connection ends. `server_closed`: the server closed first (e.g. an idle
    /// keep-alive connection after `connectionTimeout`), so the TCB stays in TIME_WAIT.
    pub fn incoming_close(&mut self, now: SimTime, server_closed: bool) {
        self.advance(now);
        let now = self.clock;
        self.established.dec(now);
        if server_closed && self.cfg.tcp_timed_wait_delay_ns > 0 {
            self.incoming_tw
                .push_back(now.saturating_add(self.cfg.tcp_timed_wait_delay_ns));
            self.incoming_time_wait.inc(now);
        }
    }

    /// Brings TIME_WAIT expiry up to `now` (call before sampling gauges). Each expiry sets
    /// the gauges at its own time, in order.
    pub fn advance(&mut self, now: SimTime) {
        debug_assert!(
            now >= self.clock,
            "time went backwards: {now} < {}",
            self.clock
        );
        let now = now.max(self.clock);
        while let Some(&(t, ep)) = self.tw_order.front() {
            if t > now {
                break;
            }
            self.tw_order.pop_front();
            let tw = self
                .tw_by_endpoint
                .get_mut(&ep)
                .expect("endpoint of a TIME_WAIT entry");
            if tw.reused > 0 {
                // Already taken by a reuse: the gauges changed then.
                tw.reused -= 1;
            } else {
                let live = tw.live.pop_front();
                debug_assert_eq!(live, Some(t));
                self.ports_time_wait.dec(t);
            }
            if tw.live.is_empty() && tw.reused == 0 {
                self.tw_by_endpoint.remove(&ep);
            }
        }
        while let Some(&t) = self.incoming_tw.front() {
            if t > now {
                break;
            }
            self.incoming_tw.pop_front();
            self.incoming_time_wait.dec(t);
        }
        self.clock = now;
    }

    /// Ports of the dynamic range neither bound by an open connection nor in TIME_WAIT at
    /// `now` (counts entries that have expired by `now` as free without releasing them).
    pub fn ports_free(&self, now: SimTime) -> u32 {
        let live_tw: u64 = self
            .tw_by_endpoint
            .values()
            .map(|tw| (tw.live.len() - tw.live.partition_point(|&t| t <= now)) as u64)
            .sum();
        let used = self.ports_in_use.get() + live_tw;
        (self.cfg.dynamic_port_count as u64).saturating_sub(used) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MILLIS, from_secs};

    fn small(ports: u32, tw_s: u64) -> TcpConfig {
        TcpConfig {
            dynamic_port_start: 49152,
            dynamic_port_count: ports,
            tcp_timed_wait_delay_ns: tw_s * SECONDS,
            reuse_time_wait_ports: false,
        }
    }

    #[test]
    fn defaults() {
        let c = TcpConfig::windows_2008();
        assert_eq!(c.dynamic_port_start + c.dynamic_port_count - 1, 65535);
        assert_eq!(c.tcp_timed_wait_delay_ns, 240 * SECONDS);
        let c = TcpConfig::max_user_port_2003();
        assert_eq!(c.dynamic_port_count, 3976);
        assert_eq!(c.dynamic_port_start + c.dynamic_port_count - 1, 5000);
        assert_eq!(ConnectError::NoBufs.wsa_code(), 10055);
        assert_eq!(ConnectError::AddrInUse.wsa_code(), 10048);
    }

    #[test]
    fn active_close_holds_the_port_for_time_wait_passive_close_does_not() {
        let mut tcp = Tcp::new(small(2, 10));
        tcp.connect(0, 1).unwrap();
        tcp.connect(0, 1).unwrap();
        assert_eq!(tcp.connect(0, 1), Err(ConnectError::NoBufs));
        tcp.close(SECONDS, 1, true);
        tcp.close(SECONDS, 1, false);
        assert_eq!(tcp.ports_free(SECONDS), 1);
        assert_eq!(tcp.ports_time_wait.get(), 1);
        tcp.connect(2 * SECONDS, 1).unwrap();
        assert_eq!(tcp.connect(2 * SECONDS, 1), Err(ConnectError::NoBufs));
        assert_eq!(tcp.ports_free(11 * SECONDS - 1), 0);
        assert_eq!(tcp.ports_free(11 * SECONDS), 1);
        tcp.connect(11 * SECONDS, 1).unwrap();
        assert_eq!(tcp.wsaenobufs.total(), 2);
        assert_eq!(tcp.connection_failures.total(), 2);
        assert_eq!(tcp.established.get(), 2);
    }

    #[test]
    fn time_wait_gauge_mean_is_exact_with_lazy_release() {
        let mut tcp = Tcp::new(small(10, 10));
        tcp.connect(0, 1).unwrap();
        tcp.close(0, 1, true); // TIME_WAIT over [0, 10 s)
        tcp.advance(40 * SECONDS);
        assert!((tcp.ports_time_wait.mean(40 * SECONDS) - 0.25).abs() < 1e-12);
        assert_eq!(tcp.ports_time_wait.get(), 0);
    }

    #[test]
    fn incoming_connections_take_no_port() {
        let mut tcp = Tcp::new(small(1, 10));
        tcp.incoming_open(0);
        tcp.incoming_open(0);
        tcp.incoming_close(MILLIS, true);
        tcp.incoming_close(MILLIS, false);
        assert_eq!(tcp.incoming_time_wait.get(), 1);
        assert_eq!(tcp.ports_free(MILLIS), 1);
        tcp.advance(MILLIS + 10 * SECONDS);
        assert_eq!(tcp.incoming_time_wait.get(), 0);
        assert_eq!(tcp.established.get(), 0);
    }

    #[test]
    fn reuse_takes_another_endpoints_time_wait_port_and_fails_10048_on_the_same() {
        let mut cfg = small(3, 100);
        cfg.reuse_time_wait_ports = true;
        let mut tcp = Tcp::new(cfg);
        for _ in 0..3 {
            tcp.connect(0, 1).unwrap();
        }
        // Every port carries an open connection: nothing to reuse.
        assert_eq!(tcp.connect(0, 2), Err(ConnectError::NoBufs));
        tcp.close(SECONDS, 1, true);
        tcp.close(2 * SECONDS, 1, true);
        // Only endpoint 1's TIME_WAIT ports are left: a connect to 1 collides.
        assert_eq!(tcp.connect(3 * SECONDS, 1), Err(ConnectError::AddrInUse));
        // Endpoint 2 may reuse one (the oldest).
        tcp.connect(3 * SECONDS, 2).unwrap();
        assert_eq!(tcp.ports_reused.total(), 1);
        assert_eq!(tcp.ports_time_wait.get(), 1);
        assert_eq!(tcp.ports_in_use.get(), 2);
        assert_eq!(tcp.addr_in_use.total(), 1);
        assert_eq!(tcp.wsaenobufs.total(), 1);
        // The reused entry (expiring at 101 s) is skipped; the other expires at 102 s.
        tcp.advance(101 * SECONDS);
        assert_eq!(tcp.ports_time_wait.get(), 1);
        tcp.advance(102 * SECONDS);
        assert_eq!(tcp.ports_time_wait.get(), 0);
        assert_eq!(tcp.ports_free(102 * SECONDS), 1);
        assert_eq!(tcp.ports_time_wait.underflows(), 0);
        // Endpoint 2's connection closes into TIME_WAIT; now endpoint 1 can reuse it.
        tcp.connect(103 * SECONDS, 1).unwrap();
        tcp.close(104 * SECONDS, 2, true);
        tcp.connect(105 * SECONDS, 1).unwrap();
        assert_eq!(tcp.ports_reused.total(), 2);
        tcp.advance(from_secs(1000.0));
        assert!(tcp.tw_order.is_empty() && tcp.tw_by_endpoint.is_empty());
    }
}
