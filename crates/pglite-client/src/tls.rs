//! TLS for both drivers (feature `tls`): the rustls client configuration a [`Config`]
//! asks for (libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`), the certificate
//! checks of each mode, `tls-server-end-point` channel-binding data, and clear errors
//! for failed handshakes.
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `allow`, `prefer` | optional | chain checked when a root certificate is available (as libpq) |
//! | `require` | required | chain checked when a root certificate is available (as libpq), else not checked |
//! | `verify-ca` | required | chain must lead to `sslrootcert` |
//! | `verify-full` | required | chain, and the certificate must name the host |

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::auth::TlsBinding;
use crate::connstr::{Config, SslMode};
use crate::error::{Error, ErrorKind};

/// Everything needed to open TLS connections for one [`Config`]: built once per
/// `connect`, shared by every host, by reconnects and by cancel requests.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    /// What the verifier checks, for error messages.
    checks: Checks,
    /// Where the root certificates came from, for error messages.
    roots_from: Option<String>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("checks", &self.checks)
            .field("roots_from", &self.roots_from)
            .finish_non_exhaustive()
    }
}

/// A TLS connection's peer, as a cancel request needs it: the same configuration
/// and server name.
#[derive(Clone, Debug)]
pub(crate) struct TlsTarget {
    pub(crate) connector: TlsConnector,
    pub(crate) name: ServerName<'static>,
    pub(crate) host: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// No certificate check (`require`/`prefer`/`allow` without a root certificate).
    Nothing,
    /// The chain must lead to a root certificate.
    Chain,
    /// The chain, and the certificate must be valid for the host name.
    ChainAndName,
}

impl TlsConnector {
    /// The connector for `config`, or `None` when its `sslmode` is `disable`.
    /// Fails (`ErrorKind::Config`) for unreadable or missing certificate files, a
    /// `verify-*` mode without a root certificate, and `sslrootcert=system` with a
    /// mode weaker than `verify-full` (as libpq 16).
    pub(crate) fn from_config(config: &Config) -> Result<Option<TlsConnector>, Error> {
        let mode = config.get_ssl_mode();
        if mode == SslMode::Disable {
            return Ok(None);
        }
        let (roots, roots_from) = load_roots(config, mode)?;
        let checks = match (mode, &roots) {
            (SslMode::VerifyFull, _) => Checks::ChainAndName,
            (_, Some(_)) => Checks::Chain,
            (_, None) => Checks::Nothing,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Verifier {
            roots: roots.map(Arc::new),
            check_name: checks == Checks::ChainAndName,
            provider: provider.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::with_source(ErrorKind::Tls, "TLS set-up", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut client_config = match load_client_cert(config)? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::with_source(
                    ErrorKind::Config,
                    "the client certificate and key cannot be used together",
                    e,
                )
            })?,
            None => builder.with_no_client_auth(),
        };
        // PostgreSQL 17 checks the ALPN protocol when the client sends one.
        client_config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Some(TlsConnector {
            config: Arc::new(client_config),
            checks,
            roots_from,
        }))
    }

    /// The rustls configuration.
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The TLS name of `host` (an IP address or a DNS name).
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, Error> {
        ServerName::try_from(host.to_owned()).map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!("\"{host}\" is not a valid host name for TLS"),
                e,
            )
        })
    }

    /// The target for `host` (for cancel requests and reconnects).
    pub(crate) fn target(&self, host: &str) -> Result<TlsTarget, Error> {
        Ok(TlsTarget {
            connector: self.clone(),
            name: self.server_name(host)?,
            host: host.to_owned(),
        })
    }

    /// Turns a failed handshake into a clear error: certificate problems name the
    /// host, the certificate's names and the root certificates used.
    pub(crate) fn handshake_error(&self, e: io::Error, host: &str) -> Error {
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Error::with_source(
                ErrorKind::Io,
                format!("TLS handshake with \"{host}\" failed"),
                e,
            );
        };
        let roots = self
            .roots_from
            .as_deref()
            .map(|r| format!(" (root certificates: {r})"))
            .unwrap_or_default();
        let message = match tls {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => format!(
                "the server certificate is not valid for host \"{host}\" (sslmode=verify-full \
                 checks the host name): it is valid for {}",
                if presented.is_empty() {
                    "no names".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "the server certificate is not valid for host \"{host}\" (sslmode=verify-full \
                 checks the host name)"
            ),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server certificate of \"{host}\" is not signed by a trusted certificate \
                 authority{roots}"
            ),
            rustls::Error::InvalidCertificate(other) => {
                format!("the server certificate of \"{host}\" did not verify{roots}: {other}")
            }
            other => format!("TLS handshake with \"{host}\" failed: {other}"),
        };
        Error::with_source(ErrorKind::Tls, message, e)
    }
}

/// The `tls-server-end-point` channel-binding data of a connection whose server
/// presented `certificates`.
pub(crate) fn binding(certificates: Option<&[CertificateDer<'_>]>) -> TlsBinding {
    TlsBinding {
        server_end_point: certificates
            .and_then(|c| c.first())
            .and_then(|c| server_end_point(c)),
    }
}

/// The hash of the certificate (RFC 5929 `tls-server-end-point`): with the hash of
/// its signature algorithm, SHA-256 for MD5 and SHA-1. `None` for algorithms without
/// a single hash (Ed25519, RSA-PSS), as PostgreSQL.
pub(crate) fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    let oid = signature_algorithm_oid(cert)?;
    // The OIDs' DER contents: PKCS#1 1.2.840.113549.1.1.x, ECDSA 1.2.840.10045.4.x.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let hash = match oid {
        [rest @ .., last] if rest == RSA => match last {
            0x04 | 0x05 | 0x0b => 256, // md5, sha1, sha256 with RSA
            0x0c => 384,
            0x0d => 512,
            0x0e => 224,
            _ => return None,
        },
        [rest @ .., 0x01] if rest == ECDSA => 256, // ecdsa-with-SHA1
        [rest @ .., 0x03, last] if rest == ECDSA => match last {
            0x01 => 224,
            0x02 => 256,
            0x03 => 384,
            0x04 => 512,
            _ => return None,
        },
        _ => return None,
    };
    Some(match hash {
        224 => sha2::Sha224::digest(cert).to_vec(),
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The content of `Certificate.signatureAlgorithm.algorithm` (an OID) in a DER
/// certificate: `SEQUENCE { tbsCertificate, SEQUENCE { OID, params }, signature }`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = der_element(certificate)?;
    let (tag, algorithm, _) = der_element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element at the start of `input`: (tag, contents, the rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `~/.postgresql/<file>`, libpq's default location of the TLS files.
fn default_file(file: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql").join(file))
}

/// The root certificates: `sslrootcert` (a PEM file, or `system`), else
/// `~/.postgresql/root.crt` when it exists.
fn load_roots(
    config: &Config,
    mode: SslMode,
) -> Result<(Option<RootCertStore>, Option<String>), Error> {
    let config_err = |m: String| Error::new(ErrorKind::Config, m);
    let explicit = config.get_ssl_root_cert();
    if explicit == Some(Path::new("system")) {
        if mode != SslMode::VerifyFull {
            return Err(config_err(format!(
                "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \
                 \"verify-full\")"
            )));
        }
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(config_err(format!(
                "sslrootcert=system: no trusted certificates found in the system's store{}",
                found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )));
        }
        return Ok((Some(store), Some("the system's trust store".to_owned())));
    }
    let path = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => default_file("root.crt").filter(|p| p.is_file()),
    };
    let Some(path) = path else {
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            let default = default_file("root.crt")
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.postgresql/root.crt".to_owned());
            return Err(config_err(format!(
                "sslmode={mode} needs a root certificate to verify the server, but \
                 sslrootcert is not set and \"{default}\" does not exist: set sslrootcert to \
                 the CA certificate file, use the system's trusted roots with \
                 sslrootcert=system, or choose a weaker sslmode"
            )));
        }
        return Ok((None, None));
    };
    let mut store = RootCertStore::empty();
    let certs = read_certs(&path, "root certificate")?;
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(config_err(format!(
            "root certificate file \"{}\" holds no usable certificate",
            path.display()
        )));
    }
    Ok((Some(store), Some(format!("\"{}\"", path.display()))))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!("could not read {what} file \"{}\"", path.display()),
                e,
            )
        })?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "{what} file \"{}\" holds no PEM certificate",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The client certificate chain and key: `sslcert`/`sslkey`, else
/// `~/.postgresql/postgresql.crt`/`.key` when the certificate exists.
#[allow(clippy::type_complexity)]
fn load_client_cert(
    config: &Config,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Error> {
    let cert_path = match config.get_ssl_cert() {
        Some(p) => p.to_path_buf(),
        None => match default_file("postgresql.crt").filter(|p| p.is_file()) {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let key_path = match config.get_ssl_key() {
        Some(p) => p.to_path_buf(),
        None => default_file("postgresql.key").unwrap_or_else(|| PathBuf::from("postgresql.key")),
    };
    let chain = read_certs(&cert_path, "client certificate")?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!(
                "certificate \"{}\" is present, but its private key \"{}\" could not be read",
                cert_path.display(),
                key_path.display()
            ),
            e,
        )
    })?;
    Ok(Some((chain, key)))
}

/// Checks the server's certificate as the `sslmode` asks; handshake signatures are
/// always verified.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_element_lengths() {
        assert_eq!(
            der_element(&[0x30, 0x02, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let (_, content, rest) = der_element(&long).unwrap();
        assert_eq!((content.len(), rest.len()), (0x80, 0));
        assert_eq!(der_element(&[0x30, 0x05, 1]), None);
        assert_eq!(der_element(&[0x30, 0x80]), None);
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        // An ECDSA P-256/SHA-256 certificate generated by the test kit.
        let files = pglite_testkit::TlsFiles::generate(dir.path(), &[]).unwrap();
        let der = CertificateDer::from_pem_file(&files.server_cert).unwrap();
        let hash = server_end_point(&der).unwrap();
        use sha2::Digest;
        assert_eq!(hash, sha2::Sha256::digest(&der).to_vec());
        assert_eq!(server_end_point(b"not a certificate"), None);
    }

    #[test]
    fn mode_rules() {
        let dir = tempfile::tempdir().unwrap();
        let files = pglite_testkit::TlsFiles::generate(dir.path(), &[]).unwrap();
        let ca = files.ca_cert.display().to_string();
        let build = |s: &str| TlsConnector::from_config(&s.parse::<Config>().unwrap());
        assert!(build("sslmode=disable").unwrap().is_none());
        let c = build(&format!("sslrootcert={ca}")).unwrap().unwrap();
        assert_eq!(c.checks, Checks::ChainAndName);
        let c = build(&format!("sslmode=require sslrootcert={ca}"))
            .unwrap()
            .unwrap();
        assert_eq!(c.checks, Checks::Chain);
        let e = build("sslmode=verify-ca sslrootcert=system").unwrap_err();
        assert!(e.to_string().contains("weak sslmode"), "{e}");
        let e = build("sslmode=verify-ca sslrootcert=/nonexistent/ca.crt").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
        let e = build(&format!("sslrootcert={ca} sslcert=/nonexistent/c.crt")).unwrap_err();
        assert!(e.to_string().contains("client certificate"), "{e}");
    }
}
