//! What a [`Session`] does when one of its timers expires, and how it ends.

use std::time::Instant;

use super::{OWN_TTL, Session, State};
use crate::packet::TcpFlags;
use crate::session::event::{Event, Output};
use crate::session::send_queue::SendQueue;
use crate::session::timers::Timer;

impl Session {
    /// One expired timer, by state (the session's `match (state, event)` for time).
    pub(super) fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut impl Output) {
        match (self.state, timer) {
            (State::Finished, _) => {}
            (State::TimeWait, Timer::TimeWait) => self.set_state(State::Finished),
            (State::TimeWait, _) => {}
            (State::Unopened, Timer::Idle) => {
                out.event(Event::EmptySessionSkipped);
                self.set_state(State::Finished);
            }
            (_, Timer::Idle) => {
                out.event(Event::IdleTimeout);
                self.end(now, true, out);
            }
            (State::SynSent, Timer::Handshake) => {
                out.event(Event::HandshakeTimeout);
                // The target may hold a half-open connection whose SYN-ACK we missed.
                self.end(now, true, out);
            }
            (State::SynReceived, Timer::Handshake) => {
                out.event(Event::ClientNeverAcknowledged);
                // The target holds the half-open connection our SYN made: free it.
                self.end(now, true, out);
            }
            // RFC 6298 §5.5 and §5.6: resend the SYN with the timeout backed off.
            (State::SynSent, Timer::Retransmit) => {
                self.rtt.on_retransmit();
                self.syn_retransmitted = true;
                self.send_syn(now, out);
                out.event(Event::Retransmitted);
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            (State::Established | State::FinSent, Timer::Retransmit) => {
                self.on_retransmit_timer(now, out);
            }
            (State::Established | State::FinSent, Timer::DelayedAck) => self.send_ack(now, out),
            (State::FinSent, Timer::FinWait) => {
                out.event(Event::Closed);
                self.end(now, true, out);
            }
            _ => {}
        }
    }

    /// The retransmission timer: resend the oldest unacknowledged segment, probe a zero
    /// window, or give up after `max_retransmits`.
    fn on_retransmit_timer(&mut self, now: Instant, out: &mut impl Output) {
        if self.snd.una == self.snd.nxt {
            // Nothing in flight: the timer was the persist timer (RFC 9293 §3.8.6.1). An ACK
            // below the window makes the target repeat its window (§3.10.7.4).
            if self.snd.window == 0 && self.queue.end() > self.snd.nxt {
                let segment = self.segment(now, self.snd.una - 1, TcpFlags::ACK, 0, OWN_TTL);
                out.transmit(&segment, &[]);
                out.event(Event::ZeroWindowProbe);
                self.rtt.on_retransmit();
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            return;
        }
        if self.rtt.backoff() >= self.config.max_retransmits {
            out.event(Event::RetransmitLimit);
            self.end(now, true, out);
            return;
        }
        // RFC 6298 §5.4–5.6, and RFC 6582 §3.2 step 4: recovery until all that was in flight
        // is acknowledged.
        self.rtt.on_retransmit();
        self.snd.recover = Some(self.snd.nxt);
        self.snd.dup_acks = 0;
        self.retransmit(now, out);
        out.event(Event::Retransmitted);
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
    }

    /// Ends the session: RST to the target if asked (so nothing stays half-open there),
    /// accounting for client bytes never delivered, then time-wait.
    pub(super) fn end(&mut self, now: Instant, reset: bool, out: &mut impl Output) {
        let connected = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::FinSent
        );
        if reset && connected {
            self.send_reset(now, out);
        }
        let undelivered = self.queue.in_order_len() + self.queue.out_of_order_len();
        if undelivered > 0 {
            out.event(Event::UnsentDataDiscarded { bytes: undelivered });
        }
        if self.pacer.take_unanswered() {
            out.event(Event::RequestUnanswered);
        }
        let unsent_requests = self.queue.pending_requests();
        if unsent_requests > 0 {
            out.event(Event::RequestsDiscarded {
                count: unsent_requests,
            });
        }
        self.queue = SendQueue::new(self.queue.end(), 0, 0);
        self.pacer.on_target_closed();
        self.timers.stop_all();
        self.timers
            .set(Timer::TimeWait, now + self.config.time_wait);
        self.set_state(State::TimeWait);
    }
}
