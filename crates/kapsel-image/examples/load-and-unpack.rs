//! Loads an image archive into a store and unpacks its layers, as `docker load` does
//! (blobs stored and verified, every layer applied once); used by bench/image-load.sh.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(archive)) = (args.next(), args.next()) else {
        return Err("usage: load-and-unpack DATA_ROOT ARCHIVE".into());
    };
    let store = kapsel_image::store::ImageStore::open(&root)?;
    let loaded = store.load(std::fs::File::open(&archive)?)?;
    for (id, _) in &loaded {
        // Mounting a container's rootfs unpacks whatever layer is missing, in parallel.
        store.prepare_rootfs(&id.to_string(), "bench")?;
        store.release_rootfs("bench")?;
    }
    Ok(())
}
