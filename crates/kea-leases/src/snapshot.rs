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
//! and [`Snapshot::compact`] keeps only a 16-byte index entry per row (parsed on all cores) and
//! writes in chunks of bounded size.

use std::fs::{self, File};
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
        // A missing directory is a misconfiguration, not an empty lease set.
        let dir = match lease_file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::metadata(&dir).map_err(io_err(&dir))?;
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

/// One valid row seen while indexing, packed into 16 bytes (the whole index of a compaction
/// is one of these per row, so its size is the memory cost per lease).
#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: u32,
    /// Output length of the row without its line feed.
    len: u32,
    /// Offset in its part (bits 0..56), the part's index (56..58), `REWRITE`, `DELETED`.
    packed: u64,
}

const OFF_BITS: u32 = 56;
/// The row must be re-serialised (other header, or not as LFC would write it).
const REWRITE: u64 = 1 << 58;
/// The row deletes its address (valid lifetime 0).
const DELETED: u64 = 1 << 59;
/// (part, offset): the load order of rows within one address.
const ORDER_MASK: u64 = (1 << 58) - 1;

impl Entry {
    fn new(addr: u32, len: u32, part: usize, off: u64, rewrite: bool, deleted: bool) -> Self {
        debug_assert!(off < 1 << OFF_BITS && part < 4);
        let mut packed = off | (part as u64) << OFF_BITS;
        if rewrite {
            packed |= REWRITE;
        }
        if deleted {
            packed |= DELETED;
        }
        Self { addr, len, packed }
    }

    fn off(self) -> u64 {
        self.packed & ((1 << OFF_BITS) - 1)
    }

    fn part(self) -> usize {
        ((self.packed >> OFF_BITS) & 3) as usize
    }

    fn rewrite(self) -> bool {
        self.packed & REWRITE != 0
    }

    fn deleted(self) -> bool {
        self.packed & DELETED != 0
    }
}

/// A byte range of one part, parsed by one thread.
struct Piece {
    part: usize,
    start: u64,
    end: u64,
}

/// What a thread found in one piece.
#[derive(Default)]
struct PieceResult {
    entries: Vec<Entry>,
    /// Errors with line numbers relative to the piece's first line (0-based).
    errors: Vec<RowError>,
    /// Lines in the piece (blank ones included).
    lines: u64,
    rows: u64,
}

/// Pieces of at least this many bytes are parsed in parallel.
const PIECE: u64 = 8 << 20;

/// The effective lease set of a [`Snapshot`], as LFC would write it: one header, then one row
/// per lease sorted by address; replaced and deleted rows dropped, expired rows kept. Rows are
/// copied verbatim from the snapshot (re-serialised only if their file has another header).
pub struct Compacted<'a> {
    snapshot: &'a Snapshot,
    header: Header,
    headers: Vec<Option<Header>>,
    /// The effective rows, sorted by address: one entry per lease.
    index: Vec<Entry>,
    errors: Vec<RowError>,
    rows: u64,
}

/// Bytes of output assembled in memory at a time.
const CHUNK: u64 = 4 << 20;

impl<'a> Compacted<'a> {
    /// Reads every part's header, indexes the rows of every part on all cores, and keeps the
    /// latest row per address.
    fn build(snapshot: &'a Snapshot) -> Result<Self, SnapshotError> {
        let parts = &snapshot.parts;
        let Headers {
            output: header,
            parts: headers,
            lens,
        } = read_headers(parts)?;
        let pieces = split_pieces(parts, &headers, &lens)?;
        let results = index_pieces(parts, &pieces, &headers, &header);
        let (mut index, errors, rows) = merge_pieces(parts.len(), &pieces, results)?;
        keep_latest(&mut index);
        Ok(Self {
            snapshot,
            header,
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
        self.index.iter().map(|e| Ipv4Addr::from(e.addr))
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
            + self.index.iter().map(|e| u64::from(e.len) + 1).sum::<u64>()
    }

    /// Always false: the file has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the compacted file to `out`. Output is assembled in chunks of at most 4 MiB (or
    /// one row, if longer), each read from the snapshot in file order; a second thread
    /// assembles the next chunk while `out` consumes the current one (e.g. compresses it), so
    /// at most three chunks are in memory.
    pub fn write_to(&self, mut out: impl Write) -> Result<(), SnapshotError> {
        use std::sync::mpsc;
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>, SnapshotError>>(1);
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        let path = self.snapshot.lease_file();
        thread::scope(|scope| {
            scope.spawn(move || {
                let mut r = self.reader();
                loop {
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    match r.next_chunk(&mut buf) {
                        Ok(true) => {
                            if tx.send(Ok(buf)).is_err() {
                                return;
                            }
                        }
                        Ok(false) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
            // Dropping `rx` on an early return makes the producer's next send fail and stop.
            for chunk in rx {
                let chunk = chunk?;
                out.write_all(&chunk).map_err(io_err(path))?;
                let _ = back_tx.send(chunk);
            }
            out.flush().map_err(io_err(path))
        })
    }

    /// The compacted file as a [`Read`] (e.g. for a tar entry of size [`Compacted::len`]),
    /// producing the same bytes as [`Compacted::write_to`] with the same bounded memory.
    pub fn reader(&self) -> CompactedReader<'_, 'a> {
        CompactedReader {
            comp: self,
            next: 0,
            header_done: false,
            buf: Vec::new(),
            pos: 0,
            order: Vec::new(),
        }
    }

    /// Fills `buf` with the output rows of `index[start..]` up to the chunk size; returns the
    /// index after the last row taken.
    fn fill_chunk(
        &self,
        start: usize,
        buf: &mut Vec<u8>,
        order: &mut Vec<(u8, u64, usize, u32, bool)>,
    ) -> Result<usize, SnapshotError> {
        let parts = &self.snapshot.parts;
        let mut end = start;
        let mut size = 0u64;
        while end < self.index.len() {
            let l = u64::from(self.index[end].len) + 1;
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
        for e in &self.index[start..end] {
            order.push((e.part() as u8, e.off(), pos, e.len, e.rewrite()));
            pos += e.len as usize + 1;
        }
        order.sort_unstable_by_key(|o| (o.0, o.1));
        let mut readers: Vec<Window> = parts.iter().map(Window::new).collect();
        let mut raw = Vec::new();
        for (k, &(part, off, pos, len, rewrite)) in order.iter().enumerate() {
            let pi = usize::from(part);
            let dest = &mut buf[pos..pos + len as usize];
            if rewrite {
                // Another schema, or not as LFC writes it: read the row and rewrite it.
                raw.clear();
                readers[pi]
                    .read_line(off, &mut raw)
                    .map_err(io_err(&parts[pi].path))?;
                let h = self.headers[pi]
                    .as_ref()
                    .expect("part with rows has a header");
                let mut lease = parse_row(h, &raw).map_err(|kind| SnapshotError::Io {
                    path: parts[pi].path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, kind.to_string()),
                })?;
                lease.normalize();
                let mut row = Vec::with_capacity(len as usize);
                lease.write_row(&self.header, &mut row);
                dest.copy_from_slice(&row);
            } else {
                readers[pi]
                    .read_exact(off, dest, || span_end(&order[k..]))
                    .map_err(io_err(&parts[pi].path))?;
            }
        }
        Ok(end)
    }
}

/// Reads a [`Compacted`] file chunk by chunk; see [`Compacted::reader`].
pub struct CompactedReader<'c, 'a> {
    comp: &'c Compacted<'a>,
    next: usize,
    header_done: bool,
    buf: Vec<u8>,
    pos: usize,
    order: Vec<(u8, u64, usize, u32, bool)>,
}

impl CompactedReader<'_, '_> {
    /// Replaces `buf` with the next chunk of output; `false` when there is no more.
    pub fn next_chunk(&mut self, buf: &mut Vec<u8>) -> Result<bool, SnapshotError> {
        if !self.header_done {
            self.header_done = true;
            buf.clear();
            buf.extend_from_slice(self.comp.header.to_line().as_bytes());
            buf.push(b'\n');
            return Ok(true);
        }
        if self.next >= self.comp.index.len() {
            return Ok(false);
        }
        self.next = self.comp.fill_chunk(self.next, buf, &mut self.order)?;
        Ok(true)
    }
}

impl Read for CompactedReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            let mut buf = std::mem::take(&mut self.buf);
            let more = self.next_chunk(&mut buf).map_err(|e| match e {
                SnapshotError::Io { source, .. } => source,
                e => io::Error::other(e.to_string()),
            })?;
            self.buf = buf;
            self.pos = 0;
            if !more {
                self.buf.clear();
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Every part's header, as the running Kea reads them.
struct Headers {
    /// The output header: that of the last part with one (the file Kea wrote itself).
    output: Header,
    /// Each part's header, read with the output's columns.
    parts: Vec<Option<Header>>,
    /// Each part's header line length.
    lens: Vec<u64>,
}

fn read_headers(parts: &[Part]) -> Result<Headers, SnapshotError> {
    let mut headers = Vec::with_capacity(parts.len());
    let mut header_lens = Vec::with_capacity(parts.len());
    let mut out_header: Option<Header> = None;
    for p in parts {
        let mut input = BufReader::with_capacity(4096, p.reader());
        let mut line = Vec::new();
        input
            .read_until(b'\n', &mut line)
            .map_err(io_err(&p.path))?;
        header_lens.push(line.len() as u64);
        let reader = LeaseReader::new(&line[..], &p.path)?;
        if let Some(h) = reader.header() {
            out_header = Some(h.clone());
        }
        headers.push(reader.header().cloned());
    }
    let header = out_header.unwrap_or_default();
    // Rows are read as the running Kea reads them: with the schema of the header it wrote.
    let headers = headers
        .into_iter()
        .map(|h| h.map(|h| h.read_by_kea_columns(header.kea_columns())))
        .collect();
    Ok(Headers {
        output: header,
        parts: headers,
        lens: header_lens,
    })
}

/// Every part's rows (after its header) cut into pieces of about [`PIECE`] bytes that start
/// at line boundaries; parts without a header have no rows.
fn split_pieces(
    parts: &[Part],
    headers: &[Option<Header>],
    header_lens: &[u64],
) -> Result<Vec<Piece>, SnapshotError> {
    let mut pieces = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        if headers[pi].is_none() {
            continue;
        }
        let mut start = header_lens[pi];
        while start < p.len {
            let mut end = (start + PIECE).min(p.len);
            if end < p.len {
                end = next_line_start(p, end).map_err(io_err(&p.path))?;
            }
            pieces.push(Piece {
                part: pi,
                start,
                end,
            });
            start = end;
        }
    }
    Ok(pieces)
}

/// Indexes the pieces on all cores (each is independent); the results in piece order. A row
/// of a part whose header differs from `header` is measured as written with `header`.
fn index_pieces(
    parts: &[Part],
    pieces: &[Piece],
    headers: &[Option<Header>],
    header: &Header,
) -> Vec<Result<PieceResult, SnapshotError>> {
    let reserialize: Vec<bool> = headers
        .iter()
        .map(|h| h.as_ref().is_some_and(|h| h != header))
        .collect();
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let index_next = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(piece) = pieces.get(k) else {
                break;
            };
            let pi = piece.part;
            let part_header = headers[pi].as_ref().expect("piece of a part with header");
            let r = index_piece(
                &parts[pi],
                piece,
                part_header,
                reserialize[pi].then_some(header),
            );
            done.push((k, r));
        }
        done
    };
    let collected: Vec<Vec<(usize, Result<PieceResult, SnapshotError>)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(index_next)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("index thread panicked"))
            .collect()
    });
    let mut results: Vec<Option<Result<PieceResult, SnapshotError>>> =
        (0..pieces.len()).map(|_| None).collect();
    for (k, r) in collected.into_iter().flatten() {
        results[k] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every piece indexed"))
        .collect()
}

/// The pieces' results merged in load order: (entries, errors with their line numbers in
/// their part, rows). Each piece's entries are freed as soon as they are moved, so the peak
/// stays near one index.
fn merge_pieces(
    part_count: usize,
    pieces: &[Piece],
    results: Vec<Result<PieceResult, SnapshotError>>,
) -> Result<(Vec<Entry>, Vec<RowError>, u64), SnapshotError> {
    let total: usize = results
        .iter()
        .map(|r| r.as_ref().map_or(0, |r| r.entries.len()))
        .sum();
    let mut index = Vec::with_capacity(total);
    let mut errors = Vec::new();
    let mut rows = 0;
    let mut line_base = vec![1u64; part_count];
    for (piece, r) in pieces.iter().zip(results) {
        let r = r?;
        let base = line_base[piece.part];
        errors.extend(r.errors.into_iter().map(|mut e| {
            e.line += base + 1;
            e
        }));
        line_base[piece.part] += r.lines;
        rows += r.rows;
        index.extend_from_slice(&r.entries);
    }
    Ok((index, errors, rows))
}

/// Keeps the latest row per address (the later part and offset wins) unless it deletes the
/// lease; deduplicated in place.
fn keep_latest(index: &mut Vec<Entry>) {
    index.sort_unstable_by_key(|e| (e.addr, e.packed & ORDER_MASK));
    let mut kept = 0;
    let mut k = 0;
    while k < index.len() {
        let mut last = k;
        while last + 1 < index.len() && index[last + 1].addr == index[k].addr {
            last += 1;
        }
        if !index[last].deleted() {
            index[kept] = index[last];
            kept += 1;
        }
        k = last + 1;
    }
    index.truncate(kept);
    index.shrink_to_fit();
}

/// The offset just after the first line feed at or after `pos` (or the part's end).
fn next_line_start(part: &Part, pos: u64) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut at = pos;
    while at < part.len {
        let n = ((part.len - at) as usize).min(buf.len());
        part.file.read_exact_at(&mut buf[..n], at)?;
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(part.len)
}

/// Indexes one piece: checks every row, records where valid rows are. With `out_header`, rows
/// are measured as re-serialised for that header.
fn index_piece(
    part: &Part,
    piece: &Piece,
    header: &Header,
    out_header: Option<&Header>,
) -> Result<PieceResult, SnapshotError> {
    let mut input = BufReader::with_capacity(
        1 << 18,
        PartReader {
            file: &part.file,
            pos: piece.start,
            end: piece.end,
        },
    );
    let mut res = PieceResult {
        entries: Vec::with_capacity(((piece.end - piece.start) / 80) as usize),
        ..PieceResult::default()
    };
    let mut line = Vec::with_capacity(512);
    let mut out_row = Vec::new();
    let mut off = piece.start;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(io_err(&part.path))?;
        if n == 0 {
            break;
        }
        let row_off = off;
        off += n as u64;
        let line_no = res.lines;
        res.lines += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        let key = match check_row(header, &line) {
            Ok(k) => k,
            Err(kind) => {
                res.errors.push(RowError {
                    file: part.path.clone(),
                    line: line_no,
                    kind,
                });
                continue;
            }
        };
        res.rows += 1;
        let rewrite = out_header.is_some() || !key.canonical;
        let len = if rewrite {
            out_row.clear();
            let mut lease = parse_row(header, &line).expect("checked row parses");
            lease.normalize();
            lease.write_row(out_header.unwrap_or(header), &mut out_row);
            out_row.len()
        } else {
            line.len()
        };
        let len = u32::try_from(len).map_err(|_| SnapshotError::Io {
            path: part.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "row longer than 4 GiB"),
        })?;
        res.entries.push(Entry::new(
            u32::from(key.address),
            len,
            piece.part,
            row_off,
            rewrite,
            key.valid_lifetime == 0,
        ));
    }
    Ok(res)
}

/// Forward-moving window over one part, for reads sorted by offset.
struct Window<'a> {
    part: &'a Part,
    buf: Vec<u8>,
    start: u64,
}

/// Most bytes read at once for a span of rows.
const WINDOW: u64 = 256 * 1024;

/// Rows of one part closer than this are read in one call: below it, copying the gap costs
/// less than another read. Rows further apart (those of `.1` and the current file, spread over
/// the whole file for every chunk) are read one by one instead of a window each.
const SPAN_GAP: u64 = 1024;

/// Where the span of rows starting at `rows[0]` ends: following rows of the same part are
/// taken while each starts within [`SPAN_GAP`] of the previous one's end and the span stays
/// within [`WINDOW`]. `rows` are sorted by (part, offset).
fn span_end(rows: &[(u8, u64, usize, u32, bool)]) -> u64 {
    let (part, start) = (rows[0].0, rows[0].1);
    let mut end = start + u64::from(rows[0].3) + 1;
    for &(p, off, _, len, _) in &rows[1..] {
        let row_end = off + u64::from(len) + 1;
        if p != part || off > end + SPAN_GAP || row_end - start > WINDOW {
            break;
        }
        end = end.max(row_end);
    }
    end
}

impl<'a> Window<'a> {
    fn new(part: &'a Part) -> Self {
        Self {
            part,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Reads `[off, end)` of the part (at least `min` bytes) into the window.
    fn fill(&mut self, off: u64, end: u64, min: usize) -> io::Result<()> {
        let avail = self.part.len.saturating_sub(off) as usize;
        let n = ((end - off) as usize).max(min).min(avail);
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

    /// Copies the bytes at `off` into `dest`; when they are not in the window, reads the span
    /// up to `span_end()` (the rows that follow closely) in one call.
    fn read_exact(
        &mut self,
        off: u64,
        dest: &mut [u8],
        span_end: impl FnOnce() -> u64,
    ) -> io::Result<()> {
        let end = off + dest.len() as u64;
        if off < self.start || end > self.start + self.buf.len() as u64 {
            self.fill(off, span_end(), dest.len())?;
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
