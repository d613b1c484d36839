//! `${NAME}` references in config string values, replaced by environment variables before the
//! file is read into its structs. `$${` is a literal `${`; any other `$` is itself. A value is
//! never expanded twice, so a variable's own text is taken as it is.

/// A string value after expansion, and the variables it named that had no value (their place
/// holds [`PLACEHOLDER`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    pub unset: Vec<String>,
}

/// What an unset variable becomes, so the rest of the file can still be read and checked;
/// checks of a value holding it are reported as skipped, never as passed.
pub const PLACEHOLDER: &str = "placeholder";

/// Expands every `${NAME}` in `value` with `lookup`. The error names the malformed reference.
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut text = String::with_capacity(value.len());
    let mut unset = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        text.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix("${") {
            text.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            text.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err("unterminated ${...} reference (write $${ for a literal ${)".into());
        };
        let name = body.get(..end).unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "invalid environment variable name {name:?} (letters, digits and _; write $${{ for a literal ${{)"
            ));
        }
        match lookup(name) {
            Some(v) => text.push_str(&v),
            None => {
                text.push_str(PLACEHOLDER);
                if !unset.iter().any(|u| u == name) {
                    unset.push(name.to_owned());
                }
            }
        }
        rest = body.get(end + 1..).unwrap_or_default();
    }
    text.push_str(rest);
    Ok(Expanded { text, unset })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.example.com".into()),
            "EMPTY" => Some(String::new()),
            "TRICK" => Some("${HOST}".into()),
            _ => None,
        }
    }

    fn ok(v: &str) -> (String, Vec<String>) {
        let e = expand(v, &env).unwrap();
        (e.text, e.unset)
    }

    #[test]
    fn references_expand_and_unset_ones_are_named_once() {
        let none: Vec<String> = vec![];
        assert_eq!(ok("plain"), ("plain".into(), none.clone()));
        assert_eq!(
            ok("postgres://u@${HOST}:5432/x"),
            ("postgres://u@db.example.com:5432/x".into(), none.clone())
        );
        assert_eq!(ok("${EMPTY}"), (String::new(), none.clone()));
        assert_eq!(
            ok("${NOPE}/${NOPE}-${HOST}"),
            (
                "placeholder/placeholder-db.example.com".into(),
                vec!["NOPE".into()]
            )
        );
    }

    #[test]
    fn a_variable_value_is_not_expanded_again() {
        assert_eq!(ok("${TRICK}").0, "${HOST}");
    }

    #[test]
    fn dollars_stay_literal_and_double_dollar_brace_is_a_literal_reference() {
        let none: Vec<String> = vec![];
        assert_eq!(ok("pa$$word$"), ("pa$$word$".into(), none.clone()));
        assert_eq!(ok("$${HOST}"), ("${HOST}".into(), none.clone()));
        assert_eq!(ok("$$${HOST}"), ("$${HOST}".into(), none.clone()));
        assert_eq!(ok("a$b$"), ("a$b$".into(), none));
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in ["${HOST", "${}", "${A-B}", "x${a b}y"] {
            assert!(expand(bad, &env).is_err(), "{bad:?}");
        }
    }
}
