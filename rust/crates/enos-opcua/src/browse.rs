//! Browsing the server's address space (the communication test): the nodes a node organises or
//! holds (hierarchical references, forward), each with what a point needs: its node id, name,
//! class and, for a variable, its data type, access level and current value.

use crate::client::Client;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue, NodeClass, NodeId, ReadValueId, ReferenceTypeId,
    StatusCode, TimestampsToReturn, Variant,
};
use std::collections::HashMap;

/// The most references one browse returns (a server with more says so in `more`).
pub const MAX_REFERENCES: usize = 1000;

/// One node found by a browse.
#[derive(Debug, Clone)]
pub struct Browsed {
    /// As the server numbers its namespaces (`ns=2;s=P`, `i=85`, `ns=2;g=…`, `ns=2;b=…`).
    pub node: NodeId,
    /// The namespace's URI (for the `nsu=` form, which survives a server that renumbers its
    /// namespaces); `None` for namespace 0 or an index the server's array does not have.
    pub namespace_uri: Option<String>,
    pub browse_name: String,
    pub display_name: String,
    pub class: NodeClass,
    /// A variable's: its data type's browse name (e.g. "Double"), its access level bits
    /// (Part 3, 8.57) and the value the server has now.
    pub data_type: Option<String>,
    pub access_level: Option<u8>,
    pub value: Option<DataValue>,
}

/// The children of a node and whether the server had more than [`MAX_REFERENCES`].
#[derive(Debug, Clone, Default)]
pub struct Children {
    pub nodes: Vec<Browsed>,
    pub more: bool,
}

impl Client {
    /// Browses `from`'s hierarchical children and reads the variables' attributes. A browse the
    /// server refuses (e.g. an unknown node) is its status code.
    pub async fn browse(&self, from: &NodeId) -> Result<Children, StatusCode> {
        let session = &self.session;
        let describe = BrowseDescription {
            node_id: from.clone(),
            browse_direction: BrowseDirection::Forward,
            reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
            include_subtypes: true,
            node_class_mask: 0,
            result_mask: BrowseResultMask::All as u32,
        };
        let mut results = session.browse(&[describe], MAX_REFERENCES as u32, None).await.map_err(|e| e.status())?;
        let first = results.pop().ok_or(StatusCode::BadUnexpectedError)?;
        if !first.status_code.is_good() {
            return Err(first.status_code);
        }
        let mut refs = first.references.unwrap_or_default();
        let mut cont = first.continuation_point;
        while !cont.is_null_or_empty() && refs.len() < MAX_REFERENCES {
            let mut next = session.browse_next(false, std::slice::from_ref(&cont)).await.map_err(|e| e.status())?;
            let Some(r) = next.pop() else { break };
            refs.extend(r.references.unwrap_or_default());
            cont = r.continuation_point;
        }
        let more = !cont.is_null_or_empty() || refs.len() > MAX_REFERENCES;
        if !cont.is_null_or_empty() {
            // frees the server's continuation point
            let _ = session.browse_next(true, std::slice::from_ref(&cont)).await;
        }
        refs.truncate(MAX_REFERENCES);
        // a node referenced twice (e.g. Organizes and HasComponent) is shown once
        let mut seen = std::collections::HashSet::new();
        refs.retain(|r| r.node_id.server_index == 0 && seen.insert(r.node_id.node_id.clone()));

        let namespaces: HashMap<u16, String> = session
            .read_namespace_array()
            .await
            .map(|m| m.known_namespaces().iter().map(|(uri, i)| (*i, uri.clone())).collect())
            .unwrap_or_default();
        let mut nodes: Vec<Browsed> = refs
            .into_iter()
            .map(|r| {
                let node = r.node_id.node_id;
                Browsed {
                    namespace_uri: (node.namespace != 0).then(|| namespaces.get(&node.namespace).cloned()).flatten(),
                    node,
                    browse_name: r.browse_name.to_string(),
                    display_name: r.display_name.text.to_string(),
                    class: r.node_class,
                    data_type: None,
                    access_level: None,
                    value: None,
                }
            })
            .collect();
        self.read_variables(&mut nodes).await?;
        Ok(Children { nodes, more })
    }

    /// Fills in the variables' data type, access level and value (one Read), then the data
    /// types' names (a second Read of their browse names).
    async fn read_variables(&self, nodes: &mut [Browsed]) -> Result<(), StatusCode> {
        const ATTRS: [AttributeId; 3] = [AttributeId::DataType, AttributeId::AccessLevel, AttributeId::Value];
        let vars: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].class == NodeClass::Variable).collect();
        if vars.is_empty() {
            return Ok(());
        }
        let ids: Vec<ReadValueId> = vars
            .iter()
            .flat_map(|&i| ATTRS.map(|a| ReadValueId { attribute_id: a as u32, ..ReadValueId::from(nodes[i].node.clone()) }))
            .collect();
        let read = self.session.read(&ids, TimestampsToReturn::Both, 0.0).await.map_err(|e| e.status())?;
        let mut types: Vec<NodeId> = Vec::new();
        let mut type_of = Vec::new();
        for (k, &i) in vars.iter().enumerate() {
            let Some(answers) = read.get(k * 3..k * 3 + 3) else { break };
            type_of.push(match &answers[0].value {
                Some(Variant::NodeId(t)) => {
                    let at = types.iter().position(|x| x == &**t).unwrap_or_else(|| {
                        types.push((**t).clone());
                        types.len() - 1
                    });
                    Some(at)
                }
                _ => None,
            });
            nodes[i].access_level = match &answers[1].value {
                Some(Variant::Byte(b)) => Some(*b),
                _ => None,
            };
            nodes[i].value = Some(answers[2].clone());
        }
        // data types by their browse names ("Double", or a server's own structure's name)
        let names: Vec<String> = if types.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<ReadValueId> = types
                .iter()
                .map(|t| ReadValueId { attribute_id: AttributeId::BrowseName as u32, ..ReadValueId::from(t.clone()) })
                .collect();
            let read = self.session.read(&ids, TimestampsToReturn::Neither, 0.0).await.map_err(|e| e.status())?;
            types
                .iter()
                .enumerate()
                .map(|(j, t)| match read.get(j).and_then(|v| v.value.as_ref()) {
                    Some(Variant::QualifiedName(q)) => q.name.to_string(),
                    _ => t.to_string(),
                })
                .collect()
        };
        for (&i, t) in vars.iter().zip(type_of) {
            nodes[i].data_type = t.and_then(|j| names.get(j).cloned());
        }
        Ok(())
    }
}

/// A node class in words.
pub fn class_name(c: NodeClass) -> &'static str {
    match c {
        NodeClass::Object => "Object",
        NodeClass::Variable => "Variable",
        NodeClass::Method => "Method",
        NodeClass::ObjectType => "ObjectType",
        NodeClass::VariableType => "VariableType",
        NodeClass::ReferenceType => "ReferenceType",
        NodeClass::DataType => "DataType",
        NodeClass::View => "View",
        _ => "unspecified",
    }
}

/// An access level (Part 3, 8.57) in words: "read", "read, write", "read, history read".
pub fn access_words(level: u8) -> String {
    let names = [(1, "read"), (2, "write"), (4, "history read"), (8, "history write"), (16, "semantic change")];
    let w: Vec<&str> = names.iter().filter(|(b, _)| level & b != 0).map(|(_, n)| *n).collect();
    if w.is_empty() {
        "none".into()
    } else {
        w.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_are_said_in_words() {
        assert_eq!(access_words(1), "read");
        assert_eq!(access_words(3), "read, write");
        assert_eq!(access_words(5), "read, history read");
        assert_eq!(access_words(0), "none");
    }
}
