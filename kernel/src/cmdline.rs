//! The kernel command line: space-separated `key=value` words.
#![deny(unsafe_code)]

/// A parsed command line; borrows the text.
pub struct Cmdline<'a> {
    text: &'a str,
}

impl<'a> Cmdline<'a> {
    /// Wraps `text`.
    pub fn new(text: &'a str) -> Self {
        Cmdline { text }
    }

    /// The value of the last `key=value` word with this key.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.text
            .split_ascii_whitespace()
            .rev()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Words that are not `key=value`.
    pub fn malformed(&self) -> impl Iterator<Item = &'a str> {
        self.text
            .split_ascii_whitespace()
            .filter(|w| !w.contains('='))
    }
}
