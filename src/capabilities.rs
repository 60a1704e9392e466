//! Which Linux capabilities this process holds: the effective set (`CapEff` in
//! /proc/self/status), read once per question. Parsing is pure; [`effective`] is the only
//! reader. Nothing here asks for or changes a capability.

/// A capability tcpcopy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Configure networking: bind an NFQUEUE queue.
    NetAdmin,
    /// Open packet captures and raw sockets.
    NetRaw,
}

impl Capability {
    /// The capability's bit in the kernel's sets (linux/capability.h).
    fn bit(self) -> u32 {
        match self {
            Capability::NetAdmin => 12,
            Capability::NetRaw => 13,
        }
    }

    /// The name in capability(7) and setcap(8) style, e.g. `CAP_NET_RAW`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::NetRaw => "CAP_NET_RAW",
        }
    }
}

/// A set of capabilities, as the kernel's bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitySet(u64);

impl CapabilitySet {
    /// The set from its bits.
    pub fn from_bits(bits: u64) -> CapabilitySet {
        CapabilitySet(bits)
    }

    /// The effective set from the text of a /proc/PID/status file; `None` when it has no
    /// readable `CapEff:` line.
    pub fn from_status(status: &str) -> Option<CapabilitySet> {
        let effective = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))?;
        u64::from_str_radix(effective.trim(), 16)
            .ok()
            .map(CapabilitySet)
    }

    pub fn has(self, capability: Capability) -> bool {
        self.0 >> capability.bit() & 1 == 1
    }
}

/// This process's effective capabilities; `None` when /proc/self/status cannot be read.
pub fn effective() -> Option<CapabilitySet> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    CapabilitySet::from_status(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set_of_a_status_file() {
        let status = "Name:\ttcpcopy\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\n\
                      CapEff:\t0000000000002000\n";
        let set = CapabilitySet::from_status(status).unwrap();
        assert!(set.has(Capability::NetRaw));
        assert!(!set.has(Capability::NetAdmin), "CapPrm is not CapEff");
        assert_eq!(CapabilitySet::from_status("Name:\tx\n"), None);
        assert_eq!(CapabilitySet::from_status("CapEff:\tzz\n"), None);
    }

    #[test]
    fn this_process_has_a_readable_set() {
        assert!(effective().is_some(), "/proc/self/status has CapEff");
    }
}
