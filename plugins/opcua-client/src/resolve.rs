//! Tag addresses to this session's NodeIds: namespace URIs looked up in the server's
//! namespace array, browse paths translated, in as few calls as the server allows. Done
//! once per session: a restarted server may number its namespaces differently.

use opcua::client::Session;
use opcua::types::{
    BrowsePath, NodeId, ObjectId, ReferenceTypeId, RelativePath, RelativePathElement, StatusCode,
};
use tracing::debug;
use uaedge_driver::{LinkError, Reading};

use crate::address::OpcAddress;
use crate::driver::OpcUaDriver;
use crate::session::link_error;

impl OpcUaDriver {
    /// Each tag's node, `None` (and a Bad reading in `pending`) where it cannot be found.
    pub(crate) async fn resolve(
        &mut self,
        session: &Session,
        pending: &mut Vec<Reading>,
    ) -> Result<Vec<Option<NodeId>>, LinkError> {
        let mut nodes: Vec<Option<NodeId>> = vec![None; self.tags.len()];
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
        let addresses: Vec<OpcAddress> = self.tags.iter().map(|t| t.address.clone()).collect();
        for (i, address) in addresses.iter().enumerate() {
            match address {
                OpcAddress::Node(n) => nodes[i] = Some(n.clone()),
                OpcAddress::NamespaceUri { uri, node } => {
                    match namespaces.as_ref().and_then(|m| m.get_index(uri)) {
                        Some(ns) => nodes[i] = Some(NodeId::new(ns, node.identifier.clone())),
                        None => pending.push(
                            self.refuse(i, format!("namespace `{uri}` is not on the server")),
                        ),
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
                        nodes[i] = Some(node);
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
