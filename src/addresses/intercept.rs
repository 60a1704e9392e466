//! `-s/--intercept`: the intercepts a copy connects to.

use std::fmt;
use std::str::FromStr;

use super::SyntaxError;

/// One `-s` intercept: a host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterceptAddr {
    pub host: String,
    pub port: u16,
    /// Whether the text named the port (else it is the default, which `-p` may change).
    port_given: bool,
}

impl InterceptAddr {
    /// This intercept with `port` when its own text named none.
    pub fn with_default_port(self, port: u16) -> InterceptAddr {
        if self.port_given {
            return self;
        }
        InterceptAddr { port, ..self }
    }
}

impl FromStr for InterceptAddr {
    type Err = SyntaxError;

    /// `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`.
    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let text = text.trim();
        let invalid = || {
            SyntaxError::new(format!(
                "`{text}` is not an intercept address `HOST[:PORT]`"
            ))
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
            }
        } else if text.matches(':').count() > 1 {
            (text, None) // a bare IPv6 address
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port_given = port.is_some();
        let port = match port {
            None => crate::proto::DEFAULT_PORT,
            Some(port) => port.parse().ok().filter(|&p| p != 0).ok_or_else(invalid)?,
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(InterceptAddr {
            host: host.to_string(),
            port,
            port_given,
        })
    }
}

impl fmt::Display for InterceptAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercept_address_forms() {
        let a: InterceptAddr = "198.51.100.40".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("198.51.100.40", 36524));
        let a: InterceptAddr = "assistant:9000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("assistant", 9000));
        let a: InterceptAddr = "[2001:db8::4]:9000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("2001:db8::4", 9000));
        assert_eq!(a.to_string(), "[2001:db8::4]:9000");
        let a: InterceptAddr = "2001:db8::4".parse().unwrap();
        assert_eq!(a.port, 36524);
        for bad in ["", "h:0", "h:x", "[::1", "[::1]x"] {
            assert!(bad.parse::<InterceptAddr>().is_err(), "{bad}");
        }
    }
}
