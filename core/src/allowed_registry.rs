//! The registries the node fetcher may pull from (`--allowed-registry HOST[:PORT][/repo-prefix]`):
//! the one parser and matcher `install`, `enable` and the fetcher share. It must not do I/O.

use crate::reference::RegistryRef;
use std::fmt;
use std::str::FromStr;

/// The fetcher's and `install`'s flag (repeatable), and the fetcher's environment variable
/// (comma-separated).
pub const ALLOWED_REGISTRY_FLAG: &str = "--allowed-registry";
pub const ALLOWED_REGISTRIES_ENV: &str = "CLASSCACHE_ALLOWED_REGISTRIES";

/// One allowed registry: a host, its port when given, and optionally a repository prefix.
///
/// Matching is exact, never by suffix: `reg.example.com` does not allow
/// `reg.example.com.evil.io`. A host without a port allows only references without a port (the
/// registry's default), so allowing `127.0.0.1` does not open every service on the node.
/// A prefix matches whole path segments: `shop` allows `shop` and `shop/app`, not `shopping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRegistry {
    /// Lower case; an IPv6 address keeps its brackets.
    host: String,
    port: Option<u16>,
    /// Without leading or trailing `/`; empty for the whole registry.
    prefix: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("--allowed-registry {entry:?}: {why}; write HOST[:PORT][/repo-prefix], e.g. registry.example.com/shop or 127.0.0.1:5000 or [fd00::1]:5000")]
pub struct BadAllowedRegistry {
    pub entry: String,
    pub why: &'static str,
}

/// A registry the fetcher does not pull from, with the fix.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("registry {registry} (repository {repository}) is not allowed by this fetcher ({allowed}); allow it with `kubectl classcache install --allowed-registry {registry}` (or a repository prefix, {registry}/{repository})")]
pub struct RegistryNotAllowed {
    pub registry: String,
    pub repository: String,
    /// The allowed list as the message shows it.
    pub allowed: String,
}

/// Splits `host[:port]` (IPv6 in brackets) and checks it; the host lower-cased.
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, rest) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("not an IPv6 address in brackets");
        }
        let port = match rest {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("text after the `]`")?),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err("an IPv6 address goes in brackets");
        }
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("no host");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !host.split('.').all(label_ok) {
            return Err("a host is DNS labels (letters, digits, `-`) separated by `.`");
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
            _ => return Err("the port is not a number from 1 to 65535"),
        },
    };
    Ok((host, port))
}

impl FromStr for AllowedRegistry {
    type Err = BadAllowedRegistry;

    fn from_str(entry: &str) -> Result<Self, BadAllowedRegistry> {
        let bad = |why| BadAllowedRegistry {
            entry: entry.to_string(),
            why,
        };
        if entry.contains("://") {
            return Err(bad(
                "no scheme: plain HTTP is chosen by --insecure-registry",
            ));
        }
        if entry.contains('@') {
            return Err(bad("no user name or password (`@`)"));
        }
        if entry.contains(|c: char| c.is_whitespace() || c.is_control() || "?#\\,".contains(c)) {
            return Err(bad(
                "white space, `?`, `#`, `\\` or `,` cannot be in a registry name",
            ));
        }
        let (authority, prefix) = entry.split_once('/').unwrap_or((entry, ""));
        let (host, port) = parse_authority(authority).map_err(bad)?;
        let prefix = prefix.trim_end_matches('/');
        if prefix.split('/').any(|s| s == "." || s == "..")
            || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
        {
            return Err(bad(
                "a repository prefix has no empty, `.` or `..` segments",
            ));
        }
        Ok(AllowedRegistry {
            host,
            port,
            prefix: prefix.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for AllowedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl AllowedRegistry {
    /// Whether `reference`'s registry and repository fall under this entry.
    pub fn allows(&self, reference: &RegistryRef) -> bool {
        let Ok((host, port)) = parse_authority(&reference.registry) else {
            return false;
        };
        if host != self.host || port != self.port {
            return false;
        }
        self.prefix.is_empty()
            || reference
                .repository
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The fetcher's list. Empty allows nothing: a fetcher holds the cluster's registry
/// credentials, so which registries it speaks to is always said explicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedRegistries(pub Vec<AllowedRegistry>);

impl AllowedRegistries {
    pub fn check(&self, reference: &RegistryRef) -> Result<(), RegistryNotAllowed> {
        if self.0.iter().any(|a| a.allows(reference)) {
            return Ok(());
        }
        Err(RegistryNotAllowed {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            allowed: if self.0.is_empty() {
                "it allows no registry".to_string()
            } else {
                let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
                format!("it allows {}", list.join(", "))
            },
        })
    }

    /// The entries of `--allowed-registry` flags in an argument list (`--allowed-registry X` or
    /// `--allowed-registry=X,Y`), as the DaemonSet's args carry them.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, BadAllowedRegistry> {
        let mut entries = Vec::new();
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(arg) = args.next() {
            let value = match arg.strip_prefix(ALLOWED_REGISTRY_FLAG) {
                Some("") => args.next(),
                Some(v) => v.strip_prefix('='),
                None => None,
            };
            for entry in value.iter().flat_map(|v| v.split(',')) {
                if !entry.is_empty() {
                    entries.push(entry.parse()?);
                }
            }
        }
        Ok(AllowedRegistries(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, reference: &str) -> bool {
        let entry: AllowedRegistry = entry.parse().unwrap();
        entry.allows(&reference.parse().unwrap())
    }

    #[test]
    fn host_port_and_prefix_match_exactly() {
        assert!(allows("reg.example.com", "reg.example.com/shop/app"));
        assert!(allows("REG.Example.com", "reg.example.com/a"));
        assert!(allows("reg.example.com", "REG.EXAMPLE.COM/a"));
        assert!(!allows("reg.example.com", "reg.example.com.evil.io/a"));
        assert!(!allows("reg.example.com", "evil-reg.example.com/a"));
        assert!(!allows("example.com", "reg.example.com/a"), "no subdomains");
        // Ports: none allows only the default, a given one only itself.
        assert!(!allows("reg.example.com", "reg.example.com:5000/a"));
        assert!(allows("reg.example.com:5000", "reg.example.com:5000/a"));
        assert!(!allows("reg.example.com:5000", "reg.example.com:5001/a"));
        assert!(!allows("reg.example.com:5000", "reg.example.com/a"));
        assert!(
            !allows("127.0.0.1", "127.0.0.1:10250/a"),
            "not every local service"
        );
        // Prefixes are whole segments.
        assert!(allows("reg.example.com/shop", "reg.example.com/shop/app"));
        assert!(allows("reg.example.com/shop/", "reg.example.com/shop"));
        assert!(!allows(
            "reg.example.com/shop",
            "reg.example.com/shopping/app"
        ));
        assert!(!allows(
            "reg.example.com/shop/app",
            "reg.example.com/shop/other"
        ));
        assert!(allows("Reg.example.com/Shop", "reg.example.com/shop/app"));
        // IPv6 in brackets, compared case-insensitively.
        assert!(allows("[fd00::1]:5000", "[FD00::1]:5000/a"));
        assert!(!allows("[fd00::1]:5000", "[fd00::2]:5000/a"));
        assert!(!allows("[fd00::1]", "[fd00::1]:5000/a"));
        // Docker Hub as references name it.
        assert!(allows("docker.io/library", "busybox"));
    }

    #[test]
    fn a_reference_with_userinfo_matches_nothing() {
        // Whatever a caller managed to put in a registry name, `user@host` is no host.
        let with_registry = |registry: &str| RegistryRef {
            registry: registry.into(),
            repository: "a".into(),
            tag: None,
            digest: None,
        };
        for (entry, registry) in [
            ("reg.example.com", "reg.example.com@evil.io"),
            ("evil.io", "reg.example.com@evil.io"),
            ("reg.example.com", "evil.io@reg.example.com"),
            ("reg.example.com", "reg.example.com:@evil.io"),
            ("reg.example.com", "reg.example.com/../evil.io"),
        ] {
            let entry: AllowedRegistry = entry.parse().unwrap();
            assert!(!entry.allows(&with_registry(registry)), "{registry}");
        }
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (entry, why) in [
            ("", "no host"),
            ("https://reg.example.com", "no scheme"),
            ("user:pw@reg.example.com", "`@`"),
            ("reg.example.com:0", "port"),
            ("reg.example.com:70000", "port"),
            ("reg.example.com:+80", "port"),
            ("::1", "brackets"),
            ("fd00::1:5000", "brackets"),
            ("[fd00::1", "closing"),
            ("[fd00::1]x", "after"),
            ("[evil.io]", "IPv6"),
            ("reg..example.com", "DNS labels"),
            ("reg_example.com", "DNS labels"),
            ("reg.example.com/../x", "segments"),
            ("reg.example.com//x", "segments"),
            ("reg.example.com x", "white space"),
            ("a.io,b.io", "`,`"),
        ] {
            let e = entry.parse::<AllowedRegistry>().unwrap_err();
            assert!(e.to_string().contains(why), "{entry:?}: {e}");
        }
    }

    #[test]
    fn the_list_names_the_refused_registry_and_the_fix() {
        let none = AllowedRegistries::default();
        let r: RegistryRef = "127.0.0.1:5000/shop/app".parse().unwrap();
        let e = none.check(&r).unwrap_err().to_string();
        assert!(e.contains("allows no registry"), "{e}");
        assert!(
            e.contains("kubectl classcache install --allowed-registry 127.0.0.1:5000"),
            "{e}"
        );
        let list = AllowedRegistries::from_args(&[
            "serve",
            "--allowed-registry",
            "reg.example.com/shop",
            "--allowed-registry=127.0.0.1:5000,[::1]:5000",
            "--store",
            "/x",
        ])
        .unwrap();
        assert_eq!(list.0.len(), 3);
        assert!(list.check(&r).is_ok());
        let e = list
            .check(&"reg.example.com/other/app".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("reg.example.com/shop, 127.0.0.1:5000, [::1]:5000"),
            "{e}"
        );
        assert!(AllowedRegistries::from_args(&["--allowed-registry", "a b"]).is_err());
    }
}
