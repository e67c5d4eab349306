//! Sorting many records by keys whose first bytes usually decide: each position is sorted by an
//! integer made of its key's first bytes, and the whole key is compared only when those are
//! equal (reaching each key's text for every comparison costs more than the rest of the work).

/// The positions `0..n` in the order of `key`, equal keys in position order. `prefix(i)` must
/// order as `key(i)` does wherever the two differ ([`leading`] of the bytes the key compares
/// first, read as a big-endian integer).
pub fn positions<'k, P: Ord, K: Ord + ?Sized + 'k>(
    n: usize,
    prefix: impl Fn(usize) -> P,
    key: impl Fn(usize) -> &'k K,
) -> Vec<u32> {
    let mut order: Vec<(P, u32)> = (0..n).map(|i| (prefix(i), i as u32)).collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(a.1 as usize).cmp(key(b.1 as usize)))
            .then(a.1.cmp(&b.1))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

/// The first `N` bytes of `bytes`, zero-padded: shorter keys sort first, as in byte order.
pub fn leading<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut prefix = [0u8; N];
    let n = bytes.len().min(N);
    prefix[..n].copy_from_slice(&bytes[..n]);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_keys_and_keep_equal_keys_in_place() {
        let keys = [
            "b",
            "a-long-key-past-sixteen-bytes-2",
            "a",
            "a-long-key-past-sixteen-bytes-1",
            "b",
            "",
        ];
        let order = positions(
            keys.len(),
            |i| u64::from_be_bytes(leading(keys[i].as_bytes())),
            |i| keys[i],
        );
        assert_eq!(order, [5, 2, 3, 1, 0, 4]);
    }
}
