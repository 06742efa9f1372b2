//! The demo's network, shaped like a Kubernetes node: a "node" namespace
//! holds a bridge and the host ends of the pods' veths; each "pod" is a
//! namespace with `eth0` on the bridge's subnet. Traffic between pods
//! crosses two veths in the node namespace, where the sensor watches.

use anyhow::Result;
use tests::netns::ip;

use super::lab::Lab;

pub const BRIDGE: &str = "br-demo";
const SUBNET: &str = "10.88.0";
/// The node's own address, on the bridge.
pub const NODE_IP: &str = "10.88.0.1";

pub struct Node {
    pub ns: String,
}

pub struct Pod {
    pub ns: String,
    pub ip: String,
    /// The host end of its veth, in the node namespace.
    pub veth: String,
}

impl Node {
    pub fn new(lab: &Lab) -> Result<Self> {
        let ns = lab.netns("node")?;
        ip(&ns, &["link", "add", BRIDGE, "type", "bridge"])?;
        ip(
            &ns,
            &["addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE],
        )?;
        ip(&ns, &["link", "set", BRIDGE, "up"])?;
        Ok(Node { ns })
    }

    /// A pod namespace joined to the bridge. The veth is made inside the
    /// node namespace with its peer put straight into the pod, so nothing
    /// appears in the namespace the demo was started from.
    pub fn pod(&self, lab: &Lab, short: &str, host: u8) -> Result<Pod> {
        let ns = lab.netns(short)?;
        let veth = format!("veth-{short}");
        ip(
            &self.ns,
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        ip(&self.ns, &["link", "set", &veth, "master", BRIDGE, "up"])?;
        let addr = format!("{SUBNET}.{host}");
        ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ip(&ns, &["link", "set", "eth0", "up"])?;
        Ok(Pod { ns, ip: addr, veth })
    }
}
