//! `openkvs serve --tls-self-signed`: a development CA and a server certificate signed by it,
//! written to `<data dir>/tls/` on first start and reused afterwards.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Where the files live.
#[derive(Debug, Clone)]
pub(crate) struct DevTls {
    /// The CA certificate clients must trust.
    pub ca: PathBuf,
    /// Server certificate chain (server certificate, then the CA).
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// Whether they were created by this call.
    pub created: bool,
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Loads or creates the CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and
/// `extra_names` (the public IP / host names).
pub(crate) fn load_or_create(data_dir: &Path, extra_names: &[String]) -> anyhow::Result<DevTls> {
    let dir = data_dir.join("tls");
    let t = DevTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        created: false,
    };
    if t.ca.exists() && t.cert.exists() && t.key.exists() {
        return Ok(t);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "openkvs development CA");
    dn.push(DnType::OrganizationName, "openkvs");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("signing the CA")?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(names.clone()).context("server certificate names")?;
    // rcgen makes DNS names of every entry; IP literals must be IP SANs for TLS clients.
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(n.clone().try_into().expect("valid DNS name")),
        })
        .collect();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "openkvs");
    params.distinguished_name = dn;
    let key = KeyPair::generate().context("generating the server key")?;
    let cert = params
        .signed_by(&key, &ca)
        .context("signing the server certificate")?;

    write_private(&t.key, &key.serialize_pem())?;
    std::fs::write(&t.cert, format!("{}{}", cert.pem(), ca.pem()))
        .with_context(|| format!("writing {}", t.cert.display()))?;
    std::fs::write(&t.ca, ca.pem()).with_context(|| format!("writing {}", t.ca.display()))?;
    Ok(DevTls { created: true, ..t })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &["10.0.0.5".into()]).unwrap();
        assert!(a.created);
        let ca = std::fs::read_to_string(&a.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let chain = std::fs::read_to_string(&a.cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        let b = load_or_create(dir.path(), &[]).unwrap();
        assert!(!b.created);
        assert_eq!(std::fs::read_to_string(&b.ca).unwrap(), ca);
    }
}
