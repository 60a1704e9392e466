//! What the fuzz targets (`fuzz_targets/`) and the seed maker (`examples/make_seeds.rs`)
//! share: how a target reads the first byte of its input (the settings byte), and how a
//! control-protocol stream is fed to its decoder in pieces.
//!
//! Every target takes `settings byte | bytes`: the settings byte picks what a real run would
//! have configured (a link type, a protocol version, a time format), so one input format
//! reaches every configuration and the seeds say which one they are for.

use tcpcopy::packet::LinkType;
use tcpcopy::proto::{
    CopyMessage, CopyStreamDecoder, InterceptMessage, InterceptStreamDecoder, ProtoError,
};

/// The link types of `frame`'s settings byte, by its value modulo their number.
pub const LINK_TYPES: [LinkType; 6] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Null,
    LinkType::Loop,
];

/// The link type a settings byte names.
pub fn link_type(settings: u8) -> LinkType {
    LINK_TYPES[usize::from(settings) % LINK_TYPES.len()]
}

/// The settings byte that names `link`.
pub fn link_settings(link: LinkType) -> u8 {
    LINK_TYPES
        .iter()
        .position(|&known| known == link)
        .expect("every link type is in LINK_TYPES") as u8
}

/// Splits an input into its settings byte and the bytes after it (`None` when empty).
pub fn settings(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&settings, rest)| (settings, rest))
}

/// The decoders of both directions of the control protocol, as the targets drive them.
pub trait StreamDecoder {
    type Message: std::fmt::Debug + PartialEq;
    fn feed(&mut self, bytes: &[u8]);
    fn next_message(&mut self) -> Result<Option<Self::Message>, ProtoError>;
}

impl StreamDecoder for CopyStreamDecoder {
    type Message = CopyMessage;
    fn feed(&mut self, bytes: &[u8]) {
        CopyStreamDecoder::feed(self, bytes);
    }
    fn next_message(&mut self) -> Result<Option<CopyMessage>, ProtoError> {
        CopyStreamDecoder::next_message(self)
    }
}

impl StreamDecoder for InterceptStreamDecoder {
    type Message = InterceptMessage;
    fn feed(&mut self, bytes: &[u8]) {
        InterceptStreamDecoder::feed(self, bytes);
    }
    fn next_message(&mut self) -> Result<Option<InterceptMessage>, ProtoError> {
        InterceptStreamDecoder::next_message(self)
    }
}

/// What a decoder made of a whole stream: its messages, then the error that ended it, if any.
#[derive(Debug, PartialEq)]
pub struct Decoded<M> {
    pub messages: Vec<M>,
    pub error: Option<ProtoError>,
}

/// Feeds `stream` to `decoder` in pieces of `piece_len` bytes (all at once when 0), taking
/// every message after each piece as a connection's read loop does.
pub fn decode_in_pieces<D: StreamDecoder>(
    mut decoder: D,
    stream: &[u8],
    piece_len: usize,
) -> Decoded<D::Message> {
    let mut decoded = Decoded {
        messages: Vec::new(),
        error: None,
    };
    let piece_len = if piece_len == 0 {
        stream.len().max(1)
    } else {
        piece_len
    };
    for piece in stream.chunks(piece_len) {
        decoder.feed(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => decoded.messages.push(message),
                Ok(None) => break,
                Err(error) => {
                    // The error is latched: the next call must return it again.
                    assert_eq!(decoder.next_message(), Err(error.clone()));
                    decoded.error = Some(error);
                    return decoded;
                }
            }
        }
    }
    decoded
}

/// Decodes `stream` whole and in pieces of the length the settings byte's upper bits give
/// (1 to 16 bytes): a stream must decode the same however the network cut it.
pub fn decode_every_way<D: StreamDecoder>(
    new_decoder: impl Fn() -> D,
    settings: u8,
    stream: &[u8],
) -> Decoded<D::Message> {
    let whole = decode_in_pieces(new_decoder(), stream, 0);
    let piece_len = usize::from(settings >> 4) + 1;
    let pieces = decode_in_pieces(new_decoder(), stream, piece_len);
    assert_eq!(
        whole, pieces,
        "the stream decoded differently in {piece_len}-byte pieces"
    );
    whole
}

/// What `capture_file`'s settings byte says: how many files the input holds, whether the
/// offline clock times the frames, and how many rounds (`--loop`) are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureFiles {
    /// Two files, the first one's length in the first 2 bytes (big-endian), instead of one.
    pub two: bool,
    /// `--speed 2 --max-gap 1s` instead of `--speed max`.
    pub timed: bool,
    pub rounds: u32,
}

impl CaptureFiles {
    pub fn from_settings(settings: u8) -> CaptureFiles {
        CaptureFiles {
            two: settings & 1 != 0,
            timed: settings & 2 != 0,
            rounds: if settings & 4 != 0 { 2 } else { 1 },
        }
    }

    pub fn settings(&self) -> u8 {
        u8::from(self.two) | u8::from(self.timed) << 1 | u8::from(self.rounds > 1) << 2
    }

    /// The contents of each file of an input.
    pub fn split<'a>(&self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        if !self.two {
            return vec![bytes];
        }
        let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
            return vec![bytes];
        };
        let (first, second) = rest.split_at(usize::from(u16::from_be_bytes(*len)).min(rest.len()));
        vec![first, second]
    }

    /// The input bytes of `files` (two at most): the inverse of [`split`](Self::split).
    pub fn join(files: &[&[u8]]) -> Vec<u8> {
        match files {
            [one] => one.to_vec(),
            [first, second] => {
                let len = u16::try_from(first.len()).expect("a seed file under 64 KiB");
                [&len.to_be_bytes()[..], first, second].concat()
            }
            _ => panic!("one or two files"),
        }
    }
}

/// The time formats `access_log`'s settings byte picks from: the common and combined
/// formats' default, nginx's `$time_iso8601`, and seconds since the epoch.
pub const TIME_FORMATS: [Option<&str>; 3] = [None, Some("%Y-%m-%dT%H:%M:%S%:z"), Some("%s")];

/// The window lengths `access_log`'s settings byte picks from, in seconds.
pub const WINDOW_SECONDS: [u32; 4] = [1, 60, 3600, 86_400];

/// What `access_log`'s settings byte says: where the time is and how it is written
/// (`--time-field`, `--time-format`), the window length (`--window`) and `--edges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// `--time-field`: the 4th field (where the combined format's `[` opens), instead of
    /// after the first `[`.
    pub fourth_field: bool,
    /// An index into [`TIME_FORMATS`].
    pub format: usize,
    /// One of [`WINDOW_SECONDS`].
    pub window_seconds: u32,
    pub edges: bool,
}

impl LogSettings {
    pub fn from_settings(settings: u8) -> LogSettings {
        LogSettings {
            fourth_field: settings & 1 != 0,
            format: usize::from(settings >> 1 & 3) % TIME_FORMATS.len(),
            window_seconds: WINDOW_SECONDS[usize::from(settings >> 3 & 3)],
            edges: settings & 0x20 != 0,
        }
    }

    pub fn settings(&self) -> u8 {
        let window = WINDOW_SECONDS
            .iter()
            .position(|&seconds| seconds == self.window_seconds)
            .expect("a window length of WINDOW_SECONDS") as u8;
        u8::from(self.fourth_field)
            | (self.format as u8) << 1
            | window << 3
            | u8::from(self.edges) << 5
    }

    /// The time field these settings describe.
    pub fn time_field(&self) -> tcpcopy::stats::logs::time_field::TimeField {
        let field = self
            .fourth_field
            .then_some(std::num::NonZeroUsize::MIN.saturating_add(3));
        tcpcopy::stats::logs::time_field::TimeField::new(field, TIME_FORMATS[self.format])
            .expect("each format of TIME_FORMATS reads back")
    }
}
