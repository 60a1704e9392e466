//! Which flows the intercepts must know: every flow copy opens is registered with every
//! connected intercept, and remembered while it lives so an intercept that (re)connects learns
//! all of them.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::packet::Flow;

/// Registrations a link may have queued; beyond that the link's writer is stuck and further
/// registrations for it are dropped (its next connection learns every live flow anyway).
const LINK_QUEUE: usize = 65_536;

/// Fans registrations out to every connected intercept link.
#[derive(Default)]
pub struct Registrar {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: HashSet<Flow>,
    links: Vec<(u64, Sender<Flow>)>,
    next_link: u64,
}

/// A link's view of the registrar: its queue of new flows and the flows live when it attached.
pub struct Attached {
    pub id: u64,
    pub queue: Receiver<Flow>,
    pub backlog: Vec<Flow>,
}

impl Registrar {
    /// A flow opened: tell every intercept.
    pub fn register(&self, flow: Flow) {
        let mut inner = self.lock();
        inner.live.insert(flow);
        for (_, link) in &inner.links {
            let _ = link.try_send(flow);
        }
    }

    /// A flow ended: it no longer needs registering on reconnect. (TCPCopy 1.x never sends
    /// CLIENT_DEL; intercepts expire idle flows themselves.)
    pub fn unregister(&self, flow: Flow) {
        self.lock().live.remove(&flow);
    }

    /// How many intercepts are connected now.
    pub fn connected(&self) -> usize {
        self.lock().links.len()
    }

    /// Adds a link: its id, its queue, and the live flows it must register first.
    pub fn attach(&self) -> Attached {
        let (tx, queue) = crossbeam_channel::bounded(LINK_QUEUE);
        let mut inner = self.lock();
        let id = inner.next_link;
        inner.next_link += 1;
        inner.links.push((id, tx));
        Attached {
            id,
            queue,
            backlog: inner.live.iter().copied().collect(),
        }
    }

    /// Removes a link whose connection ended.
    pub fn detach(&self, id: u64) {
        self.lock().links.retain(|(link, _)| *link != id);
    }

    /// Locks the state, carrying on with it if another thread panicked while holding it.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u16) -> Flow {
        Flow {
            client: ([203, 0, 113, 1], port).into(),
            target: ([198, 51, 100, 30], 80).into(),
        }
    }

    #[test]
    fn a_link_learns_live_flows_then_new_ones() {
        let registrar = Registrar::default();
        registrar.register(flow(1));
        registrar.register(flow(2));
        registrar.unregister(flow(2));
        let link = registrar.attach();
        assert_eq!(link.backlog, vec![flow(1)]);
        assert_eq!(registrar.connected(), 1);
        registrar.register(flow(3));
        assert_eq!(link.queue.try_recv().unwrap(), flow(3));
        registrar.detach(link.id);
        assert_eq!(registrar.connected(), 0);
    }
}
