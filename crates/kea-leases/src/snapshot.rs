//! Consistent snapshots of a live lease directory, safe against a concurrent LFC rotation.
//!
//! A [`Snapshot`] holds open file descriptors for exactly the files Kea would load (never
//! `.pid`) and the length of each to use. The file set is taken only when two listings taken
//! before and after opening agree (same names, same inodes, unchanged sizes of the files Kea
//! no longer writes); otherwise it retries. While a live `kea-lfc` holds the `.pid` file it
//! waits (bounded) for it to finish. The current file is cut after its last line feed, so a
//! row Kea is still appending is left out.
//!
//! Because LFC only ever creates new files and renames or unlinks old ones, and Kea only
//! appends to the current file, the open descriptors keep describing that moment for as long
//! as the snapshot lives: reading can take its time. Memory stays bounded: parts are streamed,
//! and [`Snapshot::compact`] keeps only a 24-byte index entry per effective lease and writes
//! in chunks of bounded size.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::csv::{Header, LeaseReader, ParseError, ReadError, RowError, check_row, parse_row};
use crate::load::{Role, pid_path, roles_to_load};

/// How a snapshot waits and retries.
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// How long to wait for a running `kea-lfc` to finish before snapshotting anyway (the
    /// listing check alone is still consistent; waiting just avoids churn).
    pub lfc_wait: Duration,
    /// How many times to retry when the listing changed between checks.
    pub max_attempts: u32,
    /// Pause between attempts.
    pub retry_delay: Duration,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            lfc_wait: Duration::from_secs(120),
            max_attempts: 200,
            retry_delay: Duration::from_millis(20),
        }
    }
}

/// Errors taking or reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Listing, opening or reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The files kept changing (LFC rotations) for every attempt.
    #[error("lease files of {} kept changing over {attempts} attempts", lease_file.display())]
    Unstable {
        /// The lease file.
        lease_file: PathBuf,
        /// Attempts made.
        attempts: u32,
    },
    /// A file in the set has a header Kea would not accept.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One file of a snapshot: its role, name, and how many bytes of it belong to the snapshot.
#[derive(Debug)]
pub struct Part {
    /// The role in Kea's rotation.
    pub role: Role,
    /// The file's path when the snapshot was taken.
    pub path: PathBuf,
    /// Bytes that belong to the snapshot (the current file is cut after its last line feed).
    pub len: u64,
    /// Bytes the file had (more than `len` if a torn final row was left out).
    pub file_len: u64,
    file: File,
}

impl Part {
    /// The file name (e.g. `kea-leases4.csv.2`), as it must be restored.
    pub fn file_name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Reads the snapshot's bytes of this part (independent of other readers).
    pub fn reader(&self) -> PartReader<'_> {
        PartReader {
            file: &self.file,
            pos: 0,
            end: self.len,
        }
    }
}

/// A [`Read`] over the snapshot's bytes of one part (positioned reads on the open descriptor).
pub struct PartReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "lease file shrank under the snapshot",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
}

fn stat(path: &Path) -> Result<Option<Stat>, SnapshotError> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

const ROLES: [Role; 4] = [
    Role::Completed,
    Role::Previous,
    Role::Rotated,
    Role::Current,
];

fn listing(lease_file: &Path) -> Result<[Option<Stat>; 4], SnapshotError> {
    let mut out = [None; 4];
    for (i, r) in ROLES.iter().enumerate() {
        out[i] = stat(&r.path_for(lease_file))?;
    }
    Ok(out)
}

/// Whether `X.pid` names a live `kea-lfc` process (a stale PID file, or one naming another
/// program, does not count). Only PIDs visible in this PID namespace can be checked.
pub fn lfc_running(lease_file: &Path) -> bool {
    let Ok(text) = fs::read_to_string(pid_path(lease_file)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "kea-lfc",
        Err(_) => false,
    }
}

/// Length of `file` up to and including its last line feed, scanning back from `size`.
fn complete_len(file: &File, size: u64) -> io::Result<u64> {
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// A consistent view of the lease files Kea would load, held open.
#[derive(Debug)]
pub struct Snapshot {
    lease_file: PathBuf,
    parts: Vec<Part>,
    attempts: u32,
}

impl Snapshot {
    /// Takes a snapshot of lease file `lease_file` (the `lease-database.name` path) with
    /// default options.
    pub fn take(lease_file: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        Self::take_with(lease_file, &SnapshotOptions::default())
    }

    /// Takes a snapshot with explicit wait/retry options.
    pub fn take_with(
        lease_file: impl AsRef<Path>,
        opts: &SnapshotOptions,
    ) -> Result<Self, SnapshotError> {
        let lease_file = lease_file.as_ref().to_owned();
        let lfc_deadline = Instant::now() + opts.lfc_wait;
        let mut attempts = 0;
        loop {
            if lfc_running(&lease_file) && Instant::now() < lfc_deadline {
                thread::sleep(opts.retry_delay);
                continue;
            }
            attempts += 1;
            if let Some(parts) = Self::attempt(&lease_file)? {
                return Ok(Self {
                    lease_file,
                    parts,
                    attempts,
                });
            }
            if attempts >= opts.max_attempts {
                return Err(SnapshotError::Unstable {
                    lease_file,
                    attempts,
                });
            }
            thread::sleep(opts.retry_delay);
        }
    }

    /// One attempt: list, open, list again; `None` if anything moved.
    fn attempt(lease_file: &Path) -> Result<Option<Vec<Part>>, SnapshotError> {
        let before = listing(lease_file)?;
        let roles = roles_to_load(|r| before[role_index(r)].is_some());
        let mut opened = Vec::with_capacity(roles.len());
        for role in roles {
            let path = role.path_for(lease_file);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&path)(e)),
            };
            let m = file.metadata().map_err(io_err(&path))?;
            let st = before[role_index(role)].expect("listed");
            if (m.dev(), m.ino()) != (st.dev, st.ino) {
                return Ok(None);
            }
            opened.push((role, path, file));
        }
        let after = listing(lease_file)?;
        for i in 0..4 {
            let same = match (before[i], after[i]) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    (a.dev, a.ino) == (b.dev, b.ino)
                        && (ROLES[i] == Role::Current || a.size == b.size)
                }
                _ => false,
            };
            if !same {
                return Ok(None);
            }
        }
        let mut parts = Vec::with_capacity(opened.len());
        for (role, path, file) in opened {
            let file_len = file.metadata().map_err(io_err(&path))?.len();
            let len = if role == Role::Current {
                complete_len(&file, file_len).map_err(io_err(&path))?
            } else {
                file_len
            };
            if role == Role::Current && len == 0 {
                // Kea is (re)creating the file: nothing to load from it yet.
                continue;
            }
            parts.push(Part {
                role,
                path,
                len,
                file_len,
                file,
            });
        }
        Ok(Some(parts))
    }

    /// The lease file this snapshot is of.
    pub fn lease_file(&self) -> &Path {
        &self.lease_file
    }

    /// The files, in Kea's load order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// How many attempts it took (more than 1 means a rotation was seen and waited out).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Total bytes over all parts.
    pub fn total_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// Writes every part into `dir` under its own file name (never a `.pid`), as Kea must find
    /// them on restore.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut out = Vec::new();
        for p in &self.parts {
            let dest = dir.join(p.file_name());
            let mut f = File::create(&dest).map_err(io_err(&dest))?;
            io::copy(&mut p.reader(), &mut f).map_err(io_err(&dest))?;
            f.sync_all().map_err(io_err(&dest))?;
            out.push(dest);
        }
        Ok(out)
    }

    /// Builds the compacted form (the effective set as LFC would write it): one pass over all
    /// parts, validating every row; malformed rows are reported in [`Compacted::errors`].
    pub fn compact(&self) -> Result<Compacted<'_>, SnapshotError> {
        Compacted::build(self)
    }
}

fn role_index(r: Role) -> usize {
    ROLES.iter().position(|&x| x == r).expect("known role")
}

/// A fast hasher for `u32` keys (Fibonacci hashing); addresses are not attacker-chosen keys
/// that could hurt us here beyond a slower snapshot.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    off: u64,
    /// Output length of the row without its line feed.
    len: u32,
    part: u8,
}

/// The effective lease set of a [`Snapshot`], as LFC would write it: one header, then one row
/// per lease sorted by address; replaced and deleted rows dropped, expired rows kept. Rows are
/// copied verbatim from the snapshot (re-serialised only if their file has another header).
pub struct Compacted<'a> {
    snapshot: &'a Snapshot,
    header: Header,
    /// Which parts' rows must be re-serialised for `header`.
    reserialize: Vec<bool>,
    headers: Vec<Option<Header>>,
    index: Vec<(u32, Loc)>,
    errors: Vec<RowError>,
    rows: u64,
}

/// Bytes of output assembled in memory at a time.
const CHUNK: u64 = 16 << 20;

impl<'a> Compacted<'a> {
    fn build(snapshot: &'a Snapshot) -> Result<Self, SnapshotError> {
        let mut map: HashMap<u32, Loc, BuildHasherDefault<AddrHasher>> = HashMap::default();
        let mut headers = Vec::with_capacity(snapshot.parts.len());
        let mut errors = Vec::new();
        let mut rows = 0;
        // The output header: that of the last part with one (the file Kea wrote itself).
        let mut out_header: Option<Header> = None;
        for p in &snapshot.parts {
            let reader = LeaseReader::new(BufReader::with_capacity(1 << 18, p.reader()), &p.path)?;
            if let Some(h) = reader.header() {
                out_header = Some(h.clone());
            }
            headers.push(reader.header().cloned());
        }
        let header = out_header.unwrap_or_default();
        let reserialize: Vec<bool> = headers
            .iter()
            .map(|h| h.as_ref().is_some_and(|h| *h != header))
            .collect();
        for (pi, p) in snapshot.parts.iter().enumerate() {
            let mut input = BufReader::with_capacity(1 << 18, p.reader());
            let Some(part_header) = headers[pi].clone() else {
                continue;
            };
            // Skip the header line (already validated).
            let mut line = Vec::with_capacity(512);
            let mut off = input
                .read_until(b'\n', &mut line)
                .map_err(io_err(&p.path))? as u64;
            let mut line_no = 1u64;
            let mut out_row = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(io_err(&p.path))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                let row_off = off;
                off += n as u64;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if line.is_empty() {
                    continue;
                }
                let key = match check_row(&part_header, &line) {
                    Ok(k) => k,
                    Err(kind) => {
                        errors.push(RowError {
                            file: p.path.clone(),
                            line: line_no,
                            kind,
                        });
                        continue;
                    }
                };
                rows += 1;
                let addr = u32::from(key.address);
                if key.valid_lifetime == 0 {
                    map.remove(&addr);
                    continue;
                }
                let len = if reserialize[pi] {
                    out_row.clear();
                    parse_row(&part_header, &line)
                        .expect("checked row parses")
                        .write_row(&header, &mut out_row);
                    out_row.len()
                } else {
                    line.len()
                };
                let len = u32::try_from(len).map_err(|_| SnapshotError::Io {
                    path: p.path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, "row longer than 4 GiB"),
                })?;
                map.insert(
                    addr,
                    Loc {
                        off: row_off,
                        len,
                        part: pi as u8,
                    },
                );
            }
        }
        let mut index: Vec<(u32, Loc)> = map.into_iter().collect();
        index.sort_unstable_by_key(|e| e.0);
        Ok(Self {
            snapshot,
            header,
            reserialize,
            headers,
            index,
            errors,
            rows,
        })
    }

    /// The header the compacted file is written with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of effective leases.
    pub fn lease_count(&self) -> usize {
        self.index.len()
    }

    /// The effective addresses, sorted.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.index.iter().map(|e| Ipv4Addr::from(e.0))
    }

    /// Valid rows read over all parts (including replaced and deleting rows).
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// Malformed rows (file and line); Kea skips them, so they are not in the output.
    pub fn errors(&self) -> &[RowError] {
        &self.errors
    }

    /// Exact size in bytes of the compacted file (known before writing, e.g. for a tar header).
    pub fn len(&self) -> u64 {
        self.header.to_line().len() as u64
            + 1
            + self
                .index
                .iter()
                .map(|e| u64::from(e.1.len) + 1)
                .sum::<u64>()
    }

    /// Always false: the file has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the compacted file to `out`. Output is assembled in chunks of at most 16 MiB (or
    /// one row, if longer), each read from the snapshot in file order.
    pub fn write_to(&self, mut out: impl Write) -> Result<(), SnapshotError> {
        let head = format!("{}\n", self.header.to_line());
        out.write_all(head.as_bytes())
            .map_err(io_err(self.snapshot.lease_file()))?;
        let parts = &self.snapshot.parts;
        let mut buf: Vec<u8> = Vec::new();
        let mut order: Vec<(u8, u64, usize, u32)> = Vec::new();
        let mut raw = Vec::new();
        let mut start = 0;
        while start < self.index.len() {
            // Choose the chunk [start, end) by output size.
            let mut end = start;
            let mut size = 0u64;
            while end < self.index.len() {
                let l = u64::from(self.index[end].1.len) + 1;
                if size > 0 && size + l > CHUNK {
                    break;
                }
                size += l;
                end += 1;
            }
            buf.clear();
            buf.resize(size as usize, b'\n');
            order.clear();
            let mut pos = 0usize;
            for (_, loc) in &self.index[start..end] {
                order.push((loc.part, loc.off, pos, loc.len));
                pos += loc.len as usize + 1;
            }
            order.sort_unstable_by_key(|o| (o.0, o.1));
            let mut readers: Vec<Window> = parts.iter().map(Window::new).collect();
            for &(part, off, pos, len) in &order {
                let pi = usize::from(part);
                let dest = &mut buf[pos..pos + len as usize];
                if self.reserialize[pi] {
                    // The stored row has another schema: read it (its own length) and rewrite.
                    raw.clear();
                    readers[pi]
                        .read_line(off, &mut raw)
                        .map_err(io_err(&parts[pi].path))?;
                    let h = self.headers[pi]
                        .as_ref()
                        .expect("part with rows has a header");
                    let lease = parse_row(h, &raw).map_err(|kind| SnapshotError::Io {
                        path: parts[pi].path.clone(),
                        source: io::Error::new(io::ErrorKind::InvalidData, kind.to_string()),
                    })?;
                    let mut row = Vec::with_capacity(len as usize);
                    lease.write_row(&self.header, &mut row);
                    dest.copy_from_slice(&row);
                } else {
                    readers[pi]
                        .read_exact(off, dest)
                        .map_err(io_err(&parts[pi].path))?;
                }
            }
            out.write_all(&buf)
                .map_err(io_err(self.snapshot.lease_file()))?;
            start = end;
        }
        Ok(())
    }
}

/// Forward-moving window over one part, for reads sorted by offset.
struct Window<'a> {
    part: &'a Part,
    buf: Vec<u8>,
    start: u64,
}

const WINDOW: usize = 256 * 1024;

impl<'a> Window<'a> {
    fn new(part: &'a Part) -> Self {
        Self {
            part,
            buf: Vec::new(),
            start: 0,
        }
    }

    fn fill(&mut self, off: u64, min: usize) -> io::Result<()> {
        let avail = self.part.len.saturating_sub(off) as usize;
        let n = WINDOW.max(min).min(avail);
        if n < min {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "row beyond the snapshot",
            ));
        }
        self.buf.resize(n, 0);
        self.part.file.read_exact_at(&mut self.buf, off)?;
        self.start = off;
        Ok(())
    }

    fn read_exact(&mut self, off: u64, dest: &mut [u8]) -> io::Result<()> {
        let end = off + dest.len() as u64;
        if off < self.start || end > self.start + self.buf.len() as u64 {
            self.fill(off, dest.len())?;
        }
        let s = (off - self.start) as usize;
        dest.copy_from_slice(&self.buf[s..s + dest.len()]);
        Ok(())
    }

    fn read_line(&mut self, off: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let mut reader = BufReader::new(PartReader {
            file: &self.part.file,
            pos: off,
            end: self.part.len,
        });
        reader.read_until(b'\n', out)?;
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        Ok(())
    }
}

impl ReadError {
    /// The row error, if this is one.
    pub fn as_row(&self) -> Option<&RowError> {
        match self {
            ReadError::Row(e) => Some(e),
            ReadError::Io { .. } => None,
        }
    }
}
