//! Anomaly checks in the config: every check's alarm is a Boolean tag of the model, so
//! every consumer (OPC UA, Sparkplug, the store, `uaedge tags`) carries it like any tag.
//!
//! Two passes, because a check's `reaction:` may name a tag of a device further down:
//! 1. while a device is read, [`alarm_defs`] appends one alarm tag per check after the
//!    device's driver tags (`<tag>/Alarms/<check>`), keeping TagIds dense and each device's
//!    range contiguous;
//! 2. once every device is read, [`validate`] runs [`validate_checks`] with a lookup over
//!    all tags, and writes what each check watches into its alarm tag's address and
//!    description.

use std::collections::{HashMap, HashSet};

use uaedge_driver::DataType;

use super::checks::{validate_checks, CheckConfig};
use super::conditions::condition_of;
use super::ConfigError;
use crate::anomaly::{alarm_path, CheckParams, CheckSpec, Debounce, FlatSpan, Window};
use crate::conditions::{ConditionDef, ACKED};
use crate::model::{TagDef, TagId, TagPath};

/// One tag's checks, waiting for the second pass.
pub(super) struct PendingChecks {
    pub owner: TagId,
    pub checks: Vec<CheckConfig>,
}

/// The alarm tags of `owner`'s checks, numbered from `next` on. A check whose name is not
/// usable (empty, with `/`, a duplicate) gets none: [`validate_checks`] reports it in the
/// second pass. An alarm path that is already a tag of the device is reported here.
pub(super) fn alarm_defs(
    owner: &TagDef,
    checks: &[CheckConfig],
    device_paths: &HashSet<&str>,
    next: u32,
    errors: &mut Vec<ConfigError>,
) -> Vec<TagDef> {
    let mut seen = HashSet::new();
    let mut defs = Vec::new();
    for check in checks {
        let name = check
            .name
            .as_ref()
            .map_or_else(|| check.kind.value.name().to_string(), |n| n.value.clone());
        if name.trim().is_empty() || name.contains('/') || !seen.insert(name.clone()) {
            continue;
        }
        let path = alarm_path(&owner.path.tag, &name);
        if device_paths.contains(path.as_str()) {
            let message = format!(
                "the alarm of check `{name}` would be `{}/{path}`, which is already a tag; rename the check or the tag",
                owner.path.device
            );
            errors.push(match &check.name {
                Some(n) => n.error(message),
                None => check.kind.error(message),
            });
            continue;
        }
        let acked = format!("{path}{ACKED}");
        if device_paths.contains(acked.as_str()) {
            let message = format!(
                "the acknowledgement of check `{name}` would be `{}/{acked}`, which is already a tag; rename the check or the tag",
                owner.path.device
            );
            errors.push(match &check.name {
                Some(n) => n.error(message),
                None => check.kind.error(message),
            });
            continue;
        }
        // The alarm, then its acknowledged state (writable: `true` acknowledges).
        for (path, writable, address) in [
            (path, false, format!("alarm: {}", check.kind.value)),
            (
                acked,
                true,
                format!("alarm acknowledged: {}", check.kind.value),
            ),
        ] {
            let local = next + defs.len() as u32;
            defs.push(TagDef {
                id: TagId(local),
                device: owner.device,
                path: TagPath {
                    device: owner.path.device.clone(),
                    tag: path.into(),
                },
                local,
                data_type: DataType::Boolean,
                raw_type: DataType::Boolean,
                units: None,
                // Filled in by `validate` from the validated check.
                description: None,
                scaling: None,
                range: None,
                deadband: None,
                writable,
                historized: owner.historized,
                address: address.into(),
            });
        }
    }
    defs
}

/// Validates every tag's checks against the whole tag table, and describes each check in
/// its alarm tag. Returns the checks without errors.
pub(super) fn validate(
    tag_defs: &mut [TagDef],
    pending: Vec<PendingChecks>,
    errors: &mut Vec<ConfigError>,
) -> (Vec<CheckSpec>, Vec<ConditionDef>) {
    let by_path: HashMap<String, usize> = tag_defs
        .iter()
        .enumerate()
        .map(|(i, t)| (t.path.to_string(), i))
        .collect();
    let mut specs = Vec::new();
    let mut conditions = Vec::new();
    let mut described = Vec::new();
    {
        let defs: &[TagDef] = tag_defs;
        let lookup = |p: &str| by_path.get(p).and_then(|&i| defs.get(i));
        for p in pending {
            let Some(owner) = defs.get(p.owner.index()) else {
                continue;
            };
            for spec in validate_checks(owner, &p.checks, lookup, errors) {
                let alarm = format!(
                    "{}/{}",
                    owner.path.device,
                    alarm_path(&owner.path.tag, &spec.name)
                );
                if let Some(&i) = by_path.get(&alarm) {
                    described.push((i, address(&spec), description(owner, &spec)));
                }
                if let Some(&i) = by_path.get(&format!("{alarm}{ACKED}")) {
                    let what = "acknowledged; write true to acknowledge".to_string();
                    described.push((i, format!("{} acknowledged", address(&spec)), what));
                }
                let config = p.checks.iter().find(|c| {
                    c.name
                        .as_ref()
                        .map_or(c.kind.value.name(), |n| n.value.as_str())
                        == spec.name.as_ref()
                });
                if let Some(config) = config {
                    conditions.push(condition_of(owner, config, &spec, errors));
                }
                specs.push(spec);
            }
        }
    }
    for (i, address, description) in described {
        if let Some(def) = tag_defs.get_mut(i) {
            def.address = address.into();
            def.description = Some(description.into());
        }
    }
    (specs, conditions)
}

fn span(us: i64) -> String {
    if us > 0 && us % 3_600_000_000 == 0 {
        format!("{}h", us / 3_600_000_000)
    } else if us > 0 && us % 60_000_000 == 0 {
        format!("{}m", us / 60_000_000)
    } else if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}µs")
    }
}

fn window(w: Window) -> String {
    match w {
        Window::Samples(n) => format!("{n} samples"),
        Window::Duration(us) => span(us),
    }
}

/// What `uaedge tags` shows in the ADDRESS column: `alarm: spike > 6 MAD`.
fn address(spec: &CheckSpec) -> String {
    let cond = match &spec.params {
        CheckParams::Limits { lo, hi, .. } => match (lo, hi) {
            (Some(l), Some(h)) => format!("outside [{l}, {h}]"),
            (None, Some(h)) => format!("> {h}"),
            (Some(l), None) => format!("< {l}"),
            (None, None) => String::new(),
        },
        CheckParams::RateOfChange {
            max_per_second,
            window: w,
            ..
        } => format!("> {max_per_second}/s over {}", window(*w)),
        CheckParams::Zscore {
            threshold,
            window: w,
            ..
        } => format!("> {threshold}σ over {}", window(*w)),
        CheckParams::Flatline { epsilon, span: s } => format!("±{epsilon} for {}", flat(*s)),
        CheckParams::Spike {
            threshold,
            window: w,
            ..
        } => format!("> {threshold} MAD over {}", window(*w)),
    };
    format!("alarm: {} {cond}", spec.kind())
}

fn flat(s: FlatSpan) -> String {
    match s {
        FlatSpan::Duration(us) => span(us),
        FlatSpan::Samples(n) => format!("{n} samples"),
    }
}

/// The OPC UA description of an alarm tag: what it watches, in a sentence.
fn description(owner: &TagDef, spec: &CheckSpec) -> String {
    let what = match &spec.params {
        CheckParams::Limits { lo, hi, hysteresis } => {
            let band = match (lo, hi) {
                (Some(l), Some(h)) => format!("outside [{l}, {h}]"),
                (None, Some(h)) => format!("above {h}"),
                (Some(l), None) => format!("below {l}"),
                (None, None) => String::new(),
            };
            format!("the value is {band} (clears {hysteresis} inside)")
        }
        CheckParams::RateOfChange {
            max_per_second,
            window: w,
            ..
        } => format!(
            "the value changes faster than {max_per_second}/s over {}",
            window(*w)
        ),
        CheckParams::Zscore {
            threshold,
            window: w,
            ..
        } => format!(
            "a value is more than {threshold} standard deviations from the mean of the last {}",
            window(*w)
        ),
        CheckParams::Flatline { epsilon, span: s } => format!(
            "the value stays within ±{epsilon} for {} (a stuck sensor)",
            flat(*s)
        ),
        CheckParams::Spike {
            threshold,
            window: w,
            ..
        } => format!(
            "a value is more than {threshold} MADs from the median of the last {}",
            window(*w)
        ),
    };
    let debounce = match spec.debounce {
        Debounce::Delay(0) => String::new(),
        Debounce::Delay(us) => format!(", for {}", span(us)),
        Debounce::Hits(n) => format!(", for {n} samples in a row"),
    };
    let reaction = spec.reaction.as_ref().map_or_else(String::new, |r| {
        format!("; on alarm uaedge writes {} to {}", r.value, r.path)
    });
    format!(
        "Alarm `{}` ({} check) on {}: true while {what}{debounce}{reaction}",
        spec.name,
        spec.kind(),
        owner.path.tag
    )
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::model::TagId;

    const TWO_DEVICES: &str = r#"
devices:
  - name: press
    driver: profinet-sim
    options: { station: press-1 }
    tags:
      - name: pressure
        type: float32
        address: "in:1.1:0"
        checks:
          - { kind: spike, window_samples: 101, threshold: 6 }
          - { kind: limits, name: high, hi: 120, hysteresis: 2, delay: 2s,
              reaction: { write: { tag: line/run, value: false } } }
      - { name: count, type: uint32, address: "in:1.1:4" }
  - name: line
    driver: enip-sim
    tags:
      - { name: run, type: bool, address: "Run", writable: true }
      - name: speed
        type: float32
        address: "Speed"
        checks: [{ kind: flatline, epsilon: 0.01, duration: 5m }]
"#;

    #[test]
    fn alarm_tags_follow_each_devices_driver_tags_with_dense_ids() {
        let mut c = Config::parse("t.yaml", TWO_DEVICES).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<String> = c.tag_defs.iter().map(|t| t.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "press/pressure",
                "press/count",
                "press/pressure/Alarms/spike",
                "press/pressure/Alarms/spike/Acked",
                "press/pressure/Alarms/high",
                "press/pressure/Alarms/high/Acked",
                "line/run",
                "line/speed",
                "line/speed/Alarms/flatline",
                "line/speed/Alarms/flatline/Acked",
            ]
        );
        for (i, t) in c.tag_defs.iter().enumerate() {
            assert_eq!(t.id, TagId(i as u32), "{}", t.path);
        }
        let [press, line] = &c.device_defs[..] else {
            panic!("two devices")
        };
        assert_eq!(
            (press.first_tag, press.driver_tags, press.tag_count),
            (0, 2, 6)
        );
        assert_eq!(
            (line.first_tag, line.driver_tags, line.tag_count),
            (6, 2, 4)
        );
        assert!(press.is_alarm_tag(TagId(2)) && !press.is_alarm_tag(TagId(1)));

        let spike = &c.tag_defs[2];
        assert_eq!(spike.data_type, uaedge_driver::DataType::Boolean);
        assert!(!spike.writable);
        assert_eq!(&*spike.address, "alarm: spike > 6 MAD over 101 samples");
        let acked = &c.tag_defs[3];
        assert!(acked.writable, "true acknowledges");
        assert_eq!(&*acked.path.tag, "pressure/Alarms/spike/Acked");
        assert_eq!(&*c.tag_defs[4].address, "alarm: limits > 120");
        assert!(
            c.tag_defs[4]
                .description
                .as_deref()
                .is_some_and(|d| d.contains("for 2s") && d.contains("writes false to line/run")),
            "{:?}",
            c.tag_defs[4].description
        );
        assert_eq!(&*c.tag_defs[8].address, "alarm: flatline ±0.01 for 5m");

        // Checks point at their owner; the reaction at a tag of the later device.
        assert_eq!(c.checks.len(), 3);
        assert_eq!(c.checks[1].tag, TagId(0));
        assert_eq!(c.checks[1].reaction.as_ref().map(|r| r.tag), Some(TagId(6)));
        assert_eq!(c.checks[2].tag, TagId(7));

        // The table starts alarms Good and false, the driver's tags Bad until read.
        let table = c.take_tag_table();
        let alarm = table.state(TagId(2)).expect("state");
        assert_eq!(alarm.value, Some(uaedge_driver::Value::Boolean(false)));
        assert!(alarm.quality.is_good());
        assert!(table.state(TagId(0)).is_some_and(|s| s.quality.is_bad()));
    }

    #[test]
    fn an_alarm_path_that_is_already_a_tag_is_an_error() {
        let yaml = r#"
devices:
  - name: line
    driver: enip-sim
    tags:
      - { name: speed, type: float32, address: "Speed", checks: [{ kind: limits, hi: 5 }] }
      - { name: speed/Alarms/limits, type: bool, address: "X" }
"#;
        let Err(e) = Config::parse("t.yaml", yaml) else {
            panic!("accepted")
        };
        assert!(
            e.to_string()
                .contains("would be `line/speed/Alarms/limits`, which is already a tag"),
            "{e}"
        );
    }
}
