//! What can go wrong starting live capture.

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("missing capabilities: {0} (run as root, or grant them to the binary)")]
    Capabilities(String),
    #[error("loading the eBPF programs: {0}")]
    Load(String),
    #[error("attaching to {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid interface pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}
