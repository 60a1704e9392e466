//! What `stats compare` reports, from the records `copy --compare` wrote: the requests
//! matched and unmatched, both sides' latency percentiles (overall and per group), the
//! outcome matrix, the heads whose outcome differs most, and the reply size differences.
//! Pure: records in, a [`Summary`] out.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::cli::GroupBy;
use crate::compare::protocol::group;
use crate::compare::{Record, SideRecord};

/// Latency percentiles of one side, in µs (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `values`; `None` when there are none.
    pub fn of(values: &mut [u64]) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index]
        };
        Some(Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values[values.len() - 1],
        })
    }
}

/// Both sides' latencies and their ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// How many requests they are of: matched, both sides answered.
    pub count: u64,
    pub online: Option<Percentiles>,
    pub target: Option<Percentiles>,
}

impl Latency {
    /// `target / online` of each percentile; `None` where the online one is 0 or missing.
    pub fn ratios(&self) -> [Option<f64>; 4] {
        let pick = |p: &Percentiles| [p.p50, p.p90, p.p99, p.max];
        match (&self.online, &self.target) {
            (Some(online), Some(target)) => {
                let (online, target) = (pick(online), pick(target));
                std::array::from_fn(|i| {
                    (online[i] > 0).then(|| target[i] as f64 / online[i] as f64)
                })
            }
            _ => [None; 4],
        }
    }
}

/// One row of the group table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    pub requests: u64,
    pub differing: u64,
    pub latency_us: Latency,
}

/// A request head (group) whose outcome differs, with one example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Differing {
    pub key: String,
    pub count: u64,
    /// The outcome of the example: `ONLINE->TARGET`.
    pub outcome: String,
    pub example: Example,
}

/// One request that shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub time: String,
    pub client: String,
    pub head: String,
}

impl Example {
    fn of(record: &Record) -> Example {
        Example {
            time: record.time.clone(),
            client: record.client.clone(),
            head: record.head.clone(),
        }
    }
}

/// Reply sizes of the matched requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizes {
    /// Matched requests whose reply sizes differ.
    pub differing: u64,
    pub online_bytes: u64,
    pub target_bytes: u64,
    /// The groups with the largest total size difference, with one example.
    pub largest: Vec<SizeDifference>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeDifference {
    pub key: String,
    pub count: u64,
    /// Sum of `target - online` bytes over the group's differing requests.
    pub bytes: i64,
    pub example: Example,
    /// The example's sizes.
    pub online: u64,
    pub target: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub records: u64,
    pub matched: u64,
    pub unmatched_online: u64,
    pub unmatched_target: u64,
    /// Unmatched records by why: `online only`, `target only`, `pipelined`.
    pub unmatched: BTreeMap<String, u64>,
    /// Records by protocol.
    pub protocols: BTreeMap<String, u64>,
    /// Time to the first reply byte.
    pub latency_us: Latency,
    /// Time to the last reply byte.
    pub latency_last_us: Latency,
    /// Matched requests by `ONLINE->TARGET` class.
    pub outcomes: BTreeMap<String, u64>,
    /// Matched requests whose outcomes could be compared, and of those that differ.
    pub compared: u64,
    pub differing: u64,
    /// `differing / compared`; `None` when nothing could be compared.
    pub mismatch: Option<f64>,
    /// The target side has reply heads (false: a TCPCopy 1.x intercept, whose replies
    /// carry only headers: no classes, timing from copy's own view).
    pub target_heads: bool,
    pub groups: Vec<Group>,
    pub top_differing: Vec<Differing>,
    pub sizes: Sizes,
    /// The latencies behind the percentiles (for the chart), not serialized.
    #[serde(skip)]
    pub first_byte_us: (Vec<u64>, Vec<u64>),
}

/// Both sides' first-byte and last-byte latencies of a matched record with both replies.
fn latencies(record: &Record) -> Option<[(u64, u64); 2]> {
    let (online, target) = (record.online.as_ref()?, record.target.as_ref()?);
    if !record.matched {
        return None;
    }
    let side = |side: &SideRecord| Some((side.first_byte_us?, side.last_byte_us?));
    Some([side(online)?, side(target)?])
}

/// Latency of the records behind `latencies`.
fn latency(mut online: Vec<u64>, mut target: Vec<u64>) -> Latency {
    Latency {
        count: online.len() as u64,
        online: Percentiles::of(&mut online),
        target: Percentiles::of(&mut target),
    }
}

/// The key of `record`'s group.
fn key(record: &Record, by: GroupBy) -> String {
    match by {
        GroupBy::Head => group(record.protocol, &record.head),
        GroupBy::Status => record
            .online
            .as_ref()
            .and_then(|online| online.class.clone())
            .unwrap_or_else(|| "-".to_owned()),
    }
}

/// The summary of `records`: groups by `by`, at most `top` rows in each list.
pub fn summarize(records: &[Record], by: GroupBy, top: usize) -> Summary {
    let mut summary = Summary {
        records: records.len() as u64,
        matched: 0,
        unmatched_online: 0,
        unmatched_target: 0,
        unmatched: BTreeMap::new(),
        protocols: BTreeMap::new(),
        latency_us: latency(Vec::new(), Vec::new()),
        latency_last_us: latency(Vec::new(), Vec::new()),
        outcomes: BTreeMap::new(),
        compared: 0,
        differing: 0,
        mismatch: None,
        target_heads: false,
        groups: Vec::new(),
        top_differing: Vec::new(),
        sizes: Sizes {
            differing: 0,
            online_bytes: 0,
            target_bytes: 0,
            largest: Vec::new(),
        },
        first_byte_us: (Vec::new(), Vec::new()),
    };
    let (mut first, mut last) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let mut groups: HashMap<String, (u64, u64, Vec<u64>, Vec<u64>)> = HashMap::new();
    let mut differing: HashMap<String, (u64, &Record)> = HashMap::new();
    let mut sizes: HashMap<String, (u64, i64, &Record)> = HashMap::new();
    let mut target_replies = (0u64, 0u64);
    for record in records {
        *summary
            .protocols
            .entry(record.protocol.name().to_owned())
            .or_default() += 1;
        if !record.matched {
            summary.unmatched_online += u64::from(record.online.is_some());
            summary.unmatched_target += u64::from(record.target.is_some());
            let why = record.why.clone().unwrap_or_default();
            *summary.unmatched.entry(why).or_default() += 1;
            continue;
        }
        summary.matched += 1;
        *summary.outcomes.entry(record.outcome()).or_default() += 1;
        let group_key = key(record, by);
        let row = groups.entry(group_key).or_default();
        row.0 += 1;
        if let Some(differs) = record.differs {
            summary.compared += 1;
            summary.differing += u64::from(differs);
            row.1 += u64::from(differs);
            if differs {
                let head = key(record, GroupBy::Head);
                differing.entry(head).or_insert((0, record)).0 += 1;
            }
        }
        if let Some([(online_first, online_last), (target_first, target_last)]) = latencies(record)
        {
            first.0.push(online_first);
            first.1.push(target_first);
            last.0.push(online_last);
            last.1.push(target_last);
            row.2.push(online_first);
            row.3.push(target_first);
        }
        if let (Some(online), Some(target)) = (&record.online, &record.target) {
            summary.sizes.online_bytes += online.bytes;
            summary.sizes.target_bytes += target.bytes;
            if target.bytes > 0 {
                target_replies.0 += 1;
                target_replies.1 += u64::from(target.head.is_some());
            }
            if online.bytes != target.bytes {
                summary.sizes.differing += 1;
                let entry = sizes
                    .entry(key(record, GroupBy::Head))
                    .or_insert((0, 0, record));
                entry.0 += 1;
                entry.1 += target.bytes as i64 - online.bytes as i64;
            }
        }
    }
    summary.target_heads = target_replies.0 == 0 || target_replies.1 > 0;
    summary.mismatch =
        (summary.compared > 0).then(|| summary.differing as f64 / summary.compared as f64);
    summary.first_byte_us = (first.0.clone(), first.1.clone());
    summary.latency_us = latency(first.0, first.1);
    summary.latency_last_us = latency(last.0, last.1);
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(key, (requests, differing, online, target))| Group {
            key,
            requests,
            differing,
            latency_us: latency(online, target),
        })
        .collect();
    groups.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
    groups.truncate(top);
    summary.groups = groups;
    let mut differing: Vec<Differing> = differing
        .into_iter()
        .map(|(key, (count, record))| Differing {
            key,
            count,
            outcome: record.outcome(),
            example: Example::of(record),
        })
        .collect();
    differing.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    differing.truncate(top);
    summary.top_differing = differing;
    let mut largest: Vec<SizeDifference> = sizes
        .into_iter()
        .map(|(key, (count, bytes, record))| SizeDifference {
            key,
            count,
            bytes,
            example: Example::of(record),
            online: record.online.as_ref().map_or(0, |side| side.bytes),
            target: record.target.as_ref().map_or(0, |side| side.bytes),
        })
        .collect();
    largest.sort_by(|a, b| {
        b.bytes
            .unsigned_abs()
            .cmp(&a.bytes.unsigned_abs())
            .then_with(|| a.key.cmp(&b.key))
    });
    largest.truncate(top);
    summary.sizes.largest = largest;
    summary
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::compare::Protocol;
    use crate::compare::side::End;

    fn side(class: &str, bytes: u64, first: u64) -> SideRecord {
        SideRecord {
            head: Some(format!("HTTP/1.1 {class} X")),
            class: Some(class.to_owned()),
            bytes,
            first_byte_us: Some(first),
            last_byte_us: Some(first + 10),
            end: End::NextRequest,
        }
    }

    /// A matched HTTP record of `head` answered `online` and `target` after `delay` µs.
    pub fn record(head: &str, online: &str, target: &str, delay: (u64, u64)) -> Record {
        let bytes = |class: &str| if class == "200" { 612 } else { 153 };
        Record {
            time: "2026-10-10T03:08:00.000001Z".to_owned(),
            client: "198.51.100.10:40000".to_owned(),
            server: "198.51.100.20:80".to_owned(),
            protocol: Protocol::Http,
            head: head.to_owned(),
            request_bytes: 80,
            online: Some(side(online, bytes(online), delay.0)),
            target: Some(side(target, bytes(target), delay.1)),
            matched: true,
            why: None,
            differs: Some(online != target),
        }
    }

    pub fn records() -> Vec<Record> {
        let mut records: Vec<Record> = (0..8)
            .map(|i| {
                record(
                    &format!("GET /a?i={i} HTTP/1.1"),
                    "200",
                    "200",
                    (100 + i, 20_100 + i),
                )
            })
            .collect();
        records.push(record("GET /missing HTTP/1.1", "200", "404", (100, 20_200)));
        records.push(record(
            "GET /missing?x=1 HTTP/1.1",
            "200",
            "404",
            (100, 20_200),
        ));
        let mut online_only = record("GET /b HTTP/1.1", "200", "200", (100, 0));
        (
            online_only.target,
            online_only.matched,
            online_only.why,
            online_only.differs,
        ) = (None, false, Some("online only".to_owned()), None);
        records.push(online_only);
        records
    }

    #[test]
    fn counts_outcomes_and_the_mismatch() {
        let summary = summarize(&records(), GroupBy::Head, 10);
        assert_eq!((summary.records, summary.matched), (11, 10));
        assert_eq!((summary.unmatched_online, summary.unmatched_target), (1, 0));
        assert_eq!(summary.unmatched["online only"], 1);
        assert_eq!(summary.outcomes["200->200"], 8);
        assert_eq!(summary.outcomes["200->404"], 2);
        assert_eq!(
            (summary.compared, summary.differing, summary.mismatch),
            (10, 2, Some(0.2))
        );
        assert!(summary.target_heads);
        let differing = &summary.top_differing[0];
        assert_eq!(
            (
                differing.key.as_str(),
                differing.count,
                differing.outcome.as_str()
            ),
            ("GET /missing", 2, "200->404")
        );
        assert_eq!(summary.sizes.differing, 2);
        assert_eq!(summary.sizes.largest[0].bytes, 2 * (153 - 612));
    }

    #[test]
    fn latency_percentiles_per_side_and_group() {
        let summary = summarize(&records(), GroupBy::Head, 1);
        let latency = &summary.latency_us;
        assert_eq!(latency.count, 10);
        assert_eq!(latency.online.unwrap().p50, 102);
        assert_eq!(latency.target.unwrap().max, 20_200);
        assert!(latency.ratios()[0].unwrap() > 190.0);
        assert_eq!(summary.groups.len(), 1, "--top");
        assert_eq!(
            (summary.groups[0].key.as_str(), summary.groups[0].requests),
            ("GET /a", 8)
        );
        let by_status = summarize(&records(), GroupBy::Status, 10);
        assert_eq!(by_status.groups[0].key, "200");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            Percentiles::of(&mut values),
            Some(Percentiles {
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(
            Percentiles::of(&mut [7]),
            Some(Percentiles {
                p50: 7,
                p90: 7,
                p99: 7,
                max: 7
            })
        );
        assert_eq!(Percentiles::of(&mut []), None);
    }

    #[test]
    fn a_target_without_heads_is_told() {
        let mut records = records();
        for record in &mut records {
            if let Some(target) = &mut record.target {
                (target.head, target.class) = (None, None);
            }
            record.differs = None;
        }
        let summary = summarize(&records, GroupBy::Head, 10);
        assert!(!summary.target_heads);
        assert_eq!((summary.compared, summary.mismatch), (0, None));
        assert_eq!(summary.outcomes["200->-"], 10);
    }
}
