//! A hash of a client endpoint that is the same in every build, run and host, so choices made
//! from it (the `-c` address a client gets, whether `-r` keeps its sessions, the port of a
//! `-n` replica) survive a restart of copy.
//!
//! std's `DefaultHasher` makes no such promise across Rust releases; this is SplitMix64's
//! finalizer over the address bytes, the port and a salt that separates the uses.

use std::net::{IpAddr, SocketAddr};

/// A well-mixed 64-bit hash of `endpoint` and `salt`.
pub fn stable_hash(endpoint: SocketAddr, salt: u64) -> u64 {
    let mut state = mix(salt ^ 0x9E37_79B9_7F4A_7C15);
    let words: [u64; 2] = match endpoint.ip() {
        IpAddr::V4(ip) => [u64::from(u32::from(ip)), 0],
        IpAddr::V6(ip) => {
            let bits = u128::from(ip);
            [(bits >> 64) as u64, bits as u64]
        }
    };
    for word in words.into_iter().chain([u64::from(endpoint.port())]) {
        state = mix(state ^ word);
    }
    state
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_fixed_across_builds() {
        // A changed value would move every client's -c address and -r choice.
        let endpoint: SocketAddr = "198.51.100.10:40000".parse().unwrap();
        assert_eq!(stable_hash(endpoint, 0), stable_hash(endpoint, 0));
        assert_eq!(stable_hash(endpoint, 0), 0x1260_981b_feac_e619);
    }

    #[test]
    fn port_address_and_salt_all_count() {
        let a: SocketAddr = "198.51.100.10:40000".parse().unwrap();
        let b: SocketAddr = "198.51.100.10:40001".parse().unwrap();
        let c: SocketAddr = "198.51.100.11:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::10]:40000".parse().unwrap();
        let hashes = [
            stable_hash(a, 0),
            stable_hash(b, 0),
            stable_hash(c, 0),
            stable_hash(a, 1),
            stable_hash(v6, 0),
        ];
        for (i, x) in hashes.iter().enumerate() {
            for y in &hashes[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
