//! The shape of epoxy-tls's `simple-wisp-client` (the load generator users of `wisp-mux`
//! know), written against this crate: several concurrent TCP streams to one target, each fed
//! zero-filled packets as fast as flow control allows, with the seed API's spellings
//! (`StreamType::Tcp`, `CloseReason::Voluntary`, the types at the crate root) and its
//! calls (`with_required_extensions`, `was_downgraded`, `into_split`, `into_async_rw`,
//! `close_with_reason`).
//!
//! ```text
//! cargo run -p wisp-client --example simple_wisp_client -- \
//!     --wisp ws://127.0.0.1:6001/ --tcp 127.0.0.1:7 [--streams 10] [--packet-size 1] \
//!     [--duration 5s] [--wisp-v2] [--udp] [--motd] [--auth user:pass]
//! ```
//!
//! `--packet-size` is in KiB, as in epoxy's. Unlike epoxy's, it also reads what the target
//! sends back (an echo keeps answering), and with `--wisp-v2` it offers
//! `Sec-WebSocket-Protocol`, without which a draft 5+ server speaks v1. Half the streams are
//! driven through `into_split` (a `Sink` of payloads), the other half through
//! `into_async_rw` (futures-io bytes). `tests/example.rs` runs it against the testkit's
//! server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use wisp_client::extensions::{
    MotdExtensionBuilder, PasswordExtensionBuilder, UdpExtensionBuilder,
};
use wisp_client::{ClientMux, CloseReason, MuxOptions, StreamType, WispError, WispV2Handshake};

/// What to run: the flags of epoxy's `simple-wisp-client`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--wisp`: the server URL.
    pub wisp: String,
    /// `--tcp`: the target every stream connects to, `host:port`.
    pub tcp: (String, u16),
    /// `--streams`: how many TCP streams (default 10).
    pub streams: usize,
    /// `--packet-size`: bytes per write (the flag is in KiB; default 1 KiB).
    pub packet_size: usize,
    /// `--duration`: how long to write (default 5 s).
    pub duration: Duration,
    /// `--wisp-v2`: ask for v2.
    pub v2: bool,
    /// `--udp`: offer UDP and require it.
    pub udp: bool,
    /// `--motd`: offer MOTD.
    pub motd: bool,
    /// `--auth user:pass`: offer the password extension and require it.
    pub auth: Option<(String, String)>,
    /// Print the totals every 100 ms (the command line does; the test does not).
    pub print_stats: bool,
}

impl Config {
    /// Parses the command line (without the program name).
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut config = Config {
            wisp: String::new(),
            tcp: (String::new(), 0),
            streams: 10,
            packet_size: 1024,
            duration: Duration::from_secs(5),
            v2: false,
            udp: false,
            motd: false,
            auth: None,
            print_stats: true,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "-w" | "--wisp" => config.wisp = value()?,
                "-t" | "--tcp" => {
                    let v = value()?;
                    let (host, port) = v.rsplit_once(':').ok_or("--tcp is host:port")?;
                    let port = port.parse().map_err(|e| format!("--tcp port: {e}"))?;
                    config.tcp = (host.trim_matches(['[', ']']).to_owned(), port);
                }
                "-s" | "--streams" => {
                    config.streams = value()?.parse().map_err(|e| format!("--streams: {e}"))?;
                }
                "-p" | "--packet-size" => {
                    let kib: usize = value()?
                        .parse()
                        .map_err(|e| format!("--packet-size: {e}"))?;
                    config.packet_size = kib * 1024;
                }
                "-d" | "--duration" => {
                    config.duration = wisp_client::proto::parse_duration(&value()?)
                        .map_err(|e| format!("--duration: {e}"))?;
                }
                "--wisp-v2" => config.v2 = true,
                "-u" | "--udp" => config.udp = true,
                "--motd" => config.motd = true,
                "--auth" => {
                    let v = value()?;
                    let (user, pass) = v.split_once(':').ok_or("--auth is user:pass")?;
                    config.auth = Some((user.to_owned(), pass.to_owned()));
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if config.wisp.is_empty() || config.tcp.1 == 0 {
            return Err("--wisp URL and --tcp host:port are required".into());
        }
        Ok(config)
    }

    /// The v2 handshake the flags ask for, and the extension ids they require.
    fn handshake(&self) -> (Option<WispV2Handshake>, Vec<u8>) {
        if !self.v2 {
            return (None, Vec::new());
        }
        let mut handshake = WispV2Handshake::empty();
        let mut required = Vec::new();
        if self.udp {
            handshake.add_extension(UdpExtensionBuilder);
            required.push(0x01);
        }
        if let Some((user, pass)) = &self.auth {
            handshake.add_extension(PasswordExtensionBuilder::new(user, pass));
            required.push(0x02);
        }
        if self.motd {
            handshake.add_extension(MotdExtensionBuilder);
        }
        (Some(handshake), required)
    }
}

/// What a run saw.
#[derive(Clone, Debug)]
pub struct Report {
    /// v2 was asked for and the server answered as v1.
    pub downgraded: bool,
    /// The agreed extension ids.
    pub extension_ids: Vec<u8>,
    /// The server's message of the day.
    pub motd: Option<String>,
    /// Payload bytes written.
    pub sent: u64,
    /// Payload bytes read back.
    pub received: u64,
    /// How long the writing lasted.
    pub elapsed: Duration,
}

/// Connects, writes zero-filled packets on every stream for `config.duration`, then closes
/// the connection with `CloseReason::Voluntary`.
pub async fn run(config: &Config) -> Result<Report, WispError> {
    let (handshake, required) = config.handshake();
    let (mux, driver) = ClientMux::connect(&config.wisp, handshake, MuxOptions::default())
        .await?
        .with_required_extensions(&required)
        .await?;
    let driver = tokio::spawn(driver);
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + config.duration;
    let payload = Bytes::from(vec![0u8; config.packet_size]);

    let mut writers = tokio::task::JoinSet::new();
    let mut readers = tokio::task::JoinSet::new();
    for n in 0..config.streams {
        let stream = mux
            .new_stream(StreamType::Tcp, config.tcp.0.as_str(), config.tcp.1)
            .await?;
        let (sent, received, payload) = (sent.clone(), received.clone(), payload.clone());
        if n % 2 == 0 {
            // A Sink of payloads: `feed` waits for credit and never flushes, as epoxy's does.
            let (mut read, mut write) = stream.into_split();
            writers.spawn(async move {
                while Instant::now() < deadline {
                    write.feed(payload.clone()).await?;
                    sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                write.flush().await?;
                Ok::<_, WispError>(())
            });
            readers.spawn(async move {
                while let Some(chunk) = read.next().await {
                    received.fetch_add(chunk?.len() as u64, Ordering::Relaxed);
                }
                Ok::<_, WispError>(())
            });
        } else {
            // futures-io bytes.
            let (mut read, mut write) = stream.into_async_rw().split();
            writers.spawn(async move {
                while Instant::now() < deadline {
                    write.write_all(&payload).await.map_err(io_error)?;
                    sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                write.flush().await.map_err(io_error)?;
                Ok::<_, WispError>(())
            });
            readers.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) => return Ok::<_, WispError>(()),
                        Ok(n) => received.fetch_add(n as u64, Ordering::Relaxed),
                        Err(e) => return Err(io_error(e)),
                    };
                }
            });
        }
    }

    let stats = config.print_stats.then(|| {
        let (sent, received) = (sent.clone(), received.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "{secs:6.1}s  sent {:>10} B  received {:>10} B  ({:.1} MiB/s out)",
                    sent.load(Ordering::Relaxed),
                    received.load(Ordering::Relaxed),
                    sent.load(Ordering::Relaxed) as f64 / secs / (1024.0 * 1024.0)
                );
            }
        })
    });
    while let Some(done) = writers.join_next().await {
        done.map_err(|e| WispError::MuxTaskFailed(Arc::new(e)))??;
    }
    let elapsed = started.elapsed();
    if let Some(stats) = stats {
        stats.abort();
    }
    mux.close_with_reason(CloseReason::Voluntary).await?;
    // Closing ends every stream: the readers see the end.
    while let Some(done) = readers.join_next().await {
        done.map_err(|e| WispError::MuxTaskFailed(Arc::new(e)))??;
    }
    driver
        .await
        .map_err(|e| WispError::MuxTaskFailed(Arc::new(e)))??;
    Ok(Report {
        downgraded: mux.was_downgraded(),
        extension_ids: mux.get_extension_ids(),
        motd: mux.motd().map(str::to_owned),
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        elapsed,
    })
}

/// A stream's `io::Error` back as the `WispError` it carries.
fn io_error(e: std::io::Error) -> WispError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<WispError>())
    {
        Some(wisp) => wisp.clone(),
        None => WispError::WsImplError(Arc::new(e)),
    }
}

fn main() {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("simple_wisp_client: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&config)) {
        Ok(report) => {
            println!(
                "downgraded: {}, extensions: {:?}, motd: {:?}",
                report.downgraded, report.extension_ids, report.motd
            );
            println!(
                "sent {} B, received {} B in {:.2?} ({:.1} MiB/s out)",
                report.sent,
                report.received,
                report.elapsed,
                report.sent as f64 / report.elapsed.as_secs_f64() / (1024.0 * 1024.0)
            );
        }
        Err(e) => {
            eprintln!("simple_wisp_client: {e}");
            std::process::exit(1);
        }
    }
}
