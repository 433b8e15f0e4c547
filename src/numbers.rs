//! Counts as people read them, with thousands separators: the one place every message
//! (CLI, console, engine errors) takes them from. It depends on nothing, so any module may.

/// "1 item", "2 items", "1,240 items".
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// 1234567 → "1,234,567": every count a person reads, in the CLI and the console.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_with_thousands_separators() {
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (19_988, "19,988"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), shown);
        }
        assert_eq!(count(1, "item"), "1 item");
        assert_eq!(count(20_000, "item"), "20,000 items");
    }
}
