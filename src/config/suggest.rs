//! "Did you mean": the known key closest to a misspelt one, by edit distance (at most 2, or a
//! third of the word for long keys). Rewrites serde's `unknown field` message into one that names
//! the table and the suggestion, or lists the keys the table takes.

/// Levenshtein distance over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX - 1) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(usize::MAX - 1) + 1;
            let ins = cur.get(j).copied().unwrap_or(usize::MAX - 1) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The candidate closest to `word`, if it is close enough to be what was meant.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`") in the table
/// `table` (a rendered key path, empty at the top level), said for a person.
pub fn unknown_key(message: &str, table: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty())
        .collect();
    let place = if table.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in [{table}]")
    };
    Some(match closest(field, &known) {
        Some(best) => format!("unknown key {field:?} {place} — did you mean {best:?}?"),
        None if known.is_empty() => format!("unknown key {field:?} {place}"),
        None => format!(
            "unknown key {field:?} {place}; the keys here are {}",
            known.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("idle_timout", "idle_timeout"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("lisen", "listen"), 1);
        assert_eq!(distance("ab", "ba"), 2);
    }

    #[test]
    fn the_closest_known_key_is_suggested_only_when_close() {
        let keys = ["store", "redis_url", "idle_timeout", "max_lifetime"];
        assert_eq!(closest("idle_timout", &keys), Some("idle_timeout"));
        assert_eq!(closest("redis-url", &keys), Some("redis_url"));
        assert_eq!(closest("max_life_time", &keys), Some("max_lifetime"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("stor", &keys), Some("store"));
    }

    #[test]
    fn serde_unknown_field_messages_become_suggestions() {
        let m = "unknown field `idle_timout`, expected one of `store`, `idle_timeout`";
        assert_eq!(
            unknown_key(m, "session").as_deref(),
            Some("unknown key \"idle_timout\" in [session] — did you mean \"idle_timeout\"?")
        );
        let m = "unknown field `colour`, expected one of `url`, `timeout`";
        assert_eq!(
            unknown_key(m, "upstream").as_deref(),
            Some("unknown key \"colour\" in [upstream]; the keys here are url, timeout")
        );
        let m = "unknown field `x`, expected `file`";
        assert_eq!(
            unknown_key(m, "").as_deref(),
            Some("unknown key \"x\" at the top level; the keys here are file")
        );
        assert_eq!(unknown_key("missing field `listen`", "server"), None);
    }
}
