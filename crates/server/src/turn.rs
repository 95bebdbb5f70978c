//! The embedded TURN server (`openkvs serve`, unless `--no-turn`): webrtc-rs `turn` 0.17 on UDP,
//! accepting the REST credentials GetIceServerConfig mints (`api::ice`).
//!
//! The crate's own `LongTermAuthHandler` parses the whole username as a number, so coturn-style
//! `<expiry>:<user>` names need [`RestAuth`] below. TURN over TCP listens on the same port number
//! through the [`tcp`] adapter; TURN over TLS is not provided: use an external coturn with the
//! same `--turn-secret` for that (README).

mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use turn::auth::{AuthHandler, generate_auth_key};
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};

/// The realm the server announces (clients take it from the 401 response).
pub(crate) const REALM: &str = "openkvs";

/// Long-term credential check for TURN REST usernames: refuses malformed or expired names,
/// and derives the key from `base64(HMAC-SHA1(secret, username))`, so a tampered username or
/// password fails the MESSAGE-INTEGRITY check.
pub(crate) struct RestAuth {
    secret: Vec<u8>,
}

impl RestAuth {
    pub(crate) fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    /// The long-term key (`MD5(username:realm:password)`) for `username` at `now_unix`.
    pub(crate) fn key(
        &self,
        username: &str,
        realm: &str,
        now_unix: i64,
    ) -> Result<Vec<u8>, api::ice::CredentialError> {
        api::ice::check_username(username, now_unix)?;
        let password = api::ice::turn_password(&self.secret, username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.key(username, realm, now).map_err(|e| {
            tracing::debug!(%src_addr, error = %e, "TURN credentials refused");
            turn::Error::ErrNoSuchUser
        })
    }
}

/// The embedded TURN server and where it listens.
pub(crate) struct Turn {
    /// Kept alive for as long as the server runs.
    pub(crate) server: Server,
    /// UDP address (the actual port for port 0).
    pub(crate) addr: SocketAddr,
    /// TURN over TCP listens on the same address and port.
    pub(crate) tcp: bool,
}

/// Starts the TURN server on `listen` (UDP, and TCP on the same port unless that port is taken
/// for TCP, which only logs a warning); relayed addresses are announced as `relay_ip`.
pub(crate) async fn start(
    listen: SocketAddr,
    relay_ip: IpAddr,
    secret: Vec<u8>,
) -> anyhow::Result<Turn> {
    let conn = Arc::new(
        tokio::net::UdpSocket::bind(listen)
            .await
            .with_context(|| format!("binding the TURN listener {listen}/udp"))?,
    );
    let local = conn.local_addr()?;
    let bind_ip = if listen.ip().is_unspecified() {
        listen.ip()
    } else {
        relay_ip
    };
    let generator = || -> Box<dyn turn::relay::RelayAddressGenerator + Send + Sync> {
        Box::new(RelayAddressGeneratorStatic {
            relay_address: relay_ip,
            address: bind_ip.to_string(),
            net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
        })
    };
    let mut conn_configs = vec![ConnConfig {
        conn,
        relay_addr_generator: generator(),
    }];
    let tcp = match tokio::net::TcpListener::bind(local).await {
        Ok(l) => {
            conn_configs.push(ConnConfig {
                conn: Arc::new(tcp::TcpTurnConn::new(l)?),
                relay_addr_generator: generator(),
            });
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "TURN over TCP not started: {local}/tcp is taken");
            false
        }
    };
    let server = Server::new(ServerConfig {
        conn_configs,
        realm: REALM.to_owned(),
        auth_handler: Arc::new(RestAuth::new(secret)),
        channel_bind_timeout: Duration::from_secs(600),
        alloc_close_notify: None,
    })
    .await
    .context("starting the TURN server")?;
    Ok(Turn {
        server,
        addr: local,
        tcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_auth_table() {
        let arn = "arn:aws:kinesisvideo:us-east-1:123456789012:channel/demo/1";
        let auth = RestAuth::new(b"s3cret".to_vec());
        let now = 1_700_000_000;
        let c = api::ice::mint(b"s3cret", arn, 300, now);
        let want = generate_auth_key(&c.username, REALM, &c.password);
        assert_eq!(auth.key(&c.username, REALM, now).unwrap(), want);
        // Expired.
        assert!(auth.key(&c.username, REALM, now + 300).is_err());
        // Tampered expiry: a key is derived, but not the one the client's password gives.
        let forged = c.username.replacen("1700000300", "1800000000", 1);
        assert_ne!(
            auth.key(&forged, REALM, now).unwrap(),
            generate_auth_key(&forged, REALM, &c.password)
        );
        // Another server's secret.
        let other = RestAuth::new(b"other".to_vec());
        assert_ne!(other.key(&c.username, REALM, now).unwrap(), want);
        // Not a REST username.
        assert!(auth.key("alice", REALM, now).is_err());
    }
}
