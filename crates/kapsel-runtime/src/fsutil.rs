//! Small filesystem helpers: atomic writes and resolving paths inside a container root.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, RuntimeError};

/// Writes `data` to `path` so that readers see either the old or the new content, never a
/// part: write a temporary file beside it and rename it over. No fsync: this guards against
/// a runtime killed mid-write; the state lives in /run, which a power loss empties anyway.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    // Unique per process: two runtimes may write the same file at once.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    file.write_all(data)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename", path, e))
}

/// How many symlinks one resolution may follow before it is taken for a loop (as Linux).
const MAX_SYMLINKS: usize = 40;

/// Resolves `unsafe_path` as if `root` were `/`: `..` and symlinks (absolute or relative)
/// never lead outside `root`. Components that do not exist yet are appended as they are.
/// This is the securejoin idea; written here because it is twenty lines and no maintained
/// crate offers it without pulling in a C library.
pub fn resolve_in_root(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<PathBuf> = components_reversed(unsafe_path);
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::read_link(root.join(&candidate)) {
            Ok(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(RuntimeError::io(
                        "resolve",
                        root.join(unsafe_path.strip_prefix("/").unwrap_or(unsafe_path)),
                        std::io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(components_reversed(&target));
            }
            Err(_) => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn components_reversed(path: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(PathBuf::from(p)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_and_dotdot_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("kapsel-resolve-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../..", root.join("etc/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("/abs/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/etc/up/tmp")).unwrap(),
            root.join("tmp")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/../../x")).unwrap(),
            root.join("x")
        );
        assert!(resolve_in_root(&root, Path::new("/loop")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
