//! TURN over TCP (RFC 5766 §2.1): the client talks to the TURN server over a TCP connection
//! (`turn:host:port?transport=tcp`); relayed traffic to peers stays UDP. `turn` 0.17 only reads
//! datagrams from a `webrtc_util::Conn`, so [`TcpTurnConn`] is a `Conn` over a `TcpListener`
//! that cuts each connection's byte stream into the messages TURN sends over TCP, and hands
//! them to the server one per `recv_from` with the connection's address as the source:
//!
//! - a STUN message: first two bits `00`, 20-byte header whose bytes 2..4 are the length of the
//!   attributes (RFC 5389 §6): 20 + length bytes;
//! - a ChannelData message: first two bits `01` (channel 0x4000..=0x7FFF), 4-byte header whose
//!   bytes 2..4 are the data length, padded to a multiple of 4 over TCP (RFC 5766 §11.5).
//!
//! `send_to` writes to the connection of that address, padding ChannelData the same way.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Messages queued per connection towards the client; a client that does not read is cut off
/// from further data (as a UDP client would lose it).
const OUT_QUEUE: usize = 256;
/// Messages from all connections waiting for the TURN server.
const IN_QUEUE: usize = 1024;

/// Length of the message at the start of `buf`, if its header is complete; `Err` if the bytes
/// are neither STUN nor ChannelData.
pub(crate) fn frame_len(buf: &[u8]) -> io::Result<Option<usize>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match buf[0] >> 6 {
        0b00 => Ok(Some(20 + len)),
        0b01 => Ok(Some((4 + len).next_multiple_of(4))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not STUN or ChannelData: first byte {:#04x}", buf[0]),
        )),
    }
}

/// ChannelData written over TCP is padded to a multiple of 4 bytes.
fn pad(buf: &[u8]) -> Vec<u8> {
    let mut out = buf.to_vec();
    if buf.first().is_some_and(|b| b >> 6 == 0b01) {
        out.resize(buf.len().next_multiple_of(4), 0);
    }
    out
}

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// A `webrtc_util::Conn` that is really a TCP listener and its connections.
pub(crate) struct TcpTurnConn {
    local: SocketAddr,
    inbox: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Writers,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for TcpTurnConn {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TcpTurnConn {
    /// Starts accepting on `listener`.
    pub(crate) fn new(listener: TcpListener) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(IN_QUEUE);
        let writers: Writers = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, tx, writers.clone()));
        Ok(TcpTurnConn {
            local,
            inbox: tokio::sync::Mutex::new(rx),
            writers,
            accept,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    inbox: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "TURN/TCP accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut r, mut w) = stream.into_split();
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        writers
            .lock()
            .expect("TURN/TCP writers lock")
            .insert(peer, out_tx);
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if w.write_all(&msg).await.is_err() {
                    break;
                }
            }
        });
        let (inbox, writers) = (inbox.clone(), writers.clone());
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            'conn: loop {
                let n = match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    let len = match frame_len(&buf) {
                        Ok(Some(len)) => len,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TURN/TCP: closing");
                            break 'conn;
                        }
                    };
                    if buf.len() < len {
                        break;
                    }
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    if inbox.send((msg, peer)).await.is_err() {
                        break 'conn;
                    }
                }
            }
            writers.lock().expect("TURN/TCP writers lock").remove(&peer);
            writer.abort();
        });
    }
}

#[async_trait::async_trait]
impl webrtc_util::Conn for TcpTurnConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TURN/TCP listener cannot connect",
        )
        .into())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut inbox = self.inbox.lock().await;
        loop {
            let Some((msg, peer)) = inbox.recv().await else {
                return Err(webrtc_util::Error::ErrClosedListener);
            };
            // Like a datagram larger than the server's buffer: dropped.
            if msg.len() <= buf.len() {
                buf[..msg.len()].copy_from_slice(&msg);
                return Ok((msg.len(), peer));
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "TURN/TCP send needs an address").into())
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let tx = self
            .writers
            .lock()
            .expect("TURN/TCP writers lock")
            .get(&target)
            .cloned();
        let Some(tx) = tx else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no TURN/TCP connection from {target}"),
            )
            .into());
        };
        // A full queue loses the message, as UDP would.
        let _ = tx.try_send(pad(buf));
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.accept.abort();
        self.writers.lock().expect("TURN/TCP writers lock").clear();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_len_table() {
        let cases: [(&[u8], Option<usize>); 6] = [
            (&[0x00, 0x01], None),
            // STUN binding request with 8 bytes of attributes.
            (&[0x00, 0x01, 0x00, 0x08], Some(28)),
            // ChannelData 0x4000 with 5 bytes: padded to 12.
            (&[0x40, 0x00, 0x00, 0x05], Some(12)),
            (&[0x40, 0x00, 0x00, 0x04], Some(8)),
            (&[0x7f, 0xff, 0x00, 0x00], Some(4)),
            (&[0x00, 0x03, 0x00, 0x00], Some(20)),
        ];
        for (buf, want) in cases {
            assert_eq!(frame_len(buf).unwrap(), want, "{buf:02x?}");
        }
        assert!(frame_len(&[0x80, 0, 0, 0]).is_err());
        // Top bits 11: neither (RFC 7983 §7 demultiplexing ranges).
        assert!(frame_len(&[0xc0, 0, 0, 0]).is_err());
    }

    #[test]
    fn channel_data_is_padded_stun_is_not() {
        assert_eq!(pad(&[0x40, 0, 0, 1, 9]), [0x40, 0, 0, 1, 9, 0, 0, 0]);
        assert_eq!(pad(&[0x00, 1, 0, 0]).len(), 4);
    }
}
