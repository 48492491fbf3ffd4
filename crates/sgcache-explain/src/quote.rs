//! Go's string quoting, as `fmt`'s `%q` (`strconv.Quote`) writes it and `strconv.Unquote`
//! reads it: every input line of the transcript is one quoted write.

/// Decodes one complete Go double-quoted literal (`"…"`, nothing before or after) into its
/// bytes. `None` when it is not one: an unknown escape, a bare quote or newline inside, a
/// missing closing quote, a `\u` that is not a Unicode scalar value.
pub fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let (v, rest) = take_quoted(s)?;
    rest.is_empty().then_some(v)
}

/// Decodes the Go double-quoted literal at the start of `s` and returns it with the rest of
/// `s` after the closing quote.
pub fn take_quoted(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let inner = s.strip_prefix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        match b {
            b'"' => return Some((out, &inner[i + 1..])),
            b'\n' => return None,
            b'\\' => {
                let e = *inner.get(i + 1)?;
                i += 2;
                match e {
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(0x0b),
                    b'\\' | b'"' | b'\'' => out.push(e),
                    b'x' => {
                        out.push(hex_value(inner.get(i..i + 2)?)? as u8);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if e == b'u' { 4 } else { 8 };
                        let c = char::from_u32(hex_value(inner.get(i..i + n)?)?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    b'0'..=b'7' => {
                        let digits = inner.get(i - 1..i + 2)?;
                        let mut v: u32 = 0;
                        for &d in digits {
                            if !(b'0'..=b'7').contains(&d) {
                                return None;
                            }
                            v = v * 8 + u32::from(d - b'0');
                        }
                        out.push(u8::try_from(v).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Text for a person from bytes that are usually UTF-8 text: printable characters as they
/// are, the rest as Go writes them inside a quoted string (`\n`, `\t`, `\x00`, `\x80`).
pub fn display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `true` when `s` is exactly 64 lowercase hex digits.
pub(crate) fn is_hex64(s: &[u8]) -> bool {
    s.len() == 64
        && s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// 64 lowercase hex digits as 32 bytes.
pub(crate) fn hex32(s: &[u8]) -> Option<[u8; 32]> {
    if !is_hex64(s) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_what_go_quotes() {
        // Written by Go: fmt.Printf("%q", []byte("dir /a b\n")) and friends.
        assert_eq!(unquote(br#""dir /a b\n""#).unwrap(), b"dir /a b\n");
        assert_eq!(
            unquote(br#""import \"example.com/m\"\n""#).unwrap(),
            b"import \"example.com/m\"\n"
        );
        assert_eq!(unquote(br#""\x00\x01\xff""#).unwrap(), b"\x00\x01\xff");
        assert_eq!(unquote(br#""\u00e9\U0001F600""#).unwrap(), "é😀".as_bytes());
        assert_eq!(
            unquote(br#""\a\b\f\r\t\v\\\'""#).unwrap(),
            b"\x07\x08\x0c\r\t\x0b\\'"
        );
        assert_eq!(unquote(br#""\101""#).unwrap(), b"A");
        assert_eq!(unquote("\"héllo\"".as_bytes()).unwrap(), "héllo".as_bytes());
        assert_eq!(unquote(b"\"\"").unwrap(), b"");
    }

    #[test]
    fn refuses_what_is_not_one_literal() {
        for bad in [
            &b""[..],
            b"\"",
            b"\"abc",
            b"abc\"",
            b"\"a\"b",
            b"\"\\q\"",
            b"\"\\x4\"",
            b"\"\\xzz\"",
            b"\"\\ud800\"",
            b"\"\\U00110000\"",
            b"\"\\777\"",
            b"\"\\",
            b"\"a\nb\"",
        ] {
            assert_eq!(unquote(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let (v, rest) = take_quoted(br#""a\"b" tail"#).unwrap();
        assert_eq!((v.as_slice(), rest), (&b"a\"b"[..], &b" tail"[..]));
    }

    #[test]
    fn displays_bytes_for_people() {
        assert_eq!(display(b"file a.go x\n"), "file a.go x\\n");
        assert_eq!(display(b"\x01v\xffz\t"), "\\x01v\\xffz\\t");
        assert_eq!(display("é".as_bytes()), "é");
        assert!(is_hex64(&[b'a'; 64]));
        assert!(!is_hex64(&[b'A'; 64]));
        assert_eq!(hex32(&[b'0'; 64]), Some([0; 32]));
    }
}
