//! Decoders for the structures async-opcua 0.19 decodes unsafely from a peer, tried before
//! its own: uaedge's OPC UA server, its gate and this client decode with [`harden`]ed type
//! loaders.
//!
//! `Argument` (binary encoding i=298): async-opcua-types pads `ArrayDimensions` with zeros
//! up to `ValueRank` entries without a bound (src/argument.rs), so an ExtensionObject of
//! about 60 bytes with a ValueRank of 2,147,483,647 makes the decoder write 8 GiB. Every
//! ExtensionObject from a peer reaches that decoder: the AdditionalHeader of the very first
//! OpenSecureChannel an unauthenticated client sends, a monitored item's filter, a Variant
//! in a Write, a response's header. Found by the `opcua_frames` fuzz target. The upstream
//! fix is to refuse a ValueRank above the context's `max_array_length` before padding;
//! until it ships, this decoder does that and is otherwise the same.

use std::cmp::Ordering;
use std::io::Read;
use std::sync::Arc;

use opcua::types::{
    Argument, BinaryDecodable, Context, DynEncodable, EncodingResult, Error, Identifier,
    LocalizedText, NodeId, ObjectId, TypeLoader, TypeLoaderCollection, TypeLoaderPriority,
    UAString,
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
        let argument = ObjectId::Argument_Encoding_DefaultBinary as u32;
        if node_id.namespace != 0 || node_id.identifier != Identifier::Numeric(argument) {
            return None;
        }
        Some(decode_argument(stream, ctx).map(|a| Box::new(a) as Box<dyn DynEncodable>))
    }

    fn priority(&self) -> TypeLoaderPriority {
        TypeLoaderPriority::Core
    }
}

fn decode_argument(stream: &mut dyn Read, ctx: &Context<'_>) -> EncodingResult<Argument> {
    let name = UAString::decode(stream, ctx)?;
    let data_type = NodeId::decode(stream, ctx)?;
    let value_rank = i32::decode(stream, ctx)?;
    let mut array_dimensions: Option<Vec<u32>> = BinaryDecodable::decode(stream, ctx)?;
    if let (Ok(rank), Some(dims)) = (usize::try_from(value_rank), array_dimensions.as_mut()) {
        if rank > ctx.options().max_array_length {
            return Err(Error::decoding(format!(
                "Argument value rank {rank} exceeds the array length limit {}",
                ctx.options().max_array_length
            )));
        }
        match dims.len().cmp(&rank) {
            // Fewer dimensions than the rank: the rest are unknown (0), as upstream does.
            Ordering::Less if rank > 0 => dims.resize(rank, 0),
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
        let id = NodeId::new(0, ObjectId::Argument_Encoding_DefaultBinary as u32);
        id.encode(&mut out, &ctx).expect("type id");
        1u8.encode(&mut out, &ctx).expect("encoding");
        (body.len() as i32).encode(&mut out, &ctx).expect("length");
        out.extend(body);
        out
    }

    #[test]
    fn a_huge_value_rank_is_refused_without_allocating_it() {
        let ctx = context();
        let bytes = encoded(i32::MAX, Some(Vec::new()));
        let r = ExtensionObject::decode(&mut bytes.as_slice(), &ctx.context());
        // Not the value in the message: a wrong answer holds two billion zeros.
        assert!(r.is_err(), "decoded");
    }

    #[test]
    fn ordinary_arguments_decode_as_upstream_does() {
        let ctx = context();
        for (rank, dims, want) in [
            (1, Some(vec![4]), Some(vec![4])),
            (2, Some(vec![4]), Some(vec![4, 0])),
            (-1, None, None),
            (0, Some(vec![]), Some(vec![])),
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
