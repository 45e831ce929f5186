//! Writes the built-in hello-world image's program into a directory (a root filesystem
//! for a bundle), for the quick start until the engine unpacks images itself.

use std::os::unix::fs::PermissionsExt;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: hello-world-rootfs DIR");
    std::fs::create_dir_all(&dir)?;
    let path = std::path::Path::new(&dir).join(kapsel_image::hello::PROGRAM_PATH);
    std::fs::write(&path, kapsel_image::hello::program())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}
