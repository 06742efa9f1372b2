use std::sync::Arc;

use super::otlp::attributes::TrafficSample;
use super::records::{FindingRecord, HandshakeRecord, RecordSink, Summary};
use crate::x509::CertInfo;

/// Two sinks fed the same records (e.g. the table on stdout and OTLP).
pub struct Tee<A, B>(pub A, pub B);

impl<A: RecordSink, B: RecordSink> RecordSink for Tee<A, B> {
    fn handshake(&mut self, hs: &HandshakeRecord, certs: &[Arc<CertInfo>]) {
        self.0.handshake(hs, certs);
        self.1.handshake(hs, certs);
    }

    fn certificate(&mut self, cert: &CertInfo) {
        self.0.certificate(cert);
        self.1.certificate(cert);
    }

    fn finding(&mut self, f: &FindingRecord) {
        self.0.finding(f);
        self.1.finding(f);
    }

    fn traffic(&mut self, t: &TrafficSample) {
        self.0.traffic(t);
        self.1.traffic(t);
    }

    fn finish(&mut self, summary: &Summary) {
        self.0.finish(summary);
        self.1.finish(summary);
    }
}

/// An optional sink: records go nowhere when it is `None`.
impl<S: RecordSink> RecordSink for Option<S> {
    fn handshake(&mut self, hs: &HandshakeRecord, certs: &[Arc<CertInfo>]) {
        if let Some(s) = self {
            s.handshake(hs, certs);
        }
    }

    fn certificate(&mut self, cert: &CertInfo) {
        if let Some(s) = self {
            s.certificate(cert);
        }
    }

    fn finding(&mut self, f: &FindingRecord) {
        if let Some(s) = self {
            s.finding(f);
        }
    }

    fn traffic(&mut self, t: &TrafficSample) {
        if let Some(s) = self {
            s.traffic(t);
        }
    }

    fn finish(&mut self, summary: &Summary) {
        if let Some(s) = self {
            s.finish(summary);
        }
    }
}
