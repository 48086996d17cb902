//! The pure machine of a flow: the tasks of one group run, or the groups of one run date. Given
//! who is waiting and the states of the day, it says who starts, who can never start (skipped
//! with the reason) and how the whole ended. Group actors feed it every change; tests feed it
//! states directly.

use crate::dependency::{DependencyExpr, Readiness};
use crate::run::{Reason, RunStatus};
use std::collections::{BTreeSet, HashMap};

/// One member of a flow: a task of a group, or a group of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub dependency: Option<DependencyExpr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction {
    /// Its dependency holds (or it has none): start it now.
    Start(String),
    /// Its dependency can no longer hold: record it as skipped.
    Skip(String, Reason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub actions: Vec<FlowAction>,
    /// Set once nothing more can happen: Success when every member succeeded or was skipped,
    /// Failed when one failed or was terminated.
    pub outcome: Option<RunStatus>,
}

/// Decides what follows from the current states.
///
/// `waiting` are the members not started yet (a frozen member is not waiting: it holds until
/// unfrozen). `states` are the day's statuses by name; names it lacks (another flow's members,
/// not yet known) count as not ended. Skips cascade within one step: a member that can never
/// start may make its dependants never start too.
pub fn step(members: &[Member], waiting: &BTreeSet<String>, states: &HashMap<String, RunStatus>) -> Step {
    let mut states = states.clone();
    let mut waiting = waiting.clone();
    let mut actions = Vec::new();
    loop {
        let mut changed = false;
        for m in members {
            if !waiting.contains(&m.name) {
                continue;
            }
            let readiness = m.dependency.as_ref().map_or(Readiness::Ready, |d| d.evaluate(&states));
            match readiness {
                Readiness::Ready => {
                    actions.push(FlowAction::Start(m.name.clone()));
                    states.insert(m.name.clone(), RunStatus::Triggered);
                }
                Readiness::Never => {
                    let expression = m.dependency.as_ref().map(ToString::to_string).unwrap_or_default();
                    actions.push(FlowAction::Skip(m.name.clone(), Reason::DependencyNotMet { expression }));
                    states.insert(m.name.clone(), RunStatus::Skipped);
                }
                Readiness::Waiting => continue,
            }
            waiting.remove(&m.name);
            changed = true;
        }
        if !changed {
            break;
        }
    }
    let status_of = |m: &Member| states.get(&m.name).copied().unwrap_or(RunStatus::Idle);
    // Within a flow whose names are all its own members, the cascade above settles every waiting
    // member once the others end; so the flow ends exactly when every member has ended.
    let all_ended = members.iter().all(|m| !waiting.contains(&m.name) && status_of(m).is_final());
    let failed = members.iter().any(|m| matches!(status_of(m), RunStatus::Failed | RunStatus::Terminated));
    let outcome = all_ended.then_some(if failed { RunStatus::Failed } else { RunStatus::Success });
    Step { actions, outcome }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus::*;

    fn members(spec: &[(&str, Option<&str>)]) -> Vec<Member> {
        spec.iter()
            .map(|(n, d)| Member { name: n.to_string(), dependency: d.map(|d| DependencyExpr::parse(d).unwrap()) })
            .collect()
    }

    fn diamond() -> Vec<Member> {
        members(&[
            ("extract", None),
            ("left", Some("S:extract")),
            ("right", Some("S:extract")),
            ("load", Some("S:left and S:right")),
            ("cleanup", Some("F:left or F:right")),
        ])
    }

    /// Runs a flow to its end: each started member ends as `ends` says (default success).
    fn play(members: &[Member], ends: &[(&str, RunStatus)]) -> (Vec<String>, Option<RunStatus>) {
        let mut waiting: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
        let mut states = HashMap::new();
        let mut log = Vec::new();
        for _ in 0..20 {
            let s = step(members, &waiting, &states);
            if s.actions.is_empty() {
                return (log, s.outcome);
            }
            for a in s.actions {
                match a {
                    FlowAction::Start(n) => {
                        waiting.remove(&n);
                        let end = ends.iter().find(|(e, _)| *e == n).map_or(Success, |(_, s)| *s);
                        log.push(format!("start {n}"));
                        states.insert(n, end);
                    }
                    FlowAction::Skip(n, r) => {
                        waiting.remove(&n);
                        log.push(format!("skip {n} ({r})"));
                        states.insert(n, Skipped);
                    }
                }
            }
        }
        (log, None)
    }

    #[test]
    fn only_members_without_dependencies_start_first() {
        let m = diamond();
        let waiting = m.iter().map(|m| m.name.clone()).collect();
        let s = step(&m, &waiting, &HashMap::new());
        assert_eq!(s.actions, vec![FlowAction::Start("extract".into())]);
        assert_eq!(s.outcome, None);
    }

    #[test]
    fn a_diamond_that_succeeds_skips_the_failure_branch() {
        let (log, outcome) = play(&diamond(), &[]);
        assert_eq!(
            log,
            vec![
                "start extract",
                "start left",
                "start right",
                "start load",
                "skip cleanup (dependency can no longer hold: F:left or F:right)"
            ]
        );
        assert_eq!(outcome, Some(Success));
    }

    #[test]
    fn a_failing_branch_runs_the_handler_and_fails_the_group() {
        let (log, outcome) = play(&diamond(), &[("right", Failed)]);
        assert_eq!(
            log,
            vec![
                "start extract",
                "start left",
                "start right",
                "skip load (dependency can no longer hold: S:left and S:right)",
                "start cleanup"
            ]
        );
        assert_eq!(outcome, Some(Failed));
    }

    #[test]
    fn skips_cascade_and_a_failure_with_nothing_left_fails() {
        let m = members(&[("a", None), ("b", Some("S:a")), ("c", Some("S:b"))]);
        let (log, outcome) = play(&m, &[("a", Failed)]);
        assert_eq!(
            log,
            vec![
                "start a",
                "skip b (dependency can no longer hold: S:a)",
                "skip c (dependency can no longer hold: S:b)"
            ]
        );
        assert_eq!(outcome, Some(Failed));
    }

    #[test]
    fn or_proceeds_on_either_and_ended_accepts_any_end() {
        let m = members(&[("a", None), ("b", None), ("c", Some("S:a or S:b")), ("d", Some("E:a and E:b"))]);
        let (log, outcome) = play(&m, &[("a", Failed), ("b", Success)]);
        assert_eq!(log, vec!["start a", "start b", "start c", "start d"]);
        assert_eq!(outcome, Some(Failed), "a failed, so the group fails although the rest ran");
    }

    #[test]
    fn a_frozen_or_running_member_holds_the_outcome() {
        let m = members(&[("a", None), ("b", Some("S:a"))]);
        // a is frozen: not waiting, not ended.
        let s = step(&m, &BTreeSet::from(["b".to_string()]), &HashMap::from([("a".to_string(), Frozen)]));
        assert_eq!((s.actions.len(), s.outcome), (0, None));
        let s = step(&m, &BTreeSet::from(["b".to_string()]), &HashMap::from([("a".to_string(), Running)]));
        assert_eq!((s.actions.len(), s.outcome), (0, None));
    }

    #[test]
    fn modify_status_lets_dependants_proceed() {
        let m = members(&[("a", None), ("b", Some("S:a"))]);
        let waiting = BTreeSet::from(["b".to_string()]);
        // Failed a: b can never start (its only dependency names a member that ended failed).
        let s = step(&m, &waiting, &HashMap::from([("a".to_string(), Failed)]));
        assert!(matches!(&s.actions[..], [FlowAction::Skip(n, _)] if n == "b"));
        // Modified to Success before the step: b starts.
        let s = step(&m, &waiting, &HashMap::from([("a".to_string(), Success)]));
        assert_eq!(s.actions, vec![FlowAction::Start("b".into())]);
    }

    #[test]
    fn names_outside_the_flow_keep_waiting() {
        // Groups of a run date: "nightly" waits on "feeds", which has no run yet today.
        let m = members(&[("nightly", Some("S:feeds"))]);
        let waiting = BTreeSet::from(["nightly".to_string()]);
        let s = step(&m, &waiting, &HashMap::new());
        assert_eq!((s.actions.len(), s.outcome), (0, None));
        let s = step(&m, &waiting, &HashMap::from([("feeds".to_string(), Success)]));
        assert_eq!(s.actions, vec![FlowAction::Start("nightly".into())]);
    }
}
