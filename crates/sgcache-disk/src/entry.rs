//! The 175-byte action entry (`-a` file): encoding and Go's exact parsing rules.
//!
//! `"v1 %x %x %20d %20d\n"` of ActionID, OutputID, size and unix-nanosecond time:
//!
//! | offset | len | content |
//! |---|---|---|
//! | 0 | 2 | `v1` |
//! | 2 | 1 | space |
//! | 3 | 64 | ActionID, lowercase hex |
//! | 67 | 1 | space |
//! | 68 | 64 | OutputID, lowercase hex |
//! | 132 | 1 | space |
//! | 133 | 20 | size, decimal, left-padded with spaces |
//! | 153 | 1 | space |
//! | 154 | 20 | unix nanoseconds, decimal, left-padded with spaces |
//! | 174 | 1 | `\n` |

use sgcache_types::{ActionId, IndexEntry, OutputId};

use crate::layout::hex_id;

/// Length of an action entry in bytes.
pub const ENTRY_SIZE: usize = 2 + 1 + 64 + 1 + 64 + 1 + 20 + 1 + 20 + 1;

/// Why an `-a` file does not yield an entry (each one is a miss, as in Go's `get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// The file is longer than 175 bytes.
    TooLong,
    /// The file is empty.
    Empty,
    /// The file is shorter than 175 bytes.
    Incomplete,
    /// A fixed byte (`v1`, a separator or the newline) is wrong.
    InvalidHeader,
    /// The ActionID field is not hex.
    DecodingId,
    /// The ActionID field names another action.
    MismatchedId,
    /// The OutputID field is not hex.
    DecodingOutputId,
    /// The size field is not a decimal int64.
    ParsingSize,
    /// The size is negative.
    NegativeSize,
    /// The time field is not a decimal int64.
    ParsingTimestamp,
    /// The time is negative.
    NegativeTimestamp,
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Go's reason texts.
        f.write_str(match self {
            MissReason::TooLong => "too long",
            MissReason::Empty => "file is empty",
            MissReason::Incomplete => "entry file incomplete",
            MissReason::InvalidHeader => "invalid header",
            MissReason::DecodingId => "decoding ID",
            MissReason::MismatchedId => "mismatched ID",
            MissReason::DecodingOutputId => "decoding output ID",
            MissReason::ParsingSize => "parsing size",
            MissReason::NegativeSize => "negative size",
            MissReason::ParsingTimestamp => "parsing timestamp",
            MissReason::NegativeTimestamp => "negative timestamp",
        })
    }
}

/// Formats an index entry exactly like Go's `fmt.Sprintf("v1 %x %x %20d %20d\n", …)`.
///
/// Values wider than 20 digits cannot occur for `u64`/`i64` except a negative time, which Go
/// would also print wider and then reject on read.
pub fn format_index_entry(e: &IndexEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(ENTRY_SIZE);
    v.extend_from_slice(b"v1 ");
    v.extend_from_slice(&hex_id(e.action.as_bytes()));
    v.push(b' ');
    v.extend_from_slice(&hex_id(e.output.as_bytes()));
    v.extend_from_slice(format!(" {:20} {:20}\n", e.size, e.time_nanos).as_bytes());
    v
}

/// Parses the first `n` bytes read from an `-a` file (the read used a 176-byte buffer, so
/// `n == 176` means "too long") for action `id`, applying Go's checks in Go's order.
pub fn parse_index_entry(buf: &[u8], id: &ActionId) -> Result<IndexEntry, MissReason> {
    let n = buf.len();
    if n > ENTRY_SIZE {
        return Err(MissReason::TooLong);
    }
    if n == 0 {
        return Err(MissReason::Empty);
    }
    if n < ENTRY_SIZE {
        return Err(MissReason::Incomplete);
    }
    if buf[0] != b'v'
        || buf[1] != b'1'
        || buf[2] != b' '
        || buf[67] != b' '
        || buf[132] != b' '
        || buf[153] != b' '
        || buf[174] != b'\n'
    {
        return Err(MissReason::InvalidHeader);
    }
    let mut eid = [0u8; 32];
    // Go's hex.Decode accepts upper- and lowercase digits; so does `hex`.
    hex::decode_to_slice(&buf[3..67], &mut eid).map_err(|_| MissReason::DecodingId)?;
    if &eid != id.as_bytes() {
        return Err(MissReason::MismatchedId);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(&buf[68..132], &mut out).map_err(|_| MissReason::DecodingOutputId)?;
    let size = parse_go_int(&buf[133..153]).ok_or(MissReason::ParsingSize)?;
    if size < 0 {
        return Err(MissReason::NegativeSize);
    }
    let time = parse_go_int(&buf[154..174]).ok_or(MissReason::ParsingTimestamp)?;
    if time < 0 {
        return Err(MissReason::NegativeTimestamp);
    }
    Ok(IndexEntry {
        action: *id,
        output: OutputId::from_bytes(out),
        size: size as u64,
        time_nanos: time,
    })
}

/// Go's number-field rule: skip leading spaces, then `strconv.ParseInt(rest, 10, 64)`, which
/// takes an optional `+`/`-` followed by one or more ASCII digits and nothing else.
fn parse_go_int(field: &[u8]) -> Option<i64> {
    let start = field.iter().position(|&c| c != b' ').unwrap_or(field.len());
    let s = &field[start..];
    let (neg, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses, as in Go.
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy(x: u64) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&x.to_le_bytes());
        id
    }

    fn dummy_id(x: u64) -> ActionId {
        ActionId::from_bytes(dummy(x))
    }

    const GOLDEN: &str = "v1 0100000000000000000000000000000000000000000000000000000000000000 0200000000000000000000000000000000000000000000000000000000000000                    3  1700000000000000000\n";

    #[test]
    fn golden_bytes() {
        let want = IndexEntry {
            action: dummy_id(1),
            output: OutputId::from_bytes(dummy(2)),
            size: 3,
            time_nanos: 1_700_000_000_000_000_000,
        };
        let e = format_index_entry(&want);
        assert_eq!(e.len(), ENTRY_SIZE);
        assert_eq!(ENTRY_SIZE, 175);
        assert_eq!(std::str::from_utf8(&e).unwrap(), GOLDEN);
        assert_eq!(parse_index_entry(&e, &dummy_id(1)).unwrap(), want);
        // Extremes stay 175 bytes.
        let ff = ActionId::from_bytes([0xff; 32]);
        let e = format_index_entry(&IndexEntry {
            action: ff,
            output: OutputId::from_bytes([0xee; 32]),
            size: u64::MAX >> 1,
            time_nanos: i64::MAX,
        });
        assert_eq!(e.len(), ENTRY_SIZE);
        assert_eq!(parse_index_entry(&e, &ff).unwrap().size, u64::MAX >> 1);
    }

    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut e = GOLDEN.as_bytes().to_vec();
        f(&mut e);
        e
    }

    fn set_field(e: &mut [u8], at: usize, s: &str) {
        assert_eq!(s.len(), 20);
        e[at..at + 20].copy_from_slice(s.as_bytes());
    }

    #[test]
    fn miss_rules_table() {
        use MissReason::*;
        let id = dummy_id(1);
        let cases: Vec<(&str, Vec<u8>, Result<(), MissReason>)> = vec![
            ("golden", with(|_| {}), Ok(())),
            ("too long", with(|e| e.push(b'\n')), Err(TooLong)),
            ("empty", Vec::new(), Err(Empty)),
            (
                "174 bytes",
                with(|e| {
                    e.pop();
                }),
                Err(Incomplete),
            ),
            ("1 byte", b"v".to_vec(), Err(Incomplete)),
            ("byte0", with(|e| e[0] = b'V'), Err(InvalidHeader)),
            ("byte1", with(|e| e[1] = b'2'), Err(InvalidHeader)),
            ("byte2", with(|e| e[2] = b'x'), Err(InvalidHeader)),
            ("sep67", with(|e| e[67] = b'0'), Err(InvalidHeader)),
            ("sep132", with(|e| e[132] = b'0'), Err(InvalidHeader)),
            ("sep153", with(|e| e[153] = b'0'), Err(InvalidHeader)),
            ("newline", with(|e| e[174] = b' '), Err(InvalidHeader)),
            ("mismatched id", with(|e| e[3] = b'9'), Err(MismatchedId)),
            ("bad id hex", with(|e| e[3] = b'g'), Err(DecodingId)),
            (
                "bad out hex",
                with(|e| e[100] = b'z'),
                Err(DecodingOutputId),
            ),
            (
                "uppercase hex",
                with(|e| {
                    e[68..132].copy_from_slice(&[b'A'; 64]);
                    e[3..5].copy_from_slice(b"01");
                }),
                Ok(()),
            ),
            (
                "plus size",
                with(|e| set_field(e, 133, "                  +5")),
                Ok(()),
            ),
            (
                "negative size",
                with(|e| set_field(e, 133, "                  -5")),
                Err(NegativeSize),
            ),
            (
                "negative zero",
                with(|e| set_field(e, 133, "                  -0")),
                Ok(()),
            ),
            (
                "blank size",
                with(|e| set_field(e, 133, "                    ")),
                Err(ParsingSize),
            ),
            (
                "sign only",
                with(|e| set_field(e, 133, "                   +")),
                Err(ParsingSize),
            ),
            (
                "trailing space",
                with(|e| set_field(e, 133, "                  5 ")),
                Err(ParsingSize),
            ),
            (
                "inner space",
                with(|e| set_field(e, 133, "                 5 5")),
                Err(ParsingSize),
            ),
            (
                "zero padded",
                with(|e| set_field(e, 133, "00000000000000000005")),
                Ok(()),
            ),
            (
                "overflow",
                with(|e| set_field(e, 133, "99999999999999999999")),
                Err(ParsingSize),
            ),
            (
                "underscore",
                with(|e| set_field(e, 133, "                 1_0")),
                Err(ParsingSize),
            ),
            (
                "negative time",
                with(|e| set_field(e, 154, "                  -1")),
                Err(NegativeTimestamp),
            ),
            (
                "blank time",
                with(|e| set_field(e, 154, "                    ")),
                Err(ParsingTimestamp),
            ),
            (
                "min time",
                with(|e| set_field(e, 154, "-9223372036854775808")),
                Err(NegativeTimestamp),
            ),
            (
                "hex time",
                with(|e| set_field(e, 154, "                 0x1")),
                Err(ParsingTimestamp),
            ),
        ];
        for (name, buf, want) in cases {
            let got = parse_index_entry(&buf, &id).map(|_| ());
            assert_eq!(got, want, "case {name}");
        }
        let e = with(|e| set_field(e, 133, "                  +5"));
        assert_eq!(parse_index_entry(&e, &id).unwrap().size, 5);
        let e = with(|e| e[68..132].copy_from_slice(&[b'A'; 64]));
        assert_eq!(
            parse_index_entry(&e, &id).unwrap().output,
            OutputId::from_bytes([0xaa; 32])
        );
    }
}
