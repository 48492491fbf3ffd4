//! Go's `strconv.Unquote` and `strconv.ParseInt(s, 0, 64)`, on byte strings.
//!
//! Archives store the build ID as a Go `%q` literal and the raw marker as a quoted string;
//! Go decodes both with `strconv.Unquote`, so we accept and reject exactly what it does.

/// Decodes a Go string, rune or raw string literal (Go's `strconv.Unquote`). Returns `None`
/// for anything Go reports as a syntax error. Bytes are returned as Go would hold them in a
/// `string`: `\x` escapes may produce invalid UTF-8, invalid UTF-8 in escaped literals becomes
/// U+FFFD.
pub fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let (out, rest) = unquote_prefix(s)?;
    rest.is_empty().then_some(out)
}

fn unquote_prefix(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if input.len() < 2 {
        return None;
    }
    let quote = input[0];
    let end = memchr::memchr(quote, &input[1..])? + 2;
    match quote {
        b'`' => {
            let body = &input[1..end - 1];
            let out = body.iter().copied().filter(|&b| b != b'\r').collect();
            Some((out, &input[end..]))
        }
        b'"' | b'\'' => {
            let lit = &input[..end];
            if !lit.contains(&b'\\') && !lit.contains(&b'\n') {
                let body = &input[1..end - 1];
                let valid = if quote == b'"' {
                    std::str::from_utf8(body).is_ok()
                } else {
                    let (r, n) = decode_rune(body);
                    2 + n == end && (r.is_some() || n != 1)
                };
                if valid {
                    return Some((body.to_vec(), &input[end..]));
                }
            }
            let mut buf = Vec::with_capacity(3 * end / 2);
            let mut s = &input[1..];
            while let Some(&c) = s.first() {
                if c == quote {
                    break;
                }
                if c == b'\n' {
                    return None;
                }
                let (ch, rest) = unquote_char(s, quote)?;
                s = rest;
                match ch {
                    Char::Byte(b) => buf.push(b),
                    Char::Rune(r) => {
                        let mut tmp = [0u8; 4];
                        buf.extend_from_slice(r.encode_utf8(&mut tmp).as_bytes());
                    }
                }
                if quote == b'\'' {
                    break;
                }
            }
            if s.first() != Some(&quote) {
                return None;
            }
            Some((buf, &s[1..]))
        }
        _ => None,
    }
}

enum Char {
    Byte(u8),
    Rune(char),
}

/// Go's `utf8.DecodeRune`: the rune (None = RuneError) and its width; invalid input is one
/// byte wide, empty input zero.
fn decode_rune(s: &[u8]) -> (Option<char>, usize) {
    let Some(chunk) = s.utf8_chunks().next() else {
        return (None, 0);
    };
    match chunk.valid().chars().next() {
        Some(c) => (Some(c), c.len_utf8()),
        None => (None, 1),
    }
}

/// Go's `strconv.UnquoteChar`.
fn unquote_char(s: &[u8], quote: u8) -> Option<(Char, &[u8])> {
    let &c = s.first()?;
    if c == quote && (quote == b'\'' || quote == b'"') {
        return None;
    }
    if c >= 0x80 {
        let (r, n) = decode_rune(s);
        return Some((Char::Rune(r.unwrap_or('\u{fffd}')), &s[n..]));
    }
    if c != b'\\' {
        return Some((Char::Byte(c), &s[1..]));
    }
    let &e = s.get(1)?;
    let s = &s[2..];
    let simple = |b: u8| Some((Char::Byte(b), s));
    match e {
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(0x0b),
        b'\\' => simple(b'\\'),
        b'\'' | b'"' => (e == quote).then_some((Char::Byte(e), s)),
        b'x' | b'u' | b'U' => {
            let n = match e {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = s.get(..n)?;
            let mut v: u32 = 0;
            for &d in digits {
                v = v << 4 | char::from(d).to_digit(16)?;
            }
            if e == b'x' {
                return Some((Char::Byte(v as u8), &s[n..]));
            }
            Some((Char::Rune(char::from_u32(v)?), &s[n..]))
        }
        b'0'..=b'7' => {
            let digits = s.get(..2)?;
            let mut v = u32::from(e - b'0');
            for &d in digits {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v << 3 | u32::from(d - b'0');
            }
            if v > 255 {
                return None;
            }
            Some((Char::Byte(v as u8), &s[2..]))
        }
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b`/`0` prefixes, `_`
/// digit separators.
pub(crate) fn parse_int_base0(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (neg, digits) = match b[0] {
        b'+' => (false, &b[1..]),
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let (base, body): (u64, &[u8]) = if digits.first() == Some(&b'0') {
        match digits.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if digits.len() >= 3 => (2, &digits[2..]),
            Some(b'o') if digits.len() >= 3 => (8, &digits[2..]),
            Some(b'x') if digits.len() >= 3 => (16, &digits[2..]),
            _ => (8, &digits[1..]),
        }
    } else {
        (10, digits)
    };
    if digits.is_empty() {
        return None;
    }
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in body {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = u64::from(char::from(c).to_digit(36)?);
        if d >= base {
            return None;
        }
        n = n.checked_mul(base)?.checked_add(d)?;
    }
    if underscores && !underscore_ok(digits) {
        return None;
    }
    if neg {
        if n > 1 << 63 {
            return None;
        }
        Some((n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

fn underscore_ok(s: &[u8]) -> bool {
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_like_go() {
        let ok: &[(&[u8], &[u8])] = &[
            (br#""abc""#, b"abc"),
            (br#""a\"b""#, b"a\"b"),
            (br#""\x41\101\u00e9\n""#, "AA\u{e9}\n".as_bytes()),
            (br#""\xff""#, b"\xff"),
            (b"`a\rb`", b"ab"),
            (b"'x'", b"x"),
            (b"\"\xff\"", "\u{fffd}".as_bytes()),
            (b"''", b""),
            (b"\"\\n\xff\"", "\n\u{fffd}".as_bytes()),
        ];
        for (i, o) in ok {
            assert_eq!(
                unquote(i).as_deref(),
                Some(*o),
                "{:?}",
                String::from_utf8_lossy(i)
            );
        }
        let bad: &[&[u8]] = &[
            b"\"",
            b"abc",
            b"\"a\"b",
            b"\"\\'\"",
            b"\"\\400\"",
            b"'ab'",
            b"\"a\nb\"",
            b"\"\\q\"",
        ];
        for i in bad {
            assert_eq!(unquote(i), None, "{:?}", String::from_utf8_lossy(i));
        }
    }

    #[test]
    fn parse_int_like_go() {
        assert_eq!(parse_int_base0("123"), Some(123));
        assert_eq!(parse_int_base0("0x1f"), Some(31));
        assert_eq!(parse_int_base0("010"), Some(8));
        assert_eq!(parse_int_base0("0"), Some(0));
        assert_eq!(parse_int_base0("-5"), Some(-5));
        assert_eq!(parse_int_base0("1_000"), Some(1000));
        assert_eq!(parse_int_base0("_1"), None);
        assert_eq!(parse_int_base0("09"), None);
        assert_eq!(parse_int_base0(""), None);
        assert_eq!(parse_int_base0("9223372036854775808"), None);
    }
}
