//! Where an owner webhook may point.
//!
//! An owner webhook's URL is chosen through the admin API (or `keys update
//! --webhook`), and the server POSTs to it: left open, anyone who may set
//! one could make the server reach services that are meant to be reachable
//! from inside only (a metadata endpoint at 169.254.169.254, a database
//! port on 127.0.0.1), a blind server-side request forgery. So unless the
//! operator allows private targets (`--allow-private-webhooks`), only public
//! addresses are targets ([`is_public_address`]): a URL naming another
//! address is refused when it is set ([`check_webhook_target`]), and the
//! server checks every address a name resolves to again when it delivers,
//! so a name that resolves (or later resolves) to a private address is not
//! reached either.

use crate::ServiceError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which addresses owner webhooks may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookTargets {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Any address, private, loopback and link-local included
    /// (`--allow-private-webhooks`).
    Any,
}

impl WebhookTargets {
    /// Whether `address` may be reached.
    pub fn allows(self, address: IpAddr) -> bool {
        self == WebhookTargets::Any || is_public_address(address)
    }
}

/// Whether `address` is a public unicast address: not unspecified,
/// loopback, private (RFC 1918, IPv6 unique local), shared (100.64.0.0/10),
/// link-local, multicast, broadcast, documentation, benchmarking or
/// reserved. IPv4 embedded in IPv6 (mapped, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged as that IPv4 address.
pub fn is_public_address(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(address) => is_public_v4(address),
        IpAddr::V6(address) => is_public_v6(address),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [first, second, third, _] = address.octets();
    let reserved = first == 0 // "this network"
        || first >= 240 // reserved, broadcast
        || (first == 100 && (64..128).contains(&second)) // shared address space
        || (first == 192 && second == 0 && third == 0) // IETF protocol assignments
        || (first == 198 && (second & 0xfe) == 18); // benchmarking
    !(reserved
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_documentation())
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    let octets = address.octets();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    let unique_local = (segments[0] & 0xfe00) == 0xfc00;
    let link_local = (segments[0] & 0xffc0) == 0xfe80;
    let site_local = (segments[0] & 0xffc0) == 0xfec0;
    let documentation = segments[0] == 0x2001 && segments[1] == 0x0db8;
    // ::/96 (IPv4-compatible, deprecated) other than what to_canonical mapped.
    let compatible = segments[..6] == [0, 0, 0, 0, 0, 0];
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || unique_local
        || link_local
        || site_local
        || documentation
        || compatible)
}

/// Refuses (400 `invalid_request`) a webhook URL whose host is an address
/// that `targets` does not allow, or `localhost` (`*.localhost`), as the
/// URL parser reads it (`http://2130706433/` is 127.0.0.1). Other names are
/// checked when the server delivers, against every address they resolve to.
pub fn check_webhook_target(url: &str, targets: WebhookTargets) -> Result<(), ServiceError> {
    if targets == WebhookTargets::Any {
        return Ok(());
    }
    let parsed = url::Url::parse(url).map_err(|_| {
        ServiceError::invalid_request("the webhook URL must be an absolute http:// or https:// URL")
    })?;
    let allowed = match parsed.host() {
        Some(url::Host::Ipv4(address)) => is_public_address(IpAddr::V4(address)),
        Some(url::Host::Ipv6(address)) => is_public_address(IpAddr::V6(address)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::invalid_request(
            "the webhook URL points to a private, loopback or link-local address \
             (the server must run with --allow-private-webhooks to allow that)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public_address(text.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(!public(address), "{address}");
        }
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(address), "{address}");
        }
    }

    #[test]
    fn urls_are_judged_by_their_host_as_parsed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "https://localhost/hook",
            "https://api.LOCALHOST./hook",
            "http://user:pw@10.0.0.1/",
        ] {
            assert!(
                check_webhook_target(url, WebhookTargets::PublicOnly).is_err(),
                "{url}"
            );
            assert!(check_webhook_target(url, WebhookTargets::Any).is_ok());
        }
        for url in [
            "https://hooks.example.com/a",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ] {
            assert!(
                check_webhook_target(url, WebhookTargets::PublicOnly).is_ok(),
                "{url}"
            );
        }
    }
}
