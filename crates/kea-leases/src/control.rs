//! Client for Kea's control channel: one JSON command per connection, one JSON answer.
//!
//! The transport is any byte stream (`Read + Write`), supplied by a [`Connector`]: a UNIX socket
//! ([`UnixConnector`]) here, a Kubernetes exec stream elsewhere. The answer is read until the
//! peer closes or a complete JSON value has arrived, whichever is first.
//!
//! Kea's strings are byte strings: it writes every byte outside printable ASCII as `\u00XX` and
//! reads `\u00XX` back as that byte. Decoding such strings to Unicode and re-encoding them would
//! corrupt hostnames and user contexts, so [`KeaLease`] keeps them as raw JSON
//! ([`serde_json::value::RawValue`]) and sends them back exactly as received.

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::csv::{EscapedText, Lease};

/// Opens a fresh byte stream to Kea's control channel for each command.
pub trait Connector {
    /// The stream type.
    type Stream: Read + Write;
    /// Opens a connection.
    fn connect(&self) -> io::Result<Self::Stream>;
}

/// Connects to Kea's UNIX control socket (`control-socket.socket-name`).
#[derive(Clone, Debug)]
pub struct UnixConnector {
    /// The socket path.
    pub path: PathBuf,
    /// Read/write timeout per connection (a 1M-lease `lease4-get-all` takes ~40 s).
    pub timeout: Option<Duration>,
}

impl UnixConnector {
    /// A connector for the socket at `path` with a 5-minute timeout.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            timeout: Some(Duration::from_secs(300)),
        }
    }
}

impl Connector for UnixConnector {
    type Stream = UnixStream;
    fn connect(&self) -> io::Result<UnixStream> {
        let s = UnixStream::connect(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        s.set_read_timeout(self.timeout)?;
        s.set_write_timeout(self.timeout)?;
        Ok(s)
    }
}

/// Kea's answer: result code, text and raw arguments.
#[derive(Debug, Deserialize)]
pub struct Response {
    /// 0 success, 1 error, 2 unsupported command, 3 empty (nothing found), 4 conflict (2.6+).
    pub result: i64,
    /// Human-readable text, if any.
    #[serde(default)]
    pub text: Option<String>,
    /// The arguments, kept as raw JSON.
    #[serde(default)]
    pub arguments: Option<Box<RawValue>>,
}

/// Errors from the control channel. Result codes map to variants.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting, writing or reading failed.
    #[error("control channel I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer closed before sending a complete JSON value.
    #[error("control channel closed after {0} bytes without a complete answer")]
    Truncated(usize),
    /// The answer is not the JSON Kea sends.
    #[error("bad answer to {command}: {source}")]
    BadAnswer {
        /// The command sent.
        command: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Result 1: the command failed.
    #[error("{command} failed: {text}")]
    Failed {
        /// The command sent.
        command: String,
        /// Kea's text.
        text: String,
    },
    /// Result 2: the command is not supported (hook not loaded?).
    #[error("{command} is not supported: {text}")]
    Unsupported {
        /// The command sent.
        command: String,
        /// Kea's text.
        text: String,
    },
    /// Result 3 where something was required: nothing found.
    #[error("{command}: nothing found: {text}")]
    Empty {
        /// The command sent.
        command: String,
        /// Kea's text.
        text: String,
    },
    /// `lease4-add` of an address that already has a lease (result 1 in Kea 2.2, 4 in 2.6).
    #[error("lease for {address} already exists: {text}")]
    LeaseExists {
        /// The address.
        address: Ipv4Addr,
        /// Kea's text.
        text: String,
    },
    /// Result 4: conflict (Kea 2.6+).
    #[error("{command}: conflict: {text}")]
    Conflict {
        /// The command sent.
        command: String,
        /// Kea's text.
        text: String,
    },
    /// Any other result code.
    #[error("{command}: result {code}: {text}")]
    Other {
        /// The command sent.
        command: String,
        /// The result code.
        code: i64,
        /// Kea's text.
        text: String,
    },
}

/// Finds where the first JSON object or array ends, fed incrementally (linear in the answer).
#[derive(Default)]
struct JsonEnd {
    depth: usize,
    started: bool,
    in_str: bool,
    esc: bool,
    seen: usize,
}

impl JsonEnd {
    /// Scans `more` (the bytes after those already fed); returns the total length of the
    /// value once its closing bracket has been seen.
    fn feed(&mut self, more: &[u8]) -> Option<usize> {
        for (i, &b) in more.iter().enumerate() {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.started = true;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.started && self.depth == 0 {
                        return Some(self.seen + i + 1);
                    }
                }
                _ => {}
            }
        }
        self.seen += more.len();
        None
    }
}

/// Sends `command` (one JSON value) on `stream` and reads one JSON answer: until the peer
/// closes or a complete JSON value has arrived. Returns the answer's bytes.
pub fn exchange<S: Read + Write>(stream: &mut S, command: &[u8]) -> Result<Vec<u8>, ControlError> {
    stream.write_all(command)?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut scan = JsonEnd::default();
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ControlError::Truncated(buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = scan.feed(&chunk[..n]) {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

/// A DHCPv4 lease as Kea's lease commands show it (`lease4-get-page` items).
///
/// `hostname` and `user_context` are raw JSON (a string literal and a map) exactly as Kea sent
/// them, so they go back byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeaLease {
    /// The address.
    #[serde(rename = "ip-address")]
    pub ip_address: Ipv4Addr,
    /// Hardware address, colon hex (may be empty for declined leases).
    #[serde(rename = "hw-address", default)]
    pub hw_address: String,
    /// Client identifier, colon hex.
    #[serde(rename = "client-id", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Valid lifetime in seconds.
    #[serde(rename = "valid-lft")]
    pub valid_lft: u32,
    /// Client last transmission time (epoch seconds).
    pub cltt: i64,
    /// Subnet identifier.
    #[serde(rename = "subnet-id")]
    pub subnet_id: u32,
    /// Forward DNS update done.
    #[serde(rename = "fqdn-fwd", default)]
    pub fqdn_fwd: bool,
    /// Reverse DNS update done.
    #[serde(rename = "fqdn-rev", default)]
    pub fqdn_rev: bool,
    /// Hostname as a raw JSON string literal (Kea's `\u00XX` escapes intact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Box<RawValue>>,
    /// Lease state.
    #[serde(default)]
    pub state: u32,
    /// User context as raw JSON (a map), if any.
    #[serde(
        rename = "user-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_context: Option<Box<RawValue>>,
    /// Pool identifier (Kea 2.4+).
    #[serde(rename = "pool-id", default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<u32>,
}

impl PartialEq for KeaLease {
    fn eq(&self, o: &Self) -> bool {
        let raw = |v: &Option<Box<RawValue>>| v.as_ref().map(|r| r.get().to_owned());
        self.ip_address == o.ip_address
            && self.hw_address == o.hw_address
            && self.client_id == o.client_id
            && self.valid_lft == o.valid_lft
            && self.cltt == o.cltt
            && self.subnet_id == o.subnet_id
            && self.fqdn_fwd == o.fqdn_fwd
            && self.fqdn_rev == o.fqdn_rev
            && raw(&self.hostname).unwrap_or_else(|| "\"\"".into())
                == raw(&o.hostname).unwrap_or_else(|| "\"\"".into())
            && self.state == o.state
            && raw(&self.user_context) == raw(&o.user_context)
            && self.pool_id.unwrap_or(0) == o.pool_id.unwrap_or(0)
    }
}

impl Eq for KeaLease {}

/// Encodes bytes as a JSON string literal the way Kea writes strings: `\"`, `\\`, the short
/// escapes for control characters, and `\u00XX` for every other byte outside printable ASCII.
pub fn kea_json_string(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    crate::kea_json::render_str(&mut out, bytes);
    String::from_utf8(out).expect("rendered JSON strings are ASCII")
}

/// Decodes a JSON string literal as Kea does: to bytes, `\u00XX` being byte `XX`. Fails on
/// `\uXXXX` above `00FF` (Kea rejects those) and on malformed literals.
pub fn decode_kea_json_string(lit: &str) -> Option<Vec<u8>> {
    let b = lit.as_bytes();
    let inner = b.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *inner.get(i + 1)?;
        i += 2;
        out.push(match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = std::str::from_utf8(inner.get(i..i + 4)?).ok()?;
                let v = u16::from_str_radix(hex, 16).ok()?;
                i += 4;
                u8::try_from(v).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}

fn colon_hex(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 3);
    crate::csv::write_hex(&mut v, bytes);
    String::from_utf8(v).expect("hex is ASCII")
}

fn parse_colon_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(':')
        .map(|t| {
            if t.is_empty() || t.len() > 2 {
                None
            } else {
                u8::from_str_radix(t, 16).ok()
            }
        })
        .collect()
}

impl KeaLease {
    /// The lease as Kea would show it for a memfile row (hostname and user context re-escaped
    /// from the file's bytes the way Kea writes JSON strings).
    pub fn from_lease(l: &Lease) -> Self {
        let hostname = kea_json_string(&l.hostname.decode());
        let ctx = l.user_context.decode();
        let ctx = crate::kea_json::canonical_map(&ctx).unwrap_or(ctx);
        Self {
            ip_address: l.address,
            hw_address: colon_hex(&l.hwaddr),
            client_id: (!l.client_id.is_empty()).then(|| colon_hex(&l.client_id)),
            valid_lft: l.valid_lifetime,
            cltt: l.cltt(),
            subnet_id: l.subnet_id,
            fqdn_fwd: l.fqdn_fwd,
            fqdn_rev: l.fqdn_rev,
            hostname: RawValue::from_string(hostname).ok(),
            state: l.state,
            user_context: (!ctx.is_empty())
                .then(|| RawValue::from_string(String::from_utf8_lossy(&ctx).into_owned()).ok())
                .flatten(),
            pool_id: (l.pool_id != 0).then_some(l.pool_id),
        }
    }

    /// The lease as a memfile row holds it (hostname and user context escaped for the file).
    /// `None` if a field does not convert (bad hex, a `\u` escape above `00FF`).
    pub fn to_lease(&self) -> Option<Lease> {
        let hostname = match &self.hostname {
            Some(h) => decode_kea_json_string(h.get())?,
            None => Vec::new(),
        };
        let ctx = self
            .user_context
            .as_ref()
            .map(|c| c.get().as_bytes().to_vec())
            .unwrap_or_default();
        Some(Lease {
            address: self.ip_address,
            hwaddr: parse_colon_hex(&self.hw_address)?,
            client_id: parse_colon_hex(self.client_id.as_deref().unwrap_or(""))?,
            valid_lifetime: self.valid_lft,
            expire: u64::try_from(self.cltt + i64::from(self.valid_lft)).ok()?,
            subnet_id: self.subnet_id,
            fqdn_fwd: self.fqdn_fwd,
            fqdn_rev: self.fqdn_rev,
            hostname: EscapedText::encode(&hostname),
            state: self.state,
            user_context: EscapedText::encode(&ctx),
            pool_id: self.pool_id.unwrap_or(0),
            extra: Vec::new(),
        })
    }

    /// The arguments for `lease4-add` / `lease4-update`: the lease with `expire` = cltt +
    /// valid-lft (so Kea keeps the same cltt) instead of `cltt`.
    fn add_arguments(&self, force_create: Option<bool>) -> String {
        let mut m = String::from("{");
        let mut push = |k: &str, v: &str| {
            if m.len() > 1 {
                m.push_str(", ");
            }
            m.push('"');
            m.push_str(k);
            m.push_str("\": ");
            m.push_str(v);
        };
        push("ip-address", &format!("\"{}\"", self.ip_address));
        push("hw-address", &kea_json_string(self.hw_address.as_bytes()));
        if let Some(c) = &self.client_id {
            push("client-id", &kea_json_string(c.as_bytes()));
        }
        push("valid-lft", &self.valid_lft.to_string());
        push(
            "expire",
            &(self.cltt + i64::from(self.valid_lft)).to_string(),
        );
        push("subnet-id", &self.subnet_id.to_string());
        push("fqdn-fwd", if self.fqdn_fwd { "true" } else { "false" });
        push("fqdn-rev", if self.fqdn_rev { "true" } else { "false" });
        if let Some(h) = &self.hostname {
            push("hostname", h.get());
        }
        push("state", &self.state.to_string());
        if let Some(c) = &self.user_context {
            push("user-context", c.get());
        }
        if let Some(p) = self.pool_id {
            push("pool-id", &p.to_string());
        }
        if let Some(f) = force_create {
            push("force-create", if f { "true" } else { "false" });
        }
        m.push('}');
        m
    }
}

#[derive(Deserialize)]
struct Page {
    leases: Vec<KeaLease>,
}

/// A client for one Kea daemon's control channel.
#[derive(Clone, Debug)]
pub struct ControlClient<C> {
    connector: C,
}

/// The leases Kea holds, page after page ([`ControlClient::lease4_pages`]).
pub struct LeasePages<'a, C> {
    client: &'a ControlClient<C>,
    from: Option<Ipv4Addr>,
    limit: u32,
    done: bool,
}

impl<C: Connector> Iterator for LeasePages<'_, C> {
    type Item = Result<Vec<KeaLease>, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let page = self.client.lease4_get_page(self.from, self.limit);
        // A short page is the last; an empty one ends the leases.
        self.done = page
            .as_ref()
            .map_or(true, |p| p.len() < self.limit as usize);
        match page {
            Ok(p) if p.is_empty() => None,
            Ok(p) => {
                self.from = p.last().map(|l| l.ip_address);
                Some(Ok(p))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl ControlClient<UnixConnector> {
    /// A client for the UNIX control socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::new(UnixConnector::new(path))
    }
}

impl<C: Connector> ControlClient<C> {
    /// A client that opens each connection with `connector`.
    pub fn new(connector: C) -> Self {
        Self { connector }
    }

    /// Sends `{"command": name, "arguments": args}` and returns Kea's answer (any result code).
    pub fn send(&self, name: &str, arguments: Option<&str>) -> Result<Response, ControlError> {
        let cmd = match arguments {
            Some(a) => format!("{{\"command\": \"{name}\", \"arguments\": {a}}}"),
            None => format!("{{\"command\": \"{name}\"}}"),
        };
        let mut stream = self.connector.connect()?;
        let bytes = exchange(&mut stream, cmd.as_bytes())?;
        parse_response(name, &bytes)
    }

    /// Like [`ControlClient::send`], mapping non-zero results to errors (3 to `Empty`).
    pub fn call(&self, name: &str, arguments: Option<&str>) -> Result<Response, ControlError> {
        let r = self.send(name, arguments)?;
        check(name, r)
    }

    /// `list-commands`: the commands this daemon supports (with loaded hooks).
    pub fn list_commands(&self) -> Result<Vec<String>, ControlError> {
        let r = self.call("list-commands", None)?;
        decode_args("list-commands", &r)
    }

    /// `config-get`: the running configuration, as raw JSON.
    pub fn config_get(&self) -> Result<Box<RawValue>, ControlError> {
        let r = self.call("config-get", None)?;
        r.arguments.ok_or_else(|| ControlError::Failed {
            command: "config-get".into(),
            text: "no arguments in answer".into(),
        })
    }

    /// `config-reload`: re-reads the configuration file, which also reloads the lease files
    /// from disk (the way to restore leases without restarting Kea).
    pub fn config_reload(&self) -> Result<(), ControlError> {
        self.call("config-reload", None).map(|_| ())
    }

    /// `lease4-get-page`: up to `limit` leases after `from` (`None` = from the start);
    /// an empty page when there are no more (Kea's result 3).
    pub fn lease4_get_page(
        &self,
        from: Option<Ipv4Addr>,
        limit: u32,
    ) -> Result<Vec<KeaLease>, ControlError> {
        let from = from.map_or_else(|| "start".to_owned(), |a| a.to_string());
        let args = format!("{{\"from\": \"{from}\", \"limit\": {limit}}}");
        let r = self.send("lease4-get-page", Some(&args))?;
        if r.result == 3 {
            return Ok(Vec::new());
        }
        let r = check("lease4-get-page", r)?;
        let page: Page = decode_args("lease4-get-page", &r)?;
        Ok(page.leases)
    }

    /// Every lease, by paging with `lease4-get-page` (`limit` per page; Kea stays responsive
    /// between pages, unlike `lease4-get-all`).
    pub fn lease4_get_all_paged(&self, limit: u32) -> Result<Vec<KeaLease>, ControlError> {
        let mut all = Vec::new();
        for page in self.lease4_pages(limit) {
            all.extend(page?);
        }
        Ok(all)
    }

    /// Every lease, a page of up to `limit` at a time (`lease4-get-page`): what
    /// [`ControlClient::lease4_get_all_paged`] collects, for a caller that holds one page only.
    /// Ends after the first error.
    pub fn lease4_pages(&self, limit: u32) -> LeasePages<'_, C> {
        LeasePages {
            client: self,
            from: None,
            limit: limit.max(1),
            done: false,
        }
    }

    /// `lease4-add`: adds the lease (with its cltt kept); [`ControlError::LeaseExists`] if the
    /// address already has one (Kea 2.2 says result 1, 2.6 result 4). Kea 2.6 also answers 4 to
    /// other refusals (an address outside every subnet): those are [`ControlError::Conflict`].
    pub fn lease4_add(&self, lease: &KeaLease) -> Result<(), ControlError> {
        let r = self.send("lease4-add", Some(&lease.add_arguments(None)))?;
        let text = r.text.clone().unwrap_or_default();
        if (r.result == 4 || r.result == 1) && text.contains("already exists") {
            return Err(ControlError::LeaseExists {
                address: lease.ip_address,
                text,
            });
        }
        check("lease4-add", r).map(|_| ())
    }

    /// `lease4-update`: replaces the whole lease; with `force_create` it is added if missing
    /// (idempotent restore).
    pub fn lease4_update(&self, lease: &KeaLease, force_create: bool) -> Result<(), ControlError> {
        self.call(
            "lease4-update",
            Some(&lease.add_arguments(Some(force_create))),
        )
        .map(|_| ())
    }

    /// `lease4-del` by address: `true` if deleted, `false` if there was none (result 3).
    pub fn lease4_del(&self, address: Ipv4Addr) -> Result<bool, ControlError> {
        let args = format!("{{\"ip-address\": \"{address}\"}}");
        let r = self.send("lease4-del", Some(&args))?;
        if r.result == 3 {
            return Ok(false);
        }
        check("lease4-del", r).map(|_| true)
    }

    /// `lease4-wipe`: deletes all leases (of `subnet_id`, or of every subnet). Having nothing
    /// to delete (result 3) is success too.
    pub fn lease4_wipe(&self, subnet_id: Option<u32>) -> Result<(), ControlError> {
        let args = subnet_id.map(|s| format!("{{\"subnet-id\": {s}}}"));
        let r = self.send("lease4-wipe", args.as_deref())?;
        if r.result == 3 {
            return Ok(());
        }
        check("lease4-wipe", r).map(|_| ())
    }
}

/// Parses Kea's answer: an object, or a one-element list of objects (as the control agent sends).
pub fn parse_response(command: &str, bytes: &[u8]) -> Result<Response, ControlError> {
    let bad = |source| ControlError::BadAnswer {
        command: command.into(),
        source,
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let mut v: Vec<Response> = serde_json::from_slice(bytes).map_err(bad)?;
        if v.is_empty() {
            return Err(bad(serde::de::Error::custom("empty answer list")));
        }
        Ok(v.swap_remove(0))
    } else {
        serde_json::from_slice(bytes).map_err(bad)
    }
}

fn check(command: &str, r: Response) -> Result<Response, ControlError> {
    let text = r.text.clone().unwrap_or_default();
    let command = command.to_owned();
    match r.result {
        0 => Ok(r),
        1 => Err(ControlError::Failed { command, text }),
        2 => Err(ControlError::Unsupported { command, text }),
        3 => Err(ControlError::Empty { command, text }),
        4 => Err(ControlError::Conflict { command, text }),
        code => Err(ControlError::Other {
            command,
            code,
            text,
        }),
    }
}

fn decode_args<T: for<'de> Deserialize<'de>>(
    command: &str,
    r: &Response,
) -> Result<T, ControlError> {
    let raw = r.arguments.as_ref().map_or("null", |a| a.get());
    serde_json::from_str(raw).map_err(|source| ControlError::BadAnswer {
        command: command.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte stream that holds one answer and fails any read past it.
    struct OneAnswer {
        answer: Vec<u8>,
        pos: usize,
        sent: Vec<u8>,
    }

    impl Read for OneAnswer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(self.pos < self.answer.len(), "read past a complete answer");
            let n = buf.len().min(3).min(self.answer.len() - self.pos);
            buf[..n].copy_from_slice(&self.answer[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for OneAnswer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn exchange_stops_at_a_complete_value_without_waiting_for_eof() {
        let answer = br#"{ "result": 0, "text": "a } ] \" {", "arguments": { "x": [ 1 ] } }"#;
        let mut s = OneAnswer {
            answer: answer.to_vec(),
            pos: 0,
            sent: Vec::new(),
        };
        let got = exchange(&mut s, b"{\"command\": \"x\"}").unwrap();
        assert_eq!(got, answer);
        assert_eq!(s.sent, b"{\"command\": \"x\"}");
        let r = parse_response("x", &got).unwrap();
        assert_eq!(r.result, 0);
        assert_eq!(r.arguments.unwrap().get(), r#"{ "x": [ 1 ] }"#);
    }

    #[test]
    fn truncated_answer_is_an_error() {
        /// A peer that sends 13 bytes of an answer and closes.
        struct Closes(io::Cursor<&'static [u8]>);
        impl Read for Closes {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for Closes {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut peer = Closes(io::Cursor::new(b"{ \"result\": 0"));
        assert!(matches!(
            exchange(&mut peer, b"{}"),
            Err(ControlError::Truncated(13))
        ));
    }

    #[test]
    fn kea_string_escapes_round_trip_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let lit = kea_json_string(&bytes);
        assert!(lit.is_ascii());
        assert!(lit.contains("\\u00ff") && lit.contains("\\u007f") && lit.contains("\\n"));
        assert_eq!(decode_kea_json_string(&lit).unwrap(), bytes);
        assert_eq!(decode_kea_json_string(r#""\u0100""#), None);
        assert_eq!(
            decode_kea_json_string("\"caf\u{e9}\"").unwrap(),
            "caf\u{e9}".as_bytes()
        );
    }
}
