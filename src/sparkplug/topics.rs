//! Sparkplug B 3.0 topic names: `spBv1.0/<group>/<TYPE>/<edge node>[/<device>]` and the
//! 3.0 host state topic `spBv1.0/STATE/<host id>` (not the 2.x `STATE/<id>` form that
//! sparkplug-rs's helpers build).

const NAMESPACE: &str = "spBv1.0";

/// The topics of one edge node.
#[derive(Debug, Clone)]
pub struct Topics {
    group: String,
    node: String,
}

/// What an incoming message is, by its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    NodeCommand,
    DeviceCommand(&'a str),
    HostState(&'a str),
    Other,
}

impl Topics {
    pub fn new(group: &str, node: &str) -> Topics {
        Topics {
            group: group.to_string(),
            node: node.to_string(),
        }
    }

    fn node_topic(&self, kind: &str) -> String {
        format!("{NAMESPACE}/{}/{kind}/{}", self.group, self.node)
    }

    fn device_topic(&self, kind: &str, device: &str) -> String {
        format!("{NAMESPACE}/{}/{kind}/{}/{device}", self.group, self.node)
    }

    pub fn nbirth(&self) -> String {
        self.node_topic("NBIRTH")
    }
    pub fn ndeath(&self) -> String {
        self.node_topic("NDEATH")
    }
    pub fn ndata(&self) -> String {
        self.node_topic("NDATA")
    }
    pub fn ncmd(&self) -> String {
        self.node_topic("NCMD")
    }
    pub fn dbirth(&self, device: &str) -> String {
        self.device_topic("DBIRTH", device)
    }
    pub fn ddeath(&self, device: &str) -> String {
        self.device_topic("DDEATH", device)
    }
    pub fn ddata(&self, device: &str) -> String {
        self.device_topic("DDATA", device)
    }
    /// All of this node's device commands.
    pub fn dcmd_filter(&self) -> String {
        self.device_topic("DCMD", "+")
    }
    pub fn state(host_id: &str) -> String {
        format!("{NAMESPACE}/STATE/{host_id}")
    }

    /// Classifies an incoming topic; anything not addressed to this node is `Other`.
    pub fn classify<'a>(&self, topic: &'a str) -> Incoming<'a> {
        let mut parts = topic.split('/');
        if parts.next() != Some(NAMESPACE) {
            return Incoming::Other;
        }
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("STATE"), Some(host), None, None, None) => Incoming::HostState(host),
            (Some(g), Some("NCMD"), Some(n), None, None) if g == self.group && n == self.node => {
                Incoming::NodeCommand
            }
            (Some(g), Some("DCMD"), Some(n), Some(d), None)
                if g == self.group && n == self.node =>
            {
                Incoming::DeviceCommand(d)
            }
            _ => Incoming::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_classifies() {
        let t = Topics::new("plant", "edge1");
        assert_eq!(t.nbirth(), "spBv1.0/plant/NBIRTH/edge1");
        assert_eq!(t.ddata("press3"), "spBv1.0/plant/DDATA/edge1/press3");
        assert_eq!(Topics::state("scada"), "spBv1.0/STATE/scada");
        assert_eq!(t.classify(&t.ncmd()), Incoming::NodeCommand);
        assert_eq!(
            t.classify("spBv1.0/plant/DCMD/edge1/press3"),
            Incoming::DeviceCommand("press3")
        );
        assert_eq!(
            t.classify("spBv1.0/STATE/scada"),
            Incoming::HostState("scada")
        );
        assert_eq!(t.classify("spBv1.0/other/NCMD/edge1"), Incoming::Other);
        assert_eq!(t.classify("spBv1.0/plant/DCMD/edge1/a/b"), Incoming::Other);
        assert_eq!(t.classify("garbage"), Incoming::Other);
    }
}
