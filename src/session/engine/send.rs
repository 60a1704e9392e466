//! Building and sending the segments of a [`Session`]: client data within the target's
//! window and the pacing rules, the client's close, retransmissions, our own SYNs, ACKs and
//! RSTs. Every segment we send gets our ACK, window and timestamps here.

use std::time::Instant;

use super::{ClientClose, DEFAULT_WINDOW, OWN_TTL, Session, State};
use crate::packet::{Segment, SeqNum, TcpFlags, TcpOptions};
use crate::session::event::{Event, Output};
use crate::session::time_wait;
use crate::session::timers::Timer;

impl Session {
    /// Sends (or resends) the SYN we open with: the client's own, keeping its sequence
    /// number, window and options, or one of our making.
    pub(super) fn send_syn(&mut self, now: Instant, out: &mut impl Output) {
        let mut options = self.syn_options;
        if let Some(ts) = &mut options.timestamps {
            ts.tsval = self.timestamps.next_tsval(now);
            ts.tsecr = 0;
        }
        let window = if self.syn_seen && self.rebuilds == 0 {
            self.syn_window
        } else {
            DEFAULT_WINDOW
        };
        let segment = Segment {
            src: self.client,
            dst: self.target,
            seq: self.snd.isn,
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window,
            options,
            ip_id: self.next_ip_id(),
            ttl: if self.syn_seen {
                self.client_ttl
            } else {
                OWN_TTL
            },
            payload_len: 0,
        };
        out.transmit(&segment, &[]);
    }

    /// Sends whatever the target's window, the pacing rules and the client's close allow.
    pub(super) fn push(&mut self, now: Instant, out: &mut impl Output) {
        // After the target's FIN, new data waits for a rebuilt connection.
        if self.state == State::Established && !self.rcv.fin {
            self.push_data(now, out);
        }
        if matches!(self.state, State::Established | State::FinSent) {
            self.push_close(now, out);
        }
        self.arm_persist(now);
    }

    /// Sends client data up to the target's window and the next request pacing holds.
    fn push_data(&mut self, now: Instant, out: &mut impl Output) {
        let window_end = self.snd.una + self.snd.window;
        loop {
            let mut limit = self.queue.end();
            if let Some(start) = self.queue.next_request_start() {
                if start.seq <= self.snd.nxt {
                    let previous_unanswered = self.pacer.awaiting_answer();
                    if !self.pacer.try_send_request(now, start) {
                        break;
                    }
                    self.queue.release_request();
                    out.event(Event::RequestSent {
                        waited: now.saturating_duration_since(start.captured_at),
                    });
                    if previous_unanswered {
                        out.event(Event::RequestUnanswered);
                    }
                    continue;
                }
                if start.seq > self.snd.nxt {
                    limit = limit.min(start.seq);
                }
            }
            // RFC 9293 §3.8.6.2.1: never beyond the target's advertised window.
            let limit = limit.min(window_end);
            if limit <= self.snd.nxt {
                break;
            }
            let len = (limit.distance_from(self.snd.nxt) as usize).min(self.snd.mss);
            let seq = self.snd.nxt;
            self.snd.nxt += len as u32;
            self.rtt.on_send(now, self.snd.nxt);
            self.transmit_data(now, seq, len, out);
            if !self.timers.is_set(Timer::Retransmit) {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
        }
    }

    /// Sends the client's FIN or RST once everything before it is delivered and the pacing
    /// rules allow.
    fn push_close(&mut self, now: Instant, out: &mut impl Output) {
        let Some(close) = self.close else {
            return;
        };
        let data_sent =
            self.snd.nxt == self.queue.end() && self.queue.next_request_start().is_none();
        let ready = match close {
            // The FIN takes its place in the stream, after every byte and request.
            ClientClose::Fin(seq) => !self.snd.fin_sent && data_sent && seq == self.snd.nxt,
            // The RST goes once the target acknowledged all we sent, so it cannot overtake
            // data in flight (a reset discards the target's unread data).
            ClientClose::Rst => (data_sent || self.snd.fin_sent) && self.snd.una == self.snd.nxt,
        };
        if !ready || !self.pacer.try_close(now, self.client_received()) {
            return;
        }
        match close {
            ClientClose::Fin(seq) => {
                self.snd.fin_sent = true;
                self.snd.nxt += 1u32;
                self.transmit_fin(now, seq, out);
                self.set_state(State::FinSent);
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            ClientClose::Rst => {
                out.event(Event::Closed);
                self.end(now, true, out);
            }
        }
    }

    /// RFC 9293 §3.8.6.1: with data waiting, nothing in flight and a zero window, probe the
    /// window on the retransmission timer.
    fn arm_persist(&mut self, now: Instant) {
        let waiting = self.queue.end() > self.snd.nxt;
        if self.state == State::Established
            && waiting
            && self.snd.una == self.snd.nxt
            && self.snd.window == 0
            && !self.timers.is_set(Timer::Retransmit)
        {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }
    }

    /// Resends the segment at SND.UNA (RFC 6298 §5.4: the earliest unacknowledged one).
    pub(super) fn retransmit(&mut self, now: Instant, out: &mut impl Output) {
        let seq = self.snd.una;
        if self.snd.fin_sent && seq + 1u32 == self.snd.nxt {
            self.transmit_fin(now, seq, out);
            return;
        }
        let in_flight = self.snd.nxt.distance_from(seq).max(0) as usize;
        let len = in_flight.min(self.snd.mss);
        if len > 0 {
            self.transmit_data(now, seq, len, out);
        }
    }

    /// Sends `len` client bytes from `seq` (first transmission or retransmission), with PSH
    /// where the client's data or a request ends.
    fn transmit_data(&mut self, now: Instant, seq: SeqNum, len: usize, out: &mut impl Output) {
        let end = seq + len;
        let push = end == self.queue.end()
            || self
                .queue
                .next_request_start()
                .is_some_and(|start| start.seq == end);
        let flags = if push {
            TcpFlags::ACK | TcpFlags::PSH
        } else {
            TcpFlags::ACK
        };
        let mut segment = self.segment(now, seq, flags, len, self.client_ttl);
        let payload = self.queue.bytes_at(seq, len);
        // Callers stay within the in-order bytes; the header never claims more than we have.
        segment.payload_len = payload.len();
        out.transmit(&segment, payload);
    }

    /// Sends the client's FIN at `seq`.
    fn transmit_fin(&mut self, now: Instant, seq: SeqNum, out: &mut impl Output) {
        let segment = self.segment(now, seq, TcpFlags::FIN | TcpFlags::ACK, 0, self.client_ttl);
        out.transmit(&segment, &[]);
    }

    /// A pure ACK of everything the target sent.
    pub(super) fn send_ack(&mut self, now: Instant, out: &mut impl Output) {
        let segment = self.segment(now, self.snd.nxt, TcpFlags::ACK, 0, OWN_TTL);
        out.transmit(&segment, &[]);
    }

    /// RST for the connection we replay (RFC 9293 §3.10.7.4: SEG.SEQ = SND.NXT).
    pub(super) fn send_reset(&mut self, now: Instant, out: &mut impl Output) {
        let segment = self.segment(now, self.snd.nxt, TcpFlags::RST | TcpFlags::ACK, 0, OWN_TTL);
        out.transmit(&segment, &[]);
    }

    /// RST answering a target packet of a stale connection (RFC 9293 §3.10.7.3: the
    /// sequence number comes from its ACK field).
    pub(super) fn send_reset_reply(&mut self, reply: &Segment, out: &mut impl Output) {
        let window = self.advertised_window();
        let ip_id = self.next_ip_id();
        let segment = time_wait::reset_reply(reply, self.client, self.target, window, ip_id);
        out.transmit(&segment, &[]);
    }

    /// A segment to the target carrying our ACK, window and timestamps.
    pub(super) fn segment(
        &mut self,
        now: Instant,
        seq: SeqNum,
        flags: TcpFlags,
        payload_len: usize,
        ttl: u8,
    ) -> Segment {
        if flags.ack() {
            self.rcv.unacked_segments = 0;
            self.rcv.ack_due = false;
            self.timers.stop(Timer::DelayedAck);
        }
        Segment {
            src: self.client,
            dst: self.target,
            seq,
            ack: if flags.ack() { self.rcv.nxt } else { SeqNum(0) },
            flags,
            window: self.advertised_window(),
            options: TcpOptions {
                timestamps: self.timestamps.option(now),
                ..TcpOptions::default()
            },
            ip_id: self.next_ip_id(),
            ttl,
            payload_len,
        }
    }

    /// The window we advertise. The engine, not the client, receives the target's data and
    /// takes it all at once, so the window never closes: the client's own (when its scaling
    /// matches what the target agreed) keeps the target's pace faithful, 65535 otherwise.
    pub(super) fn advertised_window(&self) -> u16 {
        if self.client_window_valid {
            self.client_window
        } else {
            DEFAULT_WINDOW
        }
    }

    /// IPv4 identification: counts on from the client's, one per segment we send.
    fn next_ip_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }
}
