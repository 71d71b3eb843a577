//! After a start of the agent (a boot, or a restart of the service): where does the job stand?
//!
//! The bootloader environment decides, not the job file: the file is saved after each step, so a
//! power cut can leave it one step behind what SWUpdate and the bootloader already did. The case
//! that matters: SWUpdate armed the trial (its last act), the power went before the agent saved
//! `rebooting`; the next boot runs the new slot on trial while the file still says `installing`.
//! Taking the file's word would skip the health check and the commit, and a next job would then
//! write the only good slot.

use crate::bootslot::Boot;
use enos_model::device::OtaJob;

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing pending.
    Idle,
    /// No job, yet the bootloader (or an operator's rollback) came back to this slot.
    ReportFallback,
    /// No job the agent can read, yet this slot runs on trial: check its health all the same.
    UnknownTrial,
    /// The job's slot runs on trial: check its health, then commit or roll back.
    CheckHealth,
    /// The install armed the other slot and this boot has not left yet: reboot (or wait for one).
    AwaitReboot,
    /// Cut short before the trial was armed: the running slot is unchanged.
    Interrupted,
    /// The trial did not last: the old slot runs again.
    RolledBack,
    /// The commit was done before the cut; only the job's end was not recorded.
    Committed,
    /// A job in a final state (normally archived at once): nothing to do.
    Finished,
}

pub fn next(job: Option<&OtaJob>, boot: &Boot) -> Next {
    let Some(job) = job else {
        return if boot.on_trial() {
            Next::UnknownTrial
        } else if boot.rollback {
            Next::ReportFallback
        } else {
            Next::Idle
        };
    };
    let state = job.state.as_str();
    if !matches!(state, "downloading" | "installing" | "rebooting" | "verifying") {
        return Next::Finished;
    }
    let installed = matches!(state, "installing" | "rebooting" | "verifying");
    if installed && boot.current == job.to_slot && boot.on_trial() {
        Next::CheckHealth
    } else if installed && boot.current == job.from_slot && boot.armed_other() && boot.selected == job.to_slot {
        Next::AwaitReboot
    } else if state == "verifying" && boot.current == job.to_slot && boot.selected == job.to_slot && !boot.trial {
        Next::Committed
    } else if matches!(state, "downloading" | "installing") {
        Next::Interrupted
    } else {
        Next::RolledBack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str) -> OtaJob {
        OtaJob { state: state.into(), from_slot: "A".into(), to_slot: "B".into(), ..Default::default() }
    }

    fn boot(current: &str, selected: &str, trial: bool, rollback: bool) -> Boot {
        Boot { current: current.into(), selected: selected.into(), trial, rollback }
    }

    /// Issue 11 finding 6: the power went after SWUpdate armed the trial and before the agent
    /// saved `rebooting`. The new slot booted on trial: its health must be checked.
    #[test]
    fn power_cut_between_armed_and_saved_rebooting_checks_the_new_slot() {
        assert_eq!(next(Some(&job("installing")), &boot("B", "B", true, false)), Next::CheckHealth);
        assert_eq!(next(Some(&job("rebooting")), &boot("B", "B", true, false)), Next::CheckHealth);
        assert_eq!(next(Some(&job("verifying")), &boot("B", "B", true, false)), Next::CheckHealth);
    }

    #[test]
    fn armed_but_not_rebooted_yet_waits_for_the_reboot() {
        // The agent restarted (crash, service restart) after the install armed slot B.
        assert_eq!(next(Some(&job("installing")), &boot("A", "B", true, false)), Next::AwaitReboot);
        assert_eq!(next(Some(&job("rebooting")), &boot("A", "B", true, false)), Next::AwaitReboot);
    }

    #[test]
    fn cut_before_the_trial_was_armed_is_an_interrupted_job() {
        assert_eq!(next(Some(&job("downloading")), &boot("A", "A", false, false)), Next::Interrupted);
        assert_eq!(next(Some(&job("installing")), &boot("A", "A", false, false)), Next::Interrupted);
    }

    #[test]
    fn back_on_the_old_slot_is_a_rollback() {
        // The bootloader gave up on B, or the health check rolled back.
        assert_eq!(next(Some(&job("rebooting")), &boot("A", "A", false, true)), Next::RolledBack);
        assert_eq!(next(Some(&job("verifying")), &boot("A", "A", false, true)), Next::RolledBack);
    }

    #[test]
    fn cut_after_the_commit_finishes_the_job_as_committed() {
        assert_eq!(next(Some(&job("verifying")), &boot("B", "B", false, false)), Next::Committed);
    }

    #[test]
    fn without_a_job_the_environment_still_counts() {
        assert_eq!(next(None, &boot("A", "A", false, false)), Next::Idle);
        assert_eq!(next(None, &boot("A", "A", false, true)), Next::ReportFallback);
        // A trial nobody recorded (the job file lost or of a newer format): never left as is.
        assert_eq!(next(None, &boot("B", "B", true, false)), Next::UnknownTrial);
        assert_eq!(next(Some(&job("committed")), &boot("B", "B", false, false)), Next::Finished);
    }
}
