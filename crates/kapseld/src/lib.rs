//! kapseld: the Docker Engine API (v1.47) served on unix sockets, so that the docker CLI,
//! docker-compose and docker-py drive kapsel unchanged.

// serde_json's json! macro needs more than the default for Docker's larger objects.
#![recursion_limit = "256"]

pub mod api;
pub mod containers;
pub mod daemon;
pub mod events;
pub mod metrics;
pub mod networks;
pub mod volumes;
