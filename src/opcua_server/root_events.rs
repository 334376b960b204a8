//! Event monitored items on uaedge's root object: the middle level of the notifier
//! hierarchy Server → uaedge → device.
//!
//! async-opcua delivers an event notified for a node to that node's event items and to the
//! Server object's, so notifying the root as well as the device would send every Server
//! subscriber each event twice. The root's items are few (a client subscribes there
//! rather than on the Server object to see uaedge's events only), so they are kept here and
//! handed each event directly.

use std::sync::{Arc, OnceLock};

use opcua::nodes::Event;
use opcua::server::address_space::DefaultTypeTree;
use opcua::server::SubscriptionCache;
use parking_lot::{Mutex, RwLock};

/// One event item on the root: its session, subscription and item ids.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Item {
    session: u32,
    subscription: u32,
    item: u32,
}

#[derive(Default)]
pub struct RootEvents {
    items: Mutex<Vec<Item>>,
    /// The server's type tree (for where clauses with OfType), set when the server starts.
    type_tree: OnceLock<Arc<RwLock<DefaultTypeTree>>>,
}

impl RootEvents {
    pub fn set_type_tree(&self, tree: Arc<RwLock<DefaultTypeTree>>) {
        let _ = self.type_tree.set(tree);
    }

    pub fn add(&self, session: u32, subscription: u32, item: u32) {
        self.items.lock().push(Item {
            session,
            subscription,
            item,
        });
    }

    pub fn remove(&self, subscription: u32, item: u32) {
        self.items
            .lock()
            .retain(|i| (i.subscription, i.item) != (subscription, item));
    }

    /// Hands `event` to every root event item, each filtering it by its EventFilter.
    pub fn notify(&self, subscriptions: &SubscriptionCache, event: &dyn Event) {
        let items: Vec<Item> = self.items.lock().clone();
        if items.is_empty() {
            return;
        }
        let Some(tree) = self.type_tree.get() else {
            return;
        };
        let mut gone = Vec::new();
        for i in items {
            let Some(session) = subscriptions.get_session_subscriptions(i.session) else {
                gone.push(i);
                continue;
            };
            // The session's lock, then the type tree's, as async-opcua takes them.
            let mut session = session.lock();
            match session.get_mut(i.subscription) {
                Some(sub) => sub.notify_event(&i.item, event, &*tree.read()),
                None => gone.push(i),
            }
        }
        if !gone.is_empty() {
            self.items.lock().retain(|i| !gone.contains(i));
        }
    }
}
