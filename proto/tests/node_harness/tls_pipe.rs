//! One end of a TLS connection over a world app pipe, for the hand-written
//! peers ([`super::raw_peer`], hub_guard's raw agent): the test drives
//! warren-proto's TLS itself, so it takes the app's new bytes and writes
//! records back by hand.

use warren_proto::tls::{PlaintextRead, TlsSession};

use super::World;

/// A [`TlsSession`] on world app `app`, remembering how much of what the
/// app received it has already read.
pub struct TlsPipe {
    /// The world app this end reads from and writes to.
    pub app: usize,
    tls: TlsSession,
    taken: usize,
}

impl TlsPipe {
    /// `tls` on app `app`, nothing read yet.
    pub fn new(app: usize, tls: TlsSession) -> TlsPipe {
        TlsPipe { app, tls, taken: 0 }
    }

    /// Decrypts what the app received since the last call, handing each
    /// piece of plaintext to `plain` in order. Returns whether any bytes
    /// had arrived. A TLS error fails the test: these peers speak
    /// well-formed TLS to a node, so one means the node is wrong.
    pub fn receive(&mut self, world: &World, mut plain: impl FnMut(&[u8])) -> bool {
        let received = &world.net.apps[self.app].received;
        if received.len() <= self.taken {
            return false;
        }
        let mut input = received[self.taken..].to_vec();
        self.taken = received.len();
        while !input.is_empty() {
            let n = match self.tls.read_tls(&input) {
                Ok(n) => n,
                Err(e) => panic!("app {}: TLS: {e:?}", self.app),
            };
            input.drain(..n);
            let mut buf = vec![0; 64 << 10];
            while let PlaintextRead::Data(k) = self.tls.read_plaintext(&mut buf) {
                plain(&buf[..k]);
            }
            if n == 0 {
                break;
            }
        }
        true
    }

    /// Encrypts `plain` into the app, record by record as the session
    /// takes it, then writes any record still pending (a handshake
    /// message, an alert). Returns whether anything was sent.
    pub fn send(&mut self, world: &mut World, plain: &[u8]) -> bool {
        let mut at = 0;
        while at < plain.len() {
            at += self.tls.write_plaintext(&plain[at..]).unwrap();
            let mut out = Vec::new();
            self.tls.write_tls(&mut out);
            world.app_write(self.app, &out);
        }
        let mut out = Vec::new();
        let flushed = self.tls.write_tls(&mut out) > 0;
        if flushed {
            world.app_write(self.app, &out);
        }
        flushed || !plain.is_empty()
    }
}
