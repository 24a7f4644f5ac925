//! A key's allow-list of client networks (`keys create|update --allow-cidr`,
//! `allowedCidrs`): parsed once at the edge into normalised networks, and the
//! one check of a client address against them.

use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;
use std::str::FromStr;

/// Most networks one key's allow-list holds.
pub const MAX_ALLOWED_NETWORKS: usize = 100;

/// The client networks a key may be used from: at least one, each an IPv4 or
/// IPv6 network in normal form (host bits cleared, IPv4-mapped IPv6 written
/// as IPv4), sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

/// Why a list is not an allow-list. The messages never repeat the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllowedNetworksError {
    /// An entry is neither an address nor an address with a prefix length.
    #[error(
        "a CIDR is an IPv4 or IPv6 address with an optional /prefix length \
         (e.g. 203.0.113.0/24, 2001:db8::/32; a bare address is one host)"
    )]
    Malformed,
    /// No entry.
    #[error("an allow-list needs at least one network")]
    Empty,
    /// More than [`MAX_ALLOWED_NETWORKS`] entries.
    #[error("an allow-list holds at most 100 networks")]
    TooMany,
}

impl AllowedNetworks {
    /// Parses a list of CIDRs; a bare address means that one host (`/32`,
    /// `/128`). Host bits are cleared (`203.0.113.7/24` is
    /// `203.0.113.0/24`), IPv4-mapped IPv6 networks become IPv4 ones, and
    /// duplicates go.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, AllowedNetworksError> {
        if texts.len() > MAX_ALLOWED_NETWORKS {
            return Err(AllowedNetworksError::TooMany);
        }
        let mut networks = texts
            .iter()
            .map(|text| parse_network(text.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if networks.is_empty() {
            return Err(AllowedNetworksError::Empty);
        }
        networks.sort_unstable();
        networks.dedup();
        Ok(AllowedNetworks(networks))
    }

    /// Whether a request from `client` may use the key. An unknown
    /// (unspecified) address is never admitted: the check fails closed.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        let Some(client) = client.map(|address| address.to_canonical()) else {
            return false;
        };
        !client.is_unspecified() && self.0.iter().any(|network| network.contains(&client))
    }

    /// The networks in normal form (`203.0.113.0/24`, `2001:db8::/32`).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }

    /// The storage form: the networks separated by single spaces.
    pub fn to_storage(&self) -> String {
        self.to_strings().join(" ")
    }

    /// Reads the storage form back; `None` for an empty text (no allow-list).
    pub fn from_storage(text: &str) -> Result<Option<Self>, AllowedNetworksError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.is_empty() {
            return Ok(None);
        }
        Self::parse(&parts).map(Some)
    }
}

/// One entry: `ADDRESS` or `ADDRESS/PREFIX`, in normal form.
fn parse_network(text: &str) -> Result<IpNet, AllowedNetworksError> {
    let text = text.trim();
    let network = if text.contains('/') {
        IpNet::from_str(text).map_err(|_| AllowedNetworksError::Malformed)?
    } else {
        IpNet::from(IpAddr::from_str(text).map_err(|_| AllowedNetworksError::Malformed)?)
    };
    Ok(unmapped(network.trunc()))
}

/// An IPv4-mapped IPv6 network (`::ffff:203.0.113.0/120`) as the IPv4
/// network it names, since client addresses are compared in canonical form.
fn unmapped(network: IpNet) -> IpNet {
    let IpNet::V6(v6) = network else {
        return network;
    };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(address), Some(prefix)) => Ipv4Net::new(address, prefix)
            .map(IpNet::V4)
            .unwrap_or(network),
        _ => network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(texts: &[&str]) -> AllowedNetworks {
        AllowedNetworks::parse(texts).unwrap()
    }

    #[test]
    fn entries_are_normalised_sorted_and_deduplicated() {
        let parsed = networks(&[
            " 203.0.113.7/24 ",
            "2001:db8::1",
            "198.51.100.9",
            "203.0.113.0/24",
            "::ffff:192.0.2.0/120",
            "2001:DB8:0:0:1::/64",
        ]);
        assert_eq!(
            parsed.to_strings(),
            [
                "192.0.2.0/24",
                "198.51.100.9/32",
                "203.0.113.0/24",
                "2001:db8::/64",
                "2001:db8::1/128",
            ]
        );
        let stored = parsed.to_storage();
        assert_eq!(
            AllowedNetworks::from_storage(&stored).unwrap(),
            Some(parsed)
        );
        assert_eq!(AllowedNetworks::from_storage("").unwrap(), None);
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "203.0.113.0/33",
            "2001:db8::/129",
            "203.0.113",
            "example.com",
            "fe80::1%eth0",
            "10.0.0.0/8/8",
            "10.0.0.0/-1",
            "10.0.0.0 /8",
        ] {
            assert_eq!(
                AllowedNetworks::parse(&[bad]),
                Err(AllowedNetworksError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            AllowedNetworks::parse::<&str>(&[]),
            Err(AllowedNetworksError::Empty)
        );
        let many: Vec<String> = (0..=MAX_ALLOWED_NETWORKS)
            .map(|index| format!("10.0.{}.{}", index / 256, index % 256))
            .collect();
        assert_eq!(
            AllowedNetworks::parse(&many),
            Err(AllowedNetworksError::TooMany)
        );
    }

    #[test]
    fn addresses_inside_are_admitted_and_unknown_ones_never() {
        let allowed = networks(&["203.0.113.0/24", "2001:db8::/32"]);
        let admits = |text: &str| allowed.admits(Some(text.parse().unwrap()));
        assert!(admits("203.0.113.200"));
        assert!(admits("::ffff:203.0.113.5"));
        assert!(admits("2001:db8:1::5"));
        assert!(!admits("203.0.114.1"));
        assert!(!admits("2001:db9::1"));
        assert!(!allowed.admits(None));
        let everyone = networks(&["0.0.0.0/0", "::/0"]);
        assert!(everyone.admits(Some("198.51.100.1".parse().unwrap())));
        assert!(!everyone.admits(Some("0.0.0.0".parse().unwrap())));
        assert!(!everyone.admits(Some("::".parse().unwrap())));
    }
}
