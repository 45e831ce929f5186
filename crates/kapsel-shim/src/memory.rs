//! Giving memory back while idle. A shim runs for its container's whole life and is idle
//! nearly all of it, so what start-up and bursts of output left behind should not stay.

use std::io::{BufRead, BufReader};

/// Returns the free heap memory to the kernel (glibc keeps freed memory by default).
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps the code pages of the shim and its libraries from this process; the ones the
/// event loop runs are mapped again on their next use, from the page cache.
///
/// Start-up runs code the loop never runs again (spawning the runtime, parsing
/// arguments, formatting), and each first touch of code maps up to 64 KiB around it
/// (the kernel's fault-around), so without this an idle shim keeps most of its binary and
/// a good part of libc mapped. Those pages are shared, but they count in every shim's
/// PSS, and while mapped they are harder for the kernel to reclaim.
///
/// It is what keeps an idle shim under its 0.2 MiB PSS target (release build, 10 idle
/// shims, tests/pss.rs): 0.165-0.179 MiB with it, 0.230-0.247 MiB without (RSS ~2 MiB
/// instead of ~0.97).
///
/// Only mappings that are executable, private, backed by a file and without a single
/// modified page are dropped: for them MADV_DONTNEED loses nothing (a page modified in
/// place, by text relocations or a debugger's breakpoint, would be lost: such mappings
/// are left alone).
pub fn release_code_pages() {
    let Ok(smaps) = std::fs::File::open("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<Mapping> = None;
    for line in BufReader::with_capacity(4096, smaps)
        .lines()
        .map_while(Result::ok)
    {
        if let Some(m) = Mapping::parse_header(&line) {
            if let Some(done) = current.replace(m) {
                done.release();
            }
        } else if let (Some(m), Some(kb)) = (&mut current, line.strip_prefix("Private_Dirty:")) {
            m.dirty = kb.trim().trim_end_matches("kB").trim() != "0";
        }
    }
    if let Some(done) = current {
        done.release();
    }
}

/// A code mapping from /proc/self/smaps.
struct Mapping {
    start: usize,
    end: usize,
    dirty: bool,
}

impl Mapping {
    /// `start-end r-xp offset dev inode /path`; None for any other line or mapping.
    fn parse_header(line: &str) -> Option<Mapping> {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let code = fields.next()? == "r-xp";
        let file = fields.nth(3).is_some_and(|path| path.starts_with('/'));
        (code && file).then_some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            // Unknown until its Private_Dirty line: assume the worst.
            dirty: true,
        })
    }

    fn release(self) {
        if self.dirty || self.end <= self.start {
            return;
        }
        // SAFETY: the range is a private, read-only, unmodified file mapping: dropping its
        // pages only makes the next access read them from the file again.
        unsafe {
            libc::madvise(
                self.start as *mut libc::c_void,
                self.end - self.start,
                libc::MADV_DONTNEED,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_file_backed_code_mappings() {
        let code = Mapping::parse_header(
            "0021a000-0027c000 r-xp 0001a000 fe:00 5382452    /usr/bin/kapsel-shim",
        )
        .unwrap();
        assert_eq!(
            (code.start, code.end, code.dirty),
            (0x21a000, 0x27c000, true)
        );
        for other in [
            "7ffe93848000-7ffe93869000 rw-p 00000000 00:00 0                  [stack]",
            "7f98cda9e000-7f98cdaa2000 r--p 001cf000 fe:00 326279 /usr/lib/libc.so.6",
            "7fff5a1d3000-7fff5a1d5000 r-xp 00000000 00:00 0                  [vdso]",
            "Private_Dirty:         0 kB",
        ] {
            assert!(Mapping::parse_header(other).is_none(), "{other}");
        }
    }

    #[test]
    fn the_process_runs_on_after_releasing_its_code() {
        release_code_pages();
        // Code, libc included, is simply mapped again.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
