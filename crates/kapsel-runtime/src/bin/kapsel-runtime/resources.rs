//! `update`'s flags, turned into the resources config.json would carry.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

#[derive(Args)]
pub struct UpdateArgs {
    pub id: String,
    /// A JSON file with the resources (config.json's linux.resources); "-" for stdin.
    #[arg(short = 'r', long = "resources")]
    pub r: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_swap: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    #[arg(long)]
    pub kernel_memory: Option<String>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

impl UpdateArgs {
    pub fn resources(&self) -> Result<LinuxResources> {
        if let Some(path) = &self.r {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading resources from stdin")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            return serde_json::from_str(&text)
                .context("the resources file is not valid linux.resources JSON");
        }
        let mut r = LinuxResources::default();
        r.set_memory(self.memory()?);
        r.set_cpu(self.cpu());
        if let Some(limit) = self.pids_limit {
            let mut p = LinuxPids::default();
            p.set_limit(limit);
            r.set_pids(Some(p));
        }
        if let Some(w) = self.blkio_weight {
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }

    fn memory(&self) -> Result<Option<LinuxMemory>> {
        let bytes = |v: &Option<String>| v.as_deref().map(parse_bytes).transpose();
        let (limit, swap, reservation, kernel) = (
            bytes(&self.memory)?,
            bytes(&self.memory_swap)?,
            bytes(&self.memory_reservation)?,
            bytes(&self.kernel_memory)?,
        );
        if [limit, swap, reservation, kernel]
            .iter()
            .all(Option::is_none)
        {
            return Ok(None);
        }
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        m.set_swap(swap);
        m.set_reservation(reservation);
        #[allow(deprecated)]
        m.set_kernel(kernel);
        Ok(Some(m))
    }

    fn cpu(&self) -> Option<LinuxCpu> {
        let mut c = LinuxCpu::default();
        c.set_shares(self.cpu_shares);
        c.set_quota(self.cpu_quota);
        c.set_period(self.cpu_period);
        c.set_realtime_runtime(self.cpu_rt_runtime);
        c.set_realtime_period(self.cpu_rt_period);
        c.set_cpus(self.cpuset_cpus.clone());
        c.set_mems(self.cpuset_mems.clone());
        (c != LinuxCpu::default()).then_some(c)
    }
}

/// "1048576", "512k", "100M", "1g" (binary units, as runc and Docker read them); "-1" means
/// unlimited.
pub fn parse_bytes(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size {text:?}: use e.g. 512k, 100m, 1g"))?;
    if n < 0.0 {
        bail!("invalid size {text:?}: must not be negative");
    }
    Ok((n * mult as f64) as i64)
}
