//! The original chart's `restore-scripts/` archives, read as data and never executed.
//!
//! Zone scripts (`restore-<zone>.sh`) hold one line per record:
//! `knotc zone-set "<zone>" "<owner>" "<ttl>" "IN" "<TYPE>" "<rdata>" 2>/dev/null || true`, the
//! rdata as `knotc zone-read` printed it (so it may hold quotes itself); SOA and NS records were
//! left out. The lease script (`restore-leases.sh`) holds one `wget --post-data='<JSON>'` line
//! per lease, the JSON a `lease4-add` command (single quotes escaped shell-style as `'\''`).
//! Everything else in them (comments, `set -e`, `echo`, `knotc zone-begin|zone-commit`,
//! `sh ./restore-scripts/...`) carries no data; any other line is reported as not converted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use kea_leases::{EffectiveSet, EscapedText, Lease};
use knot_ctl::Client;

use crate::archive::{ArchiveKind, ArchiveWriter, Manifest, normalize_zone_name};
use crate::backup::ZONEFILES_DIR;
use crate::zones::ZoneSyncError;

use super::LegacyError;

/// A line of a script that carries data but could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unconverted {
    /// The script (archive member).
    pub script: String,
    /// The 1-based line.
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// One zone as its restore script describes it.
#[derive(Debug, Clone, Default)]
pub struct ScriptZone {
    /// The zone, absolute, lower case.
    pub name: String,
    /// Zone-file lines (`owner ttl IN TYPE rdata`, owners relative to the zone or absolute).
    pub records: Vec<String>,
}

/// What the scripts of one archive hold.
#[derive(Debug, Clone, Default)]
pub struct Scripts {
    /// Zones, by name.
    pub zones: BTreeMap<String, ScriptZone>,
    /// Leases in script order, applied as Kea would apply `lease4-add`s (first one wins).
    pub leases: Vec<Lease>,
    /// Whether a lease script was present (even one without leases).
    pub has_lease_script: bool,
    /// Lines that carry data but were not converted.
    pub unconverted: Vec<Unconverted>,
}

/// Parses every script of a `restore-scripts/` archive (`scripts`: member → content).
pub fn parse_scripts(scripts: &BTreeMap<String, Vec<u8>>) -> Scripts {
    let mut out = Scripts::default();
    for (member, data) in scripts {
        let text = String::from_utf8_lossy(data);
        let name = member.rsplit('/').next().unwrap_or(member);
        if name == "restore-leases.sh" {
            out.has_lease_script = true;
        }
        for (i, line) in text.lines().enumerate() {
            let mut bad = |reason: String| {
                out.unconverted.push(Unconverted {
                    script: member.clone(),
                    line: i + 1,
                    reason,
                })
            };
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l == "set -e" || l.starts_with("echo ") {
                continue;
            }
            if l.starts_with("knotc zone-begin ")
                || l.starts_with("knotc zone-commit ")
                || l.starts_with("sh ./restore-scripts/")
            {
                continue;
            }
            if let Some(rest) = l.strip_prefix("knotc zone-set ") {
                match parse_zone_set(rest) {
                    Ok((zone, record)) => {
                        let z = out.zones.entry(zone.clone()).or_insert_with(|| ScriptZone {
                            name: zone,
                            records: Vec::new(),
                        });
                        z.records.push(record);
                    }
                    Err(reason) => bad(reason),
                }
                continue;
            }
            if l.starts_with("wget ") && l.contains("--post-data='") {
                match parse_lease_add(l) {
                    Ok(lease) => out.leases.push(lease),
                    Err(reason) => bad(reason),
                }
                continue;
            }
            bad(format!("not a line the original scripts write: {l}"));
        }
    }
    out
}

/// `"<zone>" "<owner>" "<ttl>" "IN" "<TYPE>" "<rdata>" 2>/dev/null || true` → (zone, zone-file
/// line). The rdata is everything between the sixth opening quote and the closing one before
/// the redirection, as Knot printed it.
fn parse_zone_set(rest: &str) -> Result<(String, String), String> {
    let body = rest
        .strip_suffix("2>/dev/null || true")
        .unwrap_or(rest)
        .trim_end();
    let body = body
        .strip_prefix('"')
        .and_then(|b| b.strip_suffix('"'))
        .ok_or("zone-set arguments are not quoted as the original script writes them")?;
    let parts: Vec<&str> = body.splitn(6, "\" \"").collect();
    let [zone, owner, ttl, class, rtype, rdata] = parts[..] else {
        return Err("zone-set needs zone, owner, TTL, class, type and data".into());
    };
    let ttl: u32 = ttl
        .parse()
        .map_err(|_| format!("TTL {ttl:?} is not a number"))?;
    if !class.eq_ignore_ascii_case("IN") {
        return Err(format!("class {class} is not IN"));
    }
    if rtype.eq_ignore_ascii_case("SOA") || rtype.eq_ignore_ascii_case("NS") {
        // The original script never wrote them; the target zone keeps its own.
        return Err(format!("{rtype} records are kept from the target zone"));
    }
    if owner.is_empty() || owner.contains(char::is_whitespace) || zone.is_empty() {
        return Err(format!("invalid owner {owner:?} or zone {zone:?}"));
    }
    Ok((
        normalize_zone_name(zone),
        format!("{owner} {ttl} IN {rtype} {rdata}"),
    ))
}

/// A `wget ... --post-data='<JSON>' ...` line → the lease of its `lease4-add` command.
fn parse_lease_add(line: &str) -> Result<Lease, String> {
    let start = line.find("--post-data='").expect("checked by the caller") + 13;
    // The JSON ends at the first single quote not part of a `'\''` escape.
    let rest = &line[start..];
    let mut json = String::new();
    let mut i = 0;
    let bytes = rest.as_bytes();
    loop {
        match rest[i..].find('\'') {
            None => return Err("unterminated --post-data".into()),
            Some(j) => {
                json.push_str(&rest[i..i + j]);
                i += j;
                if bytes[i..].starts_with(b"'\\''") {
                    json.push('\'');
                    i += 4;
                } else {
                    break;
                }
            }
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("invalid JSON: {e}"))?;
    if v["command"] != "lease4-add" {
        return Err(format!("command {} is not lease4-add", v["command"]));
    }
    lease_from_arguments(&v["arguments"])
}

/// A memfile lease from `lease4-add` arguments (as the original script wrote them from
/// `lease4-get-all`): `expire` = `cltt` + `valid-lft`; strings back to Kea's bytes.
fn lease_from_arguments(a: &serde_json::Value) -> Result<Lease, String> {
    let str_field = |k: &str| a[k].as_str();
    let num = |k: &str| -> Result<u64, String> {
        a[k].as_u64()
            .ok_or_else(|| format!("`{k}` missing or not a number"))
    };
    let address: Ipv4Addr = str_field("ip-address")
        .ok_or("`ip-address` missing")?
        .parse()
        .map_err(|_| "`ip-address` is not an IPv4 address".to_owned())?;
    let hex = |k: &str| -> Result<Vec<u8>, String> {
        let s = str_field(k).unwrap_or("");
        if s.is_empty() {
            return Ok(Vec::new());
        }
        s.split(':')
            .map(|t| u8::from_str_radix(t, 16).map_err(|_| format!("`{k}` {s:?} is not colon hex")))
            .collect()
    };
    let valid = u32::try_from(num("valid-lft")?).map_err(|_| "`valid-lft` too large")?;
    let cltt = num("cltt")?;
    // JSON.stringify wrote the hostname's characters; Kea's bytes are their code points
    // (Kea escapes bytes as \u00XX), UTF-8 only beyond U+00FF.
    let hostname: Vec<u8> = match str_field("hostname").unwrap_or("") {
        s if s.chars().all(|c| (c as u32) < 0x100) => s.chars().map(|c| c as u8).collect(),
        s => s.as_bytes().to_vec(),
    };
    let lease = Lease {
        address,
        hwaddr: hex("hw-address")?,
        client_id: hex("client-id")?,
        valid_lifetime: valid,
        expire: cltt + u64::from(valid),
        subnet_id: u32::try_from(num("subnet-id")?).map_err(|_| "`subnet-id` too large")?,
        fqdn_fwd: a["fqdn-fwd"].as_bool().unwrap_or(false),
        fqdn_rev: a["fqdn-rev"].as_bool().unwrap_or(false),
        hostname: EscapedText::encode(&hostname),
        state: u32::try_from(a["state"].as_u64().unwrap_or(0)).map_err(|_| "`state` too large")?,
        user_context: EscapedText::encode(b""),
        pool_id: 0,
        extra: Vec::new(),
    };
    lease.validate().map_err(|e| e.to_string())?;
    Ok(lease)
}

/// The zone file of a script zone: `$ORIGIN`, then its records; no SOA, no NS.
pub fn zone_file(z: &ScriptZone) -> Vec<u8> {
    let mut text = format!("$ORIGIN {}\n", z.name);
    for r in &z.records {
        text.push_str(r);
        text.push('\n');
    }
    text.into_bytes()
}

/// Writes the project archives for `scripts` into `out_dir`: `zones.tar.gz`-style zone files
/// (marked to keep the target's SOA and NS) as `<stem>-zones.tar.gz`, leases as
/// `<stem>-leases.tar.gz`. Every zone file is parsed on the way; a record that does not parse
/// fails the import naming the script line's record.
pub fn write_imported(
    scripts: &Scripts,
    source: &str,
    zones_out: &Path,
    leases_out: &Path,
) -> Result<Vec<(std::path::PathBuf, Manifest)>, LegacyError> {
    let mut written = Vec::new();
    if !scripts.zones.is_empty() {
        let mut w = ArchiveWriter::create(zones_out, ArchiveKind::Zones, source)?;
        for z in scripts.zones.values() {
            let member = format!("{ZONEFILES_DIR}/{}zone", z.name);
            w.add_zone_bytes_without_apex(&member, &z.name, &zone_file(z), 0o644)?;
        }
        written.push((zones_out.to_owned(), w.finish()?));
    }
    if scripts.has_lease_script {
        // lease4-add refuses an address that already has a lease: the first one wins.
        let mut set = EffectiveSet::default();
        for l in &scripts.leases {
            if !set.leases.contains_key(&l.address) {
                set.apply(l.clone());
            }
        }
        let mut data = Vec::new();
        set.write_to(&mut data)
            .map_err(|e| crate::archive::ArchiveError::io(leases_out, e))?;
        let mut w = ArchiveWriter::create(leases_out, ArchiveKind::Leases, source)?;
        w.add_lease_bytes("kea-leases4.csv", &data, 0o644)?;
        written.push((leases_out.to_owned(), w.finish()?));
    }
    Ok(written)
}

/// Puts the target zone's SOA and NS records in front of an imported zone file, so that
/// restoring it keeps them, as the original restore did (the restore then moves the serial
/// past the served one).
pub fn with_target_apex<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    data: &[u8],
) -> Result<Vec<u8>, ZoneSyncError> {
    let knot = |source| ZoneSyncError::Knot {
        zone: zone.to_owned(),
        context: "zone-read".into(),
        source,
    };
    let mut head = String::new();
    for r in client.zone_read(zone, None, None).map_err(knot)? {
        let r = r.map_err(knot)?;
        if r.rtype.eq_ignore_ascii_case("SOA") || r.rtype.eq_ignore_ascii_case("NS") {
            let ttl = r.ttl.unwrap_or(3600);
            head.push_str(&format!("{} {ttl} IN {} {}\n", r.owner, r.rtype, r.data));
        }
    }
    let mut out = head.into_bytes();
    out.extend_from_slice(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_set_lines_keep_rdata_as_knot_printed_it() {
        let (z, r) = parse_zone_set(
            r#""home.test." "txt" "300" "IN" "TXT" ""two words" "x"" 2>/dev/null || true"#,
        )
        .unwrap();
        assert_eq!(z, "home.test.");
        assert_eq!(r, r#"txt 300 IN TXT "two words" "x""#);
        let (_, r) = parse_zone_set(
            r#""home.test." "home.test." "3600" "IN" "MX" "10 mail.home.test." 2>/dev/null || true"#,
        )
        .unwrap();
        assert_eq!(r, "home.test. 3600 IN MX 10 mail.home.test.");
        assert!(parse_zone_set(r#""z." "a" "x" "IN" "A" "1.2.3.4""#).is_err());
        assert!(parse_zone_set(r#""z." "@" "1" "IN" "NS" "ns.z.""#).is_err());
    }

    #[test]
    fn lease_lines_unescape_quotes_and_keep_hostname_bytes() {
        let line = r#"wget -q -O /dev/null --post-data='{"command":"lease4-add","service":["dhcp4"],"arguments":{"ip-address":"10.0.0.5","hw-address":"02:00:00:00:00:05","subnet-id":128,"valid-lft":3600,"cltt":1700000000,"fqdn-fwd":true,"fqdn-rev":false,"hostname":"o'\''neil-é","state":0,"client-id":"01:02"}}' --header='Content-Type: application/json' http://127.0.0.1:8000/ 2>/dev/null || echo "  Warning: Failed to add lease 10.0.0.5""#;
        let l = parse_lease_add(line).unwrap();
        assert_eq!(l.address, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(l.subnet_id, 128);
        assert_eq!(l.expire, 1_700_003_600);
        assert_eq!(l.client_id, vec![1, 2]);
        assert_eq!(l.hostname.decode(), b"o'neil-\xe9");
        assert!(l.fqdn_fwd && !l.fqdn_rev);
    }
}
