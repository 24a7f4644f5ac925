//! HTTP integration tests: each test starts the real server on 127.0.0.1:0
//! with a fresh SQLite database and talks HTTP to it.

mod bodies;
mod discovery;
mod helpers;
mod login;
mod oauth;
mod refresh;
mod resource;
mod revocation;
