//! Container networking for kapsel, in netavark's spirit: stateless set-up and tear-down
//! calls that take everything they need as arguments, so the engine (kapseld) owns all
//! state and can replay it after a restart.
//!
//! - [`netns`]: persistent network namespaces (a bind mount per container).
//! - [`link`]: bridges, veth pairs, addresses and routes over rtnetlink.
//! - [`ipam`]: subnets that do not collide with the host's routes, addresses in a subnet.
//! - [`firewall`]: the instance's nftables table (NAT, published ports, isolation,
//!   connection logging), rendered whole from the engine's state and applied atomically.
//! - [`dns`]: the embedded resolver serving container names on user-defined networks.

pub mod connlog;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod netns;

pub use error::NetworkError;
