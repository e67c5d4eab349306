//! A byte-for-byte relay in front of knotd's control socket, for killing a process at an exact
//! point of a control conversation.
//!
//! A client pointed at [`CtlRelay::path`] talks to the real knotd behind it; the relay counts
//! what the client sends (one piece per read of its socket, roughly one per write) and, when
//! armed, SIGKILLs a chosen process (the client, or knotd itself) either right after the n-th
//! piece ([`CtlRelay::kill_after_piece`]) or just before forwarding the first piece a predicate
//! picks ([`CtlRelay::kill_before`]). From the kill on it forwards nothing more from the
//! client. knotd's replies are relayed unchanged until knotd closes.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Decides, from one piece the client sent (not yet forwarded), whether the kill happens now.
pub type KillPredicate = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// The relay: a Unix socket in a temporary directory, removed on drop.
pub struct CtlRelay {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
struct State {
    /// Pieces forwarded since the last reset.
    pieces: usize,
    /// The piece that first carried `zone-begin`.
    first_begin: Option<usize>,
    /// Kill right after forwarding this piece.
    kill_after: Option<usize>,
    /// Kill before forwarding the first piece this picks.
    kill_before: Option<KillPredicate>,
    /// The process to kill.
    victim: Option<u32>,
    killed: bool,
    /// Connections knotd has not closed yet (it is still working on what it got).
    open: usize,
}

impl CtlRelay {
    /// Listens on a fresh socket and relays every connection to `knot_socket`.
    pub fn start(knot_socket: &Path) -> CtlRelay {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (knot, st) = (knot_socket.to_owned(), state.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                // knotd gone (killed): the client sees its connection closed, as it would.
                let Ok(server) = UnixStream::connect(&knot) else {
                    continue;
                };
                relay_connection(client, server, st.clone());
            }
        });
        CtlRelay {
            path,
            state,
            _dir: dir,
        }
    }

    /// The socket to point the client at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts counting afresh and disarms (connections still open stay counted).
    pub fn reset(&self) {
        let mut s = self.lock();
        *s = State {
            open: s.open,
            ..State::default()
        };
    }

    /// Arms: SIGKILL the victim right after forwarding piece `n` (counted from the last reset).
    pub fn kill_after_piece(&self, n: usize) {
        self.lock().kill_after = Some(n);
    }

    /// Arms: SIGKILL the victim just before forwarding the first piece `pick` returns true
    /// for; that piece never reaches knotd. `pick` sees every piece sent from now on, in order
    /// across connections.
    pub fn kill_before(&self, pick: impl FnMut(&[u8]) -> bool + Send + 'static) {
        self.lock().kill_before = Some(Box::new(pick));
    }

    /// The process an armed kill hits (a kill that comes before this waits for it).
    pub fn set_victim(&self, pid: u32) {
        self.lock().victim = Some(pid);
    }

    /// Pieces forwarded since the last reset.
    pub fn pieces(&self) -> usize {
        self.lock().pieces
    }

    /// The first piece since the last reset that carried `zone-begin`.
    pub fn first_zone_begin(&self) -> Option<usize> {
        self.lock().first_begin
    }

    /// Whether the armed kill happened.
    pub fn killed(&self) -> bool {
        self.lock().killed
    }

    /// Waits until knotd closed every relayed connection (so what it was sent is all done).
    pub fn wait_closed(&self, timeout: Duration) {
        let start = Instant::now();
        while self.lock().open > 0 {
            assert!(start.elapsed() < timeout, "knotd keeps a connection open");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

/// Relays one connection: client to knotd on one thread (counting, killing when armed),
/// knotd to client on another until knotd closes.
fn relay_connection(client: UnixStream, server: UnixStream, st: Arc<Mutex<State>>) {
    st.lock().unwrap().open += 1;
    let (c_in, s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let st_up = st.clone();
    let up = std::thread::spawn(move || upstream(c_in, s_out, st_up));
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        // Until knotd closes: its replies go to the client (or nowhere once it is killed).
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = c_out.write_all(&buf[..n]);
                }
            }
        }
        let _ = c_out.shutdown(std::net::Shutdown::Both);
        let _ = up.join();
        st.lock().unwrap().open -= 1;
    });
}

/// Forwards what the client sends until it closes or the armed kill happens.
fn upstream(mut c_in: UnixStream, mut s_out: UnixStream, st: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match c_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let piece = &buf[..n];
        let mut s = st.lock().unwrap();
        if s.killed {
            break;
        }
        if s.kill_before.as_mut().is_some_and(|pick| pick(piece)) {
            kill_victim(&st, s);
            break;
        }
        if s_out.write_all(piece).is_err() {
            break;
        }
        s.pieces += 1;
        if s.first_begin.is_none() && piece.windows(10).any(|w| w == b"zone-begin") {
            s.first_begin = Some(s.pieces);
        }
        if s.kill_after == Some(s.pieces) {
            kill_victim(&st, s);
            break;
        }
    }
    let _ = s_out.shutdown(std::net::Shutdown::Write);
}

/// SIGKILLs the victim, waiting for it to be named first.
fn kill_victim<'a>(st: &'a Mutex<State>, mut s: MutexGuard<'a, State>) {
    while s.victim.is_none() {
        drop(s);
        std::thread::sleep(Duration::from_millis(1));
        s = st.lock().unwrap();
    }
    // SAFETY: kill(2) of a process the test started.
    unsafe { libc::kill(s.victim.unwrap() as libc::pid_t, libc::SIGKILL) };
    s.killed = true;
}
