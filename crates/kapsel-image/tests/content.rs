//! The content store on a real filesystem.

mod common;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;

use common::{tree, TempDir};
use kapsel_image::content::{ContentStore, StoreOptions};
use kapsel_image::digest::Digest;
use kapsel_image::ImageError;
use nix::fcntl::{Flock, FlockArg};

fn ingest_is_empty(dir: &TempDir) -> bool {
    tree(&dir.path().join("ingest")).is_empty()
}

#[test]
fn write_read_list_delete_round_trip() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    let (digest, size) = store.write_blob(None, &b"hello world"[..]).unwrap();
    assert_eq!(digest, Digest::of_bytes(b"hello world"));
    assert_eq!(size, 11);

    assert!(store.exists(&digest).unwrap());
    assert_eq!(store.size(&digest).unwrap(), 11);
    let mut data = String::new();
    store
        .open_blob(&digest)
        .unwrap()
        .read_to_string(&mut data)
        .unwrap();
    assert_eq!(data, "hello world");
    assert_eq!(
        store.blob_path(&digest),
        dir.path().join("blobs/sha256").join(digest.hex())
    );
    let mode = fs::metadata(store.blob_path(&digest))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "stored blobs are read-only");
    store.verify(&digest).unwrap();

    let (other, _) = store.write_blob(None, &b"other"[..]).unwrap();
    let mut expected = vec![digest.clone(), other];
    expected.sort();
    assert_eq!(store.list().unwrap(), expected);
    assert!(ingest_is_empty(&dir));

    store.delete(&digest).unwrap();
    assert!(!store.exists(&digest).unwrap());
    for result in [
        store.open_blob(&digest).map(drop),
        store.size(&digest).map(drop),
        store.delete(&digest),
        store.verify(&digest),
    ] {
        match result {
            Err(ImageError::BlobNotFound { digest: d }) => assert_eq!(d, digest),
            other => panic!("expected BlobNotFound, got {other:?}"),
        }
    }
}

#[test]
fn wrong_expected_digest_stores_nothing() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    let wrong = Digest::of_bytes(b"something else");
    let actual = Digest::of_bytes(b"hello world");
    let err = store
        .write_blob(Some(&wrong), &b"hello world"[..])
        .unwrap_err();
    match &err {
        ImageError::DigestMismatch {
            expected,
            actual: got,
        } => {
            assert_eq!((expected, got), (&wrong, &actual));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&wrong.to_string()) && message.contains(&actual.to_string()));
    assert!(store.list().unwrap().is_empty());
    assert!(!store.exists(&actual).unwrap());
    assert!(ingest_is_empty(&dir));
}

#[test]
fn matching_expected_digest_is_stored() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    let digest = Digest::of_bytes(b"layer");
    assert_eq!(
        store.write_blob(Some(&digest), &b"layer"[..]).unwrap(),
        (digest.clone(), 5)
    );
    assert_eq!(store.list().unwrap(), vec![digest]);
}

/// A reader that fails the test if it is read.
struct MustNotRead;

impl Read for MustNotRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("an already stored blob must not be read again");
    }
}

#[test]
fn already_stored_expected_blob_is_not_read_again() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    let (digest, _) = store.write_blob(None, &b"layer"[..]).unwrap();
    assert_eq!(
        store.write_blob(Some(&digest), MustNotRead).unwrap(),
        (digest, 5)
    );
}

#[test]
fn size_limit_refuses_larger_blobs() {
    let dir = TempDir::new("content");
    let options = StoreOptions {
        max_blob_size: Some(10),
    };
    let store = ContentStore::open_with(dir.path(), options).unwrap();
    store.write_blob(None, &[7u8; 10][..]).unwrap();

    let big = Digest::of_bytes(&[7u8; 11]);
    let err = store.write_blob(Some(&big), &[7u8; 11][..]).unwrap_err();
    match &err {
        ImageError::BlobTooLarge { blob, limit } => {
            assert_eq!((blob.as_str(), *limit), (big.to_string().as_str(), 10));
        }
        other => panic!("expected BlobTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("max_blob_size"), "{err}");
    // An endless stream stops at the limit instead of filling the disk.
    assert!(matches!(
        store.write_blob(None, io::repeat(0)),
        Err(ImageError::BlobTooLarge { .. })
    ));
    assert_eq!(store.list().unwrap(), vec![Digest::of_bytes(&[7u8; 10])]);
    assert!(ingest_is_empty(&dir));
}

#[test]
fn concurrent_writers_of_one_blob_both_succeed() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    // Large enough that both writers are mid-copy at the same time.
    let data: Arc<Vec<u8>> = Arc::new((0..8 << 20).map(|i| (i % 251) as u8).collect());
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (store, data, barrier) = (store.clone(), data.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                store.write_blob(None, &data[..])
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let expected = (Digest::of_bytes(&data), data.len() as u64);
    for result in results {
        assert_eq!(result.unwrap(), expected);
    }
    assert_eq!(store.list().unwrap(), vec![expected.0.clone()]);
    assert!(tree(&dir.path().join("blobs/sha256")).len() == 1);
    assert!(ingest_is_empty(&dir));
    store.verify(&expected.0).unwrap();
}

#[test]
fn verify_detects_a_corrupted_blob() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    let (digest, _) = store.write_blob(None, &b"pristine"[..]).unwrap();
    let path = store.blob_path(&digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"tampered").unwrap();
    match store.verify(&digest) {
        Err(ImageError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, digest);
            assert_eq!(actual, Digest::of_bytes(b"tampered"));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

#[test]
fn open_removes_crash_leftovers_but_not_live_writes() {
    let dir = TempDir::new("content");
    ContentStore::open(dir.path()).unwrap();
    let ingest = dir.path().join("ingest");
    fs::write(ingest.join("crashed-writer"), b"partial").unwrap();
    // A live writer (in another process, say) holds its ingest file locked.
    let mut live = File::create(ingest.join("live-writer")).unwrap();
    live.write_all(b"in progress").unwrap();
    let _lock = Flock::lock(live, FlockArg::LockExclusive).unwrap();

    ContentStore::open(dir.path()).unwrap();
    assert_eq!(tree(&ingest), vec![std::path::PathBuf::from("live-writer")]);
}

#[test]
fn list_skips_files_that_are_not_blobs() {
    let dir = TempDir::new("content");
    let store = ContentStore::open(dir.path()).unwrap();
    fs::write(dir.path().join("blobs/sha256/README"), b"not a blob").unwrap();
    let (digest, _) = store.write_blob(None, &b"x"[..]).unwrap();
    assert_eq!(store.list().unwrap(), vec![digest]);
}
