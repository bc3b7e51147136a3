//! placeholder
pub mod app;
pub mod net;
pub mod rng;
pub mod trace;
pub mod world;
