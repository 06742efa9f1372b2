//! The resource every metric and log record carries: who is reporting.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use super::config::ResourceConfig;

pub const SERVICE_NAME: &str = "tls-sensor";

/// Attributes in increasing precedence: detected defaults (host, node from
/// the downward API), OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, flags.
pub fn attributes(c: &ResourceConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        ("service.name".into(), SERVICE_NAME.into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
    ];
    let mut set = |k: &str, v: &str| {
        out.retain(|(key, _)| key != k);
        out.push((k.to_string(), v.to_string()));
    };
    if let Some(h) = &c.host_name {
        set("host.name", h);
    }
    if let Some(n) = &c.node_name {
        set("k8s.node.name", n);
    }
    for (k, v) in &c.attributes {
        set(k, v);
    }
    if let Some(s) = &c.service_name {
        set("service.name", s);
    }
    if let Some(cl) = &c.cluster_name {
        set("k8s.cluster.name", cl);
    }
    out
}

pub fn build(c: &ResourceConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attributes(c).into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
        a.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn precedence() {
        let c = ResourceConfig {
            attributes: vec![
                ("service.name".into(), "from-attrs".into()),
                ("k8s.cluster.name".into(), "attrs-cluster".into()),
                ("k8s.node.name".into(), "attrs-node".into()),
                ("deployment.environment".into(), "prod".into()),
            ],
            service_name: None,
            cluster_name: Some("flag-cluster".into()),
            node_name: Some("downward-node".into()),
            host_name: Some("h1".into()),
        };
        let a = attributes(&c);
        assert_eq!(get(&a, "service.name"), Some("from-attrs"));
        assert_eq!(get(&a, "k8s.cluster.name"), Some("flag-cluster"));
        assert_eq!(get(&a, "k8s.node.name"), Some("attrs-node"));
        assert_eq!(get(&a, "host.name"), Some("h1"));
        assert_eq!(get(&a, "deployment.environment"), Some("prod"));
        assert_eq!(get(&a, "service.version"), Some(env!("CARGO_PKG_VERSION")));
        let c = ResourceConfig {
            service_name: Some("svc".into()),
            ..c
        };
        assert_eq!(get(&attributes(&c), "service.name"), Some("svc"));
        let plain = attributes(&ResourceConfig::default());
        assert_eq!(get(&plain, "service.name"), Some(SERVICE_NAME));
        assert_eq!(get(&plain, "k8s.cluster.name"), None);
    }
}
