//! Statement text built at run time with its bound parameters (the audit query's filters).
//! Invariant: only fixed fragments are appended to the text; every value is a parameter.

/// A value bound into a statement whose text is built at run time.
pub(super) enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// Statement text and its parameters, built together so each `$n` placeholder and its value
/// cannot drift apart. Only fixed fragments are appended; every value is a bound parameter.
/// (sqlx's `QueryBuilder` cannot be used over a generic database: its argument buffer would
/// stay borrowed for its own lifetime.)
pub(super) struct Filtered<'a> {
    pub(super) text: String,
    pub(super) params: Vec<Param<'a>>,
}

impl<'a> Filtered<'a> {
    pub(super) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends `fragment` and a placeholder for `value`.
    pub(super) fn push(&mut self, fragment: &str, value: Param<'a>) {
        self.params.push(value);
        self.text.push_str(fragment);
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
    }
}
