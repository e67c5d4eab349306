//! Where Knot keeps a zone's data, read from the running server's configuration (`conf-read`),
//! and how much room a `zone-backup` of it needs.
//!
//! knotd 3.2 crashes (SIGBUS) when the file system fills up while it writes a backup, so a
//! backup checks the room first: the zone files as they are on disk plus the databases the
//! backup copies (journal, timers, KASP, catalog). Unset options take Knot's defaults
//! (`/var/lib/knot`, `%s.zone`, `journal`, `timers`, `keys`, `catalog`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use knot_ctl::Client;
use knot_ctl::codec::{Item, Items, Unit};

/// Knot's compiled-in storage directory (Debian and the upstream image).
pub const DEFAULT_STORAGE: &str = "/var/lib/knot";

/// The values of `section[id].item` in the running configuration (empty when unset).
pub fn conf_values<S: Read + Write>(
    client: &mut Client<S>,
    section: &str,
    id: Option<&str>,
    item: &str,
) -> Result<Vec<String>, knot_ctl::Error> {
    let req = Items::command("conf-read")
        .with(Item::Section, section)
        .with_opt(Item::Id, id)
        .with(Item::Item, item);
    let mut out = Vec::new();
    for unit in client.call(&[req])? {
        if let Unit::Data(i) | Unit::Extra(i) = unit {
            if i.has(Item::Error) {
                return Err(knot_ctl::Error::from_server(i));
            }
            if let Some(v) = i.text(Item::Data) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

fn first<S: Read + Write>(
    client: &mut Client<S>,
    section: &str,
    id: Option<&str>,
    item: &str,
) -> Result<Option<String>, knot_ctl::Error> {
    Ok(conf_values(client, section, id, item)?.into_iter().next())
}

/// `path` relative to `base` unless absolute.
fn under(base: &Path, path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        base.join(path)
    }
}

/// Every value of `section` in the running configuration: (identifier, item) -> first value.
pub fn conf_section<S: Read + Write>(
    client: &mut Client<S>,
    section: &str,
) -> Result<BTreeMap<(String, String), String>, knot_ctl::Error> {
    let req = Items::command("conf-read").with(Item::Section, section);
    let mut out = BTreeMap::new();
    for unit in client.call(&[req])? {
        if let Unit::Data(i) | Unit::Extra(i) = unit {
            if i.has(Item::Error) {
                return Err(knot_ctl::Error::from_server(i));
            }
            let id = i.text(Item::Id).unwrap_or_default().to_ascii_lowercase();
            if let (Some(item), Some(v)) = (i.text(Item::Item), i.text(Item::Data)) {
                out.entry((id, item)).or_insert(v);
            }
        }
    }
    Ok(out)
}

/// The zone file of `zone` as Knot's `file` option names it (`%s`: the zone name without its
/// trailing dot, `/` as `_`), from the `zone` and `template` sections ([`conf_section`]);
/// `None` for formats this does not expand.
pub fn zone_file_path(
    zones: &BTreeMap<(String, String), String>,
    templates: &BTreeMap<(String, String), String>,
    zone: &str,
) -> Option<PathBuf> {
    let key = zone.to_ascii_lowercase();
    let get = |map: &BTreeMap<(String, String), String>, id: &str, item: &str| {
        map.get(&(id.to_owned(), item.to_owned())).cloned()
    };
    let template = get(zones, &key, "template").unwrap_or_else(|| "default".into());
    let file = get(zones, &key, "file")
        .or_else(|| get(templates, &template, "file"))
        .unwrap_or_else(|| "%s.zone".into());
    let storage = get(zones, &key, "storage")
        .or_else(|| get(templates, &template, "storage"))
        .unwrap_or_else(|| DEFAULT_STORAGE.into());
    let name = zone
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .replace('/', "_");
    let mut expanded = String::new();
    let mut chars = file.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => expanded.push_str(&name),
            Some('%') => expanded.push('%'),
            _ => return None,
        }
    }
    Some(under(Path::new(&storage), &expanded))
}

/// The database directories a backup copies: journal, timers, KASP and catalog.
pub fn database_dirs<S: Read + Write>(
    client: &mut Client<S>,
) -> Result<Vec<PathBuf>, knot_ctl::Error> {
    let storage =
        first(client, "database", None, "storage")?.unwrap_or_else(|| DEFAULT_STORAGE.into());
    let storage = PathBuf::from(storage);
    let mut out = Vec::new();
    for (item, default) in [
        ("journal-db", "journal"),
        ("timer-db", "timers"),
        ("kasp-db", "keys"),
        ("catalog-db", "catalog"),
    ] {
        let p = first(client, "database", None, item)?.unwrap_or_else(|| default.into());
        out.push(under(&storage, &p));
    }
    Ok(out)
}

/// Bytes allocated to the files under `path` (0 when it does not exist).
pub fn allocated(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| allocated(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// An upper estimate of what `zone-backup` of `zones` writes: their zone files on disk (the
/// backup writes them afresh from memory, about the same size) and the databases it copies.
pub fn backup_size<S: Read + Write>(
    client: &mut Client<S>,
    zones: &[String],
) -> Result<u64, knot_ctl::Error> {
    let zone_conf = conf_section(client, "zone")?;
    let templates = conf_section(client, "template")?;
    let mut total = 0;
    for zone in zones {
        if let Some(p) = zone_file_path(&zone_conf, &templates, zone) {
            total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
    }
    for dir in database_dirs(client)? {
        total += allocated(&dir);
    }
    Ok(total)
}

/// Bytes available to an unprivileged writer in the file system holding `dir`.
pub fn available(dir: &Path) -> std::io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is written by statvfs on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A byte count for people: `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
