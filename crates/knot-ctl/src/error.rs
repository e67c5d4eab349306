//! Typed errors: knotd's in-band error texts, transport failures and refusals made client-side.

use std::fmt;
use std::io;

use crate::codec::{CodecError, Item, Items};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error reported by knotd, with its exact text and the request items it copied back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// knotd's error text, e.g. `no such zone found`.
    pub text: String,
    /// The zone copied from the failing request unit, if any.
    pub zone: Option<String>,
    /// The full error unit (COMMAND, ZONE, OWNER, ... as knotd copied them).
    pub items: Box<Items>,
}

impl ServerMessage {
    /// Builds a message from an error unit.
    pub fn from_items(items: Items) -> Self {
        Self {
            text: items.text(Item::Error).unwrap_or_default(),
            zone: items.text(Item::Zone),
            items: Box::new(items),
        }
    }
}

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.zone {
            Some(z) => write!(f, "{} (zone {z})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Everything that can go wrong talking to knotd.
///
/// Server errors keep knotd's text in a [`ServerMessage`]; the variant says which error it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `no such zone found`.
    #[error("knotd: {0}")]
    NoSuchZone(ServerMessage),
    /// `no active transaction`.
    #[error("knotd: {0}")]
    NoActiveTransaction(ServerMessage),
    /// `too many transactions` (begin while a transaction is open; 3.3.6+: blocking event refused).
    #[error("knotd: {0}")]
    TooManyTransactions(ServerMessage),
    /// `such record already exists in zone`.
    #[error("knotd: {0}")]
    RecordExists(ServerMessage),
    /// `no such record in zone found`.
    #[error("knotd: {0}")]
    NoSuchRecord(ServerMessage),
    /// `no such node in zone found`.
    #[error("knotd: {0}")]
    NoSuchNode(ServerMessage),
    /// `parser failed` (3.5 appends scanner detail).
    #[error("knotd: {0}")]
    ParserFailed(ServerMessage),
    /// `name does not belong to the zone`.
    #[error("knotd: {0}")]
    OutOfZone(ServerMessage),
    /// `no TTL specified` (set without TTL and no existing RRset, up to 3.4).
    #[error("knotd: {0}")]
    NoTtl(ServerMessage),
    /// `semantic check` at commit; details only in the server log; the transaction stays open.
    #[error("knotd: {0}")]
    SemanticCheck(ServerMessage),
    /// `already exists` (backup target holds a backup).
    #[error("knotd: {0}")]
    AlreadyExists(ServerMessage),
    /// `not exists` (restore source missing).
    #[error("knotd: {0}")]
    NotExists(ServerMessage),
    /// `try again later` (3.4+: begin during a blocking event or restore).
    #[error("knotd: {0}")]
    TryAgainLater(ServerMessage),
    /// `invalid parameter`.
    #[error("knotd: {0}")]
    InvalidParameter(ServerMessage),
    /// `missing parameter`.
    #[error("knotd: {0}")]
    MissingParameter(ServerMessage),
    /// `parameter conflict` (e.g. both `z` and `Z`).
    #[error("knotd: {0}")]
    ParameterConflict(ServerMessage),
    /// `malformed data`.
    #[error("knotd: {0}")]
    MalformedData(ServerMessage),
    /// `operation not supported`.
    #[error("knotd: {0}")]
    NotSupported(ServerMessage),
    /// `operation failed for some zones` (a command for all zones).
    #[error("knotd: {0}")]
    SomeZonesFailed(ServerMessage),
    /// Any other server error text.
    #[error("knotd: {0}")]
    Other(ServerMessage),

    /// Refused client-side: a blocking event command on a zone with an open transaction
    /// deadlocks Knot 3.2's control channel, so it is never sent.
    #[error("zone {zone} has an open transaction; refusing to send {command} (it would block)")]
    TransactionOpen {
        /// The zone with the open transaction.
        zone: String,
        /// The refused command.
        command: String,
    },
    /// Not sent: the same record (owner, type, rdata) appeared earlier in the same batch.
    /// Knot 3.2 drops the first change from the transaction when a repeat fails.
    #[error(
        "same record as batch entry {first}; not sent (a repeat corrupts Knot 3.2 transactions)"
    )]
    DuplicateInBatch {
        /// Index of the first occurrence in the batch.
        first: usize,
    },
    /// Refused client-side: knotd would ignore an unknown command and never reply.
    #[error("command {command} is not known to knotd {server} (needs {needs})")]
    UnsupportedCommand {
        /// The refused command.
        command: String,
        /// The server's version text, or `unknown`.
        server: String,
        /// The minimum version, or `an allow-listed command`.
        needs: String,
    },
    /// A read or write timed out (dead or wedged server). The connection is unusable afterwards.
    #[error("timed out talking to knotd: {0}")]
    Timeout(io::Error),
    /// The socket failed. The connection is unusable afterwards.
    #[error("I/O error talking to knotd: {0}")]
    Io(io::Error),
    /// knotd sent something that breaks the protocol, or closed the connection unexpectedly.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An earlier transport error left the connection out of step; reconnect.
    #[error("connection is unusable after an earlier error")]
    Broken,
}

impl Error {
    /// Maps a server error unit to its typed variant by the error text.
    pub fn from_server(items: Items) -> Error {
        let msg = ServerMessage::from_items(items);
        let t = msg.text.trim();
        let ctor: fn(ServerMessage) -> Error = match t {
            "no such zone found" => Error::NoSuchZone,
            "no active transaction" => Error::NoActiveTransaction,
            "too many transactions" => Error::TooManyTransactions,
            "such record already exists in zone" => Error::RecordExists,
            "no such record in zone found" => Error::NoSuchRecord,
            "no such node in zone found" => Error::NoSuchNode,
            "name does not belong to the zone" => Error::OutOfZone,
            "no TTL specified" => Error::NoTtl,
            "already exists" => Error::AlreadyExists,
            "not exists" => Error::NotExists,
            "try again later" => Error::TryAgainLater,
            "invalid parameter" => Error::InvalidParameter,
            "missing parameter" => Error::MissingParameter,
            "parameter conflict" => Error::ParameterConflict,
            "malformed data" => Error::MalformedData,
            "operation not supported" => Error::NotSupported,
            "operation failed for some zones" => Error::SomeZonesFailed,
            _ if t.starts_with("parser failed") => Error::ParserFailed,
            _ if t.starts_with("semantic check") => Error::SemanticCheck,
            _ => Error::Other,
        };
        ctor(msg)
    }

    /// The server's message, if this is an error knotd reported.
    pub fn server_message(&self) -> Option<&ServerMessage> {
        use Error::*;
        match self {
            NoSuchZone(m)
            | NoActiveTransaction(m)
            | TooManyTransactions(m)
            | RecordExists(m)
            | NoSuchRecord(m)
            | NoSuchNode(m)
            | ParserFailed(m)
            | OutOfZone(m)
            | NoTtl(m)
            | SemanticCheck(m)
            | AlreadyExists(m)
            | NotExists(m)
            | TryAgainLater(m)
            | InvalidParameter(m)
            | MissingParameter(m)
            | ParameterConflict(m)
            | MalformedData(m)
            | NotSupported(m)
            | SomeZonesFailed(m)
            | Other(m) => Some(m),
            _ => None,
        }
    }

    /// Whether the connection can no longer be used (transport or protocol failure).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_) | Error::Io(_) | Error::Protocol(_) | Error::Broken
        )
    }

    pub(crate) fn io(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(e),
            io::ErrorKind::UnexpectedEof => {
                Error::Protocol("knotd closed the connection mid-reply".into())
            }
            _ => Error::Io(e),
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Error {
        match e {
            CodecError::Io(e) => Error::io(e),
            other => Error::Protocol(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> Error {
        Error::from_server(
            Items::command("zone-set")
                .with(Item::Error, text)
                .with(Item::Zone, "ex.test"),
        )
    }

    #[test]
    fn maps_texts_to_variants_keeping_text() {
        assert!(matches!(err("no such zone found"), Error::NoSuchZone(_)));
        assert!(matches!(
            err("parser failed, unknown type"),
            Error::ParserFailed(_)
        ));
        assert!(matches!(err("try again later"), Error::TryAgainLater(_)));
        let e = err("something new");
        assert!(matches!(&e, Error::Other(m) if m.text == "something new"));
        assert_eq!(
            err("no active transaction")
                .server_message()
                .unwrap()
                .zone
                .as_deref(),
            Some("ex.test")
        );
        assert!(err("semantic check").to_string().contains("semantic check"));
    }
}
