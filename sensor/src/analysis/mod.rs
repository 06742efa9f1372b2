//! Judgements on what the pipeline saw: correlation verdicts against the
//! Kubernetes inventory, and service-mesh classification.

pub mod correlation;
pub mod mesh;
