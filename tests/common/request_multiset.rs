//! Comparing what two servers logged request by request: each side's requests as a multiset
//! (how many times each request occurs), so a lost request and a duplicated one never cancel
//! out as they do in totals.

use std::collections::BTreeMap;
use std::fmt::Debug;

use super::access_log::AccessEntry;

/// A logged request with the client address left out: in assistant mode the target sees the
/// client rewritten into 203.0.113.0/24, but with its own port. (port, method, path, status,
/// request length, bytes sent.)
pub type RequestKey = (u16, String, String, u16, u64, u64);

impl AccessEntry {
    /// What identifies this request on both servers.
    pub fn key(&self) -> RequestKey {
        (
            self.client.port(),
            self.method.clone(),
            self.uri.clone(),
            self.status,
            self.request_length,
            self.bytes_sent,
        )
    }
}

/// How many times each item occurs.
pub fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

/// The first `limit` items whose counts differ: (item, expected count, actual count).
pub fn multiset_differences<T: Ord + Clone>(
    expected: &BTreeMap<T, usize>,
    actual: &BTreeMap<T, usize>,
    limit: usize,
) -> Vec<(T, usize, usize)> {
    let count = |set: &BTreeMap<T, usize>, item: &T| set.get(item).copied().unwrap_or(0);
    expected
        .keys()
        .chain(actual.keys().filter(|item| !expected.contains_key(*item)))
        .filter(|item| count(expected, item) != count(actual, item))
        .take(limit)
        .map(|item| (item.clone(), count(expected, item), count(actual, item)))
        .collect()
}

/// Items of `actual` that occur more often than in `allowed` (duplicated, or never made):
/// (item, allowed count, actual count).
pub fn multiset_excess<T: Ord + Clone + Debug>(
    allowed: &BTreeMap<T, usize>,
    actual: &BTreeMap<T, usize>,
) -> Vec<(T, usize, usize)> {
    actual
        .iter()
        .filter(|(item, count)| allowed.get(*item).copied().unwrap_or(0) < **count)
        .map(|(item, count)| {
            (
                item.clone(),
                allowed.get(item).copied().unwrap_or(0),
                *count,
            )
        })
        .collect()
}

/// The requests of `entries`, as a multiset.
pub fn requests(entries: &[AccessEntry]) -> BTreeMap<RequestKey, usize> {
    multiset(entries.iter().map(AccessEntry::key))
}

/// Asserts that the target logged exactly the online server's requests, each as many times;
/// `context` (e.g. the totals) ends the message.
pub fn assert_same_requests(online: &[AccessEntry], target: &[AccessEntry], context: &str) {
    let differences = multiset_differences(&requests(online), &requests(target), 10);
    assert!(
        differences.is_empty(),
        "the target logged {} requests for the online server's {}; first differences \
         ((port, method, path, status, request length, bytes sent), online count, target \
         count): {differences:?}{context}",
        target.len(),
        online.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_and_a_duplicated_item_do_not_cancel_out() {
        let expected = multiset(["a", "b", "c"]);
        let actual = multiset(["a", "a", "c"]);
        assert_eq!(
            multiset_differences(&expected, &actual, 10),
            vec![("a", 1, 2), ("b", 1, 0)]
        );
        assert_eq!(multiset_excess(&expected, &actual), vec![("a", 1, 2)]);
        assert!(multiset_excess(&actual, &multiset(["a", "c"])).is_empty());
    }
}
