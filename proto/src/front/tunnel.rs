//! The plain outbound tunnel: a local listener mapped to one target
//! (usually a mesh service `name.namespace:port`). The client speaks the
//! application protocol directly, so there is nothing to parse and nothing
//! to reply: every byte belongs to the tunnel.

use super::{Outcome, Phase, Progress, Step, Target, UsageError};
use core::convert::Infallible;

/// One connection accepted on a tunnel listener.
#[derive(Clone, Debug)]
pub struct Tunnel {
    target: Target,
    phase: Phase,
}

impl Tunnel {
    /// A connection on a listener mapped to `target`.
    pub fn new(target: Target) -> Tunnel {
        Tunnel {
            target,
            phase: Phase::Reading,
        }
    }

    /// The listener's target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Ready on the first call, whatever `input` holds (normally nothing:
    /// call it right after accept). All of `input` is returned as leftover.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a, Infallible>, UsageError> {
        self.phase.check_feed()?;
        self.phase = Phase::Ready;
        Ok(Step {
            send: Vec::new(),
            progress: Progress::Ready {
                target: self.target.clone(),
                leftover: input,
            },
        })
    }

    /// Nothing to answer: a plain tunnel has no request to wait for (it is
    /// ready at the first feed) and no protocol to answer in.
    pub fn expire(&mut self) -> Result<Vec<u8>, UsageError> {
        self.phase.check_feed()?;
        self.phase = Phase::Rejected;
        Ok(Vec::new())
    }

    /// Always empty: a plain tunnel has no protocol in which to report the
    /// outcome. A refused flow is simply closed.
    pub fn reply(&mut self, _outcome: &Outcome) -> Result<Vec<u8>, UsageError> {
        self.phase.check_reply()?;
        self.phase = Phase::Replied;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::Refusal;

    #[test]
    fn ready_at_once_with_input_as_leftover() {
        let target = Target::parse("web.shop:8080").unwrap();
        let mut t = Tunnel::new(target.clone());
        assert_eq!(
            t.reply(&Outcome::Refused(Refusal::Timeout)),
            Err(UsageError::NoRequest)
        );
        let step = t.feed(b"").unwrap();
        assert!(step.send.is_empty());
        assert_eq!(
            step.progress,
            Progress::Ready {
                target,
                leftover: b""
            }
        );
        assert_eq!(t.feed(b"x").unwrap_err(), UsageError::RequestAlreadyParsed);
        assert_eq!(t.reply(&Outcome::Connected { bound: None }), Ok(Vec::new()));
        assert_eq!(
            t.reply(&Outcome::Connected { bound: None }),
            Err(UsageError::AlreadyReplied)
        );
    }

    #[test]
    fn bytes_on_the_first_feed_are_returned_untouched() {
        let mut t = Tunnel::new(Target::parse("db.data:5432").unwrap());
        let data = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
        match t.feed(data).unwrap().progress {
            Progress::Ready { leftover, .. } => assert_eq!(leftover, data),
            other => panic!("{other:?}"),
        }
    }
}
