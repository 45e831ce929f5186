//! Loading and checking a bundle's config.json, and writing the default one (`spec`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Result, RuntimeError};

/// The file name of a bundle's configuration.
pub const CONFIG_NAME: &str = "config.json";

/// Reads `bundle/config.json` and checks the fields the runtime relies on.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join(CONFIG_NAME);
    let text = std::fs::read_to_string(&path).map_err(|source| RuntimeError::ConfigRead {
        path: path.clone(),
        source,
    })?;
    let spec = parse(&path, &text)?;
    validate(&spec)?;
    Ok(spec)
}

/// Parses config.json text; the error names the line, column and serde's view of the field.
pub fn parse(path: &Path, text: &str) -> Result<Spec> {
    serde_json::from_str(text).map_err(|e| RuntimeError::ConfigMalformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::invalid("process", "is missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() => {}
        _ => return Err(RuntimeError::invalid("process.args", "must name a program")),
    }
    refuse_lsm_labels(spec)?;
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::invalid(
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    if spec.root().is_none() {
        return Err(RuntimeError::invalid("root", "is missing"));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(RuntimeError::invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} must be an absolute path", m.destination()),
            ));
        }
    }
    validate_namespaces(spec)
}

/// AppArmor and SELinux are not applied by kapsel-runtime (this kind of host loads
/// neither): a label is refused rather than silently ignored, so nobody believes a profile
/// protects a container that runs without it.
fn refuse_lsm_labels(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref();
    let labels = [
        (
            "process.apparmorProfile",
            process.and_then(|p| p.apparmor_profile().clone()),
        ),
        (
            "process.selinuxLabel",
            process.and_then(|p| p.selinux_label().clone()),
        ),
        (
            "linux.mountLabel",
            spec.linux().as_ref().and_then(|l| l.mount_label().clone()),
        ),
    ];
    for (field, value) in labels {
        if value.is_some_and(|v| !v.is_empty()) {
            return Err(RuntimeError::invalid(
                field,
                "kapsel-runtime does not apply AppArmor or SELinux labels: remove the field \
                 (or leave it empty) to run without one",
            ));
        }
    }
    Ok(())
}

fn validate_namespaces(spec: &Spec) -> Result<()> {
    let namespaces = namespaces(spec);
    let mut seen = HashSet::new();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(RuntimeError::invalid(
                "linux.namespaces",
                format!("namespace {} is listed twice", ns.typ()),
            ));
        }
    }
    let has = |t| seen.contains(&t);
    if !has(LinuxNamespaceType::Mount) {
        return Err(RuntimeError::invalid(
            "linux.namespaces",
            "a mount namespace is required: add {\"type\": \"mount\"}",
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(RuntimeError::invalid(
            "hostname",
            "setting a hostname needs a new uts namespace in linux.namespaces",
        ));
    }
    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| l.uid_mappings().is_some() || l.gid_mappings().is_some());
    if has_maps && !has(LinuxNamespaceType::User) {
        return Err(RuntimeError::invalid(
            "linux.uidMappings",
            "id mappings need a user namespace in linux.namespaces",
        ));
    }
    if linux.is_some_and(|l| l.time_offsets().is_some()) && !has(LinuxNamespaceType::Time) {
        return Err(RuntimeError::invalid(
            "linux.timeOffsets",
            "time offsets need a time namespace in linux.namespaces",
        ));
    }
    Ok(())
}

/// The namespaces config.json asks for (none when `linux` is absent).
pub fn namespaces(spec: &Spec) -> &[oci_spec::runtime::LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or(&[])
}

/// True when config.json asks for a new namespace of this type (not joining one by path).
pub fn creates_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec)
        .iter()
        .any(|n| n.typ() == typ && n.path().is_none())
}

/// The root filesystem directory, resolved against the bundle.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().expect("validated: root present");
    let path = bundle.join(root.path());
    std::fs::canonicalize(&path).map_err(|e| {
        RuntimeError::invalid(
            "root.path",
            format!("rootfs {} cannot be used: {e}", path.display()),
        )
    })
}

/// The default config.json, as `runc spec` writes it (terminal on, `sh`, read-only root).
pub const DEFAULT_CONFIG: &str = include_str!("default-config.json");

/// Writes the default config.json into `bundle`; refuses to overwrite an existing one.
pub fn write_default(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join(CONFIG_NAME);
    if path.exists() {
        return Err(RuntimeError::Usage(format!(
            "{} already exists: remove it first",
            path.display()
        )));
    }
    let mut value: serde_json::Value = serde_json::from_str(DEFAULT_CONFIG).expect("valid JSON");
    if rootless {
        make_rootless(&mut value);
    }
    let text = serde_json::to_string_pretty(&value).expect("serializable");
    crate::fsutil::write_atomic(&path, text.as_bytes())
}

/// Rootless: a user namespace mapping the caller to root, no network namespace, and a
/// bind-mounted /sys instead of a new sysfs (which needs a network namespace it owns).
fn make_rootless(value: &mut serde_json::Value) {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let linux = &mut value["linux"];
    let namespaces = linux["namespaces"].as_array_mut().expect("array");
    namespaces.retain(|n| n["type"] != "network");
    namespaces.push(serde_json::json!({"type": "user"}));
    linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    linux["resources"] = serde_json::Value::Null;
    for m in value["mounts"].as_array_mut().expect("array") {
        if m["destination"] == "/sys" {
            *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
    value["mounts"]
        .as_array_mut()
        .expect("array")
        .retain(|m| m["type"] != "cgroup" && m["destination"] != "/dev/mqueue");
}
