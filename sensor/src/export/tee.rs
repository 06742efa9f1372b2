use super::RecordSink;
use super::summary::RunStats;
use crate::model::{Connection, Flow, FlowReport};

/// Two sinks fed the same records (e.g. the table on stdout and OTLP).
pub struct Tee<A, B>(pub A, pub B);

impl<A: RecordSink, B: RecordSink> RecordSink for Tee<A, B> {
    fn connection(&mut self, conn: &Connection) {
        self.0.connection(conn);
        self.1.connection(conn);
    }

    fn flow(&mut self, flow: &Flow) {
        self.0.flow(flow);
        self.1.flow(flow);
    }

    fn flow_report(&mut self, report: &FlowReport) {
        self.0.flow_report(report);
        self.1.flow_report(report);
    }

    fn finish(&mut self, stats: &RunStats) {
        self.0.finish(stats);
        self.1.finish(stats);
    }

    fn flush(&mut self) {
        self.0.flush();
        self.1.flush();
    }
}

/// An optional sink: records go nowhere when it is `None`.
impl<S: RecordSink> RecordSink for Option<S> {
    fn connection(&mut self, conn: &Connection) {
        if let Some(s) = self {
            s.connection(conn);
        }
    }

    fn flow(&mut self, flow: &Flow) {
        if let Some(s) = self {
            s.flow(flow);
        }
    }

    fn flow_report(&mut self, report: &FlowReport) {
        if let Some(s) = self {
            s.flow_report(report);
        }
    }

    fn finish(&mut self, stats: &RunStats) {
        if let Some(s) = self {
            s.finish(stats);
        }
    }

    fn flush(&mut self) {
        if let Some(s) = self {
            s.flush();
        }
    }
}
