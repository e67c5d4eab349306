//! zone-read of a 200,000-record zone is streamed: the client's heap stays bounded while the
//! reply is many megabytes. Measured with a counting global allocator (this binary has one test,
//! so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use knot_ctl::Client;
use test_support::knot::{KnotServer, MINIMAL_ZONE};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RECORDS: usize = 200_000;

#[test]
fn zone_read_of_200k_records_streams_in_bounded_memory() {
    let mut text = String::from(MINIMAL_ZONE);
    for i in 0..RECORDS {
        if i % 2 == 0 {
            writeln!(
                text,
                "h{i} 300 IN A 10.{}.{}.{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
            .unwrap();
        } else {
            writeln!(
                text,
                "h{i} 300 IN TXT \"record number {i}; padded to look like data\""
            )
            .unwrap();
        }
    }
    let knot = KnotServer::builder()
        .zone("big.test", &text)
        .semantic_checks(false)
        .start();
    drop(text);
    let mut client = Client::connect(knot.socket_path()).unwrap();

    let baseline = CURRENT.load(Relaxed);
    PEAK.store(baseline, Relaxed);
    let mut stream = client.zone_read("big.test", None, None).unwrap();
    let mut count = 0usize;
    let mut reply_bytes = 0usize;
    let mut txt = 0usize;
    for record in stream.by_ref() {
        let record = record.unwrap();
        reply_bytes += record.owner.len() + record.rtype.len() + record.data.len() + 20;
        if record.rtype == "TXT" {
            txt += 1;
        }
        count += 1;
    }
    let largest = stream.largest_unit_bytes();
    let buffer = stream.read_buffer_capacity();
    drop(stream);
    let peak = PEAK.load(Relaxed) - baseline;

    println!(
        "streamed {count} records (~{reply_bytes} B): peak heap growth {peak} B, largest unit {largest} B"
    );
    assert_eq!(count, RECORDS + 3);
    assert_eq!(txt, RECORDS / 2);
    assert!(
        reply_bytes > 8 * 1024 * 1024,
        "reply was {reply_bytes} bytes"
    );
    // The reply is > 8 MiB; the client never held more than its read buffer plus a unit or two.
    assert!(
        peak < 512 * 1024,
        "peak heap growth {peak} bytes while streaming"
    );
    assert!(largest < 1024, "largest unit {largest} bytes");
    assert_eq!(buffer, 64 * 1024);
    client.status().unwrap();
}
