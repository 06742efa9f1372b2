//! A pod's owner workload from its ownerReferences and names alone: the
//! sensor does not watch ReplicaSets or Jobs, so the Deployment behind
//! `web-7d9c8b6f5` and the CronJob behind `backup-28374650` are recovered
//! from the naming rules their controllers follow.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::Owner;

/// Characters of the Deployment controller's pod-template-hash
/// (rand.SafeEncodeString: no vowels, no look-alikes).
const SAFE_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

fn looks_like_template_hash(s: &str) -> bool {
    (1..=10).contains(&s.len()) && s.chars().all(|c| SAFE_ALPHABET.contains(c))
}

/// CronJob controllers name Jobs `<cronjob>-<scheduled time in minutes
/// since the epoch>`: 8 or more digits for any date after 1989.
fn looks_like_schedule(s: &str) -> bool {
    (8..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn owner_workload(meta: &ObjectMeta) -> Option<Owner> {
    let refs = meta.owner_references.as_ref()?;
    let owner = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())?;
    let name = owner.name.as_str();
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k));
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => match name.rsplit_once('-') {
            // The pod-template-hash label, when present, settles it.
            Some((deployment, hash))
                if label("pod-template-hash")
                    .map_or_else(|| looks_like_template_hash(hash), |h| h == hash)
                    && !deployment.is_empty() =>
            {
                ("Deployment", deployment)
            }
            _ => ("ReplicaSet", name),
        },
        "Job" => match name.rsplit_once('-') {
            Some((cronjob, t)) if looks_like_schedule(t) && !cronjob.is_empty() => {
                ("CronJob", cronjob)
            }
            _ => ("Job", name),
        },
        other => (other, name),
    };
    Some(Owner {
        kind: kind.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(kind: &str, name: &str, labels: &[(&str, &str)], controller: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                kind: kind.into(),
                name: name.into(),
                controller: controller.then_some(true),
                ..Default::default()
            }]),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn w(kind: &str, name: &str) -> Option<Owner> {
        Some(Owner {
            kind: kind.into(),
            name: name.into(),
        })
    }

    #[test]
    fn names_to_workloads() {
        let cases = [
            (
                meta("ReplicaSet", "web-7d9c8b6f5", &[], true),
                w("Deployment", "web"),
            ),
            (
                meta(
                    "ReplicaSet",
                    "my-api-server-5f7b9c4d8",
                    &[("pod-template-hash", "5f7b9c4d8")],
                    true,
                ),
                w("Deployment", "my-api-server"),
            ),
            // The label disagrees: a bare ReplicaSet whose name merely ends in a word.
            (
                meta(
                    "ReplicaSet",
                    "cache-bkp",
                    &[("pod-template-hash", "zz")],
                    true,
                ),
                w("ReplicaSet", "cache-bkp"),
            ),
            // Vowels never appear in a template hash.
            (
                meta("ReplicaSet", "frontend-canary", &[], true),
                w("ReplicaSet", "frontend-canary"),
            ),
            (
                meta("Job", "backup-28374650", &[], true),
                w("CronJob", "backup"),
            ),
            (
                meta("Job", "migrate-db-2", &[], true),
                w("Job", "migrate-db-2"),
            ),
            (meta("StatefulSet", "db", &[], true), w("StatefulSet", "db")),
            (
                meta("DaemonSet", "agent", &[], false),
                w("DaemonSet", "agent"),
            ),
            (meta("ReplicaSet", "x", &[], true), w("ReplicaSet", "x")),
        ];
        for (m, want) in cases {
            assert_eq!(owner_workload(&m), want, "{:?}", m.owner_references);
        }
        assert_eq!(owner_workload(&ObjectMeta::default()), None);
    }

    #[test]
    fn controller_reference_wins() {
        let mut m = meta("ConfigMap", "cm", &[], false);
        m.owner_references.as_mut().unwrap().push(OwnerReference {
            kind: "StatefulSet".into(),
            name: "db".into(),
            controller: Some(true),
            ..Default::default()
        });
        assert_eq!(owner_workload(&m), w("StatefulSet", "db"));
    }
}
