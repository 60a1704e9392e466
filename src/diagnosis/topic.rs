//! The sections of docs/troubleshooting.md that messages link to, by their anchors (each
//! section starts with `<a id="ANCHOR"></a>`; a test keeps the two in step).

/// The troubleshooting guide, as messages name it.
pub const GUIDE: &str = "docs/troubleshooting.md";

/// One section of the troubleshooting guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    NoSynAck,
    PathProbe,
    NoIntercept,
    TargetRoute,
    RpFilter,
    IpForward,
    NfqueueRule,
    NothingQueued,
    CaptureFilter,
    AntiSpoofing,
    Capabilities,
    Interface,
    MappingAddress,
    InterceptReachable,
    RouteToTarget,
    TargetPort,
}

impl Topic {
    pub const ALL: &'static [Topic] = &[
        Topic::NoSynAck,
        Topic::PathProbe,
        Topic::NoIntercept,
        Topic::TargetRoute,
        Topic::RpFilter,
        Topic::IpForward,
        Topic::NfqueueRule,
        Topic::NothingQueued,
        Topic::CaptureFilter,
        Topic::AntiSpoofing,
        Topic::Capabilities,
        Topic::Interface,
        Topic::MappingAddress,
        Topic::InterceptReachable,
        Topic::RouteToTarget,
        Topic::TargetPort,
    ];

    pub fn anchor(self) -> &'static str {
        match self {
            Topic::NoSynAck => "no-syn-ack",
            Topic::PathProbe => "path-probe",
            Topic::NoIntercept => "no-intercept",
            Topic::TargetRoute => "target-route",
            Topic::RpFilter => "rp-filter",
            Topic::IpForward => "ip-forward",
            Topic::NfqueueRule => "nfqueue-rule",
            Topic::NothingQueued => "nothing-queued",
            Topic::CaptureFilter => "capture-filter",
            Topic::AntiSpoofing => "anti-spoofing",
            Topic::Capabilities => "capabilities",
            Topic::Interface => "interface",
            Topic::MappingAddress => "mapping-address",
            Topic::InterceptReachable => "intercept-reachable",
            Topic::RouteToTarget => "route-to-target",
            Topic::TargetPort => "target-port",
        }
    }

    /// `see docs/troubleshooting.md#ANCHOR`.
    pub fn see(self) -> String {
        format!("see {GUIDE}#{}", self.anchor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_its_section_in_the_guide() {
        let guide = include_str!("../../docs/troubleshooting.md");
        for topic in Topic::ALL {
            let anchor = format!("<a id=\"{}\"></a>", topic.anchor());
            assert!(guide.contains(&anchor), "{GUIDE} lacks {anchor}");
        }
    }
}
