//! Every metric the sensor exports, in one list: the OTLP exporter names
//! its instruments from here, and the deployment's dashboard and alert
//! rules are checked against it (tests/tests/deploy_assets.rs), so a rename
//! that forgets them fails the build.
//!
//! [`Metric::prometheus`] renders a name the way the OpenTelemetry
//! Collector's Prometheus exporters do by default (`add_metric_suffixes`):
//! dots become underscores, the unit is appended unless the name already
//! ends with it (`s` → `seconds`, `By` → `bytes`; `{...}` annotations are
//! dropped), and monotonic counters end in `_total`.

/// How the instrument aggregates; decides the `_total` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    /// Monotonic sum.
    Counter,
    Gauge,
    /// Explicit-bucket histogram: Prometheus stores `_bucket` (with `le`),
    /// `_sum` and `_count` series under its name.
    Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The OTel name.
    pub name: &'static str,
    pub instrument: Instrument,
    /// UCUM unit as the instrument declares it (`""` for none).
    pub unit: &'static str,
    /// Attribute keys of its data points (OTel names).
    pub attributes: &'static [&'static str],
}

const K8S_PEERS: [&str; 4] = [
    "k8s.src.namespace",
    "k8s.src.owner.name",
    "k8s.dst.namespace",
    "k8s.dst.owner.name",
];

pub const HANDSHAKES: Metric = Metric {
    name: "tls.handshakes",
    instrument: Instrument::Counter,
    unit: "{handshake}",
    attributes: &[
        "tls.protocol.version",
        "tls.cipher",
        "tls.next_protocol",
        "tls.mesh",
        "tls.mutual",
        "tls.resumed",
        K8S_PEERS[0],
        K8S_PEERS[1],
        K8S_PEERS[2],
        K8S_PEERS[3],
        "server.port",
    ],
};

pub const CERTIFICATE_NOT_AFTER: Metric = Metric {
    name: "tls.certificate.not_after",
    instrument: Instrument::Gauge,
    unit: "s",
    attributes: &[
        "tls.server.hash.sha256",
        "tls.server.subject.cn",
        "tls.server.issuer.cn",
        "tls.certificate.source",
        "tls.certificate.verdict",
        "cert_manager.certificate.name",
        "cert_manager.certificate.namespace",
        "cert_manager.issuer.name",
        "cert_manager.issuer.kind",
        K8S_PEERS[2],
        K8S_PEERS[3],
    ],
};

pub const CERTIFICATES: Metric = Metric {
    name: "tls.certificates",
    instrument: Instrument::Gauge,
    unit: "{certificate}",
    attributes: &["tls.certificate.verdict", "tls.certificate.status"],
};

pub const FINDINGS: Metric = Metric {
    name: "tls.findings",
    instrument: Instrument::Counter,
    unit: "{finding}",
    attributes: &[
        "tls.finding.rule",
        "tls.finding.severity",
        K8S_PEERS[2],
        K8S_PEERS[3],
    ],
};

/// The attributes of every `tls.traffic.*` and `tls.connection*` point.
const TRAFFIC_ATTRIBUTES: [&str; 8] = [
    "tls.encrypted",
    "tls.protocol.version",
    "tls.mesh",
    K8S_PEERS[0],
    K8S_PEERS[1],
    K8S_PEERS[2],
    K8S_PEERS[3],
    "server.port",
];

pub const TRAFFIC_BYTES: Metric = Metric {
    name: "tls.traffic.bytes",
    instrument: Instrument::Counter,
    unit: "By",
    attributes: &TRAFFIC_ATTRIBUTES,
};

pub const TRAFFIC_PACKETS: Metric = Metric {
    name: "tls.traffic.packets",
    instrument: Instrument::Counter,
    unit: "{packet}",
    attributes: &TRAFFIC_ATTRIBUTES,
};

pub const CONNECTIONS: Metric = Metric {
    name: "tls.connections",
    instrument: Instrument::Counter,
    unit: "{connection}",
    attributes: &[
        TRAFFIC_ATTRIBUTES[0],
        TRAFFIC_ATTRIBUTES[1],
        TRAFFIC_ATTRIBUTES[2],
        TRAFFIC_ATTRIBUTES[3],
        TRAFFIC_ATTRIBUTES[4],
        TRAFFIC_ATTRIBUTES[5],
        TRAFFIC_ATTRIBUTES[6],
        TRAFFIC_ATTRIBUTES[7],
        "tls.connection.end",
    ],
};

pub const CONNECTION_DURATION: Metric = Metric {
    name: "tls.connection.duration",
    instrument: Instrument::Histogram,
    unit: "s",
    attributes: &TRAFFIC_ATTRIBUTES,
};

pub const PACKETS: Metric = Metric {
    name: "sensor.packets",
    instrument: Instrument::Counter,
    unit: "{packet}",
    attributes: &[],
};

pub const EVENTS_LOST: Metric = Metric {
    name: "sensor.events.lost",
    instrument: Instrument::Counter,
    unit: "{event}",
    attributes: &[],
};

pub const FLOWS_EVICTED: Metric = Metric {
    name: "sensor.flows.evicted",
    instrument: Instrument::Counter,
    unit: "{flow}",
    attributes: &[],
};

pub const PARSE_ERRORS: Metric = Metric {
    name: "sensor.parse.errors",
    instrument: Instrument::Counter,
    unit: "{error}",
    attributes: &["error.type"],
};

pub const INVENTORY_SYNCED: Metric = Metric {
    name: "sensor.inventory.synced",
    instrument: Instrument::Gauge,
    unit: "",
    attributes: &["sensor.inventory.resource"],
};

pub const INVENTORY_RETRIES: Metric = Metric {
    name: "sensor.inventory.retries",
    instrument: Instrument::Counter,
    unit: "{retry}",
    attributes: &["sensor.inventory.resource"],
};

pub const INVENTORY_RELISTS: Metric = Metric {
    name: "sensor.inventory.relists",
    instrument: Instrument::Counter,
    unit: "{list}",
    attributes: &["sensor.inventory.resource"],
};

pub const OWN_CONNECTIONS: Metric = Metric {
    name: "sensor.own.connections",
    instrument: Instrument::Counter,
    unit: "{connection}",
    attributes: &[],
};

pub const EXPORT_FAILURES: Metric = Metric {
    name: "sensor.export.failures",
    instrument: Instrument::Counter,
    unit: "{request}",
    attributes: &["signal"],
};

pub const EXPORT_DROPPED: Metric = Metric {
    name: "sensor.export.dropped",
    instrument: Instrument::Counter,
    unit: "{record}",
    attributes: &["signal", "reason"],
};

pub const EXPORT_RECORDS: Metric = Metric {
    name: "sensor.export.records",
    instrument: Instrument::Counter,
    unit: "{record}",
    attributes: &["signal"],
};

pub const CARDINALITY_OVERFLOWS: Metric = Metric {
    name: "sensor.cardinality.overflows",
    instrument: Instrument::Counter,
    unit: "{value}",
    attributes: &["metric", "attribute"],
};

pub const DEDUP_EVICTIONS: Metric = Metric {
    name: "sensor.dedup.evictions",
    instrument: Instrument::Counter,
    unit: "{key}",
    attributes: &["event"],
};

pub const PROBES: Metric = Metric {
    name: "sensor.probes",
    instrument: Instrument::Counter,
    unit: "{probe}",
    attributes: &["result"],
};

/// Every metric, in the order DESIGN.md's Telemetry table lists them.
pub const ALL: &[Metric] = &[
    HANDSHAKES,
    CERTIFICATE_NOT_AFTER,
    CERTIFICATES,
    FINDINGS,
    TRAFFIC_BYTES,
    TRAFFIC_PACKETS,
    CONNECTIONS,
    CONNECTION_DURATION,
    PACKETS,
    EVENTS_LOST,
    FLOWS_EVICTED,
    PARSE_ERRORS,
    INVENTORY_SYNCED,
    INVENTORY_RETRIES,
    INVENTORY_RELISTS,
    OWN_CONNECTIONS,
    EXPORT_FAILURES,
    EXPORT_DROPPED,
    EXPORT_RECORDS,
    CARDINALITY_OVERFLOWS,
    DEDUP_EVICTIONS,
    PROBES,
];

/// Resource attributes every point carries (the collector's
/// `resource_to_telemetry_conversion` turns them into labels).
pub const RESOURCE_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.version",
    "service.instance.id",
    "k8s.cluster.name",
    "k8s.node.name",
    "host.name",
];

/// A name or attribute key as Prometheus spells it: every character
/// outside `[a-zA-Z0-9_:]` becomes `_`.
pub fn prometheus_label(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The unit's word in a Prometheus name; `None` for annotations and none.
fn unit_suffix(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        "1" => Some("ratio"),
        _ => None,
    }
}

impl Metric {
    /// The name Prometheus stores it under, after the collector's translation.
    pub fn prometheus(&self) -> String {
        let mut tokens: Vec<String> = self
            .name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(u) = unit_suffix(self.unit)
            && tokens.last().map(String::as_str) != Some(u)
        {
            tokens.push(u.to_string());
        }
        if self.instrument == Instrument::Counter {
            tokens.retain(|t| t != "total");
            tokens.push("total".into());
        }
        tokens.join("_")
    }

    /// Its attribute keys as Prometheus labels (a histogram's buckets
    /// carry `le` too).
    pub fn prometheus_labels(&self) -> impl Iterator<Item = String> + '_ {
        let le = (self.instrument == Instrument::Histogram).then(|| "le".to_string());
        self.attributes
            .iter()
            .map(|a| prometheus_label(a))
            .chain(le)
    }
}

/// The metric Prometheus stores under `name`, if the sensor exports it
/// (a histogram under its `_bucket`, `_sum` and `_count` series).
pub fn by_prometheus_name(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| {
        let base = m.prometheus();
        if m.instrument == Instrument::Histogram {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(base.as_str()))
        } else {
            base == name
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_names_follow_the_collector_translation() {
        let names: Vec<String> = ALL.iter().map(Metric::prometheus).collect();
        assert_eq!(
            names,
            [
                "tls_handshakes_total",
                "tls_certificate_not_after_seconds",
                "tls_certificates",
                "tls_findings_total",
                "tls_traffic_bytes_total",
                "tls_traffic_packets_total",
                "tls_connections_total",
                "tls_connection_duration_seconds",
                "sensor_packets_total",
                "sensor_events_lost_total",
                "sensor_flows_evicted_total",
                "sensor_parse_errors_total",
                "sensor_inventory_synced",
                "sensor_inventory_retries_total",
                "sensor_inventory_relists_total",
                "sensor_own_connections_total",
                "sensor_export_failures_total",
                "sensor_export_dropped_total",
                "sensor_export_records_total",
                "sensor_cardinality_overflows_total",
                "sensor_dedup_evictions_total",
                "sensor_probes_total",
            ]
        );
    }

    #[test]
    fn names_are_unique_and_lookup_finds_each() {
        for m in ALL {
            let stored = match m.instrument {
                Instrument::Histogram => format!("{}_count", m.prometheus()),
                _ => m.prometheus(),
            };
            assert_eq!(by_prometheus_name(&stored), Some(m));
            assert_eq!(ALL.iter().filter(|o| o.name == m.name).count(), 1);
        }
        assert_eq!(by_prometheus_name("tls_handshakes"), None);
        assert_eq!(
            by_prometheus_name("tls_connection_duration_seconds_bucket"),
            Some(&CONNECTION_DURATION)
        );
        assert_eq!(by_prometheus_name("tls_connection_duration_seconds"), None);
    }

    #[test]
    fn labels_replace_dots() {
        assert_eq!(
            prometheus_label("cert_manager.issuer.kind"),
            "cert_manager_issuer_kind"
        );
        assert!(
            CERTIFICATE_NOT_AFTER
                .prometheus_labels()
                .any(|l| l == "tls_certificate_verdict")
        );
    }
}
