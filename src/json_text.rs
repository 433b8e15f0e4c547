//! JSON as the user wrote it. A value is stored as its text and never parsed into a
//! `serde_json::Value` and printed back (that would change number text such as `4999.00`,
//! and, without care, key order); what is shown is re-indented token by token.

use serde::de::IgnoredAny;

/// Whether `raw` is a JSON object or array (what is shown pretty and edited as JSON).
pub fn is_structured(raw: &str) -> bool {
    matches!(raw.trim_start().as_bytes().first(), Some(b'{' | b'['))
        && serde_json::from_str::<IgnoredAny>(raw).is_ok()
}

/// Re-indents a JSON object or array for display, every token (key, number, string with
/// its escapes) as written; `None` when the value is not a JSON object or array.
pub fn pretty(raw: &str) -> Option<String> {
    if !is_structured(raw) {
        return None;
    }
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut out = String::with_capacity(raw.len() * 2);
    let mut indent = 0usize;
    let newline = |out: &mut String, indent: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(indent));
    };
    let (mut in_str, mut esc) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let next = chars[i..].iter().position(|c| !c.is_whitespace());
                if next.is_some_and(|n| chars[i + n] == close) {
                    out.push(c);
                    out.push(close);
                    i += next.unwrap_or(0) + 1;
                } else {
                    out.push(c);
                    indent += 1;
                    newline(&mut out, indent);
                }
            }
            '}' | ']' => {
                indent = indent.saturating_sub(1);
                newline(&mut out, indent);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, indent);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// The text without the whitespace between tokens: two JSON texts with the same tokens
/// (keys, their order, number and string spellings) are the same value as written.
fn tokens(raw: &str) -> impl Iterator<Item = char> + '_ {
    let (mut in_str, mut esc) = (false, false);
    raw.chars().filter(move |&c| {
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            return true;
        }
        if c == '"' {
            in_str = true;
        }
        !c.is_whitespace()
    })
}

/// Whether two JSON texts differ only in the whitespace between their tokens.
pub fn same_tokens(a: &str, b: &str) -> bool {
    tokens(a).eq(tokens(b))
}

/// Why `raw` is not JSON: (line, column, message), serde's position taken out of the
/// message so that the caller can place it.
pub fn check(raw: &str) -> Result<(), (usize, usize, String)> {
    serde_json::from_str::<IgnoredAny>(raw)
        .map(|_| ())
        .map_err(|e| {
            let full = e.to_string();
            let msg = full
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&full)
                .to_string();
            (e.line(), e.column(), msg)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_every_token_as_written() {
        let p = pretty(
            r#"{"b":1,"a":{"x":[true,null,"s\"q"]},"e":[],"o":{},"n":4999.00,"u":"\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            "{\n  \"b\": 1,\n  \"a\": {\n    \"x\": [\n      true,\n      null,\n      \"s\\\"q\"\n    ]\n  },\n  \"e\": [],\n  \"o\": {},\n  \"n\": 4999.00,\n  \"u\": \"\\u00e9\"\n}"
        );
        assert!(same_tokens(
            &p,
            r#"{"b":1,"a":{"x":[true,null,"s\"q"]},"e":[],"o":{},"n":4999.00,"u":"\u00e9"}"#
        ));
        assert!(pretty("plain text").is_none());
        assert!(
            pretty("42").is_none(),
            "a number is text to edit, not a structure"
        );
        assert!(pretty("{\"a\":").is_none());
    }

    #[test]
    fn tokens_compare_spelling_not_meaning() {
        assert!(same_tokens("{\"a\": 1}", "{\n  \"a\":1\n}"));
        assert!(
            !same_tokens("{\"a\":1.0}", "{\"a\":1}"),
            "number text counts"
        );
        assert!(
            !same_tokens("{\"a\":\"x y\"}", "{\"a\":\"xy\"}"),
            "spaces inside strings count"
        );
        assert!(
            !same_tokens("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"),
            "key order counts"
        );
    }

    #[test]
    fn check_places_the_error() {
        assert_eq!(check("{\"a\":1}"), Ok(()));
        let (line, col, msg) = check("{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        assert_eq!((line, col), (3, 3));
        assert_eq!(msg, "expected `,` or `}`");
    }
}
