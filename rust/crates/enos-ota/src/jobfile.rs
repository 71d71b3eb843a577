//! The job on the data partition (`job.json`) and the finished jobs (`history.jsonl`).
//!
//! The job file crosses the A/B switch: the release that started the job writes it, the release
//! in the other slot (newer after an update, older after a rollback) reads it. It therefore
//! carries its `format` and the oldest format a reader must understand (`compat`), as the
//! telemetry batch does: fields added later go into the job and older readers skip them; a
//! change older readers would misread raises `compat`, and such a reader says so instead of
//! guessing. A file without `format` was written before the file was versioned (format 0: the
//! bare job).
//!
//! Every write is durable before it counts: temporary file, fsync, rename, fsync of the directory
//! (without the last, a power cut can bring back the old name after the rename).

use enos_model::device::OtaJob;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What this release writes.
pub const FORMAT: u32 = 1;
/// The oldest format whose readers understand what this release writes.
pub const COMPAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Versioned {
    format: u32,
    compat: u32,
    job: OtaJob,
}

#[derive(Debug, thiserror::Error)]
pub enum JobFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a job this release can read: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{path}: written by a newer release (job file format {format}, needs a reader of format {compat}; this release reads format {FORMAT})")]
    Newer { path: PathBuf, format: u32, compat: u32 },
}

pub struct JobFile {
    dir: PathBuf,
}

impl JobFile {
    pub fn new(dir: &Path) -> JobFile {
        JobFile { dir: dir.to_path_buf() }
    }

    fn job_path(&self) -> PathBuf {
        self.dir.join("job.json")
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> JobFileError {
        let path = path.to_path_buf();
        move |source| JobFileError::Io { path, source }
    }

    /// The saved job: `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<OtaJob>, JobFileError> {
        let path = self.job_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path)(e)),
        };
        decode(&bytes).map(Some).map_err(|e| match e {
            Decode::Newer { format, compat } => JobFileError::Newer { path, format, compat },
            Decode::Bad(why) => JobFileError::Unreadable { path, why },
        })
    }

    /// Saves the job durably: a power cut leaves the old or the new file, never neither.
    pub fn save(&self, job: &OtaJob) -> Result<(), JobFileError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let doc = Versioned { format: FORMAT, compat: COMPAT, job: job.clone() };
        let bytes = serde_json::to_vec_pretty(&doc).expect("a job is JSON");
        // temp file, fsync, rename, fsync of the directory: the one way (enos-runtime)
        enos_runtime::fs::write_atomic(&self.job_path(), &bytes, 0o600).map_err(self.io(&self.job_path()))
    }

    /// Moves the job into the history: the history line is durable before the job file goes.
    pub fn archive(&self, job: &OtaJob) -> Result<(), JobFileError> {
        let hist = self.dir.join("history.jsonl");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&hist).map_err(self.io(&hist))?;
        writeln!(f, "{}", serde_json::to_string(job).expect("a job is JSON")).map_err(self.io(&hist))?;
        f.sync_all().map_err(self.io(&hist))?;
        match std::fs::remove_file(self.job_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.io(&self.job_path())(e)),
            _ => {}
        }
        self.sync_dir()
    }

    pub fn history(&self) -> Vec<OtaJob> {
        std::fs::read_to_string(self.dir.join("history.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn sync_dir(&self) -> Result<(), JobFileError> {
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(self.io(&self.dir))
    }
}

enum Decode {
    Newer { format: u32, compat: u32 },
    Bad(String),
}

fn decode(bytes: &[u8]) -> Result<OtaJob, Decode> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Decode::Bad(format!("not JSON ({e})")))?;
    let Some(format) = v.get("format") else {
        // Format 0: the bare job, as releases before the versioned file wrote it.
        return serde_json::from_value(v).map_err(|e| Decode::Bad(e.to_string()));
    };
    let format = format.as_u64().ok_or_else(|| Decode::Bad("format is not a number".into()))? as u32;
    let compat = v.get("compat").and_then(|c| c.as_u64()).map(|c| c as u32).unwrap_or(format);
    if compat > FORMAT {
        return Err(Decode::Newer { format, compat });
    }
    let job = v.get("job").cloned().ok_or_else(|| Decode::Bad("no job in the file".into()))?;
    serde_json::from_value(job).map_err(|e| Decode::Bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> OtaJob {
        OtaJob { id: "7".into(), version: "2.0.0".into(), state: "installing".into(), to_slot: "B".into(), ..Default::default() }
    }

    #[test]
    fn saved_job_carries_its_format_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let f = JobFile::new(d.path());
        assert!(f.load().unwrap().is_none());
        f.save(&job()).unwrap();
        let text = std::fs::read_to_string(d.path().join("job.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["format"].as_u64(), v["compat"].as_u64()), (Some(FORMAT as u64), Some(COMPAT as u64)), "{text}");
        assert_eq!(f.load().unwrap(), Some(job()));
        assert!(!d.path().join("job.json.tmp").exists());
    }

    #[test]
    fn a_bare_job_of_an_older_release_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("job.json"), serde_json::to_vec(&job()).unwrap()).unwrap();
        assert_eq!(JobFile::new(d.path()).load().unwrap(), Some(job()));
    }

    #[test]
    fn a_newer_format_is_refused_in_words_and_an_additive_one_is_read() {
        let d = tempfile::tempdir().unwrap();
        let f = JobFile::new(d.path());
        let mut j = serde_json::to_value(job()).unwrap();
        j["added_later"] = serde_json::json!(1);
        std::fs::write(d.path().join("job.json"), serde_json::json!({"format": 5, "compat": 1, "job": j}).to_string()).unwrap();
        assert_eq!(f.load().unwrap(), Some(job()), "a later format that older readers understand");
        std::fs::write(d.path().join("job.json"), serde_json::json!({"format": 5, "compat": 4, "job": j}).to_string()).unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("written by a newer release") && e.contains("format 5") && e.contains("reads format 1"), "{e}");
        std::fs::write(d.path().join("job.json"), "{\"format\": 1}").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("no job in the file"), "{e}");
    }

    #[test]
    fn archive_moves_the_job_into_the_history() {
        let d = tempfile::tempdir().unwrap();
        let f = JobFile::new(d.path());
        f.save(&job()).unwrap();
        let mut done = job();
        done.state = "committed".into();
        f.archive(&done).unwrap();
        assert!(f.load().unwrap().is_none());
        assert_eq!(f.history(), vec![done]);
    }
}
