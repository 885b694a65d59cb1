//! Which jobs of a manifest one of N independent processes runs (`--shard I/N`, or a Slurm array
//! task's `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT`).
//!
//! Job k of the manifest (0-based, manifest order) belongs to shard k mod N: the split depends
//! on nothing but the order of the jobs and N, so every process computes the same one without
//! talking to the others, every job lands in exactly one shard, and shards differ in size by at
//! most one job (round-robin keeps a manifest sorted by scan size balanced too).

use anyhow::{bail, Context, Result};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (0 <= index < count), as `SLURM_ARRAY_TASK_ID` counts with
/// `--array=0-(N-1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole manifest in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            bail!("--shard {index}/{count}: the number of shards must be at least 1: use I/N with 0 <= I < N, e.g. 0/4");
        }
        if index >= count {
            bail!("--shard {index}/{count}: shard indices count from 0, so the last of {count} is {}: use I/N with 0 <= I < N", count - 1);
        }
        Ok(Shard { index, count })
    }

    /// Whether the job at manifest position `job` (0-based) is this shard's.
    pub fn owns(&self, job: usize) -> bool {
        job % self.count == self.index
    }

    /// The shard a Slurm array task is, from its environment (`get` reads a variable): None
    /// outside an array. The task's position is `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`, so
    /// `--array=1-N` works as well as `--array=0-(N-1)`; an array with gaps or a step
    /// (`--array=0,4` or `0-8:2`) is refused, since its tasks would not cover every shard.
    pub fn from_slurm_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        let Some(id) = get("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let number = |name: &str, v: Option<String>| -> Result<usize> {
            match v {
                Some(s) => s.trim().parse::<usize>().map_err(|_| {
                    anyhow::anyhow!(
                        "{name}={s:?}: not a whole number: unset it, or pass --shard I/N"
                    )
                }),
                None => bail!("SLURM_ARRAY_TASK_ID is set but {name} is not: pass --shard I/N"),
            }
        };
        let id = number("SLURM_ARRAY_TASK_ID", Some(id))?;
        let count = number("SLURM_ARRAY_TASK_COUNT", get("SLURM_ARRAY_TASK_COUNT"))?;
        let min = match get("SLURM_ARRAY_TASK_MIN") {
            Some(v) => number("SLURM_ARRAY_TASK_MIN", Some(v))?,
            None => 0,
        };
        if let (Some(max), Some(step)) = (get("SLURM_ARRAY_TASK_MAX"), get("SLURM_ARRAY_TASK_STEP"))
        {
            let max = number("SLURM_ARRAY_TASK_MAX", Some(max))?;
            let step = number("SLURM_ARRAY_TASK_STEP", Some(step))?;
            if step != 1 || max + 1 - min != count {
                bail!("Slurm array {min}-{max} (step {step}, {count} tasks): not one contiguous range, so its tasks do not cover every shard: submit with --array=0-{} or pass --shard I/N", count.saturating_sub(1));
            }
        }
        let Some(index) = id.checked_sub(min) else {
            bail!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}: pass --shard I/N")
        };
        Shard::new(index, count)
            .with_context(|| format!("Slurm array task {id} of {count} tasks"))
            .map(Some)
    }

    /// The manifest positions of this shard's jobs among `jobs` jobs, in manifest order.
    pub fn jobs(&self, jobs: usize) -> impl Iterator<Item = usize> + '_ {
        (0..jobs).filter(|&k| self.owns(k))
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Shard> {
        let Some((i, n)) = s.split_once('/') else {
            bail!("--shard {s}: expected I/N (this process's shard I of N, from 0), e.g. 0/4")
        };
        let parse = |v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                anyhow::anyhow!("--shard {s}: `{v}` is not a whole number: expected I/N, e.g. 0/4")
            })
        };
        Shard::new(parse(i)?, parse(n)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_job_is_in_exactly_one_shard() {
        for jobs in 0..20 {
            for count in 1..=7 {
                let mut seen = vec![0usize; jobs];
                let mut sizes = Vec::new();
                for index in 0..count {
                    let shard = Shard::new(index, count).unwrap();
                    let mine: Vec<usize> = shard.jobs(jobs).collect();
                    sizes.push(mine.len());
                    for k in mine {
                        seen[k] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "{jobs} jobs over {count} shards: counts {seen:?}"
                );
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{jobs} jobs / {count}: sizes {sizes:?}");
            }
        }
    }

    #[test]
    fn the_split_depends_only_on_the_manifest_order() {
        // Two reads of the same manifest (fresh values, as two machines would have) give every
        // shard the same job names; a shard's jobs are a fixed set, not "whatever is left".
        let names: Vec<String> = (0..11).map(|k| format!("scan{k:02}")).collect();
        let split = |names: &[String], count: usize| -> HashMap<String, usize> {
            (0..count)
                .flat_map(|i| {
                    let s = Shard::new(i, count).unwrap();
                    s.jobs(names.len())
                        .map(move |k| (names[k].clone(), i))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for count in 1..=7 {
            let again = names.clone();
            assert_eq!(split(&names, count), split(&again, count));
        }
        // 11 jobs over 3 shards: round-robin.
        let s = split(&names, 3);
        assert_eq!(s["scan00"], 0);
        assert_eq!(s["scan01"], 1);
        assert_eq!(s["scan05"], 2);
        assert_eq!(s["scan10"], 1);
    }

    #[test]
    fn bad_shards_are_refused_with_the_fix() {
        for bad in ["3/2", "2/2", "0/0", "1", "a/3", "-1/3", "1/-3", ""] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with("--shard "), "{bad}: {e}");
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        assert_eq!(" 0 / 1 ".trim().parse::<Shard>().unwrap(), Shard::ALL);
    }

    #[test]
    fn slurm_array_variables_give_the_shard() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_slurm_env(env(&[])).unwrap(), None);
        let s = Shard::from_slurm_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 3 }));
        // --array=1-3: task 1 is shard 0.
        let s = Shard::from_slurm_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 0, count: 3 }));
        // --array=0-8:2 would leave shards without a task.
        assert!(Shard::from_slurm_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]))
        .is_err());
        assert!(Shard::from_slurm_env(env(&[("SLURM_ARRAY_TASK_ID", "2")])).is_err());
    }
}
