//! The job: download → verify → install (SWUpdate writes the inactive slot and arms the trial
//! boot) → reboot → health check on the new slot → commit, or roll back. The job is persisted on
//! the data partition at every step, so the agent picks it up again after the reboot.

use crate::bootslot::{self, Boot};
use crate::config::OtaConfig;
use crate::jobfile::JobFile;
use crate::resume::{self, Next};
use crate::{health, version};
use enos_batch::now_ms;
use enos_download as download;
use enos_model::device::{OtaJob, OtaStatus};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Agent {
    pub cfg: OtaConfig,
    job: Mutex<Option<OtaJob>>,
    file: JobFile,
    /// The job root consented to although it is not newer (see `downgrade_consent`).
    consented: Mutex<Option<String>>,
    /// Where the running release's `VERSION_ID` is read (`ENOS_OS_RELEASE` for tests).
    os_release: PathBuf,
    /// The bus, for the health check's calls to the other services.
    conn: OnceLock<zbus::Connection>,
    /// Where steps and versions are announced (the bus adapter's signals).
    announce: OnceLock<Box<dyn Announce>>,
    /// The slot this boot runs from, read once at start (`resume`): `Status` answers the uplink
    /// within its 2 s without a round to the slot helper (a unit started per request).
    booted_slot: OnceLock<String>,
}

/// A boxed future of an announcement.
pub type Announcing<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Where the agent announces a job's steps and the version it runs: the D-Bus signals
/// (`bus::Signals`). The agent does not know the bus adapter; the adapter knows the agent.
pub trait Announce: Send + Sync {
    fn progress<'a>(&'a self, job: &'a str, step: i32, desc: &'a str) -> Announcing<'a>;
    fn version_changed<'a>(&'a self, version: &'a str, reason: &'a str) -> Announcing<'a>;
}

impl Agent {
    pub fn new(cfg: OtaConfig) -> Arc<Agent> {
        let os_release = std::env::var_os("ENOS_OS_RELEASE").map(PathBuf::from).unwrap_or_else(|| "/etc/os-release".into());
        Agent::with_os_release(cfg, os_release)
    }

    pub fn with_os_release(cfg: OtaConfig, os_release: PathBuf) -> Arc<Agent> {
        let file = JobFile::new(&cfg.dir);
        let job = file.load().unwrap_or_else(|e| {
            // Not fatal: where an update stands is read from the bootloader environment.
            log::error!("the saved update job is ignored: {e}");
            None
        });
        Arc::new(Agent {
            cfg,
            job: Mutex::new(job),
            file,
            consented: Mutex::new(None),
            os_release,
            conn: OnceLock::new(),
            announce: OnceLock::new(),
            booted_slot: OnceLock::new(),
        })
    }

    /// Once on the bus: the connection for the health check, and where to announce.
    pub fn set_bus(&self, c: zbus::Connection, announce: Box<dyn Announce>) {
        let _ = self.conn.set(c);
        let _ = self.announce.set(announce);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.cfg.dir.join(name)
    }

    /// The running release (`VERSION_ID` of os-release), "unknown" without one.
    pub fn os_version(&self) -> String {
        std::fs::read_to_string(&self.os_release)
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VERSION_ID=").map(|v| v.trim_matches('"').to_string())))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Saves the job durably (see `jobfile`).
    fn save(&self, job: &OtaJob) {
        if let Err(e) = self.file.save(job) {
            log::error!("saving the update job: {e}");
        }
        *self.job.lock().expect("job") = Some(job.clone());
    }

    fn archive(&self, job: &OtaJob) {
        if let Err(e) = self.file.archive(job) {
            log::error!("moving the update job into the history: {e}");
        }
        *self.job.lock().expect("job") = None;
    }

    pub fn history(&self) -> Vec<OtaJob> {
        self.file.history()
    }

    /// `version` is the committed release: while a job runs it is the version the job started
    /// from, so the uplink's `inform` on connect does not announce the new version before the
    /// health check committed it. That includes `installing`: after a power cut between the armed
    /// trial and the saved `rebooting`, the new slot boots with the job file still saying so.
    pub fn status(&self) -> OtaStatus {
        let job = self.job.lock().expect("job").clone();
        let version = match &job {
            Some(j)
                if matches!(j.state.as_str(), "downloading" | "installing" | "rebooting" | "verifying") && !j.from_version.is_empty() =>
            {
                j.from_version.clone()
            }
            _ => self.os_version(),
        };
        OtaStatus {
            state: job.as_ref().map(|j| j.state.clone()).unwrap_or_else(|| "idle".into()),
            version,
            // Never a round to the slot helper: Status must answer at once (the uplink gives it
            // 2 s before it tells the cloud its own build version instead). Until the agent's
            // start read the boot slots, the slot is not known yet.
            booted_slot: self.booted_slot.get().cloned().unwrap_or_else(|| "unknown (the boot slots are being read)".into()),
            job,
        }
    }

    async fn progress(&self, job: &mut OtaJob, step: i32, desc: &str) {
        job.step = step;
        job.desc = desc.to_string();
        job.updated_ms = now_ms();
        self.save(job);
        log::info!("job {} ({}): step {step}: {desc}", job.id, job.version);
        self.signal_progress(&job.id, step, desc).await;
    }

    async fn signal_progress(&self, job: &str, step: i32, desc: &str) {
        if let Some(a) = self.announce.get() {
            a.progress(job, step, desc).await;
        }
    }

    async fn version_changed(&self, version: &str, reason: &str) {
        if let Some(a) = self.announce.get() {
            a.version_changed(version, reason).await;
        }
    }

    /// Accepts a job if none is running and no slot is on trial.
    pub fn accept(&self, mut job: OtaJob) -> Result<OtaJob, String> {
        // The environment, not the job file, says whether a trial is pending: a new install
        // would write the other slot, which during a trial is the only good one. Read before the
        // job lock and in one round to the slot helper (a socket-activated root service, seconds
        // under QEMU): `Status` takes the same lock and must answer at once.
        let boot = Boot::read(&self.cfg.bootslot).map_err(|e| format!("cannot read the boot slots: {e}"))?;
        let mut cur = self.job.lock().expect("job");
        if let Some(j) = cur.as_ref() {
            return Err(format!("job {} ({}) is {}; one update at a time", j.id, j.version, j.state));
        }
        if boot.trial {
            return Err(format!(
                "slot {} is on trial (installed, not yet committed); a new update waits until its health check committed it or it was rolled back",
                boot.selected
            ));
        }
        job.id = format!("{}", now_ms());
        let running = self.os_version();
        let consented = !version::is_newer(&job.version, &running);
        if consented {
            self.downgrade_consent(&job, &running)?;
        }
        job.state = "downloading".into();
        job.from_version = running;
        // The status names the running slot when the kernel command line does; else the tool's
        // own `current`/`other` (their fallbacks) answer, as before.
        (job.from_slot, job.to_slot) = match boot.current.as_str() {
            "A" => ("A".into(), "B".into()),
            "B" => ("B".into(), "A".into()),
            _ => (
                bootslot::run(&self.cfg.bootslot, &["current"]).map_err(|e| format!("cannot tell the running slot: {e}"))?,
                bootslot::run(&self.cfg.bootslot, &["other"]).map_err(|e| format!("cannot tell the inactive slot: {e}"))?,
            ),
        };
        job.started_ms = now_ms();
        job.updated_ms = job.started_ms;
        *cur = Some(job.clone());
        *self.consented.lock().expect("consent") = consented.then(|| job.id.clone());
        Ok(job)
    }

    /// A release that is not newer than the running one is installed only with root's consent
    /// for exactly that version (a deliberate rollback); otherwise the refusal says why and how.
    fn downgrade_consent(&self, job: &OtaJob, running: &str) -> Result<(), String> {
        let path = &self.cfg.downgrade_consent;
        let what = if running == "unknown" {
            format!(
                "the running release is unknown (no VERSION_ID in {}), so version {} cannot be shown to be newer",
                self.os_release.display(),
                job.version
            )
        } else {
            format!("version {} is not newer than the running {running}", job.version)
        };
        let how = format!("for a deliberate rollback root on this box writes {} into {}", job.version, path.display());
        if !path.exists() {
            return Err(format!("{what}: downgrades and re-installs are refused ({how})"));
        }
        if let Err(e) = crate::trusted::consent_file(path) {
            log::warn!("ENOS-OTA: DOWNGRADE refused: {e}");
            return Err(format!("{what}, and the consent is not root's: {e}"));
        }
        let named = std::fs::read_to_string(path).map_err(|e| format!("{what}; {}: {e}", path.display()))?;
        if named.trim() != job.version {
            return Err(format!("{what}: the consent in {} names {:?}, not {} ({how})", path.display(), named.trim(), job.version));
        }
        log::warn!(
            "ENOS-OTA: DOWNGRADE consented by root ({}): installing version {} over the running {running} ({} job)",
            path.display(),
            job.version,
            job.source
        );
        Ok(())
    }

    /// Runs an accepted job up to the reboot.
    pub async fn run(self: Arc<Self>, mut job: OtaJob, local_file: Option<PathBuf>) {
        std::fs::create_dir_all(&self.cfg.dir).ok();
        self.save(&job);
        let bundle = match local_file {
            Some(p) => p,
            None => {
                let dest = self.path(&format!("bundle-{}.swu", sanitize(&job.version)));
                let t0 = now_ms();
                self.progress(&mut job, 0, "downloading").await;
                let lim = download::Limits {
                    expected: job.file_size,
                    max: self.cfg.max_bundle_bytes,
                    allow_http: self.cfg.allow_http,
                    attempts: 8,
                    keep_free: self.cfg.keep_free_bytes,
                };
                let url = job.url.clone().unwrap_or_default();
                let r = download::fetch(&url, &dest, &lim, |_, _| {}).await;
                if let Err(e) = r {
                    return self.fail(job, -2, &format!("download failed: {e}")).await;
                }
                job.timings_ms.insert("download".into(), now_ms() - t0);
                if let (Some(m), Some(s)) = (job.sign_method.clone(), job.sign.clone()) {
                    if let Err(e) = download::verify_digest(&dest, &m, &s) {
                        let _ = std::fs::remove_file(&dest);
                        return self.fail(job, -3, &format!("verification failed: {e}")).await;
                    }
                }
                self.progress(&mut job, 40, "downloaded and verified").await;
                dest
            }
        };
        // From here on the other slot is being written: never a fallback until committed.
        if let Err(e) = bootslot::run(&self.cfg.bootslot, &["invalidate-other"]) {
            let why = format!("cannot mark slot {} as being written: {e}", job.to_slot);
            return self.fail(job, -4, &why).await;
        }
        job.state = "installing".into();
        let msg = format!("installing into slot {}", job.to_slot);
        self.progress(&mut job, 45, &msg).await;
        let t0 = now_ms();
        let path = bundle.clone();
        let info = format!("enos-ota job {} version {}", job.id, job.version);
        // The daemon's progress: every 10 % of a handler's write goes to the journal and to the
        // cloud (steps 45..89), so a long install is visibly alive.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, String)>();
        let consented = self.consented.lock().expect("consent").take().filter(|id| *id == job.id).is_some();
        let running = job.from_version.clone();
        let install = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path).map_err(|e| swupdate_client::Error::Failed(format!("{}: {e}", path.display())))?;
            // The daemon refuses what is not newer (-N/-R at its start); root's consent lowers
            // that floor for this one install, and it goes back right after.
            let _floor = if consented { Some(DaemonFloor::lower(&running)?) } else { None };
            swupdate_client::install(&mut f, &info, |m| {
                log::debug!("swupdate: {:?} {}% {} {}", m.state, m.cur_percent, m.handler, m.info);
                if !m.handler.is_empty() {
                    let _ = tx.send((m.cur_percent, m.handler.clone()));
                }
            })
            .map_err(|e| {
                // The outcome names only the daemon's first notification ("Software Update
                // started !"); its reason (signature, hash mismatch ...) is further down the
                // queue that each status request pops.
                let why: Vec<String> = daemon_notifications()
                    .into_iter()
                    .filter(|m| {
                        let l = m.to_ascii_lowercase();
                        ["error", "fail", "mismatch", "signature", "verif", "refused", "downgrad", "reinstall"]
                            .iter()
                            .any(|w| l.contains(w))
                    })
                    .collect();
                if why.is_empty() {
                    return e;
                }
                let first = match e {
                    swupdate_client::Error::Failed(m) => m,
                    e => e.to_string(),
                };
                swupdate_client::Error::Failed(format!("{first}; the daemon says: {}", why.join("; ")))
            })
        });
        let follow = async {
            let mut last = None;
            while let Some((pct, hnd)) = rx.recv().await {
                if last == Some(pct / 10) {
                    continue;
                }
                last = Some(pct / 10);
                log::info!("ENOS-OTA: PROGRESS install pct={pct} hnd={hnd}");
                let step = 45 + (pct.min(100) as i32) * 44 / 100;
                self.signal_progress(&job.id, step, &format!("writing slot {}: {pct} %", job.to_slot)).await;
            }
        };
        let (r, ()) = tokio::join!(install, follow);
        let r = r.unwrap_or_else(|e| Err(swupdate_client::Error::Failed(e.to_string())));
        if job.url.is_some() {
            let _ = std::fs::remove_file(&bundle);
        }
        if let Err(e) = r {
            // SWUpdate checks the signature and every digest before writing: a refused bundle
            // left the inactive slot untouched and the boot selection unchanged.
            let text = e.to_string().to_ascii_lowercase();
            let refused = ["signature", "hash", "verif", "authenticat", "sha256", "digest", "downgrad", "reinstall"];
            let code = if refused.iter().any(|w| text.contains(w)) { -3 } else { -4 };
            return self.fail(job, code, &format!("install refused: {e}")).await;
        }
        job.timings_ms.insert("install".into(), now_ms() - t0);
        let (rss, peak) = memory_kib();
        log::info!(
            "ENOS-OTA: INSTALLED job={} version={} download_ms={} install_ms={} rss_kib={rss} peak_rss_kib={peak}",
            job.id,
            job.version,
            job.timings_ms.get("download").copied().unwrap_or(0),
            job.timings_ms["install"]
        );
        match bootslot::status(&self.cfg.bootslot) {
            Ok(s) if s.get("selected") == Some(&job.to_slot) && s.get("upgrade_available").map(String::as_str) == Some("1") => {}
            Ok(s) => {
                let msg = format!(
                    "the install did not arm slot {} (the boot environment says selected={}, upgrade_available={})",
                    job.to_slot,
                    s.get("selected").map_or("?", String::as_str),
                    s.get("upgrade_available").map_or("?", String::as_str)
                );
                return self.fail(job, -4, &msg).await;
            }
            Err(e) => return self.fail(job, -4, &e).await,
        }
        self.reboot_into_new_slot(&mut job).await;
    }

    /// The install armed the new slot: say so (90 %) and reboot into it.
    async fn reboot_into_new_slot(&self, job: &mut OtaJob) {
        job.state = "rebooting".into();
        job.timings_ms.insert("reboot_started_ms".into(), now_ms());
        let msg = format!("installed; rebooting into slot {}", job.to_slot);
        self.progress(job, 90, &msg).await;
        if self.cfg.reboot_after_install {
            self.reboot();
        }
    }

    pub fn reboot(&self) {
        log::info!("rebooting: {}", self.cfg.reboot_command.join(" "));
        match crate::trusted::command("reboot_command", &self.cfg.reboot_command) {
            Ok(mut cmd) => {
                if let Err(e) = cmd.spawn() {
                    log::error!("reboot_command {}: {e}", self.cfg.reboot_command[0]);
                }
            }
            Err(e) => log::error!("not rebooting: {e}"),
        }
    }

    async fn fail(&self, mut job: OtaJob, step: i32, why: &str) {
        log::error!("job {} ({}): {why}", job.id, job.version);
        job.state = "failed".into();
        self.end(job, step, why).await;
    }

    /// Ends the job: into the history first, then the last progress goes out, so a cloud that
    /// answers a final step with the next job finds the agent free.
    async fn end(&self, mut job: OtaJob, step: i32, desc: &str) {
        job.step = step;
        job.desc = desc.to_string();
        job.updated_ms = now_ms();
        log::info!("job {} ({}): {}: step {step}: {desc}", job.id, job.version, job.state);
        self.archive(&job);
        self.signal_progress(&job.id, step, desc).await;
    }

    /// After a boot (or a restart of the agent): finish what was started, as the bootloader
    /// environment says it stands (`resume::next`).
    pub async fn resume(self: Arc<Self>) {
        let boot = match Boot::read(&self.cfg.bootslot) {
            Ok(b) => b,
            Err(e) => {
                log::error!("ENOS-HEALTH: PROBLEM cannot read the boot slots: {e}");
                let job = self.job.lock().expect("job").clone();
                if let Some(job) = job {
                    self.fail(job, -1, &e).await;
                }
                return;
            }
        };
        let _ = self.booted_slot.set(boot.current.clone());
        let job = self.job.lock().expect("job").clone();
        let next = resume::next(job.as_ref(), &boot);
        let slot = &boot.current;
        // One `ENOS-HEALTH:` line per boot: the system tests (and a technician reading the
        // journal) see the verdict on the boot without asking over D-Bus.
        let Some(mut job) = job else {
            match next {
                Next::ReportFallback => {
                    // No job of ours, yet the bootloader (or an operator's rollback) came back to
                    // this slot: say so, then clear the flag (the contract of docs/boot-slots.md).
                    let why = format!("the bootloader returned to slot {slot} (no update job was running)");
                    log::warn!("ENOS-HEALTH: ROLLED-BACK slot={slot} version={} ({why})", self.os_version());
                    if let Err(e) = bootslot::run(&self.cfg.bootslot, &["commit"]) {
                        log::error!("clearing the rollback flag: {e}");
                    }
                    self.wait_cloud().await;
                    self.version_changed(&self.os_version(), &why).await;
                }
                Next::UnknownTrial => self.check_unrecorded_trial(&boot).await,
                _ => {
                    self.boot_came_up(&boot);
                    log::info!("ENOS-HEALTH: OK slot={slot} version={}", self.os_version());
                }
            }
            return;
        };
        if let Some(t) = job.timings_ms.remove("reboot_started_ms") {
            job.timings_ms.insert("reboot".into(), now_ms().saturating_sub(t));
        }
        match next {
            Next::CheckHealth => {}
            Next::AwaitReboot => {
                // The install armed the new slot, then the agent stopped before it rebooted.
                log::warn!("job {} ({}): slot {} is armed but not booted yet", job.id, job.version, job.to_slot);
                self.reboot_into_new_slot(&mut job).await;
                return;
            }
            Next::Interrupted => {
                // Cut short (power loss, crash) before the slot was armed: the old slot runs on.
                log::warn!("ENOS-HEALTH: OK slot={slot} version={} (an update was interrupted: job {} failed)", self.os_version(), job.id);
                self.wait_cloud().await;
                return self
                    .fail(job, -1, "interrupted before the install completed; the running slot is unchanged, the job can be sent again")
                    .await;
            }
            Next::RolledBack => {
                // The bootloader gave up on the new slot (panic, hang, no kernel), or the health
                // check sent it back.
                let why = if job.step < 0 {
                    format!("{}; back on slot {slot}", job.desc)
                } else {
                    format!("the new slot {} did not boot; the bootloader returned to slot {slot}", job.to_slot)
                };
                let _ = bootslot::run(&self.cfg.bootslot, &["commit"]);
                job.state = "rolled-back".into();
                log::warn!("ENOS-HEALTH: ROLLED-BACK slot={slot} version={} ({why})", self.os_version());
                // Right after the boot the uplink has no session yet: a progress sent now would be
                // dropped, and the cloud would never learn why its job failed.
                self.wait_cloud().await;
                self.end(job, -4, &why).await;
                return self.version_changed(&self.os_version(), &why).await;
            }
            Next::Committed => {
                log::info!("ENOS-HEALTH: COMMIT slot={slot} version={} (committed before the agent stopped)", job.version);
                job.state = "committed".into();
                let msg = format!("running version {} in slot {}", job.version, job.to_slot);
                let version = job.version.clone();
                self.wait_cloud().await;
                self.end(job, 100, &msg).await;
                return self.version_changed(&version, "update committed").await;
            }
            Next::Idle | Next::ReportFallback | Next::UnknownTrial | Next::Finished => {
                log::info!("ENOS-HEALTH: OK slot={slot} version={} (job {} is {})", self.os_version(), job.id, job.state);
                return;
            }
        }
        if job.state == "installing" {
            // The power went after SWUpdate armed the trial and before `rebooting` was saved.
            log::warn!(
                "job {} ({}): the job file says installing, the bootloader runs slot {slot} on trial: the install had completed",
                job.id,
                job.version
            );
        }
        job.state = "verifying".into();
        self.save(&job);
        let t0 = now_ms();
        self.wait_cloud().await;
        self.progress(&mut job, 95, "booted the new slot; checking health").await;
        let mut verdict = health::check(&self.cfg.health, self.conn.get()).await;
        if verdict.is_ok() && self.os_version() != job.version {
            verdict = Err(format!("the new slot runs version {}, the job asked for {}", self.os_version(), job.version));
        }
        job.timings_ms.insert("health".into(), now_ms() - t0);
        match verdict {
            Ok(()) => match bootslot::run(&self.cfg.bootslot, &["commit"]) {
                Ok(_) => {
                    log::info!("ENOS-HEALTH: COMMIT slot={} version={}", job.to_slot, job.version);
                    let t = |k: &str| job.timings_ms.get(k).copied().unwrap_or(0);
                    log::info!(
                        "ENOS-OTA: TIMINGS job={} version={} download_ms={} install_ms={} reboot_ms={} health_ms={}",
                        job.id,
                        job.version,
                        t("download"),
                        t("install"),
                        t("reboot"),
                        t("health")
                    );
                    job.state = "committed".into();
                    let msg = format!("running version {} in slot {}", job.version, job.to_slot);
                    let version = job.version.clone();
                    self.end(job, 100, &msg).await;
                    self.version_changed(&version, "update committed").await;
                }
                Err(e) => self.rollback_now(job, &format!("commit failed: {e}")).await,
            },
            Err(why) => self.rollback_now(job, &format!("health check failed: {why}")).await,
        }
    }

    /// A committed slot came up as far as the agent: reset the bootloader's counter (it counts
    /// every boot, and falls back to a known good other slot when a committed one stops coming
    /// up; docs/boot-slots.md). "Came up" is deliberately no more than this: a service that fails
    /// on a committed release is no reason to boot an older one.
    fn boot_came_up(&self, boot: &Boot) {
        if boot.trial || boot.current != boot.selected {
            return;
        }
        if let Err(e) = bootslot::run(&self.cfg.bootslot, &["commit"]) {
            log::error!("resetting the boot counter: {e}");
        }
    }

    /// This slot runs on trial and no job says why (the job file was lost, or written by a
    /// release this one cannot read): the same health check decides; it is never left pending.
    async fn check_unrecorded_trial(&self, boot: &Boot) {
        let slot = &boot.current;
        log::warn!("slot {slot} runs on trial without an update job on record; checking its health");
        match health::check(&self.cfg.health, self.conn.get()).await {
            Ok(()) => match bootslot::run(&self.cfg.bootslot, &["commit"]) {
                Ok(_) => {
                    log::info!("ENOS-HEALTH: COMMIT slot={slot} version={} (a trial without a job on record)", self.os_version());
                    self.wait_cloud().await;
                    self.version_changed(&self.os_version(), "update committed").await;
                }
                Err(e) => log::error!("ENOS-HEALTH: PROBLEM commit failed: {e}"),
            },
            Err(why) => {
                log::error!("ENOS-HEALTH: PROBLEM health check failed: {why}");
                log::error!("ENOS-HEALTH: ROLLBACK slot={slot} version={}; rebooting", self.os_version());
                if let Err(e) = bootslot::run(&self.cfg.bootslot, &["rollback"]) {
                    log::error!("rollback: {e}; the bootloader's counter will bring the other slot back");
                }
                self.reboot();
            }
        }
    }

    /// Waits (bounded by the health timeout) until the uplink's cloud session is up, so that what
    /// the agent reports right after a boot reaches the cloud. Gives up silently: the health
    /// check, not this wait, decides about the slot.
    async fn wait_cloud(&self) {
        let Some(conn) = self.conn.get() else { return };
        if !self.cfg.health.require_cloud {
            return;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(self.cfg.health.timeout_s);
        while tokio::time::Instant::now() < deadline {
            if let Some(state) = health::cloud_state(conn).await {
                if state == "connected" || state == "unconfigured" {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        log::warn!("no cloud session after {} s; reporting anyway", self.cfg.health.timeout_s);
    }

    async fn rollback_now(&self, mut job: OtaJob, why: &str) {
        log::error!("ENOS-HEALTH: PROBLEM {why}");
        log::error!("ENOS-HEALTH: ROLLBACK slot={} version={} -> {}; rebooting", job.to_slot, self.os_version(), job.from_slot);
        if let Err(e) = bootslot::run(&self.cfg.bootslot, &["rollback"]) {
            log::error!("rollback: {e}; the bootloader's counter will bring the old slot back");
        }
        job.state = "rebooting".into();
        job.desc = why.to_string();
        self.save(&job);
        self.progress(&mut job, -4, why).await;
        self.reboot();
    }

    /// Operator's rollback: boot the other slot.
    pub fn operator_rollback(&self) -> Result<String, String> {
        if let Some(j) = self.job.lock().expect("job").as_ref() {
            return Err(format!("job {} is {}; wait for it", j.id, j.state));
        }
        let out = bootslot::run(&self.cfg.bootslot, &["rollback"])?;
        self.reboot();
        Ok(format!("rebooting into the other slot ({out})"))
    }
}

/// The daemon's version floor lowered for one consented install; raised again to the running
/// release when dropped (whatever the install's outcome).
struct DaemonFloor {
    running: String,
}

impl DaemonFloor {
    /// "0" is below every version; `current` is set to a text no bundle version can be (make-bundle
    /// allows no spaces), so a consented re-install of the running release passes `-R` too.
    fn lower(running: &str) -> Result<DaemonFloor, swupdate_client::Error> {
        swupdate_client::set_version_range("0", "", "none (root consented)")?;
        Ok(DaemonFloor { running: running.to_string() })
    }
}

impl Drop for DaemonFloor {
    fn drop(&mut self) {
        if let Err(e) = swupdate_client::set_version_range(&self.running, "", &self.running) {
            log::error!(
                "the update daemon's version floor could not be raised again to {} ({e}); it returns at its next start",
                self.running
            );
        }
    }
}

/// What the swupdate daemon still has queued for status requests (oldest first), at most 256.
fn daemon_notifications() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Each request pops one message; an empty queue answers without a description (None).
    // Repeated messages ("Found file" per file) are kept once.
    for _ in 0..256 {
        match swupdate_client::last_error() {
            Some(m) if out.contains(&m) => {}
            Some(m) => out.push(m),
            None => break,
        }
    }
    out
}

/// (VmRSS, VmHWM) of this process in KiB: what an install costs the agent in memory.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (get("VmRSS:"), get("VmHWM:"))
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::OtaHealth;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A box below the bootloader: the layer's real `enos-bootslot` on a GRUB block in a temp
    /// dir, a kernel command line naming the booted slot, an os-release, a reboot that leaves a
    /// mark. Health: no units, no bus checks (these tests are about the job's state).
    pub struct Box_ {
        pub dir: tempfile::TempDir,
    }

    impl Box_ {
        pub fn new() -> Box_ {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-bsp/enos-bootslot/files/enos-bootslot");
            let tool = tool.canonicalize().expect("the layer's enos-bootslot");
            let wrapper = format!(
                "#!/bin/sh\nENOS_BOOTSLOT_BACKEND=grub ENOS_BOOTSLOT_GRUBENV={d}/grubenv ENOS_BOOTSLOT_CMDLINE={d}/cmdline exec sh {t} \"$@\"\n",
                d = d.display(),
                t = tool.display()
            );
            std::fs::write(d.join("bootslot"), wrapper).unwrap();
            std::fs::set_permissions(d.join("bootslot"), std::fs::Permissions::from_mode(0o755)).unwrap();
            let b = Box_ { dir };
            b.tool(&["env-set", "enos_slot=A", "upgrade_available=0", "bootcount=0", "bootlimit=3", "enos_rollback=0"]);
            b.boot("A", "1.0.0");
            b
        }

        pub fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        pub fn tool(&self, args: &[&str]) -> String {
            bootslot::run(&self.path("bootslot"), args).unwrap()
        }

        /// The running slot and release, as a boot would set them.
        pub fn boot(&self, slot: &str, version: &str) {
            std::fs::write(self.path("cmdline"), format!("root=PARTLABEL=enos-root-{} ro\n", slot.to_lowercase())).unwrap();
            std::fs::write(self.path("os-release"), format!("ID=enos\nVERSION_ID=\"{version}\"\n")).unwrap();
            let _ = std::fs::remove_file(self.path("rebooted"));
        }

        pub fn config(&self) -> OtaConfig {
            OtaConfig {
                dir: self.path("ota"),
                bootslot: self.path("bootslot"),
                reboot_command: vec!["touch".into(), self.path("rebooted").display().to_string()],
                health: OtaHealth { units: vec![], require_cloud: false, require_collecting: false, hook: None, timeout_s: 10 },
                downgrade_consent: self.path("allow-downgrade"),
                ..OtaConfig::default()
            }
        }

        /// The agent as it starts on this boot (reads the job file).
        pub fn agent(&self) -> Arc<Agent> {
            Agent::with_os_release(self.config(), self.path("os-release"))
        }

        pub fn status(&self) -> Boot {
            Boot::read(&self.path("bootslot")).unwrap()
        }
    }

    fn job(version: &str) -> OtaJob {
        OtaJob { source: "local".into(), version: version.into(), ..Default::default() }
    }

    /// Issue 11 finding 6: power cut after SWUpdate armed the trial (its last step) and before
    /// the agent saved `rebooting`. The new slot boots on trial with a job file saying
    /// `installing`: the agent must check its health and commit it, not call the job interrupted
    /// and leave the trial pending.
    #[tokio::test]
    async fn power_cut_between_armed_trial_and_saved_rebooting_is_checked_and_committed() {
        let b = Box_::new();
        let a = b.agent();
        let mut j = a.accept(job("2.0.0")).unwrap();
        assert_eq!((j.from_slot.as_str(), j.to_slot.as_str()), ("A", "B"));
        j.state = "installing".into();
        a.save(&j);
        // What SWUpdate's bootenv does at the end of the install; then the power goes.
        b.tool(&["set-next", "B"]);
        drop(a);
        b.boot("B", "2.0.0");
        let a = b.agent();
        // The uplink asks on connect, maybe before the agent's start looked at the job: the
        // committed release, not the one on trial (the QEMU tier's scenario h saw 2.0.0 informed
        // before progress 100).
        assert_eq!(a.status().version, "1.0.0", "the trial's version is not reported before its commit");
        a.clone().resume().await;
        assert_eq!(a.status().version, "2.0.0");
        let last = a.history().pop().expect("the job ended");
        assert_eq!((last.state.as_str(), last.step), ("committed", 100), "{last:?}");
        let st = b.status();
        assert!(!st.trial && st.current == "B" && st.selected == "B", "slot B committed: {st:?}");
        // And the next job targets the other slot again, from the committed one.
        let next = a.accept(job("3.0.0")).unwrap();
        assert_eq!((next.from_slot.as_str(), next.to_slot.as_str()), ("B", "A"));
    }

    /// Finding 6: while a slot is on trial, a new job (which would write the other slot, the
    /// only good one) is refused in words, whatever the job file says.
    #[tokio::test]
    async fn a_new_job_is_refused_while_a_slot_is_on_trial() {
        let b = Box_::new();
        // Booted into the trial, no job on record (the file lost, or unreadable).
        b.tool(&["set-next", "B"]);
        b.boot("B", "2.0.0");
        let e = b.agent().accept(job("3.0.0")).unwrap_err();
        assert!(e.contains("slot B is on trial") && e.contains("not yet committed"), "{e}");
        // Armed, not booted yet.
        b.boot("A", "1.0.0");
        let e = b.agent().accept(job("3.0.0")).unwrap_err();
        assert!(e.contains("slot B is on trial"), "{e}");
        // Committed: accepted again.
        b.boot("B", "2.0.0");
        b.tool(&["commit"]);
        assert!(b.agent().accept(job("3.0.0")).is_ok());
    }

    /// Finding 6: the agent restarted after the install armed the trial, before it rebooted:
    /// it reboots into the trial instead of calling the new slot "did not boot".
    #[tokio::test]
    async fn restart_after_the_install_armed_the_trial_reboots_into_it() {
        let b = Box_::new();
        let a = b.agent();
        let mut j = a.accept(job("2.0.0")).unwrap();
        j.state = "installing".into();
        a.save(&j);
        b.tool(&["set-next", "B"]);
        drop(a);
        let a = b.agent();
        a.clone().resume().await;
        let st = a.status();
        assert_eq!(st.state, "rebooting", "{st:?}");
        for _ in 0..100 {
            if b.path("rebooted").exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(b.path("rebooted").exists(), "the reboot was asked for");
        assert!(b.status().armed_other(), "the trial stays armed");
    }

    /// Finding 6: a trial with no job on record is checked and committed, never left pending.
    #[tokio::test]
    async fn a_trial_without_a_job_on_record_is_checked() {
        let b = Box_::new();
        b.tool(&["set-next", "B"]);
        b.boot("B", "2.0.0");
        std::fs::create_dir_all(b.path("ota")).unwrap();
        std::fs::write(b.path("ota/job.json"), r#"{"format": 9, "compat": 9, "job": {}}"#).unwrap();
        let a = b.agent();
        a.clone().resume().await;
        assert!(!b.status().trial, "{:?}", b.status());
    }

    /// Issue 11 finding 3: a release that is not newer than the running one (older, or the same)
    /// is refused before anything is downloaded, and the refusal says how a deliberate rollback
    /// is done.
    #[tokio::test]
    async fn a_release_not_newer_than_the_running_one_is_refused_in_words() {
        let b = Box_::new();
        let a = b.agent();
        let consent = b.path("allow-downgrade");
        for v in ["0.9.0", "1.0.0", "1.0.0-rc.1"] {
            let e = a.accept(job(v)).unwrap_err();
            assert!(
                e.starts_with(&format!("version {v} is not newer than the running 1.0.0: downgrades and re-installs are refused")),
                "{e}"
            );
            assert!(e.contains(&format!("root on this box writes {v} into {}", consent.display())), "{e}");
        }
        assert!(a.accept(job("1.0.1")).is_ok());
    }

    /// Finding 3: root's consent names the one release it allows; a consent anyone could have
    /// written counts for nothing.
    #[tokio::test]
    async fn root_consent_for_exactly_that_version_allows_a_rollback() {
        let b = Box_::new();
        let consent = b.path("allow-downgrade");
        std::fs::write(&consent, "0.8.0\n").unwrap();
        let e = b.agent().accept(job("0.9.0")).unwrap_err();
        assert!(e.contains("names \"0.8.0\", not 0.9.0"), "{e}");
        std::fs::write(&consent, "0.9.0\n").unwrap();
        std::fs::set_permissions(&consent, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = b.agent().accept(job("0.9.0")).unwrap_err();
        assert!(e.contains("the consent is not root's") && e.contains("writable by everyone"), "{e}");
        std::fs::set_permissions(&consent, std::fs::Permissions::from_mode(0o644)).unwrap();
        let a = b.agent();
        let j = a.accept(job("0.9.0")).unwrap();
        assert_eq!(a.consented.lock().unwrap().as_deref(), Some(j.id.as_str()), "the install lowers the daemon's floor");
    }

    /// Issue 11 finding 5: a committed slot's boot counter is reset once the boot came up as far
    /// as the agent; before an install the target slot stops being a fallback.
    #[tokio::test]
    async fn a_boot_that_came_up_resets_the_counter_and_an_install_invalidates_the_target() {
        let b = Box_::new();
        b.tool(&["env-set", "bootcount=2", "enos_good_A=1", "enos_good_B=1"]);
        let a = b.agent();
        a.clone().resume().await;
        assert_eq!(b.tool(&["env-get", "bootcount"]), "0");
        // An install (of a file that is no bundle: it fails after the slot was marked).
        let bundle = b.path("not-a-bundle.swu");
        std::fs::write(&bundle, "x").unwrap();
        let j = a.accept(job("2.0.0")).unwrap();
        a.clone().run(j, Some(bundle)).await;
        let st = b.tool(&["status"]);
        assert!(st.contains("good_A=1") && st.contains("good_B=0"), "{st}");
    }

    /// The uplink asks `Status` on every connect and waits 2 s; without root every question to
    /// the slots starts the root helper's unit (seconds on a loaded or slow box, and the QEMU
    /// tier's uplink informed its fallback version). The booted slot is read once at start.
    #[tokio::test]
    async fn status_after_the_start_does_not_ask_the_slot_tool() {
        let b = Box_::new();
        let a = b.agent();
        // Before the start read the slots (the uplink asks as soon as both are on the bus): the
        // version at once, no round to a slot helper that may be slow to start.
        let tool = std::fs::read(b.path("bootslot")).unwrap();
        std::fs::write(b.path("bootslot"), "#!/bin/sh\nsleep 30\n").unwrap();
        let asked = std::time::Instant::now();
        let st = a.status();
        assert!(asked.elapsed() < std::time::Duration::from_secs(5), "Status waited for the slot tool");
        assert!(st.booted_slot.starts_with("unknown"), "{}", st.booted_slot);
        assert_ne!(st.version, "unknown");
        std::fs::write(b.path("bootslot"), tool).unwrap();
        a.clone().resume().await;
        std::fs::write(b.path("bootslot"), "#!/bin/sh\necho the slot helper was asked >&2\nexit 1\n").unwrap();
        assert_eq!(a.status().booted_slot, "A");
    }
}
