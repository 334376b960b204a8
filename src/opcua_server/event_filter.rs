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

use std::io::Read;
use std::sync::Arc;

use opcua::types::{
    BinaryDecodable, Context, DataTypeId, DynEncodable, EncodingResult, EventFilter, Identifier,
    NodeId, ObjectId, SimpleAttributeOperand, TypeLoader, TypeLoaderCollection, TypeLoaderPriority,
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
    let owned = opcua::types::ContextOwned::default();
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

fn empty_path(operand: &mut SimpleAttributeOperand) {
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
