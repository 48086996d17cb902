//! Bounds on what one GraphQL document may ask for, checked as soon as it is parsed, before the
//! schema's own checks (which expand fragment spreads) and before it is validated or run:
//! fragments that spread one another are counted once per use, with each fragment's size worked
//! out once, so a few kilobytes that would expand to millions of fields (or arguments) are
//! refused in linear time instead of validated in exponential time; and the errors a response
//! lists are capped, so a small document cannot ask for a huge answer.

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
/// Arguments (of fields and directives) once fragments are expanded, and variables defined.
pub const MAX_ARGUMENTS: u64 = 2_000;
/// Errors one response lists: past it, a note says how many more there were. Each argument or
/// field the schema does not know is an error of its own, so without it a small document
/// could ask for a response thousands of times its size.
pub const MAX_ERRORS: usize = 100;

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
    let mut total = Size::default();
    for (_, op) in &operations {
        total = total.add(sizes.of(&op.node.selection_set.node)?);
        total.arguments = total.arguments.saturating_add(op.node.variable_definitions.len() as u64);
        total.arguments = total.arguments.saturating_add(arguments_of(&op.node.directives));
    }
    if total.fields > MAX_FIELDS {
        let fields = total.fields;
        return too_big("fields", format!("{fields} fields once fragments are expanded; at most {MAX_FIELDS}"));
    }
    if total.arguments > MAX_ARGUMENTS {
        let n = total.arguments;
        return too_big(
            "arguments",
            format!("{n} arguments and variables once fragments are expanded; at most {MAX_ARGUMENTS}"),
        );
    }
    Ok(())
}

/// What a selection set asks for once its fragment spreads are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    fields: u64,
    arguments: u64,
}

impl Size {
    fn add(self, other: Size) -> Size {
        Size {
            fields: self.fields.saturating_add(other.fields),
            arguments: self.arguments.saturating_add(other.arguments),
        }
    }

    fn over(&self) -> bool {
        self.fields > MAX_FIELDS || self.arguments > MAX_ARGUMENTS
    }
}

/// Arguments written in a list of directives.
fn arguments_of(directives: &[async_graphql::Positioned<async_graphql::parser::types::Directive>]) -> u64 {
    directives.iter().map(|d| d.node.arguments.len() as u64).sum()
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
    known: HashMap<&'a Name, Size>,
    /// Fragments being worked out: one met again spreads itself.
    open: Vec<&'a Name>,
}

impl<'a> Sizes<'a> {
    fn of(&mut self, set: &'a SelectionSet) -> Result<Size, TooBig> {
        let mut total = Size::default();
        for s in &set.items {
            let n = match &s.node {
                Selection::Field(f) => {
                    let own = Size {
                        fields: 1,
                        arguments: (f.node.arguments.len() as u64).saturating_add(arguments_of(&f.node.directives)),
                    };
                    own.add(self.of(&f.node.selection_set.node)?)
                }
                Selection::InlineFragment(f) => {
                    let own = Size { fields: 0, arguments: arguments_of(&f.node.directives) };
                    own.add(self.of(&f.node.selection_set.node)?)
                }
                Selection::FragmentSpread(f) => {
                    let own = Size { fields: 0, arguments: arguments_of(&f.node.directives) };
                    own.add(self.fragment(&f.node.fragment_name.node)?)
                }
            };
            total = total.add(n);
            if total.over() {
                // Past a limit already: no need to count further.
                return Ok(total);
            }
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<Size, TooBig> {
        if let Some(n) = self.known.get(name) {
            return Ok(*n);
        }
        if self.open.contains(&name) {
            return Err(TooBig { rule: "fragments", message: format!("fragment {name} spreads itself") });
        }
        // An unknown fragment is the validator's to report; it adds nothing here.
        let Some(def) = self.doc.fragments.get(name) else { return Ok(Size::default()) };
        self.open.push(name);
        let n = self.of(&def.node.selection_set.node)?;
        self.open.pop();
        self.known.insert(name, n);
        Ok(n)
    }
}

/// At most [`MAX_ERRORS`] errors, and a note of how many more there were.
fn capped(mut errors: Vec<async_graphql::ServerError>) -> Vec<async_graphql::ServerError> {
    if errors.len() > MAX_ERRORS {
        let more = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(
            crate::error::ApiError::invalid(
                "query",
                "errors",
                format!("{more} more errors not shown; at most {MAX_ERRORS} are listed"),
            )
            .extend()
            .into_server_error(Default::default()),
        );
    }
    errors
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

    /// Validation reports every unknown argument and field: the list is capped.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        next.run(ctx).await.map_err(capped)
    }

    /// So is what execution reports (an error per field at most, but up to 10,000 fields).
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: async_graphql::extensions::NextExecute<'_>,
    ) -> async_graphql::Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors = capped(std::mem::take(&mut response.errors));
        response
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

    #[test]
    fn arguments_are_counted_per_use_even_repeated_or_unknown() {
        let repeated: String = (0..2_001).map(|_| "a: 1 ").collect();
        assert_eq!(checked(&format!("{{ version({repeated}) }}")).unwrap_err().rule, "arguments");
        // 10 arguments in a fragment spread 201 times: 2,010 once expanded.
        let ten: String = (0..10).map(|i| format!("a{i}: 1 ")).collect();
        let spreads: String = (0..201).map(|i| format!("x{i}: __typename ...f ")).collect();
        let doc = format!("{{ {spreads} }} fragment f on Query {{ version({ten}) }}");
        assert_eq!(checked(&doc).unwrap_err().rule, "arguments");
        let variables: String = (0..2_001).map(|i| format!("$v{i}: Int ")).collect();
        assert_eq!(checked(&format!("query({variables}) {{ version }}")).unwrap_err().rule, "arguments");
        assert!(checked("query($a: Int) { version(x: 1) }").is_ok());
    }

    #[test]
    fn a_response_lists_at_most_max_errors() {
        let errors: Vec<async_graphql::ServerError> =
            (0..5_000).map(|i| async_graphql::ServerError::new(format!("unknown field f{i}"), None)).collect();
        let listed = capped(errors);
        assert_eq!(listed.len(), MAX_ERRORS + 1);
        assert!(listed[MAX_ERRORS].message.contains("4900 more errors not shown"), "{}", listed[MAX_ERRORS].message);
        assert_eq!(capped(vec![async_graphql::ServerError::new("one", None)]).len(), 1);
    }
}
