//! linux.resources.unified: raw "v2 file → value" settings for the unified directory.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{CgroupError, Result};
use crate::fs;

pub(crate) fn apply(dir: Option<&Path>, settings: &HashMap<String, String>) -> Result<()> {
    let Some(dir) = dir else {
        return Err(CgroupError::Unsupported {
            what: "linux.resources.unified".to_string(),
            why: "no cgroup2 hierarchy is mounted".to_string(),
        });
    };
    // Sorted, so that a failure is reproducible whatever the map's order.
    let mut keys: Vec<&String> = settings.keys().collect();
    keys.sort();
    for key in keys {
        // A key names a file in the cgroup directory, never a path elsewhere.
        if key.is_empty() || key.contains('/') || key.starts_with('.') {
            return Err(CgroupError::InvalidValue {
                what: "linux.resources.unified".to_string(),
                why: format!("{key:?} is not a cgroup file name"),
            });
        }
        fs::write(&dir.join(key), &settings[key])?;
    }
    Ok(())
}
