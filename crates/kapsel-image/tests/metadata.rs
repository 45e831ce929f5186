//! The image metadata database on real SQLite files.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::TempDir;
use kapsel_image::content::ContentStore;
use kapsel_image::digest::Digest;
use kapsel_image::metadata::{ImageDb, LayerBlob, NewImage, Removed};
use kapsel_image::reference::Reference;
use kapsel_image::snapshot::{chain_ids, Snapshots};
use kapsel_image::ImageError;

/// Set (to a database path) in the child process of the SIGKILL test.
const CHILD_DB_ENV: &str = "KAPSEL_METADATA_CHILD_DB";

/// The diff ID and blob of a layer named `name`: distinct names, distinct layers.
fn layer(name: &str) -> (Digest, LayerBlob) {
    let diff_id = Digest::of_bytes(format!("diff {name}").as_bytes());
    let blob = LayerBlob {
        digest: Digest::of_bytes(format!("blob {name}").as_bytes()),
        size: 100 + name.len() as u64,
    };
    (diff_id, blob)
}

/// An image whose config is unique to `name`, with the named layers bottom first.
fn image(name: &str, layers: &[&str]) -> NewImage {
    let (diff_ids, blobs): (Vec<Digest>, Vec<LayerBlob>) = layers.iter().map(|l| layer(l)).unzip();
    let config = serde_json::json!({
        "created": format!("2024-01-01T00:00:{:02}Z", name.len() % 60),
        "comment": name,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    NewImage {
        manifest: Digest::of_bytes(format!("manifest {name}").as_bytes()),
        config: serde_json::to_vec(&config).unwrap(),
        layers: blobs,
    }
}

fn reference(name: &str) -> Reference {
    Reference::parse(name).unwrap()
}

fn open(dir: &TempDir) -> ImageDb {
    ImageDb::open(dir.path().join("images.db")).unwrap()
}

fn sorted(mut digests: Vec<Digest>) -> Vec<Digest> {
    digests.sort();
    digests
}

#[test]
fn resolves_by_tag_full_id_and_prefix() {
    let dir = TempDir::new("meta-resolve");
    let db = open(&dir);
    let busybox = image("busybox", &["base", "busybox"]);
    let id = db.add_image(&busybox).unwrap();
    assert_eq!(id, busybox.id());
    db.tag(&reference("busybox"), &id).unwrap();

    let by_tag = db.resolve("busybox").unwrap().expect("found by tag");
    assert_eq!(by_tag.id, id);
    assert_eq!(by_tag.manifest, busybox.manifest);
    assert_eq!(
        by_tag.tags,
        vec![reference("docker.io/library/busybox:latest")]
    );
    assert_eq!(
        by_tag.size,
        busybox.layers.iter().map(|l| l.size).sum::<u64>()
    );
    assert_eq!(by_tag.created.as_deref(), Some("2024-01-01T00:00:07Z"));
    assert_eq!(
        db.resolve("docker.io/library/busybox:latest").unwrap(),
        Some(by_tag.clone())
    );
    assert_eq!(db.resolve(&id.to_string()).unwrap(), Some(by_tag.clone()));
    assert_eq!(db.resolve(id.hex()).unwrap(), Some(by_tag.clone()));
    assert_eq!(db.resolve(&id.hex()[..4]).unwrap(), Some(by_tag.clone()));
    assert_eq!(
        db.resolve(&format!("sha256:{}", &id.hex()[..12])).unwrap(),
        Some(by_tag)
    );

    // Too short to be a prefix, unknown tags and IDs: simply not found.
    assert_eq!(db.resolve(&id.hex()[..3]).unwrap(), None);
    assert_eq!(db.resolve("busybox:1.36").unwrap(), None);
    assert_eq!(
        db.resolve(&format!("sha256:{}", "0".repeat(64))).unwrap(),
        None
    );
    assert_eq!(
        db.config(&id).unwrap().unwrap().as_bytes(),
        &busybox.config[..]
    );
}

#[test]
fn an_ambiguous_prefix_is_an_error() {
    let dir = TempDir::new("meta-ambiguous");
    let db = open(&dir);
    // Add images until two IDs share their first four hex digits (a few hundred, by the
    // birthday bound on 65536 prefixes).
    let mut seen = std::collections::HashMap::new();
    let (first, second) = (0..)
        .find_map(|i| {
            let id = db.add_image(&image(&format!("image-{i}"), &[])).unwrap();
            seen.insert(id.hex()[..4].to_string(), id.clone())
                .map(|other| (other, id))
        })
        .unwrap();
    let prefix = &first.hex()[..4];
    match db.resolve(prefix) {
        Err(ImageError::AmbiguousImageId { prefix: p, count }) => {
            assert_eq!((p.as_str(), count), (prefix, 2));
        }
        other => panic!("expected an ambiguous prefix error, got {other:?}"),
    }
    let message = db.resolve(prefix).unwrap_err().to_string();
    assert!(message.contains("give more of the ID"), "{message}");
    // Where the two IDs differ, the longer prefix names one.
    let common = first
        .hex()
        .bytes()
        .zip(second.hex().bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let unique = &second.hex()[..common + 1];
    assert_eq!(db.resolve(unique).unwrap().unwrap().id, second);
}

#[test]
fn tags_move_between_images_and_untag_leaves_a_dangling_image() {
    let dir = TempDir::new("meta-tags");
    let db = open(&dir);
    let old = db.add_image(&image("app-v1", &["base", "v1"])).unwrap();
    let new = db.add_image(&image("app-v2", &["base", "v2"])).unwrap();
    let latest = reference("user/app");
    db.tag(&latest, &old).unwrap();
    db.tag(&reference("user/app:1"), &old).unwrap();
    db.tag(&latest, &new).unwrap();

    assert_eq!(db.resolve("user/app").unwrap().unwrap().id, new);
    assert_eq!(
        db.resolve(old.hex()).unwrap().unwrap().tags,
        vec![reference("user/app:1")]
    );

    assert_eq!(
        db.untag(&reference("user/app:1")).unwrap(),
        Some(old.clone())
    );
    assert_eq!(db.untag(&reference("user/app:1")).unwrap(), None);
    let listed = db.list().unwrap();
    assert_eq!(listed.len(), 2);
    let dangling: Vec<_> = listed.iter().filter(|i| i.is_dangling()).collect();
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0].id, old);
    let tagged = listed.iter().find(|i| i.id == new).unwrap();
    assert_eq!(tagged.tags, vec![reference("docker.io/user/app:latest")]);

    assert!(matches!(
        db.tag(
            &reference("user/app:2"),
            &Digest::of_bytes(b"no such image")
        ),
        Err(ImageError::ImageNotFound { .. })
    ));
    let pinned = reference(&format!("user/app@sha256:{}", "a".repeat(64)));
    assert!(matches!(
        db.tag(&pinned, &new),
        Err(ImageError::InvalidReference { .. })
    ));
}

#[test]
fn adding_an_image_twice_changes_nothing() {
    let dir = TempDir::new("meta-idempotent");
    let db = open(&dir);
    let busybox = image("busybox", &["base", "busybox"]);
    let id = db.add_image(&busybox).unwrap();
    db.mark_unpacked(&db.layers_of(&id).unwrap()[0].chain_id)
        .unwrap();
    let before = (db.list().unwrap(), db.layers_of(&id).unwrap());
    assert_eq!(db.add_image(&busybox).unwrap(), id);
    assert_eq!((db.list().unwrap(), db.layers_of(&id).unwrap()), before);
}

#[test]
fn a_config_that_disagrees_with_the_manifest_is_refused() {
    let dir = TempDir::new("meta-invalid");
    let db = open(&dir);
    let mut bad = image("bad", &["base", "bad"]);
    bad.layers.pop();
    assert!(matches!(
        db.add_image(&bad),
        Err(ImageError::InvalidImageConfig { .. })
    ));
    bad.config = b"not json".to_vec();
    assert!(matches!(
        db.add_image(&bad),
        Err(ImageError::InvalidImageConfig { .. })
    ));
    assert!(db.list().unwrap().is_empty());
}

#[test]
fn layers_have_chain_ids_and_an_unpacked_flag() {
    let dir = TempDir::new("meta-layers");
    let db = open(&dir);
    let app = image("app", &["base", "lib", "app"]);
    let id = db.add_image(&app).unwrap();
    let diff_ids: Vec<Digest> = ["base", "lib", "app"].iter().map(|l| layer(l).0).collect();
    let chain = chain_ids(&diff_ids);

    let layers = db.layers_of(&id).unwrap();
    assert_eq!(layers.len(), 3);
    for (i, l) in layers.iter().enumerate() {
        assert_eq!((&l.diff_id, &l.chain_id), (&diff_ids[i], &chain[i]));
        assert_eq!(
            (&l.blob, l.size),
            (&app.layers[i].digest, app.layers[i].size)
        );
        assert!(!l.unpacked);
    }
    db.mark_unpacked(&chain[0]).unwrap();
    let unpacked: Vec<bool> = db
        .layers_of(&id)
        .unwrap()
        .iter()
        .map(|l| l.unpacked)
        .collect();
    assert_eq!(unpacked, [true, false, false]);

    // Another image on the same base shares the base's row, unpacked state included.
    let other = db.add_image(&image("other", &["base", "other"])).unwrap();
    assert!(db.layers_of(&other).unwrap()[0].unpacked);

    assert!(matches!(
        db.mark_unpacked(&Digest::of_bytes(b"nothing")),
        Err(ImageError::UnknownLayer { .. })
    ));
    assert!(matches!(
        db.layers_of(&Digest::of_bytes(b"nothing")),
        Err(ImageError::ImageNotFound { .. })
    ));
}

#[test]
fn remove_refuses_a_tagged_image_and_reports_only_unshared_data() {
    let dir = TempDir::new("meta-remove");
    let db = open(&dir);
    let app = image("app", &["base", "lib", "app"]);
    let tool = image("tool", &["base", "lib", "tool"]);
    let (app_id, tool_id) = (db.add_image(&app).unwrap(), db.add_image(&tool).unwrap());
    db.tag(&reference("busybox"), &app_id).unwrap();

    let err = db.remove_image(&app_id, false).unwrap_err();
    assert!(matches!(err, ImageError::ImageTagged { .. }));
    let message = err.to_string();
    assert!(
        message.contains("busybox:latest") && message.contains("untag it or force"),
        "{message}"
    );
    assert!(db.resolve("busybox").unwrap().is_some());

    let removed = db.remove_image(&app_id, true).unwrap();
    let app_chain = chain_ids(&["base", "lib", "app"].map(|l| layer(l).0));
    assert_eq!(
        removed,
        Removed {
            untagged: vec![reference("busybox")],
            layers: vec![app_chain[2].clone()],
            blobs: sorted(vec![
                app_id.clone(),
                app.manifest.clone(),
                app.layers[2].digest.clone()
            ]),
        }
    );
    assert_eq!(db.resolve("busybox").unwrap(), None);
    assert_eq!(db.resolve(app_id.hex()).unwrap(), None);
    assert_eq!(db.layers_of(&tool_id).unwrap().len(), 3);

    // The last image on the base leaves everything unreferenced (untagged: no force needed).
    let removed = db.remove_image(&tool_id, false).unwrap();
    let tool_chain = chain_ids(&["base", "lib", "tool"].map(|l| layer(l).0));
    assert_eq!(removed.layers, sorted(tool_chain));
    let mut blobs: Vec<Digest> = tool.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.extend([tool_id.clone(), tool.manifest.clone()]);
    assert_eq!(removed.blobs, sorted(blobs));
    assert!(db.list().unwrap().is_empty());
    assert!(matches!(
        db.remove_image(&tool_id, true),
        Err(ImageError::ImageNotFound { .. })
    ));
}

#[test]
fn data_survives_closing_and_reopening() {
    let dir = TempDir::new("meta-reopen");
    let (id, chain) = {
        let db = open(&dir);
        let id = db
            .add_image(&image("busybox", &["base", "busybox"]))
            .unwrap();
        db.tag(&reference("busybox:1.36"), &id).unwrap();
        let chain = db.layers_of(&id).unwrap()[1].chain_id.clone();
        db.mark_unpacked(&chain).unwrap();
        (id, chain)
    };
    let db = open(&dir);
    let record = db.resolve("busybox:1.36").unwrap().unwrap();
    assert_eq!(record.id, id);
    let layers = db.layers_of(&id).unwrap();
    assert_eq!(layers[1].chain_id, chain);
    assert!(layers[1].unpacked);
}

#[test]
fn the_file_is_in_wal_mode_at_the_current_schema() {
    let dir = TempDir::new("meta-wal");
    let path = dir.path().join("images.db");
    let db = ImageDb::open(&path).unwrap();
    // Both are kept in the file, so a plain connection sees them.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), version), ("wal", 1));
    drop(db);
    // Reopening an up-to-date database migrates nothing.
    drop(ImageDb::open(&path).unwrap());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("meta-newer");
    let path = dir.path().join("images.db");
    drop(ImageDb::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = ImageDb::open(&path)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, ImageError::DatabaseTooNew { version: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade kapsel"));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_its_path() {
    let dir = TempDir::new("meta-garbage");
    let path = dir.path().join("images.db");
    fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = ImageDb::open(&path).err().expect("not a database");
    assert!(matches!(err, ImageError::DatabaseOpen { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn two_handles_add_images_concurrently() {
    let dir = TempDir::new("meta-concurrent");
    const PER_THREAD: usize = 40;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let path = dir.path().join("images.db");
            let barrier = barrier.clone();
            thread::spawn(move || {
                // As two processes would: each opens its own handle, possibly both
                // creating the schema at once.
                barrier.wait();
                let db = ImageDb::open(&path).unwrap();
                for i in 0..PER_THREAD {
                    let name = format!("{who}-{i}");
                    // Both threads share the base layer: their layer rows collide.
                    let id = db.add_image(&image(&name, &["base", &name])).unwrap();
                    db.tag(&reference(&format!("{who}:{i}")), &id).unwrap();
                    assert!(db.resolve(&format!("{who}:{i}")).unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let db = open(&dir);
    let images = db.list().unwrap();
    assert_eq!(images.len(), 2 * PER_THREAD);
    assert!(images.iter().all(|i| i.tags.len() == 1));
}

/// Runs in the child process of the SIGKILL test (and does nothing otherwise): adds
/// images with 1 to 8 layers until it is killed.
#[test]
fn child_adds_images_until_killed() {
    let Ok(path) = std::env::var(CHILD_DB_ENV) else {
        return;
    };
    let db = ImageDb::open(path).unwrap();
    for i in 0.. {
        let name = format!("child-{}-{i}", std::process::id());
        let layers: Vec<String> = (0..=i % 8).map(|l| format!("{name}-{l}")).collect();
        let mut names: Vec<&str> = vec!["base"];
        names.extend(layers.iter().map(String::as_str));
        let id = db.add_image(&image(&name, &names)).unwrap();
        db.tag(&reference(&format!("child:{i}")), &id).unwrap();
    }
}

/// Every image's layer rows match its config's diff IDs: nothing half-written.
fn assert_images_complete(path: &Path) -> usize {
    let db = ImageDb::open(path).unwrap();
    let images = db.list().unwrap();
    for record in &images {
        let config: serde_json::Value =
            serde_json::from_str(&db.config(&record.id).unwrap().unwrap()).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().len();
        assert_eq!(
            db.layers_of(&record.id).unwrap().len(),
            diff_ids,
            "{record:?}"
        );
    }
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut fk = conn.prepare("PRAGMA foreign_key_check").unwrap();
    assert!(
        fk.query([]).unwrap().next().unwrap().is_none(),
        "foreign key violations"
    );
    images.len()
}

#[test]
fn sigkill_during_adds_leaves_complete_images() {
    let dir = TempDir::new("meta-sigkill");
    let path = dir.path().join("images.db");
    let mut count = 0;
    // Kill at a different moment each round; each round goes on from the last one's file.
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_adds_images_until_killed",
                "--test-threads=1",
            ])
            .env(CHILD_DB_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Wait until the child has committed some images, then a little more.
        while ImageDb::open(&path).unwrap().list().unwrap().len() < count + 5 {
            assert!(Instant::now() < deadline, "the child added no images");
            assert!(child.try_wait().unwrap().is_none(), "the child exited");
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(7 * round + 3));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = assert_images_complete(&path);
        assert!(now >= count + 5);
        count = now;
    }
}

#[test]
fn gc_candidates_are_exactly_the_unreferenced_data() {
    let dir = TempDir::new("meta-gc");
    let db = open(&dir);
    let store = ContentStore::open(dir.path().join("content")).unwrap();
    let snapshots = Snapshots::new(dir.path().join("snapshots"));
    let write = |data: &[u8]| store.write_blob(None, data).unwrap().0;

    // An image whose blobs are real: config, manifest and one layer.
    let diff_id = Digest::of_bytes(b"layer tar");
    let config = serde_json::to_vec(&serde_json::json!({
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .unwrap();
    let manifest = write(b"manifest");
    let layer_blob = write(b"layer blob");
    let image = NewImage {
        manifest: manifest.clone(),
        config: config.clone(),
        layers: vec![LayerBlob {
            digest: layer_blob,
            size: 10,
        }],
    };
    assert_eq!(write(&config), image.id());
    db.add_image(&image).unwrap();
    let stray_blob = write(b"left over by an interrupted pull");

    let used_layer = chain_ids(&[diff_id])[0].clone();
    let stray_layer = Digest::of_bytes(b"stray layer");
    for chain_id in [&used_layer, &stray_layer] {
        fs::create_dir_all(snapshots.layer_dir(chain_id)).unwrap();
    }
    // An unpack in progress is not a layer (yet).
    fs::create_dir_all(dir.path().join("snapshots/layers/.x.unpacking-1")).unwrap();

    let gc = db.gc_candidates(&store, &snapshots).unwrap();
    assert_eq!(gc.blobs, vec![stray_blob]);
    assert_eq!(gc.layers, vec![stray_layer]);

    // Once the image goes, all of it is a candidate.
    let removed = db.remove_image(&image.id(), false).unwrap();
    let gc = db.gc_candidates(&store, &snapshots).unwrap();
    let expected: BTreeSet<Digest> = removed.blobs.into_iter().collect();
    assert!(expected.is_subset(&gc.blobs.iter().cloned().collect()));
    assert_eq!(gc.blobs.len(), 4);
    assert_eq!(gc.layers.len(), 2);
    assert_eq!(removed.layers, vec![used_layer]);
}
