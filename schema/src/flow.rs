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
/// `waiting` are the members not started yet (a frozen member is not waiting: it holds the flow
/// until unfrozen). `states` are the day's statuses by name; names it lacks (members of another
/// flow without a run yet) count as not ended.
///
/// A member whose dependency can no longer hold keeps waiting while something failed, so that an
/// operator who modifies the failed status lets it proceed; the flow then ends Failed. When
/// nothing failed, such members are skipped with the reason (which may let others start), and
/// the flow ends Success once nothing is running.
pub fn step(members: &[Member], waiting: &BTreeSet<String>, states: &HashMap<String, RunStatus>) -> Step {
    let mut states = states.clone();
    let mut waiting = waiting.clone();
    let mut actions = Vec::new();
    let readiness = |m: &Member, states: &HashMap<String, RunStatus>| {
        m.dependency.as_ref().map_or(Readiness::Ready, |d| d.evaluate(states))
    };
    let status_of =
        |m: &Member, states: &HashMap<String, RunStatus>| states.get(&m.name).copied().unwrap_or(RunStatus::Idle);
    // Whether something still runs, and whether something failed, once nothing more follows now.
    let (active, failed) = loop {
        let ready: Vec<&Member> =
            members.iter().filter(|m| waiting.contains(&m.name) && readiness(m, &states) == Readiness::Ready).collect();
        if !ready.is_empty() {
            for m in ready {
                actions.push(FlowAction::Start(m.name.clone()));
                states.insert(m.name.clone(), RunStatus::Triggered);
                waiting.remove(&m.name);
            }
            continue;
        }
        let active = members.iter().any(|m| !waiting.contains(&m.name) && !status_of(m, &states).is_final());
        let failed = members.iter().any(|m| matches!(status_of(m, &states), RunStatus::Failed | RunStatus::Terminated));
        if active || failed {
            break (active, failed);
        }
        let never: Vec<&Member> =
            members.iter().filter(|m| waiting.contains(&m.name) && readiness(m, &states) == Readiness::Never).collect();
        if never.is_empty() {
            break (active, failed);
        }
        for m in never {
            let expression = m.dependency.as_ref().map(ToString::to_string).unwrap_or_default();
            actions.push(FlowAction::Skip(m.name.clone(), Reason::DependencyNotMet { expression }));
            states.insert(m.name.clone(), RunStatus::Skipped);
            waiting.remove(&m.name);
        }
    };
    let outcome = if active {
        None
    } else if failed {
        Some(RunStatus::Failed)
    } else if waiting.is_empty() {
        Some(RunStatus::Success)
    } else {
        // Still waiting on another flow's members (groups without a run yet today).
        None
    };
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
        assert_eq!(log, vec!["start extract", "start left", "start right", "start cleanup"]);
        // load keeps waiting: an operator who sets right to Success lets it run.
        assert_eq!(outcome, Some(Failed));
    }

    #[test]
    fn after_a_failure_dependants_wait_and_the_group_fails() {
        let m = members(&[("a", None), ("b", Some("S:a")), ("c", Some("S:b"))]);
        let (log, outcome) = play(&m, &[("a", Failed)]);
        assert_eq!(log, vec!["start a"]);
        assert_eq!(outcome, Some(Failed));
    }

    #[test]
    fn skips_cascade_and_may_let_others_start() {
        let m = members(&[("a", None), ("b", Some("F:a")), ("c", Some("S:b")), ("d", Some("E:c"))]);
        let (log, outcome) = play(&m, &[]);
        assert_eq!(
            log,
            vec![
                "start a",
                "skip b (dependency can no longer hold: F:a)",
                "skip c (dependency can no longer hold: S:b)",
                "start d"
            ]
        );
        assert_eq!(outcome, Some(Success));
    }

    #[test]
    fn terminated_counts_as_a_failure() {
        let m = members(&[("a", None), ("b", None)]);
        assert_eq!(play(&m, &[("b", Terminated)]).1, Some(Failed));
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
        // Failed a: b waits and the flow has failed.
        let s = step(&m, &waiting, &HashMap::from([("a".to_string(), Failed)]));
        assert_eq!((s.actions.len(), s.outcome), (0, Some(Failed)));
        // Modified to Success before the step: b starts.
        let s = step(&m, &waiting, &HashMap::from([("a".to_string(), Success)]));
        assert_eq!((s.actions, s.outcome), (vec![FlowAction::Start("b".into())], None));
    }

    #[test]
    fn a_group_whose_dependency_cannot_hold_is_skipped() {
        let m = members(&[("nightly", Some("S:feeds"))]);
        let waiting = BTreeSet::from(["nightly".to_string()]);
        let s = step(&m, &waiting, &HashMap::from([("feeds".to_string(), Failed)]));
        assert!(matches!(&s.actions[..], [FlowAction::Skip(n, Reason::DependencyNotMet { .. })] if n == "nightly"));
        assert_eq!(s.outcome, Some(Success), "the flow of one skipped group ends");
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
