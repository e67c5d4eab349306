//! A fake Kubernetes API server on 127.0.0.1 for the Kubernetes target's tests and benchmark.
//!
//! It is not Kubernetes: it answers `GET`/`DELETE` of one pod with canned JSON, and serves the
//! real exec WebSocket protocol (`v5.channel.k8s.io`, or `v4.channel.k8s.io`) by running the
//! requested command LOCALLY, with the environment configured for the named container and the
//! pod's `/dnsdhcp/bin/dnsdhcp` mapped to the binary under test. Included by the `kube_*`
//! tests and `benches/exec_stream.rs` with `#[path]`; as a test target of its own it has none.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use dnsdhcp::pod::{self, PostStartConfig};
use dnsdhcp::target::LocalTarget;
use test_support::kea::KeaServer;
use test_support::knot::KnotServer;

/// A hook called with the container and command line of each exec.
pub type OnExec = Arc<dyn Fn(&str, &[String]) + Send + Sync>;

/// What the fake does.
pub struct FakeConfig {
    /// Namespace and pod it knows.
    pub namespace: String,
    pub pod: String,
    /// Container name → environment of commands run "in" it.
    pub containers: HashMap<String, Vec<(String, String)>>,
    /// The local binary standing for `/dnsdhcp/bin/dnsdhcp`.
    pub binary: PathBuf,
    /// Answer with protocol v5 (true) or v4.
    pub v5: bool,
    /// Cut the TCP connection of an exec after this many bytes of stdin or stdout passed.
    pub cut_after: Option<u64>,
    /// Frame size of stdout/stderr messages.
    pub frame: usize,
    /// Called (on a blocking thread) when the pod is deleted: simulate its restart.
    pub on_delete: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called (on a blocking thread) with the container and command line before each exec
    /// runs: a daemon failing at a chosen step.
    pub on_exec: Option<OnExec>,
}

impl FakeConfig {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        FakeConfig {
            namespace: "dns-dhcp".into(),
            pod: "unified-dns-dhcp-0".into(),
            containers: HashMap::new(),
            binary: binary.into(),
            v5: true,
            cut_after: None,
            frame: 64 << 10,
            on_delete: None,
            on_exec: None,
        }
    }

    pub fn container(mut self, name: &str, env: &[(&str, String)]) -> Self {
        self.containers.insert(
            name.into(),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        self
    }
}

/// One exec the fake ran.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub container: String,
    pub command: Vec<String>,
    /// Exit code once the local process ended.
    pub exit: Option<i32>,
    pub cut: bool,
}

/// The running fake.
pub struct FakeApi {
    pub port: u16,
    /// Request lines seen (`GET /api/v1/...`).
    pub requests: Arc<Mutex<Vec<String>>>,
    pub execs: Arc<Mutex<Vec<ExecRecord>>>,
    uid: Arc<AtomicU64>,
}

impl FakeApi {
    /// Starts serving on 127.0.0.1 (a random port) on the current tokio runtime.
    pub async fn start(config: FakeConfig) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let execs = Arc::new(Mutex::new(Vec::new()));
        let uid = Arc::new(AtomicU64::new(1));
        let config = Arc::new(config);
        let (r, e, u) = (requests.clone(), execs.clone(), uid.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                stream.set_nodelay(true).ok();
                let (config, r, e, u) = (config.clone(), r.clone(), e.clone(), u.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, config, r, e, u).await;
                });
            }
        });
        FakeApi {
            port,
            requests,
            execs,
            uid,
        }
    }

    /// A kube client pointed at it.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    /// The pod's current uid.
    pub fn uid(&self) -> String {
        format!("uid-{}", self.uid.load(Ordering::SeqCst))
    }

    /// Waits until every exec's local process has ended (at most `secs`).
    pub async fn wait_execs_done(&self, secs: u64) {
        for _ in 0..secs * 20 {
            if self.execs.lock().unwrap().iter().all(|e| e.exit.is_some()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("execs still running: {:?}", self.execs.lock().unwrap());
    }
}

fn pod_json(config: &FakeConfig, uid: u64) -> String {
    let containers: Vec<_> = {
        let mut names: Vec<&String> = config.containers.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| serde_json::json!({ "name": n, "image": "fake" }))
            .collect()
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": config.pod, "namespace": config.namespace, "uid": format!("uid-{uid}") },
        "spec": { "containers": containers },
        "status": { "phase": "Running", "conditions": [ { "type": "Ready", "status": "True" } ] }
    })
    .to_string()
}

async fn read_head(stream: &mut TcpStream, consume: bool) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf[..end + 4].to_vec();
            if consume {
                let mut skip = vec![0u8; end + 4];
                stream.read_exact(&mut skip).await?;
            }
            return Ok(head);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn serve(
    mut stream: TcpStream,
    config: Arc<FakeConfig>,
    requests: Arc<Mutex<Vec<String>>>,
    execs: Arc<Mutex<Vec<ExecRecord>>>,
    uid: Arc<AtomicU64>,
) -> std::io::Result<()> {
    // Plain HTTP requests (keep-alive) until one asks for a WebSocket upgrade.
    loop {
        let head = match read_head(&mut stream, false).await {
            Ok(h) => h,
            Err(_) => return Ok(()),
        };
        if String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("upgrade: websocket")
        {
            return serve_exec(stream, config, requests, execs).await;
        }
        let head = read_head(&mut stream, true).await?;
        let text = String::from_utf8_lossy(&head).to_string();
        let line = text.lines().next().unwrap_or("").to_owned();
        let len: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        requests.lock().unwrap().push(line.clone());
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
        let pod_path = format!(
            "/api/v1/namespaces/{}/pods/{}",
            config.namespace, config.pod
        );
        let (code, body) = if path != pod_path {
            (
                404,
                serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods not found","reason":"NotFound","code":404}).to_string(),
            )
        } else if method == "GET" {
            (200, pod_json(&config, uid.load(Ordering::SeqCst)))
        } else if method == "DELETE" {
            let old = pod_json(&config, uid.load(Ordering::SeqCst));
            if let Some(f) = config.on_delete.clone() {
                tokio::task::spawn_blocking(move || f()).await.unwrap();
            }
            uid.fetch_add(1, Ordering::SeqCst);
            (200, old)
        } else {
            (405, "{}".into())
        };
        let reason = if code == 200 { "OK" } else { "Error" };
        let resp = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(resp.as_bytes()).await?;
    }
}

fn query_params(uri: &str) -> Vec<(String, String)> {
    let q = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_json(code: i32) -> String {
    if code == 0 {
        serde_json::json!({"metadata":{},"status":"Success"}).to_string()
    } else {
        serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [ { "reason": "ExitCode", "message": code.to_string() } ] }
        })
        .to_string()
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback type
async fn serve_exec(
    stream: TcpStream,
    config: Arc<FakeConfig>,
    requests: Arc<Mutex<Vec<String>>>,
    execs: Arc<Mutex<Vec<ExecRecord>>>,
) -> std::io::Result<()> {
    let uri = Arc::new(Mutex::new(String::new()));
    let u2 = uri.clone();
    let v5 = config.v5;
    let callback = move |req: &Request, mut resp: Response| {
        *u2.lock().unwrap() = req.uri().to_string();
        let proto = if v5 {
            "v5.channel.k8s.io"
        } else {
            "v4.channel.k8s.io"
        };
        resp.headers_mut()
            .insert("sec-websocket-protocol", proto.parse().unwrap());
        Ok(resp)
    };
    let mut ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    ws_config.write_buffer_size = 256 << 10;
    let mut ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config))
        .await
        .map_err(std::io::Error::other)?;
    let uri = uri.lock().unwrap().clone();
    requests
        .lock()
        .unwrap()
        .push(format!("GET {uri} (websocket)"));
    let params = query_params(&uri);
    let container = params
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut command: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let want_stdin = params.iter().any(|(k, v)| k == "stdin" && v == "true");
    let index = {
        let mut e = execs.lock().unwrap();
        e.push(ExecRecord {
            container: container.clone(),
            command: command.clone(),
            exit: None,
            cut: false,
        });
        e.len() - 1
    };
    let Some(env) = config.containers.get(&container) else {
        // A real API server answers 400 before the upgrade; after it, report a failure status.
        let status = serde_json::json!({"metadata":{},"status":"Failure","message":format!("container {container} is not valid for pod {}", config.pod),"reason":"BadRequest"}).to_string();
        let mut frame = vec![3u8];
        frame.extend_from_slice(status.as_bytes());
        let _ = ws.send(Message::binary(frame)).await;
        let _ = ws.close(None).await;
        execs.lock().unwrap()[index].exit = Some(-1);
        return Ok(());
    };
    if let Some(f) = config.on_exec.clone() {
        let (c, cmd) = (container.clone(), command.clone());
        tokio::task::spawn_blocking(move || f(&c, &cmd)).await?;
    }
    if command.first().map(String::as_str) == Some("/dnsdhcp/bin/dnsdhcp") {
        command[0] = config.binary.to_string_lossy().into_owned();
    }
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if want_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let status = serde_json::json!({"metadata":{},"status":"Failure","message":format!("exec: {e}"),"reason":"InternalError"}).to_string();
            let mut frame = vec![3u8];
            frame.extend_from_slice(status.as_bytes());
            let _ = ws.send(Message::binary(frame)).await;
            let _ = ws.close(None).await;
            execs.lock().unwrap()[index].exit = Some(-1);
            return Ok(());
        }
    };
    let mut child_in = child.stdin.take();
    let mut child_out = child.stdout.take();
    let mut child_err = child.stderr.take();
    let mut moved = 0u64;
    let cut_after = config.cut_after;
    let mut out_buf = vec![0u8; config.frame];
    let mut err_buf = vec![0u8; config.frame];
    let mut cut = false;
    while child_out.is_some() || child_err.is_some() {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    if b[0] == 0 {
                        if let Some(w) = child_in.as_mut()
                            && w.write_all(&b[1..]).await.is_err()
                        {
                            child_in = None;
                        }
                        moved += (b.len() - 1) as u64;
                        if cut_after.is_some_and(|c| moved >= c) { cut = true; break; }
                    } else if b[0] == 255 && b.get(1) == Some(&0) {
                        child_in = None; // v5: stdin closed
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away: its stdin ends.
                    child_in = None;
                    if !v5 { /* v4 closes the socket to end stdin; keep sending nothing */ }
                    cut = true;
                    break;
                }
                _ => {}
            },
            r = async { child_out.as_mut().unwrap().read(&mut out_buf).await }, if child_out.is_some() => match r {
                Ok(0) | Err(_) => child_out = None,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(1u8);
                    frame.extend_from_slice(&out_buf[..n]);
                    if ws.send(Message::binary(frame)).await.is_err() { cut = true; break; }
                    moved += n as u64;
                    if cut_after.is_some_and(|c| moved >= c) { cut = true; break; }
                }
            },
            r = async { child_err.as_mut().unwrap().read(&mut err_buf).await }, if child_err.is_some() => match r {
                Ok(0) | Err(_) => child_err = None,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(2u8);
                    frame.extend_from_slice(&err_buf[..n]);
                    if ws.send(Message::binary(frame)).await.is_err() { cut = true; break; }
                }
            },
        }
    }
    if cut {
        // Drop the connection abruptly; the process loses its streams, as in a real pod.
        drop(ws);
        drop(child_in);
        drop(child_out);
        drop(child_err);
        let status = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-9);
        let mut e = execs.lock().unwrap();
        e[index].exit = Some(status);
        e[index].cut = true;
        return Ok(());
    }
    drop(child_in);
    let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-9);
    let mut frame = vec![3u8];
    frame.extend_from_slice(status_json(code).as_bytes());
    let _ = ws.send(Message::binary(frame)).await;
    let _ = ws.close(None).await;
    // Drain until the client closes.
    while let Some(Ok(_)) = ws.next().await {}
    execs.lock().unwrap()[index].exit = Some(code);
    Ok(())
}

/// What deleting the pod does to the daemons, for [`FakeConfig::on_delete`]: with `kea`, Kea
/// stops, `init-leases` puts its restored lease file in place and Kea starts again; then
/// post-start runs against `knot` (zones restored, no static records).
pub fn pod_restart(
    knot: Arc<KnotServer>,
    kea: Option<Arc<Mutex<KeaServer>>>,
) -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(move || {
        if let Some(kea) = &kea {
            let mut kea = kea.lock().unwrap();
            kea.stop();
            pod::init_leases(&kea.lease_file()).expect("init-leases");
            kea.restart();
        }
        let cfg = PostStartConfig {
            target: LocalTarget {
                knot_socket: knot.socket_path().to_owned(),
                ..LocalTarget::default()
            },
            zones_dir: knot.zones_dir().to_owned(),
            values_files: vec![],
            timeout: std::time::Duration::from_secs(30),
            apply: Default::default(),
        };
        pod::post_start(&cfg, &mut |_| {}).expect("post-start");
    })
}
