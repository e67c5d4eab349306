//! `dnsdhcp values convert`: values written for the original chart (`segments[]`) turned into
//! values for this chart: zones, static records, subnets and pools, reservations, DDNS and
//! resolver settings; every setting that has no counterpart is listed as a comment.
//!
//! The original chart deployed one StatefulSet per segment; the converted values put every
//! segment into the one pod of this chart. Its Kea subnet id was the segment's `name`: the
//! converted subnet keeps it as `id`, so restored leases keep pointing at their subnet.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::records::values::reverse_zone;

/// Why values could not be converted at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{}: not YAML: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file has no `segments` list: not values of the original chart.
    #[error("{}: no `segments` list; not values written for the original chart", path.display())]
    NoSegments {
        /// The file.
        path: PathBuf,
    },
}

/// The converted values: YAML text with comments.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The values file for this chart.
    pub yaml: String,
    /// Settings not mapped (dotted path, value, why), also in `yaml` as comments.
    pub unmapped: Vec<(String, String, String)>,
}

/// A YAML scalar: JSON's double-quoted string form is valid YAML.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Tracks which settings of the old values were used.
#[derive(Default)]
struct Used(BTreeSet<String>);

impl Used {
    /// The scalar at `path` (dotted, below `base`), marked used.
    fn get(&mut self, root: &Value, base: &str, path: &[&str]) -> Option<String> {
        let mut v = root;
        for p in path {
            v = v.get(p)?;
        }
        let s = text(v)?;
        self.0.insert(format!("{base}.{}", path.join(".")));
        Some(s)
    }
}

/// `"<owner> [ttl] [IN] <TYPE> <value>"` → (owner, ttl, type, data).
fn split_record(line: &str) -> Option<(String, Option<String>, String, String)> {
    let mut rest = line.trim();
    let take = |rest: &mut &str| -> Option<String> {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (tok, tail) = t.split_at(end);
        *rest = tail;
        (!tok.is_empty()).then(|| tok.to_owned())
    };
    let owner = take(&mut rest)?;
    let mut tok = take(&mut rest)?;
    let mut ttl = None;
    if tok.chars().all(|c| c.is_ascii_digit()) {
        ttl = Some(tok);
        tok = take(&mut rest)?;
    }
    if tok.eq_ignore_ascii_case("IN") {
        tok = take(&mut rest)?;
    }
    let data = rest.trim().to_owned();
    (!data.is_empty()).then_some((owner, ttl, tok.to_ascii_uppercase(), data))
}

/// Converts the original chart's values file `path`: read, every segment converted, the
/// global settings, then every setting left over listed as not mapped.
pub fn convert_values(path: &Path) -> Result<Converted, ConvertError> {
    let root = read_values(path)?;
    let Some(segments) = root.get("segments").and_then(Value::as_array) else {
        return Err(ConvertError::NoSegments {
            path: path.to_owned(),
        });
    };
    let mut c = Conversion::default();
    for (i, seg) in segments.iter().enumerate() {
        c.segment(&format!("segments[{i}]"), seg);
    }
    let global = global_settings(&root, &mut c.used);
    c.list_unused(&root);
    let yaml = c.render(path, &global);
    Ok(Converted {
        yaml,
        unmapped: c.unmapped,
    })
}

fn read_values(path: &Path) -> Result<Value, ConvertError> {
    let raw = std::fs::read_to_string(path).map_err(|source| ConvertError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_saphyr::from_str(&raw).map_err(|e| ConvertError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The converted values, gathered segment by segment.
#[derive(Default)]
struct Conversion {
    used: Used,
    /// (dotted path, value, why).
    unmapped: Vec<(String, String, String)>,
    zones: Vec<String>,
    /// `staticRecords` entries, as YAML.
    records: String,
    /// `dhcp.subnets` entries, as YAML.
    subnets: String,
    forwarders: Vec<String>,
}

impl Conversion {
    /// One segment (`base` is its path): its zones, static records, subnet and upstreams.
    fn segment(&mut self, base: &str, seg: &Value) {
        let used = &mut self.used;
        let name = used.get(seg, base, &["name"]);
        let domain = used
            .get(seg, base, &["domain"])
            .or_else(|| used.get(seg, base, &["zone", "forward"]));
        let net4 = used
            .get(seg, base, &["ipv4", "network"])
            .or_else(|| used.get(seg, base, &["ipv4", "subnet"]));
        let net6 = used.get(seg, base, &["ipv6", "network"]);
        let rev4 = used
            .get(seg, base, &["zone", "reverseV4"])
            .or_else(|| net4.as_deref().and_then(reverse_zone));
        let rev6 = used
            .get(seg, base, &["zone", "reverseV6"])
            .or_else(|| net6.as_deref().and_then(reverse_zone));
        for z in [&domain, &rev4, &rev6].into_iter().flatten() {
            if !self.zones.iter().any(|o| o.eq_ignore_ascii_case(z)) {
                self.zones.push(z.clone());
            }
        }
        self.static_records(base, seg, domain.as_deref());
        if let Some(net) = &net4 {
            self.subnet(base, seg, net, name, domain.as_deref());
        }
        if let Some(up) = seg.get("upstream").and_then(Value::as_array) {
            for (j, u) in up.iter().enumerate() {
                if let Some(u) = text(u) {
                    self.used.0.insert(format!("{base}.upstream[{j}]"));
                    if !self.forwarders.contains(&u) {
                        self.forwarders.push(u);
                    }
                }
            }
        }
    }

    /// The segment's static records: its domain is their zone; TTL 3600 as before.
    fn static_records(&mut self, base: &str, seg: &Value, domain: Option<&str>) {
        let Some(list) = seg.get("staticRecords").and_then(Value::as_array) else {
            return;
        };
        for (j, r) in list.iter().enumerate() {
            let rpath = format!("{base}.staticRecords[{j}]");
            let parsed = r.as_str().and_then(split_record);
            match (parsed, domain) {
                (Some((owner, ttl, rtype, data)), Some(zone)) => {
                    self.used.0.insert(rpath);
                    let records = &mut self.records;
                    let _ = write!(
                        records,
                        "  - name: {}\n    zone: {}\n    type: {}\n",
                        q(&owner),
                        q(zone),
                        q(&rtype)
                    );
                    if let Some(t) = ttl {
                        let _ = writeln!(records, "    ttl: {t}");
                    }
                    let _ = writeln!(records, "    data: {}", q(&data));
                }
                (_, None) => self.unmapped.push((
                    rpath,
                    r.to_string(),
                    "the segment has no domain to put it in".into(),
                )),
                (None, _) => self.unmapped.push((
                    rpath,
                    r.to_string(),
                    "not a record of the form `<owner> IN <TYPE> <value>`".into(),
                )),
            }
        }
        self.used.0.insert(format!("{base}.staticRecords"));
    }

    /// The segment's DHCPv4 subnet `net`: its id (the segment's `name`), pool, options and
    /// reservations.
    fn subnet(
        &mut self,
        base: &str,
        seg: &Value,
        net: &str,
        name: Option<String>,
        domain: Option<&str>,
    ) {
        let used = &mut self.used;
        let subnets = &mut self.subnets;
        let _ = writeln!(subnets, "    - subnet: {}", q(net));
        match name.as_deref().map(str::parse::<u32>) {
            Some(Ok(id)) if id > 0 => {
                let _ = writeln!(
                    subnets,
                    "      # The original chart's Kea subnet id (the segment's name): leases refer to it.\n      id: {id}"
                );
            }
            _ => self.unmapped.push((
                format!("{base}.name"),
                name.unwrap_or_default(),
                "not a number, so not usable as Kea's subnet id: set `id` to the one the leases carry".into(),
            )),
        }
        let start = used
            .get(seg, base, &["ipv4", "dhcpRange", "start"])
            .or_else(|| used.get(seg, base, &["ipv4", "range", "start"]));
        let end = used
            .get(seg, base, &["ipv4", "dhcpRange", "end"])
            .or_else(|| used.get(seg, base, &["ipv4", "range", "end"]));
        if let (Some(s), Some(e)) = (start, end) {
            let _ = writeln!(subnets, "      pools: [{}]", q(&format!("{s} - {e}")));
        }
        if let Some(gw) = used.get(seg, base, &["ipv4", "gateway"]) {
            let _ = writeln!(subnets, "      routers: [{}]", q(&gw));
        }
        if let Some(dns) = used.get(seg, base, &["ipv4", "dns"]) {
            let _ = writeln!(subnets, "      dnsServers: [{}]", q(&dns));
        }
        if let Some(d) = domain {
            let _ = writeln!(subnets, "      domain: {}", q(d));
        }
        reservations(seg, base, used, &mut self.unmapped, subnets);
    }

    /// Every setting of `root` that no conversion used, listed as not mapped, with why.
    fn list_unused(&mut self, root: &Value) {
        let mut leaves = Vec::new();
        collect_leaves(root, String::new(), &mut leaves);
        for (p, v) in leaves {
            let covered = self.used.0.iter().any(|u| {
                p == *u || p.starts_with(&format!("{u}.")) || p.starts_with(&format!("{u}["))
            });
            if !covered && !self.unmapped.iter().any(|(up, _, _)| *up == p) {
                let why = reason(&p);
                self.unmapped.push((p, v, why.into()));
            }
        }
        self.unmapped.sort();
    }

    /// The values file for this chart, converted from `path`; `global` is appended as is.
    fn render(&self, path: &Path, global: &str) -> String {
        let mut y = format!(
            "# Values for the unified-dns-dhcp chart, converted by `dnsdhcp values convert` from\n# {}.\n# The original chart ran one StatefulSet per segment; here every segment shares one pod.\n",
            path.display()
        );
        y.push_str("zones:\n");
        for z in &self.zones {
            let _ = writeln!(y, "  - name: {}", q(z));
        }
        if self.records.is_empty() {
            y.push_str("staticRecords: []\n");
        } else {
            y.push_str("staticRecords:\n");
            y.push_str(&self.records);
        }
        if !self.subnets.is_empty() {
            y.push_str("dhcp:\n  subnets:\n");
            y.push_str(&self.subnets);
        }
        y.push_str(
            "# The original chart's Kea settings for DDNS names (fixed in its templates).\nddns:\n  replaceClientName: \"when-not-present\"\n  generatedPrefix: \"myhost\"\n",
        );
        // The original always ran a recursive resolver in front of the authoritative server.
        y.push_str("resolver:\n  enabled: true\n");
        if self.forwarders.is_empty() {
            y.push_str("  forwarders: []\n");
        } else {
            let list: Vec<String> = self.forwarders.iter().map(|f| q(f)).collect();
            let _ = writeln!(y, "  forwarders: [{}]", list.join(", "));
        }
        y.push_str(global);
        if !self.unmapped.is_empty() {
            y.push_str("# Not mapped (no counterpart in this chart):\n");
            for (p, v, why) in &self.unmapped {
                let _ = writeln!(y, "#   {p} = {v}: {why}");
            }
        }
        y
    }
}

/// `global.storage.className` and `global.imagePullSecrets`, as YAML; marked in `used`.
fn global_settings(root: &Value, used: &mut Used) -> String {
    let mut global = String::new();
    let mut g = Used::default();
    if let Some(class) = g.get(root, "", &["global", "storage", "className"]) {
        let _ = writeln!(
            global,
            "persistence:\n  zones:\n    storageClass: {c}\n  leases:\n    storageClass: {c}",
            c = q(&class)
        );
    }
    if let Some(secrets) = root
        .pointer("/global/imagePullSecrets")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        let names: Vec<String> = secrets
            .iter()
            .filter_map(|s| s.get("name").and_then(text))
            .collect();
        if !names.is_empty() {
            g.0.insert(".global.imagePullSecrets".into());
            let _ = writeln!(global, "imagePullSecrets:");
            for n in names {
                let _ = writeln!(global, "  - name: {}", q(&n));
            }
        }
    }
    used.0.extend(
        g.0.into_iter()
            .map(|p| p.trim_start_matches('.').to_owned()),
    );
    global
}

/// `staticLeases` → `reservations`.
fn reservations(
    seg: &Value,
    base: &str,
    used: &mut Used,
    unmapped: &mut Vec<(String, String, String)>,
    out: &mut String,
) {
    let Some(list) = seg.get("staticLeases").and_then(Value::as_array) else {
        return;
    };
    let mut lines = String::new();
    for (j, l) in list.iter().enumerate() {
        let lb = format!("{base}.staticLeases[{j}]");
        let mac = used.get(l, &lb, &["macAddress"]);
        let ip = used.get(l, &lb, &["address"]);
        let (Some(mac), Some(ip)) = (mac, ip) else {
            unmapped.push((
                lb,
                l.to_string(),
                "a reservation needs macAddress and address".into(),
            ));
            continue;
        };
        let _ = writeln!(
            lines,
            "        - hwAddress: {}\n          ipAddress: {}",
            q(&mac),
            q(&ip)
        );
        if let Some(h) = used.get(l, &lb, &["hostname"]) {
            let _ = writeln!(lines, "          hostname: {}", q(&h));
        }
    }
    if !lines.is_empty() {
        out.push_str("      reservations:\n");
        out.push_str(&lines);
    }
    used.0.insert(format!("{base}.staticLeases"));
}

/// Every scalar of `v` with its dotted path (`a.b[0].c`).
fn collect_leaves(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_leaves(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                collect_leaves(c, format!("{path}[{i}]"), out);
            }
        }
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        other => out.push((path, other.to_string())),
    }
}

/// Why a setting of the original chart has no counterpart here.
fn reason(path: &str) -> &'static str {
    let p = |prefix: &str| path.starts_with(prefix) || path.contains(&format!(".{prefix}"));
    if p("stork") || path.contains("storkAgent") {
        "this chart has no Stork"
    } else if p("ipv6") {
        "this chart serves DHCPv4 only (the IPv6 network gives a reverse zone)"
    } else if p("global.images") || p("global.resolver") || p("global.authDNS") {
        "this chart runs Knot, Kea and Unbound from its own pinned images"
    } else if p("global.namespace") {
        "the release namespace is given to helm (-n)"
    } else if p("network") {
        "see `network.mode` in this chart's values for how DHCP reaches the pod"
    } else if p("services") {
        "DNS and DHCP always run; `ddns.enabled` and `resolver.enabled` switch the rest"
    } else if path.contains("ipv4.dhcp") {
        "Kea's address is the pod's (see `dhcp.serverIdentifier`)"
    } else {
        "no counterpart"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_split_like_the_original_wrote_them() {
        assert_eq!(
            split_record("nas IN A 192.168.128.10"),
            Some(("nas".into(), None, "A".into(), "192.168.128.10".into()))
        );
        assert_eq!(
            split_record("txt 300 IN TXT \"two words\""),
            Some((
                "txt".into(),
                Some("300".into()),
                "TXT".into(),
                "\"two words\"".into()
            ))
        );
        assert_eq!(split_record("broken"), None);
    }
}
