//! Identifiers and the outcome of a request, shared by every model.

/// Index of a request class in the scenario's class list.
pub type ClassId = u16;

/// A handle to a request's state, allocated by the engine (slab index).
pub type RequestId = u32;

/// How a request attempt ended. The names are the keys of `summary.json`'s `outcomes`
/// table and the HTTPERR / exception names they model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Served (HTTP 200).
    Ok,
    /// HTTP.SYS app-pool queue full: 503, HTTPERR reason `QueueFull`.
    QueueFull503,
    /// IIS `appConcurrentRequestLimit` exceeded: 503.2.
    ConcurrentRequestLimit503_2,
    /// ASP.NET `requestQueueLimit` exceeded: 503 "Server Too Busy".
    ServerTooBusy503,
    /// An outgoing call could not connect: no ephemeral port free, `SocketException`
    /// 10055 WSAENOBUFS ("…lacked sufficient buffer space or because a queue was full").
    Wsaenobufs,
    /// An outgoing call could not connect: the local port's 4-tuple is still in TIME_WAIT,
    /// 10048 WSAEADDRINUSE (event 4227).
    Wsaeaddrinuse,
    /// An outgoing call was cancelled at its timeout (or waited too long for a connection).
    OutgoingTimeout,
    /// An outgoing call was answered with an error.
    OutgoingError,
    /// The application pool is stopped (rapid-fail protection): HTTP.SYS answers 503,
    /// HTTPERR `AppOffline`.
    AppOffline503,
    /// The worker process serving it crashed: HTTPERR `Connection_Abandoned_By_AppPool`.
    ConnectionAbandoned,
    /// The app-pool queue was full and the pool's `failure/@loadBalancerCapabilities` is
    /// `TcpLevel`: HTTP.SYS closes the connection instead of answering 503 (HTTPERR
    /// `QueueFull`), so that a balancer working at the TCP level notices.
    QueueFullReset,
    /// The pool is stopped and `loadBalancerCapabilities` is `TcpLevel`: the connection is
    /// closed instead of a 503 (HTTPERR `AppOffline`).
    AppOfflineReset,
    /// `aspnet:RequestQueueLimitPerSession` requests already polled its session's lock:
    /// HTTP 500 ("Failed to process request", an event-log warning).
    SessionQueueLimit500,
    /// The request ran synchronously past `httpRuntime/executionTimeout`: the request
    /// timeout manager aborted its thread, HTTP 500 "Request timed out" (`HttpException`
    /// 3001, `ASP.NET Applications\Requests Timed Out`).
    RequestTimedOut500,
    /// The site had `limits/@maxConnections` connections in use: HTTP.SYS answers 503,
    /// HTTPERR `ConnLimit`.
    ConnLimit503,
    /// It waited in the pool's HTTP.SYS queue longer than the site's `connectionTimeout`
    /// (no worker process took it): HTTP.SYS expires the connection, HTTPERR
    /// `Timer_AppPool`; the client gets no response.
    TimerAppPool,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 16] = [
        Outcome::Ok,
        Outcome::QueueFull503,
        Outcome::ConcurrentRequestLimit503_2,
        Outcome::ServerTooBusy503,
        Outcome::Wsaenobufs,
        Outcome::Wsaeaddrinuse,
        Outcome::OutgoingTimeout,
        Outcome::OutgoingError,
        Outcome::AppOffline503,
        Outcome::ConnectionAbandoned,
        Outcome::QueueFullReset,
        Outcome::AppOfflineReset,
        Outcome::SessionQueueLimit500,
        Outcome::RequestTimedOut500,
        Outcome::ConnLimit503,
        Outcome::TimerAppPool,
    ];

    /// The stable name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::QueueFull503 => "503_queue_full",
            Outcome::ConcurrentRequestLimit503_2 => "503_2_concurrent_request_limit",
            Outcome::ServerTooBusy503 => "503_server_too_busy",
            Outcome::Wsaenobufs => "wsaenobufs",
            Outcome::Wsaeaddrinuse => "wsaeaddrinuse",
            Outcome::OutgoingTimeout => "outgoing_timeout",
            Outcome::OutgoingError => "outgoing_error",
            Outcome::AppOffline503 => "503_app_offline",
            Outcome::ConnectionAbandoned => "connection_abandoned_by_app_pool",
            Outcome::QueueFullReset => "connection_reset_queue_full",
            Outcome::AppOfflineReset => "connection_reset_app_offline",
            Outcome::SessionQueueLimit500 => "500_session_queue_limit",
            Outcome::RequestTimedOut500 => "500_request_timed_out",
            Outcome::ConnLimit503 => "503_conn_limit",
            Outcome::TimerAppPool => "connection_expired_timer_app_pool",
        }
    }

    /// Whether the user sees a failure.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Ok)
    }

    /// Dense index for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}
