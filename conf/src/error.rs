//! The one error type of this crate. Every message about the file's content
//! reads `FILE:LINE:COL: KEY: what is wrong (and the fix when obvious)`, with
//! a 1-based line and a 1-based column counted in characters, pointing at the
//! offending value (or key, for an unknown key).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{origin}:{line}:{col}: invalid TOML: {message}")]
    Syntax { origin: String, line: usize, col: usize, message: String },
    /// The TOML is well formed but a value is wrong. `key` is the key path,
    /// like `port[1].mac`.
    #[error("{origin}:{line}:{col}: {key}: {message}")]
    Invalid { origin: String, line: usize, col: usize, key: String, message: String },
}

impl ConfError {
    /// The 1-based (line, column) the error points at, if it is about the
    /// file's content.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfError::Read { .. } => None,
            ConfError::Syntax { line, col, .. } | ConfError::Invalid { line, col, .. } => Some((*line, *col)),
        }
    }

    /// The key path (`port[1].mac`) of an `Invalid` error.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// 1-based line and character column of byte offset `at` in `text`
/// (clamped to the text, and to a character boundary).
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Builds `Invalid` errors for one input text.
pub(crate) struct Reporter<'a> {
    pub text: &'a str,
    pub origin: &'a str,
}

impl Reporter<'_> {
    pub fn invalid(&self, at: usize, key: impl Into<String>, message: impl Into<String>) -> ConfError {
        let (line, col) = line_col(self.text, at);
        ConfError::Invalid { origin: self.origin.to_owned(), line, col, key: key.into(), message: message.into() }
    }

    pub fn syntax(&self, at: usize, message: impl Into<String>) -> ConfError {
        let (line, col) = line_col(self.text, at);
        ConfError::Syntax { origin: self.origin.to_owned(), line, col, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_in_chars() {
        let t = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (1, 5));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes but one column.
        let x = t.find("\"x").unwrap();
        assert_eq!(line_col(t, x), (2, 6));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn display_forms() {
        let r = Reporter { text: "a\nbc", origin: "rvs.toml" };
        assert_eq!(r.invalid(3, "port[0].mac", "bad").to_string(), "rvs.toml:2:2: port[0].mac: bad");
        assert_eq!(r.syntax(0, "oops").to_string(), "rvs.toml:1:1: invalid TOML: oops");
        let e = ConfError::Read {
            path: PathBuf::from("/nope/rvs.toml"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "/nope/rvs.toml: cannot read: entity not found");
        assert_eq!(e.position(), None);
    }
}
