//! The metrics of `pgtenant run`, served on `GET /metrics`: reconciles by
//! result, reconcile duration, the time of the last success, tenants by
//! state, whether the input is valid and whether the server is up.
//!
//! This module owns the metric names and their registry; the loop in
//! [`crate::sidecar::daemon`] records into them and [`crate::sidecar::health`] serves them.
//! Metrics are atomics inside the `prometheus-client` types, so recording
//! takes no lock and encoding reads a consistent-enough snapshot.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::reconcile::Summary;

type Labels = [(&'static str, &'static str); 1];

/// How a reconcile ended, as the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Every tenant is as the input asks.
    Success,
    /// It ran, but some tenants failed or were refused.
    Failure,
    /// It could not run: connection lost, a catalog query failed.
    Error,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Failure => "failure",
            ReconcileResult::Error => "error",
        }
    }
}

/// Reconcile durations: from a no-op resync of a few tenants (milliseconds)
/// to a first apply of hundreds (a minute).
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    tenants: Family<Labels, Gauge>,
    input_valid: Gauge,
    postgres_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pgtenant");
        let reconciles = Family::<Labels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let last_success = Gauge::<f64, AtomicU64>::default();
        let tenants = Family::<Labels, Gauge>::default();
        let input_valid = Gauge::default();
        let postgres_up = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles by result: success, failure (some tenants failed), error (could not run)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile, from connecting to the last statement",
            duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the end of the last successful reconcile; 0 before the first",
            last_success.clone(),
        );
        registry.register(
            "tenants",
            "Tenants of the input in force by state after the last reconcile: in_sync, failed, refused",
            tenants.clone(),
        );
        registry.register(
            "input_valid",
            "1 when the last read of the users file and admin credentials was valid, else 0",
            input_valid.clone(),
        );
        registry.register(
            "postgres_up",
            "1 while pgtenant holds a session to the server, else 0",
            postgres_up.clone(),
        );
        // Every series exists from the start, so a dashboard shows 0, not "no data".
        for r in [
            ReconcileResult::Success,
            ReconcileResult::Failure,
            ReconcileResult::Error,
        ] {
            let _ = reconciles.get_or_create(&[("result", r.as_str())]);
        }
        for s in ["in_sync", "failed", "refused"] {
            let _ = tenants.get_or_create(&[("state", s)]);
        }
        Metrics {
            registry,
            reconciles,
            duration,
            last_success,
            tenants,
            input_valid,
            postgres_up,
        }
    }

    pub fn record_reconcile(
        &self,
        result: ReconcileResult,
        elapsed: Duration,
        summary: Option<Summary>,
        refused: usize,
    ) {
        self.reconciles
            .get_or_create(&[("result", result.as_str())])
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        if result == ReconcileResult::Success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
        if let Some(s) = summary {
            let failed = s.failed.saturating_sub(refused);
            let set = |state, n: usize| {
                self.tenants
                    .get_or_create(&[("state", state)])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            };
            set("in_sync", s.created + s.updated + s.unchanged);
            set("failed", failed);
            set("refused", refused);
        }
    }

    pub fn set_input_valid(&self, valid: bool) {
        self.input_valid.set(i64::from(valid));
    }

    pub fn set_postgres_up(&self, up: bool) {
        self.postgres_up.set(i64::from(up));
    }

    /// The exposition in the OpenMetrics text format, which Prometheus
    /// parses both as OpenMetrics and as its classic text format (`# EOF`
    /// and `# UNIT` are comments there).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(2048);
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_series() {
        let m = Metrics::new();
        m.set_input_valid(true);
        m.record_reconcile(
            ReconcileResult::Success,
            Duration::from_millis(30),
            Some(Summary {
                tenants: 3,
                created: 1,
                updated: 0,
                unchanged: 1,
                failed: 1,
            }),
            0,
        );
        let text = m.encode();
        for line in [
            "# TYPE pgtenant_reconciles counter",
            "pgtenant_reconciles_total{result=\"success\"} 1",
            "pgtenant_reconciles_total{result=\"error\"} 0",
            "# TYPE pgtenant_reconcile_duration_seconds histogram",
            "pgtenant_reconcile_duration_seconds_count 1",
            "pgtenant_tenants{state=\"in_sync\"} 2",
            "pgtenant_tenants{state=\"failed\"} 1",
            "pgtenant_tenants{state=\"refused\"} 0",
            "pgtenant_input_valid 1",
            "pgtenant_postgres_up 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("pgtenant_last_success_timestamp_seconds 0\n"));
    }
}
