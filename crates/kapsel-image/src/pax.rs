//! PAX extended header records, for tar entries whose xattrs, long link names or times do
//! not fit a plain header. Written by hand: the `tar` crate reads PAX records but (0.4)
//! has no writer for them.

/// Records `<length> <key>=<value>\n`, the length counting its own digits.
pub fn records<K: AsRef<str>, V: AsRef<[u8]>>(records: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let (key, value) = (key.as_ref(), value.as_ref());
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_count_themselves() {
        assert_eq!(records(&[("path", b"a")]), b"9 path=a\n");
        // 8 bytes + 2 digits is 10: the length gains a digit at the boundary.
        assert_eq!(records(&[("path", b"abc")]), b"12 path=abc\n");
        for n in [85, 90, 94, 95, 96, 990, 995] {
            let text = String::from_utf8(records(&[("path", vec![b'x'; n])])).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), text.len(), "{n}");
        }
    }
}
