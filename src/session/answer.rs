//! Which request the target is answering, and how many payload bytes of that answer it has
//! sent: the count the pacer compares with the online server's answer.
//!
//! A reply header carries no payload here, but it says how much payload the target sent and,
//! in its ACK field, how much of the client's stream the target had received when it sent it
//! (the acknowledgement is cumulative, RFC 9293 §3.4). A server cannot answer a request before
//! it has received the request's first byte, so payload whose ACK does not reach past that
//! byte belongs to an earlier answer (the rest of a previous response, when the target answers
//! longer than the online server did) and never counts toward this one. Before the first
//! request of a connection, whatever the target sends is its greeting.
//!
//! [`AnswerMeter`] only counts; the pacer decides what the count means.

use crate::packet::SeqNum;

/// The target's answer to the request in flight (or to the connection itself: its greeting).
#[derive(Debug, Clone, Default)]
pub struct AnswerMeter {
    /// First byte of the request being answered; `None` before the first request of the
    /// connection.
    request: Option<SeqNum>,
    /// Payload bytes the target sent for it.
    bytes: u64,
}

impl AnswerMeter {
    /// A new connection: nothing answered yet; what the target sends first is a greeting.
    pub fn on_connected(&mut self) {
        *self = AnswerMeter::default();
    }

    /// The request whose first byte is `seq` was released: its answer is counted from zero.
    pub fn on_request_sent(&mut self, seq: SeqNum) {
        self.request = Some(seq);
        self.bytes = 0;
    }

    /// The target sent `len` new payload bytes in a segment acknowledging `ack` (`None`
    /// without the ACK flag, which RFC 9293 §3.10.7.4 requires once synchronized). Returns
    /// whether they belong to the answer being counted.
    pub fn on_payload(&mut self, len: usize, ack: Option<SeqNum>) -> bool {
        let belongs = match (self.request, ack) {
            // The target had received the request's first byte when it sent them.
            (Some(first), Some(ack)) => ack > first,
            _ => true,
        };
        if belongs {
            self.bytes += len as u64;
        }
        belongs
    }

    /// Whether the target has sent exactly `online` bytes for the request, as many as the
    /// online server answered it with.
    pub fn matches(&self, online: u32) -> bool {
        self.bytes == u64::from(online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_before_the_first_request_are_the_greeting() {
        let mut meter = AnswerMeter::default();
        assert!(meter.on_payload(30, Some(SeqNum(100))));
        assert!(meter.on_payload(10, None));
        assert!(meter.matches(40));
        meter.on_connected();
        assert!(meter.matches(0));
    }

    #[test]
    fn payload_sent_before_the_request_arrived_belongs_to_an_earlier_answer() {
        let mut meter = AnswerMeter::default();
        meter.on_request_sent(SeqNum(500));
        // The target had not received byte 500 yet: the rest of the previous answer.
        assert!(!meter.on_payload(1460, Some(SeqNum(500))));
        assert!(!meter.on_payload(1460, Some(SeqNum(400))));
        assert!(meter.matches(0));
        assert!(meter.on_payload(1460, Some(SeqNum(501))));
        assert!(meter.on_payload(40, Some(SeqNum(520))));
        assert!(meter.matches(1500));
        assert!(!meter.matches(1460));
        // The next request starts a new count.
        meter.on_request_sent(SeqNum(520));
        assert!(meter.matches(0));
    }

    #[test]
    fn attribution_follows_serial_arithmetic_across_the_wrap() {
        let mut meter = AnswerMeter::default();
        meter.on_request_sent(SeqNum(u32::MAX - 5));
        assert!(!meter.on_payload(100, Some(SeqNum(u32::MAX - 9))));
        assert!(meter.on_payload(100, Some(SeqNum(3))));
        assert!(meter.matches(100));
    }
}
