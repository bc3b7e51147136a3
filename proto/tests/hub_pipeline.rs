//! The hub's pure pieces wired the way the hub state machine will wire
//! them: agent bytes → frames → direction, revocation and announce-policy
//! checks → registry → deltas framed to a subscriber → its snapshot → a
//! balancer over the endpoints.

use warren_proto::balance::{Balancer, Ejection, Strategy};
use warren_proto::control::{
    encode, Announce, AnnouncePolicy, Endpoint, ExportRule, FrameDecoder, Message,
    RegistrySnapshot, Rejection, Sender, ServiceAllowance, ServicePort, DEFAULT_MAX_FRAME_LEN,
};
use warren_proto::identity::SpiffeId;
use warren_proto::policy::{PrincipalPattern, ServiceName};
use warren_proto::registry::{AgentKey, Registry};
use warren_proto::revocation::RevocationList;
use warren_proto::time::Instant;

struct Hub {
    policy: AnnouncePolicy,
    revoked: RevocationList,
    registry: Registry,
    // Frames for the one subscriber.
    to_subscriber: Vec<u8>,
}

impl Hub {
    /// Handles an agent's bytes, delivered in small chunks; returns what
    /// the hub answers that agent directly.
    fn receive_from(&mut self, agent: &AgentKey, bytes: &[u8]) -> Vec<Message> {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut replies = Vec::new();
        for mut chunk in bytes.chunks(3) {
            while !chunk.is_empty() {
                let Some(message) = decoder.decode(&mut chunk).expect("valid frames") else {
                    continue;
                };
                assert!(message.may_be_sent_by(Sender::Agent));
                let announce = match message {
                    Message::Announce(a) => a,
                    Message::Withdraw => Announce::default(),
                    other => panic!("unexpected {other:?}"),
                };
                let verdict = match self.revoked.check(&agent.identity, None) {
                    Err(_) => Err(Rejection::Revoked),
                    Ok(()) => self.policy.check(&agent.identity, &announce),
                };
                match verdict.and_then(|()| self.registry.announce(agent, &announce)) {
                    Ok(Some(delta)) => self.publish(Message::RegistryDelta(delta)),
                    Ok(None) => {}
                    Err(r) => replies.push(Message::Rejected(r)),
                }
            }
        }
        replies
    }

    fn revoke(&mut self, id: &SpiffeId) {
        self.revoked.revoke_identity(id.clone(), "test").unwrap();
        if let Some(delta) = self.registry.remove_identity(id) {
            self.publish(Message::RegistryDelta(delta));
        }
    }

    fn publish(&mut self, m: Message) {
        encode(&m, DEFAULT_MAX_FRAME_LEN, &mut self.to_subscriber).unwrap();
    }
}

fn id(sa: &str, ns: &str) -> SpiffeId {
    SpiffeId::new("example.org", ns, sa).unwrap()
}

fn announce_frame(services: &[ServicePort]) -> Vec<u8> {
    let mut out = Vec::new();
    let m = Message::Announce(Announce {
        services: services.to_vec(),
        reachable_hbone: None,
        relay_plaintext: Vec::new(),
    });
    encode(&m, DEFAULT_MAX_FRAME_LEN, &mut out).unwrap();
    out
}

/// The subscriber: starts from the hub's snapshot, applies deltas.
fn follow(snapshot: &mut RegistrySnapshot, frames: &[u8]) {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut input = frames;
    while let Some(m) = decoder.decode(&mut input).unwrap() {
        let Message::RegistryDelta(d) = m else {
            panic!("{m:?}")
        };
        snapshot.apply(&d).unwrap();
    }
    assert!(input.is_empty());
}

#[test]
fn announcements_flow_to_subscribers_and_balancers() {
    let mut hub = Hub {
        policy: AnnouncePolicy::new(vec![ExportRule {
            principals: vec![PrincipalPattern::new("example.org/ns/shop/sa/*").unwrap()],
            services: vec![ServiceAllowance::OwnNamespace],
        }]),
        revoked: RevocationList::default(),
        registry: Registry::default(),
        to_subscriber: Vec::new(),
    };
    let mut mirror = hub.registry.snapshot();
    let cart = ServicePort {
        service: ServiceName::parse("cart.shop").unwrap(),
        port: 80,
    };
    let a = AgentKey {
        identity: id("cart-a", "shop"),
        instance: 1,
    };
    let b = AgentKey {
        identity: id("cart-b", "shop"),
        instance: 2,
    };
    let rogue = AgentKey {
        identity: id("cart", "default"),
        instance: 3,
    };
    assert!(hub
        .receive_from(&a, &announce_frame(std::slice::from_ref(&cart)))
        .is_empty());
    assert!(hub
        .receive_from(&b, &announce_frame(std::slice::from_ref(&cart)))
        .is_empty());
    // Same name, wrong identity: refused, nothing filed.
    assert_eq!(
        hub.receive_from(&rogue, &announce_frame(std::slice::from_ref(&cart))),
        [Message::Rejected(Rejection::NotAllowed(cart.clone()))]
    );
    follow(&mut mirror, &core::mem::take(&mut hub.to_subscriber));
    assert_eq!(mirror, hub.registry.snapshot());
    assert_eq!(mirror.epoch, 2);

    let endpoints = |snap: &RegistrySnapshot| -> Vec<Endpoint> {
        snap.entries
            .iter()
            .filter(|e| e.service == cart)
            .map(|e| e.endpoint.clone())
            .collect()
    };
    let mut balancer = Balancer::new(Strategy::RoundRobin, Ejection::default(), 7);
    balancer.set_endpoints(endpoints(&mirror));
    let client = id("web", "shop");
    let now = Instant::from_nanos(1);
    let picks: Vec<String> = (0..4)
        .map(|_| {
            balancer
                .choose(now, &client, &[])
                .unwrap()
                .identity
                .to_string()
        })
        .collect();
    assert_eq!(
        picks,
        [
            a.identity.to_string(),
            b.identity.to_string(),
            a.identity.to_string(),
            b.identity.to_string()
        ]
    );

    // Revoking cart-a removes it everywhere and refuses its re-announce.
    hub.revoke(&a.identity);
    assert_eq!(
        hub.receive_from(&a, &announce_frame(std::slice::from_ref(&cart))),
        [Message::Rejected(Rejection::Revoked)]
    );
    follow(&mut mirror, &core::mem::take(&mut hub.to_subscriber));
    assert_eq!(mirror, hub.registry.snapshot());
    balancer.set_endpoints(endpoints(&mirror));
    for _ in 0..4 {
        assert_eq!(
            balancer.choose(now, &client, &[]).unwrap().identity,
            b.identity
        );
    }
}
