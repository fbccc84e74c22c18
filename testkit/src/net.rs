//! Socket helpers shared by the in-process servers and the targets.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

/// Largest UDP payload over IPv4.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// Resolves `host`, binds the unspecified address of the same family and
/// connects a UDP socket to the first address.
pub(crate) async fn connected_udp(host: &str, port: u16) -> io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}
