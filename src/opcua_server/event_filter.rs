//! A decoder for clients' EventFilters that makes a null BrowsePath an empty one.
//!
//! Part 9 selects a condition's ConditionId with TypeDefinitionId ConditionType, no
//! browse path and AttributeId NodeId. node-opcua (and others) send "no browse path" as a
//! null array, which async-opcua 0.19 refuses as BadNodeIdUnknown, and then leaves the
//! clause out of every event's fields, so each later field reaches the client one place
//! off. Decoded here with async-opcua's own decoders, a null path becomes the empty path
//! Part 4 means by it; `type_tree.rs` then accepts it as the ConditionId. Where clauses
//! carry their operands as ExtensionObjects, so SimpleAttributeOperands on their own are
//! decoded here too.
//!
//! Upstream, `validate_select_clause` should read a null BrowsePath as an empty one.
//!
//! Where clauses that compare the EventType with NodeIds are rewritten as OfType tests
//! ([`exact_event_types`]): async-opcua 0.19 evaluates such a comparison as false.

use std::io::Read;
use std::sync::Arc;

use opcua::types::{
    AttributeId, BinaryDecodable, ContentFilter, ContentFilterElement, Context, DataTypeId,
    DynEncodable, ElementOperand, EncodingResult, EventFilter, ExtensionObject, FilterOperator,
    Identifier, LiteralOperand, NodeId, ObjectId, SimpleAttributeOperand, TypeLoader,
    TypeLoaderCollection, TypeLoaderPriority, Variant,
};

/// `loaders` with [`EventFilterPaths`] ahead of them.
pub fn with_event_filter_paths(loaders: &TypeLoaderCollection) -> TypeLoaderCollection {
    let mut out = TypeLoaderCollection::new_empty();
    out.add(Arc::new(EventFilterPaths));
    for loader in loaders {
        out.add(loader.clone());
    }
    out
}

/// See the module docs; it answers only for EventFilter and SimpleAttributeOperand.
pub struct EventFilterPaths;

impl TypeLoader for EventFilterPaths {
    fn load_from_binary(
        &self,
        node_id: &NodeId,
        stream: &mut dyn Read,
        ctx: &Context<'_>,
        _length: Option<usize>,
    ) -> Option<EncodingResult<Box<dyn DynEncodable>>> {
        let Identifier::Numeric(id) = node_id.identifier else {
            return None;
        };
        if node_id.namespace != 0 {
            return None;
        }
        // async-opcua takes a DataType's id for its encoding's too.
        let is = |encoding: ObjectId, data_type: DataTypeId| {
            id == encoding as u32 || id == data_type as u32
        };
        if is(
            ObjectId::EventFilter_Encoding_DefaultBinary,
            DataTypeId::EventFilter,
        ) {
            Some(EventFilter::decode(stream, ctx).map(|mut f| {
                for clause in f.select_clauses.iter_mut().flatten() {
                    empty_path(clause);
                }
                exact_event_types(&mut f.where_clause);
                Box::new(f) as Box<dyn DynEncodable>
            }))
        } else if is(
            ObjectId::SimpleAttributeOperand_Encoding_DefaultBinary,
            DataTypeId::SimpleAttributeOperand,
        ) {
            Some(SimpleAttributeOperand::decode(stream, ctx).map(|mut o| {
                empty_path(&mut o);
                Box::new(o) as Box<dyn DynEncodable>
            }))
        } else {
            None
        }
    }

    fn priority(&self) -> TypeLoaderPriority {
        TypeLoaderPriority::Core
    }
}

/// Decodes `body` as a client's EventFilter (or, with `operand`, a SimpleAttributeOperand)
/// the way the server does; the number of select clauses (1 for an operand), or why it
/// failed. Panics if a null BrowsePath survives: the fuzz target's check
/// (tests/fuzz/fuzz_targets/condition_inputs.rs).
pub fn decode_for_fuzzing(body: &[u8], operand: bool) -> Result<usize, String> {
    let loaders = with_event_filter_paths(&uaedge_opcua_client::hardening::harden(
        &TypeLoaderCollection::new(),
    ));
    // The context holds the same loaders, as the server's does: the ExtensionObjects inside
    // a filter (its operands) decode through the context, and with async-opcua's plain
    // loaders an Argument operand with a huge ValueRank allocated gigabytes (found by the
    // fuzz target; the server was never exposed, its context is hardened).
    let owned =
        opcua::types::ContextOwned::new(Default::default(), loaders.clone(), Default::default());
    let ctx = owned.context();
    let id: NodeId = if operand {
        ObjectId::SimpleAttributeOperand_Encoding_DefaultBinary.into()
    } else {
        ObjectId::EventFilter_Encoding_DefaultBinary.into()
    };
    let decoded = loaders
        .iter()
        .find_map(|l| l.load_from_binary(&id, &mut &body[..], &ctx, None))
        .ok_or("no loader")?
        .map_err(|e| e.to_string())?;
    let any = decoded.as_dyn_any();
    let paths: Vec<bool> = if operand {
        let o = any
            .downcast::<SimpleAttributeOperand>()
            .map_err(|_| "not an operand")?;
        vec![o.browse_path.is_some()]
    } else {
        let f = any.downcast::<EventFilter>().map_err(|_| "not a filter")?;
        f.select_clauses
            .iter()
            .flatten()
            .map(|c| c.browse_path.is_some())
            .collect()
    };
    assert!(paths.iter().all(|p| *p), "a null BrowsePath survived");
    Ok(paths.len())
}

/// The event types uaedge emits, each with those of them that derive from it.
const EMITTED: [(u32, &[u32]); 6] = [
    // ExclusiveLimitAlarmType: its RateOfChange and Deviation subtypes are emitted too.
    (9341, &[9623, 9764]),
    (9623, &[]),
    (9764, &[]),
    (10637, &[]),
    // RefreshStartEventType, RefreshEndEventType.
    (2787, &[]),
    (2788, &[]),
];
const BASE_EVENT_TYPE: u32 = 2041;

/// A condition on an event's type that async-opcua can evaluate.
enum TypeTest {
    OfType(u32),
    Not(Box<TypeTest>),
    And(Box<TypeTest>, Box<TypeTest>),
    Or(Box<TypeTest>, Box<TypeTest>),
}

impl TypeTest {
    /// True for events of exactly type `t`, among the types uaedge emits.
    fn exactly(t: u32, subtypes: &[u32]) -> TypeTest {
        let mut test = TypeTest::OfType(t);
        for &sub in subtypes {
            test = TypeTest::And(
                Box::new(test),
                Box::new(TypeTest::Not(Box::new(TypeTest::OfType(sub)))),
            );
        }
        test
    }

    /// Appends it to `elements` (children after their parent, as Part 4 wants element
    /// operands to point forward); its index.
    fn emit(self, elements: &mut Vec<ContentFilterElement>) -> u32 {
        let at = elements.len();
        elements.push(ContentFilterElement::default());
        let (operator, operands) = match self {
            TypeTest::OfType(t) => (
                FilterOperator::OfType,
                vec![ExtensionObject::from_message(LiteralOperand {
                    value: Variant::from(NodeId::new(0, t)),
                })],
            ),
            TypeTest::Not(a) => (FilterOperator::Not, vec![element(a.emit(elements))]),
            TypeTest::And(a, b) => {
                let (a, b) = (a.emit(elements), b.emit(elements));
                (FilterOperator::And, vec![element(a), element(b)])
            }
            TypeTest::Or(a, b) => {
                let (a, b) = (a.emit(elements), b.emit(elements));
                (FilterOperator::Or, vec![element(a), element(b)])
            }
        };
        elements[at] = ContentFilterElement {
            filter_operator: operator,
            filter_operands: Some(operands),
        };
        at as u32
    }
}

fn element(index: u32) -> ExtensionObject {
    ExtensionObject::from_message(ElementOperand { index })
}

/// The NodeIds an operand names, when it is a literal NodeId in namespace 0.
fn literal_type(operand: &ExtensionObject) -> Option<u32> {
    let literal = operand.inner_as::<LiteralOperand>()?;
    match &literal.value {
        Variant::NodeId(id) if id.namespace == 0 => match id.identifier {
            Identifier::Numeric(n) => Some(n),
            _ => None,
        },
        Variant::ExpandedNodeId(id) if id.node_id.namespace == 0 => match id.node_id.identifier {
            Identifier::Numeric(n) => Some(n),
            _ => None,
        },
        _ => Some(u32::MAX),
    }
}

fn is_event_type(operand: &ExtensionObject) -> bool {
    operand
        .inner_as::<SimpleAttributeOperand>()
        .is_some_and(|o| {
            o.attribute_id == AttributeId::Value as u32
                && o.browse_path.as_deref().is_some_and(|p| {
                    p.len() == 1 && p[0].namespace_index == 0 && p[0].name.as_ref() == "EventType"
                })
        })
}

/// Rewrites `EventType Equals X` and `EventType InList (X, Y, …)`, which async-opcua 0.19
/// never finds true (its comparison knows numbers and Booleans, not NodeIds), into OfType
/// tests with the same answer for every event uaedge emits. asyncua, for one, filters its
/// event subscriptions and event history this way by default.
///
/// Upstream, `ParsedContentFilter::compare_op` should compare NodeIds (and Strings,
/// DateTimes, ByteStrings) for equality.
pub(super) fn exact_event_types(filter: &mut ContentFilter) {
    let Some(elements) = filter.elements.as_mut() else {
        return;
    };
    for i in 0..elements.len() {
        let e = &elements[i];
        if !matches!(
            e.filter_operator,
            FilterOperator::Equals | FilterOperator::InList
        ) {
            continue;
        }
        let ops = e.filter_operands.as_deref().unwrap_or_default();
        let (field, listed): (Option<&ExtensionObject>, Vec<&ExtensionObject>) = match ops {
            [a, rest @ ..] if is_event_type(a) => (Some(a), rest.iter().collect()),
            [a, b] if e.filter_operator == FilterOperator::Equals && is_event_type(b) => {
                (Some(b), vec![a])
            }
            _ => (None, Vec::new()),
        };
        if field.is_none() || listed.is_empty() {
            continue;
        }
        let Some(types) = listed
            .iter()
            .map(|o| literal_type(o))
            .collect::<Option<Vec<u32>>>()
        else {
            continue;
        };
        let test = EMITTED
            .iter()
            .filter(|(t, _)| types.contains(t))
            .map(|(t, subs)| TypeTest::exactly(*t, subs))
            .reduce(|a, b| TypeTest::Or(Box::new(a), Box::new(b)))
            // None of uaedge's types listed: never true.
            .unwrap_or(TypeTest::Not(Box::new(TypeTest::OfType(BASE_EVENT_TYPE))));
        let at = test.emit(elements);
        elements[i] = ContentFilterElement {
            filter_operator: FilterOperator::Or,
            filter_operands: Some(vec![element(at), element(at)]),
        };
    }
}

pub(super) fn empty_path(operand: &mut SimpleAttributeOperand) {
    if operand.browse_path.is_none() {
        operand.browse_path = Some(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use opcua::types::{AttributeId, BinaryEncodable, ContextOwned, ObjectTypeId, QualifiedName};

    use super::*;

    fn operand(path: Option<Vec<QualifiedName>>) -> SimpleAttributeOperand {
        SimpleAttributeOperand {
            type_definition_id: ObjectTypeId::ConditionType.into(),
            browse_path: path,
            attribute_id: AttributeId::NodeId as u32,
            index_range: Default::default(),
        }
    }

    #[test]
    fn a_null_browse_path_decodes_as_an_empty_one_and_others_stay() {
        let filter = EventFilter {
            select_clauses: Some(vec![
                operand(None),
                operand(Some(vec![QualifiedName::new(0, "Severity")])),
            ]),
            where_clause: Default::default(),
        };
        let owned = ContextOwned::default();
        let ctx = owned.context();
        let bytes = filter.encode_to_vec(&ctx);
        let loaders = with_event_filter_paths(&TypeLoaderCollection::new());
        let decoded = loaders
            .iter()
            .find_map(|l| {
                let id: NodeId = ObjectId::EventFilter_Encoding_DefaultBinary.into();
                l.load_from_binary(&id, &mut bytes.as_slice(), &ctx, None)
            })
            .expect("a loader for EventFilter")
            .expect("decoded");
        let f = decoded
            .as_dyn_any()
            .downcast::<EventFilter>()
            .expect("an EventFilter");
        let paths: Vec<_> = f
            .select_clauses
            .iter()
            .flatten()
            .map(|c| c.browse_path.clone())
            .collect();
        assert_eq!(
            paths,
            [Some(vec![]), Some(vec![QualifiedName::new(0, "Severity")])]
        );
    }
}
