//! CPU time and RSS of a process from `/proc/<pid>/stat` and `/proc/<pid>/status`.

/// Fields of `/proc/<pid>/stat` after the command name (field 3, the state, is index 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Sum of the given `stat` fields (clock ticks) in seconds. USER_HZ is 100 on Linux.
fn ticks(f: &[String], idx: &[usize]) -> Option<f64> {
    let mut sum = 0.0;
    for &i in idx {
        sum += f.get(i)?.parse::<f64>().ok()?;
    }
    Some(sum / 100.0)
}

/// CPU seconds (user + system) used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    // utime (field 14), stime (15).
    ticks(&stat_fields(pid)?, &[11, 12])
}

/// CPU seconds used so far by `pid`, its reaped children and every live descendant: the cost
/// of a multi-process server such as PostgreSQL (postmaster plus one backend per connection).
/// A descendant that exits between two samples is counted once its parent reaps it (then in the
/// parent's cutime/cstime), which PostgreSQL and shells do at once.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    // The root must exist; descendants may vanish while we read them.
    let mut sum = ticks(&stat_fields(pid)?, &[11, 12, 13, 14])?;
    for p in &tree[1..] {
        sum += stat_fields(*p)
            .and_then(|f| ticks(&f, &[11, 12, 13, 14]))
            .unwrap_or(0.0);
    }
    Some(sum)
}

/// Resident set size in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
