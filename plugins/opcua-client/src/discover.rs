//! `uaedge discover opcua`: browse a server and print a `tags:` block ready to paste into a
//! device of driver `opcua-client`.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;

use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, ByteString, NodeClass,
    NodeClassMask, NodeId, ObjectId, ReadValueId, ReferenceTypeId, TimestampsToReturn, Variant,
};
use uaedge_driver::LinkError;

use crate::address::OpcAddress;
use crate::convert;
use crate::options::Options;
use crate::pool;
use crate::session::link_error;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot connect: {0}")]
    Connect(LinkError),
    #[error("root `{0}`: {1}")]
    Root(String, String),
    #[error("browsing failed: {0}")]
    Browse(LinkError),
}

/// A variable found while browsing, with its folder path below the root.
struct Found {
    path: Vec<String>,
    node: NodeId,
}

/// Browses `options.endpoint` from `root` (a NodeId or a `/Objects/…` browse path; the
/// Objects folder when `None`) down to `depth` levels and renders a `tags:` block: names
/// from browse names as folders, types from each variable's DataType, writable from its
/// AccessLevel. Variables the model cannot hold (arrays, structures) are listed as comments.
pub async fn discover(
    options: &Options,
    root: Option<&str>,
    depth: u32,
) -> Result<String, DiscoverError> {
    let link = pool::attach(options)
        .await
        .map_err(DiscoverError::Connect)?;
    let limit = options.request_timeout.get().saturating_mul(2);
    let result = match link.wait_up(limit).await {
        Ok(_) => browse_and_render(link.session(), options, root, depth).await,
        Err(e) => Err(DiscoverError::Connect(e)),
    };
    drop(link);
    pool::detach(options, options.request_timeout.get()).await;
    result
}

async fn browse_and_render(
    session: &Session,
    options: &Options,
    root: Option<&str>,
    depth: u32,
) -> Result<String, DiscoverError> {
    let root_node = match root {
        None => NodeId::from(ObjectId::ObjectsFolder),
        Some(text) => resolve_root(session, text).await?,
    };
    let found = browse(session, &root_node, depth).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} below {} on {}",
        if found.is_empty() {
            "no variables"
        } else {
            "variables"
        },
        root.unwrap_or("/Objects"),
        options.endpoint
    );
    out.push_str("tags:\n");
    let mut names = HashSet::new();
    for chunk in found.chunks(100) {
        let mut ids = Vec::with_capacity(chunk.len() * 3);
        for f in chunk {
            for attribute in [
                AttributeId::DataType,
                AttributeId::AccessLevel,
                AttributeId::ValueRank,
            ] {
                ids.push(ReadValueId {
                    node_id: f.node.clone(),
                    attribute_id: attribute as u32,
                    ..Default::default()
                });
            }
        }
        let values = session
            .read(&ids, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| DiscoverError::Browse(link_error(e.status(), &e.to_string())))?;
        for (f, attrs) in chunk.iter().zip(values.chunks(3)) {
            let get = |k: usize| attrs.get(k).and_then(|dv| dv.value.clone());
            let data_type = match get(0) {
                Some(Variant::NodeId(id)) => Some(*id),
                _ => None,
            };
            let writable = matches!(get(1), Some(Variant::Byte(b)) if b & 0x02 != 0);
            let scalar = matches!(get(2), Some(Variant::Int32(-1)) | None);
            let name = unique_name(&mut names, &f.path, &f.node);
            let address = f.node.to_string();
            match data_type.as_ref().and_then(convert::data_type) {
                Some(t) if scalar => {
                    let _ = writeln!(
                        out,
                        "  - {{ name: {}, type: {t}, address: {}, writable: {writable} }}",
                        quote(&name),
                        quote(&address)
                    );
                }
                _ => {
                    let why = if scalar {
                        format!(
                            "data type {} is not in the model",
                            data_type.map_or("unknown".to_string(), |d| d.to_string())
                        )
                    } else {
                        "arrays are not in the model".to_string()
                    };
                    let _ = writeln!(out, "  # skipped {name} ({address}): {why}");
                }
            }
        }
    }
    Ok(out)
}

async fn resolve_root(session: &Session, text: &str) -> Result<NodeId, DiscoverError> {
    let address: OpcAddress = text
        .parse()
        .map_err(|e| DiscoverError::Root(text.into(), e))?;
    match address {
        OpcAddress::Node(n) => Ok(n),
        OpcAddress::NamespaceUri { uri, node } => {
            let map = session
                .read_namespace_array()
                .await
                .map_err(|e| DiscoverError::Browse(link_error(e.status(), &e.to_string())))?;
            let ns = map.get_index(&uri).ok_or_else(|| {
                DiscoverError::Root(text.into(), "namespace not on the server".into())
            })?;
            Ok(NodeId::new(ns, node.identifier))
        }
        OpcAddress::BrowsePath(p) => {
            let path = opcua::types::BrowsePath {
                starting_node: ObjectId::ObjectsFolder.into(),
                relative_path: opcua::types::RelativePath {
                    elements: Some(
                        OpcAddress::browse_names(&p)
                            .into_iter()
                            .map(|name| opcua::types::RelativePathElement {
                                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                                is_inverse: false,
                                include_subtypes: true,
                                target_name: name,
                            })
                            .collect(),
                    ),
                },
            };
            let results = session
                .translate_browse_paths_to_node_ids(&[path])
                .await
                .map_err(|e| DiscoverError::Browse(link_error(e.status(), &e.to_string())))?;
            results
                .into_iter()
                .next()
                .and_then(|r| r.targets)
                .and_then(|t| t.into_iter().next())
                .map(|t| t.target_id.node_id)
                .ok_or_else(|| DiscoverError::Root(text.into(), "browse path not found".into()))
        }
    }
}

/// Breadth-first over Organizes/HasComponent (hierarchical references except properties,
/// which describe a variable rather than being tags of their own).
async fn browse(session: &Session, root: &NodeId, depth: u32) -> Result<Vec<Found>, DiscoverError> {
    let has_property: NodeId = ReferenceTypeId::HasProperty.into();
    let mut seen: HashSet<NodeId> = HashSet::from([root.clone()]);
    let mut queue: VecDeque<(NodeId, Vec<String>, u32)> =
        VecDeque::from([(root.clone(), Vec::new(), 0)]);
    let mut found = Vec::new();
    let browse_error =
        |e: opcua::types::Error| DiscoverError::Browse(link_error(e.status(), &e.to_string()));
    while let Some((node, path, level)) = queue.pop_front() {
        if level >= depth {
            continue;
        }
        let description = BrowseDescription {
            node_id: node.clone(),
            browse_direction: BrowseDirection::Forward,
            reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
            include_subtypes: true,
            node_class_mask: (NodeClassMask::OBJECT | NodeClassMask::VARIABLE).bits(),
            result_mask: BrowseResultMask::All as u32,
        };
        let mut results = session
            .browse(&[description], 1000, None)
            .await
            .map_err(browse_error)?;
        let mut references = Vec::new();
        while let Some(result) = results.into_iter().next() {
            references.extend(result.references.into_iter().flatten());
            let point: ByteString = result.continuation_point;
            if point.is_null() || point.is_empty() {
                break;
            }
            results = session
                .browse_next(false, &[point])
                .await
                .map_err(browse_error)?;
        }
        for r in references {
            if r.reference_type_id == has_property || r.node_id.server_index != 0 {
                continue;
            }
            let child = r.node_id.node_id;
            // The server's own diagnostics (namespace 0) are not plant data.
            if child.namespace == 0 || !seen.insert(child.clone()) {
                continue;
            }
            let mut child_path = path.clone();
            child_path.push(r.browse_name.name.as_ref().replace('/', "_"));
            if r.node_class == NodeClass::Variable {
                found.push(Found {
                    path: child_path.clone(),
                    node: child.clone(),
                });
            }
            queue.push_back((child, child_path, level + 1));
        }
    }
    Ok(found)
}

fn unique_name(names: &mut HashSet<String>, path: &[String], node: &NodeId) -> String {
    let base = if path.iter().any(|p| p.trim().is_empty()) || path.is_empty() {
        node.to_string().replace('/', "_")
    } else {
        path.join("/")
    };
    let mut name = base.clone();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_quoted_for_yaml() {
        let mut names = HashSet::new();
        let node = NodeId::new(2, "x");
        let p = vec!["Plant".to_string(), "Speed".to_string()];
        assert_eq!(unique_name(&mut names, &p, &node), "Plant/Speed");
        assert_eq!(unique_name(&mut names, &p, &node), "Plant/Speed_2");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
