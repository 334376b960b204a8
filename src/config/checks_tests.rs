//! The `checks:` schema: what it accepts, and where its errors point.

use super::*;
use crate::config::yaml::Document;
use crate::model::{TagDef, TagId};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Holder {
    checks: Vec<CheckConfig>,
}

fn def(id: u32, device: &str, tag: &str, data_type: DataType, writable: bool) -> TagDef {
    TagDef {
        writable,
        ..TagDef::plain(id, device, tag, data_type)
    }
}

fn tags() -> Vec<TagDef> {
    vec![
        def(0, "press", "pressure", DataType::Double, false),
        def(1, "press", "pump/run", DataType::Boolean, true),
        def(2, "line", "speed", DataType::Int16, true),
        def(3, "line", "status", DataType::Int16, false),
    ]
}

/// Parses `checks:` YAML for `press/pressure` and validates it.
fn load(yaml: &str) -> Result<Vec<CheckSpec>, Vec<ConfigError>> {
    let doc = Document::parse("t.yaml", yaml).map_err(|e| vec![e])?;
    let holder: Holder = doc.root().deserialize().map_err(|e| vec![e])?;
    let tags = tags();
    let lookup = |p: &str| tags.iter().find(|t| t.path.to_string() == p);
    let mut errors = Vec::new();
    let specs = validate_checks(&tags[0], &holder.checks, lookup, &mut errors);
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

fn one_error(yaml: &str) -> ConfigError {
    match load(yaml) {
        Ok(_) => panic!("expected an error for {yaml}"),
        Err(mut e) => {
            assert_eq!(e.len(), 1, "{e:?}");
            e.remove(0)
        }
    }
}

#[test]
fn full_example_validates() {
    let specs = load(
        "checks:
  - kind: limits
    name: high
    hi: 120
    hysteresis: 2
    delay: 2s
    reaction: { write: { tag: pump/run, value: false } }
  - { kind: zscore, window: 60s, threshold: 4, min_samples: 20, hits: 3 }
  - { kind: flatline, epsilon: 0.01, duration: 5m }
  - { kind: spike, window_samples: 101, threshold: 6 }
  - { kind: rate_of_change, window: 10s, max_per_second: 5,
      reaction: { write: { tag: line/speed, value: 0 } } }
",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(specs.len(), 5);
    let s = &specs[0];
    assert_eq!((&*s.name, s.tag), ("high", TagId(0)));
    assert_eq!(
        s.params,
        CheckParams::Limits {
            lo: None,
            hi: Some(120.0),
            hysteresis: 2.0
        }
    );
    assert_eq!(s.debounce, Debounce::Delay(2_000_000));
    let r = s
        .reaction
        .as_ref()
        .map(|r| (r.tag, &*r.path, r.value.clone()));
    assert_eq!(r, Some((TagId(1), "press/pump/run", Value::Boolean(false))));
    assert_eq!(&*specs[1].name, "zscore");
    assert_eq!(specs[1].debounce, Debounce::Hits(3));
    assert_eq!(
        specs[1].params,
        CheckParams::Zscore {
            threshold: 4.0,
            hysteresis: 0.0,
            min_samples: 20,
            min_spread: 0.0,
            window: Window::Duration(60_000_000)
        }
    );
    assert_eq!(
        specs[2].params,
        CheckParams::Flatline {
            epsilon: 0.01,
            span: FlatSpan::Duration(300_000_000)
        }
    );
    assert!(matches!(
        specs[3].params,
        CheckParams::Spike {
            min_samples: 10,
            window: Window::Samples(101),
            ..
        }
    ));
    // Another device's tag by its full path; the value takes that tag's type.
    let r = specs[4].reaction.as_ref().map(|r| (r.tag, r.value.clone()));
    assert_eq!(r, Some((TagId(2), Value::Int16(0))));
    assert!(matches!(
        specs[4].params,
        CheckParams::RateOfChange {
            window: Window::Duration(10_000_000),
            ..
        }
    ));
}

#[test]
fn rate_defaults_to_consecutive_samples() {
    let specs = load("checks: [{ kind: rate_of_change, max_per_second: 1 }]").unwrap_or_default();
    assert!(matches!(
        specs.first().map(|s| &s.params),
        Some(CheckParams::RateOfChange {
            window: Window::Samples(2),
            ..
        })
    ));
}

#[test]
fn errors_point_at_the_offending_key() {
    let e = one_error("checks:\n  - kind: limits\n    lo: 5\n    hi: 3\n");
    assert_eq!((e.line, e.path.as_str()), (4, "checks[0].hi"));
    assert!(e.message.contains("greater than lo"), "{}", e.message);

    let e = one_error("checks:\n  - kind: limits\n    hi: 3\n    epsilon: 0.1\n");
    assert_eq!((e.line, e.path.as_str()), (4, "checks[0].epsilon"));
    assert!(e.message.contains("does not apply to a limits check"));

    let e = one_error("checks:\n  - kind: limits\n    hi: 3\n    bogus: 1\n");
    assert_eq!(e.line, 4);
    assert!(e.message.contains("bogus"), "{}", e.message);

    let e = one_error("checks:\n  - kind: wobble\n");
    assert_eq!((e.line, e.path.as_str()), (2, "checks[0].kind"));

    let e = one_error("checks:\n  - kind: limits\n    lo: 0\n    hi: 10\n    hysteresis: 5\n");
    assert_eq!(e.path, "checks[0].hysteresis");

    let e = one_error("checks:\n  - kind: zscore\n    window: 10s\n");
    assert_eq!((e.line, e.path.as_str()), (2, "checks[0].kind"));
    assert!(e.message.contains("needs `threshold`"));

    let e = one_error("checks:\n  - kind: zscore\n    threshold: 3\n");
    assert!(e.message.contains("window"), "{}", e.message);

    let e = one_error(
        "checks:\n  - kind: spike\n    threshold: 3\n    window_samples: 5\n    min_samples: 6\n",
    );
    assert_eq!(e.path, "checks[0].min_samples");

    let e = one_error("checks:\n  - kind: limits\n    hi: 1\n    delay: 1s\n    hits: 2\n");
    assert_eq!(e.path, "checks[0].delay");

    let e = one_error("checks:\n  - { kind: zscore, threshold: 3, window_samples: 0 }\n");
    assert_eq!(e.path, "checks[0].window_samples");

    let e = one_error("checks:\n  - { kind: flatline, epsilon: 0.1 }\n");
    assert!(e.message.contains("duration"));
}

#[test]
fn duplicate_names_and_bad_names() {
    let e = one_error("checks:\n  - { kind: limits, hi: 1 }\n  - { kind: limits, lo: 0 }\n");
    assert_eq!((e.line, e.path.as_str()), (3, "checks[1].kind"));
    assert!(e.message.contains("duplicate check name `limits`"));
    let e = one_error("checks:\n  - { kind: limits, hi: 1, name: a/b }\n");
    assert_eq!(e.path, "checks[0].name");
}

#[test]
fn reaction_target_must_exist_be_writable_and_fit() {
    let at = |tag: &str, value: &str| {
        one_error(&format!(
            "checks:\n  - kind: limits\n    hi: 1\n    reaction:\n      write:\n        tag: {tag}\n        value: {value}\n"
        ))
    };
    let e = at("nowhere", "1");
    assert_eq!(
        (e.line, e.path.as_str()),
        (6, "checks[0].reaction.write.tag")
    );
    assert!(e.message.contains("not found"));
    let e = at("line/status", "1");
    assert!(e.message.contains("not writable"), "{}", e.message);
    let e = at("line/speed", "70000");
    assert_eq!(
        (e.line, e.path.as_str()),
        (7, "checks[0].reaction.write.value")
    );
    let e = at("line/speed", "fast");
    assert!(e.message.contains("does not fit"), "{}", e.message);
}

#[test]
fn checks_need_a_numeric_tag() {
    let doc = Document::parse("t.yaml", "checks: [{ kind: limits, hi: 1 }]")
        .unwrap_or_else(|e| panic!("{e}"));
    let holder: Holder = doc.root().deserialize().unwrap_or_else(|e| panic!("{e}"));
    let owner = def(9, "d", "name", DataType::String, false);
    let mut errors = Vec::new();
    let specs = validate_checks(&owner, &holder.checks, |_| None, &mut errors);
    assert!(specs.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("numeric"));
}
