//! The manifest stored inside every archive.

use serde::{Deserialize, Serialize};

/// The archive member that holds the JSON manifest; always the last entry written.
pub const MANIFEST_NAME: &str = "MANIFEST.json";

/// The manifest format this code writes; readers refuse newer formats.
pub const FORMAT_VERSION: u32 = 1;

/// What an archive contains, so restore can tell a full Knot backup from a zone-file set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    /// Knot's whole backup directory (label, zone files, timers, keys, journal).
    ZonesFull,
    /// Zone files only, the form the post-start role restores.
    Zones,
    /// Kea memfile lease files.
    Leases,
}

impl std::fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArchiveKind::ZonesFull => "zones-full",
            ArchiveKind::Zones => "zones",
            ArchiveKind::Leases => "leases",
        })
    }
}

/// One regular file in the archive: its member path, size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the archive, `/`-separated, relative, normalised.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// Facts about one zone file, checked again by `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneFacts {
    /// The zone's name, absolute, lower case, with the trailing dot (`example.com.`).
    pub name: String,
    /// The archive member holding the zone file.
    pub file: String,
    /// The SOA serial.
    pub serial: u32,
    /// Number of resource records in the file (the SOA included).
    pub records: u64,
    /// The file carries no SOA and no NS records (converted from the original chart's restore
    /// scripts, which left them out): a restore keeps the target zone's SOA and NS records (its
    /// serial moving forward). `serial` is then 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apex_from_target: bool,
}

/// Facts about one Kea memfile lease file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFileFacts {
    /// The archive member holding the lease file.
    pub file: String,
    /// Number of lease rows (header excluded).
    pub rows: u64,
    /// Number of distinct leases (addresses) those rows describe.
    pub leases: u64,
}

/// The manifest: what the archive is, where it came from, and what every member must contain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Version of the `dnsdhcp` that wrote the archive.
    pub tool_version: String,
    /// When the archive was written (UTC).
    #[serde(with = "timestamp_rfc3339")]
    pub created: jiff::Timestamp,
    /// Where the data came from, e.g. `local:host1` or `statefulset:dns-dhcp/unified-dns-dhcp`.
    pub source: String,
    /// What the archive contains.
    pub kind: ArchiveKind,
    /// Every regular file in the archive except the manifest, in archive order.
    pub files: Vec<FileEntry>,
    /// Every zone file, with its SOA serial and record count.
    #[serde(default)]
    pub zones: Vec<ZoneFacts>,
    /// Every lease file, with its row and lease counts.
    #[serde(default)]
    pub lease_files: Vec<LeaseFileFacts>,
    /// Total number of leases over all lease files.
    #[serde(default)]
    pub lease_count: u64,
}

impl Manifest {
    /// The recorded entry for a member path, if any.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Total number of resource records over all zones.
    pub fn record_count(&self) -> u64 {
        self.zones.iter().map(|z| z.records).sum()
    }
}

mod timestamp_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_round_trip_and_kind_names() {
        let m = Manifest {
            format: FORMAT_VERSION,
            tool_version: "0.1.0".into(),
            created: "2026-01-02T03:04:05Z".parse().unwrap(),
            source: "local:h".into(),
            kind: ArchiveKind::ZonesFull,
            files: vec![FileEntry {
                path: "a".into(),
                size: 1,
                sha256: "00".into(),
            }],
            zones: vec![],
            lease_files: vec![],
            lease_count: 0,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"kind\":\"zones-full\""), "{json}");
        assert!(
            json.contains("\"created\":\"2026-01-02T03:04:05Z\""),
            "{json}"
        );
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
