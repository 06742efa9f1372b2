use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::proc::run;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("ts{tag}{}x{n}", std::process::id() % 100_000);
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn sh(&self, script: &str) -> Output {
        run(self.cmd("sh").args(["-c", script]))
    }

    /// Waits until something listens on TCP `port` in this namespace.
    pub fn wait_listen(&self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let out = self
                .cmd("ss")
                .args(["-Hltn", &format!("sport = :{port}")])
                .output()
                .expect("ss");
            if !out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on port {port} in {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth: the sensor watches the client's end,
/// as it watches a pod's veth on a node.
pub struct Pair {
    pub client: Netns,
    pub server: Netns,
    pub client_if: String,
    pub server_if: String,
}

pub const CLIENT4: &str = "10.77.0.1";
pub const SERVER4: &str = "10.77.0.2";
pub const CLIENT6: &str = "fd77::1";
pub const SERVER6: &str = "fd77::2";

impl Pair {
    pub fn new(tag: &str) -> Self {
        let client = Netns::new(tag);
        let server = Netns::new(tag);
        let (ci, si) = ("vc0".to_string(), "vs0".to_string());
        run(Command::new("ip").args([
            "link",
            "add",
            &ci,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            &si,
            "netns",
            &server.name,
        ]));
        client.sh(&format!(
            "ip addr add {CLIENT4}/24 dev {ci} && ip -6 addr add {CLIENT6}/64 dev {ci} nodad && ip link set {ci} up"
        ));
        server.sh(&format!(
            "ip addr add {SERVER4}/24 dev {si} && ip -6 addr add {SERVER6}/64 dev {si} nodad && ip link set {si} up"
        ));
        Pair {
            client,
            server,
            client_if: ci,
            server_if: si,
        }
    }

    pub fn mtu(&self, mtu: u32) {
        self.client
            .sh(&format!("ip link set {} mtu {mtu}", self.client_if));
        self.server
            .sh(&format!("ip link set {} mtu {mtu}", self.server_if));
    }
}
