use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use opcua::types::{NodeId, QualifiedName};

/// Where a tag lives on the server, parsed at config load. Namespace URIs and browse paths
/// are resolved to NodeIds once per session, since a server may renumber its namespaces
/// across restarts.
#[derive(Debug, Clone, PartialEq)]
pub enum OpcAddress {
    /// `ns=3;s=Line1.Speed`, `ns=2;i=1001`, `ns=1;g=…`, `ns=1;b=…`, `i=2258`.
    Node(NodeId),
    /// `nsu=urn:plant;s=Line1.Speed`: the identifier, with namespace index 0 until resolved.
    /// The URI is shared by every address that names it.
    NamespaceUri { uri: Arc<str>, node: NodeId },
    /// `/Objects/2:Plant/2:Line1/2:Speed`: browse names below the Objects folder.
    BrowsePath(Vec<(u16, String)>),
}

/// Every namespace URI parsed so far: a device of 10,000 tags on one server names the same
/// few URIs 10,000 times, and a copy each would cost an allocation a tag.
static URIS: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);

fn intern(uri: &str) -> Arc<str> {
    let mut uris = URIS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = uris.get(uri) {
        return known.clone();
    }
    let new: Arc<str> = Arc::from(uri);
    uris.insert(new.clone());
    new
}

const EXPECTED: &str = "expected a NodeId (`ns=2;s=Line1.Speed`, `ns=2;i=1001`, `ns=1;g=<guid>`, `ns=1;b=<base64>`, `nsu=<uri>;s=…`) or a browse path from Objects (`/Objects/2:Plant/2:Speed`)";

impl FromStr for OpcAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(path) = text.strip_prefix('/') {
            return parse_path(path).map(OpcAddress::BrowsePath);
        }
        if let Some(rest) = text.strip_prefix("nsu=") {
            let (uri, id) = rest
                .split_once(';')
                .ok_or_else(|| format!("invalid address `{s}`: {EXPECTED}"))?;
            if uri.is_empty() {
                return Err(format!("invalid address `{s}`: empty namespace URI"));
            }
            let node =
                NodeId::from_str(id).map_err(|_| format!("invalid address `{s}`: {EXPECTED}"))?;
            return Ok(OpcAddress::NamespaceUri {
                uri: intern(uri),
                node,
            });
        }
        NodeId::from_str(text)
            .map(OpcAddress::Node)
            .map_err(|_| format!("invalid address `{s}`: {EXPECTED}"))
    }
}

fn parse_path(path: &str) -> Result<Vec<(u16, String)>, String> {
    let mut parts = path.split('/');
    if parts.next() != Some("Objects") {
        return Err(format!(
            "browse path `/{path}` must start at `/Objects/`; {EXPECTED}"
        ));
    }
    let mut out = Vec::new();
    for part in parts {
        if part.is_empty() {
            return Err(format!("browse path `/{path}` has an empty element"));
        }
        // `2:Speed` is a name in namespace 2; a name without a numeric prefix is in
        // namespace 0, as in the OPC UA text format for relative paths.
        let element = match part.split_once(':') {
            Some((ns, name)) if !ns.is_empty() && ns.bytes().all(|b| b.is_ascii_digit()) => {
                let ns: u16 = ns
                    .parse()
                    .map_err(|_| format!("namespace `{ns}` in `/{path}` is not a u16"))?;
                if name.is_empty() {
                    return Err(format!("browse path `/{path}` has an empty name"));
                }
                (ns, name.to_string())
            }
            _ => (0, part.to_string()),
        };
        out.push(element);
    }
    if out.is_empty() {
        return Err(format!("browse path `/{path}` names no node below Objects"));
    }
    Ok(out)
}

impl OpcAddress {
    pub(crate) fn browse_names(path: &[(u16, String)]) -> Vec<QualifiedName> {
        path.iter()
            .map(|(ns, name)| QualifiedName::new(*ns, name.as_str()))
            .collect()
    }
}

impl fmt::Display for OpcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpcAddress::Node(n) => write!(f, "{n}"),
            OpcAddress::NamespaceUri { uri, node } => {
                // NodeId's Display leaves out `ns=0;`, which is what we want after the URI.
                write!(f, "nsu={uri};{node}")
            }
            OpcAddress::BrowsePath(p) => {
                f.write_str("/Objects")?;
                for (ns, name) in p {
                    write!(f, "/{ns}:{name}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_renders_it_back() {
        for text in [
            "ns=3;s=Line1.Speed",
            "ns=2;i=1001",
            "i=2258",
            "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63",
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
            "nsu=urn:plant:line;s=Line1.Speed",
            "/Objects/2:Plant/2:Line1/2:Speed",
        ] {
            let a: OpcAddress = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(a.to_string(), text);
        }
        assert_eq!(
            "/Objects/Server/ServerStatus".parse::<OpcAddress>(),
            Ok(OpcAddress::BrowsePath(vec![
                (0, "Server".into()),
                (0, "ServerStatus".into())
            ]))
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "Line1.Speed",
            "ns=x;s=a",
            "ns=2;q=1",
            "nsu=;s=a",
            "nsu=urn:a",
            "/Root/2:A",
            "/Objects",
            "/Objects//2:A",
            "/Objects/2:",
            "/Objects/70000:A",
        ] {
            assert!(bad.parse::<OpcAddress>().is_err(), "{bad} was accepted");
        }
    }
}
