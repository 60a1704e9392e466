//! `--metrics ADDR:PORT`: copy's and intercept's counters and gauges as `GET /metrics`, in
//! the Prometheus text format.
//!
//! - [`Exposition`] (this file): what one process exposes, read at each scrape from the
//!   shared [`Counters`] and the gauges' owners; prometheus-client encodes it. Nothing on
//!   the data path changes for a scrape.
//! - `http`: the one request this endpoint answers, as bytes in, bytes out (pure).
//! - `server`: the listener thread (I/O).

mod http;
mod server;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{BOUNDS_US, Counter, Counters, DelaySnapshot};

pub use server::MetricsServer;

/// The prefix of every metric name.
const PREFIX: &str = "tcpcopy";

/// A gauge's values at one scrape: one for the process, or one per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaugeFamily {
    /// The name after `tcpcopy_`, e.g. `sessions_tracked`.
    pub name: &'static str,
    pub help: &'static str,
    pub values: GaugeValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaugeValues {
    /// One count for the whole process.
    Process(usize),
    /// One count per shard, labelled `shard="N"`.
    PerShard(Vec<usize>),
}

/// Reads the gauges of a process at scrape time.
pub type ReadGauges = Box<dyn Fn() -> Vec<GaugeFamily> + Send + Sync>;

/// What one process (`role` copy or intercept) exposes: each of `shown` as
/// `tcpcopy_<name>_total{role}`, and the gauges `read_gauges` returns.
pub struct Exposition {
    role: &'static str,
    counters: Arc<Counters>,
    shown: &'static [Counter],
    read_gauges: ReadGauges,
    request_delays: bool,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposition")
            .field("role", &self.role)
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Exposition {
    pub fn new(
        role: &'static str,
        counters: Arc<Counters>,
        shown: &'static [Counter],
        read_gauges: ReadGauges,
    ) -> Exposition {
        Exposition {
            role,
            counters,
            shown,
            read_gauges,
            request_delays: false,
        }
    }

    /// Also exposes `tcpcopy_request_delay_seconds`, the histogram of how long after capture
    /// each request went to the target (copy).
    pub fn with_request_delays(self) -> Exposition {
        Exposition {
            request_delays: true,
            ..self
        }
    }

    /// The registry a scrape encodes: every metric labelled with the role.
    fn into_registry(self) -> Registry {
        let role = (Cow::Borrowed("role"), Cow::Borrowed(self.role));
        let mut registry = Registry::with_prefix_and_labels(PREFIX, std::iter::once(role));
        registry.register_collector(Box::new(self));
        registry
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = self.counters.snapshot();
        for &counter in self.shown {
            let metric = ConstCounter::new(snapshot.get(counter));
            let family = encoder.encode_descriptor(
                counter.name(),
                counter.help(),
                None,
                metric.metric_type(),
            )?;
            metric.encode(family)?;
        }
        for gauge in (self.read_gauges)() {
            let kind = ConstGauge::new(0usize).metric_type();
            let mut family = encoder.encode_descriptor(gauge.name, gauge.help, None, kind)?;
            match gauge.values {
                GaugeValues::Process(value) => ConstGauge::new(value).encode(family)?,
                GaugeValues::PerShard(values) => {
                    for (shard, value) in values.into_iter().enumerate() {
                        let labels = [("shard", shard.to_string())];
                        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        if self.request_delays {
            let histogram = DelayHistogramMetric(self.counters.request_delays());
            let family = encoder.encode_descriptor(
                "request_delay_seconds",
                "How long after copy read a request its first byte went to the target.",
                None,
                histogram.metric_type(),
            )?;
            histogram.encode(family)?;
        }
        Ok(())
    }
}

/// A [`DelaySnapshot`] as a Prometheus histogram, in seconds.
struct DelayHistogramMetric(DelaySnapshot);

impl EncodeMetric for DelayHistogramMetric {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let bounds = BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds.zip(self.0.buckets).collect();
        let sum = self.0.sum_us as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, self.0.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The exposition text of `registry` (Prometheus text format 0.0.4).
fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail, and our collector does not fail either.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(gauges: Vec<GaugeFamily>) -> Registry {
        let counters = Arc::new(Counters::default());
        counters.add(Counter::RequestsSent, 42);
        counters.add(Counter::SessionsOpened, 7);
        Exposition::new(
            "copy",
            counters,
            &[Counter::RequestsSent, Counter::SessionsOpened],
            Box::new(move || gauges.clone()),
        )
        .into_registry()
    }

    #[test]
    fn counters_are_totals_with_the_role() {
        let text = render(&exposition(Vec::new()));
        assert!(
            text.contains(
                "# HELP tcpcopy_requests_sent_total Requests released to the target.\n\
                 # TYPE tcpcopy_requests_sent_total counter\n\
                 tcpcopy_requests_sent_total{role=\"copy\"} 42\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("tcpcopy_sessions_opened_total{role=\"copy\"} 7\n"),
            "{text}"
        );
        assert!(
            !text.contains("captured"),
            "only the shown counters: {text}"
        );
    }

    #[test]
    fn gauges_per_process_and_per_shard() {
        let text = render(&exposition(vec![
            GaugeFamily {
                name: "sessions_tracked",
                help: "Sessions being replayed now.",
                values: GaugeValues::PerShard(vec![3, 4]),
            },
            GaugeFamily {
                name: "copies_connected",
                help: "Copy processes connected now.",
                values: GaugeValues::Process(2),
            },
        ]));
        for line in [
            "# TYPE tcpcopy_sessions_tracked gauge\n",
            "tcpcopy_sessions_tracked{role=\"copy\",shard=\"0\"} 3\n",
            "tcpcopy_sessions_tracked{role=\"copy\",shard=\"1\"} 4\n",
            "tcpcopy_copies_connected{role=\"copy\"} 2\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }

    /// What `--metrics` writes, `stats live` reads back: every counter and gauge, same value.
    #[test]
    fn stats_live_reads_back_every_value() {
        let counters = Arc::new(Counters::default());
        for (i, &counter) in Counter::ALL.iter().enumerate() {
            counters.add(counter, 1_000 + i as u64);
        }
        let gauges = vec![GaugeFamily {
            name: "sessions_tracked",
            help: "Sessions \\ in \"the\" table.",
            values: GaugeValues::PerShard(vec![5, 6]),
        }];
        let registry = Exposition::new(
            "copy",
            Arc::clone(&counters),
            Counter::ALL,
            Box::new(move || gauges.clone()),
        )
        .into_registry();
        let samples = crate::stats::live::exposition::parse(&render(&registry)).unwrap();
        let mut reading = crate::stats::live::exposition::Reading::default();
        reading.add(&samples);
        for &counter in Counter::ALL {
            assert_eq!(
                reading.counter("copy", counter.name()),
                counters.get(counter) as f64
            );
        }
        let shards: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == "tcpcopy_sessions_tracked")
            .map(|s| s.value)
            .collect();
        assert_eq!(shards, [5.0, 6.0]);
    }

    #[test]
    fn request_delays_are_a_histogram_in_seconds() {
        let counters = Arc::new(Counters::default());
        let mut local = crate::stats::LocalCounters::default();
        local.record_request_delay(std::time::Duration::from_micros(300));
        local.record_request_delay(std::time::Duration::from_secs(20));
        local.flush_into(&counters);
        let registry = Exposition::new("copy", counters, &[], Box::new(Vec::new))
            .with_request_delays()
            .into_registry();
        let text = render(&registry);
        for line in [
            "# TYPE tcpcopy_request_delay_seconds histogram\n",
            "tcpcopy_request_delay_seconds_count{role=\"copy\"} 2\n",
            "tcpcopy_request_delay_seconds_sum{role=\"copy\"} 20.0003\n",
            "tcpcopy_request_delay_seconds_bucket{role=\"copy\",le=\"0.0001\"} 0\n",
            "tcpcopy_request_delay_seconds_bucket{role=\"copy\",le=\"0.0005\"} 1\n",
            "tcpcopy_request_delay_seconds_bucket{role=\"copy\",le=\"10\"} 1\n",
            "tcpcopy_request_delay_seconds_bucket{role=\"copy\",le=\"+Inf\"} 2\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        let samples = crate::stats::live::exposition::parse(&text).unwrap();
        assert!(
            samples
                .iter()
                .any(|s| s.name == "tcpcopy_request_delay_seconds_count")
        );
    }

    #[test]
    fn every_scrape_reads_the_counters_anew() {
        let counters = Arc::new(Counters::default());
        let registry = Exposition::new(
            "intercept",
            Arc::clone(&counters),
            &[Counter::RepliesRouted],
            Box::new(Vec::new),
        )
        .into_registry();
        assert!(render(&registry).contains("tcpcopy_replies_routed_total{role=\"intercept\"} 0\n"));
        counters.add(Counter::RepliesRouted, 5);
        assert!(render(&registry).contains("tcpcopy_replies_routed_total{role=\"intercept\"} 5\n"));
    }
}
