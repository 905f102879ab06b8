//! The metrics of `pgtenant run`, served on `GET /metrics`: reconciles by
//! result, reconcile duration, the time of the last success, tenants by
//! state, whether the input is valid and whether the server is up, drift
//! corrections, the resync interval, the build, and the standard `process_*`
//! metrics (see [`crate::sidecar::process_metrics`]).
//!
//! This module owns the metric names and their registry; the loop in
//! [`crate::sidecar::daemon`] records into them and [`crate::sidecar::health`] serves them.
//! Metrics are atomics inside the `prometheus-client` types, so recording
//! takes no lock and encoding reads a consistent-enough snapshot.
//!
//! Two formats: OpenMetrics when the scraper asks for it (Prometheus does by
//! default), and the classic Prometheus text format (0.0.4) otherwise.
//! prometheus-client writes only OpenMetrics, so [`to_classic_text`] turns
//! its output into the classic format: the two differ only in a counter's
//! family name (`x` with samples `x_total` in OpenMetrics, `x_total`
//! throughout in the classic format), `# UNIT` lines and the `# EOF`
//! terminator. Both are checked by `promtool` in the test suite.

use std::sync::atomic::AtomicU64;
use std::time::Duration as StdDuration;
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
    drift_corrections: Counter,
    resync_interval: Gauge<f64, AtomicU64>,
    reconciles: Family<Labels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    tenants: Family<Labels, Gauge>,
    input_valid: Gauge,
    postgres_up: Gauge,
    tenant_failures: Family<Labels, Counter>,
    password_overwrites: Counter,
    pgbouncer_reloads: Family<Labels, Counter>,
    output_errors: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::sidecar::process_metrics::ProcessCollector));
        let registry = root.sub_registry_with_prefix("pgtenant");
        let build_info = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the labels name the version and the git commit of this pgtenant",
            build_info.clone(),
        );
        build_info
            .get_or_create(&[("version", VERSION), ("revision", REVISION)])
            .set(1);
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Objects put back by a reconcile whose input had already been applied: changes made on the server by someone else",
            drift_corrections.clone(),
        );
        let resync_interval = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "resync_interval_seconds",
            "The --resync-interval: how often pgtenant re-applies the input to correct drift",
            resync_interval.clone(),
        );
        let reconciles = Family::<Labels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let last_success = Gauge::<f64, AtomicU64>::default();
        let tenants = Family::<Labels, Gauge>::default();
        let input_valid = Gauge::default();
        let postgres_up = Gauge::default();
        let tenant_failures = Family::<Labels, Counter>::default();
        let password_overwrites = Counter::default();
        let pgbouncer_reloads = Family::<Labels, Counter>::default();
        let output_errors = Family::<Labels, Counter>::default();
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
        registry.register(
            "tenant_failures",
            "Tenants that failed in a reconcile, by reason: lock_timeout (another session, often \
             the tenant, held a lock), statement_timeout, other",
            tenant_failures.clone(),
        );
        registry.register(
            "password_overwrites",
            "Passwords found changed by someone else since pgtenant set or checked them, while \
             the input kept them (another writer: a second pgtenant, a person)",
            password_overwrites.clone(),
        );
        for k in crate::reconcile::apply::FailureKind::ALL {
            let _ = tenant_failures.get_or_create(&[("reason", k.as_str())]);
        }
        registry.register(
            "pgbouncer_reloads",
            "RELOADs sent to PgBouncer's admin console after its auth file changed, by result: success, failure (retried)",
            pgbouncer_reloads.clone(),
        );
        registry.register(
            "output_errors",
            "Failed writes of what apply writes besides the server, by output: bindings, pgbouncer_auth_file",
            output_errors.clone(),
        );
        for r in ["success", "failure"] {
            let _ = pgbouncer_reloads.get_or_create(&[("result", r)]);
        }
        for o in ["bindings", "pgbouncer_auth_file"] {
            let _ = output_errors.get_or_create(&[("output", o)]);
        }
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
            registry: root,
            drift_corrections,
            resync_interval,
            reconciles,
            duration,
            last_success,
            tenants,
            input_valid,
            postgres_up,
            tenant_failures,
            password_overwrites,
            pgbouncer_reloads,
            output_errors,
        }
    }

    pub fn record_tenant_failure(&self, kind: crate::reconcile::apply::FailureKind) {
        self.tenant_failures
            .get_or_create(&[("reason", kind.as_str())])
            .inc();
    }

    pub fn record_password_overwrites(&self, n: usize) {
        self.password_overwrites.inc_by(n as u64);
    }

    pub fn record_pgbouncer_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.pgbouncer_reloads
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// `output` is `bindings` or `pgbouncer_auth_file`.
    pub fn record_output_error(&self, output: &'static str) {
        self.output_errors
            .get_or_create(&[("output", output)])
            .inc();
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

    /// Counts objects put back on the server by a reconcile of an input
    /// that had already been applied successfully.
    pub fn record_drift_corrections(&self, objects: usize) {
        self.drift_corrections.inc_by(objects as u64);
    }

    pub fn set_resync_interval(&self, interval: StdDuration) {
        self.resync_interval.set(interval.as_secs_f64());
    }

    pub fn set_input_valid(&self, valid: bool) {
        self.input_valid.set(i64::from(valid));
    }

    pub fn set_postgres_up(&self, up: bool) {
        self.postgres_up.set(i64::from(up));
    }

    /// The exposition in the OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in the classic Prometheus text format (0.0.4).
    pub fn encode_classic(&self) -> String {
        to_classic_text(&self.encode_openmetrics())
    }
}

/// The version and commit `pgtenant_build_info` reports. The commit comes
/// from the build (`PGTENANT_GIT_COMMIT`, set by build.rs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("PGTENANT_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Rewrites prometheus-client's OpenMetrics text as the classic text format:
/// a counter family `x` (samples `x_total`) becomes `x_total` in its `# HELP`
/// and `# TYPE` lines, `# UNIT` lines and the `# EOF` line go. Help texts
/// here contain no `"` (escaped differently in the two formats), which the
/// unit test checks.
pub fn to_classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // HELP comes first; the TYPE line after it says whether the
            // family is a counter.
            let name = rest.split(' ').next().unwrap_or_default();
            let is_counter = lines
                .get(i)
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if is_counter {
                let help = &rest[name.len()..];
                out.push_str(&format!(
                    "# HELP {name}_total{help}\n# TYPE {name}_total counter\n"
                ));
                i += 1;
                continue;
            }
        } else if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            out.push_str(&format!("# TYPE {name}_total counter\n"));
            continue;
        } else if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" unknown"))
        {
            out.push_str(&format!("# TYPE {name} untyped\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl crate::outputs::Recorder for Metrics {
    fn pgbouncer_reload(&self, success: bool) {
        self.record_pgbouncer_reload(success);
    }
    fn output_error(&self, output: &'static str) {
        self.record_output_error(output);
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
        m.set_resync_interval(Duration::from_secs(300));
        m.record_drift_corrections(2);
        let text = m.encode_openmetrics();
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
            "pgtenant_tenant_failures_total{reason=\"lock_timeout\"} 0",
            "pgtenant_password_overwrites_total 0",
            "# TYPE pgtenant_drift_corrections counter",
            "pgtenant_drift_corrections_total 2",
            "pgtenant_resync_interval_seconds 300.0",
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
            "pgtenant_pgbouncer_reloads_total{result=\"failure\"} 0",
            "pgtenant_output_errors_total{output=\"bindings\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            text.contains(&format!(
                "pgtenant_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1"
            )),
            "{text}"
        );
        assert!(!text.contains("pgtenant_last_success_timestamp_seconds 0\n"));
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(!help.contains('"') && !help.contains('\\'), "{help}");
        }
    }

    #[test]
    fn classic_text_renames_counter_families() {
        let m = Metrics::new();
        let classic = m.encode_classic();
        for line in [
            "# HELP pgtenant_reconciles_total Reconciles by result",
            "# TYPE pgtenant_reconciles_total counter",
            "pgtenant_reconciles_total{result=\"success\"} 0",
            "# TYPE pgtenant_drift_corrections_total counter",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE pgtenant_input_valid gauge",
            "# TYPE pgtenant_reconcile_duration_seconds histogram",
        ] {
            assert!(classic.contains(line), "missing {line:?} in\n{classic}");
        }
        assert!(
            !classic.contains("# EOF") && !classic.contains("# UNIT"),
            "{classic}"
        );
        assert!(!classic.contains("# TYPE pgtenant_reconciles counter"));
    }
}
