use super::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Driver {
    Modbus,
    Sim,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tag {
    address: u16,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Device {
    name: String,
    driver: Driver,
    #[serde(default)]
    tags: Vec<Tag>,
    options: Option<RawNode>,
}

#[derive(Debug, Deserialize)]
struct Plant {
    name: String,
    devices: Vec<Device>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModbusOptions {
    unit_id: u8,
}

/// Parses with a duration-like rule, to show `custom` errors get located.
#[derive(Debug, PartialEq)]
struct Millis(u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n = s.strip_suffix("ms").and_then(|n| n.parse().ok());
        n.map(Millis)
            .ok_or_else(|| de::Error::custom(format!("bad duration {s:?}")))
    }
}

#[derive(Debug, Deserialize, PartialEq)]
enum Scale {
    None,
    Gain(f64),
    Linear { k: f64, d: f64 },
    Pair(i32, i32),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Any {
    Nothing(()),
    Flag(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Any>),
    Map(BTreeMap<String, Any>),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Source {
    Const { value: f64 },
    Ramp { from: i64, to: i64 },
}

fn load<T: de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    Document::parse("cfg.yaml", text)?.root().deserialize()
}

fn parse_err(text: &str) -> String {
    Document::parse("cfg.yaml", text).unwrap_err().to_string()
}

/// Rows of `Type: yaml => expected error`, one line per case.
macro_rules! assert_errs {
        ($($ty:ty: $text:expr => $want:expr;)*) => {$(
            assert_eq!(load::<$ty>($text).unwrap_err().to_string(), $want, "{:?}", $text);
        )*};
    }

const PLANT: &str = "\
name: plant
devices:
  - name: plc1
    driver: modbus
    tags:
      - address: 40001
      - adress: 40002
";

#[test]
fn unknown_field_is_located_at_the_key() {
    let e = load::<Plant>(PLANT).unwrap_err();
    assert_eq!(
        (e.line, e.col, e.path.as_str()),
        (7, 9, "devices[0].tags[1].adress")
    );
    let want = "cfg.yaml:7:9: devices[0].tags[1].adress: unknown field `adress`, expected";
    assert!(e.to_string().starts_with(want), "{e}");
}

#[test]
fn nested_structs_deserialize() {
    let p: Plant = load(&PLANT.replace("adress", "address")).unwrap();
    let d = &p.devices[0];
    assert_eq!(
        (p.name.as_str(), d.name.as_str(), &d.driver),
        ("plant", "plc1", &Driver::Modbus)
    );
    assert_eq!((d.tags[1].address, &d.tags[0].name), (40002, &None));
    assert!(d.options.is_none());
}

#[test]
fn type_range_and_missing_field_errors() {
    let tag = |v: &str| {
        format!("name: p\ndevices:\n  - name: d\n    driver: sim\n    tags: [{{address: {v}}}]\n")
    };
    assert_errs! {
        Plant: &tag("70000") => "cfg.yaml:5:22: devices[0].tags[0].address: 70000 is out of range for u16";
        Plant: &tag("\"12\"") => "cfg.yaml:5:22: devices[0].tags[0].address: expected an integer, found string \"12\"";
        Plant: &tag("[1]") => "cfg.yaml:5:22: devices[0].tags[0].address: expected an integer, found a sequence";
        Plant: "name: [x]\ndevices: []" => "cfg.yaml:1:7: name: expected a string, found a sequence";
        Plant: "name: p\ndevices:\n  - name: d\n    tags: []\n" => "cfg.yaml:3:5: devices[0]: missing field `driver`";
        Plant: "name: p\n" => "cfg.yaml:1:1: missing field `devices`";
        bool: "'true'" => "cfg.yaml:1:1: expected a boolean, found string \"true\"";
        i8: "-129" => "cfg.yaml:1:1: -129 is out of range for i8";
        u64: "-99999999999999999999999999999999999999999" => "cfg.yaml:1:1: -99999999999999999999999999999999999999999 is out of range for u64";
        u32: "1.5" => "cfg.yaml:1:1: expected an integer, found float 1.5";
        (u8, u8): "[1, 2, 3]" => "cfg.yaml:1:1: 1 unexpected extra element(s) in sequence of 3";
        BTreeMap<u16, String>: "1: a\nx: b" => "cfg.yaml:2:1: x: expected an integer, found string \"x\"";
        Vec<Millis>: "- 5ms\n- 5 s\n" => "cfg.yaml:2:3: [1]: bad duration \"5 s\"";
    }
}

#[test]
fn custom_deserialize_gets_scalar_text() {
    #[derive(Debug, Deserialize)]
    struct Poll {
        every: Vec<Millis>,
        #[serde(default)]
        timeout: Option<Millis>,
    }
    let p: Poll = load("every: [5ms, 10ms]").unwrap();
    assert_eq!((p.every, p.timeout), (vec![Millis(5), Millis(10)], None));
    assert_errs! { Poll: "every: []\ntimeout: 1h" => "cfg.yaml:2:10: timeout: bad duration \"1h\""; }
}

#[test]
fn scalars_resolve_by_core_schema() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct S {
        a: i64,
        b: i32,
        c: f64,
        d: bool,
        e: String,
        f: String,
        g: Option<u8>,
        h: Option<u8>,
        i: Option<String>,
        j: f32,
    }
    let s: S =
        load("a: 0x1F\nb: -0o17\nc: -.inf\nd: TRUE\ne: 123\nf: true\ng: ~\ni: 0x10\nj: 3").unwrap();
    let (e, f, i) = ("123".into(), "true".into(), Some("0x10".into()));
    let want = S {
        a: 31,
        b: -15,
        c: f64::NEG_INFINITY,
        d: true,
        e,
        f,
        g: None,
        h: None,
        i,
        j: 3.0,
    };
    assert_eq!(s, want);
    assert!(load::<f64>(".NaN").unwrap().is_nan());
    assert_eq!(load::<f64>("+1.5e3").unwrap(), 1500.0);
    assert_eq!(load::<String>("!!str 12").unwrap(), "12");
    let m: HashMap<String, u8> = load("1: 2\nx: 3").unwrap();
    assert_eq!(m["1"], 2);
    let m: BTreeMap<u16, String> = load("502: a\n0x10: b").unwrap();
    assert_eq!(m, BTreeMap::from([(502, "a".into()), (16, "b".into())]));
}

#[test]
fn enums() {
    let s: Vec<Scale> =
        load("[None, {Gain: 2}, {Linear: {k: 1.5, d: 0}}, {Pair: [1, 2]}]").unwrap();
    let want = [
        Scale::None,
        Scale::Gain(2.0),
        Scale::Linear { k: 1.5, d: 0.0 },
        Scale::Pair(1, 2),
    ];
    assert_eq!(s, want);
    assert_errs! {
        Vec<Scale>: "- Gain: 1\n- Gian: 2\n" => "cfg.yaml:2:3: [1].Gian: unknown variant `Gian`, expected one of `None`, `Gain`, `Linear`, `Pair`";
        Scale: "Gain" => "cfg.yaml:1:1: this variant needs a value: write it as `variant: value`";
        Scale: "None: 3" => "cfg.yaml:1:7: None: expected no value, found integer 3";
        Driver: "modbsu" => "cfg.yaml:1:1: unknown variant `modbsu`, expected `modbus` or `sim`";
    }
    let a: Any = load("[~, true, -3, 2.5, x, '7', {k: [1]}]").unwrap();
    let map = BTreeMap::from([("k".to_string(), Any::List(vec![Any::Int(1)]))]);
    let (t, s) = (Any::Text("x".into()), Any::Text("7".into()));
    let want = [
        Any::Nothing(()),
        Any::Flag(true),
        Any::Int(-3),
        Any::Float(2.5),
        t,
        s,
        Any::Map(map),
    ];
    assert_eq!(a, Any::List(want.into()));
    let src: Vec<Source> =
        load("- {kind: const, value: 1}\n- {kind: ramp, from: 0, to: 9}\n").unwrap();
    assert_eq!(
        src,
        [
            Source::Const { value: 1.0 },
            Source::Ramp { from: 0, to: 9 }
        ]
    );
}

const TWO_DEVICES: &str = "\
name: p
devices:
  - name: a
    driver: sim
  - name: b
    driver: modbus
    options:
      unit_id: 300
";

#[test]
fn raw_node_field_is_deserialized_later_with_full_path() {
    let p: Plant = load(TWO_DEVICES).unwrap();
    let opts = p.devices[1].options.as_ref().unwrap();
    assert_eq!(
        (opts.path(), opts.pos()),
        ("devices[1].options", Pos { line: 8, col: 7 })
    );
    let e = opts.deserialize::<ModbusOptions>().unwrap_err().to_string();
    assert_eq!(
        e,
        "cfg.yaml:8:16: devices[1].options.unit_id: 300 is out of range for u8"
    );
    let unit = opts.get("unit_id").unwrap();
    assert_eq!(unit.deserialize::<u16>().unwrap(), 300);
    let e = unit.error("taken").to_string();
    assert_eq!(e, "cfg.yaml:8:16: devices[1].options.unit_id: taken");
    let ok = Document::parse("x.yaml", "unit_id: 3").unwrap().root();
    assert_eq!(ok.deserialize::<ModbusOptions>().unwrap().unit_id, 3);
}

#[test]
fn raw_node_elements_collect_all_errors() {
    #[derive(Deserialize)]
    struct Loose {
        devices: Vec<RawNode>,
    }
    let text = "\
devices:
  - {name: a, driver: sim}
  - {name: b, driver: opcua}
  - {name: c, driver: sim, tags: [{address: -1}]}
  - {name: d, driver: sim}
  - {driver: sim}
";
    let loose: Loose = load(text).unwrap();
    let errors: Vec<String> = (loose.devices.iter())
        .filter_map(|d| d.deserialize::<Device>().err())
        .map(|e| e.to_string())
        .collect();
    let want = [
        "cfg.yaml:3:23: devices[1].driver: unknown variant `opcua`, expected `modbus` or `sim`",
        "cfg.yaml:4:45: devices[2].tags[0].address: -1 is out of range for u16",
        "cfg.yaml:6:5: devices[4]: missing field `name`",
    ];
    assert_eq!(errors, want);
}

#[test]
fn raw_node_navigation() {
    let root = Document::parse("cfg.yaml", TWO_DEVICES).unwrap().root();
    let devices = root.get("devices").unwrap();
    assert_eq!((devices.len(), root.len(), root.path()), (2, 2, ""));
    assert_eq!(devices.pos(), Pos { line: 3, col: 3 });
    let b = devices.index(1).unwrap();
    assert_eq!((b.path(), b.pos()), ("devices[1]", Pos { line: 5, col: 5 }));
    assert!(devices.index(2).is_none() && root.get("nope").is_none() && b.index(0).is_none());
    let keys: Vec<String> = b.entries().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["name", "driver", "options"]);
    assert!(!b.is_null() && RawNode::default().is_null());
    let doc = Document::parse("cfg.yaml", "\"a.b\": {x: 1}").unwrap();
    assert_eq!(
        doc.root().get("a.b").unwrap().get("x").unwrap().path(),
        "[\"a.b\"].x"
    );
}

#[test]
fn raw_node_from_another_deserializer_is_an_error() {
    use serde::de::IntoDeserializer;
    let d: de::value::UnitDeserializer<de::value::Error> = ().into_deserializer();
    let e = <RawNode as Deserialize>::deserialize(d)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("only be deserialized by the YAML config loader"),
        "{e}"
    );
}

#[test]
fn spanned_carries_position_and_path() {
    #[derive(Deserialize)]
    struct Tagged {
        tags: Vec<Spanned<String>>,
        scan: Option<Spanned<u32>>,
    }
    let t: Tagged = load("scan: 7\ntags:\n  - a\n  - 'b c'\n").unwrap();
    let b = &t.tags[1];
    assert_eq!(
        (b.value.as_str(), b.path.as_str(), b.pos),
        ("b c", "tags[1]", Pos { line: 4, col: 5 })
    );
    assert_eq!(
        b.error("bad address").to_string(),
        "cfg.yaml:4:5: tags[1]: bad address"
    );
    assert_eq!(*t.scan.unwrap(), 7);
}

#[test]
fn document_level_errors_and_edge_cases() {
    assert_eq!(
        parse_err("a: 1\nb: [1, 2\nc: 3\n"),
        "cfg.yaml:3:2: illegal placement of ':' indicator"
    );
    assert_eq!(
        parse_err("a: 1\nb:\n  x: 1\n  x: 2\n"),
        "cfg.yaml:4:3: b.x: duplicate key `x`"
    );
    // Past the first few keys duplicates are found through a set; same answer.
    let many: String = (0..40).map(|i| format!("  k{i}: {i}\n")).collect();
    assert_eq!(
        parse_err(&format!("a: 1\nb:\n{many}  k7: x\n")),
        "cfg.yaml:43:3: b.k7: duplicate key `k7`"
    );
    let seq = "a:\n  - {x: 1}\n  - {x: 1, y: 2, x: 3}\n";
    assert_eq!(parse_err(seq), "cfg.yaml:3:18: a[1].x: duplicate key `x`");
    let multi = "cfg.yaml:2:1: multiple YAML documents in one file are not supported";
    assert_eq!(parse_err("a: 1\n---\nb: 2\n"), multi);
    assert_eq!(
        parse_err("a: *nope"),
        "cfg.yaml:1:4: while parsing node, found unknown anchor"
    );
    assert_eq!(
        parse_err("[a]: 1"),
        "cfg.yaml:1:1: mapping keys must be scalars"
    );
    for empty in ["", "# only a comment\n", "---\n"] {
        assert!(Document::parse("cfg.yaml", empty).unwrap().root().is_null());
    }
    assert!(load::<Option<Plant>>("").unwrap().is_none());
    let t: HashMap<String, Vec<Tag>> = load("base: &b [{address: 1}]\ncopy: *b\n").unwrap();
    assert_eq!(t["copy"][0].address, 1);
}
