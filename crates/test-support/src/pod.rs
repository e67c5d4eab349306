//! Runs the pod of a StatefulSet rendered by `helm template` on this machine, as the kubelet
//! would, with the host's daemons. Needs root (namespaces, mounts).
//!
//! What [`PodRunner`] does with the manifests:
//!
//! * **Network:** one network namespace per pod run (`ip netns add`, `lo` up, the pod's
//!   `sysctls` applied in it), with a veth `eth0` to a second "client" namespace
//!   ([`PodNetwork`]: addresses, default route, the pod end's name), so DHCP clients and
//!   resolvers can reach the pod without touching the host's interfaces. A `hostNetwork` pod
//!   gets the same namespace, playing the node (name its interface like the node's LAN
//!   interface); sysctls are refused for it, as the kubelet does. Stopping the pod removes both
//!   namespaces; [`crate::lan::Lan`] adds a LAN behind the client namespace.
//! * **Volumes:** `volumeClaimTemplates` are directories under the runner's state directory
//!   that persist across [`PodRunner::stop`]/[`PodRunner::start`] (and across runners given the
//!   same state directory), like PVCs; `emptyDir`s are recreated for every run; ConfigMaps and
//!   Secrets are written as files in the kubelet's atomic-writer layout (`..data` symlink,
//!   `items`, `defaultMode`/`mode`). `fsGroup` is applied like the kubelet does (group
//!   ownership, group rw, setgid directories; `OnRootMismatch` for PVCs), and added to every
//!   container's supplementary groups.
//! * **Containers:** init containers in order (each must exit 0), then the containers in order;
//!   a container's `postStart` hook runs right after it starts and the next container starts
//!   when the hook returned (as the kubelet does). A failing hook kills the container and fails
//!   [`PodRunner::start`] (`FailedPostStartHook`). Then `startupProbe`/`readinessProbe`
//!   (`exec`, `tcpSocket`) are polled until every container is ready.
//! * **A container** is its process in the pod's network namespace, in its own mount and UTS
//!   namespaces (hostname = the pod name): its root is a private tmpfs that mirrors the host's
//!   root (host directories bind-mounted **read-only**, so nothing a container does reaches
//!   the host's files), with directories created where a `mountPath` does not exist on the
//!   host, and the pod's volumes bind-mounted at their `mountPath`s (`subPath`, `readOnly`).
//!   The process runs under `setpriv` with the container's `runAsUser`/`runAsGroup`, the
//!   pod's `fsGroup`/`supplementalGroups`, the capability bounding set of `capabilities`
//!   (`drop: [ALL]` + `add`) and `no_new_privs` for `allowPrivilegeEscalation: false`; its
//!   environment is exactly the manifest's `env` plus `PATH` and `HOSTNAME`; stdout and stderr
//!   go to a log file owned by the container's user (as runc hands the container its stdio).
//! * **Images:** the command's program is mapped to a host binary ([`HostBinaries`]): `knotd`,
//!   `kea-dhcp4`, `kea-dhcp-ddns` to Debian 12's, or Debian 13's from the trixie root (run
//!   through that root's dynamic loader, its Kea hooks bound at the images' hook directory:
//!   [`HostBinaries::for_daemons`]), the project image's `/usr/local/bin/dnsdhcp` to the binary
//!   under test (bind-mounted at that path in that container). Anything else is looked up in
//!   the host's `PATH` inside the container (e.g. `id` in a test's exec).
//! * **Stopping** sends SIGTERM to every container's process group, SIGKILL after a grace
//!   period, and removes the namespaces; the mount namespaces vanish with their processes.
//!   [`Drop`] does the same and removes the state directory the runner created.
//!
//! Differences from a real kubelet (known, accepted for tests): no image root filesystems (the
//! host's files are visible read-only; the daemons are Debian's builds of the images' versions);
//! the PID namespace is the host's (`shareProcessNamespace` is not emulated: PIDs in PID
//! files are host PIDs, which is what pod-sharing gives too); no restart of exited containers
//! (an exited container is an error); no resource limits, seccomp or liveness probes; no
//! Service IPs (use the pod address).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::daemons::Daemons;

/// `setpriv` (Debian's `util-linux`): sets the container's credentials and capabilities.
pub const SETPRIV: &str = "/usr/bin/setpriv";
/// `ip` (Debian's `iproute2`).
pub const IP: &str = "/usr/sbin/ip";
/// Kea's hook directory in ISC's images (the chart's `dhcp.hooksDir` default).
pub const KEA_IMAGE_HOOKS: &str = "/usr/lib/kea/hooks";
/// Where the trixie root is bound in every container: a fixed path outside `/tmp`, because the
/// chart mounts an emptyDir on `/tmp` and would hide a root kept in a checkout under `/tmp`.
pub const TRIXIE_ROOT_IN_POD: &str = "/opt/dnsdhcp-test-trixie-root";

/// `PATH` of every container (the images' PATHs, in the host's layout).
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long an init container may run.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest grace period used on stop (the manifest's `terminationGracePeriodSeconds` is
/// honoured up to this).
const MAX_GRACE: Duration = Duration::from_secs(10);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why the pod could not start (or a step on it failed): the message includes the logs that
/// explain it.
pub struct PodError(pub String);

impl fmt::Display for PodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `unwrap()` shows Debug: show the message with its line breaks.
        f.write_str(&self.0)
    }
}

impl std::error::Error for PodError {}

/// Panics with a plain message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test runs a pod and needs root for network and mount namespaces \
             (run it as root, e.g. scripts/test.sh)"
        );
    }
}

fn require_file(path: &Path, package: &str) {
    if !path.exists() {
        panic!(
            "{} not found: install the Debian package {package}",
            path.display()
        );
    }
}

/// Which host binary runs each image command.
#[derive(Debug, Clone)]
pub struct HostBinaries {
    /// `(program in the manifest, host binary, Debian package or how to build it)`.
    pub map: Vec<(String, PathBuf, String)>,
    /// Arguments put before a mapped host binary (e.g. the dynamic loader of another root).
    pub launcher: Vec<String>,
    /// `(path in every container, host path)`: read-only binds standing in for files of the
    /// images (e.g. Kea's hook directory at the image's path). A mapped host binary under one
    /// of these host paths runs from its path in the container.
    pub image_files: Vec<(PathBuf, PathBuf)>,
}

impl HostBinaries {
    /// Debian's `knotd`, `kea-dhcp4`, `kea-dhcp-ddns` and `unbound`, and `dnsdhcp` (the binary under test,
    /// e.g. `env!("CARGO_BIN_EXE_dnsdhcp")`) for the project image's `/usr/local/bin/dnsdhcp`.
    pub fn debian(dnsdhcp: impl Into<PathBuf>) -> Self {
        let e = |a: &str, b: &str, c: &str| (a.to_owned(), PathBuf::from(b), c.to_owned());
        let dnsdhcp = dnsdhcp.into();
        let mut map = vec![
            e("knotd", "/usr/sbin/knotd", "knot"),
            e("kea-dhcp4", "/usr/sbin/kea-dhcp4", "kea-dhcp4-server"),
            e(
                "kea-dhcp-ddns",
                "/usr/sbin/kea-dhcp-ddns",
                "kea-dhcp-ddns-server",
            ),
            e("unbound", "/usr/sbin/unbound", "unbound"),
        ];
        map.push((
            "/usr/local/bin/dnsdhcp".into(),
            dnsdhcp,
            "(the dnsdhcp crate's binary: cargo build -p dnsdhcp)".into(),
        ));
        Self {
            map,
            launcher: Vec::new(),
            image_files: Vec::new(),
        }
    }

    /// The daemons of `daemons`: Debian 12's as [`HostBinaries::debian`], or Debian 13's (Knot
    /// 3.4, Kea 2.6, the images' versions) from the trixie root, run through that root's
    /// dynamic loader and libraries with the host's files around them; the root's Kea hook
    /// directory stands at the Kea images' path (`/usr/lib/kea/hooks`, the chart's default).
    pub fn for_daemons(daemons: Daemons, dnsdhcp: impl Into<PathBuf>) -> Self {
        let mut b = Self::debian(dnsdhcp);
        if daemons == Daemons::Host {
            return b;
        }
        let root = crate::daemons::trixie_root();
        for (program, host, package) in &mut b.map {
            if !program.starts_with('/') {
                *host = root.join(host.strip_prefix("/").unwrap_or(host));
                *package = "(the trixie root: scripts/trixie-root.sh)".into();
            }
        }
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        let lib_in_pod = Path::new(TRIXIE_ROOT_IN_POD).join("usr/lib/x86_64-linux-gnu");
        b.launcher = vec![
            lib_in_pod
                .join("ld-linux-x86-64.so.2")
                .display()
                .to_string(),
            "--library-path".into(),
            lib_in_pod.display().to_string(),
        ];
        b.image_files = vec![
            (PathBuf::from(TRIXIE_ROOT_IN_POD), root),
            (PathBuf::from(KEA_IMAGE_HOOKS), lib.join("kea/hooks")),
        ];
        b
    }

    fn lookup(&self, program: &str) -> Option<&(String, PathBuf, String)> {
        self.map.iter().find(|(p, _, _)| p == program)
    }

    /// The path in a container of host file `host`: under an [`image_files`](Self::image_files)
    /// bind if one holds it, else the same path (the container root mirrors the host's).
    fn in_pod(&self, host: &Path) -> PathBuf {
        for (in_pod, from) in &self.image_files {
            if let Ok(rest) = host.strip_prefix(from) {
                return in_pod.join(rest);
            }
        }
        host.to_owned()
    }
}

/// Addresses of the pod's interface and of the client namespace's end of the veth.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The pod's address with prefix, e.g. `192.168.1.53/24`.
    pub pod_addr: String,
    /// The client namespace's address with prefix, e.g. `192.168.1.250/24`.
    pub client_addr: String,
    /// The pod's default route (e.g. the client namespace's address when it plays the node
    /// routing to a LAN); `None`: no default route.
    pub gateway: Option<String>,
    /// The name of the pod's end of the veth: `eth0` as on a pod network, or a node's LAN
    /// interface name for a `hostNetwork` pod (the runner's pod namespace then plays the node).
    pub pod_if: String,
}

impl Default for PodNetwork {
    /// In the chart's default DHCP subnet (192.168.1.0/24), outside its pool.
    fn default() -> Self {
        Self {
            pod_addr: "192.168.1.53/24".into(),
            client_addr: "192.168.1.250/24".into(),
            gateway: None,
            pod_if: "eth0".into(),
        }
    }
}

impl PodNetwork {
    /// The pod's address without prefix.
    pub fn pod_ip(&self) -> Ipv4Addr {
        addr_part(&self.pod_addr)
    }

    /// The client's address without prefix.
    pub fn client_ip(&self) -> Ipv4Addr {
        addr_part(&self.client_addr)
    }
}

fn addr_part(cidr: &str) -> Ipv4Addr {
    cidr.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("bad address {cidr}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Parses `helm template` output (several YAML documents) the way the API server reads it
/// (YAML 1.1 octal numbers such as `defaultMode: 0440`). Empty documents are skipped.
pub fn parse_manifests(yaml: &str) -> Vec<Value> {
    let opts = serde_saphyr::options! { legacy_octal_numbers: true };
    serde_saphyr::from_multiple_with_options::<Value>(yaml, opts)
        .unwrap_or_else(|e| panic!("cannot parse the rendered manifests: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn uint(v: &Value) -> Option<u32> {
    v.as_u64().map(|n| n as u32)
}

/// The StatefulSet and the ConfigMaps and Secrets of one rendering.
#[derive(Debug, Clone)]
struct Manifests {
    sts: Value,
    config_maps: BTreeMap<String, Value>,
    secrets: BTreeMap<String, Value>,
}

impl Manifests {
    fn parse(yaml: &str) -> Self {
        let mut sts = Vec::new();
        let mut config_maps = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for doc in parse_manifests(yaml) {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match doc["kind"].as_str() {
                Some("StatefulSet") => sts.push(doc),
                Some("ConfigMap") => {
                    config_maps.insert(name, doc);
                }
                Some("Secret") => {
                    secrets.insert(name, doc);
                }
                _ => {}
            }
        }
        assert_eq!(
            sts.len(),
            1,
            "the manifests must hold exactly one StatefulSet, found {}",
            sts.len()
        );
        Self {
            sts: sts.remove(0),
            config_maps,
            secrets,
        }
    }

    fn pod_spec(&self) -> &Value {
        &self.sts["spec"]["template"]["spec"]
    }

    fn pod_name(&self) -> String {
        format!(
            "{}-0",
            self.sts["metadata"]["name"].as_str().unwrap_or("pod")
        )
    }

    fn claim_templates(&self) -> Vec<String> {
        self.sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Mount {
    volume: String,
    path: String,
    sub_path: Option<String>,
    read_only: bool,
}

#[derive(Debug, Clone)]
enum Probe {
    Exec(Vec<String>),
    Tcp(u16),
}

#[derive(Debug, Clone)]
struct Creds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    /// The capability bounding set when `drop: [ALL]` (else the default set minus drops).
    caps_drop_all: bool,
    caps_drop: Vec<String>,
    caps_add: Vec<String>,
    no_new_privs: bool,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    name: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    working_dir: String,
    creds: Creds,
    post_start: Option<Vec<String>>,
    probes: Vec<Probe>,
}

fn parse_container(c: &Value, pod: &Value) -> ContainerSpec {
    let name = c["name"].as_str().unwrap_or_default().to_owned();
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    assert!(
        !argv.is_empty(),
        "container {name} has no command: the runner has no image ENTRYPOINT to fall back on"
    );
    let post_start = c["lifecycle"]["postStart"]
        .get("exec")
        .map(|e| strings(&e["command"]));
    assert!(
        c["lifecycle"]["postStart"].is_null() || post_start.is_some(),
        "container {name}: only exec postStart hooks are supported"
    );
    ContainerSpec {
        env: parse_env(c, &name),
        mounts: parse_mounts(c),
        working_dir: c["workingDir"].as_str().unwrap_or("/").to_owned(),
        creds: parse_creds(c, pod),
        probes: parse_probes(c, &name),
        name,
        argv,
        post_start,
    }
}

/// The container's `env` (literal values only).
fn parse_env(c: &Value, name: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let k = e["name"].as_str().unwrap_or_default().to_owned();
        match &e["value"] {
            Value::String(v) => env.push((k, v.clone())),
            Value::Null if e.get("valueFrom").is_some() => {
                panic!(
                    "container {name}: env {k} uses valueFrom, which the pod runner does not support"
                )
            }
            Value::Null => env.push((k, String::new())),
            other => env.push((k, other.to_string())),
        }
    }
    env
}

fn parse_mounts(c: &Value) -> Vec<Mount> {
    c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| Mount {
            volume: m["name"].as_str().unwrap_or_default().to_owned(),
            path: m["mountPath"].as_str().unwrap_or_default().to_owned(),
            sub_path: m["subPath"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            read_only: m["readOnly"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// The user, groups and capabilities from the container's and the pod's security contexts.
fn parse_creds(c: &Value, pod: &Value) -> Creds {
    let psc = &pod["securityContext"];
    let sc = &c["securityContext"];
    let uid = uint(&sc["runAsUser"])
        .or_else(|| uint(&psc["runAsUser"]))
        .unwrap_or(0);
    let gid = uint(&sc["runAsGroup"])
        .or_else(|| uint(&psc["runAsGroup"]))
        .unwrap_or(0);
    let mut groups: Vec<u32> = Vec::new();
    groups.extend(uint(&psc["fsGroup"]));
    for g in psc["supplementalGroups"].as_array().into_iter().flatten() {
        groups.extend(uint(g));
    }
    groups.sort();
    groups.dedup();
    let lower = |v: &Value| -> Vec<String> {
        strings(v)
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let caps_drop = lower(&sc["capabilities"]["drop"]);
    Creds {
        uid,
        gid,
        groups,
        caps_drop_all: caps_drop.iter().any(|c| c == "all"),
        caps_drop,
        caps_add: lower(&sc["capabilities"]["add"]),
        no_new_privs: sc["allowPrivilegeEscalation"].as_bool() == Some(false),
    }
}

/// The startup and readiness probes (exec or tcpSocket, a port by number or name).
fn parse_probes(c: &Value, name: &str) -> Vec<Probe> {
    let ports: Vec<(String, u16)> = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["containerPort"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect();
    let mut probes = Vec::new();
    for key in ["startupProbe", "readinessProbe"] {
        let p = &c[key];
        if p.is_null() {
            continue;
        }
        if let Some(e) = p.get("exec") {
            probes.push(Probe::Exec(strings(&e["command"])));
        } else if let Some(t) = p.get("tcpSocket") {
            let port = match &t["port"] {
                Value::Number(n) => n.as_u64().unwrap_or(0) as u16,
                Value::String(port) => ports
                    .iter()
                    .find(|(n, _)| n == port)
                    .map(|(_, p)| *p)
                    .unwrap_or_else(|| panic!("container {name}: no port named {port}")),
                _ => panic!("container {name}: bad tcpSocket port"),
            };
            probes.push(Probe::Tcp(port));
        } else {
            panic!("container {name}: {key} must be exec or tcpSocket for the pod runner");
        }
    }
    probes
}

// ---------------------------------------------------------------------------------------------
// Mount-namespace plan, executed in the forked child before exec (no allocation there).

enum Op {
    Tmpfs(CString),
    /// mkdir, EEXIST ignored.
    Dir(CString, u32),
    /// open(O_CREAT) a mount point for a file.
    File(CString),
    Symlink(CString, CString),
    Bind {
        src: CString,
        dst: CString,
        recursive: bool,
    },
    /// Read-only remount of one bind mount.
    RemountRo(CString),
    /// Every mount under the path read-only (mount_setattr, AT_RECURSIVE).
    TreeRo(CString),
}

struct Step {
    op: Op,
    what: CString,
}

fn cstr(p: impl AsRef<Path>) -> CString {
    CString::new(p.as_ref().as_os_str().as_bytes()).expect("path without NUL")
}

fn in_root(root: &Path, p: &Path) -> PathBuf {
    let rel: PathBuf = p
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect();
    root.join(rel)
}

/// Resolves host symlinks in the existing prefix of a container path, so that mount points
/// are planned where the path really leads (e.g. `/var/run/x` -> `/run/x`).
fn resolve_host_prefix(p: &Path) -> PathBuf {
    let mut existing = PathBuf::from("/");
    let comps: Vec<_> = p.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        let next = existing.join(c);
        match next.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(&next).unwrap_or(next);
                let mut out = real;
                for rest in &comps[i + 1..] {
                    out.push(rest);
                }
                return resolve_host_prefix(&out);
            }
            Ok(_) => existing = next,
            Err(_) => {
                let mut out = existing;
                for rest in &comps[i..] {
                    out.push(rest);
                }
                return out;
            }
        }
    }
    existing
}

/// A bind mount of a container: its path in the container, the host source, read-only.
type Bind = (PathBuf, PathBuf, bool);

/// Plans a container root at `root`: a tmpfs mirroring the host's root, read-only, with the
/// host directories on the way to a missing mount point mirrored entry by entry (so the mount
/// point can be created in the tmpfs, never on the host), then the `binds` (container path,
/// host source, read-only) in order.
fn plan_root(root: &Path, binds: &[Bind]) -> Vec<Step> {
    let (mirror, targets) = dirs_to_mirror(binds);
    let mut steps = Steps(Vec::new());
    steps.push(
        Op::Tmpfs(cstr(root)),
        format!("mount tmpfs on {}", root.display()),
    );
    for dir in &mirror {
        steps.mirror_dir(root, dir, &mirror);
    }
    // Mount points missing on the host: created in the mirrored (tmpfs) parents.
    for (t, (_, src, _)) in targets.iter().zip(binds) {
        let mut p = PathBuf::from("/");
        let comps: Vec<_> = t.components().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            if p.symlink_metadata().is_ok() {
                continue;
            }
            let dst = in_root(root, &p);
            steps.mount_point(&dst, i + 1 == comps.len() && !src.is_dir());
        }
    }
    steps.push(
        Op::TreeRo(cstr(root)),
        format!("make {} read-only", root.display()),
    );
    for (t, (target, src, ro)) in targets.iter().zip(binds) {
        steps.bind_volume(root, t, target, src, *ro);
    }
    steps.0
}

/// The host directories to mirror entry by entry (container paths = host paths): `/`, and
/// every existing directory on the way to a bind target missing on the host, with its
/// ancestors. Also each bind's target with host symlinks resolved.
fn dirs_to_mirror(binds: &[Bind]) -> (BTreeSet<PathBuf>, Vec<PathBuf>) {
    let mut mirror: BTreeSet<PathBuf> = BTreeSet::new();
    mirror.insert(PathBuf::from("/"));
    let mut targets = Vec::new();
    for (target, _, _) in binds {
        let t = resolve_host_prefix(target);
        let mut p = PathBuf::from("/");
        for c in t.components().skip(1) {
            let next = p.join(c);
            if next.symlink_metadata().is_err() {
                // `p` exists on the host, `next` does not: mirror `p` and its ancestors.
                let mut a = Some(p.as_path());
                while let Some(x) = a {
                    mirror.insert(x.to_owned());
                    a = x.parent();
                }
                break;
            }
            p = next;
        }
        targets.push(t);
    }
    (mirror, targets)
}

/// The steps of a plan, each with what it does (for the error message).
struct Steps(Vec<Step>);

impl Steps {
    fn push(&mut self, op: Op, what: String) {
        self.0.push(Step {
            op,
            what: CString::new(what).unwrap_or_default(),
        });
    }

    /// A mount point at `dst`: an empty file for a file bind, else a directory.
    fn mount_point(&mut self, dst: &Path, file: bool) {
        if file {
            self.push(Op::File(cstr(dst)), format!("create {}", dst.display()));
        } else {
            self.push(
                Op::Dir(cstr(dst), 0o755),
                format!("mkdir {}", dst.display()),
            );
        }
    }

    /// The entries of the host directory `dir` in the root: directories to mirror as
    /// directories, symlinks copied, other directories and files bound from the host.
    fn mirror_dir(&mut self, root: &Path, dir: &Path, mirror: &BTreeSet<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let host = dir.join(&name);
            let dst = in_root(root, &host);
            let Ok(meta) = host.symlink_metadata() else {
                continue;
            };
            if mirror.contains(&host) {
                let mode = meta.permissions().mode() & 0o7777;
                self.push(
                    Op::Dir(cstr(&dst), mode),
                    format!("mkdir {}", dst.display()),
                );
            } else if meta.file_type().is_symlink() {
                if let Ok(to) = fs::read_link(&host) {
                    self.push(
                        Op::Symlink(cstr(&to), cstr(&dst)),
                        format!("symlink {}", dst.display()),
                    );
                }
            } else {
                let recursive = meta.is_dir();
                self.mount_point(&dst, !recursive);
                self.push(
                    Op::Bind {
                        src: cstr(&host),
                        dst: cstr(&dst),
                        recursive,
                    },
                    format!(
                        "{} {} on {}",
                        if recursive { "rbind" } else { "bind" },
                        host.display(),
                        dst.display()
                    ),
                );
            }
        }
    }

    /// The volume `src` bound on `target` (`t` with host symlinks resolved), read-only if
    /// `ro`. A mount point inside an earlier volume is created in that volume, as runc does.
    fn bind_volume(&mut self, root: &Path, t: &Path, target: &Path, src: &Path, ro: bool) {
        let dst = in_root(root, t);
        let mut p = root.to_path_buf();
        let comps: Vec<_> = t.components().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            self.mount_point(&p, i + 1 == comps.len() && !src.is_dir());
        }
        self.push(
            Op::Bind {
                src: cstr(src),
                dst: cstr(&dst),
                recursive: false,
            },
            format!("bind {} on {}", src.display(), target.display()),
        );
        if ro {
            self.push(
                Op::RemountRo(cstr(&dst)),
                format!("remount {} read-only", target.display()),
            );
        }
    }
}

/// The container's log file in `logs` (appended to), owned by the container's user as runc
/// gives a container its stdio (it may reopen /proc/PID/fd/1); a handle for stdout and one for
/// stderr.
fn open_log(logs: &Path, spec: &ContainerSpec) -> Result<(PathBuf, File, File), PodError> {
    let log = logs.join(format!("{}.log", spec.name));
    let out = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| PodError(format!("{}: {e}", log.display())))?;
    std::os::unix::fs::fchown(&out, Some(spec.creds.uid), Some(spec.creds.gid)).ok();
    let err = out.try_clone().expect("dup log file");
    Ok((log, out, err))
}

/// Runs in the forked child: no allocation. On error, writes what failed to stderr.
fn run_steps(steps: &[Step]) -> io::Result<()> {
    for step in steps {
        // SAFETY: plain syscalls on NUL-terminated strings prepared before fork.
        let rc = unsafe {
            match &step.op {
                Op::Tmpfs(t) => libc::mount(
                    c"tmpfs".as_ptr(),
                    t.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0755".as_ptr().cast(),
                ),
                Op::Dir(p, mode) => {
                    let rc = libc::mkdir(p.as_ptr(), *mode as libc::mode_t);
                    if rc != 0 && *libc::__errno_location() == libc::EEXIST {
                        0
                    } else {
                        rc
                    }
                }
                Op::File(p) => {
                    let fd = libc::open(
                        p.as_ptr(),
                        libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                        0
                    } else {
                        -1
                    }
                }
                Op::Symlink(to, link) => libc::symlink(to.as_ptr(), link.as_ptr()),
                Op::Bind {
                    src,
                    dst,
                    recursive,
                } => {
                    let mut flags = libc::MS_BIND;
                    if *recursive {
                        flags |= libc::MS_REC;
                    }
                    libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        flags,
                        std::ptr::null(),
                    )
                }
                Op::RemountRo(dst) => libc::mount(
                    std::ptr::null(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                ),
                Op::TreeRo(dst) => {
                    #[repr(C)]
                    struct MountAttr {
                        attr_set: u64,
                        attr_clr: u64,
                        propagation: u64,
                        userns_fd: u64,
                    }
                    let attr = MountAttr {
                        attr_set: 1, // MOUNT_ATTR_RDONLY
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        dst.as_ptr(),
                        0x8000, // AT_RECURSIVE
                        &attr as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    ) as libc::c_int
                }
            }
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            child_say(c"pod runner: cannot ");
            child_say(&step.what);
            child_say(c"\n");
            return Err(err);
        }
    }
    Ok(())
}

fn child_say(msg: &std::ffi::CStr) {
    let b = msg.to_bytes();
    // SAFETY: write(2) of a valid buffer to stderr.
    unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
}

fn check(rc: libc::c_int, what: &std::ffi::CStr) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        child_say(c"pod runner: ");
        child_say(what);
        child_say(c" failed\n");
        Err(err)
    }
}

// ---------------------------------------------------------------------------------------------
// The runner

struct Running {
    spec: ContainerSpec,
    child: Child,
    root: PathBuf,
    log: PathBuf,
}

struct PodRun {
    netns: String,
    client_ns: String,
    containers: Vec<Running>,
    run_dir: PathBuf,
}

/// Runs a rendered StatefulSet's pod; see the [module docs](self).
pub struct PodRunner {
    manifests: Manifests,
    binaries: HostBinaries,
    network: PodNetwork,
    state: PathBuf,
    _owned_state: Option<TempDir>,
    runs: u32,
    pod: Option<PodRun>,
    ready_timeout: Duration,
}

impl PodRunner {
    /// A runner for the StatefulSet in `rendered` (the output of `helm template`), with a fresh
    /// state directory (removed on drop). Panics if not root or if a host binary is missing.
    pub fn new(rendered: &str, binaries: HostBinaries, network: PodNetwork) -> Self {
        require_root();
        require_file(Path::new(SETPRIV), "util-linux");
        require_file(Path::new(IP), "iproute2");
        clean_leftovers();
        let owned = tempfile::Builder::new()
            .prefix(&format!("pod-runner-{}-", std::process::id()))
            .tempdir()
            .expect("cannot create the pod runner's state directory");
        let state = owned.path().to_owned();
        let runner = Self {
            manifests: Manifests::parse(rendered),
            binaries,
            network,
            state,
            _owned_state: Some(owned),
            runs: 0,
            pod: None,
            ready_timeout: Duration::from_secs(60),
        };
        runner.check_binaries();
        runner
    }

    /// How long [`start`](Self::start) waits for the containers' probes (default 60 s); the
    /// containers are checked in their order, so a later one that never becomes ready shows
    /// that the earlier ones were.
    pub fn set_ready_timeout(&mut self, timeout: Duration) {
        self.ready_timeout = timeout;
    }

    /// Replaces the manifests (e.g. a new `helm template` with other values) for the next
    /// [`start`](Self::start); volumes are kept, as on `helm upgrade`.
    pub fn set_manifests(&mut self, rendered: &str) {
        self.manifests = Manifests::parse(rendered);
        self.check_binaries();
    }

    fn check_binaries(&self) {
        for (program, host, package) in &self.binaries.map {
            let used = self.specs().iter().any(|c| {
                c.argv.first() == Some(program)
                    || c.post_start.as_ref().and_then(|h| h.first()) == Some(program)
            });
            if used {
                require_file(host, package);
            }
        }
    }

    fn specs(&self) -> Vec<ContainerSpec> {
        let pod = self.manifests.pod_spec();
        pod["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(pod["containers"].as_array().into_iter().flatten())
            .map(|c| parse_container(c, pod))
            .collect()
    }

    /// The pod's name (`<statefulset>-0`), also its hostname.
    pub fn pod_name(&self) -> String {
        self.manifests.pod_name()
    }

    /// The network addresses.
    pub fn network(&self) -> &PodNetwork {
        &self.network
    }

    /// The host directory of the PVC of volume claim template `name` (exists once the pod ran).
    pub fn pvc_dir(&self, name: &str) -> PathBuf {
        self.state.join("pvc").join(name)
    }

    /// The host directory of emptyDir volume `name` of the running pod.
    pub fn empty_dir(&self, name: &str) -> PathBuf {
        let pod = self.pod.as_ref().expect("the pod is not running");
        pod.run_dir.join("empty").join(name)
    }

    /// The pod's network namespace (while running).
    pub fn netns(&self) -> &str {
        &self.pod.as_ref().expect("the pod is not running").netns
    }

    /// The client namespace, joined to the pod's `eth0` by a veth (while running).
    pub fn client_netns(&self) -> &str {
        &self.pod.as_ref().expect("the pod is not running").client_ns
    }

    /// The client namespace's interface name.
    pub fn client_if(&self) -> &'static str {
        "eth0"
    }

    /// A host program run in the pod's network namespace (like a debug container).
    pub fn pod_net_cmd(&self, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", self.netns(), program]);
        c
    }

    /// A host program run in the client namespace.
    pub fn client_cmd(&self, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", self.client_netns(), program]);
        c
    }

    /// The log (stdout and stderr) of `container` in the current or last run.
    pub fn logs(&self, container: &str) -> String {
        let dir = self.state.join("logs").join(format!("run-{}", self.runs));
        fs::read_to_string(dir.join(format!("{container}.log"))).unwrap_or_default()
    }

    /// The output (stdout, then stderr) of `container`'s postStart hook in the current or last
    /// run (the kubelet discards it; the runner keeps it).
    pub fn post_start_output(&self, container: &str) -> String {
        let dir = self.state.join("logs").join(format!("run-{}", self.runs));
        fs::read_to_string(dir.join(format!("{container}.postStart.log"))).unwrap_or_default()
    }

    /// Whether the pod is running.
    pub fn is_running(&self) -> bool {
        self.pod.is_some()
    }

    /// Starts the pod: network, volumes, init containers, containers with their postStart
    /// hooks, then waits until every probed container is ready. On failure, the pod is stopped
    /// and the error holds the relevant logs.
    pub fn start(&mut self) -> Result<(), PodError> {
        assert!(self.pod.is_none(), "the pod is already running");
        self.runs += 1;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let run_dir = self.state.join("run");
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir).expect("cannot remove the last run's directory");
        }
        fs::create_dir_all(run_dir.join("roots")).expect("cannot create the run directory");
        let logs = self.state.join("logs").join(format!("run-{}", self.runs));
        fs::create_dir_all(&logs).expect("cannot create the log directory");
        self.pod = Some(PodRun {
            netns: format!("udd-pod-{id}"),
            client_ns: format!("udd-cli-{id}"),
            containers: Vec::new(),
            run_dir: run_dir.clone(),
        });
        let result = self.start_inner(&run_dir, &logs);
        if result.is_err() {
            self.stop();
        }
        result
    }

    fn start_inner(&mut self, run_dir: &Path, logs: &Path) -> Result<(), PodError> {
        self.setup_network()?;
        let volumes = self.prepare_volumes(run_dir)?;
        let pod = self.manifests.pod_spec().clone();
        let inits: Vec<ContainerSpec> = pod["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| parse_container(c, &pod))
            .collect();
        let mains: Vec<ContainerSpec> = pod["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| parse_container(c, &pod))
            .collect();
        for spec in inits {
            let name = spec.name.clone();
            let mut running = self.spawn(spec, &volumes, run_dir, logs)?;
            let status = wait_timeout(&mut running.child, INIT_TIMEOUT);
            let log = fs::read_to_string(&running.log).unwrap_or_default();
            match status {
                Some(s) if s.success() => {}
                Some(s) => {
                    return Err(PodError(format!(
                        "init container {name} failed ({s}); its log:\n{log}"
                    )));
                }
                None => {
                    kill_group(&running.child, libc::SIGKILL);
                    let _ = running.child.wait();
                    return Err(PodError(format!(
                        "init container {name} did not finish within {INIT_TIMEOUT:?}; its log:\n{log}"
                    )));
                }
            }
        }
        for spec in mains {
            let name = spec.name.clone();
            let hook = spec.post_start.clone();
            let running = self.spawn(spec, &volumes, run_dir, logs)?;
            self.pod.as_mut().expect("pod").containers.push(running);
            if let Some(hook) = hook {
                let out = self.exec(&name, &hook)?;
                // The kubelet discards a hook's output; the runner keeps it for the tests.
                let mut text = out.stdout.clone();
                text.extend_from_slice(&out.stderr);
                let _ = fs::write(logs.join(format!("{name}.postStart.log")), text);
                if !out.status.success() {
                    return Err(PodError(format!(
                        "FailedPostStartHook: postStart of {name} ({}) failed ({}), the \
                         container is killed\nhook stdout:\n{}\nhook stderr:\n{}\ncontainer log:\n{}",
                        hook.join(" "),
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr),
                        self.logs(&name)
                    )));
                }
            }
        }
        self.wait_ready(self.ready_timeout)
    }

    fn setup_network(&self) -> Result<(), PodError> {
        let pod = self.pod.as_ref().expect("pod");
        let (ns, cns) = (pod.netns.as_str(), pod.client_ns.as_str());
        run_ok(Command::new(IP).args(["netns", "add", ns]))?;
        run_ok(Command::new(IP).args(["netns", "add", cns]))?;
        let pod_if = self.network.pod_if.as_str();
        run_ok(Command::new(IP).args([
            "-n", ns, "link", "add", pod_if, "type", "veth", "peer", "name", "veth-pod", "netns",
            cns,
        ]))?;
        run_ok(Command::new(IP).args(["-n", cns, "link", "set", "veth-pod", "name", "eth0"]))?;
        for (n, addr, dev) in [
            (ns, &self.network.pod_addr, pod_if),
            (cns, &self.network.client_addr, "eth0"),
        ] {
            run_ok(Command::new(IP).args(["-n", n, "link", "set", "lo", "up"]))?;
            run_ok(Command::new(IP).args(["-n", n, "addr", "add", addr, "dev", dev]))?;
            run_ok(Command::new(IP).args(["-n", n, "link", "set", dev, "up"]))?;
        }
        if let Some(gw) = &self.network.gateway {
            run_ok(Command::new(IP).args(["-n", ns, "route", "add", "default", "via", gw]))?;
        }
        let host_network = self.manifests.pod_spec()["hostNetwork"].as_bool() == Some(true);
        let has_sysctls = self.manifests.pod_spec()["securityContext"]["sysctls"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if host_network && has_sysctls {
            // The kubelet refuses namespaced sysctls for a pod on the node's network.
            return Err(PodError(
                "a hostNetwork pod sets sysctls, which the kubelet rejects".into(),
            ));
        }
        let sysctls = self.manifests.pod_spec()["securityContext"]["sysctls"].clone();
        for sc in sysctls.as_array().into_iter().flatten() {
            let (Some(name), Some(value)) = (s(&sc["name"]), sc["value"].as_str()) else {
                continue;
            };
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            // /proc/sys/net is per network namespace: written from inside the pod's.
            run_ok(
                Command::new(IP)
                    .args(["netns", "exec", ns, "sh", "-c", "printf %s \"$2\" > \"$1\""])
                    .args(["sh", &path, value]),
            )?;
        }
        Ok(())
    }

    /// Creates the volumes' host directories; returns volume name -> host directory.
    fn prepare_volumes(&self, run_dir: &Path) -> Result<BTreeMap<String, PathBuf>, PodError> {
        let pod = self.manifests.pod_spec();
        let fs_group = uint(&pod["securityContext"]["fsGroup"]);
        let always =
            pod["securityContext"]["fsGroupChangePolicy"].as_str() != Some("OnRootMismatch");
        let mut out = BTreeMap::new();
        for claim in self.manifests.claim_templates() {
            let dir = self.pvc_dir(&claim);
            if !dir.exists() {
                fs::create_dir_all(&dir)
                    .map_err(|e| PodError(format!("{}: {e}", dir.display())))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).ok();
            }
            if let Some(g) = fs_group {
                let mismatch = fs::metadata(&dir)
                    .map(|m| std::os::unix::fs::MetadataExt::gid(&m) != g)
                    .unwrap_or(true);
                if always || mismatch {
                    apply_fs_group(&dir, g);
                }
            }
            out.insert(claim, dir);
        }
        for v in pod["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let dir;
            if v.get("emptyDir").is_some() {
                dir = run_dir.join("empty").join(&name);
                fs::create_dir_all(&dir)
                    .map_err(|e| PodError(format!("{}: {e}", dir.display())))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).ok();
                if let Some(g) = fs_group {
                    apply_fs_group(&dir, g);
                }
            } else if let Some(cm) = v.get("configMap") {
                dir = run_dir.join("configmap").join(&name);
                let cm_name = cm["name"].as_str().unwrap_or_default();
                let files = self.config_map_files(&name, cm_name, cm)?;
                write_projection(&dir, &files, cm, fs_group)?;
            } else if let Some(sec) = v.get("secret") {
                dir = run_dir.join("secret").join(&name);
                let sec_name = sec["secretName"].as_str().unwrap_or_default();
                let files = self.secret_files(&name, sec_name, sec)?;
                write_projection(&dir, &files, sec, fs_group)?;
            } else if let Some(pvc) = v.get("persistentVolumeClaim") {
                let claim = pvc["claimName"].as_str().unwrap_or_default();
                dir = self.pvc_dir(claim);
                fs::create_dir_all(&dir)
                    .map_err(|e| PodError(format!("{}: {e}", dir.display())))?;
            } else {
                return Err(PodError(format!(
                    "volume {name}: only emptyDir, configMap, secret and persistentVolumeClaim \
                     are supported by the pod runner"
                )));
            }
            out.insert(name, dir);
        }
        Ok(out)
    }

    /// The files of the ConfigMap `cm_name` projected by volume `volume` (`data` as text,
    /// `binaryData` decoded); none if it is optional and absent.
    fn config_map_files(
        &self,
        volume: &str,
        cm_name: &str,
        cm: &Value,
    ) -> Result<Vec<(String, Vec<u8>)>, PodError> {
        let Some(doc) = self.manifests.config_maps.get(cm_name) else {
            if cm["optional"].as_bool() == Some(true) {
                return Ok(Vec::new());
            }
            return Err(PodError(format!(
                "volume {volume}: ConfigMap {cm_name} is not in the manifests"
            )));
        };
        Ok(object_files(
            doc,
            [("data", Encoding::Text), ("binaryData", Encoding::Base64)],
        ))
    }

    /// The files of the Secret `sec_name` projected by volume `volume` (`data` decoded,
    /// `stringData` as text); none if it is optional and absent.
    fn secret_files(
        &self,
        volume: &str,
        sec_name: &str,
        sec: &Value,
    ) -> Result<Vec<(String, Vec<u8>)>, PodError> {
        let Some(doc) = self.manifests.secrets.get(sec_name) else {
            if sec["optional"].as_bool() == Some(true) {
                return Ok(Vec::new());
            }
            return Err(PodError(format!(
                "volume {volume}: Secret {sec_name} is not in the manifests (an existingSecret \
                 must be given to the runner's manifests)"
            )));
        };
        // `stringData` after `data`: it wins on a key in both, as in Kubernetes.
        Ok(object_files(
            doc,
            [("data", Encoding::Base64), ("stringData", Encoding::Text)],
        ))
    }

    /// The container's binds (container path, host source, read-only): its volumes, sorted
    /// parents first, then the mapped image binaries; and its command line, run through the
    /// launcher when the binary is mapped into the pod.
    fn binds_and_argv(
        &self,
        spec: &ContainerSpec,
        volumes: &BTreeMap<String, PathBuf>,
    ) -> Result<(Vec<Bind>, Vec<String>), PodError> {
        let mut mounts = spec.mounts.clone();
        mounts.sort_by_key(|m| Path::new(&m.path).components().count());
        let mut binds = Vec::new();
        for m in &mounts {
            let base = volumes.get(&m.volume).ok_or_else(|| {
                PodError(format!(
                    "container {}: volume {} is not defined",
                    spec.name, m.volume
                ))
            })?;
            let src = match &m.sub_path {
                Some(sp) => {
                    let p = base.join(sp);
                    if !p.exists() {
                        fs::create_dir_all(&p)
                            .map_err(|e| PodError(format!("{}: {e}", p.display())))?;
                    }
                    fs::canonicalize(&p).map_err(|e| PodError(format!("{}: {e}", p.display())))?
                }
                None => base.clone(),
            };
            binds.push((PathBuf::from(&m.path), src, m.read_only));
        }
        let mut argv = spec.argv.clone();
        if let Some((program, host, _)) = self.binaries.lookup(&argv[0]) {
            if program.starts_with('/') {
                binds.push((PathBuf::from(program), host.clone(), true));
            } else {
                argv[0] = self.binaries.in_pod(host).to_string_lossy().into_owned();
                argv.splice(0..0, self.binaries.launcher.iter().cloned());
            }
        }
        for (path, host) in &self.binaries.image_files {
            binds.push((path.clone(), host.clone(), true));
        }
        Ok((binds, argv))
    }

    fn spawn(
        &self,
        spec: ContainerSpec,
        volumes: &BTreeMap<String, PathBuf>,
        run_dir: &Path,
        logs: &Path,
    ) -> Result<Running, PodError> {
        let pod = self.pod.as_ref().expect("pod");
        let root = run_dir.join("roots").join(&spec.name);
        fs::create_dir_all(&root).map_err(|e| PodError(format!("{}: {e}", root.display())))?;
        let (binds, argv) = self.binds_and_argv(&spec, volumes)?;
        let steps = plan_root(&root, &binds);
        let (log, out, err) = open_log(logs, &spec)?;
        let netns = File::open(format!("/run/netns/{}", pod.netns))
            .map_err(|e| PodError(format!("netns {}: {e}", pod.netns)))?;
        let hostname = cstr(self.pod_name());
        let root_c = cstr(&root);
        let wd = cstr(&spec.working_dir);

        let mut cmd = setpriv_command(&spec.creds, &argv);
        cmd.env_clear();
        cmd.env("PATH", CONTAINER_PATH);
        cmd.env("HOSTNAME", self.pod_name());
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.process_group(0);
        let net_fd = netns.as_raw_fd();
        // SAFETY: the closure only makes syscalls on data prepared before fork (no allocation).
        unsafe {
            cmd.pre_exec(move || {
                check(libc::setns(net_fd, libc::CLONE_NEWNET), c"setns(net)")?;
                check(
                    libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS),
                    c"unshare",
                )?;
                check(
                    libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ),
                    c"make / private",
                )?;
                let h = hostname.as_bytes();
                check(
                    libc::sethostname(h.as_ptr().cast(), h.len()),
                    c"sethostname",
                )?;
                run_steps(&steps)?;
                check(libc::chroot(root_c.as_ptr()), c"chroot")?;
                check(libc::chdir(wd.as_ptr()), c"chdir to workingDir")?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| PodError(format!("container {}: cannot start: {e}", spec.name)))?;
        drop(netns);
        Ok(Running {
            spec,
            child,
            root,
            log,
        })
    }

    /// Runs `argv` inside running container `container` (its namespaces, root, user,
    /// environment), like `kubectl exec`; returns its output.
    pub fn exec(&self, container: &str, argv: &[String]) -> Result<Output, PodError> {
        let pod = self
            .pod
            .as_ref()
            .ok_or_else(|| PodError("the pod is not running".into()))?;
        let c = pod
            .containers
            .iter()
            .find(|c| c.spec.name == container)
            .ok_or_else(|| PodError(format!("no running container {container}")))?;
        let pid = c.child.id();
        let open = |ns: &str| {
            File::open(format!("/proc/{pid}/ns/{ns}"))
                .map_err(|e| PodError(format!("container {container} (pid {pid}): {ns}: {e}")))
        };
        let (net, uts, mnt) = (open("net")?, open("uts")?, open("mnt")?);
        let mut argv = argv.to_vec();
        if let Some((program, host, _)) = self.binaries.lookup(&argv[0])
            && !program.starts_with('/')
        {
            argv[0] = self.binaries.in_pod(host).to_string_lossy().into_owned();
            argv.splice(0..0, self.binaries.launcher.iter().cloned());
        }
        let mut cmd = setpriv_command(&c.spec.creds, &argv);
        cmd.env_clear();
        cmd.env("PATH", CONTAINER_PATH);
        cmd.env("HOSTNAME", self.pod_name());
        cmd.envs(c.spec.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        let (nf, uf, mf) = (net.as_raw_fd(), uts.as_raw_fd(), mnt.as_raw_fd());
        let root_c = cstr(&c.root);
        let wd = cstr(&c.spec.working_dir);
        // SAFETY: syscalls only, on data prepared before fork.
        unsafe {
            cmd.pre_exec(move || {
                check(libc::setns(nf, libc::CLONE_NEWNET), c"setns(net)")?;
                check(libc::setns(uf, libc::CLONE_NEWUTS), c"setns(uts)")?;
                check(libc::setns(mf, libc::CLONE_NEWNS), c"setns(mnt)")?;
                check(libc::chroot(root_c.as_ptr()), c"chroot")?;
                check(libc::chdir(wd.as_ptr()), c"chdir")?;
                Ok(())
            });
        }
        cmd.output()
            .map_err(|e| PodError(format!("exec in {container}: {e}")))
    }

    /// Like [`exec`](Self::exec) with `&str` arguments; fails unless the command exits 0.
    pub fn exec_ok(&self, container: &str, argv: &[&str]) -> Result<String, PodError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = self.exec(container, &argv)?;
        if !out.status.success() {
            return Err(PodError(format!(
                "exec in {container}: {} failed ({}):\n{}{}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Fails with the container's log if a container of the pod has exited.
    pub fn check_alive(&mut self) -> Result<(), PodError> {
        let pod = self
            .pod
            .as_mut()
            .ok_or_else(|| PodError("the pod is not running".into()))?;
        for c in &mut pod.containers {
            if let Ok(Some(status)) = c.child.try_wait() {
                return Err(PodError(format!(
                    "container {} exited ({status}); its log:\n{}",
                    c.spec.name,
                    fs::read_to_string(&c.log).unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), PodError> {
        let deadline = Instant::now() + timeout;
        let probes: Vec<(String, Vec<Probe>)> = self
            .pod
            .as_ref()
            .expect("pod")
            .containers
            .iter()
            .map(|c| (c.spec.name.clone(), c.spec.probes.clone()))
            .collect();
        for (name, probes) in probes {
            for probe in probes {
                let mut said = String::new();
                loop {
                    self.check_alive()?;
                    let ok = match &probe {
                        Probe::Exec(argv) => match self.exec(&name, argv) {
                            Ok(o) => {
                                said = format!(
                                    "{}{}",
                                    String::from_utf8_lossy(&o.stdout),
                                    String::from_utf8_lossy(&o.stderr)
                                );
                                o.status.success()
                            }
                            Err(e) => {
                                said = e.0;
                                false
                            }
                        },
                        Probe::Tcp(port) => self.tcp_probe(*port),
                    };
                    if ok {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(PodError(format!(
                            "container {name} not ready within {timeout:?} ({probe:?}); the \
                             probe said:\n{said}\nits log:\n{}",
                            self.logs(&name)
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Ok(())
    }

    /// Connects to `port` on the pod's address from inside its network namespace.
    fn tcp_probe(&self, port: u16) -> bool {
        let path = format!("/run/netns/{}", self.netns());
        let addr = SocketAddr::from((self.network.pod_ip(), port));
        std::thread::spawn(move || {
            let Ok(ns) = File::open(&path) else {
                return false;
            };
            // SAFETY: setns on this thread only (CLONE_NEWNET is per thread).
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return false;
            }
            TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
        })
        .join()
        .unwrap_or(false)
    }

    /// Stops the pod: SIGTERM to every container, SIGKILL after the grace period, then
    /// removes the namespaces. Volumes (PVC directories) stay.
    pub fn stop(&mut self) {
        let Some(mut pod) = self.pod.take() else {
            return;
        };
        let grace = self.manifests.pod_spec()["terminationGracePeriodSeconds"]
            .as_u64()
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30))
            .min(MAX_GRACE);
        for c in &pod.containers {
            kill_group(&c.child, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        for c in &mut pod.containers {
            let left = deadline.saturating_duration_since(Instant::now());
            if wait_timeout(&mut c.child, left).is_none() {
                kill_group(&c.child, libc::SIGKILL);
                let _ = c.child.wait();
            }
        }
        // Anything else left in the namespaces (e.g. a hook) is the pod's.
        for ns in [&pod.netns, &pod.client_ns] {
            if let Ok(out) = Command::new(IP)
                .args(["netns", "pids", ns])
                .stderr(Stdio::null())
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<libc::pid_t>().ok())
                {
                    // SAFETY: kill(2) of a process inside a namespace this runner created.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for ns in [&pod.netns, &pod.client_ns] {
            let _ = Command::new(IP)
                .args(["netns", "del", ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes what runners of test processes that no longer exist left behind (a test process
/// killed before its runner's Drop ran): their namespaces (and the processes in them) and
/// their state directories. Names carry the PID of the test process that created them.
fn clean_leftovers() {
    let dead = |name: &str, prefix: &str| -> bool {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
    };
    if let Ok(out) = Command::new(IP)
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(ns) = line.split_whitespace().next() else {
                continue;
            };
            if !(dead(ns, "udd-pod-") || dead(ns, "udd-cli-") || dead(ns, "udd-lan-")) {
                continue;
            }
            if let Ok(p) = Command::new(IP).args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&p.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<libc::pid_t>().ok())
                {
                    // SAFETY: kill(2) of a process left in a pod runner's namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _ = Command::new(IP)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name, "pod-runner-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn setpriv_command(creds: &Creds, argv: &[String]) -> Command {
    let mut cmd = Command::new(SETPRIV);
    cmd.arg(format!("--reuid={}", creds.uid));
    cmd.arg(format!("--regid={}", creds.gid));
    if creds.groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let g: Vec<String> = creds.groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", g.join(",")));
    }
    let mut bounding: Vec<String> = Vec::new();
    if creds.caps_drop_all {
        bounding.push("-all".into());
    } else {
        bounding.extend(creds.caps_drop.iter().map(|c| format!("-{c}")));
    }
    if creds.caps_drop_all {
        bounding.extend(creds.caps_add.iter().map(|c| format!("+{c}")));
    }
    if !bounding.is_empty() {
        cmd.arg(format!("--bounding-set={}", bounding.join(",")));
    }
    if creds.uid != 0 && !creds.caps_add.is_empty() {
        let add: Vec<String> = creds.caps_add.iter().map(|c| format!("+{c}")).collect();
        cmd.arg(format!("--inh-caps={}", add.join(",")));
        cmd.arg(format!("--ambient-caps={}", add.join(",")));
    }
    if creds.no_new_privs {
        cmd.arg("--no-new-privs");
    }
    cmd.arg("--");
    cmd.args(argv);
    cmd
}

fn kill_group(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) of the process group this runner created for the container.
    unsafe { libc::kill(-(child.id() as libc::pid_t), sig) };
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_ok(cmd: &mut Command) -> Result<Output, PodError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PodError(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(PodError(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// The kubelet's volume ownership for `fsGroup`: group `gid`, group read/write (and execute
/// for directories), setgid directories, recursively.
fn apply_fs_group(dir: &Path, gid: u32) {
    let Ok(meta) = dir.symlink_metadata() else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let _ = std::os::unix::fs::lchown(dir, None, Some(gid));
    let mode = meta.permissions().mode() & 0o7777;
    let add = if meta.is_dir() { 0o2070 } else { 0o060 };
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | add));
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(dir)
    {
        for e in entries.flatten() {
            apply_fs_group(&e.path(), gid);
        }
    }
}

/// How a ConfigMap's or Secret's field holds its values.
#[derive(Clone, Copy)]
enum Encoding {
    Text,
    Base64,
}

/// The files of a ConfigMap or Secret `doc`: every key of each of `fields`, in that order.
fn object_files(doc: &Value, fields: [(&str, Encoding); 2]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (field, encoding) in fields {
        for (k, val) in doc[field].as_object().into_iter().flatten() {
            let text = val.as_str().unwrap_or_default();
            let data = match encoding {
                Encoding::Text => text.as_bytes().to_vec(),
                Encoding::Base64 => base64_decode(text),
            };
            files.push((k.clone(), data));
        }
    }
    files
}

/// Writes ConfigMap/Secret `files` into `dir` as the kubelet's atomic writer does: the files in
/// a timestamped directory, `..data` pointing at it, each top-level entry a symlink through
/// `..data`. Honours `items` (key, path, mode) and `defaultMode` (default 0644).
fn write_projection(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    source: &Value,
    fs_group: Option<u32>,
) -> Result<(), PodError> {
    let err = |p: &Path, e: io::Error| PodError(format!("{}: {e}", p.display()));
    let default_mode = uint(&source["defaultMode"]).unwrap_or(0o644);
    let mut chosen: Vec<(String, &[u8], u32)> = Vec::new();
    match source["items"].as_array() {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or_default();
                let Some((_, data)) = files.iter().find(|(k, _)| k == key) else {
                    return Err(PodError(format!("items: no key {key}")));
                };
                let path = it["path"].as_str().unwrap_or(key).to_owned();
                chosen.push((path, data, uint(&it["mode"]).unwrap_or(default_mode)));
            }
        }
        None => {
            for (k, data) in files {
                chosen.push((k.clone(), data, default_mode));
            }
        }
    }
    let stamp = dir.join("..2026_01_01_00_00_00.000000001");
    fs::create_dir_all(&stamp).map_err(|e| err(&stamp, e))?;
    let mut top = BTreeSet::new();
    for (path, data, mode) in &chosen {
        let p = stamp.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        }
        fs::write(&p, data).map_err(|e| err(&p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).map_err(|e| err(&p, e))?;
        if let Some(g) = fs_group {
            let _ = std::os::unix::fs::chown(&p, None, Some(g));
        }
        if let Some(Component::Normal(first)) = Path::new(path).components().next() {
            top.insert(first.to_owned());
        }
    }
    let data = dir.join("..data");
    symlink(stamp.file_name().unwrap_or_default(), &data).map_err(|e| err(&data, e))?;
    for t in top {
        let link = dir.join(&t);
        symlink(Path::new("..data").join(&t), &link).map_err(|e| err(&link, e))?;
    }
    if let Some(g) = fs_group {
        for d in [dir, stamp.as_path()] {
            let _ = std::os::unix::fs::chown(d, None, Some(g));
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o2755));
        }
    }
    Ok(())
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue, // padding, whitespace
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helm

/// The repository root (this crate is `crates/test-support`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repository root")
        .to_owned()
}

/// The pinned Helm binary, installed by `scripts/install-helm.sh` when missing (never a silent
/// skip: panics with the script's message if it cannot).
pub fn helm() -> PathBuf {
    let root = repo_root();
    let out = Command::new(root.join("scripts/install-helm.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/install-helm.sh");
    if !out.status.success() {
        panic!(
            "Helm is needed to render the chart and scripts/install-helm.sh could not install \
             it ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm template unified-dns-dhcp charts/unified-dns-dhcp --namespace dns-dhcp` with the given
/// values files and `--set` overrides; returns the rendered manifests. Helm's HOME and caches
/// are kept in `.cache/chart-check`, as `scripts/chart-check.sh` does.
pub fn helm_template(values: &[&Path], sets: &[&str]) -> String {
    let root = repo_root();
    let helm = helm();
    let cache = root.join(".cache/chart-check");
    let mut cmd = Command::new(&helm);
    cmd.args(["template", "unified-dns-dhcp"])
        .arg(root.join("charts/unified-dns-dhcp"))
        .args(["--namespace", "dns-dhcp", "--kube-version", "1.30.0"]);
    for v in values {
        cmd.arg("-f").arg(v);
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    for (k, d) in [
        ("HOME", "home"),
        ("HELM_CACHE_HOME", "helm/cache"),
        ("HELM_CONFIG_HOME", "helm/config"),
        ("HELM_DATA_HOME", "helm/data"),
    ] {
        let p = cache.join(d);
        let _ = fs::create_dir_all(&p);
        cmd.env(k, p);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("cannot run helm");
    if !out.status.success() {
        panic!(
            "helm template failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("helm output is UTF-8")
}

/// Reads a whole file, for tests.
pub fn read_file(path: &Path) -> String {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_octal_modes_are_read_as_the_api_server_does() {
        let docs = parse_manifests("---\n# only a comment\n---\na: 0440\nb: 420\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["a"], 0o440);
        assert_eq!(docs[0]["b"], 420);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64_decode("YQ=="), b"a");
    }

    #[test]
    fn host_prefix_resolution_keeps_missing_tails() {
        assert_eq!(
            resolve_host_prefix(Path::new("/nonexistent-x/y")),
            PathBuf::from("/nonexistent-x/y")
        );
    }
}
