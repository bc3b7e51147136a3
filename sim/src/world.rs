//! Virtual time: a world of hosts on one [`Net`], driven event by event.
//!
//! Time never ticks. Each step takes the earliest of the network's next
//! happening and the hosts' timers, moves the clock there, and lets the one
//! concerned act; events for hosts are then handed over in the order they
//! happened (and whatever the hosts do in response at the same instant is
//! handed over before the clock moves again). Ties between the network and
//! a timer go to the network, then to the lowest host id: a fixed rule, so
//! a seed always replays the same run.
//!
//! # Hosting a mesh node
//!
//! A node is an [`Application`] whose adapter owns the `Node`, its
//! `HostId`, and two id maps (node `SockId` ↔ [`SocketId`], node
//! `ListenerId` ↔ net [`ListenerId`]), and implements `drive::Host` by
//! forwarding, with `net.now()` as the node's clock:
//!
//! | `drive::Host`                | [`Net`]                                        |
//! |------------------------------|------------------------------------------------|
//! | `listen(listener, addr)`     | [`Net::listen_on`]`(host, addr)`               |
//! | `connect(sock, addr)`        | [`Net::connect`]`(host, addr)`                 |
//! | `write(sock, data) -> usize` | [`Net::write`] (`Err` only for a gone socket: 0) |
//! | `pause_read` / `resume_read` | [`Net::pause_read`] / [`Net::resume_read`]     |
//! | `shutdown_write(sock)`       | [`Net::shutdown_write`]                        |
//! | `close(sock, reset)`         | [`Net::abort`] if `reset`, else [`Net::close`] |
//!
//! and [`NetEvent`]s become node inputs one for one: `Accepted` →
//! `drive::accept` (which maps the `SockId` before the drain), `Connected`,
//! `Received`, `Writable`, `ReadClosed`, `Reset` → `drive::step` with the
//! matching `Input`; [`Application::poll_timeout`] returns the deadline
//! `drive` handed back, and [`Application::on_timeout`] feeds
//! `Input::Timeout`. After `Connected(Err)` and `Reset` the net socket is
//! gone; drop it from the maps. [`Application::claims`] answers from the
//! same maps, so a node and test applications can share a host (talking
//! over loopback, as an agent and its workloads do). A node's clock is
//! [`Net::host_now`]; its deadlines go back through [`Net::to_net_time`].
//!
//! [`SocketId`]: crate::net::SocketId
//! [`ListenerId`]: crate::net::ListenerId

use std::collections::{BTreeMap, BTreeSet};

use warren_proto::time::Instant;

use crate::net::{HostId, Net, NetEvent};

/// What runs on a simulated host: a test application today, a mesh node
/// behind a `drive::Host` adapter later.
pub trait Application {
    /// Called once when the application is placed on its host.
    fn start(&mut self, net: &mut Net, host: HostId);

    /// Whether `event` concerns this application (names one of its sockets
    /// or listeners). A host's events are offered to its applications in
    /// placement order; the first that claims one gets it. The default
    /// claims everything, which suits a host running one application.
    fn claims(&self, _event: &NetEvent) -> bool {
        true
    }

    /// Something happened to one of this application's sockets or
    /// listeners.
    fn on_event(&mut self, net: &mut Net, host: HostId, event: NetEvent);

    /// When the application next wants [`Application::on_timeout`], in
    /// network time (a skewed host converts with [`Net::to_net_time`]).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The time from [`Application::poll_timeout`] has come.
    fn on_timeout(&mut self, _net: &mut Net, _host: HostId) {}
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Nothing is scheduled and no host waits for a timer.
    Idle,
    /// The next happening lies after the deadline; the clock stands at it.
    Deadline,
    /// The step budget ran out (a livelock, or a budget too small).
    StepLimit,
}

/// Hosts running applications of type `A` over one network (several per
/// host if they say which events are theirs, see [`Application::claims`]).
///
/// Finding the next timer must not cost a scan of every application (a
/// 1000-node mesh has tens of thousands): each application's deadline is
/// read once after every call into it and kept in an ordered index, so a
/// step costs O(log n) whatever the size of the world.
pub struct World<A> {
    net: Net,
    apps: BTreeMap<HostId, Vec<A>>,
    /// Every armed timer, earliest first; ties by host, then placement.
    timers: BTreeSet<(Instant, HostId, usize)>,
    /// The deadline each (host, application index) has in `timers`.
    armed: BTreeMap<(HostId, usize), Instant>,
    /// Applications lent out by [`World::app_mut`], whose deadline may have
    /// changed without the world seeing it; read directly until the next
    /// step re-indexes them.
    lent: BTreeSet<(HostId, usize)>,
}

impl<A: Application> World<A> {
    /// A world around a network (hosts are added to the network first).
    pub fn new(net: Net) -> World<A> {
        World {
            net,
            apps: BTreeMap::new(),
            timers: BTreeSet::new(),
            armed: BTreeMap::new(),
            lent: BTreeSet::new(),
        }
    }

    /// Re-reads the deadline of application `i` on `host` into the index.
    fn rearm(&mut self, host: HostId, i: usize) {
        if let Some(old) = self.armed.remove(&(host, i)) {
            self.timers.remove(&(old, host, i));
        }
        let deadline = self
            .apps
            .get(&host)
            .and_then(|apps| apps.get(i))
            .and_then(A::poll_timeout);
        if let Some(at) = deadline {
            self.armed.insert((host, i), at);
            self.timers.insert((at, host, i));
        }
    }

    /// Re-indexes the applications lent out since the last step.
    fn rearm_lent(&mut self) {
        for (host, i) in std::mem::take(&mut self.lent) {
            self.rearm(host, i);
        }
    }

    /// Places an application on a host, after any already there, and
    /// starts it.
    pub fn place(&mut self, host: HostId, mut app: A) {
        app.start(&mut self.net, host);
        let apps = self.apps.entry(host).or_default();
        apps.push(app);
        let i = apps.len() - 1;
        self.rearm(host, i);
        self.dispatch();
    }

    /// Takes every application off a host (with [`Net::crash_host`], the
    /// first half of a crash and restart).
    pub fn remove_apps(&mut self, host: HostId) -> Vec<A> {
        let apps = self.apps.remove(&host).unwrap_or_default();
        for i in 0..apps.len() {
            if let Some(at) = self.armed.remove(&(host, i)) {
                self.timers.remove(&(at, host, i));
            }
            self.lent.remove(&(host, i));
        }
        apps
    }

    /// The network.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The network, for injecting faults or acting on a host's behalf.
    /// Call [`World::dispatch`] afterwards if the action may raise events.
    pub fn net_mut(&mut self) -> &mut Net {
        &mut self.net
    }

    /// The first application placed on a host.
    pub fn app(&self, host: HostId) -> Option<&A> {
        self.apps.get(&host)?.first()
    }

    /// The first application placed on a host, mutably.
    pub fn app_mut(&mut self, host: HostId) -> Option<&mut A> {
        let app = self.apps.get_mut(&host)?.first_mut()?;
        self.lent.insert((host, 0));
        Some(app)
    }

    /// Every application on a host, in placement order.
    pub fn apps(&self, host: HostId) -> &[A] {
        self.apps.get(&host).map_or(&[], Vec::as_slice)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// Hands every pending network event to its host's application, until
    /// none is left (responses at the same instant included).
    pub fn dispatch(&mut self) {
        while let Some((host, event)) = self.net.poll_event() {
            let Some(apps) = self.apps.get_mut(&host) else {
                continue;
            };
            if let Some((i, app)) = apps.iter_mut().enumerate().find(|(_, a)| a.claims(&event)) {
                app.on_event(&mut self.net, host, event);
                self.rearm(host, i);
            }
        }
    }

    /// The earliest timer: (when, host, index of the application there).
    fn next_timer(&self) -> Option<(Instant, HostId, usize)> {
        // A frozen host's timers wait for the thaw (frozen hosts are few,
        // so skipping theirs stays cheap).
        let indexed = self
            .timers
            .iter()
            .find(|(_, host, i)| !self.net.is_frozen(*host) && !self.lent.contains(&(*host, *i)))
            .copied();
        let lent = self
            .lent
            .iter()
            .filter(|(host, _)| !self.net.is_frozen(*host))
            .filter_map(|(host, i)| {
                let app = self.apps.get(host)?.get(*i)?;
                Some((app.poll_timeout()?, *host, *i))
            })
            .min();
        match (indexed, lent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the next thing will happen, `None` when the world is idle.
    pub fn next_time(&self) -> Option<Instant> {
        let net = self.net.next_event_time();
        let timer = self.next_timer().map(|(t, _, _)| t);
        match (net, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does the next thing; false if the world is idle.
    pub fn step(&mut self) -> bool {
        self.rearm_lent();
        self.dispatch();
        let net = self.net.next_event_time();
        let timer = self.next_timer();
        let timer_first = match (net, timer) {
            (None, None) => return false,
            (Some(n), Some((t, _, _))) => t < n,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        match timer {
            Some((at, host, i)) if timer_first => {
                self.net.advance_to(at);
                if let Some(app) = self.apps.get_mut(&host).and_then(|a| a.get_mut(i)) {
                    app.on_timeout(&mut self.net, host);
                }
                self.rearm(host, i);
            }
            _ => {
                self.net.step();
            }
        }
        self.dispatch();
        true
    }

    /// Runs until idle, or `max_steps` steps.
    pub fn run_until_idle(&mut self, max_steps: u64) -> RunEnd {
        for _ in 0..max_steps {
            if !self.step() {
                return RunEnd::Idle;
            }
        }
        if self.next_time().is_none() {
            RunEnd::Idle
        } else {
            RunEnd::StepLimit
        }
    }

    /// Runs everything due up to and including `deadline`, then moves the
    /// clock to `deadline`.
    pub fn run_until(&mut self, deadline: Instant, max_steps: u64) -> RunEnd {
        for _ in 0..max_steps {
            match self.next_time() {
                Some(t) if t <= deadline => {
                    self.step();
                }
                next => {
                    self.net.advance_to(deadline);
                    return if next.is_none() {
                        RunEnd::Idle
                    } else {
                        RunEnd::Deadline
                    };
                }
            }
        }
        RunEnd::StepLimit
    }
}
