//! Validated names (`kvs-api.md` §15.1).

use std::fmt;

/// Why a name was refused. The message names the rule so a user can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Too short or too long.
    #[error("{what} must be {min} to {max} characters long, got {len}")]
    Length {
        /// Which kind of name.
        what: &'static str,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
        /// Actual length.
        len: usize,
    },
    /// A character outside `[a-zA-Z0-9_.-]`.
    #[error(
        "{what} may contain only letters, digits, '_', '.' and '-'; found {found:?} at position {pos}"
    )]
    Character {
        /// Which kind of name.
        what: &'static str,
        /// The offending character.
        found: char,
        /// Its character position.
        pos: usize,
    },
    /// A signaling client id that starts with the reserved `AWS_` prefix.
    #[error("client id must not start with \"AWS_\"")]
    ReservedPrefix,
}

fn check_charset(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    let len = s.chars().count();
    if len == 0 || len > max {
        return Err(NameError::Length {
            what,
            min: 1,
            max,
            len,
        });
    }
    if let Some((pos, found)) = s
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NameError::Character { what, found, pos });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Maximum length in characters.
            pub const MAX_LEN: usize = $max;

            /// Validates `s` (`[a-zA-Z0-9_.-]`, 1 to `MAX_LEN` characters).
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_charset($what, s, $max)?;
                Ok(Self(s.to_owned()))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A stream name: `[a-zA-Z0-9_.-]+`, 1..256. Safe to use as a path component.
    StreamName, "stream name", 256
);
name_type!(
    /// A signaling channel name: `[a-zA-Z0-9_.-]+`, 1..256.
    ChannelName, "channel name", 256
);

/// A signaling client id: `[a-zA-Z0-9_.-]+`, 1..256, not starting with `AWS_` (any case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Validates a client id as ConnectAsViewer does.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_charset("client id", s, 256)?;
        if s.len() >= 4 && s[..4].eq_ignore_ascii_case("AWS_") {
            return Err(NameError::ReservedPrefix);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a valid resource `Version` / `CurrentVersion`: `[a-zA-Z0-9]+`, 1..64.
pub fn is_valid_version(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("bike-stand_01.north", true),
            ("", false),
            ("../etc", false),
            ("a/b", false),
            ("space here", false),
            ("ünïcode", false),
            (&"x".repeat(256), true),
            (&"x".repeat(257), false),
        ];
        for (input, ok) in cases {
            assert_eq!(StreamName::parse(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn error_messages_name_the_rule() {
        let e = StreamName::parse("a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "stream name may contain only letters, digits, '_', '.' and '-'; found '/' at position 1"
        );
        let e = StreamName::parse("").unwrap_err();
        assert_eq!(
            e.to_string(),
            "stream name must be 1 to 256 characters long, got 0"
        );
    }

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("viewer-1").is_ok());
        assert_eq!(ClientId::parse("aws_x"), Err(NameError::ReservedPrefix));
        assert_eq!(ClientId::parse("AWS_"), Err(NameError::ReservedPrefix));
        assert!(ClientId::parse("AWS").is_ok());
    }

    #[test]
    fn versions() {
        assert!(is_valid_version("abc123"));
        assert!(!is_valid_version(""));
        assert!(!is_valid_version("a-b"));
        assert!(!is_valid_version(&"a".repeat(65)));
    }

    proptest::proptest! {
        #[test]
        fn valid_names_are_path_safe(s in "\\PC{0,300}") {
            if let Ok(n) = StreamName::parse(&s) {
                proptest::prop_assert!(!n.as_str().contains('/'));
                proptest::prop_assert!(n.as_str() != "." && n.as_str() != "..");
            }
        }
    }
}
