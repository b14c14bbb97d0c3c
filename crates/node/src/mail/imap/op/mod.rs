//! One file per command family, as Stalwart's `op/` keeps them: each adds
//! its commands to `Session` and answers with a `Done`.

mod append;
mod auth;
mod copy;
mod expunge;
mod fetch;
mod idle;
mod mailbox;
mod search;
mod store;
