//! The `hello-world` image that ships inside kapsel, so `run hello-world` works with no
//! registry and no network.
//!
//! Its one file is a static x86-64 Linux program of a few hundred bytes that writes a
//! greeting and exits 0. It is assembled here byte by byte rather than built by a
//! toolchain: no C library, no linker, and the bytes are the same on every build.

/// What the program prints.
pub const GREETING: &str = "\nHello from kapsel!\n\
This message shows that kapsel ran a container from its built-in hello-world image:\n\
the container got its own namespaces, cgroup and root filesystem, and ran the\n\
image's program, whose output you are reading.\n\n";

/// Where the program sits in the image.
pub const PROGRAM_PATH: &str = "hello";

const LOAD_ADDRESS: u64 = 0x40_0000;
const ELF_HEADER_SIZE: u16 = 64;
const PROGRAM_HEADER_SIZE: u16 = 56;

/// The program: an ELF executable whose one loadable segment holds the code and the text.
pub fn program() -> Vec<u8> {
    let code = code(GREETING.len() as u32);
    let headers = u64::from(ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE);
    let total = headers + code.len() as u64 + GREETING.len() as u64;
    let mut elf = elf_header(LOAD_ADDRESS + headers);
    elf.extend(program_header(total));
    elf.extend(code);
    elf.extend(GREETING.as_bytes());
    elf
}

/// write(1, greeting, len); exit(0). The greeting follows the code, addressed relative to
/// the instruction pointer.
fn code(len: u32) -> Vec<u8> {
    const CODE_LEN: i32 = 33; // the bytes below
    const AFTER_LEA: i32 = 17; // offset of the instruction after `lea`
    let mut c = Vec::with_capacity(CODE_LEN as usize);
    c.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    c.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1 (stdout)
    c.extend([0x48, 0x8d, 0x35]); // lea rsi, [rip + disp32]
    c.extend((CODE_LEN - AFTER_LEA).to_le_bytes());
    c.push(0xba); // mov edx, len
    c.extend(len.to_le_bytes());
    c.extend([0x0f, 0x05]); // syscall
    c.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    c.extend([0x31, 0xff]); // xor edi, edi
    c.extend([0x0f, 0x05]); // syscall
    debug_assert_eq!(c.len(), CODE_LEN as usize);
    c
}

fn elf_header(entry: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(ELF_HEADER_SIZE as usize);
    h.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV
    h.extend([0u8; 8]);
    h.extend(2u16.to_le_bytes()); // ET_EXEC
    h.extend(0x3eu16.to_le_bytes()); // EM_X86_64
    h.extend(1u32.to_le_bytes()); // EV_CURRENT
    h.extend(entry.to_le_bytes());
    h.extend(u64::from(ELF_HEADER_SIZE).to_le_bytes()); // program headers follow
    h.extend(0u64.to_le_bytes()); // no section headers
    h.extend(0u32.to_le_bytes()); // flags
    h.extend(ELF_HEADER_SIZE.to_le_bytes());
    h.extend(PROGRAM_HEADER_SIZE.to_le_bytes());
    h.extend(1u16.to_le_bytes()); // one program header
    h.extend([0u8; 6]); // no sections, no section names
    h
}

fn program_header(size: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PROGRAM_HEADER_SIZE as usize);
    p.extend(1u32.to_le_bytes()); // PT_LOAD
    p.extend(5u32.to_le_bytes()); // readable, executable
    p.extend(0u64.to_le_bytes()); // from the start of the file
    p.extend(LOAD_ADDRESS.to_le_bytes());
    p.extend(LOAD_ADDRESS.to_le_bytes());
    p.extend(size.to_le_bytes()); // in the file
    p.extend(size.to_le_bytes()); // in memory
    p.extend(0x1000u64.to_le_bytes());
    p
}

/// The image's only layer: an uncompressed tar holding the program, mode 0755, root-owned,
/// with a fixed mtime so its digest never changes.
pub fn layer() -> Vec<u8> {
    let program = program();
    let mut header = tar::Header::new_ustar();
    header.set_path(PROGRAM_PATH).expect("short path");
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, program.as_slice())
        .expect("writing to memory");
    builder.into_inner().expect("writing to memory")
}

/// The name the image is known by.
pub const NAME: &str = "hello-world:latest";

/// The image as a docker-archive (what `docker save hello-world` writes), tagged
/// [`NAME`], so an engine loads it like any other image. Its bytes never change.
pub fn docker_archive() -> Vec<u8> {
    let layer = layer();
    let diff_id = crate::digest::Digest::of_bytes(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Cmd": [format!("/{PROGRAM_PATH}")],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kapsel built-in"}],
    })
    .to_string();
    let config_id = crate::digest::Digest::of_bytes(config.as_bytes());
    let layer_path = format!("blobs/sha256/{}", diff_id.hex());
    let config_path = format!("blobs/sha256/{}", config_id.hex());
    let manifest = serde_json::json!([{
        "Config": config_path,
        "RepoTags": [NAME],
        "Layers": [layer_path],
    }])
    .to_string();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [
        (layer_path.as_str(), layer.as_slice()),
        (config_path.as_str(), config.as_bytes()),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, data)
            .expect("writing to memory");
    }
    builder.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_program_runs_and_greets() {
        let dir = std::env::temp_dir().join(format!("kapsel-hello-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hello");
        std::fs::write(&path, program()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&path).output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), GREETING);
    }

    #[test]
    fn the_layer_is_stable_and_holds_the_program() {
        assert_eq!(layer(), layer());
        let bytes = layer();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.size(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![(PROGRAM_PATH.to_string(), 0o755, program().len() as u64)]
        );
    }
}
