//! Which of the configured MQTT servers the node uses, and what it has seen of the primary
//! host on each (Sparkplug 3.0 lets an edge node hold several servers; Cirrus Link's MQTT
//! Transmission calls them a server set).
//!
//! The rules, kept here and nowhere else:
//! - A session that ends for any reason sends the next one to the next server in the list
//!   (after the backoff, unless the move was planned), wrapping round: the node stays on a
//!   server that works and never flaps back on its own; `return_to_first` (in the node)
//!   pins the first server for the next session.
//! - The primary host's STATE is kept per server, with its own timestamp rule: STATE is
//!   retained per server and the host publishes it on each, so one server's newer STATE
//!   says nothing about another's.
//! - A server where the host is not online (STATE offline, or none within the timeout)
//!   sends the node on to the next, until every server has been tried since the node was
//!   last born: then it stays where it is, connected and buffering, until the host comes
//!   back there, the server fails, or a Next Server command moves it. No busy loop.

/// The primary host's STATE as last seen on one server.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct HostSeen {
    pub online: bool,
    /// Timestamp of the newest STATE there: an older one is ignored.
    pub timestamp: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Servers {
    current: usize,
    hosts: Vec<HostSeen>,
    /// Servers in a row where the host was missing since the node was last born.
    without_host: usize,
    /// Where the next session goes instead of the next in line.
    pinned: Option<usize>,
    /// Where the node was last born.
    born_on: Option<usize>,
}

impl Servers {
    /// `count` servers (at least one), starting at the first; `host_online` is what a
    /// server without a primary host counts as.
    pub(super) fn new(count: usize, host_online: bool) -> Servers {
        Servers {
            current: 0,
            hosts: vec![
                HostSeen {
                    online: host_online,
                    timestamp: None,
                };
                count.max(1)
            ],
            without_host: 0,
            pinned: None,
            born_on: None,
        }
    }

    pub(super) fn count(&self) -> usize {
        self.hosts.len()
    }

    pub(super) fn current(&self) -> usize {
        self.current
    }

    /// The primary host on the current server.
    pub(super) fn host(&self) -> HostSeen {
        self.hosts[self.current]
    }

    /// Takes a STATE seen on the current server; `false` when it is older than the last
    /// one there (and so ignored).
    pub(super) fn take_state(&mut self, online: bool, timestamp: u64) -> bool {
        let seen = &mut self.hosts[self.current];
        if seen.timestamp.is_some_and(|last| timestamp < last) {
            return false;
        }
        *seen = HostSeen {
            online,
            timestamp: Some(timestamp),
        };
        true
    }

    /// Bit i set where the host is online on server i (as [`crate::bus::StatusSnapshot`]
    /// shows it).
    pub(super) fn hosts_mask(&self) -> u64 {
        (self.hosts.iter().enumerate())
            .filter(|(i, h)| *i < 64 && h.online)
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// The session on the current server is over: the next one goes to the next server, or
    /// the pinned one. Returns the server it moved from when it moved.
    pub(super) fn advance(&mut self) -> Option<usize> {
        let from = self.current;
        self.current = self.pinned.take().unwrap_or((from + 1) % self.hosts.len());
        (self.current != from).then_some(from)
    }

    /// The next session goes to the first server.
    pub(super) fn pin_first(&mut self) {
        self.pinned = Some(0);
    }

    /// The node is born: a new round of looking for the host begins at its next loss.
    /// Whether it was born on another server than the last time: a switch.
    pub(super) fn born(&mut self) -> bool {
        self.without_host = 0;
        let moved = self.born_on.is_some_and(|s| s != self.current);
        self.born_on = Some(self.current);
        moved
    }

    /// A session on the current server begins: what was seen of the host here before
    /// counts for nothing until its STATE arrives again. The timestamp rule starts afresh
    /// too (MQTT keeps one session's messages in order), so a host whose clock stepped
    /// back is not shut out for good.
    pub(super) fn forget_host(&mut self) {
        self.hosts[self.current] = HostSeen::default();
    }

    /// The host is not online on the current server: whether to try the next one. False
    /// with one server, and once every server has been tried since the node was born.
    pub(super) fn host_missing(&mut self) -> bool {
        if self.hosts.len() < 2 {
            return false;
        }
        self.without_host += 1;
        self.without_host < self.hosts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Servers;

    #[test]
    fn a_loss_moves_on_in_order_and_wraps() {
        let mut s = Servers::new(3, true);
        assert_eq!(s.current(), 0);
        assert_eq!(s.advance(), Some(0));
        assert_eq!(s.current(), 1);
        assert_eq!(s.advance(), Some(1));
        assert_eq!(s.advance(), Some(2));
        assert_eq!(s.current(), 0);
        let mut one = Servers::new(1, true);
        assert_eq!(one.advance(), None);
        assert_eq!(one.current(), 0);
    }

    #[test]
    fn the_first_server_can_be_pinned_for_the_next_session() {
        let mut s = Servers::new(3, true);
        s.advance();
        s.advance();
        s.pin_first();
        assert_eq!(s.advance(), Some(2));
        assert_eq!(s.current(), 0);
        // Only once: the session after goes on in order.
        assert_eq!(s.advance(), Some(0));
        assert_eq!(s.current(), 1);
    }

    #[test]
    fn a_switch_is_a_birth_on_another_server() {
        let mut s = Servers::new(2, true);
        assert!(!s.born(), "the first birth");
        assert!(!s.born(), "a rebirth on the same server");
        s.advance();
        s.advance();
        assert!(!s.born(), "failed attempts elsewhere and back: no switch");
        s.advance();
        assert!(s.born());
    }

    #[test]
    fn a_new_session_waits_for_the_hosts_state_again() {
        let mut s = Servers::new(1, false);
        assert!(s.take_state(true, 100));
        s.forget_host();
        assert!(!s.host().online);
        assert!(
            s.take_state(true, 90),
            "a new session takes the retained STATE as it is"
        );
        assert!(s.host().online);
    }

    #[test]
    fn state_is_kept_per_server_with_its_own_timestamps() {
        let mut s = Servers::new(2, false);
        assert!(s.take_state(true, 100));
        assert!(
            !s.take_state(false, 99),
            "older than the last on this server"
        );
        assert!(s.host().online);
        s.advance();
        // Server 1 has seen nothing: an older timestamp than server 0's is news here.
        assert!(!s.host().online);
        assert!(s.take_state(true, 50));
        assert_eq!(s.hosts_mask(), 0b11);
        assert!(s.take_state(false, 60));
        assert_eq!(s.hosts_mask(), 0b01);
    }

    #[test]
    fn a_missing_host_moves_on_until_every_server_was_tried() {
        let mut s = Servers::new(3, false);
        assert!(s.host_missing());
        s.advance();
        assert!(s.host_missing());
        s.advance();
        assert!(!s.host_missing(), "the third of three: stay");
        // A lost session still moves on; the host missing there too: stay again.
        s.advance();
        assert!(!s.host_missing());
        assert!(!s.born(), "the first birth is no switch");
        assert!(s.host_missing(), "a birth starts a new round");
        let mut one = Servers::new(1, false);
        assert!(!one.host_missing());
    }
}
