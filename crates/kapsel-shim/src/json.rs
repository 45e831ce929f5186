//! The little JSON the shim needs, by hand instead of serde_json: the shim writes a few
//! fixed-shape objects (log entries, the readiness report, exit.json) and reads one string
//! field of the runtime's log lines. serde_json would add code and start-up allocations to
//! every one of the shims running on a host for no gain at this size.

/// Appends `s` as a JSON string, byte for byte as Docker's json-file logger writes it
/// (moby's `ffjsonWriteJSONBytesAsString`), so that log files are interchangeable:
/// `"` and `\` escaped, `\n` and `\r` as such, every other control character and `<`, `>`,
/// `&` as `\u00XX` (a tab too), U+2028/U+2029 as `\u2028`/`\u2029`, and each byte that is
/// not part of valid UTF-8 as `\ufffd` (as Go's `utf8.DecodeRune` consumes them: one at a
/// time).
pub fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(_) => {
                push_valid(out, rest);
                break;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                push_valid(out, valid);
                out.extend_from_slice(b"\\ufffd");
                rest = &bad[1..];
            }
        }
    }
    out.push(b'"');
}

/// Escapes bytes known to be valid UTF-8; runs that need no escaping are copied at once.
fn push_valid(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0..=0x1f | b'<' | b'>' | b'&' => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            0xe2 if matches!(s.get(i + 1..i + 3), Some([0x80, 0xa8 | 0xa9])) => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\u202");
                out.push(HEX[(s[i + 2] & 0xf) as usize]);
                i += 3;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&s[start..]);
}

/// The value of the string field `key` of a flat JSON object (the runtime's log lines:
/// `{"level":"error","msg":"...","time":"..."}`); None if the line is not such an object
/// or has no such string field.
pub fn string_field(line: &str, key: &str) -> Option<String> {
    let mut p = Parser {
        s: line.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    if p.peek() == Some(b'}') {
        return None;
    }
    loop {
        let k = p.string()?;
        p.expect(b':')?;
        if k == key {
            return p.string();
        }
        p.skip_value()?;
        match p.next()? {
            b',' => continue,
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// A string value, unescaped.
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e as char,
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    /// After `\u`: one code point, a surrogate pair, or U+FFFD for a lone surrogate.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xd800..0xdc00).contains(&hi) && self.s.get(self.i..self.i + 2) == Some(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xdc00..0xe000).contains(&lo) {
                return char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
            }
            self.i = save;
        }
        Some(char::from_u32(hi).unwrap_or('\u{fffd}'))
    }

    /// Skips any value: a string, a nested object or array, or a literal.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
            _ => {
                while !matches!(self.peek()?, b',' | b'}' | b']') {
                    self.i += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(s: &[u8]) -> String {
        let mut out = Vec::new();
        push_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_as_docker_does() {
        assert_eq!(docker(b"plain text"), r#""plain text""#);
        assert_eq!(docker(b"a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(
            docker(b"\r\t\x00\x1f\x7f"),
            "\"\\r\\u0009\\u0000\\u001f\x7f\""
        );
        assert_eq!(docker(b"<a href=x&y>"), r#""\u003ca href=x\u0026y\u003e""#);
        assert_eq!(docker("é ψ 🚀".as_bytes()), "\"é ψ 🚀\"");
        assert_eq!(
            docker("a\u{2028}b\u{2029}".as_bytes()),
            r#""a\u2028b\u2029""#
        );
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        assert_eq!(docker(b"a\xffb"), r#""a\ufffdb""#);
        // A truncated 3-byte sequence: Go's DecodeRune rejects it one byte at a time.
        assert_eq!(docker(b"\xe2\x82x"), r#""\ufffd\ufffdx""#);
        // An encoded surrogate is invalid: three bytes, three replacements.
        assert_eq!(docker(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
        assert_eq!(docker(b"end\xe2"), r#""end\ufffd""#);
        // A literal U+FFFD is valid text and stays as it is.
        assert_eq!(docker("\u{fffd}".as_bytes()), "\"\u{fffd}\"");
    }

    #[test]
    fn reads_a_string_field() {
        let line = r#"{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH \u00e9\ud83d\ude80","time":"t"}"#;
        assert_eq!(
            string_field(line, "msg").unwrap(),
            "exec: \"nope\": executable file not found in $PATH é🚀"
        );
        assert_eq!(string_field(line, "time").unwrap(), "t");
        assert_eq!(string_field(line, "other"), None);
        let mixed = r#"{ "n": 12, "o": {"x": ["}", 1]}, "b": true, "msg" : "m" }"#;
        assert_eq!(string_field(mixed, "msg").unwrap(), "m");
        assert_eq!(string_field("not json", "msg"), None);
        assert_eq!(string_field("{}", "msg"), None);
        assert_eq!(string_field(r#"{"msg":"unterminated"#, "msg"), None);
    }
}
