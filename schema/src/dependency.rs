//! Dependency expressions over same-day states (`(S:extract) and ((S:load) or (F:fallback))`):
//! parsing with precise error positions, three-valued evaluation, and cycle detection.

use crate::error::FieldError;
use crate::run::RunStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// The state a dependency waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateLetter {
    /// `S`: succeeded.
    Success,
    /// `F`: failed (after its last attempt).
    Failed,
    /// `T`: terminated by an operator.
    Terminated,
    /// `K`: skipped (holiday, missed while down).
    Skipped,
    /// `E`: ended, whatever the outcome.
    Ended,
}

impl StateLetter {
    fn parse(c: char) -> Option<Self> {
        Some(match c.to_ascii_uppercase() {
            'S' => Self::Success,
            'F' => Self::Failed,
            'T' => Self::Terminated,
            'K' => Self::Skipped,
            'E' => Self::Ended,
            _ => return None,
        })
    }

    pub fn letter(self) -> char {
        match self {
            Self::Success => 'S',
            Self::Failed => 'F',
            Self::Terminated => 'T',
            Self::Skipped => 'K',
            Self::Ended => 'E',
        }
    }

    /// Whether a final status satisfies this letter.
    fn satisfied_by(self, status: RunStatus) -> bool {
        match self {
            Self::Success => status == RunStatus::Success,
            Self::Failed => status == RunStatus::Failed,
            Self::Terminated => status == RunStatus::Terminated,
            Self::Skipped => status == RunStatus::Skipped,
            Self::Ended => status.is_final(),
        }
    }
}

/// A parsed dependency expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyExpr {
    State { state: StateLetter, name: String },
    And(Box<DependencyExpr>, Box<DependencyExpr>),
    Or(Box<DependencyExpr>, Box<DependencyExpr>),
}

/// The longest expression accepted, in characters.
pub const MAX_CHARS: usize = 4096;
/// The deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 32;
/// The most states one expression may name.
pub const MAX_STATES: usize = 256;

/// A syntax error, with the 0-based character offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencySyntaxError {
    pub position: usize,
    pub message: String,
}

impl DependencySyntaxError {
    pub fn into_field_error(self) -> FieldError {
        FieldError::new(
            "dependency",
            "dependency_syntax",
            format!("at character {}: {}", self.position + 1, self.message),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Atom(StateLetter, String),
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, DependencySyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' || c == ')' {
            out.push((i, if c == '(' { Tok::LParen } else { Tok::RParen }));
            i += 1;
            continue;
        }
        if c == '&' || c == '|' {
            if chars.get(i + 1) == Some(&c) {
                out.push((i, if c == '&' { Tok::And } else { Tok::Or }));
                i += 2;
                continue;
            }
            return Err(DependencySyntaxError { position: i, message: format!("expected '{c}{c}'") });
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i == start {
            return Err(DependencySyntaxError { position: i, message: format!("unexpected character {c:?}") });
        }
        let word: String = chars[start..i].iter().collect();
        if chars.get(i) == Some(&':') {
            if word.chars().count() != 1 {
                return Err(DependencySyntaxError {
                    position: start,
                    message: format!("{word:?} is not a state letter (S, F, T, K or E)"),
                });
            }
            let state =
                StateLetter::parse(word.chars().next().unwrap_or(' ')).ok_or_else(|| DependencySyntaxError {
                    position: start,
                    message: format!("{word:?} is not a state letter (S, F, T, K or E)"),
                })?;
            i += 1;
            let name_start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if i == name_start {
                return Err(DependencySyntaxError {
                    position: name_start,
                    message: "expected a task or group name after ':'".into(),
                });
            }
            out.push((start, Tok::Atom(state, chars[name_start..i].iter().collect())));
            continue;
        }
        match word.to_ascii_lowercase().as_str() {
            "and" => out.push((start, Tok::And)),
            "or" => out.push((start, Tok::Or)),
            _ => {
                return Err(DependencySyntaxError {
                    position: start,
                    message: format!("expected STATE:name, 'and', 'or' or a parenthesis, found {word:?}"),
                })
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    /// Parentheses open around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(p, _)| *p)
    }

    fn expr(&mut self) -> Result<DependencyExpr, DependencySyntaxError> {
        let mut left = self.term()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = DependencyExpr::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<DependencyExpr, DependencySyntaxError> {
        let mut left = self.factor()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = DependencyExpr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<DependencyExpr, DependencySyntaxError> {
        let at = self.at();
        match self.toks.get(self.pos).map(|(_, t)| t.clone()) {
            Some(Tok::Atom(state, name)) => {
                self.pos += 1;
                Ok(DependencyExpr::State { state, name })
            }
            Some(Tok::LParen) => {
                if self.depth == MAX_DEPTH {
                    return Err(DependencySyntaxError {
                        position: at,
                        message: format!("parentheses nested deeper than {MAX_DEPTH} (the limit)"),
                    });
                }
                self.pos += 1;
                self.depth += 1;
                let inner = self.expr()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(DependencySyntaxError {
                        position: self.at(),
                        message: format!("expected ')' to close the '(' at character {}", at + 1),
                    });
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(t) => Err(DependencySyntaxError {
                position: at,
                message: format!("expected STATE:name or '(', found {}", describe(&t)),
            }),
            None => {
                Err(DependencySyntaxError { position: at, message: "expected STATE:name or '(', found the end".into() })
            }
        }
    }
}

fn describe(t: &Tok) -> &'static str {
    match t {
        Tok::LParen => "'('",
        Tok::RParen => "')'",
        Tok::And => "'and'",
        Tok::Or => "'or'",
        Tok::Atom(..) => "a state",
    }
}

/// The outcome of evaluating an expression against today's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The expression holds: the dependant may start.
    Ready,
    /// Not yet, but it still can once others finish.
    Waiting,
    /// It can no longer hold today (everything it names has ended the wrong way).
    Never,
}

impl DependencyExpr {
    /// Parses `src`, refusing what is longer, deeper or names more states than the limits above
    /// (each of the expression's walks is recursive, so a bounded tree keeps the stack bounded).
    pub fn parse(src: &str) -> Result<Self, DependencySyntaxError> {
        if src.chars().nth(MAX_CHARS).is_some() {
            return Err(DependencySyntaxError {
                position: MAX_CHARS,
                message: format!("longer than {MAX_CHARS} characters (the limit)"),
            });
        }
        let toks = tokenize(src)?;
        if let Some((pos, _)) = toks.iter().filter(|(_, t)| matches!(t, Tok::Atom(..))).nth(MAX_STATES) {
            return Err(DependencySyntaxError {
                position: *pos,
                message: format!("names more than {MAX_STATES} states (the limit)"),
            });
        }
        let mut p = Parser { toks, pos: 0, end: src.chars().count(), depth: 0 };
        let e = p.expr()?;
        if let Some((pos, t)) = p.toks.get(p.pos) {
            return Err(DependencySyntaxError {
                position: *pos,
                message: format!("expected 'and', 'or' or the end, found {}", describe(t)),
            });
        }
        Ok(e)
    }

    /// Every name the expression refers to, in order of first appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.walk(&mut |n| {
            if !out.contains(&n) {
                out.push(n)
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        match self {
            Self::State { name, .. } => f(name),
            Self::And(a, b) | Self::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
        }
    }

    /// Three-valued evaluation: a name without a final state today may still reach any state.
    pub fn evaluate(&self, states: &HashMap<String, RunStatus>) -> Readiness {
        match self {
            Self::State { state, name } => match states.get(name) {
                Some(s) if s.is_final() => {
                    if state.satisfied_by(*s) {
                        Readiness::Ready
                    } else {
                        Readiness::Never
                    }
                }
                _ => Readiness::Waiting,
            },
            Self::And(a, b) => match (a.evaluate(states), b.evaluate(states)) {
                (Readiness::Never, _) | (_, Readiness::Never) => Readiness::Never,
                (Readiness::Ready, Readiness::Ready) => Readiness::Ready,
                _ => Readiness::Waiting,
            },
            Self::Or(a, b) => match (a.evaluate(states), b.evaluate(states)) {
                (Readiness::Ready, _) | (_, Readiness::Ready) => Readiness::Ready,
                (Readiness::Never, Readiness::Never) => Readiness::Never,
                _ => Readiness::Waiting,
            },
        }
    }

    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, parent_and: bool) -> fmt::Result {
        match self {
            Self::State { state, name } => write!(f, "{}:{name}", state.letter()),
            Self::And(a, b) => {
                a.fmt_prec(f, true)?;
                f.write_str(" and ")?;
                b.fmt_prec(f, true)
            }
            Self::Or(a, b) => {
                if parent_and {
                    f.write_str("(")?;
                }
                a.fmt_prec(f, false)?;
                f.write_str(" or ")?;
                b.fmt_prec(f, false)?;
                if parent_and {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for DependencyExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_prec(f, false)
    }
}

/// A problem in the dependency graph of one group (or of the groups of one instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    UnknownName { owner: String, name: String },
    SelfReference { owner: String },
    Cycle(Vec<String>),
}

impl GraphError {
    /// The member whose dependency is at fault (for a cycle, where it was found).
    pub fn owner(&self) -> &str {
        match self {
            Self::UnknownName { owner, .. } | Self::SelfReference { owner } => owner,
            Self::Cycle(path) => path.first().map_or("", String::as_str),
        }
    }

    pub fn into_field_error(self) -> FieldError {
        match self {
            Self::UnknownName { owner, name } => FieldError::new(
                "dependency",
                "unknown_name",
                format!("{owner} depends on {name:?}, which is not in the same group"),
            ),
            Self::SelfReference { owner } => {
                FieldError::new("dependency", "self_reference", format!("{owner} depends on itself"))
            }
            Self::Cycle(path) => {
                FieldError::new("dependency", "cycle", format!("dependency cycle: {}", path.join(" -> ")))
            }
        }
    }
}

/// Checks that every name exists and that there is no cycle. `nodes` maps each member to its
/// expression (if any). A cycle is reported as the path that closes it, e.g. `a -> b -> a`.
pub fn check_graph(nodes: &BTreeMap<String, Option<DependencyExpr>>) -> Result<(), GraphError> {
    for (owner, expr) in nodes {
        for name in expr.iter().flat_map(|e| e.names()) {
            if name == owner {
                return Err(GraphError::SelfReference { owner: owner.clone() });
            }
            if !nodes.contains_key(name) {
                return Err(GraphError::UnknownName { owner: owner.clone(), name: name.to_string() });
            }
        }
    }
    // Depth-first search over "owner depends on name" edges; a grey node met again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let mut marks: BTreeMap<&str, Mark> = nodes.keys().map(|k| (k.as_str(), Mark::White)).collect();
    fn visit<'a>(
        n: &'a str,
        nodes: &'a BTreeMap<String, Option<DependencyExpr>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(n, Mark::Grey);
        stack.push(n);
        let deps: BTreeSet<&str> =
            nodes.get(n).and_then(|e| e.as_ref()).map(|e| e.names().into_iter().collect()).unwrap_or_default();
        for d in deps {
            match marks.get(d).copied() {
                Some(Mark::Grey) => {
                    let from = stack.iter().position(|s| *s == d).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(d.to_string());
                    return Some(cycle);
                }
                Some(Mark::White) => {
                    if let Some(c) = visit(d, nodes, marks, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(n, Mark::Black);
        None
    }
    let keys: Vec<&str> = nodes.keys().map(String::as_str).collect();
    for k in keys {
        if marks.get(k) == Some(&Mark::White) {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(k, nodes, &mut marks, &mut stack) {
                return Err(GraphError::Cycle(cycle));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_sizes_are_refused_with_the_limit_named() {
        // A few hundred thousand parentheses once overflowed the stack and aborted the server.
        let deep = format!("{}S:a{}", "(".repeat(300_000), ")".repeat(300_000));
        let (pos, msg) = err(&deep);
        assert_eq!((pos, msg.as_str()), (MAX_CHARS, "longer than 4096 characters (the limit)"));
        let nested = format!("{}S:a{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&nested), (MAX_DEPTH, "parentheses nested deeper than 32 (the limit)".into()));
        let fits = format!("{}S:a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(DependencyExpr::parse(&fits).is_ok());
        let many = vec!["S:a"; MAX_STATES + 1].join("&&");
        assert_eq!(err(&many), (MAX_STATES * 5, "names more than 256 states (the limit)".into()));
        assert!(DependencyExpr::parse(&vec!["S:a"; MAX_STATES].join("&&")).is_ok());
        let e = DependencyExpr::parse(&nested).unwrap_err().into_field_error();
        assert_eq!(e.field, "dependency");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the text: no panic; an error names the field; what parses prints as text
        /// that parses to the same expression.
        #[test]
        fn any_text_parses_or_is_refused(src in "[()SFTKEa-c:_ &|]{0,80}|(and |or |S:x |\\(|\\)){0,300}") {
            match DependencyExpr::parse(&src) {
                Ok(e) => prop_assert_eq!(DependencyExpr::parse(&e.to_string()).unwrap(), e),
                Err(e) => prop_assert_eq!(e.into_field_error().field, "dependency"),
            }
        }
    }

    fn err(src: &str) -> (usize, String) {
        let e = DependencyExpr::parse(src).unwrap_err();
        (e.position, e.message)
    }

    #[test]
    fn parses_and_prints() {
        let e = DependencyExpr::parse("(S:extract) and ((S:load) or (F:load_fallback))").unwrap();
        assert_eq!(e.to_string(), "S:extract and (S:load or F:load_fallback)");
        assert_eq!(e.names(), vec!["extract", "load", "load_fallback"]);
        assert_eq!(DependencyExpr::parse(&e.to_string()).unwrap(), e);
        let sym = DependencyExpr::parse("S:a && s:b || E:c").unwrap();
        assert_eq!(sym.to_string(), "S:a and S:b or E:c");
    }

    #[test]
    fn errors_point_at_the_character() {
        assert_eq!(err("S:a and").0, 7);
        assert_eq!(err("S:a and X:b").0, 8);
        assert!(err("S:a and X:b").1.contains("state letter"));
        assert_eq!(err("(S:a or S:b").0, 11);
        assert!(err("(S:a or S:b").1.contains("')'"));
        assert_eq!(err("S:a S:b").0, 4);
        assert_eq!(err("S:").0, 2);
        assert_eq!(err("S:a & S:b").0, 4);
        assert_eq!(err("S:a xor S:b").0, 4);
        let fe = DependencyExpr::parse("S:a )").unwrap_err().into_field_error();
        assert_eq!((fe.field.as_str(), fe.rule.as_str()), ("dependency", "dependency_syntax"));
        assert!(fe.message.starts_with("at character 5"), "{}", fe.message);
    }

    #[test]
    fn three_valued_evaluation() {
        let e = DependencyExpr::parse("S:extract and (S:load or F:fallback)").unwrap();
        let mut st: HashMap<String, RunStatus> = HashMap::new();
        assert_eq!(e.evaluate(&st), Readiness::Waiting);
        st.insert("extract".into(), RunStatus::Success);
        st.insert("load".into(), RunStatus::Running);
        assert_eq!(e.evaluate(&st), Readiness::Waiting);
        st.insert("fallback".into(), RunStatus::Failed);
        assert_eq!(e.evaluate(&st), Readiness::Ready);
        st.insert("fallback".into(), RunStatus::Success);
        st.insert("load".into(), RunStatus::Failed);
        assert_eq!(e.evaluate(&st), Readiness::Never);
        st.insert("extract".into(), RunStatus::Failed);
        assert_eq!(DependencyExpr::parse("E:extract").unwrap().evaluate(&st), Readiness::Ready);
    }

    fn graph(edges: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<DependencyExpr>> {
        edges.iter().map(|(n, e)| (n.to_string(), e.map(|s| DependencyExpr::parse(s).unwrap()))).collect()
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(&[("a", None), ("b", Some("S:a and S:d")), ("c", Some("S:b")), ("d", Some("S:c"))]);
        assert_eq!(check_graph(&g), Err(GraphError::Cycle(vec!["b".into(), "d".into(), "c".into(), "b".into()])));
        let msg = check_graph(&g).unwrap_err().into_field_error().message;
        assert_eq!(msg, "dependency cycle: b -> d -> c -> b");
        let ok = graph(&[("a", None), ("b", Some("S:a")), ("c", Some("S:a")), ("d", Some("S:b and S:c"))]);
        assert_eq!(check_graph(&ok), Ok(()));
        assert!(matches!(check_graph(&graph(&[("a", Some("S:zz"))])), Err(GraphError::UnknownName { .. })));
        assert!(matches!(check_graph(&graph(&[("a", Some("S:a"))])), Err(GraphError::SelfReference { .. })));
    }
}
