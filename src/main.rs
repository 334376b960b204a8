//! The `uaedge` command: the binary's edge, where errors become exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info};
use uaedge::bus::{ReloadError, ReloadOutcome, ReloadRecord};
use uaedge::config::Config;

/// OPC UA-centric industrial edge runtime: device drivers (Modbus, OPC UA, simulated
/// PROFINET and EtherNet/IP) into one data model, served over OPC UA and Sparkplug B.
#[derive(Parser)]
#[command(name = "uaedge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the runtime until SIGTERM or Ctrl-C.
    Run {
        /// Config file.
        #[arg(short, long, default_value = "/etc/uaedge/config.yaml")]
        config: PathBuf,
    },
    /// Validate a config file: print every error with file:line:column and exit non-zero,
    /// or exit 0 when it is good.
    Check {
        #[arg(short, long, default_value = "/etc/uaedge/config.yaml")]
        config: PathBuf,
    },
    /// Print the tag table of a config: path, type, driver address, units.
    Tags {
        #[arg(short, long, default_value = "/etc/uaedge/config.yaml")]
        config: PathBuf,
    },
    /// Print the configured alarms: their OPC UA Part 9 type, severity, acknowledgement and
    /// the NodeIds of the condition and of its source tag.
    Alarms {
        #[arg(short, long, default_value = "/etc/uaedge/config.yaml")]
        config: PathBuf,
    },
    /// Print a tag's stored history as CSV (or JSON lines), e.g.
    /// `uaedge history --tag press3/hydraulics/pressure --from -1h > pressure.csv`. Reads the
    /// history file of the config's `history:` section, also while the service runs.
    History {
        #[arg(short, long, default_value = "/etc/uaedge/config.yaml")]
        config: PathBuf,
        /// The tag's path, as `uaedge tags` prints it.
        #[arg(long)]
        tag: String,
        /// RFC 3339 (`2026-12-06T16:00:00Z`), `now`, or a time before now (`-2h`, `-1d`).
        #[arg(long, default_value = "-1h", allow_hyphen_values = true)]
        from: String,
        #[arg(long, default_value = "now", allow_hyphen_values = true)]
        to: String,
        #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
        format: String,
    },
    /// Browse a device and print a `tags:` block to paste into its device entry, e.g.
    /// `uaedge discover opcua opc.tcp://10.0.0.7:4840 --root "ns=2;s=Line1"`.
    Discover {
        #[arg(value_parser = ["opcua"])]
        protocol: String,
        /// The server's endpoint URL (no security, anonymous).
        endpoint: String,
        /// Where to start: a NodeId or a `/Objects/2:Plant/…` browse path (default: Objects).
        #[arg(long)]
        root: Option<String>,
        /// How many levels below the root to browse.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                let tags: usize = c.device_defs.iter().map(|d| d.driver_tags as usize).sum();
                println!(
                    "{}: ok ({} devices, {} tags, {} anomaly checks)",
                    config.display(),
                    c.devices.len(),
                    tags,
                    c.checks.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", config.display(), errors.0.len());
                ExitCode::from(1)
            }
        },
        Command::Tags { config } => match Config::load(&config) {
            Ok(c) => {
                print_tags(&c);
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::History {
            config,
            tag,
            from,
            to,
            format,
        } => export_history(&config, &tag, &from, &to, &format),
        Command::Alarms { config } => match Config::load(&config) {
            Ok(c) => {
                print_alarms(&c);
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Run { config } => {
            raise_open_file_limit();
            run(config)
        }
        Command::Discover {
            endpoint,
            root,
            depth,
            ..
        } => discover_opcua(&endpoint, root.as_deref(), depth),
    }
}

fn export_history(config: &Path, tag: &str, from: &str, to: &str, format: &str) -> ExitCode {
    use uaedge::history::export;
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    let Some(settings) = config.history else {
        eprintln!(
            "{}: no `history:` section, so nothing is historized",
            config.file
        );
        return ExitCode::from(1);
    };
    let now = uaedge_driver::Timestamp::now().as_micros();
    let (from, to) = match (export::parse_time(from, now), export::parse_time(to, now)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let points = match export::read(&settings.path, tag, from, to) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match format {
        "json" => export::write_json(&mut out, &points),
        _ => export::write_csv(&mut out, &points),
    }
    .and_then(|()| std::io::Write::flush(&mut out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the export: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_tags(config: &Config) {
    let rows: Vec<[String; 5]> = config
        .tag_defs
        .iter()
        .map(|t| {
            // An alarm tag is uaedge's own, not read from the device's driver.
            let driver = config.device_defs.get(t.device.index()).map_or("", |d| {
                if d.is_alarm_tag(t.id) {
                    "anomaly"
                } else {
                    d.driver.as_str()
                }
            });
            [
                t.path.to_string(),
                t.data_type.to_string() + if t.writable { " rw" } else { "" },
                driver.to_string(),
                t.address.to_string(),
                t.units.as_deref().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    print_table(["PATH", "TYPE", "DRIVER", "ADDRESS", "UNITS"], &rows);
}

fn print_alarms(config: &Config) {
    // NodeIds with the namespace URI: the index is the server's to give.
    let uri = config.opcua.as_ref().map(|o| o.namespace_uri.as_str());
    let node = |s: &str| match uri {
        Some(uri) => format!("nsu={uri};s={s}"),
        None => "- (no OPC UA server)".to_string(),
    };
    let rows: Vec<[String; 6]> = config
        .conditions
        .iter()
        .map(|c| {
            let ack = match (c.ack, c.confirm) {
                (a, true) => format!("{} + confirm", a.name()),
                (a, false) => a.name().to_string(),
            };
            [
                c.key.to_string(),
                c.class.type_name().to_string(),
                c.severity.to_string(),
                ack,
                node(&uaedge::opcua_server::condition_path(c)),
                node(&format!("{}/{}", c.device, c.tag)),
            ]
        })
        .collect();
    let header = [
        "ALARM",
        "OPC UA TYPE",
        "SEVERITY",
        "ACK",
        "CONDITION",
        "SOURCE",
    ];
    print_table(header, &rows);
}

/// Columns padded to their widest cell.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn run(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    let log_level = uaedge::logging::init(&config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("uaedge")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        info!(
            version = env!("CARGO_PKG_VERSION"),
            config = %path.display(),
            devices = config.devices.len(),
            tags = config.tag_defs.len(),
            "uaedge starting"
        );
        serve(&path, config, &log_level).await
    });
    // A blocking job still running (the OPC UA certificate being generated on a first
    // start) must not hold the exit past systemd's patience; it has nothing to save.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "stopped with an error");
            ExitCode::from(1)
        }
    }
}

/// Runs until SIGTERM/SIGINT, keeping systemd informed: READY once every device task and
/// server is started, WATCHDOG while the router answers, STOPPING on the way out. SIGHUP
/// (`systemctl reload`) re-reads the config: a file with errors is refused, every error
/// logged, and the running config stays; a changed good file is applied in place (see
/// [`uaedge::runtime::Runtime::reload`]: untouched devices keep their links), after its
/// `log.level` took effect.
async fn serve(
    path: &Path,
    config: Config,
    log_level: &uaedge::logging::LogLevel,
) -> Result<(), uaedge::runtime::RuntimeError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed before READY: SIGHUP's default action would end the process.
    let mut hup = signal(SignalKind::hangup()).ok();
    // A digest, not the text: a 100,000-tag config is megabytes held only to compare.
    let mut loaded = config.sha256.clone();
    let mut runtime = uaedge::runtime::Runtime::start(config);
    // The web console's admins ask for reloads here, as SIGHUP does.
    let mut requests = runtime.handle().status().serve_reloads();
    release_freed_memory();
    let (current, watched) = tokio::sync::watch::channel(runtime.handle());
    uaedge::systemd::ready(&status_line(&runtime));
    let watchdog = uaedge::systemd::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                // The handle of whichever runtime runs now: a reload swaps it.
                let handle = watched.borrow().clone();
                if handle.probe(every).await {
                    uaedge::systemd::watchdog();
                } else {
                    error!("router did not answer the watchdog probe; withholding WATCHDOG=1");
                }
            }
        })
    });
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut trim = tokio::time::interval_at(tokio::time::Instant::now() + TRIM_EVERY, TRIM_EVERY);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Who asked for a reload: SIGHUP (no one to answer) or the web console.
        let asker = tokio::select! {
            _ = &mut stop => break,
            _ = trim.tick() => {
                release_freed_memory();
                continue;
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                info!(by = "SIGHUP", "reload requested");
                None
            }
            Some(request) = requests.recv() => {
                info!(by = %request.user, "reload requested from the web console");
                Some(request.done)
            }
        };
        let record = reload_now(path, &mut loaded, &mut runtime, log_level).await;
        // The handle follows reloads by itself; this keeps the watchdog's copy fresh all
        // the same.
        current.send_replace(runtime.handle());
        if let Some(done) = asker {
            // The asker may have gone (its connection closed by this very reload).
            let _ = done.send(record);
        }
    }
    uaedge::systemd::stopping();
    if let Some(task) = watchdog {
        task.abort();
    }
    runtime.shutdown().await
}

/// Re-reads the config at `path` and applies it when it changed (`loaded`: the digest of
/// the one running), recording the outcome where `/api/v1/status` finds it.
async fn reload_now(
    path: &Path,
    loaded: &mut String,
    runtime: &mut uaedge::runtime::Runtime,
    log_level: &uaedge::logging::LogLevel,
) -> ReloadRecord {
    uaedge::systemd::reloading();
    let outcome = match reload(path, loaded) {
        Reload::Unchanged => {
            info!(config = %path.display(), "reload: config unchanged");
            (ReloadOutcome::Unchanged, Vec::new())
        }
        Reload::Refused(errors) => {
            for e in &errors.0 {
                error!(error = %e, "reload refused; the running config stays");
            }
            (
                ReloadOutcome::Refused,
                errors.0.iter().map(reload_error).collect(),
            )
        }
        Reload::Changed(config) => {
            info!(config = %path.display(), "reload: applying the new config");
            log_level.set(&config.log.level);
            loaded.clone_from(&config.sha256);
            let summary = runtime.reload(*config).await;
            release_freed_memory();
            info!(
                kept = summary.kept.len(),
                started = ?summary.started,
                stopped = ?summary.stopped,
                rebirth = summary.tag_set_changed,
                restarted = ?summary.restarted,
                "config reloaded"
            );
            (ReloadOutcome::Applied, Vec::new())
        }
    };
    let record = ReloadRecord {
        time: std::time::SystemTime::now(),
        outcome: outcome.0,
        errors: outcome.1,
    };
    runtime
        .handle()
        .status()
        .update_gateway(|g| g.last_reload = Some(record.clone()));
    uaedge::systemd::ready(&status_line(runtime));
    record
}

enum Reload {
    Unchanged,
    Refused(uaedge::config::ConfigErrors),
    Changed(Box<Config>),
}

fn reload(path: &Path, loaded: &str) -> Reload {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Reload::Refused(uaedge::config::ConfigErrors(vec![
                uaedge::config::ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    col: 0,
                    path: String::new(),
                    message: format!("cannot read config file: {e}"),
                },
            ]))
        }
    };
    if uaedge::config::sha256_hex(text.as_bytes()) == loaded {
        return Reload::Unchanged;
    }
    match Config::parse(&path.display().to_string(), &text) {
        Ok(config) => Reload::Changed(Box::new(config)),
        Err(errors) => Reload::Refused(errors),
    }
}

fn reload_error(e: &uaedge::config::ConfigError) -> ReloadError {
    ReloadError {
        file: e.file.clone(),
        line: e.line,
        column: e.col,
        key: e.path.clone(),
        message: e.message.clone(),
    }
}

fn status_line(runtime: &uaedge::runtime::Runtime) -> String {
    let table = runtime.handle().table().clone();
    format!(
        "running: {} devices, {} tags",
        table.devices().len(),
        table.tags().len()
    )
}

/// How often freed heap goes back besides after start-up and reload: devices connect after
/// the runtime started, and a link that comes back sets itself up again (a 100,000-tag OPC UA
/// client's subscriptions take some 20 MB while they are made), which glibc would otherwise
/// keep. Trimming walks the free blocks once, a millisecond or so.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Hands the heap freed once a config is parsed and the runtime built back to the kernel.
/// The YAML parse with positions for every node takes several times the memory of the model
/// it yields, and glibc keeps freed heap for reuse, so without this a gateway would carry
/// the parse's high-water mark for as long as it runs (100,000 tags: 327 MB → 197 MB).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps glibc to one malloc arena unless `MALLOC_ARENA_MAX` says otherwise. glibc gives
/// each thread that allocates under contention an arena of its own (up to 8 per core), and
/// memory freed into one arena is not reused by another: the model built on one thread and
/// the batches passing through the workers left a 100,000-tag gateway at 174 MB of RSS for
/// 113 MB with one arena (80 MB once the simulators were compact, against 120 MB with the
/// default). The price is some CPU: small blocks come from each thread's cache without the
/// arena's lock, but `loadgen --scenario modbus-10k` took 6.5–7.4 % of a core against
/// 5.9–6.0 % with the default (README, Performance). Must run before any other thread starts.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a glibc tunable; no thread has allocated yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Raises the soft limit of open files to the hard one, as servers do: outside systemd
/// (whose unit sets 65,536) the soft limit is often 1,024, which the web server's
/// connection cap alone could reach, leaving the OPC UA server and the store none.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received, stopping"),
                _ = int.recv() => info!("SIGINT received, stopping"),
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C via tokio's portable handler is all there is.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn discover_opcua(endpoint: &str, root: Option<&str>, depth: u32) -> ExitCode {
    // Errors only: stdout is the YAML and the session's routine warnings would be noise.
    let _ = uaedge::logging::init("error");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let options = uaedge_opcua_client::Options::for_endpoint(endpoint);
    match runtime.block_on(uaedge_opcua_client::discover(&options, root, depth)) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("discover {endpoint}: {e}");
            ExitCode::from(1)
        }
    }
}
