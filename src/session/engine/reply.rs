//! What a [`Session`] does with the target's segments: the SYN-ACK that completes the
//! handshake, acknowledgements of client data, response data, and the target's FIN or RST
//! (RFC 9293 §3.10.7.3 and §3.10.7.4, as far as a replaying client needs them).

use std::time::{Duration, Instant};

use super::{DUP_ACK_THRESHOLD, MAX_UNACKED_SEGMENTS, MAX_WINDOW_SCALE, Session, State};
use crate::packet::{Segment, SeqNum};
use crate::session::event::{Event, Output};
use crate::session::timers::Timer;

impl Session {
    /// Our SYN was answered (RFC 9293 §3.10.7.3, SYN-SENT).
    pub(super) fn on_syn_ack(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let flags = segment.flags;
        let acks_our_syn = flags.ack() && segment.ack == self.snd.isn + 1u32;
        if flags.rst() {
            // RFC 9293 §3.10.7.1: a closed port answers our SYN (no ACK bit) with SEQ=0. A
            // rebuilt connection reuses the old one's 4-tuple and byte numbers, so a late
            // RST of the old connection can acknowledge the new SYN too; its SEQ is the old
            // connection's, which tells it apart: it is ignored.
            let late_reset = self.rebuilds > 0 && segment.seq != SeqNum(0);
            if acks_our_syn && !late_reset {
                out.event(Event::HandshakeRefused);
                self.end(now, false, out);
            }
            return;
        }
        // An ACK without SYN that acknowledges our SYN comes from a connection the target
        // holds on this 4-tuple and that expects exactly our next byte (RFC 5961 §4
        // challenge ACK). After a rebuild that is a late segment of our own old connection,
        // ignored; on a session's first connection it is an earlier replay of this very
        // client connection, left half-open by a copy that was killed.
        let stale = flags.ack() && acks_our_syn && !flags.syn() && self.rebuilds == 0;
        if stale && !self.stale_reset {
            // RFC 5961 §3.2: a RST at exactly RCV.NXT closes it at once; then we open again
            // on the same 4-tuple (once: a second such answer moves the session to another
            // port, below).
            self.stale_reset = true;
            out.event(Event::StaleConnectionReset);
            self.send_reset_reply(segment, out);
            self.start_connection(now, self.snd.isn, out);
            return;
        }
        if flags.ack() && (!acks_our_syn || stale) {
            // The target holds this 4-tuple for another connection (RFC 9293 §3.10.7.3
            // would have us reset it, but it may be another copy's live session, so we never
            // touch it): the owner of the session reopens it from another port.
            if !self.port_in_use {
                self.port_in_use = true;
                out.event(Event::PortInUse);
            }
            return;
        }
        if !flags.syn() {
            return;
        }
        self.snd.una = segment.ack;
        self.rcv.nxt = segment.seq + 1u32;
        // RFC 7323 §2.2: scaling is on only if both SYNs carried the option; the window of a
        // SYN-ACK itself is never scaled.
        let scaling = self.syn_options.window_scale.is_some();
        self.snd.window_shift = match segment.options.window_scale {
            Some(shift) if scaling => shift.min(MAX_WINDOW_SCALE),
            _ => 0,
        };
        self.client_window_valid = self.syn_seen
            && self.rebuilds == 0
            && (scaling == segment.options.window_scale.is_some());
        self.snd.window = u32::from(segment.window);
        // RFC 9293 §3.7.1: without an MSS option assume 536 (IPv4) or 1220 (IPv6).
        let default_mss = if self.target.is_ipv4() { 536 } else { 1220 };
        self.snd.mss = usize::from(segment.options.mss.unwrap_or(default_mss)).max(1);
        // RFC 7323 §3.2: timestamps only if both SYNs carried them.
        match (self.timestamps.enabled, segment.options.timestamps) {
            (true, Some(ts)) => self.timestamps.recent = ts.tsval,
            _ => self.timestamps.enabled = false,
        }
        let handshake_rtt = now.saturating_duration_since(self.syn_sent_at);
        if !self.syn_retransmitted {
            // RFC 6298 §3: the SYN is timed like data, Karn's rule included.
            self.rtt.sample(handshake_rtt);
        }
        self.update_pacing_rtt(Some(handshake_rtt));
        self.timers.stop(Timer::Retransmit);
        if self.client_acks.is_some() {
            self.complete_handshake(now, out);
        } else {
            // The handshake timer keeps running: a client that never follows its SYN ends
            // the session there.
            self.set_state(State::SynReceived);
        }
    }

    /// Acknowledges the target's SYN-ACK: the client showed it is real by sending more than
    /// its SYN (its own third ACK, or data when we opened mid-stream).
    pub(super) fn complete_handshake(&mut self, now: Instant, out: &mut impl Output) {
        self.pacer.on_connected(self.greeting_possible);
        self.timers.stop(Timer::Handshake);
        self.set_state(State::Established);
        out.event(Event::Established);
        self.send_ack(now, out);
        self.push(now, out);
    }

    /// A reply while our ACK of the SYN-ACK waits for the client's: a repeated SYN-ACK is
    /// answered once the client acknowledges; a RST ends the session.
    pub(super) fn on_reply_before_client_ack(
        &mut self,
        now: Instant,
        segment: &Segment,
        out: &mut impl Output,
    ) {
        self.touch(now);
        if segment.flags.rst() && segment.seq == self.rcv.nxt {
            out.event(Event::ResetByTarget);
            self.end(now, false, out);
        }
    }

    /// A reply once the connection is synchronized (RFC 9293 §3.10.7.4).
    pub(super) fn on_established_reply(
        &mut self,
        now: Instant,
        segment: &Segment,
        out: &mut impl Output,
    ) {
        let flags = segment.flags;
        if flags.rst() {
            self.on_target_reset(now, segment, out);
            return;
        }
        if flags.syn() {
            // Our third ACK was lost and the target repeats its SYN-ACK.
            self.send_ack(now, out);
            return;
        }
        if self.state == State::TargetReset {
            return;
        }
        if segment.seq_end() < self.rcv.nxt
            || (segment.seq_len() == 0 && segment.seq < self.rcv.nxt)
        {
            // RFC 9293 §3.10.7.4, first check: nothing of this segment is new, so its ACK is
            // old news, or not even this connection's: a rebuilt connection reuses the old
            // one's 4-tuple and byte numbers, and a late ACK of the old connection would
            // acknowledge bytes the new one never received. Repeated data or FIN is
            // acknowledged again; a stale pure ACK is dropped.
            if segment.seq_len() > 0 {
                self.send_ack(now, out);
            }
            return;
        }
        self.update_ts_recent(segment);
        if flags.ack() {
            self.on_ack(now, segment, out);
            if self.state == State::TimeWait {
                return;
            }
        }
        if segment.payload_len > 0 || flags.fin() {
            self.on_target_data(now, segment, out);
        }
        if self.rcv.fin {
            self.rebuild_if_needed(now, out);
        }
        self.push(now, out);
        if self.rcv.ack_due && matches!(self.state, State::Established | State::FinSent) {
            self.send_ack(now, out);
        }
    }

    /// RFC 7323 §4.3: TS.Recent takes the TSval of any segment at or below RCV.NXT, pure
    /// ACKs included, so the TSecr we echo lets the target measure its RTT correctly.
    fn update_ts_recent(&mut self, segment: &Segment) {
        if let Some(ts) = segment.options.timestamps
            && self.timestamps.enabled
            && segment.seq <= self.rcv.nxt
            && SeqNum(ts.tsval) >= SeqNum(self.timestamps.recent)
        {
            self.timestamps.recent = ts.tsval;
        }
    }

    /// The target's acknowledgement of client data (RFC 9293 §3.10.7.4, fifth check).
    fn on_ack(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let ack = segment.ack;
        if ack > self.snd.nxt {
            // Acknowledges something we never sent: answer with an ACK and ignore it.
            self.send_ack(now, out);
            return;
        }
        if ack < self.snd.una {
            return;
        }
        let window = u32::from(segment.window) << self.snd.window_shift;
        if ack > self.snd.una {
            self.on_new_ack(now, ack, out);
        } else if segment.payload_len == 0
            && !segment.flags.fin()
            && window == self.snd.window
            && self.snd.una != self.snd.nxt
        {
            // RFC 5681 §2: a duplicate ACK; the third triggers a fast retransmit (§3.2).
            self.snd.dup_acks += 1;
            if self.snd.dup_acks == DUP_ACK_THRESHOLD && self.snd.recover.is_none() {
                self.snd.recover = Some(self.snd.nxt);
                self.rtt.cancel_probe();
                self.retransmit(now, out);
                out.event(Event::FastRetransmit);
            }
        }
        self.snd.window = window;
        if self.state == State::FinSent && self.fin_acked() {
            if self.rcv.fin {
                out.event(Event::Closed);
                self.end(now, true, out);
            } else if !self.timers.is_set(Timer::FinWait) {
                self.timers
                    .set(Timer::FinWait, now + self.config.fin_wait_timeout);
            }
        }
    }

    /// `ack` acknowledges new data (SND.UNA < SEG.ACK =< SND.NXT).
    fn on_new_ack(&mut self, now: Instant, ack: SeqNum, out: &mut impl Output) {
        self.snd.una = ack;
        self.snd.dup_acks = 0;
        self.queue.acknowledge(ack);
        self.rtt.on_ack(now, ack);
        self.update_pacing_rtt(None);
        // RFC 6298 §5.2 and §5.3: stop the timer when all is acknowledged, else restart it.
        if self.snd.una == self.snd.nxt {
            self.timers.stop(Timer::Retransmit);
        } else {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }
        match self.snd.recover {
            Some(recover) if ack >= recover => self.snd.recover = None,
            // RFC 6582 §3.2 step 5: a partial ACK retransmits the next hole at once.
            Some(_) => self.retransmit(now, out),
            None => {}
        }
    }

    /// Gives the pacer the RTT its quiet time is measured in: TCPCopy's fixed `-R` when set,
    /// else the live SRTT (RFC 6298 §2, from every sample Karn's rule allows), or
    /// `fallback` before any sample (unchanged without one); never below the quiet-time floor.
    fn update_pacing_rtt(&mut self, fallback: Option<Duration>) {
        let live = self.rtt.srtt().or(fallback);
        let rtt = match (self.config.response_end_rtt, live) {
            (Some(fixed), _) => fixed,
            (None, Some(live)) => live.max(self.config.min_response_quiet),
            (None, None) => return,
        };
        self.pacer.set_rtt(rtt);
    }

    /// Our FIN is out and the target acknowledged it.
    fn fin_acked(&self) -> bool {
        self.snd.fin_sent && self.snd.una == self.snd.nxt
    }

    /// Target payload or FIN: track RCV.NXT and acknowledge it.
    fn on_target_data(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let in_order = segment.seq <= self.rcv.nxt && segment.seq_end() > self.rcv.nxt;
        if !in_order {
            // RFC 9293 §3.10.7.4 and RFC 5681 §4.2: a duplicate or out-of-order segment is
            // acknowledged at once, so the target learns what we have.
            self.send_ack(now, out);
            return;
        }
        let new_bytes = segment.seq_end().distance_from(self.rcv.nxt) as usize
            - usize::from(segment.flags.fin());
        self.rcv.nxt = segment.seq_end();
        if new_bytes > 0
            && self.pacer.on_response_data(
                now,
                new_bytes,
                self.receive_mss,
                segment.flags.ack().then_some(segment.ack),
            )
        {
            out.event(Event::RequestAnswered);
        }
        if segment.flags.fin() {
            self.rcv.fin = true;
            self.pacer.on_target_closed();
            out.event(Event::FinByTarget);
            if self.state == State::FinSent && self.fin_acked() {
                // Both sides closed: our RST stands in for the last ACK (RFC 9293 §3.10.7.4
                // would ACK and enter TIME-WAIT), so the target keeps no state at all.
                out.event(Event::Closed);
                self.end(now, true, out);
            } else {
                self.send_ack(now, out);
            }
            return;
        }
        self.rcv.unacked_segments += 1;
        // Ack every second segment and any short one (often the end of a write, which a
        // Nagle sender waits on) before this reply is handled to its end; delay the rest
        // briefly.
        if self.rcv.unacked_segments >= MAX_UNACKED_SEGMENTS || new_bytes < self.receive_mss {
            self.rcv.ack_due = true;
        } else if !self.timers.is_set(Timer::DelayedAck) {
            self.timers
                .set(Timer::DelayedAck, now + self.config.ack_delay);
        }
    }

    /// The target reset the connection (RFC 9293 §3.10.7.4, second check, simplified to an
    /// exact or in-window sequence number).
    fn on_target_reset(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        if self.state == State::TargetReset || segment.seq < self.rcv.nxt {
            return;
        }
        out.event(Event::ResetByTarget);
        // A reset with ACK (what Linux sends when the application closes with data unread,
        // or aborts) tells what the target received. Its last plain ACK may have been lost
        // on the way to intercept: rebuilding from an older SND.UNA would hand the target
        // those bytes again, on the new connection, as a second request.
        if segment.flags.ack() && segment.ack > self.snd.una && segment.ack <= self.snd.nxt {
            self.snd.una = segment.ack;
            self.queue.acknowledge(segment.ack);
        }
        self.pacer.on_target_closed();
        self.timers.stop(Timer::Retransmit);
        self.timers.stop(Timer::DelayedAck);
        self.set_state(State::TargetReset);
        if self.queue.in_order_len() > 0 {
            self.rebuild_if_needed(now, out);
        } else if self.close.is_some() {
            out.event(Event::Closed);
            self.end(now, false, out);
        }
    }
}
