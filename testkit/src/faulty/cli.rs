//! The `wisp-faulty-server` command line: a flag per [`FaultConfig`] field. The binary is
//! [`main`]; a test can call it too (a test executable that runs itself as the server).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;

use super::{CRASH_EXIT_CODE, FaultConfig, FaultyServer, Handshake, PacketMatch, ServerState};

/// A Wisp server (v1 and v2) that misbehaves on request, for testing conformance suites.
///
/// Without fault flags it is a correct server. PACKET (for --crash-on and --freeze-on) is
/// `any`, or comma-separated key=value items: type=DATA (or a number such as 0x04),
/// stream=1, port=8080 (a CONNECT to that port), prefix=HEX (the payload's first bytes after
/// the 5-byte header), text=STRING (the same as UTF-8), len=N (the whole message's length).
/// Examples: --crash-on type=CLOSE,prefix=05 or --crash-on type=CLOSE,len=5
#[derive(Debug, Parser)]
#[command(name = "wisp-faulty-server", version)]
struct Args {
    /// TCP port to listen on (0: a free port; the URL is printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Handshake for clients that offer Sec-WebSocket-Protocol: v1, draft6 (INFO, client
    /// INFO, CONTINUE) or continue-first (CONTINUE, INFO; drafts 1-3).
    #[arg(long, default_value_t = Handshake::Draft6)]
    handshake: Handshake,
    /// Require the password extension with these credentials (USER:PASSWORD).
    #[arg(long, value_name = "USER:PASSWORD", value_parser = parse_credentials)]
    password: Option<(String, String)>,
    /// Advertise the MOTD extension with this text.
    #[arg(long)]
    motd: Option<String>,
    /// Packets buffered per TCP stream (the credit of CONTINUE(0)).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    buffer_size: u32,

    /// Exit at once (status 101, no Wisp or WebSocket close) when a received packet matches.
    #[arg(long, value_name = "PACKET")]
    crash_on: Option<PacketMatch>,
    /// Stop answering anything, and stop completing upgrades (TCP is still accepted), when a
    /// received packet matches.
    #[arg(long, value_name = "PACKET")]
    freeze_on: Option<PacketMatch>,
    /// Connect to TCP destinations with a blocking call on the event loop (a slow destination
    /// freezes every client).
    #[arg(long)]
    connect_blocking: bool,
    /// Append this many zero bytes to every CLOSE payload sent.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pad_close: usize,
    /// Append this many zero bytes to every CONTINUE payload sent.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pad_continue: usize,
    /// Echo the client's Sec-WebSocket-Protocol (wisp-v2) but speak v1.
    #[arg(long)]
    subprotocol_lie: bool,
    /// Send UDP datagrams read together as one DATA packet.
    #[arg(long)]
    merge_udp: bool,
    /// CONTINUE(0) then INFO, and reject a wrong or missing password with CLOSE(0, 0xC0) only
    /// after the client INFO (needs --password).
    #[arg(long)]
    late_auth_reject: bool,
    /// Grant the full buffer every buffer/2 packets regardless of DATA in flight, and drop DATA
    /// beyond the real buffer.
    #[arg(long)]
    ignore_in_flight_credit: bool,
    /// Read target data into buffers of this many bytes before sending a DATA.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    coalesce_data: Option<u64>,
}

/// `USER:PASSWORD`.
fn parse_credentials(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(user, password)| (user.to_owned(), password.to_owned()))
        .ok_or_else(|| "expected USER:PASSWORD".to_owned())
}

impl Args {
    fn config(&self) -> Result<FaultConfig, String> {
        let coalesce_data = match self.coalesce_data {
            Some(size) => Some(
                usize::try_from(size)
                    .map_err(|_| format!("--coalesce-data {size} is too large"))?,
            ),
            None => None,
        };
        Ok(FaultConfig {
            handshake: self.handshake,
            password: self.password.clone(),
            motd: self.motd.clone(),
            buffer_size: self.buffer_size,
            crash_on: self.crash_on.clone(),
            freeze_on: self.freeze_on.clone(),
            connect_blocking: self.connect_blocking,
            pad_close: self.pad_close,
            pad_continue: self.pad_continue,
            subprotocol_lie: self.subprotocol_lie,
            merge_udp: self.merge_udp,
            late_auth_reject: self.late_auth_reject,
            ignore_in_flight_credit: self.ignore_in_flight_credit,
            coalesce_data,
        })
    }
}

/// The `wisp-faulty-server` program: parses `args` (the program name first), starts the
/// server, prints its URL on stdout, and runs until it crashes (exit status
/// [`CRASH_EXIT_CODE`]) or ends. A test can run it from its own executable.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wisp-faulty-server: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::new(args.host, args.port);
    let server = match FaultyServer::start_on(addr, config, true) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("wisp-faulty-server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    // A closed stdout must not stop the server.
    let _ = writeln!(stdout, "{}", server.url());
    let _ = stdout.flush();
    match server.wait() {
        ServerState::Crashed { by } => {
            eprintln!("wisp-faulty-server: crashed ({by}); exiting with status {CRASH_EXIT_CODE}");
            std::process::exit(CRASH_EXIT_CODE);
        }
        state => {
            eprintln!("wisp-faulty-server: ended ({state:?})");
            ExitCode::FAILURE
        }
    }
}
