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

/// Why a term cannot be removed from an expression on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermRemoval {
    /// The expression does not parse.
    Syntax(DependencySyntaxError),
    /// No term names it.
    NotNamed(String),
    /// Several terms name it (`S:a or F:a`): which to remove is the operator's choice.
    Several(String),
}

impl fmt::Display for TermRemoval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(e) => write!(f, "at character {}: {}", e.position + 1, e.message),
            Self::NotNamed(n) => write!(f, "no term of the dependency names {n}"),
            Self::Several(n) => write!(f, "several terms of the dependency name {n}: edit the expression"),
        }
    }
}

/// Where each token of `src` ends (its first character after).
fn token_ends(toks: &[(usize, Tok)], chars: &[char]) -> Vec<usize> {
    toks.iter()
        .map(|(start, t)| {
            start
                + match t {
                    Tok::LParen | Tok::RParen => 1,
                    Tok::And | Tok::Or if matches!(chars.get(*start), Some('&' | '|')) => 2,
                    Tok::And => 3,
                    Tok::Or => 2,
                    Tok::Atom(_, name) => 2 + name.chars().count(),
                }
        })
        .collect()
}

/// `src` without the term that names `name`, the rest kept as written: the operator that bound
/// the term goes with it (the tighter one, `and`, when it sits between two), and so do
/// parentheses left around one term or around the whole expression. `Ok(None)` when nothing is
/// left. `(S:a or S:b) and S:c` without `c` is `S:a or S:b`; without `b`, `S:a and S:c`.
pub fn without_term(src: &str, name: &str) -> Result<Option<String>, TermRemoval> {
    DependencyExpr::parse(src).map_err(TermRemoval::Syntax)?;
    let chars: Vec<char> = src.chars().collect();
    let toks = tokenize(src).map_err(TermRemoval::Syntax)?;
    let ends = token_ends(&toks, &chars);
    let hits: Vec<usize> = (0..toks.len()).filter(|&i| matches!(&toks[i].1, Tok::Atom(_, n) if n == name)).collect();
    let at = match hits.as_slice() {
        [] => return Err(TermRemoval::NotNamed(name.to_string())),
        [one] => *one,
        _ => return Err(TermRemoval::Several(name.to_string())),
    };
    // The operand that goes: the term, or the parentheses it is alone in.
    let (mut lo, mut hi) = (at, at);
    while lo > 0 && hi + 1 < toks.len() && toks[lo - 1].1 == Tok::LParen && toks[hi + 1].1 == Tok::RParen {
        lo -= 1;
        hi += 1;
    }
    let operator = |i: Option<usize>| {
        i.and_then(|i| toks.get(i)).map(|(_, t)| t.clone()).filter(|t| matches!(t, Tok::And | Tok::Or))
    };
    let (before, after) = (operator(lo.checked_sub(1)), operator(Some(hi + 1)));
    let cut = match (before, after) {
        (None, None) => return Ok(None),
        // `x and TERM or y`, `x or TERM or y`: the operator before goes, with the space before it.
        (Some(b), a) if !(b == Tok::Or && a == Some(Tok::And)) => ends[lo - 2]..ends[hi],
        // `TERM and y`, `x or TERM and y`: the operator after goes, up to the next operand.
        _ => toks[lo].0..toks[hi + 2].0,
    };
    let left: String = chars[..cut.start].iter().chain(&chars[cut.end..]).collect();
    Ok(Some(drop_spare_parentheses(left.trim())))
}

/// Drops parentheses around a single term, around parentheses, and around the whole expression.
fn drop_spare_parentheses(src: &str) -> String {
    let mut text = src.to_string();
    loop {
        let chars: Vec<char> = text.chars().collect();
        let Ok(toks) = tokenize(&text) else { return text };
        let ends = token_ends(&toks, &chars);
        let n = toks.len();
        let around_one = (0..n.saturating_sub(2)).find(|&i| {
            toks[i].1 == Tok::LParen && matches!(toks[i + 1].1, Tok::Atom(..)) && toks[i + 2].1 == Tok::RParen
        });
        // `((x))`: the outer pair goes.
        let doubled = (0..n.saturating_sub(1)).find_map(|i| {
            let close = closing(&toks, i)?;
            (toks[i].1 == Tok::LParen && toks[i + 1].1 == Tok::LParen && closing(&toks, i + 1) == Some(close - 1))
                .then_some((i, close))
        });
        let whole = n >= 2 && toks[0].1 == Tok::LParen && closing(&toks, 0) == Some(n - 1);
        let (open, close) = match (around_one, doubled, whole) {
            (Some(i), _, _) => (i, i + 2),
            (None, Some(pair), _) => pair,
            (None, None, true) => (0, n - 1),
            (None, None, false) => return text,
        };
        let (o, c) = (toks[open].0, toks[close].0);
        let kept: String = chars[..o].iter().chain(&chars[ends[open]..c]).chain(&chars[ends[close]..]).collect();
        text = kept.trim().to_string();
    }
}

/// The index of the parenthesis that closes the one at `open`.
fn closing(toks: &[(usize, Tok)], open: usize) -> Option<usize> {
    if toks.get(open).map(|(_, t)| t) != Some(&Tok::LParen) {
        return None;
    }
    let mut depth = 0usize;
    for (i, (_, t)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
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

    #[test]
    fn a_term_is_removed_and_the_rest_kept_as_written() {
        let cases = [
            ("(S:a or S:b) and S:c", "c", Some("S:a or S:b")),
            ("(S:a or S:b) and S:c", "b", Some("S:a and S:c")),
            ("(S:a or S:b) and S:c", "a", Some("S:b and S:c")),
            ("S:a", "a", None),
            ("(S:a)", "a", None),
            ("S:a and S:b or S:c", "b", Some("S:a or S:c")),
            ("S:a or S:b and S:c", "b", Some("S:a or S:c")),
            ("S:a or S:b and S:c", "a", Some("S:b and S:c")),
            ("S:a or S:b or S:c", "b", Some("S:a or S:c")),
            ("S:a && (F:b || E:c) && S:d", "c", Some("S:a && F:b && S:d")),
            ("S:a and ((F:b or E:c) and S:d)", "d", Some("S:a and (F:b or E:c)")),
            ("(S:x or S:y) and (S:a or S:b)", "a", Some("(S:x or S:y) and S:b")),
            ("  S:a   and   T:b  ", "a", Some("T:b")),
        ];
        for (src, name, want) in cases {
            let got = without_term(src, name).unwrap_or_else(|e| panic!("{src} without {name}: {e}"));
            assert_eq!(got.as_deref(), want, "{src} without {name}");
            if let Some(left) = &got {
                let parsed = DependencyExpr::parse(left).unwrap();
                assert!(!parsed.names().contains(&name), "{left}");
            }
        }
        assert_eq!(without_term("S:a or F:a", "a"), Err(TermRemoval::Several("a".into())));
        assert_eq!(without_term("S:a", "b"), Err(TermRemoval::NotNamed("b".into())));
        assert!(matches!(without_term("S:a and", "a"), Err(TermRemoval::Syntax(_))));
    }

    proptest::proptest! {
        /// Removing a term leaves an expression that parses, names the others and not it, and
        /// means what the original meant with that term taken out of its and/or.
        #[test]
        fn removing_a_term_keeps_the_rest(tree in expr_strategy(), pick in 0usize..8) {
            let src = render(&tree);
            let names = DependencyExpr::parse(&src).unwrap().names().into_iter().map(String::from).collect::<Vec<_>>();
            let name = &names[pick % names.len()];
            if let Ok(left) = without_term(&src, name) {
                let want = remove(&tree, name);
                match (left, want) {
                    (None, None) => {}
                    (Some(l), Some(w)) => {
                        proptest::prop_assert_eq!(DependencyExpr::parse(&l).unwrap(), DependencyExpr::parse(&render(&w)).unwrap(), "{} without {}", src, name);
                    }
                    (l, w) => proptest::prop_assert!(false, "{} without {}: {:?} against {:?}", src, name, l, w.map(|w| render(&w))),
                }
            }
        }
    }

    fn expr_strategy() -> impl proptest::strategy::Strategy<Value = DependencyExpr> {
        use proptest::prelude::*;
        let leaf =
            (0usize..6).prop_map(|i| DependencyExpr::State { state: StateLetter::Success, name: format!("t{i}") });
        leaf.prop_recursive(4, 16, 2, |inner| {
            (inner.clone(), inner, proptest::bool::ANY).prop_map(|(a, b, and)| {
                if and {
                    DependencyExpr::And(Box::new(a), Box::new(b))
                } else {
                    DependencyExpr::Or(Box::new(a), Box::new(b))
                }
            })
        })
    }

    /// Writes a tree with parentheses around every operation.
    fn render(e: &DependencyExpr) -> String {
        match e {
            DependencyExpr::State { state, name } => format!("{}:{name}", state.letter()),
            DependencyExpr::And(a, b) => format!("({} and {})", render(a), render(b)),
            DependencyExpr::Or(a, b) => format!("({} or {})", render(a), render(b)),
        }
    }

    /// The tree without every term naming `name` (None when nothing is left).
    fn remove(e: &DependencyExpr, name: &str) -> Option<DependencyExpr> {
        match e {
            DependencyExpr::State { name: n, .. } => (n != name).then(|| e.clone()),
            DependencyExpr::And(a, b) | DependencyExpr::Or(a, b) => match (remove(a, name), remove(b, name)) {
                (Some(x), Some(y)) => Some(if matches!(e, DependencyExpr::And(..)) {
                    DependencyExpr::And(Box::new(x), Box::new(y))
                } else {
                    DependencyExpr::Or(Box::new(x), Box::new(y))
                }),
                (x, y) => x.or(y),
            },
        }
    }
}
