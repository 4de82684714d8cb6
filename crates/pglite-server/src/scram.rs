//! Server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it, without
//! channel binding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The mechanism name announced in AuthenticationSASL.
pub(crate) const MECHANISM: &str = "SCRAM-SHA-256";
const ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block (what SCRAM's Hi() is).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &block);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// The stored verifier for one password.
#[derive(Clone)]
pub(crate) struct Verifier {
    salt: [u8; 16],
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

impl Verifier {
    /// Derive the verifier for `password` with a random salt.
    pub fn new(password: &str) -> Verifier {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("operating system random numbers");
        let salted = hi(password.as_bytes(), &salt, ITERATIONS);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

/// One authentication exchange.
pub(crate) struct Exchange<'a> {
    verifier: &'a Verifier,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
}

/// Why authentication failed (the client only learns "password authentication failed").
#[derive(Debug)]
pub(crate) struct ScramError(#[allow(dead_code)] pub String);

impl<'a> Exchange<'a> {
    /// Handle the client-first message; returns the exchange and the server-first
    /// message to send.
    pub fn start(
        verifier: &'a Verifier,
        client_first: &[u8],
    ) -> Result<(Self, String), ScramError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError("client-first-message is not UTF-8".into()))?;
        let (gs2_header, bare) = match text.as_bytes().first() {
            Some(b'n') | Some(b'y') => {
                let mut parts = text.splitn(3, ',');
                let cb = parts.next().unwrap_or_default();
                let authzid = parts
                    .next()
                    .ok_or_else(|| ScramError("malformed gs2 header".into()))?;
                let bare = parts
                    .next()
                    .ok_or_else(|| ScramError("malformed client-first-message".into()))?;
                (format!("{cb},{authzid},"), bare)
            }
            Some(b'p') => {
                return Err(ScramError(
                    "channel binding is not supported (the server does not use TLS)".into(),
                ));
            }
            _ => return Err(ScramError("malformed client-first-message".into())),
        };
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or_else(|| ScramError("client nonce missing".into()))?;
        let mut raw = [0u8; 18];
        getrandom::fill(&mut raw).expect("operating system random numbers");
        let nonce = format!("{client_nonce}{}", B64.encode(raw));
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(verifier.salt));
        Ok((
            Exchange {
                verifier,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                gs2_header,
                nonce,
            },
            server_first,
        ))
    }

    /// Check the client-final message; returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError("client-final-message is not UTF-8".into()))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| ScramError("client proof missing".into()))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        if channel != Some(B64.encode(self.gs2_header.as_bytes()).as_str()) {
            return Err(ScramError("channel binding data does not match".into()));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError("nonce does not match".into()));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError("client proof is not base64".into()))?;
        if proof.len() != 32 {
            return Err(ScramError("client proof has the wrong length".into()));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if stored != self.verifier.stored_key {
            return Err(ScramError("wrong password".into()));
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    #[test]
    fn authenticates_the_postgres_protocol_client() {
        for (password, attempt, ok) in [("secret", "secret", true), ("secret", "wrong", false)] {
            let verifier = Verifier::new(password);
            let mut client = ScramSha256::new(attempt.as_bytes(), ChannelBinding::unsupported());
            let (exchange, server_first) = Exchange::start(&verifier, client.message()).unwrap();
            client.update(server_first.as_bytes()).unwrap();
            match exchange.finish(client.message()) {
                Ok(server_final) => {
                    assert!(ok);
                    client.finish(server_final.as_bytes()).unwrap();
                }
                Err(_) => assert!(!ok),
            }
        }
    }
}
