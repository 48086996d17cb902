//! Bounds on what one GraphQL document may ask for, checked as soon as it is parsed, before the
//! schema's own checks (which expand fragment spreads) and before it is validated or run: fragments that spread one another are counted once per use, with each
//! fragment's size worked out once, so a few kilobytes that would expand to millions of fields
//! are refused in linear time instead of validated in exponential time.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, Request, ServerResult};
use std::collections::HashMap;
use std::sync::Arc;

/// Fields a document selects once every fragment spread is expanded (aliases included).
pub const MAX_FIELDS: u64 = 10_000;
/// Directives written in a document.
pub const MAX_DIRECTIVES: usize = 64;
/// Fragments defined in a document.
pub const MAX_FRAGMENTS: usize = 256;
/// Operations defined in a document.
pub const MAX_OPERATIONS: usize = 16;

/// Why a document was refused: the rule, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooBig {
    pub rule: &'static str,
    pub message: String,
}

/// Checks a parsed document against the limits.
pub fn check(doc: &ExecutableDocument) -> Result<(), TooBig> {
    let too_big = |rule, message| Err(TooBig { rule, message });
    let operations: Vec<_> = doc.operations.iter().collect();
    if operations.len() > MAX_OPERATIONS {
        return too_big("operations", format!("{} operations; at most {MAX_OPERATIONS}", operations.len()));
    }
    if doc.fragments.len() > MAX_FRAGMENTS {
        return too_big("fragments", format!("{} fragments; at most {MAX_FRAGMENTS}", doc.fragments.len()));
    }
    let mut directives = 0usize;
    for (_, op) in &operations {
        directives += op.node.directives.len();
        directives += op.node.variable_definitions.iter().map(|v| v.node.directives.len()).sum::<usize>();
        directives += directives_in(&op.node.selection_set.node);
    }
    for f in doc.fragments.values() {
        directives += f.node.directives.len() + directives_in(&f.node.selection_set.node);
    }
    if directives > MAX_DIRECTIVES {
        return too_big("directives", format!("{directives} directives; at most {MAX_DIRECTIVES}"));
    }
    let mut sizes = Sizes { doc, known: HashMap::new(), open: Vec::new() };
    let mut fields = 0u64;
    for (_, op) in &operations {
        fields = fields.saturating_add(sizes.of(&op.node.selection_set.node)?);
    }
    if fields > MAX_FIELDS {
        return too_big("fields", format!("{fields} fields once fragments are expanded; at most {MAX_FIELDS}"));
    }
    Ok(())
}

/// Directives written in a selection set (not expanding spreads).
fn directives_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|s| match &s.node {
            Selection::Field(f) => f.node.directives.len() + directives_in(&f.node.selection_set.node),
            Selection::FragmentSpread(f) => f.node.directives.len(),
            Selection::InlineFragment(f) => f.node.directives.len() + directives_in(&f.node.selection_set.node),
        })
        .sum()
}

/// Expanded sizes of selection sets, each fragment's worked out once.
struct Sizes<'a> {
    doc: &'a ExecutableDocument,
    known: HashMap<&'a Name, u64>,
    /// Fragments being worked out: one met again spreads itself.
    open: Vec<&'a Name>,
}

impl<'a> Sizes<'a> {
    fn of(&mut self, set: &'a SelectionSet) -> Result<u64, TooBig> {
        let mut total = 0u64;
        for s in &set.items {
            let n = match &s.node {
                Selection::Field(f) => 1u64.saturating_add(self.of(&f.node.selection_set.node)?),
                Selection::InlineFragment(f) => self.of(&f.node.selection_set.node)?,
                Selection::FragmentSpread(f) => self.fragment(&f.node.fragment_name.node)?,
            };
            total = total.saturating_add(n);
            if total > MAX_FIELDS {
                // Past the limit already: no need to count further.
                return Ok(total);
            }
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<u64, TooBig> {
        if let Some(n) = self.known.get(name) {
            return Ok(*n);
        }
        if self.open.contains(&name) {
            return Err(TooBig { rule: "fragments", message: format!("fragment {name} spreads itself") });
        }
        // An unknown fragment is the validator's to report; it adds nothing here.
        let Some(def) = self.doc.fragments.get(name) else { return Ok(0) };
        self.open.push(name);
        let n = self.of(&def.node.selection_set.node)?;
        self.open.pop();
        self.known.insert(name, n);
        Ok(n)
    }
}

/// The extension that applies `check` to every document the schema parses (HTTP and sockets).
pub struct DocumentLimits;

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension)
    }
}

struct DocumentLimitsExtension;

#[async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    /// Parses the document (kept in the request, so it is parsed once) and checks it before the
    /// schema's own checks, which expand fragment spreads.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        check(request.parsed_query()?).map_err(|e| {
            crate::error::ApiError::invalid("query", e.rule, e.message).extend().into_server_error(Default::default())
        })?;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(query: &str) -> Result<(), TooBig> {
        check(&async_graphql::parser::parse_query(query).unwrap())
    }

    /// Twenty fragments, each spreading the one before twice: 2^20 fields from 1 KiB.
    fn bomb(levels: usize) -> String {
        let mut q = String::from("query { ...f0 }\nfragment f1 on Query { __typename }\n");
        q = q.replace("...f0", &format!("...f{levels}"));
        for i in 2..=levels {
            q.push_str(&format!("fragment f{i} on Query {{ ...f{p} ...f{p} }}\n", p = i - 1));
        }
        q
    }

    #[test]
    fn fragments_are_counted_per_use_without_expanding_them() {
        assert!(checked(&bomb(10)).is_ok(), "2^9 fields: within");
        let started = std::time::Instant::now();
        let refused = checked(&bomb(64)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "linear, not exponential");
        assert_eq!(refused.rule, "fields", "{refused:?}");
        let many_aliases: String = (0..10_001).map(|i| format!("a{i}: __typename ")).collect();
        assert_eq!(checked(&format!("{{ {many_aliases} }}")).unwrap_err().rule, "fields");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Whatever a client sends that parses, the check answers without panicking, and refuses
        /// only with a rule and a message.
        #[test]
        fn any_document_is_checked_or_refused(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("{ "), proptest::strategy::Just("} "), proptest::strategy::Just("a "),
                    proptest::strategy::Just("...f "), proptest::strategy::Just("...g "),
                    proptest::strategy::Just("fragment f on Query "), proptest::strategy::Just("fragment g on Query "),
                    proptest::strategy::Just("@include(if: true) "), proptest::strategy::Just("x: a "),
                    proptest::strategy::Just("query q "), proptest::strategy::Just("... on Query "),
                ],
                0..60,
            ),
        ) {
            let text = parts.concat();
            if let Ok(doc) = async_graphql::parser::parse_query(&text) {
                if let Err(e) = check(&doc) {
                    proptest::prop_assert!(!e.rule.is_empty() && !e.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn directives_fragments_and_cycles_are_bounded() {
        let directives: String = (0..65).map(|_| "__typename @include(if: true) ").collect();
        assert_eq!(checked(&format!("{{ {directives} }}")).unwrap_err().rule, "directives");
        let fragments: String = (0..257).map(|i| format!("fragment x{i} on Query {{ __typename }}\n")).collect();
        assert_eq!(checked(&format!("{{ __typename }}\n{fragments}")).unwrap_err().rule, "fragments");
        let cycle = "{ ...a } fragment a on Query { ...b } fragment b on Query { ...a }";
        assert_eq!(checked(cycle).unwrap_err().message, "fragment a spreads itself");
        assert!(checked("{ __typename ...missing }").is_ok(), "left to the validator");
    }
}
