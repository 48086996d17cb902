//! The GraphQL operations the UI sends: written in `web/graphql/*.graphql` (one file per page)
//! and checked against `graphql/schema.graphql` when this crate compiles, each with its typed
//! variables and response (`graphql_client`). A field the schema lacks, or a variable of the
//! wrong type, is a build error, not a blank page.

/// `DateTime` and `NaiveDate` arrive as the ISO 8601 text the pages show.
pub type DateTime = String;
pub type NaiveDate = String;
/// Import and export documents, passed through as they are.
#[allow(clippy::upper_case_acronyms)]
pub type JSON = serde_json::Value;
/// Run and agent statuses are the domain's enums, as the server's.
pub use baton_schema::agent::AgentStatus;
pub use baton_schema::run::RunStatus;

// The derive tracks each document but not the schema: this makes a schema change rebuild (and so
// check again) every operation.
const _SCHEMA: &str = include_str!("../../graphql/schema.graphql");

/// The same fields from one generated type into another: `graphql_client` makes one type per
/// operation, so a value read by one operation and sent by another crosses types field by field,
/// checked by the compiler. Fields whose types differ too are given after `;`.
macro_rules! copy_fields {
    ($value:expr => $target:path { $($field:ident),+ $(,)? $(; $($other:ident: $given:expr),+ $(,)?)? }) => {{
        let v = $value;
        $target { $($field: v.$field,)+ $($($other: $given),+)? }
    }};
}
pub(crate) use copy_fields;

/// Declares each named operation of a document as a type of the same name.
macro_rules! operations {
    ($($file:tt => [$($name:ident),+ $(,)?];)+) => { $($(
        #[derive(graphql_client::GraphQLQuery)]
        #[graphql(
            schema_path = "../graphql/schema.graphql",
            query_path = $file,
            extern_enums("RunStatus", "AgentStatus"),
            response_derives = "Clone, PartialEq",
            variables_derives = "Clone, PartialEq"
        )]
        pub struct $name;
    )+)+ };
}

operations! {
    "graphql/session.graphql" => [Me, Logout, Version, Login];
    "graphql/runs.graphql" => [
        RunList, RunFilterGroups, RunEvents, RunDetail, RunOutputChunk, RunOutputEvents, TerminateRun, ForceRun,
        FreezeTask, UnfreezeTask, ModifyRunStatus,
    ];
    "graphql/adhoc.graphql" => [AdhocAgents, RunAdhoc];
    "graphql/dashboard.graphql" => [Dashboard];
    "graphql/agents.graphql" => [AgentList, AgentEvents];
    "graphql/tasks.graphql" => [
        TaskList, GroupList, ExportDefinitions, TaskDefinition, GroupDefinition, CreateTask, UpdateTask, CreateGroup,
        UpdateGroup, CalendarNames, IntegrationNames, SchedulePreview, FlowGraph, ImportPlan, ImportApply,
    ];
    "graphql/calendars.graphql" => [CalendarList, SaveCalendar];
    "graphql/scheduler.graphql" => [SchedulerHealth];
    "graphql/admin.graphql" => [AdminData, CreateUser, UpdateUser, CreateApiToken, RevokeApiToken];
    "graphql/integrations.graphql" => [
        IntegrationList, CredentialKeyList, DeliveryLog, CreateIntegration, UpdateIntegration, DeleteIntegration,
        SendTestAlert, SetCredential, DeleteCredential,
    ];
}
