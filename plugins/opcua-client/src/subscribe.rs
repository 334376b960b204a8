//! A device's subscription: one per device on its (possibly shared) session, with one
//! monitored item per tag, created in batches of what the server takes per call.

use std::sync::Arc;
use std::time::Duration;

use opcua::client::services::{CreateMonitoredItems, CreateSubscription, DeleteSubscriptions};
use opcua::client::UARequest;
use opcua::types::{
    DataChangeFilter, DataChangeTrigger, DeadbandType, ExtensionObject, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeId, TimestampsToReturn,
};
use tracing::info;
use uaedge_driver::{LinkError, Reading};

use crate::driver::{value_of, OpcUaDriver};
use crate::inbox::Inbox;
use crate::link::Link;
use crate::options::Deadband;
use crate::resolve::Nodes;
use crate::session::{link_error, NOTIFICATIONS_PER_PUBLISH};

/// The server sends at least a keep-alive publish every this many publishing intervals.
const KEEP_ALIVE_COUNT: u32 = 10;
/// A break this long costs no data when the server keeps the values meanwhile: the
/// default queue size covers it at the sampling interval.
const BREAK_COVERED: Duration = Duration::from_secs(10);

/// A subscription of this device, routed to its inbox.
pub(crate) struct Sub {
    pub id: u32,
    pub inbox: Arc<Inbox>,
    /// Longest silence of the subscription, while the session works, before it counts as
    /// gone: its lifetime. A server owes a keep-alive every publishing interval ×
    /// keep-alive count, but one busy with other subscriptions of the session may not
    /// answer this one for a while (async-opcua serves equal priorities in a fixed order,
    /// not round robin); only past its lifetime has the server certainly dropped it.
    pub deadline: Duration,
}

/// The most monitored items one CreateMonitoredItems carries, whatever the server allows.
/// Below [`crate::session::MAX_BATCH`]: a call of 50,000 held about 40 MB while it was
/// encoded, answered and decoded, and ten devices create theirs at once; 10,000 hold a
/// fifth of that and cost 100,000 tags five round trips more.
const MONITOR_BATCH: usize = 10_000;

/// A batch size: the server's limit (0: none) within ours.
pub(crate) fn batch(server: u32, ours: usize) -> usize {
    match server as usize {
        0 => ours,
        n => n.min(ours),
    }
    .max(1)
}

/// Values the server queues per item between two Publish responses when the config does
/// not say: enough for [`BREAK_COVERED`] at the sampling interval.
pub(crate) fn default_queue_size(sampling: Duration) -> u32 {
    let per = sampling.as_secs_f64().max(0.001);
    ((BREAK_COVERED.as_secs_f64() / per).ceil() as u32).clamp(10, 1000)
}

impl OpcUaDriver {
    /// Creates the subscription (kept in `self.sub` from the moment the server has it) and
    /// its monitored items; tags the server refuses get Bad readings in `pending`.
    pub(crate) async fn subscribe(
        &mut self,
        link: &Link,
        nodes: &Nodes,
        pending: &mut Vec<Reading>,
    ) -> Result<(), LinkError> {
        let session = link.session();
        let o = &self.options;
        let publishing = o.publishing_interval.get();
        let timeout = self.request_timeout();
        // The subscription outlives a break as long as the session does, so that a
        // reactivated session finds it (at least three keep-alives, as Part 4 asks).
        let lifetime = (o.session_timeout.get().as_secs_f64() / publishing.as_secs_f64().max(0.001))
            .ceil()
            .clamp(f64::from(3 * KEEP_ALIVE_COUNT), f64::from(u32::MAX))
            as u32;
        let created = CreateSubscription::new(session)
            .publishing_interval(publishing)
            .max_keep_alive_count(KEEP_ALIVE_COUNT)
            .max_lifetime_count(lifetime)
            .max_notifications_per_publish(NOTIFICATIONS_PER_PUBLISH)
            .publishing_enabled(true)
            .timeout(timeout)
            .send(session.channel())
            .await
            .map_err(|e| link_error(e.status(), &format!("create subscription: {e}")))?;
        let id = created.subscription_id;
        // Whatever the server says, within reason: a day at most.
        let interval = Duration::try_from_secs_f64(created.revised_publishing_interval / 1000.0)
            .unwrap_or(publishing)
            .clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        let keep_alive =
            interval.saturating_mul(created.revised_max_keep_alive_count.clamp(1, 1000));
        let inbox = Inbox::new(o.buffer, &self.device);
        link.add_route(id, inbox.clone(), keep_alive);
        let lifetime = interval.saturating_mul(created.revised_lifetime_count.max(1));
        self.sub = Some(Sub {
            id,
            inbox,
            deadline: lifetime
                .max(keep_alive.saturating_mul(3))
                .saturating_add(timeout.saturating_mul(2)),
        });
        if let Err(e) = self.monitor(link, id, nodes, pending).await {
            if let Some(sub) = self.sub.take() {
                unsubscribe(link, &sub, timeout).await;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn monitor(
        &mut self,
        link: &Link,
        id: u32,
        nodes: &Nodes,
        pending: &mut Vec<Reading>,
    ) -> Result<(), LinkError> {
        let session = link.session();
        let o = &self.options;
        let sampling = o.sampling().get();
        let queue_size = o.queue_size.unwrap_or_else(|| default_queue_size(sampling));
        let request = |i: usize, node: &NodeId| {
            let filter = match (o.deadband, self.tags[i].data_type.is_numeric()) {
                (Some(d), true) => {
                    let (deadband_type, deadband_value) = match d {
                        Deadband::Absolute(x) => (DeadbandType::Absolute, x),
                        Deadband::Percent(x) => (DeadbandType::Percent, x),
                    };
                    ExtensionObject::from_message(DataChangeFilter {
                        trigger: DataChangeTrigger::StatusValue,
                        deadband_type: deadband_type as u32,
                        deadband_value,
                    })
                }
                _ => ExtensionObject::null(),
            };
            MonitoredItemCreateRequest {
                item_to_monitor: value_of(node),
                monitoring_mode: MonitoringMode::Reporting,
                requested_parameters: MonitoringParameters {
                    // The tag's index + 1: 0 is the one handle a client must not use.
                    client_handle: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    sampling_interval: sampling.as_secs_f64() * 1000.0,
                    filter,
                    queue_size,
                    discard_oldest: true,
                },
            }
        };
        let items: Vec<usize> = nodes.found().collect();
        let size = batch(link.limits().max_monitored_items_per_call, MONITOR_BATCH);
        let started = std::time::Instant::now();
        let mut refused = Vec::new();
        for chunk in items.chunks(size) {
            // Each batch's requests made only for it: all of them at once were most of a
            // 100,000-tag gateway's peak memory.
            let (chunk, requests): (Vec<usize>, Vec<MonitoredItemCreateRequest>) = chunk
                .iter()
                .filter_map(|&i| Some((i, request(i, &nodes.get(&self.tags, i)?))))
                .unzip();
            // A large batch takes the server a while: a second per 10,000 items on top.
            let timeout = self
                .request_timeout()
                .saturating_add(Duration::from_millis(chunk.len() as u64 / 10));
            let created = CreateMonitoredItems::new(id, session)
                .timestamps_to_return(TimestampsToReturn::Both)
                .items_to_create(requests)
                .timeout(timeout)
                .send(session.channel())
                .await
                .map_err(|e| link_error(e.status(), &format!("create monitored items: {e}")))?;
            for (&i, item) in chunk.iter().zip(&created.results) {
                let status = item.result.status_code;
                if !status.is_good() {
                    refused.push((i, status));
                }
            }
        }
        for (i, status) in refused {
            pending.push(self.refuse(i, format!("monitored item refused: {status}")));
        }
        info!(device = %self.device, subscription = id, items = items.len(), batch = size,
            elapsed_ms = started.elapsed().as_millis() as u64, "monitored items created");
        Ok(())
    }
}

/// Stops routing `sub` and deletes it on the server, best effort within `timeout` (a
/// closing session deletes it anyway). One the link no longer routes is gone already: its
/// id may name another device's subscription by now, so it is left alone.
pub(crate) async fn unsubscribe(link: &Link, sub: &Sub, timeout: Duration) {
    if !link.take_route(sub.id, &sub.inbox) {
        return;
    }
    let session = link.session();
    let _ = tokio::time::timeout(
        timeout,
        DeleteSubscriptions::new(session)
            .subscription(sub.id)
            .timeout(timeout)
            .send(session.channel()),
    )
    .await;
}
