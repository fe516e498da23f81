//! IP addresses and CIDR ranges (`{"cidr": "10.0.0.0/24"}`, IPv4 and IPv6).
//!
//! Addresses are parsed with the standard library, which accepts exactly the standard
//! spellings (dotted quad without leading zeros or signs; RFC 4291 IPv6 text including `::`
//! and an embedded IPv4 tail) and rejects the rest. A range is kept as the lowest and highest
//! address it contains, so matching is two integer comparisons.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IpRange {
    pub v6: bool,
    pub lo: u128,
    pub hi: u128,
}

/// An address as (is IPv6, numeric value).
pub(crate) fn parse_ip(s: &[u8]) -> Option<(bool, u128)> {
    // Cheap reject before going to the std parser: IP text is short and uses few characters.
    if s.is_empty() || s.len() > 45 {
        return None;
    }
    if !s
        .iter()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':'))
    {
        return None;
    }
    let s = std::str::from_utf8(s).ok()?;
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((false, u32::from(a) as u128)),
        IpAddr::V6(a) => Some((true, u128::from(a))),
    }
}

impl IpRange {
    /// Parses `address/bits`; the error text is shown to the user.
    pub(crate) fn parse_cidr(text: &str) -> Result<IpRange, String> {
        let mut parts = text.split('/');
        let (Some(addr), Some(bits), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("malformed CIDR {text:?}: exactly one '/' required"));
        };
        let bits: i64 = bits
            .parse()
            .map_err(|_| format!("malformed CIDR {text:?}: mask bits must be an integer"))?;
        let (v6, value) = if let Ok(a) = addr.parse::<Ipv4Addr>() {
            (false, u32::from(a) as u128)
        } else if let Ok(a) = addr.parse::<Ipv6Addr>() {
            (true, u128::from(a))
        } else {
            return Err(format!(
                "malformed CIDR {text:?}: {addr:?} is not an IP address"
            ));
        };
        let width: i64 = if v6 { 128 } else { 32 };
        if !(0..=width).contains(&bits) {
            return Err(format!(
                "malformed CIDR {text:?}: mask bits must be between 0 and {width}"
            ));
        }
        let host_bits = (width - bits) as u32;
        let host_mask: u128 = if host_bits == 0 {
            0
        } else {
            u128::MAX >> (128 - host_bits)
        };
        Ok(IpRange {
            v6,
            lo: value & !host_mask,
            hi: value | host_mask,
        })
    }

    pub(crate) fn contains(&self, s: &[u8]) -> bool {
        match parse_ip(s) {
            Some((v6, a)) => v6 == self.v6 && self.lo <= a && a <= self.hi,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = IpRange::parse_cidr("10.0.0.0/24").unwrap();
        assert!(r.contains(b"10.0.0.255"));
        assert!(!r.contains(b"10.0.1.0"));
        assert!(!r.contains(b"::a00:1"));
        let r = IpRange::parse_cidr("2400:6500:FF00::36FB:1F80/122").unwrap();
        assert!(r.contains(b"2400:6500:ff00::36fb:1fbf"));
        assert!(!r.contains(b"2400:6500:ff00::36fb:1fc0"));
        assert!(
            IpRange::parse_cidr("0.0.0.0/0")
                .unwrap()
                .contains(b"255.255.255.255")
        );
        for bad in [
            "foo",
            "1.2.3.4/33",
            "1.2.3.4/-1",
            "1.2.3.4/x",
            "a/b/c",
            "2.1.0.-1/3",
            "::1/129",
            "10.10.10.10.10/3",
        ] {
            assert!(IpRange::parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
