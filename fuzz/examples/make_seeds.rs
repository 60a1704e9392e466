//! Writes the seed corpus of every fuzz target (fuzz/corpus/TARGET/) from the real captures
//! and the access log in fuzz/seeds/captures/ (fuzz/README.md says how they were made),
//! through tcpcopy's own parsers and encoders:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Seeds are `settings byte | bytes` as each target reads them (see src/lib.rs).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tcpcopy::capture::FileCapture;
use tcpcopy::packet::{
    EthernetHeader, Flow, LinkHeader, LinkType, LoopbackHeader, VlanTag, parse_frame,
};
use tcpcopy::proto::{
    Registration, ReplyBatch, V6Layout, Version, encode_flow_taken, encode_hello, encode_instance,
    encode_registration, encode_switch,
};
use tcpcopy::stats::logs::time_field::DEFAULT_FORMAT;
use tcpcopy_fuzz::{CaptureFiles, LogSettings, TIME_FORMATS, link_settings};

/// The server port of the captures: frames from it are replies.
const SERVER_PORT: u16 = 80;

/// One frame of a capture, parsed.
struct Captured {
    link: LinkHeader,
    timestamp: Duration,
    frame: Vec<u8>,
    ip: Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
}

impl Captured {
    fn is_reply(&self) -> bool {
        self.src.port() == SERVER_PORT
    }

    fn flow(&self) -> Flow {
        if self.is_reply() {
            Flow {
                client: self.dst,
                target: self.src,
            }
        } else {
            Flow {
                client: self.src,
                target: self.dst,
            }
        }
    }

    /// A name for seeds made from it: `ipv4-syn`, `ipv6-data`, ...
    fn name(&self) -> String {
        let family = if self.src.is_ipv4() { "ipv4" } else { "ipv6" };
        let direction = if self.is_reply() { "reply" } else { "request" };
        let kind = if self.payload_len > 0 {
            "data"
        } else {
            "empty"
        };
        format!("{family}-{direction}-{kind}")
    }
}

fn main() -> anyhow::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let captures = fuzz.join("seeds/captures");
    let corpus = Corpus(fuzz.join("corpus"));
    if corpus.0.exists() {
        fs::remove_dir_all(&corpus.0)?;
    }
    let files = ["ethernet.pcap", "linux_sll.pcap", "linux_sll2.pcap"];
    let mut by_file = Vec::new();
    for file in files {
        by_file.push((file, read_capture(&captures.join(file))?));
    }
    let ethernet = &by_file[0].1;

    frames(&corpus, &by_file)?;
    reply_packets(&corpus, ethernet)?;
    capture_files(&corpus, &captures, ethernet)?;
    copy_streams(&corpus, ethernet)?;
    intercept_streams(&corpus, ethernet)?;
    access_logs(&corpus, &fs::read(captures.join("access.log"))?)?;
    Ok(())
}

/// The directory of every target's seeds.
struct Corpus(PathBuf);

impl Corpus {
    fn write(&self, target: &str, name: &str, settings: u8, bytes: &[u8]) -> anyhow::Result<()> {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), [&[settings][..], bytes].concat())?;
        Ok(())
    }
}

fn read_capture(path: &Path) -> anyhow::Result<Vec<Captured>> {
    let mut capture = FileCapture::open(path, None)?;
    let link = LinkType::from_dlt(capture.datalink()).expect("a link type copy reads");
    let mut frames = Vec::new();
    while let Some(frame) = capture.next_frame()? {
        let parsed = parse_frame(link, frame.data)?;
        frames.push(Captured {
            link: parsed.link,
            timestamp: frame.timestamp,
            frame: frame.data.to_vec(),
            ip: parsed.ip.to_vec(),
            src: parsed.segment.src,
            dst: parsed.segment.dst,
            payload_len: parsed.segment.payload_len,
        });
    }
    Ok(frames)
}

/// The first frame of each kind (family, direction, with or without payload).
fn one_of_each_kind(frames: &[Captured]) -> Vec<&Captured> {
    let mut chosen: Vec<&Captured> = Vec::new();
    for frame in frames {
        if !chosen.iter().any(|seen| seen.name() == frame.name()) {
            chosen.push(frame);
        }
    }
    chosen
}

/// `frame`: each kind of frame as captured on each link type, and the IPv4 and IPv6
/// requests with data under the link headers no capture here gives (raw IP, BSD loopback,
/// VLAN tags).
fn frames(corpus: &Corpus, by_file: &[(&str, Vec<Captured>)]) -> anyhow::Result<()> {
    for (file, frames) in by_file {
        let file = file.trim_end_matches(".pcap");
        for frame in one_of_each_kind(frames) {
            let settings = link_settings(frame.link.link_type());
            corpus.write(
                "frame",
                &format!("{file}-{}", frame.name()),
                settings,
                &frame.frame,
            )?;
        }
    }
    let requests = by_file[0]
        .1
        .iter()
        .filter(|frame| !frame.is_reply() && frame.payload_len > 0);
    for request in requests {
        let LinkHeader::Ethernet(ethernet) = request.link else {
            anyhow::bail!("the first capture is not Ethernet");
        };
        let (family_linux, family_bsd) = if request.src.is_ipv4() {
            (2, 2)
        } else {
            (10, 24)
        };
        let tag = |tpid| Some(VlanTag { tpid, tci: 0x0064 });
        let headers = [
            ("raw", LinkHeader::RawIp),
            (
                "null",
                LinkHeader::Null(LoopbackHeader {
                    family: family_linux,
                    big_endian: false,
                }),
            ),
            (
                "loop",
                LinkHeader::Loop(LoopbackHeader {
                    family: family_bsd,
                    big_endian: true,
                }),
            ),
            (
                "vlan",
                LinkHeader::Ethernet(EthernetHeader {
                    vlan_tags: [tag(0x8100), None],
                    ..ethernet
                }),
            ),
            (
                "qinq",
                LinkHeader::Ethernet(EthernetHeader {
                    vlan_tags: [tag(0x88a8), tag(0x8100)],
                    ..ethernet
                }),
            ),
        ];
        for (name, header) in headers {
            let mut frame = Vec::new();
            header.emit(&mut frame);
            frame.extend_from_slice(&request.ip);
            let settings = link_settings(header.link_type());
            corpus.write(
                "frame",
                &format!("{name}-{}", request.name()),
                settings,
                &frame,
            )?;
        }
    }
    Ok(())
}

/// `reply_packet`: the replies' IP packets, for version 6 (both layouts) and version 7.
fn reply_packets(corpus: &Corpus, frames: &[Captured]) -> anyhow::Result<()> {
    let replies = one_of_each_kind(frames)
        .into_iter()
        .filter(|frame| frame.is_reply());
    for reply in replies {
        // The settings byte modulo 3 picks the encoding; as a whole, the prefix limit.
        for (encoding, settings) in [("v6", 0), ("v6-payload", 1), ("v7-prefix-65", 65)] {
            let name = format!("{encoding}-{}", reply.name());
            corpus.write("reply_packet", &name, settings, &reply.ip)?;
        }
    }
    Ok(())
}

/// `capture_file`: the captures as they are, the Ethernet one as pcapng, and a pcap and a
/// pcapng file together, timed and played twice.
fn capture_files(corpus: &Corpus, captures: &Path, ethernet: &[Captured]) -> anyhow::Result<()> {
    let one = CaptureFiles {
        two: false,
        timed: false,
        rounds: 1,
    };
    for file in ["ethernet.pcap", "linux_sll.pcap", "linux_sll2.pcap"] {
        let bytes = fs::read(captures.join(file))?;
        corpus.write("capture_file", file, one.settings(), &bytes)?;
    }
    let pcapng = pcapng_of(ethernet);
    corpus.write("capture_file", "ethernet.pcapng", one.settings(), &pcapng)?;
    let two = CaptureFiles {
        two: true,
        timed: true,
        rounds: 2,
    };
    let sll2 = fs::read(captures.join("linux_sll2.pcap"))?;
    let both = CaptureFiles::join(&[&pcapng, &sll2]);
    corpus.write(
        "capture_file",
        "ethernet.pcapng+linux_sll2.pcap",
        two.settings(),
        &both,
    )
}

/// The frames as a little-endian pcapng file: a section header, one interface with
/// microsecond timestamps, an enhanced packet block per frame.
fn pcapng_of(frames: &[Captured]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let total = (body.len().next_multiple_of(4) + 12) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(&total.to_le_bytes());
    }
    let link = frames
        .first()
        .map_or(1, |frame| frame.link.link_type().dlt());
    let mut out = Vec::new();
    let section = [
        &0x1a2b_3c4du32.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &(-1i64).to_le_bytes(),
    ]
    .concat();
    block(&mut out, 0x0a0d_0d0a, &section);
    let interface = [
        &(link as u16).to_le_bytes()[..],
        &0u16.to_le_bytes(),
        &262_144u32.to_le_bytes(),
    ]
    .concat();
    block(&mut out, 1, &interface);
    for frame in frames {
        let micros = frame.timestamp.as_micros() as u64;
        let len = (frame.frame.len() as u32).to_le_bytes();
        let packet = [
            &0u32.to_le_bytes()[..],
            &((micros >> 32) as u32).to_le_bytes(),
            &(micros as u32).to_le_bytes(),
            &len,
            &len,
            &frame.frame,
        ]
        .concat();
        block(&mut out, 6, &packet);
    }
    out
}

/// The flows of the captures, IPv4 first.
fn flows(frames: &[Captured]) -> Vec<Flow> {
    let mut flows: Vec<Flow> = Vec::new();
    for frame in frames {
        if !flows.contains(&frame.flow()) {
            flows.push(frame.flow());
        }
    }
    flows
}

/// `copy_stream`: what a copy sends in each negotiation outcome.
fn copy_streams(corpus: &Corpus, frames: &[Captured]) -> anyhow::Result<()> {
    let flows = flows(frames);
    let ipv4: Vec<&Flow> = flows.iter().filter(|flow| flow.client.is_ipv4()).collect();
    let registrations = |version, flows: &[&Flow], out: &mut Vec<u8>| -> anyhow::Result<()> {
        for flow in flows {
            encode_registration(version, &Registration::add(flow.client, flow.target), out)?;
            encode_registration(version, &Registration::del(flow.client, flow.target), out)?;
        }
        Ok(())
    };
    // Settings: bit 0 is the highest version intercept agrees to; the upper nibble the
    // piece length the stream is also fed in.
    let (v6_only, v7) = (0x00, 0x31);

    let mut v6 = Vec::new();
    encode_hello(Version::V6, &mut v6);
    registrations(Version::V6, &ipv4, &mut v6)?;
    corpus.write("copy_stream", "v6", v6_only, &v6)?;

    let mut refused = Vec::new();
    encode_hello(Version::V7, &mut refused);
    registrations(Version::V6, &ipv4, &mut refused)?;
    corpus.write("copy_stream", "v7-offered-v6-spoken", v6_only, &refused)?;

    let mut switched = Vec::new();
    encode_hello(Version::V7, &mut switched);
    registrations(Version::V6, &ipv4, &mut switched)?;
    encode_switch(&mut switched);
    encode_instance(0x5eed_0000_0000_0001, &mut switched);
    let all: Vec<&Flow> = flows.iter().collect();
    registrations(Version::V7, &all, &mut switched)?;
    corpus.write("copy_stream", "v7", v7, &switched)
}

/// `intercept_stream`: the replies of the captures as an intercept sends them in each
/// version and layout.
fn intercept_streams(corpus: &Corpus, frames: &[Captured]) -> anyhow::Result<()> {
    let replies: Vec<&Captured> = frames.iter().filter(|frame| frame.is_reply()).collect();
    let flush = |mut batch: ReplyBatch, stream: &mut Vec<u8>| -> anyhow::Result<()> {
        for reply in &replies {
            if batch.version() == Version::V6 && !reply.src.is_ipv4() {
                continue;
            }
            if batch.is_full() {
                batch.flush_into(stream);
            }
            let micros = reply.timestamp.as_micros() as u64;
            batch.push(&reply.ip, micros)?;
        }
        batch.flush_into(stream);
        Ok(())
    };
    // Settings: bit 0 is the version copy offered, bit 1 the version-6 layout; the upper
    // nibble the piece length the stream is also fed in.
    for (name, settings, layout) in [
        ("v6", 0x00, V6Layout::Headers),
        ("v6-payload", 0x22, V6Layout::HeadersAndPayload),
        ("v7-offered-v6-spoken", 0x51, V6Layout::Headers),
    ] {
        let mut stream = Vec::new();
        flush(ReplyBatch::v6(layout), &mut stream)?;
        corpus.write("intercept_stream", name, settings, &stream)?;
    }
    let mut stream = Vec::new();
    encode_switch(&mut stream);
    flush(ReplyBatch::v7(64), &mut stream)?;
    for flow in flows(frames) {
        encode_flow_taken(&flow, &mut stream)?;
    }
    corpus.write("intercept_stream", "v7", 0x71, &stream)
}

/// `access_log`: nginx's lines on both sides, in the combined format as logged and
/// rewritten into the other time formats.
fn access_logs(corpus: &Corpus, log: &[u8]) -> anyhow::Result<()> {
    let combined = LogSettings {
        fourth_field: false,
        format: 0,
        window_seconds: 60,
        edges: false,
    };
    let text = String::from_utf8(log.to_vec())?;
    for (format, settings) in TIME_FORMATS.iter().enumerate().map(|(format, _)| {
        let settings = LogSettings { format, ..combined };
        (format, settings)
    }) {
        let mut lines = String::new();
        for line in text.lines() {
            lines.push_str(&rewrite_time(line, &combined, &settings)?);
            lines.push('\n');
        }
        let both = format!("{lines}\n{lines}");
        let name = format!("combined-format-{format}");
        corpus.write("access_log", &name, settings.settings(), both.as_bytes())?;
        let fourth = LogSettings {
            fourth_field: true,
            edges: true,
            window_seconds: 1,
            ..settings
        };
        let name = format!("combined-format-{format}-fourth-field-edges");
        corpus.write("access_log", &name, fourth.settings(), both.as_bytes())?;
    }
    Ok(())
}

/// `line` with the time between its brackets written in `to`'s format instead of `from`'s.
fn rewrite_time(line: &str, from: &LogSettings, to: &LogSettings) -> anyhow::Result<String> {
    let stamp = from.time_field().read(line.as_bytes())?;
    let (open, close) = (line.find('[').unwrap_or(0), line.find(']').unwrap_or(0));
    let zoned = stamp
        .at
        .to_zoned_datetime(jiff::tz::TimeZone::fixed(stamp.offset));
    let format = TIME_FORMATS[to.format].unwrap_or(DEFAULT_FORMAT);
    let time = jiff::fmt::strtime::format(format, &zoned)?;
    Ok(format!("{}{time}{}", &line[..=open], &line[close..]))
}
