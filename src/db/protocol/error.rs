//! The error of the database API: a rejected family or key, named.

use thiserror::Error;

/// A database call was given a family or key it cannot store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A family name that is empty or not `'?[A-Za-z][A-Za-z0-9_:]*`.
    #[error("invalid database family {0:?}: must match '?[A-Za-z][A-Za-z0-9_:]*")]
    InvalidFamily(String),
    /// An empty key (keys are non-empty strings).
    #[error("invalid database key in family {family:?}: keys must be non-empty strings")]
    EmptyKey {
        /// The family the key was meant for.
        family: String,
    },
}

/// Checks a family name from the local API: `'?[A-Za-z][A-Za-z0-9_:]*`.
///
/// The leading quote is for the internal families (`'l` listeners, `'g`
/// globals). Packets from the network are not checked this strictly: Perl
/// documents the pattern without enforcing it, so a peer may use others.
pub fn check_family(family: &str) -> Result<(), Error> {
    let name = family.strip_prefix('\'').unwrap_or(family);
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(Error::InvalidFamily(family.to_owned()))
    }
}

/// Checks a key: any non-empty string.
pub fn check_key(family: &str, key: &str) -> Result<(), Error> {
    if key.is_empty() {
        Err(Error::EmptyKey {
            family: family.to_owned(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        for ok in ["a", "interop2", "'l", "'g", "My::Fam_1"] {
            assert_eq!(check_family(ok), Ok(()), "{ok}");
        }
        for bad in ["", "'", "1a", "a-b", "a b", "''l", "_x"] {
            let e = check_family(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!(check_key("f", "")
            .unwrap_err()
            .to_string()
            .contains("\"f\""));
        assert_eq!(check_key("f", "node#port"), Ok(()));
    }
}
