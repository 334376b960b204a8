//! Decoders for the structures async-opcua 0.19 decodes unsafely from a peer, tried before
//! its own: uaedge's OPC UA server, its gate and this client decode with [`harden`]ed type
//! loaders.
//!
//! `Argument`: async-opcua-types pads `ArrayDimensions` with zeros up to `ValueRank` entries
//! without a bound (src/argument.rs), so an ExtensionObject of about 60 bytes with a
//! ValueRank of 2,147,483,647 makes the decoder write 8 GiB. Every ExtensionObject from a
//! peer reaches that decoder: the AdditionalHeader of the very first OpenSecureChannel an
//! unauthenticated client sends, a monitored item's filter, a Variant in a Write, a
//! response's header. Arguments come on their own (named by their encoding's id or, as
//! async-opcua also takes it, their DataType's) and inside the two ProgramDiagnostic
//! structures, so all of those are decoded here. Found by the `opcua_frames` fuzz target.
//! One answer escapes them: the client's GetEndpoints, which async-opcua makes on a channel
//! of its own inside `connect_to_matching_endpoint`, before a session (and its decoding
//! context) exists; only the server the device names can send that one.
//! Here the padding stops at [`MAX_PADDED_RANK`]: an Argument of a higher declared rank
//! keeps the dimensions it was sent with. Bounding the rank by `max_array_length` instead
//! would not do: 100,000 dimensions of 4 bytes for each 15-byte Argument, thousands of
//! Arguments in one ProgramDiagnostic, is still gigabytes from a 64 KB message. The
//! upstream fix is the same (pad to a small rank at most, or not at all); until it ships,
//! these decoders are otherwise the same as async-opcua's.

use std::cmp::Ordering;
use std::io::Read;
use std::sync::Arc;

use opcua::types::{
    Argument, BinaryDecodable, Context, DataTypeId, DynEncodable, EncodingResult, Error,
    Identifier, LocalizedText, NodeId, ObjectId, ProgramDiagnostic2DataType,
    ProgramDiagnosticDataType, TypeLoader, TypeLoaderCollection, TypeLoaderPriority, UAString,
};

/// `loaders` with [`HardenedTypes`] ahead of them all. `TypeLoaderCollection::add` puts a
/// loader behind those of its own priority, and async-opcua's generated loader already has
/// the first (`Core`), so the collection is made anew in this order.
pub fn harden(loaders: &TypeLoaderCollection) -> TypeLoaderCollection {
    let mut hardened = TypeLoaderCollection::new_empty();
    hardened.add(Arc::new(HardenedTypes));
    for loader in loaders {
        hardened.add(loader.clone());
    }
    hardened
}

/// The decoders of [`harden`]; they answer only for the types they fix.
pub struct HardenedTypes;

impl TypeLoader for HardenedTypes {
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
        let boxed = |v: Box<dyn DynEncodable>| v;
        if is(
            ObjectId::Argument_Encoding_DefaultBinary,
            DataTypeId::Argument,
        ) {
            Some(decode_argument(stream, ctx).map(|a| boxed(Box::new(a))))
        } else if is(
            ObjectId::ProgramDiagnosticDataType_Encoding_DefaultBinary,
            DataTypeId::ProgramDiagnosticDataType,
        ) {
            Some(decode_program_diagnostic(stream, ctx).map(|d| boxed(Box::new(d))))
        } else if is(
            ObjectId::ProgramDiagnostic2DataType_Encoding_DefaultBinary,
            DataTypeId::ProgramDiagnostic2DataType,
        ) {
            Some(decode_program_diagnostic_2(stream, ctx).map(|d| boxed(Box::new(d))))
        } else {
            None
        }
    }

    fn priority(&self) -> TypeLoaderPriority {
        TypeLoaderPriority::Core
    }
}

/// The highest ValueRank whose missing ArrayDimensions are filled in (Part 3 sets no
/// limit; real arrays have a handful of dimensions).
const MAX_PADDED_RANK: usize = 32;

fn decode_argument(stream: &mut dyn Read, ctx: &Context<'_>) -> EncodingResult<Argument> {
    let name = UAString::decode(stream, ctx)?;
    let data_type = NodeId::decode(stream, ctx)?;
    let value_rank = i32::decode(stream, ctx)?;
    let mut array_dimensions: Option<Vec<u32>> = BinaryDecodable::decode(stream, ctx)?;
    if let (Ok(rank), Some(dims)) = (usize::try_from(value_rank), array_dimensions.as_mut()) {
        match dims.len().cmp(&rank) {
            // Fewer dimensions than the rank: the rest are unknown (0), as upstream does,
            // for any rank an array really has.
            Ordering::Less if rank <= MAX_PADDED_RANK => dims.resize(rank, 0),
            Ordering::Greater if rank > 0 => {
                return Err(Error::decoding(format!(
                    "Argument has {} array dimensions for value rank {rank}",
                    dims.len()
                )))
            }
            _ => {}
        }
    }
    let description = LocalizedText::decode(stream, ctx)?;
    Ok(Argument {
        name,
        data_type,
        value_rank,
        array_dimensions,
        description,
    })
}

/// An array of Arguments, each through [`decode_argument`].
fn decode_arguments(
    stream: &mut dyn Read,
    ctx: &Context<'_>,
) -> EncodingResult<Option<Vec<Argument>>> {
    let len = match i32::decode(stream, ctx)? {
        -1 => return Ok(None),
        n => usize::try_from(n).map_err(|_| Error::decoding("Array length is negative"))?,
    };
    if len > ctx.options().max_array_length {
        return Err(Error::decoding(format!(
            "Array length {len} exceeds decoding limit {}",
            ctx.options().max_array_length
        )));
    }
    (0..len)
        .map(|_| decode_argument(stream, ctx))
        .collect::<EncodingResult<Vec<_>>>()
        .map(Some)
}

fn decode_program_diagnostic(
    stream: &mut dyn Read,
    ctx: &Context<'_>,
) -> EncodingResult<ProgramDiagnosticDataType> {
    Ok(ProgramDiagnosticDataType {
        create_session_id: BinaryDecodable::decode(stream, ctx)?,
        create_client_name: BinaryDecodable::decode(stream, ctx)?,
        invocation_creation_time: BinaryDecodable::decode(stream, ctx)?,
        last_transition_time: BinaryDecodable::decode(stream, ctx)?,
        last_method_call: BinaryDecodable::decode(stream, ctx)?,
        last_method_session_id: BinaryDecodable::decode(stream, ctx)?,
        last_method_input_arguments: decode_arguments(stream, ctx)?,
        last_method_output_arguments: decode_arguments(stream, ctx)?,
        last_method_call_time: BinaryDecodable::decode(stream, ctx)?,
        last_method_return_status: BinaryDecodable::decode(stream, ctx)?,
    })
}

fn decode_program_diagnostic_2(
    stream: &mut dyn Read,
    ctx: &Context<'_>,
) -> EncodingResult<ProgramDiagnostic2DataType> {
    Ok(ProgramDiagnostic2DataType {
        create_session_id: BinaryDecodable::decode(stream, ctx)?,
        create_client_name: BinaryDecodable::decode(stream, ctx)?,
        invocation_creation_time: BinaryDecodable::decode(stream, ctx)?,
        last_transition_time: BinaryDecodable::decode(stream, ctx)?,
        last_method_call: BinaryDecodable::decode(stream, ctx)?,
        last_method_session_id: BinaryDecodable::decode(stream, ctx)?,
        last_method_input_arguments: decode_arguments(stream, ctx)?,
        last_method_output_arguments: decode_arguments(stream, ctx)?,
        last_method_input_values: BinaryDecodable::decode(stream, ctx)?,
        last_method_output_values: BinaryDecodable::decode(stream, ctx)?,
        last_method_call_time: BinaryDecodable::decode(stream, ctx)?,
        last_method_return_status: BinaryDecodable::decode(stream, ctx)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{BinaryEncodable, ContextOwned, DecodingOptions, ExtensionObject};

    fn context() -> ContextOwned {
        let loaders = harden(&TypeLoaderCollection::new());
        ContextOwned::new(Default::default(), loaders, DecodingOptions::default())
    }

    /// An Argument ExtensionObject as a peer may send it: async-opcua's encoder refuses a
    /// rank that does not match the dimensions, so the body is written field by field.
    fn encoded(value_rank: i32, dims: Option<Vec<u32>>) -> Vec<u8> {
        encoded_as(
            ObjectId::Argument_Encoding_DefaultBinary as u32,
            value_rank,
            dims,
        )
    }

    fn encoded_as(type_id: u32, value_rank: i32, dims: Option<Vec<u32>>) -> Vec<u8> {
        let owned = ContextOwned::default();
        let ctx = owned.context();
        let mut body = Vec::new();
        UAString::from("a").encode(&mut body, &ctx).expect("name");
        NodeId::null().encode(&mut body, &ctx).expect("data type");
        value_rank.encode(&mut body, &ctx).expect("rank");
        dims.encode(&mut body, &ctx).expect("dimensions");
        LocalizedText::null()
            .encode(&mut body, &ctx)
            .expect("description");
        let mut out = Vec::new();
        let id = NodeId::new(0, type_id);
        id.encode(&mut out, &ctx).expect("type id");
        1u8.encode(&mut out, &ctx).expect("encoding");
        (body.len() as i32).encode(&mut out, &ctx).expect("length");
        out.extend(body);
        out
    }

    #[test]
    fn a_huge_value_rank_keeps_the_dimensions_it_was_sent_with() {
        let ctx = context();
        // Named by its encoding or (as async-opcua also takes it) by its DataType.
        for id in [
            ObjectId::Argument_Encoding_DefaultBinary as u32,
            DataTypeId::Argument as u32,
        ] {
            let bytes = encoded_as(id, i32::MAX, Some(Vec::new()));
            let object = ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context())
                .unwrap_or_else(|e| panic!("type {id}: {e}"));
            let argument = object.inner_as::<Argument>().expect("an Argument");
            // Lengths only: a wrong answer would print two billion zeros.
            let dims = argument.array_dimensions.as_ref().map(Vec::len);
            assert_eq!(
                (argument.value_rank, dims),
                (i32::MAX, Some(0)),
                "type {id}"
            );
        }
    }

    /// A ProgramDiagnostic2DataType whose input arguments are `arguments` (bodies of
    /// Arguments as `encoded_as` writes them, without their ExtensionObject header).
    fn diagnostic_with(arguments: &[Vec<u8>]) -> Vec<u8> {
        let owned = ContextOwned::default();
        let ctx = owned.context();
        let d = ProgramDiagnostic2DataType::default();
        let mut body = Vec::new();
        d.create_session_id.encode(&mut body, &ctx).expect("id");
        d.create_client_name.encode(&mut body, &ctx).expect("name");
        d.invocation_creation_time
            .encode(&mut body, &ctx)
            .expect("time");
        d.last_transition_time
            .encode(&mut body, &ctx)
            .expect("time");
        d.last_method_call.encode(&mut body, &ctx).expect("call");
        d.last_method_session_id
            .encode(&mut body, &ctx)
            .expect("id");
        (arguments.len() as i32)
            .encode(&mut body, &ctx)
            .expect("count");
        for a in arguments {
            body.extend_from_slice(a);
        }
        (-1i32).encode(&mut body, &ctx).expect("outputs");
        (-1i32).encode(&mut body, &ctx).expect("input values");
        (-1i32).encode(&mut body, &ctx).expect("output values");
        d.last_method_call_time
            .encode(&mut body, &ctx)
            .expect("time");
        d.last_method_return_status
            .encode(&mut body, &ctx)
            .expect("status");
        let mut out = Vec::new();
        let id = ObjectId::ProgramDiagnostic2DataType_Encoding_DefaultBinary as u32;
        NodeId::new(0, id).encode(&mut out, &ctx).expect("type id");
        1u8.encode(&mut out, &ctx).expect("encoding");
        (body.len() as i32).encode(&mut out, &ctx).expect("length");
        out.extend(body);
        out
    }

    /// The body of an Argument ExtensionObject from `encoded`.
    fn argument_body(value_rank: i32, dims: Option<Vec<u32>>) -> Vec<u8> {
        // Type id (four bytes), encoding byte, length.
        encoded(value_rank, dims).split_off(4 + 1 + 4)
    }

    #[test]
    fn arguments_inside_program_diagnostics_are_not_padded_either() {
        let ctx = context();
        let hostile = argument_body(i32::MAX, Some(Vec::new()));
        let bytes = diagnostic_with(&vec![hostile; 1000]);
        let object =
            ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context()).expect("decodes");
        let d = object
            .inner_as::<ProgramDiagnostic2DataType>()
            .expect("a ProgramDiagnostic2DataType");
        let inputs = d.last_method_input_arguments.as_deref().unwrap_or_default();
        assert_eq!(inputs.len(), 1000);
        assert!(inputs
            .iter()
            .all(|a| a.array_dimensions.as_ref().map(Vec::len) == Some(0)));
        let bytes = diagnostic_with(&[argument_body(2, Some(vec![3]))]);
        let object =
            ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context()).expect("decodes");
        let d = object
            .inner_as::<ProgramDiagnostic2DataType>()
            .expect("a ProgramDiagnostic2DataType");
        let inputs = d.last_method_input_arguments.as_deref().unwrap_or_default();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].array_dimensions, Some(vec![3, 0]));
        assert_eq!(d.last_method_output_arguments, None);
    }

    #[test]
    fn ordinary_arguments_decode_as_upstream_does() {
        let ctx = context();
        for (rank, dims, want) in [
            (1, Some(vec![4]), Some(vec![4])),
            (2, Some(vec![4]), Some(vec![4, 0])),
            (-1, None, None),
            (0, Some(vec![]), Some(vec![])),
            (32, Some(vec![]), Some(vec![0; 32])),
            (33, Some(vec![]), Some(vec![])),
        ] {
            let bytes = encoded(rank, dims);
            let object =
                ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context()).expect("decodes");
            let argument = object.inner_as::<Argument>().expect("an Argument");
            assert_eq!(
                (argument.value_rank, &argument.array_dimensions),
                (rank, &want)
            );
        }
        let bytes = encoded(1, Some(vec![1, 2]));
        assert!(ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context()).is_err());
    }
}
