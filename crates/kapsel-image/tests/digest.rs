//! Digest parsing, formatting, serde and streaming hashing.

use std::io::{Read, Write};

use kapsel_image::digest::{digest_reader, Digest, Digester, HashingReader};
use kapsel_image::ImageError;

/// sha256 of the empty string.
const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// sha256 of "hello world".
const HELLO: &str = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

#[test]
fn parses_and_displays_round_trip() {
    let d = Digest::parse(EMPTY).unwrap();
    assert_eq!(d.to_string(), EMPTY);
    assert_eq!(format!("{d:?}"), EMPTY);
    assert_eq!(d.algorithm(), "sha256");
    assert_eq!(d.hex(), &EMPTY[7..]);
    assert_eq!(EMPTY.parse::<Digest>().unwrap(), d);
    assert_eq!(Digest::from_hex(&EMPTY[7..]).unwrap(), d);
}

#[test]
fn refuses_malformed_digests() {
    let upper = EMPTY.replace('e', "E");
    let cases = [
        "",
        "sha256",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:../0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        upper.as_str(),
    ];
    for case in cases {
        match Digest::parse(case) {
            Err(ImageError::InvalidDigest { digest, .. }) => assert_eq!(digest, case),
            other => panic!("{case:?} should be refused, got {other:?}"),
        }
    }
    let err = Digest::parse(&EMPTY.replace("sha256", "sha512")).unwrap_err();
    assert!(err.to_string().contains("only sha256"), "{err}");
}

#[test]
fn serde_uses_the_string_form_and_validates() {
    let d = Digest::parse(HELLO).unwrap();
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"{HELLO}\""));
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
}

#[test]
fn hashes_bytes_writer_and_reader_alike() {
    assert_eq!(Digest::of_bytes(b"").to_string(), EMPTY);
    assert_eq!(Digest::of_bytes(b"hello world").to_string(), HELLO);

    let mut digester = Digester::new();
    digester.write_all(b"hello ").unwrap();
    digester.write_all(b"world").unwrap();
    assert_eq!(digester.finish().to_string(), HELLO);

    let (d, n) = digest_reader(&b"hello world"[..]).unwrap();
    assert_eq!((d.to_string().as_str(), n), (HELLO, 11));

    // The hashing reader passes the data through unchanged while hashing it.
    let mut reader = HashingReader::new(&b"hello world"[..]);
    let mut copied = Vec::new();
    reader.read_to_end(&mut copied).unwrap();
    assert_eq!(copied, b"hello world");
    assert_eq!(reader.bytes_read(), 11);
    let (d, n) = reader.finish();
    assert_eq!((d.to_string().as_str(), n), (HELLO, 11));
}

#[test]
fn converts_to_and_from_oci_spec() {
    let d = Digest::parse(HELLO).unwrap();
    let oci: oci_spec::image::Digest = (&d).into();
    assert_eq!(oci.to_string(), HELLO);
    assert_eq!(Digest::try_from(&oci).unwrap(), d);
    let sha512: oci_spec::image::Digest = format!("sha512:{}", "a".repeat(128)).parse().unwrap();
    assert!(Digest::try_from(&sha512).is_err());
}
