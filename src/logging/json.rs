//! The JSON Lines log format: one object per record, on one line,
//! `{"time","level","target","message","fields"}` (documented in docs/logs.md).
//!
//! `fields` holds the record's key-value pairs (numbers and booleans as such, anything else as
//! its text) and, for a counter line, `label` and `counters` ([`super::counter_line`]). Keys
//! keep their order: the envelope's as above, the counters' as logged.

use std::fmt::Display;
use std::io::{self, Write};

use log::Record;
use log::kv::{self, Key, VisitSource};
use serde_json::{Map, Value, json};

use super::counter_line;

/// Writes `record`, logged at `time` (RFC 3339), as one JSON object and a newline.
pub fn write_record(out: &mut dyn Write, time: &dyn Display, record: &Record) -> io::Result<()> {
    let message = record.args().to_string();
    let mut fields = Map::new();
    record
        .key_values()
        .visit(&mut Fields(&mut fields))
        .map_err(io::Error::other)?;
    if let Some(line) = counter_line::parse(&message) {
        fields.insert("label".into(), line.label.into());
        let counters = line
            .counters
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into()))
            .collect();
        fields.insert("counters".into(), Value::Object(counters));
    }
    let line = json!({
        "time": time.to_string(),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": message,
        "fields": fields,
    });
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Collects key-value pairs as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(x) = value.to_f64() {
            // NaN and infinities have no JSON number: null.
            x.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(record: &Record) -> Value {
        let mut out = Vec::new();
        write_record(&mut out, &"2026-01-02T03:04:05.678Z", record).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert!(out.ends_with(b"\n"));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_record_has_the_five_keys() {
        let line = render(
            &Record::builder()
                .args(format_args!("copy {} disconnected", "198.51.100.20:5000"))
                .level(log::Level::Warn)
                .target("tcpcopy::intercept")
                .build(),
        );
        assert_eq!(
            line,
            serde_json::json!({
                "time": "2026-01-02T03:04:05.678Z",
                "level": "WARN",
                "target": "tcpcopy::intercept",
                "message": "copy 198.51.100.20:5000 disconnected",
                "fields": {},
            })
        );
    }

    #[test]
    fn key_values_become_typed_fields() {
        let pairs: [(&str, kv::Value); 5] = [
            ("shard", kv::Value::from(3u64)),
            ("delta", kv::Value::from(-2i64)),
            ("ok", kv::Value::from(true)),
            ("ratio", kv::Value::from(0.25f64)),
            ("peer", kv::Value::from("198.51.100.20:5000")),
        ];
        let line = render(
            &Record::builder()
                .args(format_args!("x"))
                .key_values(&pairs)
                .build(),
        );
        assert_eq!(
            line["fields"],
            serde_json::json!({
                "shard": 3, "delta": -2, "ok": true, "ratio": 0.25, "peer": "198.51.100.20:5000",
            })
        );
    }

    #[test]
    fn a_counter_line_carries_its_counters() {
        let line = render(
            &Record::builder()
                .args(format_args!("copy totals: captured 30, sent 29"))
                .build(),
        );
        assert_eq!(line["message"], "copy totals: captured 30, sent 29");
        assert_eq!(
            line["fields"],
            serde_json::json!({"label": "copy totals", "counters": {"captured": 30, "sent": 29}})
        );
    }

    #[test]
    fn keys_keep_their_order() {
        let mut out = Vec::new();
        let record = Record::builder()
            .args(format_args!("copy: sent 2, captured 3"))
            .level(log::Level::Info)
            .target("t")
            .build();
        write_record(&mut out, &"T", &record).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"time":"T","level":"INFO","target":"t","message":"copy: sent 2, captured 3","fields":{"label":"copy","counters":{"sent":2,"captured":3}}}"#
                .to_owned()
                + "\n"
        );
    }

    #[test]
    fn text_is_escaped_and_stays_on_one_line() {
        let line = render(
            &Record::builder()
                .args(format_args!("bad data: \"\u{1}\"\nnext"))
                .build(),
        );
        assert_eq!(line["message"], "bad data: \"\u{1}\"\nnext");
    }
}
