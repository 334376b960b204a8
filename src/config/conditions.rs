//! Each check is also an OPC UA alarm condition: its Part 9 type, Severity and
//! acknowledgement rule, from the check's kind and its `severity:`, `ack:` and `confirm:`
//! keys.
//!
//! | kind             | Part 9 type                      | limits shown                 | severity | ack      |
//! |------------------|----------------------------------|------------------------------|----------|----------|
//! | `limits`         | ExclusiveLimitAlarmType          | HighLimit `hi`, LowLimit `lo` | 700      | required |
//! | `rate_of_change` | ExclusiveRateOfChangeAlarmType   | ±`max_per_second`            | 600      | auto     |
//! | `spike`          | ExclusiveDeviationAlarmType      | HighLimit `threshold` (MADs) | 600      | auto     |
//! | `zscore`         | ExclusiveDeviationAlarmType      | HighLimit `threshold` (σ)    | 500      | auto     |
//! | `flatline`       | OffNormalAlarmType               | —                            | 500      | auto     |
//!
//! Limits are safety boundaries an operator must see, hence acknowledged by hand; the
//! statistical checks flag a process that looks unusual, which clears by itself.

use std::sync::Arc;

use super::checks::CheckConfig;
use super::ConfigError;
use crate::anomaly::{alarm_path, CheckKind, CheckParams, CheckSpec};
use crate::conditions::{AckMode, ConditionClass, ConditionDef};
use crate::model::TagDef;

/// Part 9's type for a check kind.
pub fn class_of(kind: CheckKind) -> ConditionClass {
    match kind {
        CheckKind::Limits => ConditionClass::ExclusiveLimit,
        CheckKind::RateOfChange => ConditionClass::ExclusiveRateOfChange,
        CheckKind::Zscore | CheckKind::Spike => ConditionClass::ExclusiveDeviation,
        CheckKind::Flatline => ConditionClass::OffNormal,
    }
}

fn default_severity(kind: CheckKind) -> u16 {
    match kind {
        CheckKind::Limits => 700,
        CheckKind::RateOfChange | CheckKind::Spike => 600,
        CheckKind::Zscore | CheckKind::Flatline => 500,
    }
}

fn default_ack(kind: CheckKind) -> AckMode {
    match kind {
        CheckKind::Limits => AckMode::Required,
        _ => AckMode::Auto,
    }
}

/// The condition of a validated check, from the check's config entry.
pub(super) fn condition_of(
    owner: &TagDef,
    config: &CheckConfig,
    spec: &CheckSpec,
    errors: &mut Vec<ConfigError>,
) -> ConditionDef {
    let kind = spec.kind();
    let severity = match &config.severity {
        Some(s) if !(1..=1000).contains(&s.value) => {
            errors.push(s.error(format!(
                "severity {} is out of range: OPC UA severities go from 1 (low) to 1000 (high)",
                s.value
            )));
            default_severity(kind)
        }
        Some(s) => s.value,
        None => default_severity(kind),
    };
    let (high_limit, low_limit) = match &spec.params {
        CheckParams::Limits { lo, hi, .. } => (*hi, *lo),
        CheckParams::RateOfChange { max_per_second, .. } => {
            (Some(*max_per_second), Some(-*max_per_second))
        }
        CheckParams::Zscore { threshold, .. } | CheckParams::Spike { threshold, .. } => {
            (Some(*threshold), None)
        }
        CheckParams::Flatline { .. } => (None, None),
    };
    ConditionDef {
        owner: owner.id,
        device: owner.path.device.clone(),
        tag: Arc::from(owner.path.tag.as_ref()),
        check: spec.name.clone(),
        key: Arc::from(format!(
            "{}/{}",
            owner.path.device,
            alarm_path(&owner.path.tag, &spec.name)
        )),
        class: class_of(kind),
        severity,
        ack: config.ack.as_ref().map_or(default_ack(kind), |a| a.value),
        confirm: config.confirm.as_ref().is_some_and(|c| c.value),
        high_limit,
        low_limit,
        units: owner.units.as_deref().map(Arc::from),
    }
}
