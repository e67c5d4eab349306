//! The control protocol's frame codec: units (END, DATA, EXTRA, BLOCK) made of items.
//!
//! A DATA or EXTRA unit has no length: it ends at the first following byte below 0x10, which is
//! the next unit's type byte. The decoder therefore peeks one byte ahead through [`BufRead`].

use std::fmt;
use std::io::{self, BufRead, Write};

/// Number of item indexes the protocol defines (COMMAND … FILTER).
pub const ITEM_COUNT: usize = 12;
/// The code byte of item index 0; an item's code is `ITEM_CODE_BASE + index`.
pub const ITEM_CODE_BASE: u8 = 0x10;
/// Largest value one item can carry (its length is a big-endian u16).
pub const MAX_ITEM_LEN: usize = u16::MAX as usize;

/// Unit type byte: END (the sender finishes the conversation).
pub const TYPE_END: u8 = 0x00;
/// Unit type byte: DATA (zero or more items).
pub const TYPE_DATA: u8 = 0x01;
/// Unit type byte: EXTRA (items continuing the preceding DATA).
pub const TYPE_EXTRA: u8 = 0x02;
/// Unit type byte: BLOCK (end of a request or reply).
pub const TYPE_BLOCK: u8 = 0x03;

/// An item index; the wire code is `0x10 + index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Item {
    /// Command name, e.g. `zone-set`.
    Command = 0,
    /// Request flags (`F`, `B`); reply markers up to Knot 3.4.0.
    Flags = 1,
    /// Error text (replies only).
    Error = 2,
    /// conf/stats section.
    Section = 3,
    /// conf/stats item.
    Item = 4,
    /// conf section identifier.
    Id = 5,
    /// Zone name.
    Zone = 6,
    /// Record owner.
    Owner = 7,
    /// Decimal TTL.
    Ttl = 8,
    /// RR type mnemonic, status detail, or zone-status field name.
    Type = 9,
    /// Rdata, value, or directory argument.
    Data = 10,
    /// One-character filters; reply markers from Knot 3.4.1.
    Filter = 11,
}

impl Item {
    /// All items in index order.
    pub const ALL: [Item; ITEM_COUNT] = [
        Item::Command,
        Item::Flags,
        Item::Error,
        Item::Section,
        Item::Item,
        Item::Id,
        Item::Zone,
        Item::Owner,
        Item::Ttl,
        Item::Type,
        Item::Data,
        Item::Filter,
    ];

    /// The item for a wire code byte, if the byte is a valid code.
    pub fn from_code(code: u8) -> Option<Item> {
        code.checked_sub(ITEM_CODE_BASE)
            .and_then(|i| Item::ALL.get(i as usize).copied())
    }

    /// This item's wire code byte.
    pub fn code(self) -> u8 {
        ITEM_CODE_BASE + self as u8
    }
}

/// The items of one DATA/EXTRA unit. Absent (`None`) and empty (`Some("")`) are different.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Items([Option<Vec<u8>>; ITEM_COUNT]);

impl Items {
    /// No items at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Request items for `command` (sets COMMAND).
    pub fn command(command: &str) -> Self {
        Self::new().with(Item::Command, command)
    }

    /// Sets `item` (builder style).
    pub fn with(mut self, item: Item, value: impl AsRef<[u8]>) -> Self {
        self.set(item, value);
        self
    }

    /// Sets `item` only if `value` is `Some` and non-empty; clients should leave out empty items.
    pub fn with_opt(mut self, item: Item, value: Option<impl AsRef<[u8]>>) -> Self {
        if let Some(v) = value
            && !v.as_ref().is_empty()
        {
            self.set(item, v);
        }
        self
    }

    /// Sets `item` to `value` (an empty value is still present).
    pub fn set(&mut self, item: Item, value: impl AsRef<[u8]>) {
        self.0[item as usize] = Some(value.as_ref().to_vec());
    }

    /// Removes `item`.
    pub fn remove(&mut self, item: Item) {
        self.0[item as usize] = None;
    }

    /// The raw value of `item`, if present.
    pub fn get(&self, item: Item) -> Option<&[u8]> {
        self.0[item as usize].as_deref()
    }

    /// The value of `item` as text (invalid UTF-8 replaced), if present.
    pub fn text(&self, item: Item) -> Option<String> {
        self.get(item)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether `item` is present (possibly empty).
    pub fn has(&self, item: Item) -> bool {
        self.0[item as usize].is_some()
    }

    /// Whether no item is present.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Present items in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Item, &[u8])> {
        Item::ALL
            .iter()
            .zip(self.0.iter())
            .filter_map(|(i, v)| v.as_deref().map(|v| (*i, v)))
    }

    /// Bytes held by the values (for memory accounting).
    pub fn value_bytes(&self) -> usize {
        self.0.iter().flatten().map(Vec::len).sum()
    }
}

impl fmt::Debug for Items {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (item, v) in self.iter() {
            m.entry(&item, &String::from_utf8_lossy(v));
        }
        m.finish()
    }
}

/// One protocol unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// The sender finishes the conversation.
    End,
    /// A data unit.
    Data(Items),
    /// An extra unit continuing the preceding DATA.
    Extra(Items),
    /// End of a request or reply.
    Block,
}

/// Malformed input found while decoding or a value that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A byte that is neither a unit type (0–3) where a unit starts.
    #[error("invalid unit type byte 0x{0:02x}")]
    InvalidType(u8),
    /// A byte that is neither a unit type nor an item code (0x10–0x1b) inside a unit.
    #[error("invalid item code byte 0x{0:02x}")]
    InvalidCode(u8),
    /// The stream ended inside an item.
    #[error("stream ended inside an item")]
    Truncated,
    /// An item longer than 65535 bytes cannot be encoded.
    #[error("item {item:?} is {len} bytes; the protocol allows at most 65535")]
    ItemTooLong {
        /// The item.
        item: Item,
        /// Its length.
        len: usize,
    },
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Appends the wire form of `unit` to `out`.
pub fn encode_unit(unit: &Unit, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match unit {
        Unit::End => out.push(TYPE_END),
        Unit::Block => out.push(TYPE_BLOCK),
        Unit::Data(items) | Unit::Extra(items) => {
            for (item, v) in items.iter() {
                if v.len() > MAX_ITEM_LEN {
                    return Err(CodecError::ItemTooLong { item, len: v.len() });
                }
            }
            out.push(if matches!(unit, Unit::Data(_)) {
                TYPE_DATA
            } else {
                TYPE_EXTRA
            });
            for (item, v) in items.iter() {
                out.push(item.code());
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    Ok(())
}

/// Encodes one DATA unit from borrowed values, exactly as [`encode_unit`] encodes the same
/// [`Items`]: `items` in item order, each at most once (no copies: the batches of records use
/// it). Nothing is written if a value is too long.
pub fn encode_data_borrowed(items: &[(Item, &[u8])], out: &mut Vec<u8>) -> Result<(), CodecError> {
    debug_assert!(items.windows(2).all(|w| w[0].0.code() < w[1].0.code()));
    if let Some((item, v)) = items.iter().find(|(_, v)| v.len() > MAX_ITEM_LEN) {
        return Err(CodecError::ItemTooLong {
            item: *item,
            len: v.len(),
        });
    }
    out.push(TYPE_DATA);
    for (item, v) in items {
        out.push(item.code());
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    Ok(())
}

/// Encodes a sequence of units.
pub fn encode(units: &[Unit]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    for u in units {
        encode_unit(u, &mut out)?;
    }
    Ok(out)
}

/// Writes one unit to `w` (no flush).
pub fn write_unit<W: Write>(w: &mut W, unit: &Unit) -> Result<(), CodecError> {
    let mut buf = Vec::new();
    encode_unit(unit, &mut buf)?;
    w.write_all(&buf)?;
    Ok(())
}

fn peek_byte<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    loop {
        match r.fill_buf() {
            Ok(b) => return Ok(b.first().copied()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_exact<R: BufRead>(r: &mut R, buf: &mut [u8]) -> Result<(), CodecError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            CodecError::Truncated
        } else {
            CodecError::Io(e)
        }
    })
}

/// The kind of a unit read by [`read_unit_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// END.
    End,
    /// DATA (its items are in the [`UnitBuf`]).
    Data,
    /// EXTRA (its items are in the [`UnitBuf`]).
    Extra,
    /// BLOCK.
    Block,
}

/// The items of the last DATA/EXTRA unit read by [`read_unit_into`], decoded into buffers that
/// are reused from unit to unit: reading a long stream (a zone of a million records) then
/// allocates nothing once the buffers have grown.
#[derive(Debug, Default)]
pub struct UnitBuf {
    present: [bool; ITEM_COUNT],
    values: [Vec<u8>; ITEM_COUNT],
}

impl UnitBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw value of `item` in the last unit, if present.
    pub fn get(&self, item: Item) -> Option<&[u8]> {
        self.present[item as usize].then(|| self.values[item as usize].as_slice())
    }

    /// Whether `item` is present in the last unit (possibly empty).
    pub fn has(&self, item: Item) -> bool {
        self.present[item as usize]
    }

    /// Bytes held by the last unit's values.
    pub fn value_bytes(&self) -> usize {
        self.present
            .iter()
            .zip(&self.values)
            .filter(|(p, _)| **p)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// The value of `item` as text, if present; invalid UTF-8 is replaced in place first
    /// (as [`Items::text`] replaces it).
    pub fn text(&mut self, item: Item) -> Option<&str> {
        if !self.present[item as usize] {
            return None;
        }
        let v = &mut self.values[item as usize];
        if std::str::from_utf8(v).is_err() {
            *v = String::from_utf8_lossy(v).into_owned().into_bytes();
        }
        std::str::from_utf8(v).ok()
    }

    /// The last unit's items as an owned [`Items`].
    pub fn to_items(&self) -> Items {
        let mut items = Items::new();
        for i in 0..ITEM_COUNT {
            if self.present[i] {
                items.0[i] = Some(self.values[i].clone());
            }
        }
        items
    }
}

/// Reads one unit; `Ok(None)` at a clean end of stream (before a type byte).
///
/// A DATA/EXTRA unit is finished when the next byte is below 0x10 (left unread for the next
/// call) or the stream ends. Never panics on malformed input.
pub fn read_unit<R: BufRead>(r: &mut R) -> Result<Option<Unit>, CodecError> {
    let mut buf = UnitBuf::new();
    Ok(read_unit_into(r, &mut buf)?.map(|kind| match kind {
        UnitKind::End => Unit::End,
        UnitKind::Block => Unit::Block,
        UnitKind::Data => Unit::Data(buf.into_items()),
        UnitKind::Extra => Unit::Extra(buf.into_items()),
    }))
}

impl UnitBuf {
    fn into_items(self) -> Items {
        let mut items = Items::new();
        for (i, (present, value)) in self.present.into_iter().zip(self.values).enumerate() {
            if present {
                items.0[i] = Some(value);
            }
        }
        items
    }
}

/// [`read_unit`] into reused buffers: a DATA/EXTRA unit's items are left in `buf`.
pub fn read_unit_into<R: BufRead>(
    r: &mut R,
    buf: &mut UnitBuf,
) -> Result<Option<UnitKind>, CodecError> {
    let Some(t) = peek_byte(r)? else {
        return Ok(None);
    };
    r.consume(1);
    let kind = match t {
        TYPE_END => return Ok(Some(UnitKind::End)),
        TYPE_BLOCK => return Ok(Some(UnitKind::Block)),
        TYPE_DATA => UnitKind::Data,
        TYPE_EXTRA => UnitKind::Extra,
        other => return Err(CodecError::InvalidType(other)),
    };
    buf.present = [false; ITEM_COUNT];
    while let Some(code) = peek_byte(r)? {
        if code < ITEM_CODE_BASE {
            break;
        }
        let item = Item::from_code(code).ok_or(CodecError::InvalidCode(code))?;
        r.consume(1);
        let mut len = [0u8; 2];
        read_exact(r, &mut len)?;
        let value = &mut buf.values[item as usize];
        read_value(r, value, u16::from_be_bytes(len) as usize)?;
        buf.present[item as usize] = true;
    }
    Ok(Some(kind))
}

/// Reads `len` bytes into `value` (replacing its contents), straight from the reader's buffer.
fn read_value<R: BufRead>(r: &mut R, value: &mut Vec<u8>, len: usize) -> Result<(), CodecError> {
    value.clear();
    value.reserve(len);
    while value.len() < len {
        let chunk = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CodecError::Io(e)),
        };
        if chunk.is_empty() {
            return Err(CodecError::Truncated);
        }
        let n = chunk.len().min(len - value.len());
        value.extend_from_slice(&chunk[..n]);
        r.consume(n);
    }
    Ok(())
}

/// Decodes a complete byte sequence into units.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<Unit>, CodecError> {
    let mut units = Vec::new();
    while let Some(u) = read_unit(&mut bytes)? {
        units.push(u);
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_status_request() {
        let bytes = encode(&[Unit::Data(Items::command("status")), Unit::Block]).unwrap();
        assert_eq!(bytes, b"\x01\x10\x00\x06status\x03");
    }

    #[test]
    fn absent_and_empty_items_differ() {
        let empty = Items::command("zone-status").with(Item::Filter, "");
        let absent = Items::command("zone-status");
        let a = encode(&[Unit::Data(empty.clone())]).unwrap();
        let b = encode(&[Unit::Data(absent.clone())]).unwrap();
        assert_ne!(a, b);
        assert_eq!(decode(&a).unwrap(), vec![Unit::Data(empty)]);
        assert_eq!(decode(&b).unwrap(), vec![Unit::Data(absent)]);
    }

    #[test]
    fn lookahead_ends_data_unit() {
        // DATA{ZONE=a} DATA{} EXTRA{TYPE=x} BLOCK END
        let bytes = b"\x01\x16\x00\x01a\x01\x02\x19\x00\x01x\x03\x00";
        let units = decode(bytes).unwrap();
        assert_eq!(
            units,
            vec![
                Unit::Data(Items::new().with(Item::Zone, "a")),
                Unit::Data(Items::new()),
                Unit::Extra(Items::new().with(Item::Type, "x")),
                Unit::Block,
                Unit::End
            ]
        );
    }

    #[test]
    fn repeated_item_last_wins() {
        let bytes = b"\x01\x16\x00\x01a\x16\x00\x01b\x03";
        let units = decode(bytes).unwrap();
        assert_eq!(units[0], Unit::Data(Items::new().with(Item::Zone, "b")));
    }

    #[test]
    fn invalid_bytes_are_errors() {
        assert!(matches!(decode(b"\x04"), Err(CodecError::InvalidType(4))));
        assert!(matches!(
            decode(b"\x10"),
            Err(CodecError::InvalidType(0x10))
        ));
        assert!(matches!(
            decode(b"\x01\x1c\x00\x00"),
            Err(CodecError::InvalidCode(0x1c))
        ));
        assert!(matches!(
            decode(b"\x01\x0f"),
            Err(CodecError::InvalidType(0x0f))
        ));
        assert!(matches!(
            decode(b"\x01\x10\x00\x05ab"),
            Err(CodecError::Truncated)
        ));
        assert!(matches!(
            decode(b"\x01\x10\x00"),
            Err(CodecError::Truncated)
        ));
    }

    #[test]
    fn too_long_item_is_refused() {
        let items = Items::new().with(Item::Data, vec![b'a'; MAX_ITEM_LEN + 1]);
        assert!(matches!(
            encode(&[Unit::Data(items)]),
            Err(CodecError::ItemTooLong { .. })
        ));
        let items = Items::new().with(Item::Data, vec![b'a'; MAX_ITEM_LEN]);
        let bytes = encode(&[Unit::Data(items.clone())]).unwrap();
        assert_eq!(decode(&bytes).unwrap(), vec![Unit::Data(items)]);
    }

    fn arb_items() -> impl Strategy<Value = Items> {
        proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            ITEM_COUNT,
        )
        .prop_map(|v| {
            let mut items = Items::new();
            for (i, val) in v.into_iter().enumerate() {
                items.0[i] = val;
            }
            items
        })
    }

    fn arb_unit() -> impl Strategy<Value = Unit> {
        prop_oneof![
            Just(Unit::End),
            Just(Unit::Block),
            arb_items().prop_map(Unit::Data),
            arb_items().prop_map(Unit::Extra),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_item_like_bytes_never_panic(
            bytes in proptest::collection::vec(prop_oneof![0u8..4, 0x10u8..0x1c, any::<u8>()], 0..512)
        ) {
            let _ = decode(&bytes);
        }

        #[test]
        fn encode_decode_identity(units in proptest::collection::vec(arb_unit(), 0..20)) {
            let bytes = encode(&units).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), units);
        }
    }
}
