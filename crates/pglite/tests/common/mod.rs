//! Helpers shared by the integration tests. Every test runs the real engine.
#![allow(dead_code)]

use pglite::{DbError, Error, FromSql, Pglite};
use sha2::{Digest, Sha256};

/// A fresh temporary database.
pub fn temp() -> Pglite {
    Pglite::temporary().expect("open a temporary database")
}

/// The single value of a one-row, one-column query without parameters.
pub fn scalar<T>(db: &mut Pglite, sql: &str) -> T
where
    T: for<'a> FromSql<'a>,
{
    let row = db
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get(0)
}

/// The first value of a `SHOW` (or any single-value statement) run with the simple
/// protocol, as text.
pub fn show(db: &mut Pglite, sql: &str) -> String {
    let results = db.exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let result = results.last().expect("a result");
    result.rows[0][0].clone().expect("a non-NULL value")
}

/// The server's error report, panicking with the error when it is not one.
pub fn db_error(e: &Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected a server error, got {e:?}"))
}

/// The SQLSTATE of a server error, as its five-character code.
pub fn sqlstate(e: &Error) -> &str {
    db_error(e).code().code()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `len` reproducible pseudo-random bytes (xorshift64*), every byte value included.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Count rows of `table`.
pub fn count(db: &mut Pglite, table: &str) -> i64 {
    scalar(db, &format!("SELECT count(*) FROM {table}"))
}
