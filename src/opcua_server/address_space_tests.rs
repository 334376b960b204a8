//! Unit tests of `address_space.rs` (included with `#[path]`).

use super::*;
use crate::conditions::ConditionBook;
use crate::config::Config;

/// Names chosen so that a folder's children are not neighbours in name order
/// (`b` < `b-x` < `b/c`), with an alarm under a tag and a tag in nested folders.
const CONFIG: &str = r#"
devices:
  - name: d
    driver: enip-sim
    tags:
      - { name: a/b, type: int32, address: X1 }
      - { name: a/b-x, type: int32, address: X2, units: bar }
      - { name: a/b/c, type: int32, address: X3, range: [0, 10] }
      - { name: a/e/f/g, type: int32, address: X4 }
      - { name: top, type: float64, address: X5, units: "°C", range: [0, 100], writable: true, checks: [{ name: high, kind: limits, hi: 10 }] }
  - name: other
    driver: enip-sim
    tags:
      - { name: t, type: bool, address: Y1 }
"#;

/// The table and its conditions.
fn view() -> (TagTable, ConditionBook) {
    let mut config = Config::parse("t.yaml", CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let book = ConditionBook::new(
        std::mem::take(&mut config.conditions),
        &Default::default(),
        None,
    );
    (config.take_tag_table(), book)
}

/// Every node reachable from the root, each once.
fn walk(space: &Space) -> Vec<UaNode> {
    let mut seen = vec![UaNode::Root];
    let mut i = 0;
    while let Some(node) = seen.get(i).cloned() {
        for r in space.references(&node) {
            if let (ReferenceDirection::Forward, Target::Ours(t)) = (r.direction, r.target) {
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
        }
        i += 1;
    }
    seen
}

fn name(space: &Space, node: &UaNode) -> String {
    match &space.node_id(node).identifier {
        opcua::types::Identifier::String(s) => s.as_ref().to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_node_is_found_again_from_its_node_id_and_nothing_else_is() {
    let (table, book) = view();
    let space = Space {
        ns: 2,
        table: &table,
        conditions: &book,
        historizing: false,
    };
    let nodes = walk(&space);
    let names: Vec<String> = nodes.iter().map(|n| name(&space, n)).collect();
    for (node, s) in nodes.iter().zip(&names) {
        assert_eq!(
            space.node(&NodeId::new(2, s.clone())).as_ref(),
            Some(node),
            "{s}"
        );
        assert!(space.build(node).is_some(), "{s}");
    }
    for expected in [
        "d/a/",
        "d/a/b",
        "d/a/b-x",
        "d/a/b/c",
        "d/a/e/",
        "d/a/e/f/",
        "d/a/e/f/g",
        "d/top",
        "d/top/Alarms/",
        "d/top/Alarms/high",
        "d/top//EngineeringUnits",
        "d/top//EURange",
        "d/a/b-x//EngineeringUnits",
        "d/a/b/c//EURange",
        "d//Status",
        "d//Status/Connected",
        "other",
        "/uaedge/Runtime/SamplesIn",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not reached: {names:?}"
        );
    }
    // Five tags, one alarm and its Acked, one in `other`.
    assert_eq!(
        nodes.iter().filter(|n| matches!(n, UaNode::Tag(_))).count(),
        8
    );
    for missing in [
        "d/a/b/",
        "d/a",
        "d/a/e",
        "d/nope",
        "d/a/b//EngineeringUnits",
        "d/top//Other",
        "d//Status/Nope",
        "d//Nope",
        "nope",
        "nope/t",
        "/uaedge/Runtime/Nope",
        "d/",
    ] {
        assert_eq!(space.node(&NodeId::new(2, missing)), None, "{missing}");
    }
    assert_eq!(
        space.node(&NodeId::new(3, "d/a/b")),
        None,
        "another namespace"
    );
    assert_eq!(space.node(&NodeId::new(2, 7u32)), None, "a numeric NodeId");
}

#[test]
fn every_hierarchical_reference_has_its_inverse() {
    let (table, book) = view();
    let space = Space {
        ns: 2,
        table: &table,
        conditions: &book,
        historizing: false,
    };
    for node in walk(&space) {
        for r in space.references(&node) {
            let Target::Ours(target) = &r.target else {
                continue;
            };
            let back = space.references(target).into_iter().any(|b| {
                b.kind == r.kind
                    && b.direction != r.direction
                    && matches!(&b.target, Target::Ours(n) if *n == node)
            });
            assert!(
                back,
                "{} -> {} has no way back",
                name(&space, &node),
                name(&space, target)
            );
        }
    }
}

#[test]
fn a_tag_holds_its_children_as_components_and_folders_organize_theirs() {
    let (table, book) = view();
    let space = Space {
        ns: 2,
        table: &table,
        conditions: &book,
        historizing: false,
    };
    let top = space
        .node(&NodeId::new(2, "d/top"))
        .unwrap_or_else(|| panic!("top"));
    let refs = space.references(&top);
    let kinds = |want: ReferenceTypeId| {
        refs.iter()
            .filter(|r| r.kind == want && r.direction == ReferenceDirection::Forward)
            .count()
    };
    assert_eq!(
        kinds(ReferenceTypeId::HasComponent),
        2,
        "the Alarms folder and the condition"
    );
    assert_eq!(
        kinds(ReferenceTypeId::HasCondition),
        1,
        "the condition `high`"
    );
    assert_eq!(
        kinds(ReferenceTypeId::HasProperty),
        2,
        "EngineeringUnits and EURange"
    );
    assert_eq!(
        space.type_definition(&top),
        NodeId::from(VariableTypeId::AnalogItemType)
    );
    let folder = space
        .node(&NodeId::new(2, "d/a/"))
        .unwrap_or_else(|| panic!("a/"));
    let children: Vec<String> = space
        .references(&folder)
        .iter()
        .filter_map(|r| match (&r.target, r.kind) {
            (Target::Ours(n), ReferenceTypeId::Organizes)
                if r.direction == ReferenceDirection::Forward =>
            {
                Some(name(&space, n))
            }
            _ => None,
        })
        .collect();
    assert_eq!(children, ["d/a/b", "d/a/b-x", "d/a/e/"]);
    let (browse, _) = space.names(&UaNode::Property(TagId(0), Property::EURange));
    assert_eq!(
        browse,
        QualifiedName::new(0, "EURange"),
        "a standard property name"
    );
}

#[test]
fn a_child_looked_up_by_name_is_what_listing_the_references_finds() {
    let (table, book) = view();
    let space = Space {
        ns: 2,
        table: &table,
        conditions: &book,
        historizing: false,
    };
    let key = |refs: Vec<Ref>| {
        let mut keys: Vec<String> = refs
            .into_iter()
            .filter(|r| r.direction == ReferenceDirection::Forward)
            .map(|r| match r.target {
                Target::Ours(n) => format!("{:?} {}", r.kind, name(&space, &n)),
                Target::Core(id) => format!("{:?} {id}", r.kind),
            })
            .collect();
        keys.sort();
        keys
    };
    let mut names: Vec<QualifiedName> = walk(&space).iter().map(|n| space.names(n).0).collect();
    names.extend([
        QualifiedName::new(2, "nope"),
        QualifiedName::new(3, "b"),
        QualifiedName::new(0, "b"),
    ]);
    let mut looked_up = 0;
    for node in walk(&space) {
        for wanted in &names {
            let Some(by_name) = space.forward_named(&node, wanted) else {
                continue;
            };
            looked_up += 1;
            let listed: Vec<Ref> = space
                .references(&node)
                .into_iter()
                .filter(|r| match &r.target {
                    Target::Ours(n) => space.names(n).0 == *wanted,
                    Target::Core(_) => true,
                })
                .collect();
            let by_name: Vec<Ref> = by_name
                .into_iter()
                .filter(|r| match &r.target {
                    Target::Ours(n) => space.names(n).0 == *wanted,
                    Target::Core(_) => true,
                })
                .collect();
            assert_eq!(
                key(by_name),
                key(listed),
                "{} / {wanted}",
                name(&space, &node)
            );
        }
    }
    assert!(looked_up > 100, "{looked_up}");
}
