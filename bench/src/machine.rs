//! The machine a run was measured on, and whether something else competed for its CPUs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// CPU model, cores, memory.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine { cpu, cores, memory_gib: kib / 1024.0 / 1024.0 }
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let text = crate::generate::timestamp_text(SystemTime::now());
    format!("{} UTC", &text[..16])
}

/// The parent of a process, from `/proc/PID/stat`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).map(|f| f.ppid)
}

struct StatFields {
    comm: String,
    ppid: u32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
}

/// `pid (comm) state ppid … utime stime …` (comm may hold spaces and parentheses).
fn stat_fields(stat: &str) -> Option<StatFields> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // rest[0] is the state (field 3); ppid is field 4, utime 14, stime 15.
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(StatFields { comm, ppid, cpu_ticks: utime + stime })
}

/// CPU time used by processes other than the bench, its children and the bench cluster,
/// sampled every second while a run goes on: the contention a result may have suffered.
pub struct Contention {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<Mutex<ContentionState>>,
    started: Instant,
}

#[derive(Default)]
struct ContentionState {
    /// CPU seconds by command name.
    foreign: BTreeMap<String, f64>,
    /// 1-minute load averages seen.
    max_load: f64,
}

impl Contention {
    /// Start sampling; `ours` are process ids whose descendants are ours too (the postmaster).
    pub fn start(ours: Vec<u32>) -> Contention {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(ContentionState::default()));
        let thread = {
            let (stop, state) = (stop.clone(), state.clone());
            std::thread::spawn(move || sample(ours, &stop, &state))
        };
        Contention { stop, thread: Some(thread), state, started: Instant::now() }
    }

    /// Other processes' CPU seconds so far.
    pub fn foreign_cpu_seconds(&self) -> f64 {
        self.state.lock().expect("contention state").foreign.values().sum()
    }

    /// Stop and summarise: other processes' CPU seconds, as a share of the machine's capacity.
    pub fn finish(mut self, cores: usize) -> String {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let state = self.state.lock().expect("contention state");
        let total: f64 = state.foreign.values().sum();
        let mut top: Vec<(&String, &f64)> = state.foreign.iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(a.1));
        let top: Vec<String> =
            top.iter().take(5).filter(|(_, s)| **s >= 1.0).map(|(c, s)| format!("{c} {s:.0} s")).collect();
        let share = 100.0 * total / (elapsed * cores as f64);
        let verdict = if share >= 5.0 { "CONTENDED" } else { "not contended" };
        format!(
            "{verdict}: other processes used {total:.0} CPU-seconds during the {elapsed:.0} s run ({share:.1} % of \
             {cores} cores){}; highest 1-minute load average {:.2}",
            if top.is_empty() { String::new() } else { format!(": {}", top.join(", ")) },
            state.max_load
        )
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn sample(ours: Vec<u32>, stop: &AtomicBool, state: &Mutex<ContentionState>) {
    let ticks_per_second = clock_ticks_per_second();
    let me = std::process::id();
    let mut previous: HashMap<u32, u64> = HashMap::new();
    let mut first = true;
    while !stop.load(Ordering::SeqCst) {
        let mut processes: HashMap<u32, StatFields> = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some(fields) =
                std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(stat_fields)
            {
                processes.insert(pid, fields);
            }
        }
        // Ours: the bench, the cluster's postmaster, and everything descending from them.
        let roots: HashSet<u32> = ours.iter().copied().chain([me]).collect();
        let is_ours = |mut pid: u32| {
            for _ in 0..64 {
                if roots.contains(&pid) {
                    return true;
                }
                match processes.get(&pid) {
                    Some(p) if p.ppid > 1 => pid = p.ppid,
                    _ => return false,
                }
            }
            false
        };
        let mut guard = state.lock().expect("contention state");
        for (&pid, p) in &processes {
            let before = previous.get(&pid).copied();
            // A process first seen after the first sample started during the interval.
            let delta = match before {
                Some(b) => p.cpu_ticks.saturating_sub(b),
                None if first => 0,
                None => p.cpu_ticks,
            };
            if delta > 0 && !is_ours(pid) {
                *guard.foreign.entry(p.comm.clone()).or_default() += delta as f64 / ticks_per_second;
            }
        }
        let load: f64 = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        guard.max_load = guard.max_load.max(load);
        drop(guard);
        previous = processes.into_iter().map(|(pid, p)| (pid, p.cpu_ticks)).collect();
        first = false;
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The kernel's clock ticks per second (the unit of /proc/PID/stat times): `getconf CLK_TCK`,
/// 100 (Linux's USER_HZ everywhere we run) when that cannot be asked.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t >= 1.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let f = stat_fields("123 (a (b) c) S 45 1 1 0 -1 0 0 0 0 0 17 3 0 0 20 0 1 0").unwrap();
        assert_eq!((f.comm.as_str(), f.ppid, f.cpu_ticks), ("a (b) c", 45, 20));
    }
}
