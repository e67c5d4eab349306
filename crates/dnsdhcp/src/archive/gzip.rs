//! Gzip compression on every core, producing one ordinary gzip member.
//!
//! The stream is cut into blocks; worker threads deflate each block on its own, ending it with
//! a sync flush (byte-aligned, not final), and compute its CRC-32. The blocks are written in
//! order between one gzip header and one trailer (CRCs combined), so the result is a single
//! standard gzip member that any reader takes, as `pigz` does. A block starts without the
//! previous block's 32 KiB window, which costs well under 1 % of size at the block size used.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per block.
const BLOCK: usize = 1 << 20;

/// A block handed to a worker, with where to send its result.
struct Job {
    data: Vec<u8>,
    done: SyncSender<io::Result<Deflated>>,
}

/// A compressed block: its deflate bytes (sync-flushed, not final) and the CRC of its input.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
    /// The input buffer, handed back for reuse.
    input: Vec<u8>,
}

/// Deflates `data` as raw deflate blocks ending in a sync flush.
fn deflate_block(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    c.reset();
    out.clear();
    out.reserve(data.len() / 2 + 1024);
    loop {
        let done = c.total_in() as usize;
        let status = c
            .compress_vec(&data[done..], out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Finished when all input is consumed and the flush left output room to spare.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(());
        }
        if status == Status::StreamEnd {
            return Err(io::Error::other("deflate ended a stream early"));
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

fn compress_job(c: &mut Compress, job: Job) {
    let mut bytes = Vec::new();
    let result = deflate_block(c, &job.data, &mut bytes).map(|()| {
        let mut crc = Crc::new();
        crc.update(&job.data);
        Deflated {
            bytes,
            crc,
            input: job.data,
        }
    });
    // The writer may be gone (dropped after an error): then nobody wants the block.
    let _ = job.done.send(result);
}

/// The gzip header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A gzip writer that compresses on worker threads (see the module documentation). Call
/// [`finish`](Self::finish) to end the member; [`end_member`](Self::end_member) ends it and
/// starts another.
pub(crate) struct ParallelGz<W: Write> {
    out: W,
    level: Compression,
    block: Vec<u8>,
    /// Blocks being compressed, oldest first.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    max_pending: usize,
    /// The workers; none on a single core.
    pool: Option<Pool>,
    /// Compressor for the single-threaded case.
    local: Option<Compress>,
    /// Input buffers to reuse.
    spare: Vec<Vec<u8>>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGz<W> {
    /// A writer into `out` at `level`, with one worker per available core (none on one core).
    pub(crate) fn new(out: W, level: Compression) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let pool = (threads > 1).then(|| Pool::start(threads, level)).flatten();
        Self {
            out,
            level,
            block: Vec::with_capacity(BLOCK),
            pending: VecDeque::new(),
            max_pending: threads * 2,
            local: pool.is_none().then(|| Compress::new(level, false)),
            pool,
            spare: Vec::new(),
            crc: Crc::new(),
            header_written: false,
        }
    }

    /// The output, e.g. to see how much has been written.
    pub(crate) fn get_ref(&self) -> &W {
        &self.out
    }

    fn write_block(&mut self, d: Deflated) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        self.out.write_all(&d.bytes)?;
        self.crc.combine(&d.crc);
        let mut input = d.input;
        input.clear();
        if self.spare.len() < 2 {
            self.spare.push(input);
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let d = rx
            .recv()
            .map_err(|_| io::Error::other("gzip worker stopped"))??;
        self.write_block(d)
    }

    /// Hands the current block to a worker (or compresses it here).
    fn submit(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK));
        let data = std::mem::replace(&mut self.block, next);
        if let Some(c) = self.local.as_mut() {
            let (tx, rx) = mpsc::sync_channel(1);
            compress_job(c, Job { data, done: tx });
            let d = rx.recv().expect("sent above")?;
            return self.write_block(d);
        }
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.pool
            .as_ref()
            .and_then(|p| p.jobs.as_ref())
            .expect("workers present when not local")
            .send(Job { data, done: tx })
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Compresses and writes everything given so far, then ends the gzip member (final block
    /// and trailer). Later writes start a new member.
    pub(crate) fn end_member(&mut self) -> io::Result<()> {
        self.submit()?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        if !self.header_written {
            self.out.write_all(&HEADER)?;
        }
        // An empty final block, then CRC-32 and length (mod 2^32) of the member's input.
        let mut last = Vec::with_capacity(16);
        let mut c = Compress::new(self.level, false);
        c.compress_vec(&[], &mut last, FlushCompress::Finish)
            .map_err(io::Error::other)?;
        self.out.write_all(&last)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.crc = Crc::new();
        self.header_written = false;
        Ok(())
    }

    /// Ends the member and returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.end_member()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit()?;
        }
        Ok(n)
    }

    /// Writes out the blocks already compressed; the current block stays open (a flush does
    /// not cut the stream).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Worker threads taking blocks from one queue; dropping the pool stops and joins them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` workers compressing at `level`; `None` if no thread could be started.
    fn start(threads: usize, level: Compression) -> Option<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers: Vec<_> = (0..threads)
            .filter_map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name("gzip".into())
                    .spawn(move || {
                        let mut c = Compress::new(level, false);
                        // Ends when the writer drops the queue (or a worker panicked).
                        while let Some(job) = rx.lock().ok().and_then(|r| r.recv().ok()) {
                            compress_job(&mut c, job);
                        }
                    })
                    .ok()
            })
            .collect();
        (!workers.is_empty()).then_some(Self {
            jobs: Some(tx),
            workers,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678u32;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Compressible but not trivial: text-like bytes with some noise.
                if i % 7 == 0 {
                    (x % 251) as u8
                } else {
                    b"lease,row,10.0.0.1\n"[i % 19]
                }
            })
            .collect()
    }

    #[test]
    fn output_is_one_gzip_member_that_single_member_readers_take_whole() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 123] {
            let data = sample(len);
            let mut gz = ParallelGz::new(Vec::new(), Compression::fast());
            // Odd write sizes cross block boundaries.
            for piece in data.chunks(77_777) {
                gz.write_all(piece).unwrap();
            }
            let out = gz.finish().unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "length {len}");
            // One member: nothing after it.
            let mut d = flate2::bufread::GzDecoder::new(&out[..]);
            io::copy(&mut d, &mut io::sink()).unwrap();
            assert!(d.into_inner().is_empty(), "length {len}: trailing bytes");
        }
    }

    #[test]
    fn end_member_makes_the_prefix_a_complete_stream() {
        let (a, b) = (sample(3 * BLOCK / 2), sample(BLOCK / 3));
        let mut gz = ParallelGz::new(Vec::new(), Compression::default());
        gz.write_all(&a).unwrap();
        gz.end_member().unwrap();
        let cut = gz.get_ref().len();
        gz.write_all(&b).unwrap();
        let out = gz.finish().unwrap();
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&out[..cut])
            .read_to_end(&mut first)
            .unwrap();
        assert_eq!(first, a);
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, [a, b].concat());
    }
}
