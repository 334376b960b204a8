use uaedge_driver::Timestamp;

use super::*;

fn def(ack: AckMode, confirm: bool) -> ConditionDef {
    crate::conditions::test_def(ack, confirm)
}

fn ack(id: EventId) -> ConditionCommand {
    ConditionCommand::Acknowledge {
        event_id: Some(id),
        comment: Some("seen".into()),
    }
}

#[test]
fn an_unacknowledged_alarm_is_retained_after_it_clears_until_acknowledged() {
    let d = def(AckMode::Required, false);
    let mut s = ConditionState::new(&d, 0);
    assert!(!s.retain());
    let hi = Some(LimitState::High);
    assert!(on_alarm(
        &d,
        &mut s,
        true,
        Timestamp(10),
        132.4,
        "high".into(),
        hi
    ));
    assert!(s.active && !s.acked && s.retain());
    assert_eq!(s.limit_state, hi);
    // The same occurrence again (a restored Active alarm the check finds again): nothing.
    assert!(!on_alarm(
        &d,
        &mut s,
        true,
        Timestamp(11),
        133.0,
        "x".into(),
        hi
    ));
    assert!(on_alarm(
        &d,
        &mut s,
        false,
        Timestamp(20),
        100.0,
        "ok".into(),
        None
    ));
    assert!(
        !s.active && s.retain(),
        "cleared but unacknowledged stays retained"
    );
    s.event_id = [7; 16];
    assert_eq!(
        apply(&d, &mut s, &ack([8; 16]), "op", false, 30),
        Err(ConditionError::EventIdUnknown)
    );
    apply(&d, &mut s, &ack([7; 16]), "op", false, 30).unwrap();
    assert!(s.acked && !s.retain());
    assert_eq!(
        (s.comment.as_str(), s.client_user_id.as_str()),
        ("seen", "op")
    );
    assert_eq!(
        apply(&d, &mut s, &ack([7; 16]), "op", false, 31),
        Err(ConditionError::AlreadyAcked)
    );
}

#[test]
fn confirm_follows_acknowledge_when_the_check_asks_for_it() {
    let d = def(AckMode::Required, true);
    let mut s = ConditionState::new(&d, 0);
    let confirm = ConditionCommand::Confirm {
        event_id: None,
        comment: None,
    };
    assert_eq!(
        apply(&d, &mut s, &confirm, "op", false, 1),
        Err(ConditionError::AlreadyConfirmed)
    );
    on_alarm(&d, &mut s, true, Timestamp(10), 130.0, "high".into(), None);
    apply(
        &d,
        &mut s,
        &ConditionCommand::Acknowledge {
            event_id: None,
            comment: None,
        },
        "op",
        true,
        11,
    )
    .unwrap();
    assert!(s.acked && !s.confirmed && s.retain());
    on_alarm(&d, &mut s, false, Timestamp(12), 100.0, "ok".into(), None);
    assert!(s.retain(), "unconfirmed");
    apply(&d, &mut s, &confirm, "op", false, 13).unwrap();
    assert!(!s.retain());
    assert_eq!(s.comment, "", "a null comment leaves the comment as it was");
}

#[test]
fn auto_acknowledged_alarms_are_retained_only_while_active() {
    let d = def(AckMode::Auto, false);
    let mut s = ConditionState::new(&d, 0);
    on_alarm(&d, &mut s, true, Timestamp(10), 130.0, "high".into(), None);
    assert!(s.acked && s.retain());
    on_alarm(&d, &mut s, false, Timestamp(11), 100.0, "ok".into(), None);
    assert!(!s.retain());
}

#[test]
fn a_disabled_condition_ignores_its_check_and_enable_starts_from_what_the_check_says() {
    let d = def(AckMode::Required, false);
    let mut s = ConditionState::new(&d, 0);
    on_alarm(&d, &mut s, true, Timestamp(10), 130.0, "high".into(), None);
    apply(&d, &mut s, &ConditionCommand::Disable, "op", true, 11).unwrap();
    assert!(!s.enabled && !s.active && !s.retain());
    assert_eq!(
        apply(&d, &mut s, &ConditionCommand::Disable, "op", true, 12),
        Err(ConditionError::AlreadyDisabled)
    );
    let id = s.event_id;
    assert_eq!(
        apply(&d, &mut s, &ack(id), "op", true, 12),
        Err(ConditionError::Disabled)
    );
    assert!(!on_alarm(
        &d,
        &mut s,
        false,
        Timestamp(13),
        100.0,
        "ok".into(),
        None
    ));
    apply(&d, &mut s, &ConditionCommand::Enable, "op", true, 14).unwrap();
    assert!(s.enabled && s.active && !s.acked);
    assert_eq!(
        apply(&d, &mut s, &ConditionCommand::Enable, "op", true, 15),
        Err(ConditionError::AlreadyEnabled)
    );
}
