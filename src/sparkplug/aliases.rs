//! Metric aliases, in one place: node metrics below [`TAG_ALIAS_BASE`], a tag at the base
//! plus its TagId. Unique per node and stable for as long as the config is; a reload that
//! changes the tag set re-births, which announces the new ones.

use crate::model::TagId;

/// The node control metric a host writes to ask for a re-birth.
pub(super) const REBIRTH: &str = "Node Control/Rebirth";
pub(super) const REBIRTH_ALIAS: u64 = 1;
/// The node control metric a host writes to move the node to its next MQTT server.
pub(super) const NEXT_SERVER: &str = "Node Control/Next Server";
pub(super) const NEXT_SERVER_ALIAS: u64 = 9;
/// The first tag alias; below it, the node's own metrics.
const TAG_ALIAS_BASE: u64 = 100;

/// The node diagnostics published in NBIRTH and, when they change, in NDATA.
pub(super) const DIAGNOSTICS: [(&str, u64); 7] = [
    ("Node Info/Store Backlog Records", 2),
    ("Node Info/Store Backlog Bytes", 3),
    ("Node Info/Store Dropped Records", 4),
    ("Node Info/Devices Online", 5),
    ("Node Info/Samples Published", 6),
    ("Alarms/Active", 7),
    ("Alarms/Transitions", 8),
];
/// The diagnostics' values, in [`DIAGNOSTICS`] order.
pub(super) type Diagnostics = [u64; DIAGNOSTICS.len()];

/// A tag's alias.
pub fn of_tag(tag: TagId) -> u64 {
    TAG_ALIAS_BASE + u64::from(tag.0)
}

/// The tag an alias names, if it names one (it may still be past the table's end).
pub fn tag(alias: u64) -> Option<TagId> {
    alias
        .checked_sub(TAG_ALIAS_BASE)
        .and_then(|id| u32::try_from(id).ok())
        .map(TagId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_node_metrics_never_share_an_alias() {
        assert_eq!(tag(of_tag(TagId(0))), Some(TagId(0)));
        assert_eq!(tag(of_tag(TagId(u32::MAX))), Some(TagId(u32::MAX)));
        assert_eq!(tag(REBIRTH_ALIAS), None);
        assert_eq!(tag(NEXT_SERVER_ALIAS), None);
        assert_ne!(REBIRTH_ALIAS, NEXT_SERVER_ALIAS);
        for (_, alias) in DIAGNOSTICS {
            assert!(alias != REBIRTH_ALIAS && alias != NEXT_SERVER_ALIAS && tag(alias).is_none());
        }
        assert_eq!(tag(TAG_ALIAS_BASE + (1 << 33)), None);
    }
}
