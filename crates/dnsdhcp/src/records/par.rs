//! Data parallelism over scoped threads, for the few big independent parts of a plan (the
//! zones, the halves of the values' record list). No pool: a handful of threads per command.

use std::thread;

/// How many threads [`map`] uses at most: the CPUs this process may run on.
pub fn workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` applied to every item, the items dealt in contiguous runs to at most [`workers`]
/// threads (this one included); the results in item order. A panic in `f` is resumed here.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let threads = workers().min(n);
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let mut runs: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    for i in 0..threads {
        // Runs differ by at most one item.
        let len = n / threads + usize::from(i < n % threads);
        runs.push(items.by_ref().take(len).collect());
    }
    let f = &f;
    thread::scope(|scope| {
        let mut runs = runs.into_iter();
        let first = runs.next().unwrap_or_default();
        let handles: Vec<_> = runs
            .map(|run| scope.spawn(move || run.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        for h in handles {
            out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

/// `items` cut into at most [`workers`] contiguous slices of nearly equal length (at least
/// `min_len` items each, so that small inputs stay on one thread).
pub fn chunks<T>(items: &[T], min_len: usize) -> Vec<&[T]> {
    let threads = workers().min(items.len() / min_len.max(1)).max(1);
    let len = items.len().div_ceil(threads).max(1);
    items.chunks(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_item_order_for_every_length() {
        for n in 0..40 {
            let items: Vec<usize> = (0..n).collect();
            let out = map(items, |i| i * 10);
            assert_eq!(out, (0..n).map(|i| i * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn chunks_cover_the_items_in_order() {
        let items: Vec<u32> = (0..1001).collect();
        for min in [1, 10, 500, 2000] {
            let parts = chunks(&items, min);
            assert!(parts.len() <= workers().max(1));
            assert_eq!(parts.concat(), items);
        }
        assert_eq!(chunks::<u32>(&[], 10).concat(), Vec::<u32>::new());
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_panic_in_a_worker_reaches_the_caller() {
        map((0..8).collect(), |i: i32| {
            if i == 7 {
                panic!("boom");
            }
            i
        });
    }
}
