//! Integration tests against a real PostgreSQL server (see `tests/support`).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod binary_copy;
mod cache;
mod copy;
mod errors;
mod json;
mod notify;
mod pipeline;
mod query;
mod retry;
mod split;
mod stream;
mod transactions;
mod types;
