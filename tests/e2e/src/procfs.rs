//! Processes seen through `/proc` (Linux): the children a data plane started, whether a
//! process is still alive, the environment it was started with and its memory.

use std::path::Path;

use anyhow::Context as _;

/// The pids whose parent is `parent`.
pub fn children(parent: u32) -> anyhow::Result<Vec<u32>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while the directory is read.
        if stat(pid).is_some_and(|(_, ppid)| ppid == parent) {
            children.push(pid);
        }
    }
    Ok(children)
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The environment `pid` was started with.
pub fn environ(pid: u32) -> anyhow::Result<Vec<(String, String)>> {
    let path = format!("/proc/{pid}/environ");
    let raw = std::fs::read(Path::new(&path)).with_context(|| format!("reading {path}"))?;
    Ok(raw
        .split(|&byte| byte == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect())
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most that was ever resident.
    pub peak: u64,
}

/// The resident memory of `pid` (from `/proc/<pid>/status`).
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .with_context(|| format!("no {name} in {path}"))?;
        let kib = line
            .trim_start_matches(':')
            .trim()
            .trim_end_matches("kB")
            .trim();
        Ok(kib
            .parse::<u64>()
            .with_context(|| format!("{name}: {line}"))?
            * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS")?,
        peak: field("VmHWM")?,
    })
}

/// State letter and parent pid of `pid`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_its_own_process_and_children() {
        let me = std::process::id();
        assert!(is_alive(me));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        assert!(children(me).unwrap().contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_alive(child.id()));
        assert!(environ(me).unwrap().iter().any(|(name, _)| name == "PATH"));
        let memory = memory(me).unwrap();
        assert!(memory.rss > 0 && memory.peak >= memory.rss, "{memory:?}");
    }
}
