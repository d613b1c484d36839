//! `application/x-www-form-urlencoded` values of query strings and form bodies, decoded once.
//! Invalid UTF-8 is "absent", never a panic.

/// Query parameter `name`, percent-decoded (`+` is a space). Invalid UTF-8 → None.
pub fn query_param(req_query: Option<&str>, name: &str) -> Option<String> {
    form_value(req_query?, name)
}

/// A value from `application/x-www-form-urlencoded` text.
pub fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}
