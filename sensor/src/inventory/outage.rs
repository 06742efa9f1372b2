//! The API server's availability as one state for the log, whatever the
//! number of kinds and retries: "failing" once when the first watch fails,
//! "still failing" every `every`, "answering again" once when every
//! failing watch has answered. The retries themselves are counted per
//! kind (the sync board's `errors`, `sensor.inventory.retries`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::objects::Kind;

/// What to log, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    Down,
    StillDown { for_: Duration, retries: u64 },
    Back { after: Duration, retries: u64 },
}

#[derive(Debug)]
pub struct Outage {
    every: Duration,
    failing: BTreeSet<Kind>,
    /// Start of the outage and when it was last reported.
    since: Option<(Instant, Instant)>,
    retries: u64,
}

impl Outage {
    pub fn new(every: Duration) -> Self {
        Outage {
            every,
            failing: BTreeSet::new(),
            since: None,
            retries: 0,
        }
    }

    /// A watch of `kind` failed (not a 410, not a 403/404).
    pub fn failed(&mut self, kind: Kind, now: Instant) -> Option<Say> {
        self.failing.insert(kind);
        self.retries += 1;
        let Some((start, said)) = self.since else {
            self.since = Some((now, now));
            return Some(Say::Down);
        };
        if now.duration_since(said) < self.every {
            return None;
        }
        self.since = Some((start, now));
        Some(Say::StillDown {
            for_: now.duration_since(start),
            retries: self.retries,
        })
    }

    /// The API answered a watch of `kind`.
    pub fn answered(&mut self, kind: Kind, now: Instant) -> Option<Say> {
        if !self.failing.remove(&kind) || !self.failing.is_empty() {
            return None;
        }
        let (start, _) = self.since.take()?;
        let retries = std::mem::take(&mut self.retries);
        Some(Say::Back {
            after: now.duration_since(start),
            retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_of_every_kind_is_said_once_then_every_period_then_back_once() {
        let mut o = Outage::new(Duration::from_secs(300));
        let t0 = Instant::now();
        let kinds = [Kind::Pod, Kind::Service, Kind::Node];
        let mut said = Vec::new();
        // Ten minutes of retries every 10 s by three watches.
        for step in 0..60u64 {
            let now = t0 + Duration::from_secs(step * 10);
            for k in kinds {
                said.extend(o.failed(k, now));
            }
        }
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[0], Say::Down);
        assert!(
            matches!(said[1], Say::StillDown { for_, retries: 91 } if for_ == Duration::from_secs(300))
        );
        let back = t0 + Duration::from_secs(601);
        assert_eq!(o.answered(Kind::Pod, back), None);
        assert_eq!(o.answered(Kind::Service, back), None);
        assert_eq!(
            o.answered(Kind::Node, back),
            Some(Say::Back {
                after: Duration::from_secs(601),
                retries: 180
            })
        );
        // Answers while nothing fails say nothing; a new outage is new.
        assert_eq!(o.answered(Kind::Pod, back), None);
        assert_eq!(o.failed(Kind::Pod, back), Some(Say::Down));
    }
}
