//! Which `knotd` / `kea-dhcp4` the fixtures start: the host's (Debian 12: Knot 3.2, Kea 2.2) or
//! Debian 13's (Knot 3.4, Kea 2.6) from the cached trixie root that `scripts/trixie-root.sh`
//! builds.
//!
//! Chosen per process by `DNSDHCP_TEST_DAEMONS=host|trixie` (default `host`), or per fixture by
//! the builders' `daemons(...)` option. `scripts/test.sh` runs every daemon test once per
//! variant.
//!
//! A trixie daemon runs in a private mount namespace, chrooted into the root:
//! `unshare -m --propagation private sh -c 'mount proc; rbind /dev; tmpfs on ROOT/tmp;
//! bind each state dir at the same path; exec chroot ROOT daemon ...'`. The state directories
//! (and the host's temporary directory) are bind-mounted at the **same path** inside the root,
//! so the sockets, lease files and backup directories have identical paths for the test code on
//! the host. The `exec` chain makes the spawned child's PID the daemon's own; the mounts vanish
//! with it. The chroot shares the host's network (127.0.0.1) or the `ip netns exec` namespace.
//!
//! Client tools (`knotc`, `kdig`) of the trixie variant are trixie's own, run on the host through
//! the root's dynamic loader (no chroot: they see the host's paths directly, and start in a few
//! milliseconds, which matters for the fixtures' polling loops).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable choosing the daemons: `host` (default) or `trixie`.
pub const ENV: &str = "DNSDHCP_TEST_DAEMONS";
/// Environment variable overriding the trixie root's path (default
/// `<workspace>/.cache/trixie-root-3`, see [`ROOT_GENERATION`]).
pub const ROOT_ENV: &str = "DNSDHCP_TRIXIE_ROOT";

/// The daemon versions a fixture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemons {
    /// The host's Debian 12 packages: Knot 3.2.6, Kea 2.2.0.
    Host,
    /// Debian 13's packages from the cached trixie root: Knot 3.4.6, Kea 2.6.3.
    Trixie,
}

impl Daemons {
    /// The variant chosen by `DNSDHCP_TEST_DAEMONS` (`host` when unset). Panics on other values.
    pub fn from_env() -> Self {
        match std::env::var(ENV).as_deref() {
            Err(_) | Ok("") | Ok("host") => Daemons::Host,
            Ok("trixie") => Daemons::Trixie,
            Ok(other) => panic!("{ENV}={other:?}: expected `host` or `trixie`"),
        }
    }

    /// `host` or `trixie`.
    pub fn name(self) -> &'static str {
        match self {
            Daemons::Host => "host",
            Daemons::Trixie => "trixie",
        }
    }

    /// Whether this variant runs Knot ≥ 3.4 (FILTER diff markers, bare version string, …).
    pub fn knot_3_4(self) -> bool {
        self == Daemons::Trixie
    }

    /// Whether this variant runs Kea ≥ 2.6 (`pool_id` column, result 4 for duplicates, path
    /// restrictions, `lease4-write`).
    pub fn kea_2_6(self) -> bool {
        self == Daemons::Trixie
    }

    /// Panics unless `program` (an absolute path such as `/usr/sbin/knotd`) exists for this
    /// variant, naming the package (`host`) or `scripts/trixie-root.sh` (`trixie`).
    pub fn require(self, program: &str, package: &str) {
        match self {
            Daemons::Host => assert!(
                Path::new(program).exists(),
                "{program} not found: install the Debian package `{package}` \
                 (apt-get install -y {package}); these tests never skip"
            ),
            Daemons::Trixie => {
                let p = in_root(&trixie_root(), program);
                assert!(
                    p.exists(),
                    "{} not found in the trixie root: rebuild it with scripts/trixie-root.sh",
                    p.display()
                );
            }
        }
    }

    /// A command that runs daemon `program` (absolute path) of this variant with `dirs`
    /// reachable at their own paths. Host: `program` itself. Trixie: see the module docs.
    pub fn daemon_command(self, program: &str, dirs: &[&Path]) -> Command {
        self.daemon_command_via(None, program, dirs)
    }

    /// Like [`Daemons::daemon_command`], started through `launcher` (e.g. `ip netns exec NS`):
    /// `launcher[0] launcher[1..] program ...`.
    pub fn daemon_command_via(
        self,
        launcher: Option<&[&str]>,
        program: &str,
        dirs: &[&Path],
    ) -> Command {
        let (first, rest): (&str, Vec<OsString>) = match self {
            Daemons::Host => (program, Vec::new()),
            Daemons::Trixie => {
                let root = trixie_root();
                // sh -c SCRIPT sh PROGRAM ARGS... : "$@" is the program and its arguments.
                let v = ["-m", "--propagation", "private", "/bin/sh", "-c"]
                    .into_iter()
                    .map(OsString::from)
                    .chain([
                        chroot_script(&root, dirs).into(),
                        "sh".into(),
                        program.into(),
                    ])
                    .collect();
                (UNSHARE, v)
            }
        };
        let mut cmd = match launcher {
            Some(l) => {
                let mut c = Command::new(l[0]);
                c.args(&l[1..]).arg(first);
                c
            }
            None => Command::new(first),
        };
        cmd.args(rest);
        cmd
    }

    /// A command that runs client tool `program` (absolute path, e.g. `/usr/sbin/knotc`) of this
    /// variant on the host. Trixie: through the root's dynamic loader with its libraries.
    pub fn client_command(self, program: &str) -> Command {
        match self {
            Daemons::Host => Command::new(program),
            Daemons::Trixie => {
                let root = trixie_root();
                let mut c =
                    Command::new(root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
                c.arg("--library-path")
                    .arg(format!(
                        "{r}/usr/lib/x86_64-linux-gnu:{r}/usr/lib/x86_64-linux-gnu/knot",
                        r = root.display()
                    ))
                    .arg(in_root(&root, program));
                c
            }
        }
    }
}

/// `unshare` (util-linux).
const UNSHARE: &str = "/usr/bin/unshare";

/// The generation of `scripts/trixie-root.sh`'s package list, part of the root's path.
pub const ROOT_GENERATION: u32 = 3;

/// The trixie root: `DNSDHCP_TRIXIE_ROOT`, else `<workspace>/.cache/trixie-root-3`. Panics naming
/// `scripts/trixie-root.sh` when it has not been built.
pub fn trixie_root() -> PathBuf {
    let root = match std::env::var_os(ROOT_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../.cache/trixie-root-{ROOT_GENERATION}")),
    };
    checked_root(root)
}

/// `root` (canonical) if it is a built trixie root; else a panic naming scripts/trixie-root.sh.
fn checked_root(root: PathBuf) -> PathBuf {
    assert!(
        root.join(".dnsdhcp-stamp").exists() && root.join("usr/sbin/knotd").exists(),
        "{ENV}=trixie but the trixie root {} is missing: build it with scripts/trixie-root.sh \
         (as root)",
        root.display()
    );
    root.canonicalize().expect("canonicalize the trixie root")
}

/// `path` (absolute) inside `root`.
fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script run by `unshare -m` for a trixie daemon; `"$@"` is the program and its arguments.
fn chroot_script(root: &Path, dirs: &[&Path]) -> String {
    let r = root.to_string_lossy();
    let mut s = String::from("set -e; ");
    s.push_str(&format!(
        "mount -t proc proc {}; ",
        sh_quote(&format!("{r}/proc"))
    ));
    s.push_str(&format!(
        "mount --rbind /dev {}; ",
        sh_quote(&format!("{r}/dev"))
    ));
    // The host's temporary directory at the same path (tempdirs of tests and fixtures), on a
    // tmpfs first so no mount point is ever created in the cached root itself.
    s.push_str(&format!(
        "mount -t tmpfs tmpfs {}; ",
        sh_quote(&format!("{r}/tmp"))
    ));
    let mut all: Vec<PathBuf> = vec![std::env::temp_dir()];
    all.extend(dirs.iter().map(|d| d.to_path_buf()));
    let tmp = std::env::temp_dir();
    for (i, d) in all.into_iter().enumerate() {
        let d = d.canonicalize().unwrap_or(d);
        if i > 0 && d.starts_with(&tmp) {
            continue; // already there with the temporary directory
        }
        if d == Path::new("/tmp") {
            s.push_str(&format!(
                "mount --rbind /tmp {}; ",
                sh_quote(&format!("{r}/tmp"))
            ));
            continue;
        }
        let inside = format!("{r}{}", d.display());
        s.push_str(&format!(
            "mkdir -p {q}; mount --rbind {src} {q}; ",
            q = sh_quote(&inside),
            src = sh_quote(&d.to_string_lossy())
        ));
    }
    s.push_str(&format!("exec /usr/sbin/chroot {} \"$@\"", sh_quote(&r)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_root_names_the_script_that_builds_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("trixie-root");
        let e = std::panic::catch_unwind(|| checked_root(missing)).unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(msg.contains("scripts/trixie-root.sh"), "{msg}");
    }

    #[test]
    fn chroot_script_binds_dirs_at_their_own_paths() {
        let s = chroot_script(Path::new("/r"), &[Path::new("/srv/state")]);
        assert!(
            s.contains("mount --rbind '/srv/state' '/r/srv/state'"),
            "{s}"
        );
        assert!(s.ends_with("exec /usr/sbin/chroot '/r' \"$@\""), "{s}");
    }
}
