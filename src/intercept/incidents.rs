//! What intercept refuses on its control port, counted every time and logged rate-limited:
//! a stranger who connects in a loop must not fill the log, and the counters still show
//! each refusal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::logging::throttle::{Throttle, suppressed_note};
use crate::stats::{Counter, Counters};

/// How often one kind of refusal is logged at most.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Counts and logs refusals, one log throttle per counter.
#[derive(Debug)]
pub struct Incidents {
    counters: Arc<Counters>,
    throttles: HashMap<Counter, Throttle>,
}

impl Incidents {
    pub fn new(counters: Arc<Counters>) -> Self {
        Incidents {
            counters,
            throttles: HashMap::new(),
        }
    }

    /// Counts one `counter` incident at `now` and warns with `message()` unless one of its
    /// kind was logged less than [`LOG_INTERVAL`] ago.
    pub fn report(&mut self, counter: Counter, now: Instant, message: impl FnOnce() -> String) {
        self.counters.add(counter, 1);
        let throttle = self
            .throttles
            .entry(counter)
            .or_insert_with(|| Throttle::new(LOG_INTERVAL));
        if let Some(suppressed) = throttle.admit(now) {
            let message = message();
            log::warn!(
                "{message}{} [{}]",
                suppressed_note(suppressed),
                counter.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_incident_is_counted_however_few_are_logged() {
        let counters = Arc::new(Counters::default());
        let mut incidents = Incidents::new(Arc::clone(&counters));
        let now = Instant::now();
        let mut logged = 0;
        for _ in 0..1000 {
            incidents.report(Counter::ConnectionsRefused, now, || {
                logged += 1;
                String::from("refused")
            });
        }
        incidents.report(Counter::ConnectionsMalformed, now, || {
            logged += 1;
            String::from("garbage")
        });
        assert_eq!(counters.get(Counter::ConnectionsRefused), 1000);
        assert_eq!(counters.get(Counter::ConnectionsMalformed), 1);
        assert_eq!(logged, 2, "one line per kind");
    }
}
