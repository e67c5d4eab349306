//! The client: request/reply sequencing over any byte stream, and the typed commands.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io::{self, BufRead, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::codec::{self, Item, Items, TYPE_BLOCK, TYPE_END, Unit};
use crate::error::{Error, Result};
use crate::types::{
    BackupOptions, Change, DiffEntry, FlushOptions, Record, RecordError, RecordRef, ReloadOptions,
    Version, ZoneStatus, flags, markers,
};

/// Read-buffer size. Replies are decoded from this fixed buffer, one unit at a time.
const READ_BUF: usize = 64 * 1024;
/// Buffered request bytes are written out once they exceed this (and always on BLOCK/END).
const WRITE_BUF: usize = 64 * 1024;
/// A batch is split into request blocks of about this many bytes, so that the error units knotd
/// copies back for the two blocks in flight always fit in its output buffer (256 KiB) while we
/// are still writing.
const BATCH_BLOCK_BYTES: usize = 64 * 1024;

/// Commands this client may send, with the first Knot version that knows each one.
///
/// knotd silently ignores an unknown command and never replies, so nothing else is sent.
pub const KNOWN_COMMANDS: &[(&str, (u32, u32, u32))] = &[
    ("status", (3, 2, 0)),
    ("stop", (3, 2, 0)),
    ("reload", (3, 2, 0)),
    ("stats", (3, 2, 0)),
    ("zone-status", (3, 2, 0)),
    ("zone-reload", (3, 2, 0)),
    ("zone-refresh", (3, 2, 0)),
    ("zone-retransfer", (3, 2, 0)),
    ("zone-notify", (3, 2, 0)),
    ("zone-flush", (3, 2, 0)),
    ("zone-backup", (3, 2, 0)),
    ("zone-restore", (3, 2, 0)),
    ("zone-sign", (3, 2, 0)),
    ("zone-freeze", (3, 2, 0)),
    ("zone-thaw", (3, 2, 0)),
    ("zone-read", (3, 2, 0)),
    ("zone-begin", (3, 2, 0)),
    ("zone-commit", (3, 2, 0)),
    ("zone-abort", (3, 2, 0)),
    ("zone-diff", (3, 2, 0)),
    ("zone-get", (3, 2, 0)),
    ("zone-set", (3, 2, 0)),
    ("zone-unset", (3, 2, 0)),
    ("zone-purge", (3, 2, 0)),
    ("zone-stats", (3, 2, 0)),
    ("zone-validate", (3, 4, 0)),
    ("conf-read", (3, 2, 0)),
];

/// Connect/read/write limits for [`Client::connect_with`]; a dead or wedged server then
/// produces [`Error::Timeout`] instead of a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to keep trying to connect (Knot 3.2 serves one connection at a time).
    pub connect: Duration,
    /// Longest wait for each read; must exceed the longest blocking (`B`) command you send.
    pub read: Duration,
    /// Longest wait for each write.
    pub write: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 60 s per read and write (knotc's default timeout is 60 s).
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
        }
    }
}

/// Buffered reads and writes over one bidirectional stream.
struct BufStream<S> {
    inner: S,
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
}

impl<S: Read + Write> BufStream<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::with_capacity(WRITE_BUF),
        }
    }

    fn queue(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wbuf.extend_from_slice(bytes);
        if self.wbuf.len() >= WRITE_BUF {
            self.flush_out()?;
        }
        Ok(())
    }

    fn flush_out(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let r = self.inner.write_all(&self.wbuf);
            self.wbuf.clear();
            r?;
        }
        self.inner.flush()
    }
}

impl<S: Read + Write> Read for BufStream<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.rpos == self.rlen && out.len() >= self.rbuf.len() {
            return self.inner.read(out);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<S: Read + Write> BufRead for BufStream<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rpos == self.rlen {
            self.rlen = self.inner.read(&mut self.rbuf)?;
            self.rpos = 0;
        }
        Ok(&self.rbuf[self.rpos..self.rlen])
    }

    fn consume(&mut self, n: usize) {
        self.rpos = (self.rpos + n).min(self.rlen);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Broken,
    Closed,
}

/// A synchronous control-socket client over any byte stream (a UNIX socket, or e.g. a
/// Kubernetes exec stream). One request at a time; replies are read unit by unit.
///
/// Dropping the client sends END (best effort), which makes knotd close the connection.
pub struct Client<S: Read + Write> {
    io: BufStream<S>,
    state: State,
    version: Option<Version>,
}

impl Client<UnixStream> {
    /// Connects to knotd's control socket with [`Timeouts::default`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_with(path, Timeouts::default())
    }

    /// Connects to knotd's control socket with explicit connect/read/write timeouts.
    pub fn connect_with(path: impl AsRef<Path>, timeouts: Timeouts) -> Result<Self> {
        let path = path.as_ref();
        let stream = connect_unix(path, timeouts.connect)
            .map_err(|e| Error::io(io::Error::new(e.kind(), format!("{}: {e}", path.display()))))?;
        stream
            .set_read_timeout(Some(timeouts.read))
            .map_err(Error::Io)?;
        stream
            .set_write_timeout(Some(timeouts.write))
            .map_err(Error::Io)?;
        Ok(Self::new(stream))
    }
}

/// Connects a UNIX stream socket, retrying while the listen backlog is full, until `timeout`.
fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long: {}", path.display()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: addr is a valid sockaddr_un and the length matches it.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Backlog full (knotd 3.2 is busy with another client), or a refusal (seen from
            // 3.2 between back-to-back clients, and while knotd restarts): retry until the
            // deadline, so a dead server still fails within `timeout`.
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) | Some(libc::ECONNREFUSED) => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {} timed out: {err}", path.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EISCONN) => break,
            _ => return Err(err),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

impl<S: Read + Write> Client<S> {
    /// Wraps an already connected byte stream. Timeouts are the stream's business.
    pub fn new(stream: S) -> Self {
        Self {
            io: BufStream::new(stream),
            state: State::Ready,
            version: None,
        }
    }

    /// Returns the underlying stream without sending END (pending request bytes are flushed).
    /// Use it to hand the stream on, e.g. to close a Kubernetes exec session yourself.
    pub fn into_inner(self) -> S {
        let mut me = std::mem::ManuallyDrop::new(self);
        let _ = me.io.flush_out();
        // SAFETY: `me` is never used or dropped again, and each field is moved out exactly once.
        let (io, version) = unsafe { (std::ptr::read(&me.io), std::ptr::read(&me.version)) };
        drop(version);
        io.inner
    }

    /// Capacity of the reply read buffer: replies are never buffered beyond this plus one unit.
    pub fn read_buffer_capacity(&self) -> usize {
        self.io.rbuf.len()
    }

    /// Whether the connection is still usable (no transport error, not closed).
    pub fn is_usable(&self) -> bool {
        self.state == State::Ready
    }

    fn check_usable(&self) -> Result<()> {
        match self.state {
            State::Ready => Ok(()),
            State::Broken => Err(Error::Broken),
            State::Closed => Err(Error::Protocol("connection closed".into())),
        }
    }

    fn fail<T>(&mut self, e: Error) -> Result<T> {
        if e.is_fatal() {
            self.state = State::Broken;
        }
        Err(e)
    }

    /// Refuses commands knotd may not know (it would never reply to them).
    fn check_command(&mut self, command: &str) -> Result<()> {
        let Some(&(_, (ma, mi, pa))) = KNOWN_COMMANDS.iter().find(|(c, _)| *c == command) else {
            return Err(Error::UnsupportedCommand {
                command: command.to_owned(),
                server: self
                    .version
                    .as_ref()
                    .map_or_else(|| "unknown".into(), |v| v.text.clone()),
                needs: "an allow-listed command".into(),
            });
        };
        if (ma, mi, pa) > (3, 2, 0) {
            let v = self.version()?;
            if !v.at_least(ma, mi, pa) {
                return Err(Error::UnsupportedCommand {
                    command: command.to_owned(),
                    server: v.text,
                    needs: format!("{ma}.{mi}.{pa}"),
                });
            }
        }
        Ok(())
    }

    /// Sends already encoded request bytes (DATA units) followed by BLOCK, then flushes.
    fn send_encoded(&mut self, body: &[u8]) -> Result<()> {
        self.check_usable()?;
        let r = self
            .io
            .queue(body)
            .and_then(|_| self.io.queue(&[TYPE_BLOCK]))
            .and_then(|_| self.io.flush_out());
        match r {
            Ok(()) => Ok(()),
            Err(e) => self.fail(Error::io(e)),
        }
    }

    /// Sends one request block made of `units` (the first must carry COMMAND).
    fn send(&mut self, units: &[Items]) -> Result<()> {
        let command = units
            .first()
            .and_then(|u| u.text(Item::Command))
            .ok_or_else(|| Error::Protocol("a request needs COMMAND in its first unit".into()))?;
        self.check_command(&command)?;
        let mut body = Vec::new();
        for u in units {
            codec::encode_unit(&Unit::Data(u.clone()), &mut body)
                .map_err(|e| Error::Protocol(e.to_string()))?;
        }
        self.send_encoded(&body)
    }

    /// Reads the next reply unit; END or end-of-stream mid-reply close the client.
    fn next_unit(&mut self) -> Result<Unit> {
        self.check_usable()?;
        match codec::read_unit(&mut self.io) {
            Ok(Some(Unit::End)) => {
                self.state = State::Closed;
                Err(Error::Protocol("knotd ended the conversation (END)".into()))
            }
            Ok(Some(u)) => Ok(u),
            Ok(None) => {
                self.state = State::Broken;
                Err(Error::Protocol("knotd closed the connection".into()))
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// [`Client::next_unit`] into reused buffers (DATA/EXTRA items are left in `buf`).
    fn next_unit_into(&mut self, buf: &mut codec::UnitBuf) -> Result<codec::UnitKind> {
        self.check_usable()?;
        match codec::read_unit_into(&mut self.io, buf) {
            Ok(Some(codec::UnitKind::End)) => {
                self.state = State::Closed;
                Err(Error::Protocol("knotd ended the conversation (END)".into()))
            }
            Ok(Some(kind)) => Ok(kind),
            Ok(None) => {
                self.state = State::Broken;
                Err(Error::Protocol("knotd closed the connection".into()))
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// Reads a whole reply (DATA/EXTRA units up to BLOCK).
    fn read_reply(&mut self) -> Result<Vec<Unit>> {
        let mut units = Vec::new();
        loop {
            match self.next_unit()? {
                Unit::Block => return Ok(units),
                u => units.push(u),
            }
        }
    }

    /// Low level: sends one request block (allow-listed command in the first unit) and returns
    /// the reply's DATA/EXTRA units, errors included.
    pub fn call(&mut self, request: &[Items]) -> Result<Vec<Unit>> {
        self.send(request)?;
        self.read_reply()
    }

    /// Sends a request; the first server error becomes `Err`, otherwise the reply's units.
    fn call_ok(&mut self, request: &[Items]) -> Result<Vec<Unit>> {
        let reply = self.call(request)?;
        if let Some(err) = reply.iter().find_map(|u| match u {
            Unit::Data(i) | Unit::Extra(i) if i.has(Item::Error) => Some(i.clone()),
            _ => None,
        }) {
            return Err(Error::from_server(err));
        }
        Ok(reply)
    }

    /// `status`: succeeds if the server is running.
    pub fn status(&mut self) -> Result<()> {
        self.call_ok(&[Items::command("status")]).map(drop)
    }

    /// `status version`: the server version (cached), accepting both reply spellings.
    pub fn version(&mut self) -> Result<Version> {
        if let Some(v) = &self.version {
            return Ok(v.clone());
        }
        self.send(&[Items::command("status").with(Item::Type, "version")])?;
        let reply = self.read_reply()?;
        let text = reply
            .iter()
            .find_map(|u| match u {
                Unit::Data(i) => i.text(Item::Data),
                _ => None,
            })
            .ok_or_else(|| Error::Protocol("status version: no DATA in reply".into()))?;
        let v = Version::parse(&text)
            .ok_or_else(|| Error::Protocol(format!("unparsable version {text:?}")))?;
        self.version = Some(v.clone());
        Ok(v)
    }

    /// `stop`: asks knotd to exit. Reads the BLOCK and the trailing END; the client is closed.
    pub fn stop(mut self) -> Result<()> {
        self.send(&[Items::command("stop")])?;
        let reply = self.read_reply()?;
        if let Some(Unit::Data(i)) = reply.first()
            && i.has(Item::Error)
        {
            return Err(Error::from_server(i.clone()));
        }
        // knotd follows the BLOCK with END and closes; either is fine.
        match codec::read_unit(&mut self.io) {
            Ok(Some(Unit::End)) | Ok(None) => {}
            Ok(Some(u)) => {
                self.state = State::Broken;
                return Err(Error::Protocol(format!("unexpected {u:?} after stop")));
            }
            Err(e) => {
                self.state = State::Broken;
                return Err(e.into());
            }
        }
        self.state = State::Closed;
        Ok(())
    }

    /// Sends END and drops the connection (also done on drop, ignoring errors).
    pub fn close(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        if self.state != State::Ready {
            return Ok(());
        }
        self.state = State::Closed;
        self.io
            .queue(&[TYPE_END])
            .and_then(|_| self.io.flush_out())
            .map_err(Error::io)
    }

    /// `zone-status ZONE`: role, serial, transaction, freeze, events and markers of one zone.
    pub fn zone_status(&mut self, zone: &str) -> Result<ZoneStatus> {
        let mut all = self.zone_status_request(Some(zone), None)?;
        all.pop()
            .ok_or_else(|| Error::Protocol(format!("zone-status {zone}: empty reply")))
    }

    /// `zone-status` for every configured zone.
    pub fn zone_status_all(&mut self) -> Result<Vec<ZoneStatus>> {
        self.zone_status_request(None, None)
    }

    fn zone_status_request(
        &mut self,
        zone: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Vec<ZoneStatus>> {
        let req = Items::command("zone-status")
            .with_opt(Item::Zone, zone)
            .with_opt(Item::Filter, filter);
        let reply = self.call_ok(&[req])?;
        let mut out: Vec<ZoneStatus> = Vec::new();
        for u in reply {
            let (Unit::Data(items) | Unit::Extra(items)) = u else {
                continue;
            };
            let name = items.text(Item::Zone).unwrap_or_default();
            if out.last().is_none_or(|s| s.zone != name) {
                out.push(ZoneStatus {
                    zone: name,
                    ..Default::default()
                });
            }
            out.last_mut().expect("pushed above").apply(&items);
        }
        Ok(out)
    }

    /// Zones (or the one given) that have an open control transaction right now.
    pub fn open_transactions(&mut self, zone: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .zone_status_request(zone, Some("t"))?
            .into_iter()
            .filter(|s| s.transaction)
            .map(|s| s.zone)
            .collect())
    }

    /// Refuses (typed error) when a blocking event would hit a zone with an open transaction:
    /// Knot 3.2 deadlocks its whole control channel in that case.
    fn ensure_no_transaction(&mut self, zones: &[&str], command: &str) -> Result<()> {
        let open = if zones.is_empty() {
            self.open_transactions(None)?
        } else {
            let mut open = Vec::new();
            for z in zones {
                open.extend(self.open_transactions(Some(z))?);
            }
            open
        };
        match open.into_iter().next() {
            Some(zone) => Err(Error::TransactionOpen {
                zone,
                command: command.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// `zone-reload ZONE` (`B` blocking, `F` force). A blocking reload is refused with
    /// [`Error::TransactionOpen`] while the zone has a transaction (3.2 would deadlock).
    pub fn zone_reload(&mut self, zone: &str, opts: ReloadOptions) -> Result<()> {
        if opts.blocking {
            self.ensure_no_transaction(&[zone], "zone-reload")?;
        }
        let req = Items::command("zone-reload")
            .with(Item::Zone, zone)
            .with_opt(Item::Flags, flags(opts.blocking, opts.force));
        self.call_ok(&[req]).map(drop)
    }

    /// `zone-begin ZONE`: opens a transaction and returns a guard that aborts it on drop
    /// unless [`Transaction::commit`] succeeds.
    pub fn zone_begin(&mut self, zone: &str) -> Result<Transaction<'_, S>> {
        self.call_ok(&[Items::command("zone-begin").with(Item::Zone, zone)])?;
        Ok(Transaction {
            client: self,
            zone: zone.to_owned(),
            finished: false,
        })
    }

    /// `zone-commit ZONE` without a guard (e.g. for a transaction another client left open).
    pub fn zone_commit(&mut self, zone: &str) -> Result<()> {
        self.call_ok(&[Items::command("zone-commit").with(Item::Zone, zone)])
            .map(drop)
    }

    /// `zone-abort ZONE` without a guard (e.g. to clear a stale transaction).
    pub fn zone_abort(&mut self, zone: &str) -> Result<()> {
        self.call_ok(&[Items::command("zone-abort").with(Item::Zone, zone)])
            .map(drop)
    }

    /// Sends several request blocks in one write, then reads their replies in order (each
    /// reply's first server error becomes its `Err`). The write is one system call: a client
    /// killed after it still has knotd run every request, one killed before it none.
    pub fn call_pipelined(&mut self, requests: &[Items]) -> Result<Vec<Result<Vec<Unit>>>> {
        let mut body = Vec::new();
        for (i, req) in requests.iter().enumerate() {
            let command = req
                .text(Item::Command)
                .ok_or_else(|| Error::Protocol(format!("pipelined request {i} has no COMMAND")))?;
            self.check_command(&command)?;
            codec::encode_unit(&Unit::Data(req.clone()), &mut body)
                .map_err(|e| Error::Protocol(e.to_string()))?;
            if i + 1 < requests.len() {
                body.push(TYPE_BLOCK);
            }
        }
        self.send_encoded(&body)?;
        let mut replies = Vec::with_capacity(requests.len());
        for _ in requests {
            let reply = self.read_reply()?;
            replies.push(
                match reply.iter().find_map(|u| match u {
                    Unit::Data(i) | Unit::Extra(i) if i.has(Item::Error) => Some(i.clone()),
                    _ => None,
                }) {
                    Some(err) => Err(Error::from_server(err)),
                    None => Ok(reply),
                },
            );
        }
        Ok(replies)
    }

    /// `zone-begin ZONE` and `zone-set` of `marker` in the same write: the transaction is never
    /// open on the server without the marker that tells whose it is (see
    /// [`Client::zone_markers`]). If the begin fails (e.g. someone else's transaction is open),
    /// a marker that landed in that transaction is taken out again.
    pub fn zone_begin_marked(&mut self, zone: &str, marker: &Record) -> Result<Transaction<'_, S>> {
        let begin = Items::command("zone-begin").with(Item::Zone, zone);
        let set = record_items("zone-set", zone, marker, true);
        let mut replies = self.call_pipelined(&[begin, set])?.into_iter();
        let (begun, set) = (replies.next(), replies.next());
        match (begun, set) {
            (Some(Ok(_)), Some(Ok(_))) => Ok(Transaction {
                client: self,
                zone: zone.to_owned(),
                finished: false,
            }),
            (Some(Ok(_)), Some(Err(e))) => {
                let _ = self.zone_abort(zone);
                Err(e)
            }
            (Some(Err(e)), set) => {
                if matches!(set, Some(Ok(_))) {
                    let _ = self.zone_unset(
                        zone,
                        &marker.owner,
                        Some(&marker.rtype),
                        Some(&marker.data),
                    );
                }
                Err(e)
            }
            _ => Err(Error::Protocol("missing pipelined reply".into())),
        }
    }

    /// `zone-unset` of `marker` and `zone-commit ZONE` in the same write, so the marker is never
    /// committed and the transaction never open without it. A failed commit leaves the
    /// transaction open (unmarked): the caller aborts it.
    pub fn zone_commit_unmarking(&mut self, zone: &str, marker: &Record) -> Result<()> {
        let unset = Items::command("zone-unset")
            .with(Item::Zone, zone)
            .with(Item::Owner, &marker.owner)
            .with(Item::Type, &marker.rtype)
            .with(Item::Data, &marker.data);
        let commit = Items::command("zone-commit").with(Item::Zone, zone);
        let mut replies = self.call_pipelined(&[unset, commit])?.into_iter();
        let _unset = replies.next();
        match replies.next() {
            Some(r) => r.map(drop),
            None => Err(Error::Protocol("missing pipelined reply".into())),
        }
    }

    /// The TXT data at `owner` in `zone`'s open transaction: the markers of
    /// [`Client::zone_begin_marked`]. Empty when there are none (or no transaction).
    pub fn zone_markers(&mut self, zone: &str, owner: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let stream = match self.zone_get(zone, Some(owner), Some("TXT")) {
            Ok(s) => s,
            Err(Error::NoSuchNode(_) | Error::NoActiveTransaction(_)) => return Ok(out),
            Err(e) => return Err(e),
        };
        for r in stream {
            match r {
                Ok(r) => out.push(r.data),
                Err(Error::NoSuchNode(_) | Error::NoActiveTransaction(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `zone-set ZONE OWNER [TTL] TYPE DATA` (needs an open transaction).
    pub fn zone_set(&mut self, zone: &str, record: &Record) -> Result<()> {
        self.call_ok(&[record_items("zone-set", zone, record, true)])
            .map(drop)
    }

    /// `zone-unset ZONE OWNER [TYPE [DATA]]`: removes a node, an RRset or one record.
    pub fn zone_unset(
        &mut self,
        zone: &str,
        owner: &str,
        rtype: Option<&str>,
        data: Option<&str>,
    ) -> Result<()> {
        let req = Items::command("zone-unset")
            .with(Item::Zone, zone)
            .with(Item::Owner, owner)
            .with_opt(Item::Type, rtype)
            .with_opt(Item::Data, data);
        self.call_ok(&[req]).map(drop)
    }

    /// Batched `zone-set`: all records as DATA units of few request blocks. Returns the records
    /// knotd refused, by index in `records` (empty = all set). `Err` only for transport errors.
    ///
    /// A repeat of an earlier record (same owner, type, rdata as written) is not sent and is
    /// reported as [`Error::DuplicateInBatch`]: on Knot 3.2 the failing repeat would make the
    /// first change vanish from the committed zone.
    pub fn zone_set_batch(&mut self, zone: &str, records: &[Record]) -> Result<Vec<RecordError>> {
        let records: Vec<RecordRef<'_>> = records.iter().map(Record::as_ref).collect();
        self.batch("zone-set", zone, &records, true)
    }

    /// [`Client::zone_set_batch`] of borrowed records (no copies of a large batch).
    pub fn zone_set_batch_ref(
        &mut self,
        zone: &str,
        records: &[RecordRef<'_>],
    ) -> Result<Vec<RecordError>> {
        self.batch("zone-set", zone, records, true)
    }

    /// Batched `zone-unset` of exact records (TTL ignored; an empty `data` removes the RRset,
    /// an empty `rtype` the node). Returns refusals by index, like [`Client::zone_set_batch`].
    pub fn zone_unset_batch(&mut self, zone: &str, records: &[Record]) -> Result<Vec<RecordError>> {
        let records: Vec<RecordRef<'_>> = records.iter().map(Record::as_ref).collect();
        self.batch("zone-unset", zone, &records, false)
    }

    /// [`Client::zone_unset_batch`] of borrowed records.
    pub fn zone_unset_batch_ref(
        &mut self,
        zone: &str,
        records: &[RecordRef<'_>],
    ) -> Result<Vec<RecordError>> {
        self.batch("zone-unset", zone, records, false)
    }

    fn batch(
        &mut self,
        command: &str,
        zone: &str,
        records: &[RecordRef<'_>],
        with_ttl: bool,
    ) -> Result<Vec<RecordError>> {
        self.check_command(command)?;
        let mut failures = Vec::new();
        // Knot 3.2 (before 3.3.2) silently loses a change from the transaction when the same
        // record is set or unset twice in it. Repeats are therefore never sent: they are
        // reported as refused, pointing at the first occurrence. They are found while the
        // blocks are encoded, so that the first block leaves at once.
        let mut first_seen = Repeats::new(records, record_hash);
        let mut to_send: Vec<usize> = Vec::with_capacity(records.len());
        // Pipelined: each block is sent before the reply to the previous one is read, so knotd
        // never waits for the next block to be encoded. At most two blocks are in flight, well
        // within the socket's buffers (a block and its possible error replies are < 200 KiB).
        let mut body = Vec::new();
        let mut in_flight: Option<(usize, usize)> = None;
        let mut next = 0;
        loop {
            body.clear();
            let start = to_send.len();
            while next < records.len() && body.len() < BATCH_BLOCK_BYTES {
                let (i, r) = (next, &records[next]);
                next += 1;
                if let Some(first) = first_seen.check(i) {
                    failures.push(RecordError {
                        index: i,
                        error: Error::DuplicateInBatch { first },
                    });
                    continue;
                }
                encode_record(command, zone, r, with_ttl, &mut body)
                    .map_err(|e| Error::Protocol(format!("record {i}: {e}")))?;
                to_send.push(i);
            }
            let sent = if to_send.len() > start {
                self.send_encoded(&body)?;
                Some((start, to_send.len()))
            } else {
                None
            };
            if let Some((from, to)) = in_flight.take() {
                self.read_batch_reply(&to_send[from..to], records, with_ttl, &mut failures)?;
            }
            match sent {
                Some(block) => in_flight = Some(block),
                None => break,
            }
        }
        failures.sort_by_key(|f| f.index);
        Ok(failures)
    }

    /// Reads the reply to one batch block (the records at `sent` indexes of `records`) and
    /// adds its refusals to `failures`.
    fn read_batch_reply(
        &mut self,
        sent: &[usize],
        records: &[RecordRef<'_>],
        with_ttl: bool,
        failures: &mut Vec<RecordError>,
    ) -> Result<()> {
        let errors: Vec<Items> = self
            .read_reply()?
            .into_iter()
            .filter_map(|u| match u {
                Unit::Data(i) if i.has(Item::Error) => Some(i),
                _ => None,
            })
            .collect();
        let chunk: Vec<&RecordRef<'_>> = sent.iter().map(|&i| &records[i]).collect();
        for (offset, items) in match_errors(&chunk, errors, with_ttl)? {
            failures.push(RecordError {
                index: sent[offset],
                error: Error::from_server(items),
            });
        }
        Ok(())
    }

    /// `zone-diff ZONE`: removed records (`-`) then added ones (`+`) of the open transaction.
    pub fn zone_diff(&mut self, zone: &str) -> Result<Vec<DiffEntry>> {
        let reply = self.call_ok(&[Items::command("zone-diff").with(Item::Zone, zone)])?;
        let mut out = Vec::new();
        for u in reply {
            let Unit::Data(items) = u else { continue };
            let change = match markers(&items).find(|c| *c == '+' || *c == '-') {
                Some('+') => Change::Added,
                Some(_) => Change::Removed,
                None => {
                    return Err(Error::Protocol(format!(
                        "zone-diff record without +/- marker: {items:?}"
                    )));
                }
            };
            out.push(DiffEntry {
                change,
                record: Record::from_items(&items),
            });
        }
        Ok(out)
    }

    /// `zone-read ZONE [OWNER [TYPE]]`, streamed: the iterator decodes one DATA unit at a time,
    /// so a zone of any size is read in bounded memory.
    pub fn zone_read(
        &mut self,
        zone: &str,
        owner: Option<&str>,
        rtype: Option<&str>,
    ) -> Result<RecordStream<'_, S>> {
        self.stream("zone-read", zone, owner, rtype)
    }

    /// `zone-get ZONE [OWNER [TYPE]]`: like [`Client::zone_read`] but shows the open
    /// transaction's copy of the zone.
    pub fn zone_get(
        &mut self,
        zone: &str,
        owner: Option<&str>,
        rtype: Option<&str>,
    ) -> Result<RecordStream<'_, S>> {
        self.stream("zone-get", zone, owner, rtype)
    }

    fn stream(
        &mut self,
        command: &str,
        zone: &str,
        owner: Option<&str>,
        rtype: Option<&str>,
    ) -> Result<RecordStream<'_, S>> {
        let req = Items::command(command)
            .with(Item::Zone, zone)
            .with_opt(Item::Owner, owner)
            .with_opt(Item::Type, rtype);
        self.send(&[req])?;
        Ok(RecordStream {
            client: self,
            done: false,
            largest_unit: 0,
            buf: codec::UnitBuf::new(),
        })
    }

    /// `zone-flush ZONE` (or all zones with `None`), optionally into `outdir`. A blocking flush
    /// is refused while the zone has a transaction (3.2 can deadlock behind a pending reload).
    pub fn zone_flush(&mut self, zone: Option<&str>, opts: &FlushOptions) -> Result<()> {
        if opts.blocking {
            let zones: Vec<&str> = zone.into_iter().collect();
            self.ensure_no_transaction(&zones, "zone-flush")?;
        }
        let outdir = opts
            .outdir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        let req = Items::command("zone-flush")
            .with_opt(Item::Zone, zone)
            .with_opt(Item::Flags, flags(opts.blocking, opts.force))
            .with_opt(Item::Filter, outdir.as_ref().map(|_| "d"))
            .with_opt(Item::Data, outdir.as_deref());
        self.call_ok(&[req]).map(drop)
    }

    /// `zone-backup` of `zones` (all zones and the catalog if empty) into `opts.dir`.
    /// Allowed during a transaction (it saves the committed data).
    pub fn zone_backup(&mut self, zones: &[&str], opts: &BackupOptions) -> Result<()> {
        let req = backup_items("zone-backup", zones, opts);
        self.call_ok(&req).map(drop)
    }

    /// `zone-restore` of `zones` (all if empty) from `opts.dir`. Refused with
    /// [`Error::TransactionOpen`] while any affected zone has a transaction.
    pub fn zone_restore(&mut self, zones: &[&str], opts: &BackupOptions) -> Result<()> {
        self.ensure_no_transaction(zones, "zone-restore")?;
        let req = backup_items("zone-restore", zones, opts);
        self.call_ok(&req).map(drop)
    }
}

impl<S: Read + Write> Drop for Client<S> {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl<S: Read + Write> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// One record's request unit, encoded straight into `out` (what [`record_items`] and
/// [`codec::encode_unit`] make, without copying the record's strings).
fn encode_record(
    command: &str,
    zone: &str,
    r: &RecordRef<'_>,
    with_ttl: bool,
    out: &mut Vec<u8>,
) -> std::result::Result<(), codec::CodecError> {
    let mut ttl_text = [0u8; 10];
    let ttl = r
        .ttl
        .filter(|_| with_ttl)
        .map(|t| decimal(t, &mut ttl_text));
    let mut items: [(Item, &[u8]); 6] = [
        (Item::Command, command.as_bytes()),
        (Item::Zone, zone.as_bytes()),
        (Item::Owner, r.owner.as_bytes()),
        (Item::Command, b""),
        (Item::Command, b""),
        (Item::Command, b""),
    ];
    let mut n = 3;
    // Empty optional items are left out, as `Items::with_opt` does.
    for (item, v) in [
        (Item::Ttl, ttl.unwrap_or_default()),
        (Item::Type, r.rtype.as_bytes()),
        (Item::Data, r.data.as_bytes()),
    ] {
        if !v.is_empty() {
            items[n] = (item, v);
            n += 1;
        }
    }
    codec::encode_data_borrowed(&items[..n], out)
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn record_items(command: &str, zone: &str, r: &Record, with_ttl: bool) -> Items {
    let ttl = r.ttl.filter(|_| with_ttl).map(|t| t.to_string());
    Items::command(command)
        .with(Item::Zone, zone)
        .with(Item::Owner, &r.owner)
        .with_opt(Item::Ttl, ttl)
        .with_opt(Item::Type, Some(&r.rtype))
        .with_opt(Item::Data, Some(&r.data))
}

fn backup_items(command: &str, zones: &[&str], opts: &BackupOptions) -> Vec<Items> {
    let filter = format!("d{}", opts.components.filter_letters());
    let dir = opts.dir.to_string_lossy().into_owned();
    let base = Items::command(command)
        .with_opt(Item::Flags, flags(opts.blocking, opts.force))
        .with(Item::Filter, &filter)
        .with(Item::Data, &dir);
    if zones.is_empty() {
        return vec![base];
    }
    zones
        .iter()
        .map(|z| base.clone().with(Item::Zone, z))
        .collect()
}

/// Maps error units back to request indexes by the request items knotd copies into them.
///
/// Errors come in request order. Identical records fail as a suffix (the first may succeed, a
/// repeat then fails), so the latest feasible match is taken, right to left.
fn match_errors(
    records: &[&RecordRef<'_>],
    errors: Vec<Items>,
    with_ttl: bool,
) -> Result<Vec<(usize, Items)>> {
    let key = |r: &&RecordRef<'_>| {
        (
            r.owner.to_owned(),
            r.ttl.filter(|_| with_ttl).map(|t| t.to_string()),
            r.rtype.to_owned(),
            r.data.to_owned(),
        )
    };
    let mut out = Vec::with_capacity(errors.len());
    let mut upper = records.len();
    for items in errors.into_iter().rev() {
        let want = (
            items.text(Item::Owner).unwrap_or_default(),
            items.text(Item::Ttl),
            items.text(Item::Type).unwrap_or_default(),
            items.text(Item::Data).unwrap_or_default(),
        );
        let found = records[..upper].iter().rposition(|r| key(r) == want);
        match found {
            Some(i) => {
                out.push((i, items));
                upper = i;
            }
            None => {
                return Err(Error::Protocol(format!(
                    "cannot map server error {:?} back to a request record",
                    ServerText(&items)
                )));
            }
        }
    }
    out.reverse();
    Ok(out)
}

struct ServerText<'a>(&'a Items);

impl std::fmt::Debug for ServerText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An open zone transaction. Dropping it without [`Transaction::commit`] sends `zone-abort`.
///
/// It dereferences to the [`Client`], so every command stays available while it is open.
pub struct Transaction<'c, S: Read + Write> {
    client: &'c mut Client<S>,
    zone: String,
    finished: bool,
}

impl<'c, S: Read + Write> Transaction<'c, S> {
    /// The zone this transaction belongs to.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `zone-set` in this transaction's zone.
    pub fn set(&mut self, record: &Record) -> Result<()> {
        let zone = self.zone.clone();
        self.client.zone_set(&zone, record)
    }

    /// `zone-unset` in this transaction's zone.
    pub fn unset(&mut self, owner: &str, rtype: Option<&str>, data: Option<&str>) -> Result<()> {
        let zone = self.zone.clone();
        self.client.zone_unset(&zone, owner, rtype, data)
    }

    /// Batched `zone-set` in this transaction's zone; refusals by record index.
    pub fn set_batch(&mut self, records: &[Record]) -> Result<Vec<RecordError>> {
        let zone = self.zone.clone();
        self.client.zone_set_batch(&zone, records)
    }

    /// Batched `zone-unset` in this transaction's zone; refusals by record index.
    pub fn unset_batch(&mut self, records: &[Record]) -> Result<Vec<RecordError>> {
        let zone = self.zone.clone();
        self.client.zone_unset_batch(&zone, records)
    }

    /// `zone-diff` of this transaction.
    pub fn diff(&mut self) -> Result<Vec<DiffEntry>> {
        let zone = self.zone.clone();
        self.client.zone_diff(&zone)
    }

    /// `zone-get`: the transaction's copy of the zone, streamed.
    pub fn get(&mut self, owner: Option<&str>, rtype: Option<&str>) -> Result<RecordStream<'_, S>> {
        let zone = self.zone.clone();
        self.client.zone_get(&zone, owner, rtype)
    }

    /// Takes `marker` out and commits, in one write ([`Client::zone_commit_unmarking`]). On
    /// failure the transaction is aborted.
    pub fn commit_unmarking(mut self, marker: &Record) -> Result<()> {
        let zone = self.zone.clone();
        self.client.zone_commit_unmarking(&zone, marker)?;
        self.finished = true;
        Ok(())
    }

    /// `zone-commit`. On failure (e.g. [`Error::SemanticCheck`]) the transaction is aborted.
    pub fn commit(mut self) -> Result<()> {
        let zone = self.zone.clone();
        self.client.zone_commit(&zone)?;
        self.finished = true;
        Ok(())
    }

    /// `zone-abort`, reporting its result (dropping the guard aborts silently).
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        let zone = self.zone.clone();
        self.client.zone_abort(&zone)
    }

    /// Leaves the transaction open on the server and releases the client (no abort).
    pub fn detach(mut self) {
        self.finished = true;
    }
}

impl<S: Read + Write> Deref for Transaction<'_, S> {
    type Target = Client<S>;
    fn deref(&self) -> &Client<S> {
        self.client
    }
}

impl<S: Read + Write> DerefMut for Transaction<'_, S> {
    fn deref_mut(&mut self) -> &mut Client<S> {
        self.client
    }
}

impl<S: Read + Write> Drop for Transaction<'_, S> {
    fn drop(&mut self) {
        if !self.finished && self.client.is_usable() {
            let zone = std::mem::take(&mut self.zone);
            let _ = self.client.zone_abort(&zone);
        }
    }
}

/// Records of a zone-read/zone-get reply, decoded one DATA unit at a time.
///
/// A server error in the stream is yielded as `Err` and reading goes on; the stream ends at the
/// reply's BLOCK. Dropping it early reads and discards the rest, keeping the connection in step.
pub struct RecordStream<'c, S: Read + Write> {
    client: &'c mut Client<S>,
    done: bool,
    largest_unit: usize,
    buf: codec::UnitBuf,
}

impl<S: Read + Write> RecordStream<'_, S> {
    /// Bytes of the largest single unit decoded so far: with the fixed read buffer, this bounds
    /// the memory the stream ever holds, whatever the zone's size.
    pub fn largest_unit_bytes(&self) -> usize {
        self.largest_unit
    }

    /// Capacity of the client's read buffer.
    pub fn read_buffer_capacity(&self) -> usize {
        self.client.read_buffer_capacity()
    }

    /// The next record, borrowed from the stream's decoding buffer (valid until the next call):
    /// like [`Iterator::next`] without allocating per record.
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>>> {
        while !self.done {
            match self.client.next_unit_into(&mut self.buf) {
                Ok(codec::UnitKind::Data) => {
                    self.largest_unit = self.largest_unit.max(self.buf.value_bytes());
                    if self.buf.has(Item::Error) {
                        return Some(Err(Error::from_server(self.buf.to_items())));
                    }
                    return Some(Ok(record_ref(&mut self.buf)));
                }
                Ok(codec::UnitKind::Extra) => continue,
                Ok(codec::UnitKind::Block) | Ok(codec::UnitKind::End) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// The record in `buf` (absent items read as empty, like [`Record::from_items`]).
fn record_ref(buf: &mut codec::UnitBuf) -> RecordRef<'_> {
    for item in [Item::Owner, Item::Ttl, Item::Type, Item::Data] {
        let _ = buf.text(item);
    }
    let text = |item| {
        buf.get(item)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    };
    RecordRef {
        owner: text(Item::Owner),
        ttl: buf
            .get(Item::Ttl)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|t| t.parse().ok()),
        rtype: text(Item::Type),
        data: text(Item::Data),
    }
}

impl<S: Read + Write> Iterator for RecordStream<'_, S> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_ref().map(|r| r.map(|r| r.to_record()))
    }
}

impl<S: Read + Write> Drop for RecordStream<'_, S> {
    fn drop(&mut self) {
        while !self.done {
            match self.client.next_unit_into(&mut self.buf) {
                Ok(codec::UnitKind::Block) | Err(_) => self.done = true,
                Ok(_) => {}
            }
        }
    }
}

/// Finds records repeated in a batch by a 64-bit hash of each (16 bytes a record, where a map of
/// the borrowed strings took 56: 6 MB less at 100,000 records); records that share a hash but
/// differ are told apart by comparing them.
struct Repeats<'r, 'a> {
    records: &'r [RecordRef<'a>],
    hash: fn(&RecordRef<'_>) -> u64,
    first_by_hash: HashMap<u64, usize, BuildHasherDefault<HashIsKey>>,
    /// Records whose hash an earlier, different record has.
    collided: HashMap<(&'a str, &'a str, &'a str), usize>,
}

impl<'r, 'a> Repeats<'r, 'a> {
    fn new(records: &'r [RecordRef<'a>], hash: fn(&RecordRef<'_>) -> u64) -> Self {
        let mut first_by_hash = HashMap::default();
        first_by_hash.reserve(records.len());
        Repeats {
            records,
            hash,
            first_by_hash,
            collided: HashMap::new(),
        }
    }

    /// The index of the first occurrence of record `i`, if `i` repeats it (records are
    /// checked in order).
    fn check(&mut self, i: usize) -> Option<usize> {
        let r = &self.records[i];
        let key = |r: &RecordRef<'a>| (r.owner, r.rtype, r.data);
        let first = *self.first_by_hash.entry((self.hash)(r)).or_insert(i);
        if first == i {
            None
        } else if key(&self.records[first]) == key(r) {
            Some(first)
        } else {
            match *self.collided.entry(key(r)).or_insert(i) {
                first if first == i => None,
                first => Some(first),
            }
        }
    }
}

/// FNV-1a of a record's owner, type and data (what makes a repeat).
fn record_hash(r: &RecordRef<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [r.owner, r.rtype, r.data] {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_found_by_hash_and_told_apart_when_hashes_collide() {
        let r = |owner, data| RecordRef {
            owner,
            ttl: Some(60),
            rtype: "A",
            data,
        };
        let records = [
            r("a.", "192.0.2.1"),
            r("b.", "192.0.2.1"),
            r("a.", "192.0.2.1"),
            r("b.", "192.0.2.1"),
            r("a.", "192.0.2.2"),
        ];
        let want = [None, None, Some(0), Some(1), None];
        for hash in [record_hash as fn(&RecordRef<'_>) -> u64, |_| 7] {
            let mut seen = Repeats::new(&records, hash);
            let got: Vec<Option<usize>> = (0..records.len()).map(|i| seen.check(i)).collect();
            assert_eq!(got, want);
        }
        assert_ne!(record_hash(&records[0]), record_hash(&records[1]));
    }

    #[test]
    fn a_record_encodes_to_the_same_bytes_borrowed_or_through_items() {
        let records = [
            Record::new("www", 3600, "A", "192.0.2.1"),
            Record::new("@", 0, "TXT", "\"x\""),
            Record::new("big", u32::MAX, "MX", "10 mail"),
            Record::without_ttl("old", "A", ""),
            Record::without_ttl("node", "", ""),
        ];
        for r in &records {
            for (command, with_ttl) in [("zone-set", true), ("zone-unset", false)] {
                let mut borrowed = Vec::new();
                encode_record(command, "home.arpa.", &r.as_ref(), with_ttl, &mut borrowed).unwrap();
                let mut through_items = Vec::new();
                codec::encode_unit(
                    &Unit::Data(record_items(command, "home.arpa.", r, with_ttl)),
                    &mut through_items,
                )
                .unwrap();
                assert_eq!(borrowed, through_items, "{r:?} {command}");
            }
        }
        let mut buf = [0u8; 10];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(4_294_967_295, &mut buf), b"4294967295");
    }

    #[test]
    fn matches_errors_right_to_left_for_duplicates() {
        let a = Record::new("a", 60, "A", "192.0.2.1");
        let b = Record::new("b", 60, "A", "192.0.2.2");
        let (ra, rb) = (a.as_ref(), b.as_ref());
        let recs = vec![&ra, &rb, &ra];
        let err = |r: &Record| {
            record_items("zone-set", "z", r, true)
                .with(Item::Error, "such record already exists in zone")
        };
        let m = match_errors(&recs, vec![err(&a)], true).unwrap();
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
        let m = match_errors(&recs, vec![err(&a), err(&b), err(&a)], true).unwrap();
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        let m = match_errors(&recs, vec![err(&b), err(&a)], true).unwrap();
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let c = Record::new("c", 1, "A", "x");
        assert!(match_errors(&recs, vec![err(&c)], true).is_err());
    }
}
