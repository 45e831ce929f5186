//! Snapshots: each layer unpacked once, in a directory named by its chain ID, and shared by
//! every image that has the same layers below it; a container's root filesystem is an
//! overlayfs mount of those directories with an upper directory of its own.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// The chain IDs of a layer stack (OCI image-spec, config.md#layer-chainid): the first
/// layer's is its diffID; each next one is the digest of "<parent chain ID> <diffID>".
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of_bytes(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// The snapshot directories under an engine's data root.
pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Snapshots { root: root.into() }
    }

    /// The directory every layer snapshot (and unpack staging directory) is in.
    pub fn layers_root(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Where the layer whose chain ID is `chain_id` is (to be) unpacked.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_root().join(chain_id.hex())
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// The chain IDs of all unpacked layers, sorted. Entries not named by a chain ID are
    /// skipped: they are unpack staging directories (`.<name>.unpacking-…`), not layers.
    pub fn layers(&self) -> Result<Vec<Digest>> {
        let dir = self.layers_root();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Nothing was ever unpacked here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io("list", &dir, e)),
        };
        let mut chain_ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("list", &dir, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                chain_ids.push(id);
            }
        }
        chain_ids.sort();
        Ok(chain_ids)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Where the container's writes are (its overlayfs upper directory).
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("upper")
    }

    /// Mounts the container's root filesystem: the layers of `chain` (bottom first) as
    /// read-only lower directories, and the container's own upper directory where its
    /// writes go. Returns the mount point.
    pub fn mount_rootfs(&self, id: &str, chain: &[Digest]) -> Result<PathBuf> {
        let missing = chain.iter().find(|c| !self.has_layer(c));
        if let Some(c) = missing {
            return Err(ImageError::MissingLayer(c.clone()));
        }
        let dir = self.container_dir(id);
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| ImageError::io("mkdir", d, e))?;
        }
        let options = overlay_options(&self.lower_dirs(chain), &upper, &work)?;
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| ImageError::io("mount overlay on", &merged, e.into()))?;
        Ok(merged)
    }

    /// Unmounts the container's root filesystem, keeping its upper directory.
    pub fn unmount_rootfs(&self, id: &str) -> Result<()> {
        let merged = self.container_dir(id).join("rootfs");
        match umount2(&merged, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
            Err(e) => Err(ImageError::io("unmount", &merged, e.into())),
        }
    }

    /// Unmounts the container's root filesystem and removes its upper directory.
    pub fn remove_rootfs(&self, id: &str) -> Result<()> {
        self.unmount_rootfs(id)?;
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ImageError::io("remove", &dir, e))
            }
            _ => Ok(()),
        }
    }

    /// overlayfs lists lower directories top first.
    fn lower_dirs(&self, chain: &[Digest]) -> Vec<PathBuf> {
        chain.iter().rev().map(|c| self.layer_dir(c)).collect()
    }
}

/// The overlay mount data; refused with a clear error when it would exceed the one page
/// the kernel accepts (about 50 layers at this root's path length).
fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    const PAGE: usize = 4096;
    if options.len() >= PAGE {
        return Err(ImageError::TooManyLayers {
            layers: lower.len(),
        });
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of_bytes(b"layer a");
        let b = Digest::of_bytes(b"layer b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of_bytes(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
