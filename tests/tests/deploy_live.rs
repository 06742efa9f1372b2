//! The DaemonSet's container as the kubelet starts it, without a cluster:
//! its arguments from deploy/base/daemonset.yaml, exactly its capabilities
//! (setpriv: bounding set, no inheritable, no_new_privs, as containerd sets
//! them for UID 0), in a network namespace made here. The health endpoint
//! answers the probes; each capability is shown necessary; the kernel
//! object loads without kernel BTF. Needs root.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sensor::capture::live::{LiveConfig, Programs, object};
use serde_json::Value;
use tests::netns::Netns;
use tests::proc::Watched;
use tests::{require_root, sensor_bin, workspace_root as root};

/// Flags that need a Kubernetes API server, which cannot be had here: the
/// container's command runs without them (tests/tests/kube.rs runs `sensor
/// run --kubeconfig` against a fake API server, readiness included).
const NEEDS_API: &[&str] = &["--kube", "--read-secrets"];

/// Where the DaemonSet mounts the policy ConfigMap.
const CONFIG_MOUNT: &str = "/etc/tls-sensor";

struct Container {
    args: Vec<String>,
    capabilities: Vec<String>,
    health_port: u16,
    liveness: String,
    readiness: String,
}

fn yaml(rel: &str) -> Value {
    let p = root().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn daemonset() -> Container {
    let ds = yaml("deploy/base/daemonset.yaml");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let port = |name: &str| -> u16 {
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .expect("the probes' named port") as u16
    };
    let probe_port = c["livenessProbe"]["httpGet"]["port"]
        .as_str()
        .expect("named");
    Container {
        args: strings(&c["args"]),
        capabilities: strings(&c["securityContext"]["capabilities"]["add"]),
        health_port: port(probe_port),
        liveness: c["livenessProbe"]["httpGet"]["path"]
            .as_str()
            .expect("path")
            .into(),
        readiness: c["readinessProbe"]["httpGet"]["path"]
            .as_str()
            .expect("path")
            .into(),
    }
}

fn flag(arg: &str) -> Option<&str> {
    arg.starts_with("--")
        .then(|| arg.split('=').next().unwrap_or(arg))
}

/// `setpriv` keeping only `caps` (Kubernetes names: BPF, NET_ADMIN...),
/// run inside `ns`.
fn with_capabilities(ns: &Netns, caps: &[String]) -> Command {
    let keep: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.to_ascii_lowercase()))
        .collect();
    let mut cmd = ns.cmd("setpriv");
    cmd.arg(format!("--bounding-set=-all,{}", keep.join(",")))
        .args(["--inh-caps=-all", "--no-new-privs", "--"]);
    cmd
}

/// HTTP status of `path` on the sensor's health port, asked from inside `ns`.
fn probe(ns: &Netns, port: u16, path: &str) -> u16 {
    let out = ns
        .cmd("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn eventually(ns: &Netns, port: u16, path: &str, want: u16) {
    let start = Instant::now();
    let mut got = 0;
    while start.elapsed() < Duration::from_secs(20) {
        got = probe(ns, port, path);
        if got == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{path} stayed {got}, expected {want}");
}

#[test]
fn daemonset_arguments_are_flags_of_this_sensor() {
    let help = Command::new(sensor_bin())
        .args(["run", "--help"])
        .output()
        .expect("sensor run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let overlay = yaml("deploy/overlays/read-secrets/daemonset-args.yaml");
    let mut args = daemonset().args;
    args.extend(
        overlay
            .as_array()
            .expect("JSON patch")
            .iter()
            .filter_map(|op| op["value"].as_str().map(String::from)),
    );
    assert_eq!(args[0], "run");
    for a in &args[1..] {
        let f = flag(a).unwrap_or_else(|| panic!("`{a}`: use --flag=value in the manifests"));
        let known = help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n"));
        assert!(
            known,
            "the DaemonSet passes {f}, which `sensor run` does not know"
        );
    }
}

#[test]
fn probes_follow_attachment_with_exactly_the_daemonsets_capabilities() {
    require_root();
    let c = daemonset();
    let ns = Netns::new("dh");
    // The ConfigMap's files where the DaemonSet mounts them.
    let config = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root().join("deploy/base/policy.yaml"),
        config.path().join("policy.yaml"),
    )
    .expect("policy.yaml");
    let mount = config.path().to_str().expect("utf-8");
    // The container's own arguments; its port is free in a namespace of our own.
    let mut args: Vec<String> = c
        .args
        .iter()
        .filter(|a| !flag(a).is_some_and(|f| NEEDS_API.contains(&f)))
        .map(|a| a.replace(CONFIG_MOUNT, mount))
        .collect();
    assert!(
        args.iter().any(|a| a.contains(mount)),
        "the DaemonSet no longer reads its policy from {CONFIG_MOUNT}"
    );
    // Watch one interface that does not exist yet, so readiness must wait.
    args.extend(["--interface=tsv0".into(), "--stats-interval=3600".into()]);
    let mut cmd = with_capabilities(&ns, &c.capabilities);
    cmd.arg(sensor_bin())
        .args(&args)
        .env("RUST_LOG", "info")
        .env("K8S_NODE_NAME", "test-node");
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut sensor = Watched::spawn(&mut cmd, out.reopen().expect("reopen"));
    sensor.wait_for("waiting for one to appear", Duration::from_secs(60));
    assert_eq!(probe(&ns, c.health_port, &c.liveness), 200);
    assert_eq!(probe(&ns, c.health_port, &c.readiness), 503);
    ns.sh(
        "ip link add tsv0 type veth peer name tsv1 && ip link set tsv1 up && ip link set tsv0 up",
    );
    sensor.wait_for("attached", Duration::from_secs(30));
    eventually(&ns, c.health_port, &c.readiness, 200);
    assert_eq!(probe(&ns, c.health_port, &c.liveness), 200);
    assert_eq!(probe(&ns, c.health_port, "/nothing"), 404);
    ns.sh("ip link del tsv0");
    sensor.wait_for("interface gone", Duration::from_secs(30));
    eventually(&ns, c.health_port, &c.readiness, 503);
    sensor.stop();
}

/// Run by the test below in a child process with fewer capabilities: loads
/// the programs and attaches them to `PROBE_INTERFACE`.
#[test]
#[ignore = "a child process of capabilities_are_each_necessary"]
fn load_and_attach_probe() {
    let Ok(iface) = std::env::var("PROBE_INTERFACE") else {
        return;
    };
    let (_programs, mut attacher, _ring) = Programs::load(&LiveConfig::default()).expect("load");
    attacher.attach(&iface, true).expect("attach");
    attacher.detach_all();
}

fn probe_with(ns: &Netns, caps: &[String]) -> (bool, String) {
    let exe: PathBuf = std::env::current_exe().expect("test binary");
    let out = with_capabilities(ns, caps)
        .arg(exe)
        .args([
            "--exact",
            "load_and_attach_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROBE_INTERFACE", "tsp0")
        .output()
        .expect("probe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn capabilities_are_each_necessary_and_together_sufficient() {
    require_root();
    let caps = daemonset().capabilities;
    assert_eq!(caps, ["BPF", "NET_ADMIN", "PERFMON"]);
    let ns = Netns::new("dc");
    ns.sh(
        "ip link add tsp0 type veth peer name tsp1 && ip link set tsp0 up && ip link set tsp1 up",
    );
    let (ok, text) = probe_with(&ns, &caps);
    assert!(
        ok,
        "with {caps:?}: {}",
        text.chars().take(3000).collect::<String>()
    );
    // What the kernel says without each one, as measured on 6.18.
    let refusals = [
        // No map without CAP_BPF.
        ("BPF", "failed to create map"),
        // Networking program types need CAP_NET_ADMIN to load (EPERM).
        ("NET_ADMIN", "Operation not permitted"),
        // Without CAP_PERFMON the verifier treats the loader as unprivileged
        // and rejects the program's pointer arithmetic (EACCES).
        ("PERFMON", "prohibited for !root"),
    ];
    for (missing, refusal) in refusals {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let (ok, text) = probe_with(&ns, &fewer);
        let short: String = text.chars().take(3000).collect();
        assert!(!ok, "loads and attaches without CAP_{missing}: {short}");
        assert!(
            text.contains(refusal),
            "without CAP_{missing}, expected {refusal:?} in: {short}"
        );
    }
}

#[test]
fn kernel_object_needs_no_kernel_btf() {
    require_root();
    // As on a kernel without /sys/kernel/btf/vmlinux: no BTF to relocate
    // against. Loading runs the verifier over every program.
    let mut ebpf = aya::EbpfLoader::new()
        .btf(None)
        .load(object())
        .expect("the object loads without kernel BTF");
    let mut loaded = 0;
    for (name, prog) in ebpf.programs_mut() {
        let prog: &mut aya::programs::SchedClassifier =
            prog.try_into().unwrap_or_else(|e| panic!("{name}: {e}"));
        prog.load()
            .unwrap_or_else(|e| panic!("{name} without BTF: {e:?}"));
        loaded += 1;
    }
    assert_eq!(loaded, 4);
}
