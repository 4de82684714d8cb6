//! Integration tests: the real engine behind the server, driven by real clients
//! (SQLx, tokio-postgres, psql) and by raw protocol bytes.

mod copy;
mod isolation;
mod notify;
mod raw;
mod robustness;
mod spin;
mod sqlx_pool;
mod support;
