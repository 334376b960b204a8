//! The type tree clients' requests are checked against, with one fix: async-opcua 0.19
//! refuses Part 9's ConditionId select clause (TypeDefinitionId ConditionType, an empty
//! browse path, AttributeId NodeId), because it looks the empty path up as a property and
//! finds the type itself, an ObjectType. Worse, it then leaves the clause out of the
//! event's fields, so every later field reaches the client in the wrong place. SCADA
//! clients select ConditionId to know what to acknowledge, so this answers the empty path
//! of ConditionType and its subtypes as the condition object itself.
//!
//! The same dropping shifts the fields of a client that selects a field no type has (a
//! vendor's, a misspelling): a path under an event type that the types do not know is
//! answered as a property here, so the clause stays and reads Null, as Part 4 has it.
//!
//! Upstream, `validate_select_clause` should accept an empty path as the event's own
//! NodeId, and return Null for a refused clause instead of dropping it (Part 4, 7.22.3).

use std::sync::Arc;

use opcua::nodes::{DefaultTypeTree, NamespaceMap, TypeProperty, TypeTree, TypeTreeNode};
use opcua::server::node_manager::{
    RequestContext, TypeTreeForUser, TypeTreeForUserStatic, TypeTreeReadContext,
};
use opcua::types::{NodeClass, NodeId, ObjectTypeId, QualifiedName};
use parking_lot::RwLockReadGuard;

/// Hands out the server's type tree with the ConditionId fix.
pub struct ConditionAwareTypeTrees;

impl TypeTreeForUser for ConditionAwareTypeTrees {
    fn get_type_tree_for_user<'a>(
        &'a self,
        ctx: &'a RequestContext,
    ) -> Box<dyn TypeTreeReadContext + 'a> {
        Box::new(WithConditionId {
            tree: ctx.type_tree.read(),
            condition: TypeProperty {
                node_id: ObjectTypeId::ConditionType.into(),
                node_class: NodeClass::Object,
            },
            unknown: TypeProperty {
                node_id: NodeId::null(),
                node_class: NodeClass::Variable,
            },
        })
    }

    fn get_type_tree_static(&self, ctx: &RequestContext) -> Arc<dyn TypeTreeForUserStatic> {
        ctx.type_tree.clone()
    }
}

struct WithConditionId<'a> {
    tree: RwLockReadGuard<'a, DefaultTypeTree>,
    condition: TypeProperty,
    /// What a path no type has answers, under an event type: a field that reads Null.
    unknown: TypeProperty,
}

impl TypeTreeReadContext for WithConditionId<'_> {
    fn get(&self) -> &dyn TypeTree {
        self
    }
}

impl TypeTree for WithConditionId<'_> {
    fn is_subtype_of(&self, child: &NodeId, ancestor: &NodeId) -> bool {
        self.tree.is_subtype_of(child, ancestor)
    }

    fn get_node<'b>(&'b self, node: &NodeId) -> Option<TypeTreeNode<'b>> {
        self.tree.get_node(node)
    }

    fn get(&self, node: &NodeId) -> Option<NodeClass> {
        TypeTree::get(&*self.tree, node)
    }

    fn find_type_prop_by_browse_path(
        &self,
        type_id: &NodeId,
        path: &[QualifiedName],
    ) -> Option<&TypeProperty> {
        if path.is_empty() && self.tree.is_subtype_of(type_id, &self.condition.node_id) {
            return Some(&self.condition);
        }
        let found = self.tree.find_type_prop_by_browse_path(type_id, path);
        let event_type: NodeId = ObjectTypeId::BaseEventType.into();
        if found.is_none() && !path.is_empty() && self.tree.is_subtype_of(type_id, &event_type) {
            return Some(&self.unknown);
        }
        found
    }

    fn get_supertype<'b>(&'b self, node: &NodeId) -> Option<&'b NodeId> {
        self.tree.get_supertype(node)
    }

    fn namespaces(&self) -> &NamespaceMap {
        self.tree.namespaces()
    }
}
