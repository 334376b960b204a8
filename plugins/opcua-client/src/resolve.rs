//! Tag addresses to this session's NodeIds: namespace URIs looked up in the server's
//! namespace array, browse paths translated, in as few calls as the server allows. Done
//! once per session: a restarted server may number its namespaces differently.

use std::collections::HashMap;

use opcua::client::Session;
use opcua::types::{
    BrowsePath, NodeId, ObjectId, ReferenceTypeId, RelativePath, RelativePathElement, StatusCode,
};
use tracing::debug;
use uaedge_driver::{LinkError, Reading};

use crate::address::OpcAddress;
use crate::driver::{OpcUaDriver, Tag};
use crate::session::link_error;

/// Where each tag is in this session. Only what the addresses leave open is kept, a
/// namespace index per tag: the identifiers are in the addresses already, and a NodeId of
/// its own per tag was 100,000 more allocations on a 100,000-tag gateway.
#[derive(Default)]
pub(crate) struct Nodes {
    /// The tag's namespace index in this session; `None` where it was not found.
    ns: Vec<Option<u16>>,
    /// What browse paths led to, by tag index: their identifiers come from the server.
    browsed: HashMap<usize, NodeId>,
}

impl Nodes {
    /// Tag `i`'s NodeId in this session, made afresh (the caller keeps it in a request).
    pub fn get(&self, tags: &[Tag], i: usize) -> Option<NodeId> {
        let ns = (*self.ns.get(i)?)?;
        match &tags.get(i)?.address {
            OpcAddress::Node(n) => Some(n.clone()),
            OpcAddress::NamespaceUri { node, .. } => Some(NodeId::new(ns, node.identifier.clone())),
            OpcAddress::BrowsePath(_) => self.browsed.get(&i).cloned(),
        }
    }

    /// The indices of the tags that were found, in order.
    pub fn found(&self) -> impl Iterator<Item = usize> + '_ {
        self.ns
            .iter()
            .enumerate()
            .filter_map(|(i, ns)| ns.map(|_| i))
    }
}

impl OpcUaDriver {
    /// Each tag's node; a tag that cannot be found gets a Bad reading in `pending`.
    pub(crate) async fn resolve(
        &mut self,
        session: &Session,
        pending: &mut Vec<Reading>,
    ) -> Result<Nodes, LinkError> {
        let mut nodes = Nodes {
            ns: vec![None; self.tags.len()],
            browsed: HashMap::new(),
        };
        let needs_namespaces = self
            .tags
            .iter()
            .any(|t| matches!(t.address, OpcAddress::NamespaceUri { .. }));
        let namespaces = if needs_namespaces {
            Some(
                session
                    .read_namespace_array()
                    .await
                    .map_err(|e| link_error(e.status(), &format!("namespace array: {e}")))?,
            )
        } else {
            None
        };
        let mut paths = Vec::new();
        let mut path_tags = Vec::new();
        let mut refused = Vec::new();
        for (i, tag) in self.tags.iter().enumerate() {
            match &tag.address {
                OpcAddress::Node(n) => nodes.ns[i] = Some(n.namespace),
                OpcAddress::NamespaceUri { uri, .. } => {
                    match namespaces.as_ref().and_then(|m| m.get_index(uri)) {
                        Some(ns) => nodes.ns[i] = Some(ns),
                        None => {
                            refused.push((i, format!("namespace `{uri}` is not on the server")))
                        }
                    }
                }
                OpcAddress::BrowsePath(p) => {
                    paths.push(BrowsePath {
                        starting_node: ObjectId::ObjectsFolder.into(),
                        relative_path: RelativePath {
                            elements: Some(
                                OpcAddress::browse_names(p)
                                    .into_iter()
                                    .map(|name| RelativePathElement {
                                        reference_type_id: ReferenceTypeId::HierarchicalReferences
                                            .into(),
                                        is_inverse: false,
                                        include_subtypes: true,
                                        target_name: name,
                                    })
                                    .collect(),
                            ),
                        },
                    });
                    path_tags.push(i);
                }
            }
        }
        for (i, message) in refused {
            pending.push(self.refuse(i, message));
        }
        for (chunk, tags) in paths.chunks(100).zip(path_tags.chunks(100)) {
            let results = session
                .translate_browse_paths_to_node_ids(chunk)
                .await
                .map_err(|e| link_error(e.status(), &format!("browse paths: {e}")))?;
            for (k, &i) in tags.iter().enumerate() {
                let found = results.get(k).and_then(|r| {
                    if !r.status_code.is_good() {
                        return None;
                    }
                    r.targets.iter().flatten().find_map(|t| {
                        (t.target_id.server_index == 0 && t.target_id.namespace_uri.is_null())
                            .then(|| t.target_id.node_id.clone())
                    })
                });
                match found {
                    Some(node) => {
                        debug!(device = %self.device, tag = %self.tags[i].name, node = %node, "browse path resolved");
                        nodes.ns[i] = Some(node.namespace);
                        nodes.browsed.insert(i, node);
                    }
                    None => {
                        let status = results
                            .get(k)
                            .map_or(StatusCode::BadNoMatch, |r| r.status_code);
                        pending.push(self.refuse(i, format!("browse path not found: {status}")));
                    }
                }
            }
        }
        Ok(nodes)
    }
}
