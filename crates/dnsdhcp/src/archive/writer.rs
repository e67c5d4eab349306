//! Writing archives: gzip over tar into a hidden temporary file, published by rename.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;
use tempfile::TempPath;

use super::error::{ArchiveError, IoContext};
use super::fsutil::{partial_file, publish, write_file_atomically};
use super::gzip::ParallelGz;
use super::manifest::{
    ArchiveKind, FORMAT_VERSION, FileEntry, LeaseFileFacts, MANIFEST_NAME, Manifest, ZoneFacts,
};
use super::scan::{self, HashingReader, Limits, normalize_path};
use super::verify::{LeaseRowCheck, LeaseSet, live};
use super::zone::{ZoneFileError, normalize_zone_name, zone_checker};

/// How [`ArchiveWriter::add_dir_all_with`] should record a file it finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// An ordinary file: size and SHA-256 only.
    Plain,
    /// A zone file of the named zone: also SOA serial and record count.
    Zone(String),
    /// A Kea memfile lease file: also row and lease counts.
    Leases,
}

/// Counts the bytes written through it (the compressed offset in the archive file).
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressed output: a gzip member (compressed on every core) that can be ended and a new
/// one started, so that a prefix of the file is itself a complete gzip stream (see
/// [`ArchiveWriter::end_prefix`]).
struct Sink {
    gz: Option<ParallelGz<Counting<BufWriter<File>>>>,
}

impl Sink {
    fn gz(&mut self) -> io::Result<&mut ParallelGz<Counting<BufWriter<File>>>> {
        self.gz
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already failed"))
    }

    /// Finish the current gzip member and start another; returns the file offset between them.
    fn end_member(&mut self) -> io::Result<u64> {
        let gz = self.gz()?;
        if let Err(e) = gz.end_member() {
            self.gz = None;
            return Err(e);
        }
        Ok(gz.get_ref().count)
    }

    fn finish(mut self) -> io::Result<File> {
        let gz = self.gz.take().expect("gzip encoder present");
        gz.finish()?.inner.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.gz()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.gz()?.flush()
    }
}

type Tar = tar::Builder<Sink>;

/// A zone file whose facts are being computed on a background thread.
enum ZoneSlot {
    Done(ZoneFacts),
    Pending {
        name: String,
        file: String,
        apex_from_target: bool,
        job: JoinHandle<Result<(u32, u64), ZoneFileError>>,
    },
}

/// What had been added when [`ArchiveWriter::end_prefix`] was called.
#[derive(Clone, Copy, Debug)]
struct Prefix {
    offset: u64,
    files: usize,
    zones: usize,
    lease_files: usize,
}

/// Builds one archive. Nothing appears under the final name until [`finish`](Self::finish)
/// succeeds; dropping the writer (or a crash) leaves at most a hidden `.NAME.partial-*` file,
/// which drop removes.
pub struct ArchiveWriter {
    final_path: PathBuf,
    temp: Option<TempPath>,
    tar: Option<Tar>,
    kind: ArchiveKind,
    source: String,
    created: jiff::Timestamp,
    files: Vec<FileEntry>,
    zones: Vec<ZoneSlot>,
    /// Indices into `zones` still parsing, oldest first.
    pending: VecDeque<usize>,
    lease_files: Vec<LeaseFileFacts>,
    /// Live leases over all lease files added so far, in order.
    lease_set: LeaseSet,
    /// Leases of a lease file added with counts given by the caller
    /// ([`add_checked_leases`](Self::add_checked_leases)); then it is the only lease file.
    given_leases: Option<u64>,
    /// Live leases when the prefix ended.
    prefix_leases: Option<LeaseSet>,
    prefix: Option<Prefix>,
    paths: HashSet<String>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("final_path", &self.final_path)
            .field("kind", &self.kind)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

/// Reads exactly `size` bytes from a source file, failing if it ends early.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    short: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.short = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source ended early",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl ArchiveWriter {
    /// Start an archive that will be published at `final_path`.
    ///
    /// The data goes to a hidden temporary file in the same directory, created with mode 0600.
    /// `source` says where the data came from (e.g. `local:host1`).
    pub fn create(
        final_path: impl AsRef<Path>,
        kind: ArchiveKind,
        source: impl Into<String>,
    ) -> Result<Self, ArchiveError> {
        Self::create_with_level(final_path, kind, source, Compression::default())
    }

    /// Like [`create`](Self::create) with gzip level `level` (e.g. [`Compression::fast`] for
    /// large lease files, where compressing dominates the time of a backup).
    pub fn create_with_level(
        final_path: impl AsRef<Path>,
        kind: ArchiveKind,
        source: impl Into<String>,
        level: Compression,
    ) -> Result<Self, ArchiveError> {
        let final_path = final_path.as_ref().to_owned();
        let (file, temp) = partial_file(&final_path)?;
        let counting = Counting {
            inner: BufWriter::with_capacity(256 << 10, file),
            count: 0,
        };
        let gz = ParallelGz::new(counting, level);
        Ok(ArchiveWriter {
            final_path,
            temp: Some(temp),
            tar: Some(tar::Builder::new(Sink { gz: Some(gz) })),
            kind,
            source: source.into(),
            created: jiff::Timestamp::now(),
            files: Vec::new(),
            zones: Vec::new(),
            pending: VecDeque::new(),
            lease_files: Vec::new(),
            lease_set: LeaseSet::default(),
            given_leases: None,
            prefix_leases: None,
            prefix: None,
            paths: HashSet::new(),
        })
    }

    /// The path the archive will have once finished.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Validate and reserve a member path.
    fn claim(&mut self, member: &str) -> Result<String, ArchiveError> {
        let invalid = |reason: &str| ArchiveError::InvalidMemberPath {
            path: member.to_owned(),
            reason: reason.to_owned(),
        };
        let path = normalize_path(member.as_bytes()).map_err(|r| invalid(&r))?;
        if path.is_empty() {
            return Err(invalid("empty path"));
        }
        if path == MANIFEST_NAME {
            return Err(invalid("reserved for the manifest"));
        }
        if !self.paths.insert(path.clone()) {
            return Err(invalid("already in the archive"));
        }
        Ok(path)
    }

    fn tar(&mut self) -> Result<&mut Tar, ArchiveError> {
        self.tar.as_mut().ok_or_else(|| ArchiveError::WriterFailed {
            path: self.final_path.clone(),
        })
    }

    /// Write one entry; on failure the writer is poisoned (the tar stream may be inconsistent).
    fn append(
        &mut self,
        path: &str,
        mut header: tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let temp = self.temp.as_deref().map(Path::to_owned).unwrap_or_default();
        let tar = self.tar()?;
        let result = tar.append_data(&mut header, path, data);
        if let Err(e) = result {
            self.tar = None;
            return Err(ArchiveError::io(temp, e));
        }
        Ok(())
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode & 0o777);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Stream `size` bytes from `reader` into the archive as `member`, hashing on the way.
    ///
    /// Fails (and poisons the writer) if the reader yields fewer than `size` bytes.
    pub fn add_reader(
        &mut self,
        member: &str,
        size: u64,
        mode: u32,
        reader: impl Read,
    ) -> Result<&FileEntry, ArchiveError> {
        let path = self.claim(member)?;
        self.add_claimed(path, size, mode, now(), reader, None)
    }

    fn add_claimed(
        &mut self,
        path: String,
        size: u64,
        mode: u32,
        mtime: u64,
        reader: impl Read,
        source: Option<&Path>,
    ) -> Result<&FileEntry, ArchiveError> {
        let mut exact = ExactReader {
            inner: reader,
            remaining: size,
            short: false,
        };
        let mut hashing = HashingReader::new(&mut exact);
        let header = Self::header(tar::EntryType::Regular, size, mode, mtime);
        let result = self.append(&path, header, &mut hashing);
        let (count, sha256) = hashing.finish();
        if exact.short {
            self.tar = None;
            return Err(ArchiveError::SourceChanged {
                path: source.map_or_else(|| PathBuf::from(&path), Path::to_owned),
                reason: format!("expected {size} bytes, got {count}"),
            });
        }
        result?;
        // A file that grew while being read is just as inconsistent as one that shrank.
        if let Some(src) = source {
            let mut probe = [0u8; 1];
            if exact.inner.read(&mut probe).at(src)? != 0 {
                self.tar = None;
                return Err(ArchiveError::SourceChanged {
                    path: src.to_owned(),
                    reason: format!("grew past {size} bytes"),
                });
            }
        }
        self.files.push(FileEntry { path, size, sha256 });
        Ok(self.files.last().expect("just pushed"))
    }

    /// Add `data` as `member` with permission bits `mode`.
    pub fn add_bytes(
        &mut self,
        member: &str,
        data: &[u8],
        mode: u32,
    ) -> Result<&FileEntry, ArchiveError> {
        self.add_reader(member, data.len() as u64, mode, data)
    }

    /// Add the regular file `src` as `member`, keeping its permission bits and mtime.
    pub fn add_file(&mut self, member: &str, src: &Path) -> Result<&FileEntry, ArchiveError> {
        let path = self.claim(member)?;
        let file = File::open(src).at(src)?;
        let meta = file.metadata().at(src)?;
        if !meta.is_file() {
            return Err(ArchiveError::io(
                src,
                io::Error::other("not a regular file"),
            ));
        }
        let reader = io::BufReader::with_capacity(256 << 10, file);
        self.add_claimed(
            path,
            meta.len(),
            meta.mode(),
            meta.mtime().max(0) as u64,
            reader,
            Some(src),
        )
    }

    /// Add a directory entry `member` (needed for empty directories; parents of files are
    /// created on extraction anyway).
    pub fn add_dir(&mut self, member: &str, mode: u32) -> Result<(), ArchiveError> {
        let path = self.claim(member)?;
        let header = Self::header(tar::EntryType::Directory, 0, mode, now());
        self.append(&path, header, &mut io::empty())
    }

    /// Add the zone file `src` of zone `zone` as `member`. It is checked
    /// ([`ZoneChecker`](crate::zonefile::ZoneChecker)) on a background thread as it streams
    /// into the archive, a few pieces at a time (the zone is never held whole); its SOA serial
    /// and record count go into the manifest, and a bad record fails a later `add_zone_*` or
    /// [`finish`](Self::finish) (the archive is then not published).
    pub fn add_zone_file(
        &mut self,
        member: &str,
        zone: &str,
        src: &Path,
    ) -> Result<(), ArchiveError> {
        let file = File::open(src).at(src)?;
        let meta = file.metadata().at(src)?;
        if !meta.is_file() {
            return Err(ArchiveError::io(
                src,
                io::Error::other("not a regular file"),
            ));
        }
        let source = ZoneSource {
            size: meta.len(),
            mode: meta.mode(),
            mtime: meta.mtime().max(0) as u64,
            path: Some(src),
        };
        self.add_zone_stream(member, zone, file, source, false)
    }

    /// Add in-memory zone-file `data` of zone `zone` as `member` (see [`add_zone_file`](Self::add_zone_file)).
    pub fn add_zone_bytes(
        &mut self,
        member: &str,
        zone: &str,
        data: &[u8],
        mode: u32,
    ) -> Result<(), ArchiveError> {
        self.add_zone_stream(member, zone, data, ZoneSource::bytes(data, mode), false)
    }

    /// Add in-memory zone-file `data` of zone `zone` that has no SOA and no NS records: a
    /// restore keeps the target zone's (see [`ZoneFacts::apex_from_target`]).
    pub fn add_zone_bytes_without_apex(
        &mut self,
        member: &str,
        zone: &str,
        data: &[u8],
        mode: u32,
    ) -> Result<(), ArchiveError> {
        self.add_zone_stream(member, zone, data, ZoneSource::bytes(data, mode), true)
    }

    /// Streams `reader` into the archive as `member` while a background thread checks it.
    fn add_zone_stream(
        &mut self,
        member: &str,
        zone: &str,
        reader: impl Read,
        source: ZoneSource<'_>,
        apex_from_target: bool,
    ) -> Result<(), ArchiveError> {
        // Bound the checking threads (and the pieces queued for them) to the CPUs available.
        let max = std::thread::available_parallelism().map_or(2, |n| n.get());
        while self.pending.len() >= max {
            self.join_oldest()?;
        }
        let path = self.claim(member)?;
        let mut checker = zone_checker(&path, zone, !apex_from_target)?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(ZONE_PIECES_QUEUED);
        let job = std::thread::Builder::new()
            .name("zone-check".into())
            .spawn(move || {
                // A bad record ends the thread; the sender then stops sending.
                for piece in rx {
                    checker.feed(&piece)?;
                }
                checker.finish().map(|s| (s.serial, s.records))
            })
            .map_err(|e| ArchiveError::io(&self.final_path, e))?;
        self.zones.push(ZoneSlot::Pending {
            name: normalize_zone_name(zone),
            file: path.clone(),
            apex_from_target,
            job,
        });
        self.pending.push_back(self.zones.len() - 1);
        let mut tee = Tee {
            inner: reader,
            tx: Some(tx),
            piece: Vec::with_capacity(ZONE_PIECE),
        };
        let added = self.add_claimed(
            path,
            source.size,
            source.mode,
            source.mtime,
            &mut tee,
            source.path,
        );
        // The last piece, then the end of the stream for the checker.
        tee.send();
        drop(tee);
        added.map(|_| ())
    }

    /// Wait for the oldest zone still parsing; a parse error poisons the writer.
    fn join_oldest(&mut self) -> Result<(), ArchiveError> {
        let Some(i) = self.pending.pop_front() else {
            return Ok(());
        };
        let slot = std::mem::replace(
            &mut self.zones[i],
            ZoneSlot::Done(ZoneFacts {
                name: String::new(),
                file: String::new(),
                serial: 0,
                records: 0,
                apex_from_target: false,
            }),
        );
        let ZoneSlot::Pending {
            name,
            file,
            apex_from_target,
            job,
        } = slot
        else {
            unreachable!("pending index points at a pending slot");
        };
        let result = job.join().unwrap_or_else(|_| {
            Err(ZoneFileError {
                file: file.clone(),
                line: None,
                message: "zone parser panicked".into(),
            })
        });
        match result {
            Ok((serial, records)) => {
                self.zones[i] = ZoneSlot::Done(ZoneFacts {
                    name,
                    file,
                    serial,
                    records,
                    apex_from_target,
                });
                Ok(())
            }
            Err(e) => {
                self.tar = None;
                Err(e.into())
            }
        }
    }

    /// Every zone's facts, waiting for the parsers still running.
    fn zone_facts(&mut self) -> Result<Vec<ZoneFacts>, ArchiveError> {
        while !self.pending.is_empty() {
            self.join_oldest()?;
        }
        Ok(self
            .zones
            .iter()
            .map(|z| match z {
                ZoneSlot::Done(f) => f.clone(),
                ZoneSlot::Pending { .. } => unreachable!("all joined"),
            })
            .collect())
    }

    /// Add the Kea memfile lease file `src` as `member`; its rows are checked and counted as
    /// they stream into the archive (memory: one row and the lease addresses).
    pub fn add_lease_file(
        &mut self,
        member: &str,
        src: &Path,
    ) -> Result<&LeaseFileFacts, ArchiveError> {
        let file = File::open(src).at(src)?;
        let meta = file.metadata().at(src)?;
        let reader = io::BufReader::with_capacity(256 << 10, file);
        self.add_lease_stream(
            member,
            meta.len(),
            meta.mode(),
            meta.mtime().max(0) as u64,
            reader,
        )
    }

    /// Add in-memory lease-file `data` as `member` (see [`add_lease_file`](Self::add_lease_file)).
    pub fn add_lease_bytes(
        &mut self,
        member: &str,
        data: &[u8],
        mode: u32,
    ) -> Result<&LeaseFileFacts, ArchiveError> {
        self.add_lease_stream(member, data.len() as u64, mode, now(), data)
    }

    /// Stream a lease file of `size` bytes from `reader` as `member`, checking and counting its
    /// rows on the way (see [`add_lease_file`](Self::add_lease_file)). A bad row fails the add
    /// and poisons the writer.
    pub fn add_lease_reader(
        &mut self,
        member: &str,
        size: u64,
        mode: u32,
        reader: impl Read,
    ) -> Result<&LeaseFileFacts, ArchiveError> {
        self.add_lease_stream(member, size, mode, now(), reader)
    }

    /// Stream a lease file whose rows the caller has already checked with the same rules and
    /// counted (a `kea_leases` compaction: `rows` valid rows, `leases` distinct leases), as
    /// `member`, without checking them again; `verify` checks them from the archive. It must be
    /// the archive's only lease file.
    pub fn add_checked_leases(
        &mut self,
        member: &str,
        size: u64,
        mode: u32,
        reader: impl Read,
        (rows, leases): (u64, u64),
    ) -> Result<&LeaseFileFacts, ArchiveError> {
        if !self.lease_files.is_empty() {
            return Err(ArchiveError::Misuse {
                reason: "add_checked_leases after another lease file",
            });
        }
        let path = self.claim(member)?;
        self.add_claimed(path.clone(), size, mode, now(), reader, None)?;
        self.given_leases = Some(leases);
        self.lease_files.push(LeaseFileFacts {
            file: path,
            rows,
            leases,
        });
        Ok(self.lease_files.last().expect("just pushed"))
    }

    fn add_lease_stream(
        &mut self,
        member: &str,
        size: u64,
        mode: u32,
        mtime: u64,
        reader: impl Read,
    ) -> Result<&LeaseFileFacts, ArchiveError> {
        if self.given_leases.is_some() {
            return Err(ArchiveError::Misuse {
                reason: "a lease file after add_checked_leases",
            });
        }
        let path = self.claim(member)?;
        let mut tee = RowTee {
            inner: reader,
            check: Some(LeaseRowCheck::new(&path)),
            failed: None,
        };
        let added = self.add_claimed(path.clone(), size, mode, mtime, &mut tee, None);
        if let Some(e) = tee.failed.take() {
            self.tar = None;
            return Err(e);
        }
        added?;
        let file = tee
            .check
            .take()
            .expect("checker present until finished")
            .finish();
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                self.tar = None;
                return Err(e);
            }
        };
        let facts = LeaseFileFacts {
            file: path,
            rows: file.rows,
            leases: file.leases(),
        };
        self.lease_set.add_file(file);
        self.lease_files.push(facts);
        Ok(self.lease_files.last().expect("just pushed"))
    }

    /// Add every file and directory under `dir` below `prefix` (`""` for the archive root), all
    /// as plain files. Symbolic links and special files are an error, not skipped.
    pub fn add_dir_all(&mut self, prefix: &str, dir: &Path) -> Result<(), ArchiveError> {
        self.add_dir_all_with(prefix, dir, |_| Member::Plain)
    }

    /// Like [`add_dir_all`](Self::add_dir_all), with `classify` deciding from each file's member
    /// path whether it is a zone file, a lease file or plain. Entries are added in sorted order.
    pub fn add_dir_all_with(
        &mut self,
        prefix: &str,
        dir: &Path,
        mut classify: impl FnMut(&str) -> Member,
    ) -> Result<(), ArchiveError> {
        self.walk(prefix, dir, &mut classify)
    }

    fn walk(
        &mut self,
        prefix: &str,
        dir: &Path,
        classify: &mut dyn FnMut(&str) -> Member,
    ) -> Result<(), ArchiveError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .at(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .at(dir)?;
        names.sort();
        for name in names {
            let src = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(ArchiveError::io(
                    &src,
                    io::Error::other("file name is not UTF-8"),
                ));
            };
            let member = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", prefix.trim_end_matches('/'))
            };
            let meta = fs::symlink_metadata(&src).at(&src)?;
            if meta.is_dir() {
                self.add_dir(&member, meta.mode())?;
                self.walk(&member, &src, classify)?;
            } else if meta.is_file() {
                match classify(&member) {
                    Member::Plain => {
                        self.add_file(&member, &src)?;
                    }
                    Member::Zone(zone) => self.add_zone_file(&member, &zone, &src)?,
                    Member::Leases => {
                        self.add_lease_file(&member, &src)?;
                    }
                }
            } else {
                return Err(ArchiveError::io(
                    &src,
                    io::Error::other("not a regular file or directory; refusing to archive it"),
                ));
            }
        }
        Ok(())
    }

    /// End the shared prefix: everything added so far is closed off as its own gzip member,
    /// so that [`finish_with_prefix_copy`](Self::finish_with_prefix_copy) can publish it as a
    /// second archive by copying bytes instead of compressing again (e.g. `zones.tar.gz` from
    /// the zone files at the start of a full zone backup). Call at most once.
    pub fn end_prefix(&mut self) -> Result<(), ArchiveError> {
        if self.prefix.is_some() {
            return Err(ArchiveError::Misuse {
                reason: "end_prefix called twice",
            });
        }
        let offset = self.end_member()?;
        self.prefix = Some(Prefix {
            offset,
            files: self.files.len(),
            zones: self.zones.len(),
            lease_files: self.lease_files.len(),
        });
        self.prefix_leases = Some(self.lease_set.clone());
        Ok(())
    }

    /// Ends the current gzip member (a failure poisons the writer); returns the file offset.
    fn end_member(&mut self) -> Result<u64, ArchiveError> {
        let temp = self.temp.as_deref().map(Path::to_owned).unwrap_or_default();
        let tar = self.tar()?;
        match tar.get_mut().end_member() {
            Ok(offset) => Ok(offset),
            Err(e) => {
                self.tar = None;
                Err(ArchiveError::io(temp, e))
            }
        }
    }

    fn manifest(&mut self) -> Result<Manifest, ArchiveError> {
        Ok(Manifest {
            format: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            created: self.created,
            source: self.source.clone(),
            kind: self.kind,
            zones: self.zone_facts()?,
            files: std::mem::take(&mut self.files),
            lease_count: live(&self.lease_set) + self.given_leases.unwrap_or(0),
            lease_files: std::mem::take(&mut self.lease_files),
        })
    }

    /// Append the manifest, finish the gzip stream, fsync, rename to the final name and fsync
    /// the directory. Returns the manifest written.
    pub fn finish(mut self) -> Result<Manifest, ArchiveError> {
        let manifest = self.manifest()?;
        self.write_out(&manifest)?;
        Ok(manifest)
    }

    /// Like [`finish`](Self::finish), then also publish (atomically, mode 0600) at `copy_path`
    /// an archive of kind `kind` holding exactly the members added before
    /// [`end_prefix`](Self::end_prefix), with its own manifest. Returns both manifests.
    pub fn finish_with_prefix_copy(
        mut self,
        copy_path: &Path,
        kind: ArchiveKind,
    ) -> Result<(Manifest, Manifest), ArchiveError> {
        let prefix = self.prefix.ok_or(ArchiveError::Misuse {
            reason: "finish_with_prefix_copy without end_prefix",
        })?;
        let manifest = self.manifest()?;
        let lease_files = manifest.lease_files[..prefix.lease_files].to_vec();
        let copy = Manifest {
            kind,
            files: manifest.files[..prefix.files].to_vec(),
            zones: manifest.zones[..prefix.zones].to_vec(),
            lease_count: self.prefix_leases.as_ref().map_or(0, live),
            lease_files,
            ..manifest.clone()
        };
        let file = self.write_out(&manifest)?;
        // The tail of the copy: its manifest and the end-of-archive blocks, as one gzip member.
        let json = serde_json::to_vec_pretty(&copy).expect("manifest serialises");
        let mut tail = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let mut header = Self::header(tar::EntryType::Regular, json.len() as u64, 0o600, now());
        let tail = tail
            .append_data(&mut header, MANIFEST_NAME, json.as_slice())
            .and_then(|()| tail.into_inner())
            .and_then(|gz| gz.finish())
            .at(copy_path)?;
        let src = self.final_path.clone();
        write_file_atomically(copy_path, |out| {
            let mut buf = vec![0u8; 256 << 10];
            let mut pos = 0u64;
            while pos < prefix.offset {
                let want = buf.len().min((prefix.offset - pos) as usize);
                let n = file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended inside its prefix", src.display()),
                    ));
                }
                out.write_all(&buf[..n])?;
                pos += n as u64;
            }
            out.write_all(&tail)
        })?;
        Ok((manifest, copy))
    }

    /// Append `manifest`, finish, fsync and publish; returns the (renamed) file, still open.
    fn write_out(&mut self, manifest: &Manifest) -> Result<File, ArchiveError> {
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        let header = Self::header(tar::EntryType::Regular, json.len() as u64, 0o600, now());
        // The manifest and the end of the tar stream form the last gzip member on their own,
        // so the manifest can be read without decompressing the archive (`read_manifest`).
        self.end_member()?;
        self.append(MANIFEST_NAME, header, &mut json.as_slice())?;
        let temp = self.temp.take().expect("temp path present until finish");
        let tar = self.tar.take().ok_or_else(|| ArchiveError::WriterFailed {
            path: self.final_path.clone(),
        })?;
        let file = tar.into_inner().and_then(Sink::finish).at(&*temp)?;
        file.sync_all().at(&*temp)?;
        publish(temp, &self.final_path)?;
        Ok(file)
    }
}

/// Feeds what passes through it to a lease-row check; the first bad row stops the stream.
struct RowTee<R> {
    inner: R,
    check: Option<LeaseRowCheck>,
    failed: Option<ArchiveError>,
}

impl<R: Read> Read for RowTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(check) = self.check.as_mut()
            && let Err(e) = check.feed(&buf[..n])
        {
            let message = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        Ok(n)
    }
}

/// Size of the pieces a zone file is checked in, and how many may wait for the checker.
const ZONE_PIECE: usize = 256 << 10;
const ZONE_PIECES_QUEUED: usize = 8;

/// The tar header facts of a zone file being added, and its path on disk if it has one.
struct ZoneSource<'a> {
    size: u64,
    mode: u32,
    mtime: u64,
    path: Option<&'a Path>,
}

impl ZoneSource<'_> {
    fn bytes(data: &[u8], mode: u32) -> Self {
        ZoneSource {
            size: data.len() as u64,
            mode,
            mtime: now(),
            path: None,
        }
    }
}

/// Passes what is read through it on, and sends a copy in [`ZONE_PIECE`]-sized pieces to a
/// zone checker (until the checker hangs up).
struct Tee<R> {
    inner: R,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    piece: Vec<u8>,
}

impl<R> Tee<R> {
    fn send(&mut self) {
        if self.piece.is_empty() {
            return;
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(ZONE_PIECE));
        if let Some(tx) = &self.tx
            && tx.send(piece).is_err()
        {
            self.tx = None;
        }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.tx.is_some() {
            self.piece.extend_from_slice(&buf[..n]);
            if self.piece.len() >= ZONE_PIECE {
                self.send();
            }
        }
        Ok(n)
    }
}

fn now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

/// Write a new archive at `final_path` holding the members of `src` for which `keep` is true,
/// with their manifest facts; e.g. `zones.tar.gz` (zone files only) from a full zone backup.
///
/// `src` is first fully checked against its manifest (which must be present), then copied; the
/// copy keeps the source's `source` and creation time and takes `kind`. Kept lease files are
/// parsed again so the lease total is right. Written atomically like any archive.
pub fn filter_archive(
    src: &Path,
    final_path: &Path,
    kind: ArchiveKind,
    limits: &Limits,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Manifest, ArchiveError> {
    let first = scan::scan(src, limits, |_, _, _, _| Ok(()))?;
    let manifest = first
        .manifest
        .as_ref()
        .ok_or_else(|| ArchiveError::Manifest {
            archive: src.to_owned(),
            reason: "no manifest".into(),
        })?;
    scan::check_manifest(src, &first, manifest)?;
    let zones: HashMap<&str, &ZoneFacts> = manifest
        .zones
        .iter()
        .map(|z| (z.file.as_str(), z))
        .collect();
    let leases: HashSet<&str> = manifest
        .lease_files
        .iter()
        .map(|l| l.file.as_str())
        .collect();
    let mut w = ArchiveWriter::create(final_path, kind, manifest.source.clone())?;
    w.created = manifest.created;
    scan::scan(src, limits, |path, size, mode, data| {
        if !keep(path) {
            return Ok(());
        }
        if leases.contains(path) {
            w.add_lease_stream(path, size, mode, now(), data)?;
        } else {
            let claimed = w.claim(path)?;
            w.add_claimed(claimed, size, mode, now(), data, None)?;
            if let Some(z) = zones.get(path) {
                w.zones.push(ZoneSlot::Done((*z).clone()));
            }
        }
        Ok(())
    })?;
    // The copy must carry exactly what the checked source held.
    let expected: HashMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    for f in &w.files {
        if expected.get(f.path.as_str()) != Some(&f.sha256.as_str()) {
            return Err(ArchiveError::Checksum {
                archive: src.to_owned(),
                member: f.path.clone(),
                reason: "the archive changed between checking and copying".into(),
            });
        }
    }
    w.finish()
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        // Drop the encoder stack first (it may try to write a trailer), then the temporary
        // file's name; `TempPath`'s own drop removes it. Parsers still running finish on their
        // own; their results are discarded.
        self.tar = None;
        self.temp = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_refuses_unsafe_and_duplicate_member_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            ArchiveWriter::create(dir.path().join("a.tar.gz"), ArchiveKind::Zones, "t").unwrap();
        for bad in ["../x", "/abs", "a/../../b", "", MANIFEST_NAME] {
            assert!(
                matches!(
                    w.add_bytes(bad, b"x", 0o600),
                    Err(ArchiveError::InvalidMemberPath { .. })
                ),
                "{bad:?}"
            );
        }
        w.add_bytes("a", b"x", 0o600).unwrap();
        assert!(w.add_bytes("./a", b"y", 0o600).is_err());
        // Still usable after refused paths.
        w.add_bytes("b", b"y", 0o600).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn short_reader_poisons_and_nothing_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let fin = dir.path().join("a.tar.gz");
        let mut w = ArchiveWriter::create(&fin, ArchiveKind::Leases, "t").unwrap();
        let e = w.add_reader("a", 10, 0o600, &b"abc"[..]).unwrap_err();
        assert!(matches!(e, ArchiveError::SourceChanged { .. }), "{e}");
        assert!(matches!(
            w.add_bytes("b", b"x", 0o600),
            Err(ArchiveError::WriterFailed { .. })
        ));
        assert!(w.finish().is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
