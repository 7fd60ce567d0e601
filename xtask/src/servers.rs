//! The servers the tests run against, on 127.0.0.1 only: SeaweedFS (`weed mini`, which
//! checks SigV4 signatures) and moto (which accepts any keys) for S3, a SeaweedFS cluster
//! (one master, three volume servers, one filer, two S3 gateways) for the multi-endpoint
//! store, and Azurite's blob service (which checks Shared Key signatures of its
//! development account). Each run
//! gets fresh data under `target/test-tools/run-<pid>/`; the tests find the servers through
//! the `S3DLIO_TEST_*` variables in [`Servers::env`] (see docs/TESTING.md). The S3 benchmark
//! starts SeaweedFS alone ([`start_seaweedfs`]), configured the same way.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::root;
use crate::tools::Tools;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it gets SIGKILL
/// (SeaweedFS takes about 3 s).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// SeaweedFS's gRPC ports are its HTTP ports plus this.
const GRPC_OFFSET: u16 = 10_000;

/// Running servers. Dropping this stops them and removes their run directory, unless
/// [`Servers::keep_logs`] was called (then only the logs stay).
#[derive(Debug)]
pub struct Servers {
    pub dir: PathBuf,
    /// What the test processes need: `S3DLIO_TEST_*` names and values.
    pub env: Vec<(String, String)>,
    children: Vec<Server>,
    keep_logs: bool,
}

#[derive(Debug)]
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// How long it may take to exit after SIGTERM.
    grace: Duration,
}

/// Azurite's development account and its well-known key (published by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Start every server (in `target/test-tools/run-<pid>/`) and wait until they answer.
pub fn start(tools: &Tools) -> Result<Servers, String> {
    let (mut servers, mut rng) = new_run("target/test-tools")?;
    let access_key = rng.alnum(20, false);
    let secret_key = rng.alnum(40, true);

    // Hold every chosen port until all are chosen, so the two servers cannot collide.
    let (weed_port, held) = free_ports(&mut rng, &weed_offsets())?;
    let (moto_port, held2) = free_ports(&mut rng, &[0])?;
    let (azurite_port, held3) = free_ports(&mut rng, &[0])?;
    let (cluster_port, held4) = free_ports(&mut rng, &cluster_offsets())?;
    drop((held, held2, held3, held4));

    spawn_seaweedfs(&mut servers, tools, weed_port, &access_key, &secret_key, 64)?;
    let mut moto = Command::new(&tools.moto_server);
    moto.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]);
    scrub_aws(&mut moto);
    servers.spawn("moto", &mut moto)?;
    spawn_azurite(&mut servers, &tools.azurite_blob, azurite_port)?;
    let gateways = spawn_cluster(&mut servers, tools, cluster_port, &access_key, &secret_key)?;

    // Anonymous `GET /`: SeaweedFS refuses it (403) once S3 is up, moto lists buckets (200),
    // Azurite finds no account in the path (400).
    let deadline = Instant::now() + READY_TIMEOUT;
    servers.wait_ready(0, weed_port, 403, deadline)?;
    servers.wait_ready(1, moto_port, 200, deadline)?;
    servers.wait_ready(2, azurite_port, 400, deadline)?;
    servers.wait_cluster(cluster_port, deadline)?;
    servers.keep_logs = false;

    servers.env = [
        ("S3DLIO_TEST_SERVERS", "1".to_owned()),
        ("S3DLIO_TEST_S3_SEAWEEDFS", url(weed_port)),
        ("S3DLIO_TEST_S3_MOTO", url(moto_port)),
        ("S3DLIO_TEST_S3_ACCESS_KEY", access_key),
        ("S3DLIO_TEST_S3_SECRET_KEY", secret_key),
        ("S3DLIO_TEST_PYTHON", tools.python.display().to_string()),
        ("S3DLIO_TEST_AZURITE", azurite_url(azurite_port)),
        ("S3DLIO_TEST_AZURITE_ACCOUNT", AZURITE_ACCOUNT.to_owned()),
        ("S3DLIO_TEST_AZURITE_KEY", AZURITE_KEY.to_owned()),
        ("S3DLIO_TEST_S3_CLUSTER", gateways.join(",")),
        (
            "S3DLIO_TEST_S3_CLUSTER_FILER",
            format!("127.0.0.1:{}", cluster_port + CLUSTER_FILER),
        ),
        ("S3DLIO_TEST_WEED", tools.weed.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(servers)
}

/// Start SeaweedFS alone, configured as for the tests but with volumes of `volume_size_mb`,
/// in `<runs>/run-<pid>/` (a directory relative to the workspace root), and wait until it
/// answers. Its endpoint and keys are in
/// [`Servers::env`] under the tests' names (`S3DLIO_TEST_S3_SEAWEEDFS`,
/// `S3DLIO_TEST_S3_ACCESS_KEY`, `S3DLIO_TEST_S3_SECRET_KEY`); [`Servers::pid`] gives its
/// process id.
pub fn start_seaweedfs(tools: &Tools, runs: &str, volume_size_mb: u32) -> Result<Servers, String> {
    let (mut servers, mut rng) = new_run(runs)?;
    let access_key = rng.alnum(20, false);
    let secret_key = rng.alnum(40, true);
    let (port, held) = free_ports(&mut rng, &weed_offsets())?;
    drop(held);
    spawn_seaweedfs(
        &mut servers,
        tools,
        port,
        &access_key,
        &secret_key,
        volume_size_mb,
    )?;
    servers.wait_ready(0, port, 403, Instant::now() + READY_TIMEOUT)?;
    servers.keep_logs = false;
    servers.env = [
        ("S3DLIO_TEST_S3_SEAWEEDFS", url(port)),
        ("S3DLIO_TEST_S3_ACCESS_KEY", access_key),
        ("S3DLIO_TEST_S3_SECRET_KEY", secret_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(servers)
}

/// Start Azurite's blob service alone, as for the tests, in `<runs>/run-<pid>/`, and wait
/// until it answers. Its endpoint is in [`Servers::env`] as `S3DLIO_TEST_AZURITE`;
/// [`Servers::pid`] of "azurite" gives its process id.
pub fn start_azurite(azurite_blob: &Path, runs: &str) -> Result<Servers, String> {
    let (mut servers, mut rng) = new_run(runs)?;
    let (port, held) = free_ports(&mut rng, &[0])?;
    drop(held);
    spawn_azurite(&mut servers, azurite_blob, port)?;
    servers.wait_ready(0, port, 400, Instant::now() + READY_TIMEOUT)?;
    servers.keep_logs = false;
    servers.env = vec![
        ("S3DLIO_TEST_AZURITE".to_owned(), azurite_url(port)),
        (
            "S3DLIO_TEST_AZURITE_ACCOUNT".to_owned(),
            AZURITE_ACCOUNT.to_owned(),
        ),
        ("S3DLIO_TEST_AZURITE_KEY".to_owned(), AZURITE_KEY.to_owned()),
    ];
    Ok(servers)
}

/// Azurite's blob endpoint for its development account, path-style.
fn azurite_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
}

/// Start `azurite-blob` on `port`: data in memory, no API version check (the SDKs send
/// newer versions than 3.35 knows), path-style URLs only, no telemetry. It runs in the run
/// directory, where it keeps its small debug files.
fn spawn_azurite(servers: &mut Servers, azurite_blob: &Path, port: u16) -> Result<(), String> {
    let mut azurite = Command::new(azurite_blob);
    azurite
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--inMemoryPersistence", "--loose", "--skipApiVersionCheck"])
        .args(["--disableProductStyleUrl", "--disableTelemetry"]);
    scrub_aws(&mut azurite);
    servers.spawn("azurite", &mut azurite)
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// SeaweedFS's five HTTP ports and their gRPC twins, as offsets from a base port.
fn weed_offsets() -> Vec<u16> {
    [0, 1, 2, 3, 4].map(|o| [o, o + GRPC_OFFSET]).concat()
}

/// The cluster's ports as offsets from its base port: the master, three volume servers,
/// the filer, two S3 gateways (each with its gRPC twin).
const CLUSTER_VOLUMES: [u16; 3] = [1, 2, 3];
const CLUSTER_FILER: u16 = 4;
const CLUSTER_GATEWAYS: [u16; 2] = [5, 6];

fn cluster_offsets() -> Vec<u16> {
    (0..7u16).flat_map(|o| [o, o + GRPC_OFFSET]).collect()
}

/// Start a SeaweedFS cluster on `port` and the six ports after it (plus their gRPC twins):
/// `weed master`, three `weed volume`, one `weed filer` and two `weed s3` gateways in
/// front of that filer, which accept the one identity given (SeaweedFS reads it from the
/// environment when it has no other S3 configuration). Returns the gateways' URLs. Data
/// under the run directory's `seaweedfs-data/cluster`.
fn spawn_cluster(
    servers: &mut Servers,
    tools: &Tools,
    port: u16,
    access_key: &str,
    secret_key: &str,
) -> Result<Vec<String>, String> {
    let data = servers.dir.join("seaweedfs-data").join("cluster");
    let p = |o: u16| port + o;
    // Global flags first; every process binds to and advertises 127.0.0.1 only.
    let weed = |what: &str, o: u16| {
        let mut c = Command::new(&tools.weed);
        c.args(["-logtostderr", what, "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-port={}", p(o)))
            .arg(format!("-port.grpc={}", p(o) + GRPC_OFFSET));
        scrub_aws(&mut c);
        c
    };
    let dir = |name: &str| -> Result<String, String> {
        let d = data.join(name);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d.display().to_string())
    };
    let master = format!("127.0.0.1:{}", p(0));

    let mut m = weed("master", 0);
    m.arg(format!("-mdir={}", dir("master")?))
        .args(["-telemetry=false", "-volumeSizeLimitMB=64"]);
    servers.spawn("cluster-master", &mut m)?;
    for (i, o) in CLUSTER_VOLUMES.into_iter().enumerate() {
        let mut v = weed("volume", o);
        v.arg(format!("-dir={}", dir(&format!("volume{i}"))?))
            .arg(format!("-master={master}"))
            // Stop at once on SIGTERM (the default waits 10 s).
            .args(["-max=100", "-preStopSeconds=0"]);
        servers.spawn(VOLUME_NAMES[i], &mut v)?;
    }
    let mut f = weed("filer", CLUSTER_FILER);
    f.arg(format!("-defaultStoreDir={}", dir("filer")?))
        .arg(format!("-master={master}"))
        .arg("-localSocket=cluster-filer.sock");
    // The filer's graceful stop waits 15 s for its gRPC streams; its data is thrown away.
    servers.spawn_with_grace("cluster-filer", &mut f, Duration::from_secs(1))?;
    let filer = format!("127.0.0.1:{}", p(CLUSTER_FILER));
    for (i, o) in CLUSTER_GATEWAYS.into_iter().enumerate() {
        let mut g = weed("s3", o);
        g.arg(format!("-filer={filer}"))
            .args(["-port.iceberg=0", "-port.lance=0"])
            .arg(format!("-localSocket=cluster-s3-{i}.sock"))
            .args([
                "-autoCreateBucket=false",
                "-allowDeleteBucketNotEmpty=false",
            ])
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret_key);
        servers.spawn(GATEWAY_NAMES[i], &mut g)?;
    }
    Ok(CLUSTER_GATEWAYS.map(|o| url(p(o))).to_vec())
}

const VOLUME_NAMES: [&str; 3] = ["cluster-volume0", "cluster-volume1", "cluster-volume2"];
const GATEWAY_NAMES: [&str; 2] = ["cluster-s3-0", "cluster-s3-1"];

/// A fresh run directory `<runs>/run-<pid>/` (the stale ones of dead xtask processes are
/// removed first) and no servers yet; a failure keeps the logs until the caller clears
/// `keep_logs` once everything is up.
fn new_run(runs: &str) -> Result<(Servers, Rng), String> {
    let runs = root().join(runs);
    remove_stale_runs(&runs);
    let dir = runs.join(format!("run-{}", std::process::id()));
    let data = dir.join("seaweedfs-data");
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    let servers = Servers {
        dir,
        env: Vec::new(),
        children: Vec::new(),
        keep_logs: true,
    };
    Ok((servers, Rng::new()))
}

/// Start `weed mini` on `port` (and the four ports after it, plus their gRPC twins) with
/// one identity, in the run directory. Volumes are `volume_size_mb` (the tests use 64, so
/// that many buckets fit: SeaweedFS gives each bucket volumes of its own).
fn spawn_seaweedfs(
    servers: &mut Servers,
    tools: &Tools,
    port: u16,
    access_key: &str,
    secret_key: &str,
    volume_size_mb: u32,
) -> Result<(), String> {
    let data = servers.dir.join("seaweedfs-data");
    let p = |o: u16| (port + o).to_string();
    let mut weed = Command::new(&tools.weed);
    // Global flags come before `mini`: log to our file, not to files in /tmp.
    weed.args(["-logtostderr", "mini"])
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={}", p(0)))
        .arg(format!("-master.port={}", p(1)))
        .arg(format!("-volume.port={}", p(2)))
        .arg(format!("-filer.port={}", p(3)))
        .arg(format!("-admin.port={}", p(4)))
        .args(["-admin.ui=false", "-webdav=false"])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .args(["-master.telemetry=false", "-volume.max=1000"])
        .arg(format!("-master.volumeSizeLimitMB={volume_size_mb}"))
        // In the run directory (relative: short enough for any workspace path), not in
        // /tmp, where SeaweedFS leaves the S3 one behind.
        .args(["-s3.localSocket=s3.sock", "-filer.localSocket=filer.sock"])
        // Behave as AWS does: no bucket appears on a PUT, a non-empty bucket stays.
        .args([
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
        ]);
    scrub_aws(&mut weed);
    // weed mini takes its one identity from these.
    weed.env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key);
    servers.spawn("seaweedfs", &mut weed)
}

/// Remove the run directories of earlier xtask processes that are gone: the logs of a
/// failed run stay until the next run, and a killed run's data does not pile up.
fn remove_stale_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("run-")) else {
            continue;
        };
        let ours = pid == std::process::id().to_string();
        if ours || !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Keep the developer's AWS and Azure settings (profile, keys, endpoint, region, account,
/// connection string) out of a command, so tests see only what we give them; and stop any
/// credential chain from trying the instance-metadata address. `AWS_LC_*` stays: it
/// configures the build of aws-lc-sys (changing it would rebuild that crate), not access
/// to AWS.
pub fn scrub_aws(cmd: &mut Command) {
    for name in inherited_aws_vars() {
        cmd.env_remove(name);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
}

/// The `AWS_*` and `AZURE_*` variables [`scrub_aws`] removes from this process's
/// environment.
pub fn inherited_aws_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| (k.starts_with("AWS_") && !k.starts_with("AWS_LC_")) || k.starts_with("AZURE_"))
        .collect()
}

impl Servers {
    /// The value of one of [`Servers::env`]'s variables.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The process id of the server started as `name` ("seaweedfs", "moto", "azurite").
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.child.id())
    }

    /// Keep the logs when the servers stop (a test failed and they may tell why).
    pub fn keep_logs(&mut self) {
        self.keep_logs = true;
    }

    /// Block until SIGINT/SIGTERM (Ok) or until a server exits by itself (Err).
    pub fn wait_for_signal(&mut self) -> Result<(), String> {
        loop {
            if caught_signal().is_some() {
                return Ok(());
            }
            for s in &self.children {
                if exited(&s.child) {
                    self.keep_logs = true;
                    return Err(format!("{} exited by itself\n{}", s.name, tail(&s.log)));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) -> Result<(), String> {
        self.spawn_with_grace(name, cmd, STOP_GRACE)
    }

    fn spawn_with_grace(
        &mut self,
        name: &'static str,
        cmd: &mut Command,
        grace: Duration,
    ) -> Result<(), String> {
        let log = self.dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let parent = std::process::id() as libc::pid_t;
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group: the terminal's Ctrl-C goes to xtask, which stops it in order,
            // and the whole group can be signalled.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                // Die with xtask however xtask ends, even by SIGKILL.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // xtask may have died before the prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("xtask exited"));
                }
                Ok(())
            })
        };
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {name} ({}): {e}", crate::shown(cmd)))?;
        self.children.push(Server {
            name,
            child,
            log,
            grace,
        });
        Ok(())
    }

    /// Wait until the cluster on `port` can store objects: every volume server has
    /// registered with the master, and both gateways answer (403 to an anonymous `GET /`).
    fn wait_cluster(&self, port: u16, deadline: Instant) -> Result<(), String> {
        let index = |name: &str| {
            self.children
                .iter()
                .position(|s| s.name == name)
                .expect("cluster process started")
        };
        for (i, o) in CLUSTER_GATEWAYS.into_iter().enumerate() {
            self.wait_ready(index(GATEWAY_NAMES[i]), port + o, 403, deadline)?;
        }
        let master = index("cluster-master");
        loop {
            let status = http_get(port, "/dir/status").unwrap_or_default();
            let registered = CLUSTER_VOLUMES
                .iter()
                .filter(|o| status.contains(&format!("\"127.0.0.1:{}\"", port + *o)))
                .count();
            if registered == CLUSTER_VOLUMES.len() {
                return Ok(());
            }
            if exited(&self.children[master].child) || caught_signal().is_some() {
                return Err(format!(
                    "the cluster's master stopped\n{}",
                    tail(&self.children[master].log)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{registered} of 3 volume servers registered with the cluster's master \
                     within {} s\n{}",
                    READY_TIMEOUT.as_secs(),
                    tail(&self.children[master].log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_ready(
        &self,
        i: usize,
        port: u16,
        status: u16,
        deadline: Instant,
    ) -> Result<(), String> {
        let s = &self.children[i];
        loop {
            if exited(&s.child) {
                return Err(format!(
                    "{} exited during startup\n{}",
                    s.name,
                    tail(&s.log)
                ));
            }
            let got = http_status(port);
            if got == Some(status) {
                return Ok(());
            }
            if caught_signal().is_some() {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not come up on 127.0.0.1:{port} within {} s (GET / answered {}, \
                     expected {status})\n{}",
                    s.name,
                    READY_TIMEOUT.as_secs(),
                    got.map_or("nothing".into(), |c| c.to_string()),
                    tail(&s.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // All at once: the cluster's processes each take a moment to stop.
        for s in self.children.iter().rev() {
            terminate(&s.child);
        }
        for s in self.children.iter_mut().rev() {
            stop(&mut s.child, s.grace);
        }
        if self.keep_logs {
            let _ = std::fs::remove_dir_all(self.dir.join("seaweedfs-data"));
            eprintln!("xtask: server logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// SIGTERM the child's process group.
fn terminate(child: &Child) {
    // SAFETY: a plain syscall. The group id cannot name anyone else: it is our child's
    // pid, and the child is not reaped until `stop`.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGTERM) };
}

/// SIGTERM the child's process group, SIGKILL it after `grace`, then reap it.
fn stop(child: &mut Child, grace: Duration) {
    let group = child.id() as libc::pid_t;
    terminate(child);
    let deadline = Instant::now() + grace;
    let mut killed = false;
    while !exited(child) {
        if !killed && Instant::now() > deadline {
            // SAFETY: as in `terminate`.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever else is still in the group (the exited leader keeps the id reserved).
    // SAFETY: as in `terminate`.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Whether the child has exited, without reaping it (so its pid stays ours to signal).
fn exited(child: &Child) -> bool {
    // SAFETY: an all-zero siginfo_t is valid; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the out-pointer is valid for the call.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r == -1 {
        // ECHILD: already reaped. EINTR: ask again next time.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    }
    // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zero: still running).
    unsafe { info.si_pid() != 0 }
}

/// The whole answer (head and body) to an anonymous `GET path`, or None if nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The status code of an anonymous `GET /`, or None if nothing answers.
fn http_status(port: u16) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    // "HTTP/1.1 403 ..." : the status is in the first 12 bytes.
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => return None,
            Ok(k) => n += k,
        }
    }
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// A base port such that base + each offset is free on 127.0.0.1, with listeners holding
/// those ports until dropped.
fn free_ports(rng: &mut Rng, offsets: &[u16]) -> Result<(u16, Vec<TcpListener>), String> {
    for _ in 0..200 {
        // 20000..40000: below most ephemeral ranges' start, with room for the gRPC offset.
        let base = 20_000 + (rng.next() % 20_000) as u16;
        let held: Result<Vec<_>, _> = offsets
            .iter()
            .map(|o| TcpListener::bind((Ipv4Addr::LOCALHOST, base + o)))
            .collect();
        if let Ok(held) = held {
            return Ok((base, held));
        }
    }
    Err("found no free ports on 127.0.0.1 in 20000..50000".into())
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!(
        "last lines of {}:\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

/// Keys and ports that differ from run to run (xorshift seeded by time and pid); nothing
/// here needs to be secret, only unlikely to collide.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn alnum(&mut self, len: usize, lowercase: bool) -> String {
        let chars: &[u8] = if lowercase {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        } else {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        };
        (0..len)
            .map(|_| chars[(self.next() % chars.len() as u64) as usize] as char)
            .collect()
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Catch the first SIGINT or SIGTERM so the servers are stopped and cleaned up in order; a
/// second one takes the default action (xtask dies, and PDEATHSIG takes the servers along).
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is valid; the handler only stores to an atomic,
        // which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal caught by [`catch_signals`]' handler, if any.
pub fn caught_signal() -> Option<libc::c_int> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
