//! The example's configuration, from command-line flags: one identity, an
//! optional HBONE listener with one export, an optional tunnel.
//!
//! ```text
//! --id NS/SA                          who this node is (demo certificates)
//! --hbone ADDR                        accept mesh connections here
//! --export SVC.NS:PORT=ADDR           serve SVC.NS:PORT from ADDR
//! --tunnel LISTEN=SVC.NS:PORT@HBONE/NS/SA
//!                                     a local port tunnelled to SVC.NS:PORT,
//!                                     served by the node at HBONE with
//!                                     identity NS/SA
//! ```

use std::error::Error;
use std::net::SocketAddr;

use warren_proto::front::Target as FrontTarget;
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Endpoint, FrontConfig, FrontKind, NodeConfig};
use warren_proto::policy::{Export, Exports, ServiceName, Target};

use crate::demo_certs::{demo_identity, TRUST_DOMAIN};

/// A node configuration built from flags.
pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<NodeConfig, Box<dyn Error>> {
    let mut args = args.into_iter();
    let mut id = None;
    let (mut hbone, mut exports, mut fronts, mut directory) = (None, vec![], vec![], vec![]);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--id" => id = Some(spiffe(&value)?),
            "--hbone" => hbone = Some(value.parse::<SocketAddr>()?),
            "--export" => {
                let (service, target) = value.split_once('=').ok_or("--export SVC:PORT=ADDR")?;
                let (service, port) = service.rsplit_once(':').ok_or("--export SVC:PORT=ADDR")?;
                exports.push(Export {
                    service: ServiceName::parse(service)?,
                    port: port.parse()?,
                    target: Target::Addr(target.parse()?),
                });
            }
            "--tunnel" => {
                let usage = "--tunnel LISTEN=SVC:PORT@HBONE/NS/SA";
                let (listen, rest) = value.split_once('=').ok_or(usage)?;
                let (to, peer) = rest.split_once('@').ok_or(usage)?;
                let (peer_hbone, peer_id) = peer.split_once('/').ok_or(usage)?;
                let (service, _port) = to.rsplit_once(':').ok_or(usage)?;
                fronts.push(FrontConfig {
                    listen: listen.parse()?,
                    kind: FrontKind::Tunnel {
                        to: FrontTarget::parse(to)?,
                    },
                });
                let endpoint = Endpoint {
                    hbone: peer_hbone.parse()?,
                    identity: spiffe(peer_id)?,
                };
                directory.push((ServiceName::parse(service)?, vec![endpoint]));
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let id = id.ok_or("--id NS/SA is required")?;
    let mut config = NodeConfig::new(demo_identity(&id)?);
    config.hbone_listen = hbone;
    config.exports = Exports::new(exports)?;
    config.fronts = fronts;
    config.directory = directory.into_iter().collect();
    Ok(config)
}

/// `NS/SA` → `spiffe://demo.warren/ns/NS/sa/SA`.
fn spiffe(ns_sa: &str) -> Result<SpiffeId, Box<dyn Error>> {
    let (ns, sa) = ns_sa.split_once('/').ok_or("identity is NS/SA")?;
    Ok(SpiffeId::new(TRUST_DOMAIN, ns, sa)?)
}
