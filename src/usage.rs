//! The rules of a command line that clap's attributes cannot say: a flag of one mode given
//! in the other (which would be silently ignored), an `-x` mapping that an earlier one
//! shadows, a `-c` pool without an address of a target's family. [`parse`] refuses such a
//! command line as a usage error naming the flags and why, before anything starts.
//!
//! Pure: reads the parsed arguments and which flags the command line gave, nothing else.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::addresses::PortMapping;
use crate::cli::{Cli, Command, CopyArgs, InterceptArgs};

/// Flags of `copy` that only an `--offline` replay reads (clap ids).
const OFFLINE_ONLY: &[&str] = &["speed", "max_gap", "loops", "drain"];
/// Flags of `copy` that only live capture reads.
const LIVE_ONLY: &[&str] = &["buffer_mib", "snaplen", "workers"];
/// Flags of `intercept` that only assistant mode (`-i`) reads.
const ASSISTANT_ONLY: &[&str] = &["filter", "buffer_mib", "allow_forwarding"];
/// Flags of `intercept` that only target mode (`--nfqueue`) reads.
const TARGET_ONLY: &[&str] = &["passlist", "queue_length"];

/// The command line `args` (the program name first), parsed and checked: a clap error, or
/// one of [`refusal`]'s as a clap error of its own (rendered `error: WHY`).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    match refusal(&cli, &matches, &command) {
        None => Ok(cli),
        Some(why) => Err(clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            format!("{why}\n"),
        )),
    }
}

/// Why `cli` cannot run as given (`None`: it can). `matches` tells which flags the command
/// line gave, `command` how each is spelled.
fn refusal(cli: &Cli, matches: &ArgMatches, command: &clap::Command) -> Option<String> {
    let (name, sub) = matches.subcommand()?;
    let flags = Flags {
        given: sub,
        command: command.find_subcommand(name)?,
    };
    match &cli.command {
        Command::Copy(args) => copy_refusal(args, &flags),
        Command::Intercept(args) => intercept_refusal(args, &flags),
        _ => None,
    }
}

/// One subcommand's flags: which the command line gave, and how they are spelled.
struct Flags<'a> {
    given: &'a ArgMatches,
    command: &'a clap::Command,
}

impl Flags<'_> {
    /// The first of `ids` that the command line gave, as the user writes it (`-B/--buffer-size`).
    fn first_given(&self, ids: &[&str]) -> Option<String> {
        let id = ids
            .iter()
            .find(|id| self.given.value_source(id) == Some(ValueSource::CommandLine))?;
        let arg = self
            .command
            .get_arguments()
            .find(|arg| arg.get_id() == *id)?;
        let long = arg.get_long().map(|long| format!("--{long}"));
        Some(match (arg.get_short(), long) {
            (Some(short), Some(long)) => format!("-{short}/{long}"),
            (Some(short), None) => format!("-{short}"),
            (None, long) => long.unwrap_or_else(|| id.to_string()),
        })
    }
}

fn copy_refusal(args: &CopyArgs, flags: &Flags<'_>) -> Option<String> {
    let offline = !args.offline.is_empty();
    if !offline && let Some(flag) = flags.first_given(OFFLINE_ONLY) {
        return Some(format!(
            "{flag} applies only to an --offline replay of capture files; this copy captures \
             live and would ignore it"
        ));
    }
    if offline && let Some(flag) = flags.first_given(LIVE_ONLY) {
        return Some(format!(
            "{flag} applies only to live capture; an --offline replay reads its files on one \
             shard and would ignore it"
        ));
    }
    let mappings = args.all_mappings();
    shadowed_mapping(&mappings).or_else(|| {
        let pool = args.client_ips.as_ref()?;
        let mapping = mappings
            .iter()
            .find(|mapping| !pool.has_family(mapping.target.is_ipv6()))?;
        let family = if mapping.target.is_ipv6() {
            "IPv6"
        } else {
            "IPv4"
        };
        Some(format!(
            "-c/--client-ip has no {family} address for the {family} target of -x {mapping}: \
             its copies would carry the real clients' addresses, and the target would send \
             its replies to them; add {family} addresses to -c"
        ))
    })
}

/// A mapping that never applies because an earlier one takes the same packets (the first
/// that matches wins): the same port on the same online address, or on any address.
fn shadowed_mapping(mappings: &[PortMapping]) -> Option<String> {
    mappings.iter().enumerate().find_map(|(at, later)| {
        let earlier = mappings[..at].iter().find(|earlier| {
            earlier.online_port == later.online_port
                && earlier
                    .online_ip
                    .is_none_or(|ip| Some(ip) == later.online_ip)
        })?;
        Some(format!(
            "-x {later} would never apply: -x {earlier} comes first and takes every packet to \
             port {} (one mapping per port and online address; a mapping with ONLINE_IP goes \
             before one without)",
            later.online_port
        ))
    })
}

fn intercept_refusal(args: &InterceptArgs, flags: &Flags<'_>) -> Option<String> {
    if args.nfqueue.is_some()
        && let Some(flag) = flags.first_given(ASSISTANT_ONLY)
    {
        return Some(format!(
            "{flag} applies only to assistant mode (-i); --nfqueue reads the replies from the \
             queue and would ignore it"
        ));
    }
    if !args.interfaces.is_empty()
        && let Some(flag) = flags.first_given(TARGET_ONLY)
    {
        return Some(format!(
            "{flag} applies only to target mode (--nfqueue); assistant mode (-i) captures \
             the replies, which the host drops itself, and would ignore it"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(args: &[&str]) -> Option<String> {
        match parse(std::iter::once("tcpcopy").chain(args.iter().copied())) {
            Ok(_) => None,
            Err(err) => Some(err.to_string()),
        }
    }

    const LIVE: &[&str] = &["copy", "-i", "eth0", "-x", "80-198.51.100.30:80", "-s", "h"];
    const OFFLINE: &[&str] = &[
        "copy",
        "--offline",
        "a.pcap",
        "-x",
        "80-198.51.100.30:80",
        "-s",
        "h",
    ];

    fn with(base: &[&str], extra: &[&str]) -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|arg| arg.to_string())
            .collect()
    }

    fn refused_with(base: &[&str], extra: &[&str]) -> Option<String> {
        let args = with(base, extra);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn offline_flags_are_refused_in_live_capture() {
        let no_device = &LIVE[..1]
            .iter()
            .chain(&LIVE[3..])
            .copied()
            .collect::<Vec<_>>();
        for (extra, flag) in [
            (&["--drain", "5s"][..], "--drain"),
            (&["--speed", "2"], "--speed"),
            (&["--max-gap", "1s"], "--max-gap"),
            (&["--loop", "2"], "--loop"),
        ] {
            // Without -i: copy picks its devices, and clap's conflicts with -i do not apply.
            let err = refused_with(no_device, extra).unwrap_or_else(|| panic!("{extra:?}"));
            assert!(
                err.contains(&format!("{flag} applies only to an --offline replay")),
                "{err}"
            );
        }
        assert_eq!(
            refused_with(OFFLINE, &["--drain", "5s", "--loop", "2"]),
            None
        );
        assert_eq!(refused(LIVE), None, "the defaults are not given flags");
    }

    #[test]
    fn live_flags_are_refused_in_an_offline_replay() {
        for (extra, flag) in [
            (&["-B", "16"][..], "-B/--buffer-size"),
            (&["--snaplen", "2000"], "-S/--snaplen"),
            (&["--workers", "2"], "--workers"),
        ] {
            let err = refused_with(OFFLINE, extra).unwrap_or_else(|| panic!("{extra:?}"));
            assert!(
                err.contains(&format!("{flag} applies only to live capture")),
                "{err}"
            );
        }
        assert_eq!(refused_with(LIVE, &["-B", "16", "--workers", "2"]), None);
    }

    #[test]
    fn a_mapping_an_earlier_one_shadows_is_refused() {
        let base = &["copy", "-i", "eth0", "-s", "h"];
        for maps in [
            &["80-198.51.100.30:80,80-198.51.100.31:80"][..],
            &["80-198.51.100.30:80", "-x", "80-198.51.100.31:80"],
            &["80-198.51.100.30:80,198.51.100.20:80-198.51.100.31:80"],
            &["198.51.100.20:80-198.51.100.30:80,198.51.100.20:80-198.51.100.31:80"],
        ] {
            let err = refused_with(base, &[&["-x"][..], maps].concat())
                .unwrap_or_else(|| panic!("{maps:?}"));
            assert!(err.contains("would never apply: -x "), "{err}");
            assert!(err.contains("takes every packet to port 80"), "{err}");
        }
        for maps in [
            "198.51.100.20:80-198.51.100.30:80,80-198.51.100.31:80",
            "198.51.100.20:80-198.51.100.30:80,198.51.100.21:80-198.51.100.31:80",
            "80-198.51.100.30:80,443-198.51.100.30:443",
        ] {
            assert_eq!(refused_with(base, &["-x", maps]), None, "{maps}");
        }
    }

    #[test]
    fn a_client_pool_must_have_the_family_of_every_target() {
        let base = &["copy", "-i", "eth0", "-s", "h"];
        let err = refused_with(
            base,
            &["-x", "80-[2001:db8::30]:80", "-c", "203.0.113.0/24"],
        )
        .expect("an IPv4 pool for an IPv6 target");
        assert!(
            err.contains(
                "-c/--client-ip has no IPv6 address for the IPv6 target of -x \
                 80-[2001:db8::30]:80"
            ),
            "{err}"
        );
        let mixed = ["-c", "203.0.113.0/24,2001:db8:1::/120"];
        let both = [
            &["-x", "80-[2001:db8::30]:80,81-198.51.100.30:80"][..],
            &mixed,
        ]
        .concat();
        assert_eq!(refused_with(base, &both), None);
        assert_eq!(refused_with(base, &["-x", "80-[2001:db8::30]:80"]), None);
    }

    #[test]
    fn intercept_flags_of_the_other_mode_are_refused() {
        for (args, flag, mode) in [
            (
                &["--nfqueue", "0", "-F", "tcp"][..],
                "-F/--filter",
                "assistant",
            ),
            (
                &["--nfqueue", "0", "-B", "8"],
                "-B/--buffer-size",
                "assistant",
            ),
            (
                &["--nfqueue", "0", "--allow-forwarding"],
                "--allow-forwarding",
                "assistant",
            ),
            (
                &["-i", "eth0", "-F", "tcp", "--queue-length", "9"],
                "--queue-length",
                "target",
            ),
            (
                &["-i", "eth0", "-F", "tcp", "-x", "198.51.100.9"],
                "-x/--passlist",
                "target",
            ),
        ] {
            let err = refused_with(&["intercept"], args).unwrap_or_else(|| panic!("{args:?}"));
            assert!(
                err.contains(&format!("{flag} applies only to {mode} mode")),
                "{err}"
            );
        }
        let assistant = ["-i", "eth0", "-F", "tcp", "-B", "8", "--allow-forwarding"];
        assert_eq!(refused_with(&["intercept"], &assistant), None);
        let target = [
            "--nfqueue",
            "0",
            "--queue-length",
            "9",
            "-x",
            "198.51.100.9",
        ];
        assert_eq!(refused_with(&["intercept"], &target), None);
    }

    #[test]
    fn other_commands_pass_through() {
        assert_eq!(refused(&["stats", "live", "h:1"]), None);
        assert!(refused(&["intercept"]).is_some(), "clap's own errors stay");
    }
}
