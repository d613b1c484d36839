//! What every fuzz target shares: inputs cut to a bound and read as text.
//! The bound sits above every parser's own limit, so cutting never hides a bug.

/// Inputs beyond this are cut: every parser here has its own, smaller, limit in front of it.
pub(super) const MAX_INPUT: usize = 64 * 1024;

pub(super) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data.get(..MAX_INPUT).unwrap_or(data))
}
