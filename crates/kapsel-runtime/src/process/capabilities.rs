//! The five capability sets of `process.capabilities`.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Result, RuntimeError};

/// The sets as the `caps` crate wants them, keeping only capabilities this kernel knows (a
/// config written for a newer kernel must still run, as with runc). A set left out of
/// `process.capabilities` is empty (engines omit empty lists: podman's `--cap-drop all`
/// sends `{}`); only an absent `capabilities` leaves the process's capabilities alone.
pub struct CapabilitySets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    inheritable: CapsHashSet,
    permitted: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapabilitySets {
    pub fn from_spec(c: &LinuxCapabilities) -> Result<Self> {
        let known = caps::runtime::thread_all_supported();
        let convert = |set: &Option<Capabilities>| -> Result<CapsHashSet> {
            set.as_ref()
                .map_or(Ok(CapsHashSet::new()), |s| to_caps(s, &known))
        };
        Ok(CapabilitySets {
            bounding: convert(c.bounding())?,
            effective: convert(c.effective())?,
            inheritable: convert(c.inheritable())?,
            permitted: convert(c.permitted())?,
            ambient: convert(c.ambient())?,
        })
    }

    /// Drops from the bounding set what config.json leaves out. Needs CAP_SETPCAP, so it
    /// runs before the switch to the container's user.
    pub fn apply_bounding(&self) -> Result<()> {
        for cap in caps::runtime::thread_all_supported() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| caps_error("bounding", e))?;
            }
        }
        Ok(())
    }

    /// Sets permitted, inheritable, effective and ambient, after the user switch (which kept
    /// the permitted set through PR_SET_KEEPCAPS).
    pub fn apply_process_sets(&self) -> Result<()> {
        // Each capset must stay valid on its own: effective within permitted, so effective
        // shrinks before permitted does.
        for (name, set, value) in [
            ("inheritable", CapSet::Inheritable, &self.inheritable),
            ("effective", CapSet::Effective, &self.effective),
            ("permitted", CapSet::Permitted, &self.permitted),
        ] {
            caps::set(None, set, value).map_err(|e| caps_error(name, e))?;
        }
        // Ambient capabilities must be permitted and inheritable: raising others fails, so
        // they are skipped as runc does.
        caps::clear(None, CapSet::Ambient).map_err(|e| caps_error("ambient", e))?;
        for cap in &self.ambient {
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
        Ok(())
    }
}

fn to_caps(set: &Capabilities, known: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for cap in set {
        let name = serde_json::to_value(cap).expect("serializable");
        let name = name.as_str().unwrap_or_default();
        let parsed = Capability::from_str(name).map_err(|_| {
            RuntimeError::invalid("process.capabilities", format!("unknown capability {name}"))
        })?;
        if known.contains(&parsed) {
            out.insert(parsed);
        }
    }
    Ok(out)
}

fn caps_error(set: &str, e: caps::errors::CapsError) -> RuntimeError {
    RuntimeError::Init(format!("setting the {set} capability set: {e}"))
}
