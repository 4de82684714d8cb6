//! Certificates for test servers, generated with rcgen: a CA, a server certificate and
//! client certificates signed by it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::Error;

/// The names the generated server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// PEM files generated for a test server ([`crate::Builder::generated_tls`]).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (clients use it as `sslrootcert`; the server trusts it for
    /// client certificates).
    pub ca_cert: PathBuf,
    /// The server certificate, valid for [`SERVER_NAMES`].
    pub server_cert: PathBuf,
    /// The server's private key (mode 0600).
    pub server_key: PathBuf,
    clients: Vec<(String, PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// Generates a CA, a server certificate and one client certificate per name in
    /// `clients` (common name = the user name) into `dir` (created).
    pub fn generate(dir: &Path, clients: &[&str]) -> Result<TlsFiles, Error> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::new(format!("creating {}: {e}", dir.display())))?;
        let ca_cert = dir.join("ca.crt");
        let issuer = write_ca(&ca_cert, "pglite test CA")?;

        let server_cert = dir.join("server.crt");
        let server_key = dir.join("server.key");
        let mut params = leaf_params(&SERVER_NAMES, "localhost")?;
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        write_leaf(&params, &issuer, &server_cert, &server_key)?;

        let mut client_files = Vec::new();
        for name in clients {
            let cert = dir.join(format!("client-{name}.crt"));
            let key = dir.join(format!("client-{name}.key"));
            let mut params = leaf_params(&[], name)?;
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
            write_leaf(&params, &issuer, &cert, &key)?;
            client_files.push((name.to_string(), cert, key));
        }
        Ok(TlsFiles {
            dir: dir.to_path_buf(),
            ca_cert,
            server_cert,
            server_key,
            clients: client_files,
        })
    }

    /// The client certificate and key generated for `user`, if any.
    pub fn client(&self, user: &str) -> Option<(&Path, &Path)> {
        self.clients
            .iter()
            .find(|(name, _, _)| name == user)
            .map(|(_, cert, key)| (cert.as_path(), key.as_path()))
    }
}

/// Writes a new self-signed CA certificate (PEM) to `path` with `common_name`; returns
/// the issuer that signs with it. Also useful as an unrelated CA in negative tests.
pub fn write_ca(path: &Path, common_name: &str) -> Result<Issuer<'static, KeyPair>, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.self_signed(&key).map_err(rcgen_error)?;
    write_file(path, &cert.pem(), 0o644)?;
    Ok(Issuer::new(params, key))
}

fn leaf_params(names: &[&str], common_name: &str) -> Result<CertificateParams, Error> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).map_err(rcgen_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn write_leaf(
    params: &CertificateParams,
    issuer: &Issuer<'static, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), Error> {
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.signed_by(&key, issuer).map_err(rcgen_error)?;
    write_file(cert_path, &cert.pem(), 0o644)?;
    // PostgreSQL and libpq refuse keys that others can read.
    write_file(key_path, &key.serialize_pem(), 0o600)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    fs::write(path, contents)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::new(format!("writing {}: {e}", path.display())))
}

fn rcgen_error(e: rcgen::Error) -> Error {
    Error::new(format!("generating a test certificate: {e}"))
}
