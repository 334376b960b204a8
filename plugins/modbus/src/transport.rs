//! Opening a link: TCP, RTU over a TCP gateway, or RTU on a serial line.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{rtu, tcp, Context};
use tokio_modbus::Slave;
use uaedge_driver::LinkError;

use crate::options::{Endpoint, Parity, Serial, Transport};

/// Opens `transport` within `timeout`, addressing `unit` until told otherwise.
pub async fn open(
    transport: &Transport,
    unit: u8,
    timeout: Duration,
) -> Result<Context, LinkError> {
    let slave = Slave(unit);
    match transport {
        Transport::Tcp(endpoint) => {
            let stream = connect_tcp(endpoint, timeout).await?;
            Ok(tcp::attach_slave(stream, slave))
        }
        Transport::RtuOverTcp(endpoint) => {
            let stream = connect_tcp(endpoint, timeout).await?;
            Ok(rtu::attach_slave(stream, slave))
        }
        Transport::Rtu(serial) => {
            let port = open_serial(serial)?;
            Ok(rtu::attach_slave(port, slave))
        }
    }
}

async fn connect_tcp(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream, LinkError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = match endpoint {
            Endpoint::Addr(addr) => vec![*addr],
            Endpoint::Name { host, port } => tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| LinkError::not_connected(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        let mut last = LinkError::not_connected(format!("{endpoint} resolves to no address"));
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Requests are small and latency-bound; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = io_error(&e, &format!("connect to {addr}")),
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        LinkError::timeout(format!(
            "connect to {endpoint}: no answer within {timeout:?}"
        ))
    })?
}

fn open_serial(serial: &Serial) -> Result<tokio_serial::SerialStream, LinkError> {
    let builder = tokio_serial::new(&serial.path, serial.baud_rate)
        .data_bits(match serial.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .parity(match serial.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if serial.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        });
    tokio_serial::SerialStream::open(&builder)
        .map_err(|e| LinkError::not_connected(format!("open {}: {e}", serial.path)))
}

/// Classifies an I/O error. Most mean the peer or the line is gone; malformed data means the
/// link is up but the exchange broke. tokio-modbus reports a stream closed by the peer as
/// whatever `last_os_error` holds (often EAGAIN, or errno 0, "Success"), so only an explicit
/// TimedOut is a timeout, and those two read as what they mean.
pub fn io_error(e: &io::Error, what: &str) -> LinkError {
    if e.raw_os_error() == Some(0) {
        return LinkError::not_connected(format!("{what}: connection closed by the peer"));
    }
    match e.kind() {
        io::ErrorKind::TimedOut => LinkError::timeout(format!("{what}: {e}")),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            LinkError::protocol(format!("{what}: {e}"))
        }
        io::ErrorKind::WouldBlock => {
            LinkError::not_connected(format!("{what}: connection closed by the peer"))
        }
        _ => LinkError::not_connected(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_stream_reads_as_closed_whatever_errno_held() {
        for e in [
            io::Error::from_raw_os_error(0),
            io::Error::from(io::ErrorKind::WouldBlock),
        ] {
            let link = io_error(&e, "unit 1");
            assert_eq!(
                link.to_string(),
                "NotConnected: unit 1: connection closed by the peer"
            );
        }
        let timeout = io_error(&io::Error::from(io::ErrorKind::TimedOut), "unit 1");
        assert!(timeout.to_string().starts_with("Timeout"), "{timeout}");
    }
}
