//! The chart's network modes, run for real by `test_support::pod::PodRunner` with Debian's
//! daemons: a DHCP client (ISC `dhclient`) on a LAN gets a lease, renews it by unicast and its
//! name reaches Knot through DDNS — through an ISC `dhcrelay` and a load balancer's DNAT in
//! relay mode, directly on the node's interface in hostNetwork mode, on the attachment's
//! interface in multus mode, where the client resolves the whole DNS through the resolver it was
//! handed (Unbound; names outside the zones come from a stub authoritative server of the test).
//! Every namespace is the test's own; nothing leaves them. Needs root (namespaces, mounts,
//! nftables).
//!
//! `DNSDHCP_TEST_DAEMONS` chooses the pod's daemons, as in `pod_e2e` (host: Debian 12's with two
//! overrides; trixie: Debian 13's, the chart's pinned versions, with the chart's defaults). The
//! test's own peers (relay, client, secondary, stub server) are the host's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::daemons::Daemons;
use test_support::lan::Lan;
use test_support::pod::{HostBinaries, PodNetwork, PodRunner, helm_template};

const KDIG: &str = "/usr/bin/kdig";
const DHCLIENT: &str = "/usr/sbin/dhclient";
const DHCRELAY: &str = "/usr/sbin/dhcrelay";
const NFT: &str = "/usr/sbin/nft";
const IP: &str = "/usr/sbin/ip";
const KNOTD: &str = "/usr/sbin/knotd";

/// Overrides for the host's daemons (Debian 12: Knot 3.2, Kea 2.2, no `secret-file`).
const HOST_SETS: &[&str] = &[
    "ddns.tsig.secretFile=false",
    "dhcp.hooksDir=/usr/lib/x86_64-linux-gnu/kea/hooks",
];
/// Overrides for both variants: shorter waits.
const TEST_SETS: &[&str] = &[
    "postStart.timeoutSeconds=30",
    "terminationGracePeriodSeconds=5",
];

/// The pod's daemons: `DNSDHCP_TEST_DAEMONS` (host: Debian 12's; trixie: Debian 13's, the
/// chart's pinned versions, with the chart's defaults).
fn binaries() -> HostBinaries {
    HostBinaries::for_daemons(Daemons::from_env(), env!("CARGO_BIN_EXE_dnsdhcp"))
}

/// The load balancer's address: relays forward to it, clients renew with it.
const LB_IP: &str = "10.96.0.67";
/// The pod's address on the cluster network, which LAN clients cannot reach directly.
const POD_IP: &str = "10.244.1.10";

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install the Debian package {package} (scripts/install-deps.sh)"
    );
}

fn render(dir: &Path, values: &str) -> String {
    let f = dir.join("values.yaml");
    fs::write(&f, values).unwrap();
    let host: &[&str] = if Daemons::from_env() == Daemons::Host {
        HOST_SETS
    } else {
        &[]
    };
    let sets: Vec<&str> = host.iter().chain(TEST_SETS).copied().collect();
    helm_template(&[f.as_path()], &sets)
}

fn start(pod: &mut PodRunner) {
    if let Err(e) = pod.start() {
        panic!("the pod did not start:\n{e}");
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kdig +short` through `cmd` (a namespace's `kdig`) to `server`.
fn dig(mut cmd: Command, server: &str, name: &str, rtype: &str) -> Vec<String> {
    let out = cmd
        .args([
            &format!("@{server}"),
            "+short",
            "+time=2",
            "+retry=1",
            name,
            rtype,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("kdig");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    v.sort();
    v
}

/// ISC dhclient in the foreground in a namespace, sending host name `name`; its hook script
/// configures the address and logs every `reason` with the address to `events`.
struct Dhclient {
    child: Child,
    log: PathBuf,
    events: PathBuf,
}

impl Dhclient {
    fn start(cmd: Command, dir: &Path, iface: &str, name: &str) -> Self {
        require(DHCLIENT, "isc-dhcp-client");
        let conf = dir.join("dhclient.conf");
        fs::write(
            &conf,
            format!(
                "send host-name \"{name}\";\nrequest subnet-mask, routers, domain-name, domain-name-servers;\n"
            ),
        )
        .unwrap();
        let events = dir.join("dhclient.events");
        let script = dir.join("dhclient-script");
        fs::write(
            &script,
            format!(
                r#"#!/bin/sh
echo "$reason $new_ip_address $new_domain_name_servers" >> {events}
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    {IP} addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    if [ -n "$new_routers" ]; then {IP} route replace default via "${{new_routers%% *}}" dev "$interface"; fi
    ;;
esac
exit 0
"#,
                events = events.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let log = dir.join("dhclient.log");
        let mut cmd = cmd;
        cmd.args(["-4", "-d", "-v", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(dir.join("dhclient.leases"))
            .arg("-pf")
            .arg(dir.join("dhclient.pid"))
            .arg("-sf")
            .arg(&script)
            .arg(iface)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::options().append(true).open(&log).unwrap());
        let child = cmd.spawn().expect("dhclient");
        Self { child, log, events }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn events(&self) -> Vec<(String, String)> {
        fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_owned(), w.next().unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// The DNS servers (option 6) of the first BOUND event.
    fn bound_dns(&self) -> String {
        fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("BOUND "))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .unwrap_or_default()
    }

    /// The address of the first BOUND event; `context` explains a failure.
    fn wait_bound(&self, timeout: Duration, context: impl Fn() -> String) -> String {
        let mut addr = String::new();
        let deadline = Instant::now() + timeout;
        while addr.is_empty() {
            assert!(
                Instant::now() < deadline,
                "dhclient got no lease; its log:\n{}\n{}",
                self.log(),
                context()
            );
            std::thread::sleep(Duration::from_millis(200));
            if let Some((_, a)) = self.events().into_iter().find(|(r, _)| r == "BOUND") {
                addr = a;
            }
        }
        addr
    }

    /// Waits for a RENEW event (a renewal answered in the RENEWING state, i.e. by unicast to
    /// the server identifier; a renewal that only got through by broadcast would be REBIND).
    fn wait_renew(&self, addr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events();
            if ev.iter().any(|(r, a)| r == "RENEW" && a == addr) {
                return;
            }
            assert!(
                Instant::now() < deadline && !ev.iter().any(|(r, _)| r == "REBIND"),
                "no unicast renewal of {addr}: events {ev:?}; dhclient log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Dhclient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The A record of `name` as the pod's Knot serves it, once DDNS put it there.
fn wait_ddns(pod: &PodRunner, name: &str, addr: &str) {
    let found = || dig(pod.pod_net_cmd(KDIG), "127.0.0.1", name, "A") == [addr];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !found() {
        assert!(
            Instant::now() < deadline,
            "{name} A {addr} not in Knot; kea-dhcp4:\n{}\nkea-dhcp-ddns:\n{}",
            pod.logs("kea-dhcp4"),
            pod.logs("kea-dhcp-ddns")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sh_in(ns_cmd: Command, script: &str) {
    let mut cmd = ns_cmd;
    let out = cmd
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const RELAY_VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
network:
  mode: relay
service:
  dhcp:
    loadBalancerIP: 10.96.0.67
dhcp:
  subnets:
    - subnet: 192.168.1.0/24
      id: 1
      pools: ["192.168.1.100 - 192.168.1.199"]
      routers: ["192.168.1.1"]
      validLifetime: 20
"#;

/// Relay mode: LAN client -> dhcrelay on the LAN's router -> the load balancer's address
/// (DNAT to the pod, as kube-proxy does) -> Kea on UDP sockets. The router forwards nothing
/// from the LAN to the pod network unless it was DNATed, as a client outside the cluster cannot
/// reach pod addresses: the renewal gets through only because Kea names the load balancer as
/// its server identifier.
#[test]
fn pod_network_relay_mode_dhcrelay_lease_unicast_renewal_and_ddns() {
    test_support::pod::require_root();
    require(DHCRELAY, "isc-dhcp-relay");
    require(NFT, "nftables");
    require(KDIG, "knot-dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path(), RELAY_VALUES);
    let mut pod = PodRunner::new(
        &rendered,
        binaries(),
        PodNetwork {
            pod_addr: format!("{POD_IP}/24"),
            client_addr: "10.244.1.1/24".into(),
            gateway: Some("10.244.1.1".into()),
            pod_if: "eth0".into(),
        },
    );
    start(&mut pod);
    let lan = lan_behind_load_balancer(&pod, dir.path());
    let (_relay, relay_log) = start_dhcrelay(&pod, dir.path());
    wait_for("kea-dhcp-ddns to start", Duration::from_secs(30), || {
        pod.logs("kea-dhcp-ddns").contains("DHCP_DDNS_STARTED")
    });

    let client_dir = dir.path().join("client");
    fs::create_dir_all(&client_dir).unwrap();
    let client = Dhclient::start(lan.cmd(DHCLIENT), &client_dir, &lan.lan_if, "laptop");
    let addr = client.wait_bound(Duration::from_secs(30), || {
        format!(
            "dhcrelay:\n{}\nkea-dhcp4:\n{}",
            fs::read_to_string(&relay_log).unwrap_or_default(),
            pod.logs("kea-dhcp4")
        )
    });
    let relay_text = fs::read_to_string(&relay_log).unwrap_or_default();
    assert!(
        relay_text.contains(&format!("to {LB_IP}")),
        "dhcrelay did not forward to the load balancer:\n{relay_text}"
    );
    assert!(
        addr.starts_with("192.168.1."),
        "lease {addr} not from the relay's subnet"
    );
    wait_ddns(&pod, "laptop.home.arpa", &addr);

    // T1 is half the 20 s lifetime: the renewal goes by unicast to the server identifier, the
    // load balancer's address, and is acknowledged. The router's dhcrelay listens on the LAN
    // with a packet filter, so it sees that unicast too and relays a copy: the first answer to
    // reach the client comes either through the load balancer or from the relay (as on a real
    // router running a relay); which one wins is a race.
    client.wait_renew(&addr, Duration::from_secs(30));
    let log = client.log();
    let request = format!("DHCPREQUEST for {addr} on eth0 to {LB_IP} port 67");
    let Some(at) = log.find(&request) else {
        panic!("the renewal was not sent to the load balancer:\n{log}");
    };
    let after = &log[at..];
    assert!(
        after.contains(&format!("DHCPACK of {addr} from {LB_IP}"))
            || after.contains(&format!("DHCPACK of {addr} from 192.168.1.1")),
        "the unicast renewal was not acknowledged:\n{log}"
    );
    pod.check_alive().unwrap();
}

/// The client namespace plays the node and the LAN's router: the load balancer's DNAT of
/// `LB_IP` to the pod (prerouting for the LAN, output for the relay on the router itself), no
/// forwarding from the LAN to pod addresses unless DNATed, and the LAN behind `lan0`.
fn lan_behind_load_balancer(pod: &PodRunner, dir: &Path) -> Lan {
    let lan = Lan::new(pod.client_netns(), "lan0", "192.168.1.1/24");
    let ruleset = dir.join("lb.nft");
    fs::write(
        &ruleset,
        format!(
            "table ip lb {{
  chain lb_pre {{ type nat hook prerouting priority dstnat; ip daddr {LB_IP} udp dport 67 dnat to {POD_IP}:67; }}
  chain lb_out {{ type nat hook output priority -100; ip daddr {LB_IP} udp dport 67 dnat to {POD_IP}:67; }}
  chain lan_forward {{ type filter hook forward priority 0; iifname \"lan0\" ip daddr 10.244.1.0/24 ct status & dnat == 0 drop; }}
}}
"
        ),
    )
    .unwrap();
    let out = pod
        .client_cmd(NFT)
        .arg("-f")
        .arg(&ruleset)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A node routes the service range somewhere (its default route); DNAT does the rest.
    sh_in(
        pod.client_cmd("/bin/sh"),
        &format!("echo 1 > /proc/sys/net/ipv4/ip_forward && {IP} route add 10.96.0.0/16 dev eth0"),
    );
    lan
}

/// ISC dhcrelay on the router: from the LAN (`lan0`) to the load balancer's address.
fn start_dhcrelay(pod: &PodRunner, dir: &Path) -> (ChildGuard, PathBuf) {
    let log = dir.join("dhcrelay.log");
    let child = pod
        .client_cmd(DHCRELAY)
        .args(["-4", "-d", "-pf"])
        .arg(dir.join("dhcrelay.pid"))
        .args(["-iu", "eth0", "-id", "lan0", LB_IP])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("dhcrelay");
    (ChildGuard(child), log)
}

const HOST_NETWORK_VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
network:
  mode: hostNetwork
  hostNetwork:
    interfaces: [lan0]
knot:
  listenAddresses: ["192.168.1.53"]
dhcp:
  dnsServers: ["192.168.1.53"]
  subnets:
    - subnet: 192.168.1.0/24
      id: 1
      pools: ["192.168.1.100 - 192.168.1.199"]
      routers: ["192.168.1.1"]
      validLifetime: 20
"#;

/// hostNetwork mode: the pod in the namespace that plays the node, whose LAN interface is
/// `lan0`; Kea serves it with raw sockets, Knot answers on the node's LAN address (and on
/// 127.0.0.1 for DDNS) as root with NET_BIND_SERVICE only.
#[test]
fn pod_network_host_network_mode_direct_lease_unicast_renewal_and_ddns() {
    test_support::pod::require_root();
    require(KDIG, "knot-dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path(), HOST_NETWORK_VALUES);
    let mut pod = PodRunner::new(
        &rendered,
        binaries(),
        PodNetwork {
            pod_addr: "192.168.1.53/24".into(),
            client_addr: "192.168.1.250/24".into(),
            gateway: None,
            pod_if: "lan0".into(),
        },
    );
    start(&mut pod);
    assert_eq!(pod.exec_ok("knot-auth", &["id", "-u"]).unwrap().trim(), "0");
    wait_for("kea-dhcp-ddns to start", Duration::from_secs(30), || {
        pod.logs("kea-dhcp-ddns").contains("DHCP_DDNS_STARTED")
    });
    // The client namespace is the LAN: its address goes, the client gets one by DHCP.
    sh_in(
        pod.client_cmd("/bin/sh"),
        &format!("{IP} addr flush dev eth0"),
    );
    let client_dir = dir.path().join("client");
    fs::create_dir_all(&client_dir).unwrap();
    let client = Dhclient::start(pod.client_cmd(DHCLIENT), &client_dir, "eth0", "laptop");
    let addr = client.wait_bound(Duration::from_secs(30), || {
        format!("kea-dhcp4:\n{}", pod.logs("kea-dhcp4"))
    });
    assert!(addr.starts_with("192.168.1.1"), "lease {addr}");
    wait_ddns(&pod, "laptop.home.arpa", &addr);
    // From the LAN, at the node's address: the static record and the DDNS name.
    assert_eq!(
        dig(
            pod.client_cmd(KDIG),
            "192.168.1.53",
            "router.home.arpa",
            "A"
        ),
        ["192.168.1.1"]
    );
    assert_eq!(
        dig(
            pod.client_cmd(KDIG),
            "192.168.1.53",
            "laptop.home.arpa",
            "A"
        ),
        [addr.as_str()]
    );
    client.wait_renew(&addr, Duration::from_secs(30));
    let log = client.log();
    assert!(
        log.contains(&format!(
            "DHCPREQUEST for {addr} on eth0 to 192.168.1.53 port 67"
        )),
        "the renewal was not unicast to Kea's address:\n{log}"
    );
    pod.check_alive().unwrap();
}

const MULTUS_RESOLVER_VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
network:
  mode: multus
  multus:
    address: 192.168.1.53/24
resolver:
  enabled: true
  forwarders: ["192.168.1.250"]
dhcp:
  subnets:
    - subnet: 192.168.1.0/24
      id: 1
      pools: ["192.168.1.100 - 192.168.1.199"]
      routers: ["192.168.1.1"]
"#;

/// Multus mode with the resolver: the runner names the pod's LAN interface `net1` as the
/// attachment would; Kea serves it with raw sockets and hands out the resolver (the
/// attachment's address) as DNS server; the client resolves a static record, its own DDNS name
/// and a name outside the zones (from a stub authoritative server in the client namespace,
/// never the internet) through it.
#[test]
fn pod_network_multus_mode_with_resolver_hands_out_a_resolver_for_the_whole_dns() {
    test_support::pod::require_root();
    require(KDIG, "knot-dnsutils");
    require("/usr/sbin/unbound", "unbound");
    require(KNOTD, "knot");
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path(), MULTUS_RESOLVER_VALUES);
    let mut pod = PodRunner::new(
        &rendered,
        binaries(),
        PodNetwork {
            pod_addr: "192.168.1.53/24".into(),
            client_addr: "192.168.1.250/24".into(),
            gateway: None,
            pod_if: "net1".into(),
        },
    );
    start(&mut pod);
    let (_stub, slog) = stub_authoritative(&pod, dir.path());
    wait_for("kea-dhcp-ddns to start", Duration::from_secs(30), || {
        pod.logs("kea-dhcp-ddns").contains("DHCP_DDNS_STARTED")
    });
    let client_dir = dir.path().join("client");
    fs::create_dir_all(&client_dir).unwrap();
    let client = Dhclient::start(pod.client_cmd(DHCLIENT), &client_dir, "eth0", "laptop");
    let addr = client.wait_bound(Duration::from_secs(30), || {
        format!("kea-dhcp4:\n{}", pod.logs("kea-dhcp4"))
    });
    // The resolver's address came with the lease.
    let dns = client.bound_dns();
    assert_eq!(dns, "192.168.1.53", "DNS server handed out with the lease");
    wait_for("laptop's DDNS name", Duration::from_secs(15), || {
        dig(pod.client_cmd(KDIG), &dns, "laptop.home.arpa", "A") == [addr.as_str()]
    });
    let ask = |name: &str| dig(pod.client_cmd(KDIG), &dns, name, "A");
    assert_eq!(ask("router.home.arpa"), ["192.168.1.1"]);
    assert_eq!(
        ask("www.example.org"),
        ["203.0.113.80"],
        "resolver:\n{}\nstub:\n{}",
        pod.logs("resolver"),
        fs::read_to_string(&slog).unwrap_or_default()
    );
    assert_eq!(
        dig(
            pod.client_cmd(KDIG),
            &dns,
            "1.1.168.192.in-addr.arpa",
            "PTR"
        ),
        ["router.home.arpa."]
    );
    // Knot itself moved to the auth port; port 53 is the resolver's.
    assert_eq!(
        dig_port(pod.client_cmd(KDIG), &dns, 5300, "router.home.arpa", "A"),
        ["192.168.1.1"]
    );
    assert!(dig_port(pod.client_cmd(KDIG), &dns, 5300, "www.example.org", "A").is_empty());
    pod.check_alive().unwrap();
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kdig +short` to `server` on `port`.
fn dig_port(mut cmd: Command, server: &str, port: u16, name: &str, rtype: &str) -> Vec<String> {
    cmd.args(["-p", &port.to_string()]);
    dig(cmd, server, name, rtype)
}

/// The NetworkAttachmentDefinition's config of multus mode, fed to the real CNI plugins
/// (Debian's containernetworking-plugins) as Multus would: the pod namespace gets `net1` on the
/// node's LAN interface with the static address and routes, and keeps its default route off the
/// LAN; DEL removes it.
#[test]
fn pod_network_multus_attachment_config_works_with_the_real_cni_plugins() {
    test_support::pod::require_root();
    const CNI_DIR: &str = "/usr/lib/cni";
    for plugin in ["macvlan", "static"] {
        require(
            &format!("{CNI_DIR}/{plugin}"),
            "containernetworking-plugins",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    // macvlan only: ipvlan's config differs in `type` and `mode` alone, and this kernel (like
    // many CI kernels) has no ipvlan driver.
    let (kind, mode) = ("macvlan", "bridge");
    let values = format!(
        "network:\n  mode: multus\n  multus:\n    type: {kind}\n    cniMode: {mode}\n    master: lan0\n    address: 192.168.1.2/24\n    routes: [{{dst: 192.168.30.0/24, gw: 192.168.1.1}}]\n"
    );
    let rendered = render(dir.path(), &values);
    let nad = test_support::pod::parse_manifests(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "NetworkAttachmentDefinition")
        .expect("a NetworkAttachmentDefinition in multus mode");
    let config = nad["spec"]["config"].as_str().unwrap().to_owned();
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    sh_in(
        node.cmd("/bin/sh"),
        &format!("{IP} link add lan0 type veth peer name lan0-peer && {IP} link set lan0 up"),
    );
    let cni = |command: &str| {
        let mut c = node.cmd(&format!("{CNI_DIR}/{kind}"));
        c.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", "udd-test")
            .env("CNI_NETNS", format!("/run/netns/{}", pod.name))
            .env("CNI_IFNAME", "net1")
            .env("CNI_PATH", CNI_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), config.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{kind} {command} with {config}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cni("ADD");
    let show = |args: &[&str]| {
        let out = Command::new(IP)
            .args(["-n", &pod.name])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let addrs = show(&["-4", "addr", "show", "dev", "net1"]);
    assert!(addrs.contains("inet 192.168.1.2/24"), "{kind}: {addrs}");
    let routes = show(&["-4", "route"]);
    assert!(
        routes.contains("192.168.30.0/24 via 192.168.1.1 dev net1"),
        "{kind}: {routes}"
    );
    assert!(!routes.contains("default"), "{kind}: {routes}");
    cni("DEL");
    assert!(
        !show(&["link"]).contains("net1"),
        "{kind}: net1 left after DEL"
    );
}

/// A namespace of this test (`udd-lan-<pid>-...`, which the pod runner cleans up after a
/// killed test), removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "udd-lan-{}-{what}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ok = Command::new(IP)
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Self { name }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(IP).args(["netns", "del", &self.name]).status();
    }
}

/// A stub authoritative server for `example.org` (www A 203.0.113.80) in the client namespace on
/// 192.168.1.250:53: the resolver's forwarder, standing in for the internet. Returns its guard
/// and log file.
fn stub_authoritative(pod: &PodRunner, dir: &Path) -> (ChildGuard, PathBuf) {
    let sdir = dir.join("stub");
    fs::create_dir_all(&sdir).unwrap();
    fs::write(
        sdir.join("example.org.zone"),
        "$ORIGIN example.org.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 192.168.1.250\nwww A 203.0.113.80\n",
    )
    .unwrap();
    fs::write(
        sdir.join("knot.conf"),
        format!(
            "server:\n  rundir: {d}\n  listen: 192.168.1.250@53\ndatabase:\n  storage: {d}\ntemplate:\n  - id: default\n    storage: {d}\nzone:\n  - domain: example.org.\n",
            d = sdir.display()
        ),
    )
    .unwrap();
    let slog = sdir.join("knotd.log");
    let guard = ChildGuard(
        pod.client_cmd(KNOTD)
            .arg("-c")
            .arg(sdir.join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&slog).unwrap())
            .stderr(fs::File::options().append(true).open(&slog).unwrap())
            .spawn()
            .expect("knotd"),
    );
    (guard, slog)
}

const HOST_NETWORK_RESOLVER_VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
network:
  mode: hostNetwork
  hostNetwork:
    interfaces: [lan0]
knot:
  listenAddresses: ["192.168.1.53"]
resolver:
  enabled: true
  forwarders: ["192.168.1.250"]
"#;

/// hostNetwork mode with the resolver: Unbound binds the node's address on port 53 as root with
/// NET_BIND_SERVICE only; Knot listens on the node's address and 127.0.0.1 at the auth port.
#[test]
fn pod_network_host_network_mode_with_resolver_answers_on_the_node_address() {
    test_support::pod::require_root();
    require(KDIG, "knot-dnsutils");
    require("/usr/sbin/unbound", "unbound");
    require(KNOTD, "knot");
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path(), HOST_NETWORK_RESOLVER_VALUES);
    let mut pod = PodRunner::new(
        &rendered,
        binaries(),
        PodNetwork {
            pod_addr: "192.168.1.53/24".into(),
            client_addr: "192.168.1.250/24".into(),
            gateway: None,
            pod_if: "lan0".into(),
        },
    );
    start(&mut pod);
    let (_stub, slog) = stub_authoritative(&pod, dir.path());
    assert_eq!(pod.exec_ok("resolver", &["id", "-u"]).unwrap().trim(), "0");
    let ask = |name: &str| dig(pod.client_cmd(KDIG), "192.168.1.53", name, "A");
    assert_eq!(ask("router.home.arpa"), ["192.168.1.1"]);
    assert_eq!(
        ask("www.example.org"),
        ["203.0.113.80"],
        "resolver:\n{}\nstub:\n{}",
        pod.logs("resolver"),
        fs::read_to_string(&slog).unwrap_or_default()
    );
    assert_eq!(
        dig_port(
            pod.client_cmd(KDIG),
            "192.168.1.53",
            5300,
            "router.home.arpa",
            "A"
        ),
        ["192.168.1.1"]
    );
    // Knot on the pod's loopback too, where the resolver and Kea's DDNS reach it.
    assert_eq!(
        dig_port(
            pod.pod_net_cmd(KDIG),
            "127.0.0.1",
            5300,
            "router.home.arpa",
            "A"
        ),
        ["192.168.1.1"]
    );
    pod.check_alive().unwrap();
}
