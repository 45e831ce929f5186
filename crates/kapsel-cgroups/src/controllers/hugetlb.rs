//! The hugetlb controller: huge page limits per page size.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroup::Files;
use crate::error::{CgroupError, Result};
use crate::fs::{self, io_err, read_keyed, read_u64_opt};
use crate::stats::Hugetlb;

pub(crate) fn apply(f: Files, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = l.page_size();
        // The size becomes part of a file name ("2MB" → hugetlb.2MB.max).
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CgroupError::InvalidValue {
                what: "hugepageLimits pageSize".to_string(),
                why: format!("{size:?} is not a page size such as 2MB"),
            });
        }
        let (limit, value) = match f {
            Files::V1(_) => ("limit_in_bytes", l.limit().max(-1).to_string()),
            Files::V2(_) if l.limit() < 0 => ("max", "max".to_string()),
            Files::V2(_) => ("max", l.limit().to_string()),
        };
        fs::write(&f.file(&format!("hugetlb.{size}.{limit}")), &value)?;
        // Reservations (made at mmap time) are limited too where the kernel has them, so
        // going over the limit fails mmap instead of faulting (SIGBUS) later.
        fs::write_if_exists(&f.file(&format!("hugetlb.{size}.rsvd.{limit}")), &value)?;
    }
    Ok(())
}

/// One entry per page size that has a limit file in this cgroup.
pub(crate) fn stats(f: Files, out: &mut BTreeMap<String, Hugetlb>) -> Result<()> {
    let limit_suffix = match f {
        Files::V1(_) => ".limit_in_bytes",
        Files::V2(_) => ".max",
    };
    for size in page_sizes(f.dir(), limit_suffix)? {
        let file = |name: &str| f.file(&format!("hugetlb.{size}.{name}"));
        let entry = match f {
            Files::V1(_) => Hugetlb {
                usage: read_u64_opt(&file("usage_in_bytes"))?,
                max: read_u64_opt(&file("max_usage_in_bytes"))?,
                failcnt: read_u64_opt(&file("failcnt"))?,
            },
            Files::V2(_) => Hugetlb {
                usage: read_u64_opt(&file("current"))?,
                max: 0,
                failcnt: read_keyed(&file("events"))?
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            },
        };
        out.insert(size, entry);
    }
    Ok(())
}

/// Page sizes from "hugetlb.<size><suffix>" file names ("hugetlb.2MB.rsvd.max" is skipped:
/// a size has no dot).
fn page_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("listing", dir, e))?;
    let mut sizes = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io_err("listing", dir, e))?.file_name();
        let name = name.to_string_lossy();
        let size = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(suffix));
        if let Some(size) = size.filter(|s| !s.contains('.')) {
            sizes.push(size.to_string());
        }
    }
    Ok(sizes)
}
