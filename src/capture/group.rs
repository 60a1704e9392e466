//! Opening one capture per shard on a device as a fanout group: every member joins before
//! any filter lets packets in, since the kernel spreads flows by the group's size at each
//! packet and a flow seen before the last member joined could later move to another member.

use anyhow::Result;

use super::{Fanout, PacketSource};

/// A capture that can be opened without its filter and join a fanout group.
pub trait Unfiltered: PacketSource + Sized + 'static {
    /// The fanout group the capture is a member of.
    fn fanout_group(&self) -> Option<u16>;
    /// Sets the BPF filter: packets flow from here on.
    fn apply_filter(&mut self, filter: &str) -> Result<()>;
}

/// Opens `members` captures with `open` (given the fanout group to create or join, none
/// for a single member), then applies `filter` to each.
pub fn open_group<C: Unfiltered>(
    members: usize,
    filter: &str,
    mut open: impl FnMut(Option<Fanout>) -> Result<C>,
) -> Result<Vec<Box<dyn PacketSource>>> {
    let mut fanout = (members > 1).then_some(Fanout::New);
    let mut opened = Vec::with_capacity(members);
    for _ in 0..members {
        let capture = open(fanout)?;
        if let Some(group) = capture.fanout_group() {
            fanout = Some(Fanout::Join(group));
        }
        opened.push(capture);
    }
    opened
        .into_iter()
        .map(|mut capture| {
            capture.apply_filter(filter)?;
            Ok(Box::new(capture) as Box<dyn PacketSource>)
        })
        .collect()
}
