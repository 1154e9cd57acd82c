//! Prometheus metrics of one process.
//!
//! Each process owns a private [`Registry`] (not the global default one) so
//! several gateways started in one test process do not share counters.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub ws_connections: IntGauge,
    pub ws_frames_in: IntCounterVec,
    pub ws_frames_out: IntCounterVec,
    pub ws_frames_dropped: IntCounterVec,
    /// `dependency_up{dependency}`: 1 while PostgreSQL / Redis answer this
    /// process (kept by `crate::health::spawn_probe`).
    pub dependency_up: IntGaugeVec,
}

impl Metrics {
    pub fn new(process: &str) -> Self {
        let registry = Registry::new_custom(Some("fechatter".into()), None)
            .expect("static registry options are valid");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "REST requests by route and status"),
            &["route", "status"],
        )
        .expect("valid metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "REST latency by route").buckets(
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            &["route"],
        )
        .expect("valid metric");
        let ws_connections =
            IntGauge::new("ws_connections", "open WebSocket connections").expect("valid metric");
        let ws_frames_in = IntCounterVec::new(
            Opts::new("ws_frames_in_total", "client frames by type"),
            &["type"],
        )
        .expect("valid metric");
        let ws_frames_out = IntCounterVec::new(
            Opts::new("ws_frames_out_total", "server frames by type"),
            &["type"],
        )
        .expect("valid metric");
        let ws_frames_dropped = IntCounterVec::new(
            Opts::new(
                "ws_frames_dropped_total",
                "server frames dropped by backpressure",
            ),
            &["type"],
        )
        .expect("valid metric");
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "1 while the dependency answers this process's health probe",
            ),
            &["dependency"],
        )
        .expect("valid metric");
        let up = IntGauge::with_opts(
            Opts::new("process_up", "1 while the process runs").const_label("process", process),
        )
        .expect("valid metric");
        up.set(1);
        // Resident memory, CPU time and open fds of this process (Linux),
        // scraped by the load tests to report memory per connection.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once per registry");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_latency.clone()),
            Box::new(ws_connections.clone()),
            Box::new(ws_frames_in.clone()),
            Box::new(ws_frames_out.clone()),
            Box::new(ws_frames_dropped.clone()),
            Box::new(dependency_up.clone()),
            Box::new(up),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_latency,
            ws_connections,
            ws_frames_in,
            ws_frames_out,
            ws_frames_dropped,
            dependency_up,
        }
    }

    /// Registers an extra collector (worker- or gateway-specific metrics).
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
