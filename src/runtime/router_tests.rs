//! The router alone: a table from a real config, the bus's own channels, events handed in
//! as the device tasks would. No sockets, no drivers.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uaedge_driver::{BadReason, LinkError, Quality, Reading, Timestamp, Value};

use super::{DeviceEvent, Install, Router, TaskId};
use crate::bus::{ConditionRequest, Handle, ModelEvent, ModelView};
use crate::conditions::{ConditionBook, ConditionCommand, ConditionError, ConditionEvent};
use crate::config::Config;
use crate::model::{DeviceId, Sample, TagTable};
use crate::runtime::router_checks::{self, Alarms};

const LINE: &str = "  - name: line\n    driver: enip-sim\n    tags:\n      - { name: temp, type: int16, address: Temp, scale: { gain: 0.1 } }\n      - { name: flow, type: float64, address: Flow, deadband: { absolute: 0.5 } }\n";
const PRESS: &str = "  - name: press\n    driver: enip-sim\n    tags:\n      - name: pressure\n        type: float64\n        address: P\n        checks: [{ kind: limits, hi: 100 }]\n";
const SPARE: &str = "  - name: spare\n    driver: enip-sim\n    enabled: false\n    tags:\n      - { name: x, type: float64, address: X }\n";

fn config(devices: &[&str]) -> Config {
    let text = format!("devices:\n{}", devices.concat());
    Config::parse("t.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

struct Rig {
    router: Router,
    handle: Handle,
    events: mpsc::Receiver<ModelEvent>,
    table: Arc<TagTable>,
    _reactions: mpsc::Receiver<router_checks::Reaction>,
}

/// A router over `devices`, task `i + 1` feeding device `i`.
fn rig(devices: &[&str]) -> Rig {
    let mut config = config(devices);
    let table = Arc::new(config.take_tag_table());
    let book = Arc::new(ConditionBook::new(
        std::mem::take(&mut config.conditions),
        &HashMap::new(),
        None,
    ));
    let view = ModelView {
        table: table.clone(),
        writers: vec![None; table.devices().len()],
        conditions: book.clone(),
    };
    let (probes, _) = mpsc::channel(1);
    let (commands, _) = mpsc::channel(1);
    let (handle, publisher) = Handle::new(view, probes, commands);
    let events = handle.subscribe(64);
    let (reactions_tx, reactions) = mpsc::channel(4);
    let alarms = Alarms::new(
        std::mem::take(&mut config.checks),
        handle.status().alarms.clone(),
        reactions_tx,
    );
    let tasks = (0..table.devices().len())
        .map(|i| (TaskId(i as u64 + 1), DeviceId(i as u16)))
        .collect();
    let disabled: Vec<DeviceId> = config
        .devices
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.enabled)
        .map(|(i, _)| DeviceId(i as u16))
        .collect();
    let router = Router::new(
        table.clone(),
        publisher,
        tasks,
        &disabled,
        false,
        alarms,
        book,
    );
    Rig {
        router,
        handle,
        events,
        table,
        _reactions: reactions,
    }
}

fn reading(tag: u32, value: Value) -> Reading {
    Reading {
        tag,
        value: Some(value),
        quality: Quality::Good,
        source_time: None,
    }
}

impl Rig {
    async fn up(&mut self, task: u64) {
        self.router.on_device(TaskId(task), DeviceEvent::Up).await;
        let up = self.events.try_recv();
        assert!(matches!(up, Ok(ModelEvent::DeviceUp(_))), "{up:?}");
    }

    /// Installs a table of `devices` as a reload would: `tasks` maps task ids to device
    /// indexes, `kept` names the devices whose links carry on, `disabled` their indexes.
    async fn install(
        &mut self,
        devices: &[&str],
        tasks: &[(u64, u16)],
        kept: &[&str],
        disabled: &[u16],
    ) -> (Arc<TagTable>, Result<bool, oneshot::error::RecvError>) {
        let mut next = config(devices);
        let table = Arc::new(next.take_tag_table());
        let (done, swapped) = oneshot::channel();
        let install = Install {
            table: table.clone(),
            writers: vec![None; table.devices().len()],
            conditions: std::mem::take(&mut next.conditions),
            tasks: (tasks.iter())
                .map(|&(t, d)| (TaskId(t), DeviceId(d)))
                .collect(),
            kept: kept.iter().map(|k| k.to_string()).collect(),
            disabled: disabled.iter().map(|&d| DeviceId(d)).collect(),
            checks: std::mem::take(&mut next.checks),
            log_values: false,
            done,
        };
        self.router.install(install).await;
        (table, swapped.await)
    }

    fn reloaded(&mut self) -> Arc<crate::bus::Reloaded> {
        match self.events.try_recv() {
            Ok(ModelEvent::Reloaded(r)) => r,
            other => panic!("expected Reloaded, got {other:?}"),
        }
    }

    async fn read(&mut self, task: u64, readings: Vec<Reading>) {
        let event = DeviceEvent::Readings(readings, Timestamp::now());
        self.router.on_device(TaskId(task), event).await;
    }

    /// The next event's samples, checked to come from `device`.
    fn samples(&mut self, device: u16) -> Vec<Sample> {
        match self.events.try_recv() {
            Ok(ModelEvent::Samples(d, batch)) => {
                assert_eq!(d, DeviceId(device), "batch from another device");
                batch.to_vec()
            }
            other => panic!("expected samples, got {other:?}"),
        }
    }

    /// The next event is `device`'s link going down.
    fn down(&mut self, device: u16) {
        let event = self.events.try_recv();
        assert!(
            matches!(event, Ok(ModelEvent::DeviceDown(d)) if d == DeviceId(device)),
            "expected DeviceDown({device}), got {event:?}"
        );
    }

    /// The next event is a condition change of `key`.
    fn condition(&mut self, key: &str) -> Arc<ConditionEvent> {
        match self.events.try_recv() {
            Ok(ModelEvent::Condition(c)) if &*c.def.key == key => c,
            other => panic!("expected a condition change of {key}, got {other:?}"),
        }
    }

    /// A user's command, as the OPC UA server or a Sparkplug host sends it.
    async fn command(
        &mut self,
        key: &str,
        command: ConditionCommand,
    ) -> Result<ConditionEvent, ConditionError> {
        let (reply, answer) = oneshot::channel();
        let request = ConditionRequest {
            key: key.to_string(),
            command,
            user: "operator".to_string(),
            reply,
        };
        self.router.on_command(request).await;
        answer.await.unwrap_or(Err(ConditionError::Stopped))
    }

    fn nothing_more(&mut self) {
        if let Ok(event) = self.events.try_recv() {
            panic!("no event expected, got {event:?}");
        }
    }

    fn value(&self, path: &str) -> (Option<Value>, Quality) {
        let table = self.handle.table();
        let id = table.find(path).unwrap_or_else(|| panic!("no tag {path}"));
        let state = table
            .state(id)
            .unwrap_or_else(|| panic!("no state of {path}"));
        (state.value, state.quality)
    }
}

#[tokio::test]
async fn scaling_gives_the_decimal_and_an_unchanged_value_is_not_reported_again() {
    let mut rig = rig(&[LINE]);
    rig.read(1, vec![reading(0, Value::Int16(217))]).await;
    let samples = rig.samples(0);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, Some(Value::Double(21.7)));
    assert_eq!(
        rig.value("line/temp"),
        (Some(Value::Double(21.7)), Quality::Good)
    );
    // Report-by-exception: the same value again is no event at all.
    rig.read(1, vec![reading(0, Value::Int16(217))]).await;
    rig.nothing_more();
    // A quality change is reported even with the value unchanged.
    let uncertain = Reading {
        quality: Quality::Uncertain(uaedge_driver::UncertainReason::LastUsableValue),
        ..reading(0, Value::Int16(217))
    };
    rig.read(1, vec![uncertain]).await;
    assert_eq!(rig.samples(0)[0].quality, uncertain_quality());
    let state = rig.table.device_state(DeviceId(0)).unwrap_or_default();
    assert_eq!((state.samples_in, state.samples_out), (3, 2));
}

fn uncertain_quality() -> Quality {
    Quality::Uncertain(uaedge_driver::UncertainReason::LastUsableValue)
}

#[tokio::test]
async fn a_change_inside_the_deadband_waits_for_one_beyond_the_last_reported_value() {
    let mut rig = rig(&[LINE]);
    rig.read(1, vec![reading(1, Value::Double(10.0))]).await;
    assert_eq!(rig.samples(0).len(), 1);
    rig.read(1, vec![reading(1, Value::Double(10.3))]).await;
    rig.nothing_more();
    // 0.6 from the last reported value, though only 0.3 from the last reading.
    rig.read(1, vec![reading(1, Value::Double(10.6))]).await;
    assert_eq!(rig.samples(0)[0].value, Some(Value::Double(10.6)));
    assert_eq!(rig.value("line/flow").0, Some(Value::Double(10.6)));
}

#[tokio::test]
async fn a_lost_link_turns_the_driver_tags_bad_and_keeps_their_last_values() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.read(2, vec![reading(0, Value::Double(50.0))]).await;
    rig.samples(1);
    let lost = DeviceEvent::Down(LinkError::not_connected("cable pulled"));
    rig.router.on_device(TaskId(2), lost).await;
    rig.down(1);
    let bad = rig.samples(1);
    // The driver's one tag; its alarm tag keeps its state.
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].quality, Quality::Bad(BadReason::NotConnected));
    assert_eq!(
        rig.value("press/pressure"),
        (
            Some(Value::Double(50.0)),
            Quality::Bad(BadReason::NotConnected)
        )
    );
    assert_eq!(
        rig.value("press/pressure/Alarms/limits"),
        (Some(Value::Boolean(false)), Quality::Good)
    );
    let state = rig.table.device_state(DeviceId(1)).unwrap_or_default();
    assert!(!state.connected);
    assert!(state.last_error.is_some_and(|e| e.contains("cable pulled")));
    // The other device is untouched: still waiting for its first read.
    assert_eq!(
        rig.value("line/temp").1,
        Quality::Bad(BadReason::NotConnected)
    );
}

#[tokio::test]
async fn an_alarm_travels_in_the_batch_of_the_reading_that_raised_it() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    let batch = rig.samples(1);
    let alarm = rig.table.find("press/pressure/Alarms/limits");
    let acked = rig.table.find("press/pressure/Alarms/limits/Acked");
    assert_eq!(batch.len(), 3);
    assert_eq!(Some(batch[1].tag), alarm);
    assert_eq!(batch[1].value, Some(Value::Boolean(true)));
    // A limit alarm waits for an operator: its Acked tag drops in the same batch.
    assert_eq!(Some(batch[2].tag), acked);
    assert_eq!(batch[2].value, Some(Value::Boolean(false)));
    assert_eq!(rig.handle.alarm_counts().active, 1);
    // Its condition change follows the batch.
    let c = rig.condition(ALARM);
    assert!(c.state.active && !c.state.acked && c.retain());
    assert!(
        c.state
            .message
            .starts_with("press/pressure limits: value 150"),
        "{}",
        c.state.message
    );
    rig.nothing_more();
}

const ALARM: &str = "press/pressure/Alarms/limits";

#[tokio::test]
async fn a_users_commands_change_the_condition_and_enable_or_disable_set_the_alarm_tag() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    let active = rig.condition(ALARM);
    let wrong = ConditionCommand::Acknowledge {
        event_id: Some([9; 16]),
        comment: None,
    };
    assert_eq!(
        rig.command(ALARM, wrong).await.err(),
        Some(ConditionError::EventIdUnknown)
    );
    let unknown = rig
        .command("press/pressure/Alarms/nope", ConditionCommand::Disable)
        .await;
    assert_eq!(unknown.err(), Some(ConditionError::Unknown));
    rig.nothing_more();
    let ack = ConditionCommand::Acknowledge {
        event_id: Some(active.state.event_id),
        comment: Some("valve checked".into()),
    };
    let acked = rig.command(ALARM, ack).await.expect("acknowledged");
    assert!(acked.state.acked && acked.state.active);
    assert_eq!(acked.state.client_user_id, "operator");
    assert_ne!(acked.state.event_id, active.state.event_id, "a new event");
    // The Acked tag first, then the condition's event.
    let acked_tag = rig.samples(1);
    assert_eq!(acked_tag.len(), 1);
    assert_eq!(
        Some(acked_tag[0].tag),
        rig.table.find(&format!("{ALARM}/Acked"))
    );
    assert_eq!(acked_tag[0].value, Some(Value::Boolean(true)));
    let told = rig.condition(ALARM);
    assert_eq!(told.state, acked.state);
    // Disabled: the alarm tag drops, the check's transitions are ignored.
    rig.command(ALARM, ConditionCommand::Disable)
        .await
        .expect("disabled");
    let dropped = rig.samples(1);
    assert_eq!(dropped[0].value, Some(Value::Boolean(false)));
    assert!(!rig.condition(ALARM).state.enabled);
    rig.read(2, vec![reading(0, Value::Double(50.0))]).await;
    assert_eq!(rig.samples(1).len(), 1, "the value only");
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    assert_eq!(rig.samples(1).len(), 1, "the value only");
    rig.nothing_more();
    // Enabled while the check says Active: a new occurrence.
    rig.command(ALARM, ConditionCommand::Enable)
        .await
        .expect("enabled");
    let values: Vec<_> = rig.samples(1).into_iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        [Some(Value::Boolean(true)), Some(Value::Boolean(false))],
        "Active, and not acknowledged"
    );
    let again = rig.condition(ALARM);
    assert!(again.state.enabled && again.state.active && !again.state.acked);
}

#[tokio::test]
async fn a_disabled_device_is_out_of_service_from_the_start() {
    let rig = rig(&[LINE, SPARE]);
    assert_eq!(
        rig.value("spare/x"),
        (None, Quality::Bad(BadReason::OutOfService))
    );
    assert_eq!(
        rig.value("line/temp").1,
        Quality::Bad(BadReason::NotConnected)
    );
}

#[tokio::test]
async fn the_swap_carries_kept_devices_over_and_tells_subscribers_the_states_of_that_moment() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.up(1).await;
    rig.read(1, vec![reading(0, Value::Int16(217))]).await;
    rig.samples(0);
    rig.up(2).await;
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    rig.condition(ALARM);
    // The new config: press gone, a disabled device and a new press first, line kept.
    let (table, swapped) = rig
        .install(&[SPARE, PRESS, LINE], &[(1, 2), (3, 1)], &["line"], &[0])
        .await;
    assert_eq!(swapped, Ok(true), "the tag set changed");
    let reloaded = rig.reloaded();
    assert_eq!(reloaded.start.connected, [false, false, true]);
    assert!(Arc::ptr_eq(&reloaded.start.table, &table));
    assert!(Arc::ptr_eq(&rig.handle.table(), &table), "handles follow");
    let values = |s: &[crate::model::TagState]| -> Vec<_> {
        s.iter().map(|s| (s.value.clone(), s.quality)).collect()
    };
    let mut start = values(&reloaded.start.states);
    let at = |path: &str| {
        table
            .find(path)
            .map(|id| reloaded.start.states[id.index()].clone())
    };
    assert_eq!(
        at("line/temp").and_then(|s| s.value),
        Some(Value::Double(21.7))
    );
    let spare = at("spare/x").map(|s| s.quality);
    assert_eq!(spare, Some(Quality::Bad(BadReason::OutOfService)));
    // The old press's alarm was Active and its condition carries over by key: the check
    // restarts Active, and the new table says so from the start (clients saw it Active).
    let alarm = at("press/pressure/Alarms/limits").map(|s| (s.value, s.quality));
    assert_eq!(alarm, Some((Some(Value::Boolean(true)), Quality::Good)));
    let acked = at("press/pressure/Alarms/limits/Acked").and_then(|s| s.value);
    assert_eq!(acked, Some(Value::Boolean(false)), "not acknowledged yet");
    // press was replaced: its link went with its old task, its tags start over.
    rig.down(1);
    let restarted = rig.samples(1);
    assert_eq!(restarted.len(), 1);
    assert_eq!(restarted[0].quality, Quality::Bad(BadReason::NotConnected));
    assert_eq!(rig.handle.alarm_counts().active, 1);
    // The states of the swap and the samples after it are the table's.
    start[restarted[0].tag.index()] = (restarted[0].value.clone(), restarted[0].quality);
    assert_eq!(start, table.states(values));
    assert!(rig.handle.conditions().shows_active(ALARM));
    // The stopped press task's last event finds no device.
    rig.read(2, vec![reading(0, Value::Double(1.0))]).await;
    rig.nothing_more();
    // The kept line's task now feeds device 2, with its report-by-exception state kept.
    rig.read(1, vec![reading(0, Value::Int16(217))]).await;
    rig.nothing_more();
    rig.read(1, vec![reading(0, Value::Int16(218))]).await;
    assert_eq!(rig.samples(2)[0].value, Some(Value::Double(21.8)));
    // The new press's task feeds device 1.
    rig.read(3, vec![reading(0, Value::Double(5.0))]).await;
    assert_eq!(rig.samples(1)[0].value, Some(Value::Double(5.0)));
}

#[tokio::test]
async fn disabling_a_connected_device_by_reload_takes_it_down_where_subscribers_see_it() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.up(1).await;
    rig.up(2).await;
    rig.read(2, vec![reading(0, Value::Double(50.0))]).await;
    rig.samples(1);
    let disabled = PRESS.replace("driver: enip-sim", "driver: enip-sim\n    enabled: false");
    let (table, swapped) = rig
        .install(&[LINE, &disabled], &[(1, 0)], &["line"], &[1])
        .await;
    assert_eq!(swapped, Ok(false), "the same tags: no rebirth");
    let reloaded = rig.reloaded();
    assert_eq!(reloaded.start.connected, [true, false]);
    // Without these, a born Sparkplug device and an OPC UA monitored item would hold the
    // last Good value while a Read says OutOfService.
    rig.down(1);
    let out = rig.samples(1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].quality, Quality::Bad(BadReason::OutOfService));
    let id = table.find("press/pressure").expect("tag");
    assert_eq!(reloaded.start.states[id.index()].quality, out[0].quality);
    // The line was kept: nothing is said of it.
    rig.nothing_more();
}

#[tokio::test]
async fn a_reload_that_removes_a_retained_condition_takes_it_off_the_lists() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    let active = rig.condition(ALARM);
    let plain = PRESS.replace("        checks: [{ kind: limits, hi: 100 }]\n", "");
    let (_, swapped) = rig
        .install(&[LINE, &plain], &[(1, 0), (2, 1)], &["line", "press"], &[])
        .await;
    assert_eq!(swapped, Ok(true), "the alarm tags went");
    rig.reloaded();
    let gone = rig.condition(ALARM);
    assert!(!gone.retain(), "{:?}", gone.state);
    assert!(gone.state.message.ends_with("removed from the config"));
    assert_ne!(gone.state.event_id, active.state.event_id);
    assert!(rig.handle.conditions().is_empty());
}

#[tokio::test]
async fn enable_starts_from_what_the_check_says_while_the_condition_was_disabled() {
    let mut rig = rig(&[LINE, PRESS]);
    // Disabled while Active; the value goes back to normal meanwhile: enabled, it is not
    // Active.
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    rig.condition(ALARM);
    rig.command(ALARM, ConditionCommand::Disable)
        .await
        .expect("disabled");
    rig.samples(1);
    rig.condition(ALARM);
    rig.read(2, vec![reading(0, Value::Double(50.0))]).await;
    rig.samples(1);
    rig.command(ALARM, ConditionCommand::Enable)
        .await
        .expect("enabled");
    let enabled = rig.condition(ALARM);
    assert!(
        enabled.state.enabled && !enabled.state.active,
        "{:?}",
        enabled.state
    );
    // Disabled while normal; the value goes high meanwhile: enabled, it is Active.
    rig.command(ALARM, ConditionCommand::Disable)
        .await
        .expect("disabled");
    rig.condition(ALARM);
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    rig.command(ALARM, ConditionCommand::Enable)
        .await
        .expect("enabled");
    rig.samples(1);
    let raised = rig.condition(ALARM);
    assert!(
        raised.state.active && !raised.state.acked,
        "{:?}",
        raised.state
    );
    assert_eq!(
        raised.state.limit_state,
        Some(crate::conditions::LimitState::High)
    );
}

#[tokio::test]
async fn disabling_a_device_by_reload_clears_its_active_conditions() {
    let mut rig = rig(&[LINE, PRESS]);
    rig.read(2, vec![reading(0, Value::Double(150.0))]).await;
    rig.samples(1);
    rig.condition(ALARM);
    let disabled = PRESS.replace("driver: enip-sim", "driver: enip-sim\n    enabled: false");
    let _ = rig
        .install(&[LINE, &disabled], &[(1, 0)], &["line"], &[1])
        .await;
    rig.reloaded();
    let cleared = rig.condition(ALARM);
    assert!(!cleared.state.active, "{:?}", cleared.state);
    assert!(cleared.retain(), "still waiting for its acknowledgement");
    assert_eq!(rig.handle.alarm_counts().active, 0);
    assert_eq!(rig.value(ALARM).0, Some(Value::Boolean(false)));
}
