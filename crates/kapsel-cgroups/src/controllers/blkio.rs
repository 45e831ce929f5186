//! The block I/O controller: blkio on v1, io on v2.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroup::Files;
use crate::error::Result;
use crate::fs::{self, read_opt};
use crate::stats::{Blkio, BlkioEntry};

pub(crate) fn apply(f: Files, b: &LinuxBlockIo) -> Result<()> {
    match f {
        Files::V1(dir) => apply_v1(dir, b),
        Files::V2(dir) => apply_v2(dir, b),
    }
}

/// The four throttle lists with their v1 file and v2 io.max key.
fn throttles(b: &LinuxBlockIo) -> [(&'static str, &'static str, &[LinuxThrottleDevice]); 4] {
    fn list(l: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
        l.as_deref().unwrap_or(&[])
    }
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            list(b.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            list(b.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            list(b.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            list(b.throttle_write_iops_device()),
        ),
    ]
}

/// The CFQ file if the kernel has it, else BFQ's (CFQ was removed in Linux 5.0).
fn cfq_or_bfq(dir: &Path, name: &str) -> PathBuf {
    let cfq = dir.join(format!("blkio.{name}"));
    if cfq.exists() {
        cfq
    } else {
        dir.join(format!("blkio.bfq.{name}"))
    }
}

fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    // 0 means unset, as in runc (Go zero values); the kernel rejects it.
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        fs::write(&cfq_or_bfq(dir, "weight"), &w.to_string())?;
    }
    // Leaf weights exist only with CFQ; BFQ has no equivalent.
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        fs::write_if_exists(&dir.join("blkio.leaf_weight"), &w.to_string())?;
    }
    for d in b.weight_device().as_deref().unwrap_or(&[]) {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(w) = d.weight() {
            fs::write(&cfq_or_bfq(dir, "weight_device"), &format!("{dev} {w}"))?;
        }
        if let Some(w) = d.leaf_weight() {
            let file = dir.join("blkio.leaf_weight_device");
            fs::write_if_exists(&file, &format!("{dev} {w}"))?;
        }
    }
    for (file, _, devices) in throttles(b) {
        for d in devices {
            let value = format!("{}:{} {}", d.major(), d.minor(), d.rate());
            fs::write(&dir.join(file), &value)?;
        }
    }
    Ok(())
}

/// blkio weights (10..1000) to io.weight (1..10000), as runc converts them.
fn io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// BFQ keeps the blkio weight range in io.bfq.weight; io.weight needs converting.
fn weight_v2(dir: &Path, device: Option<String>, w: u16) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    let (file, w) = if bfq.exists() {
        (bfq, u64::from(w))
    } else {
        (dir.join("io.weight"), io_weight(w))
    };
    let value = match device {
        Some(dev) => format!("{dev} {w}"),
        None => w.to_string(),
    };
    fs::write(&file, &value)
}

/// Leaf weights have no v2 equivalent and are not written.
fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        weight_v2(dir, None, w)?;
    }
    for d in b.weight_device().as_deref().unwrap_or(&[]) {
        if let Some(w) = d.weight() {
            weight_v2(dir, Some(format!("{}:{}", d.major(), d.minor())), w)?;
        }
    }
    for (_, key, devices) in throttles(b) {
        for d in devices {
            // v1 removes a throttle when given 0; v2 spells that "max".
            let rate = match d.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            let value = format!("{}:{} {key}={rate}", d.major(), d.minor());
            fs::write(&dir.join("io.max"), &value)?;
        }
    }
    Ok(())
}

pub(crate) fn stats(f: Files, out: &mut Blkio) -> Result<()> {
    match f {
        Files::V1(dir) => stats_v1(dir, out),
        Files::V2(dir) => stats_v2(dir, out),
    }
}

/// v1 keeps the same counters per I/O policy (CFQ, BFQ, throttling); the first policy that
/// has counted anything is reported, since e.g. BFQ's files stay empty for devices using
/// another scheduler while throttling counts all I/O. Last, as runc does, the throttling
/// policy's non-recursive files (older kernels have no `_recursive` ones for it).
fn stats_v1(dir: &Path, out: &mut Blkio) -> Result<()> {
    let recursive = ["blkio.", "blkio.bfq.", "blkio.throttle."].map(|prefix| {
        (
            format!("{prefix}io_service_bytes_recursive"),
            format!("{prefix}io_serviced_recursive"),
        )
    });
    let plain = (
        "blkio.throttle.io_service_bytes".to_string(),
        "blkio.throttle.io_serviced".to_string(),
    );
    for (bytes_file, serviced_file) in recursive.into_iter().chain([plain]) {
        let bytes = read_v1(&dir.join(bytes_file))?;
        if !bytes.is_empty() {
            out.io_service_bytes_recursive = bytes;
            out.io_serviced_recursive = read_v1(&dir.join(serviced_file))?;
            break;
        }
    }
    Ok(())
}

/// "8:0 Read 4096" lines; the trailing "Total N" line has no device and is skipped.
fn read_v1(file: &Path) -> Result<Vec<BlkioEntry>> {
    let content = read_opt(file)?.unwrap_or_default();
    let mut entries = Vec::new();
    for line in content.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, value] = fields[..] else {
            continue;
        };
        let (major, minor) = parse_dev(dev).ok_or_else(|| fs::parse_err(file, line))?;
        let value = value.parse().map_err(|_| fs::parse_err(file, line))?;
        entries.push(BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        });
    }
    Ok(entries)
}

fn parse_dev(dev: &str) -> Option<(u64, u64)> {
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0", mapped to v1's op names.
fn stats_v2(dir: &Path, out: &mut Blkio) -> Result<()> {
    let file = dir.join("io.stat");
    let content = read_opt(&file)?.unwrap_or_default();
    for line in content.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(parse_dev) else {
            continue;
        };
        for (key, value) in fields.filter_map(|f| f.split_once('=')) {
            let (list, op) = match key {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut out.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                "dios" => (&mut out.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            let value = value.parse().map_err(|_| fs::parse_err(&file, line))?;
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion() {
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(500), 4950);
        assert_eq!(io_weight(1000), 10000);
    }

    #[test]
    fn v1_falls_back_to_the_throttling_policy() {
        let dir = std::env::temp_dir().join(format!("kapsel-blkio-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // BFQ present but idle (another scheduler), no recursive throttling files.
        std::fs::write(
            dir.join("blkio.bfq.io_service_bytes_recursive"),
            "Total 0\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("blkio.throttle.io_service_bytes"),
            "253:0 Read 4096\n253:0 Write 8192\n253:0 Total 12288\nTotal 12288\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("blkio.throttle.io_serviced"),
            "253:0 Read 1\n253:0 Write 2\n253:0 Total 3\nTotal 3\n",
        )
        .unwrap();
        let mut out = Blkio::default();
        stats_v1(&dir, &mut out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let ops: Vec<(&str, u64)> = out
            .io_service_bytes_recursive
            .iter()
            .map(|e| (e.op.as_str(), e.value))
            .collect();
        assert_eq!(ops, [("Read", 4096), ("Write", 8192), ("Total", 12288)]);
        assert_eq!(out.io_service_bytes_recursive[0].major, 253);
        assert_eq!(out.io_serviced_recursive.len(), 3);
    }

    #[test]
    fn reads_v2_io_stat() {
        let dir = std::env::temp_dir().join(format!("kapsel-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n",
        )
        .unwrap();
        let mut out = Blkio::default();
        stats_v2(&dir, &mut out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(out.io_service_bytes_recursive.len(), 3);
        assert_eq!(out.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(out.io_service_bytes_recursive[1].value, 20);
        assert_eq!(out.io_serviced_recursive[0].minor, 0);
        assert_eq!(out.io_serviced_recursive[1].value, 2);
    }
}
