//! The NFQUEUE rules of the OUTPUT chain, read from `iptables -S OUTPUT` (or ip6tables):
//! which queue each sends to, whether it lets packets bypass a queue nobody reads, and the
//! destinations (the copies' client addresses) it queues the replies to.
//! Only the OUTPUT chain itself is read, not chains it jumps to.

use std::net::IpAddr;

/// One `-A OUTPUT ... -j NFQUEUE` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRule {
    /// The rule as listed.
    pub text: String,
    /// The queues it sends to: `--queue-num N` (0 when absent), or `--queue-balance A:B`.
    pub first: u16,
    pub last: u16,
    /// `--queue-bypass`: with no reader bound, packets pass instead of being dropped.
    pub bypass: bool,
    /// `-d NET` as listed (`None` without one, or negated with `!`).
    pub destination: Option<String>,
}

impl QueueRule {
    pub fn sends_to(&self, queue: u16) -> bool {
        (self.first..=self.last).contains(&queue)
    }

    /// The first address of the `-d` network, for a route lookup.
    pub fn destination_addr(&self) -> Option<IpAddr> {
        let net = self.destination.as_deref()?;
        net.split('/').next()?.parse().ok()
    }
}

/// The NFQUEUE rules of `listing` (the output of `iptables -S OUTPUT`).
pub fn queue_rules(listing: &str) -> Vec<QueueRule> {
    listing.lines().filter_map(queue_rule).collect()
}

fn queue_rule(line: &str) -> Option<QueueRule> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() != Some(&"-A") || words.get(1) != Some(&"OUTPUT") {
        return None;
    }
    let position = |flag: &str| words.iter().position(|word| *word == flag);
    let after = |flag: &str| position(flag).and_then(|at| words.get(at + 1).copied());
    let negated = |flag: &str| position(flag).is_some_and(|at| at > 0 && words[at - 1] == "!");
    if after("-j") != Some("NFQUEUE") {
        return None;
    }
    let (first, last) = match (after("--queue-num"), after("--queue-balance")) {
        (Some(num), _) => {
            let num = num.parse().ok()?;
            (num, num)
        }
        (None, Some(range)) => {
            let (first, last) = range.split_once(':')?;
            (first.parse().ok()?, last.parse().ok()?)
        }
        (None, None) => (0, 0),
    };
    Some(QueueRule {
        text: line.trim().to_string(),
        first,
        last,
        bypass: words.contains(&"--queue-bypass"),
        destination: after("-d").filter(|_| !negated("-d")).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_queue_of_each_nfqueue_rule_of_output() {
        let listing = "-P OUTPUT ACCEPT\n\
            -A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --sport 80 -j NFQUEUE --queue-num 3\n\
            -A OUTPUT -p tcp -j NFQUEUE\n\
            -A OUTPUT -p tcp -j NFQUEUE --queue-balance 4:7 --queue-bypass\n\
            -A OUTPUT -p tcp -j ACCEPT\n\
            -A INPUT -p tcp -j NFQUEUE --queue-num 9\n\
            -A OUTPUT -j NFQUEUE --queue-num many\n";
        let rules = queue_rules(listing);
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(rules[0].sends_to(3) && !rules[0].sends_to(0) && !rules[0].bypass);
        assert!(rules[0].text.starts_with("-A OUTPUT -d 198.51.100.0/24"));
        assert!(rules[1].sends_to(0), "no --queue-num is queue 0");
        assert!(rules[2].sends_to(5) && !rules[2].sends_to(8) && rules[2].bypass);
        assert!(queue_rules("").is_empty());
        assert_eq!(rules[0].destination.as_deref(), Some("198.51.100.0/24"));
        assert_eq!(
            rules[0].destination_addr(),
            Some("198.51.100.0".parse().unwrap())
        );
        assert_eq!(rules[1].destination, None);
        let negated = queue_rules("-A OUTPUT ! -d 203.0.113.0/24 -p tcp -j NFQUEUE");
        assert_eq!(
            negated[0].destination, None,
            "a negated -d names no clients"
        );
        let v6 = queue_rules("-A OUTPUT -d 2001:db8:1::/64 -p tcp -j NFQUEUE --queue-num 2");
        assert_eq!(
            v6[0].destination_addr(),
            Some("2001:db8:1::".parse().unwrap())
        );
    }
}
