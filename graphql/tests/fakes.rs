//! Resolvers over a fake of one domain, in process: the guards refuse before the domain is asked,
//! and the domain's errors reach the client with their codes.

use async_trait::async_trait;
use baton_graphql::backend::{AdhocRequest, BackendResult, RunRecord};
use baton_graphql::{schema_builder, ApiError, Execution, Principal};
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::ids::{RunId, TaskId, UserId};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Execution that knows no task and fails to stop any run, counting the calls that reach it.
#[derive(Default)]
struct NoTasks {
    calls: AtomicUsize,
}

#[async_trait]
impl Execution for NoTasks {
    async fn run_adhoc(&self, _: &Principal, _: AdhocRequest) -> BackendResult<Vec<RunRecord>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
    async fn force_run(&self, _: &Principal, _: TaskId, _: Option<chrono::NaiveDate>) -> BackendResult<RunRecord> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(ApiError::NotFound("task".into()))
    }
    async fn terminate_run(&self, _: &Principal, _: RunId) -> BackendResult<bool> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(ApiError::Internal)
    }
}

fn as_role(role: Role) -> Principal {
    Principal { user_id: UserId(1), username: "ada".into(), role, instances: InstanceAccess::All }
}

/// Runs `query` as `who` against the fake; the response as JSON, and the calls that reached it.
fn execute(query: &str, who: Option<Principal>) -> (Value, usize) {
    let fake = Arc::new(NoTasks::default());
    let schema = schema_builder().data(fake.clone() as Arc<dyn Execution>).finish();
    let mut request = async_graphql::Request::new(query);
    if let Some(p) = who {
        request = request.data(p);
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let response = rt.block_on(schema.execute(request));
    (serde_json::to_value(&response).expect("json"), fake.calls.load(Ordering::SeqCst))
}

fn code(response: &Value) -> Option<&str> {
    response.pointer("/errors/0/extensions/code").and_then(Value::as_str)
}

#[test]
fn guards_refuse_before_the_domain_is_asked() {
    let (res, calls) = execute("mutation { forceRun(tid: 9) { id } }", None);
    assert_eq!((code(&res), calls), (Some("UNAUTHENTICATED"), 0), "{res}");
    let (res, calls) = execute("mutation { forceRun(tid: 9) { id } }", Some(as_role(Role::Viewer)));
    assert_eq!((code(&res), calls), (Some("FORBIDDEN"), 0), "{res}");
}

#[test]
fn the_domains_errors_reach_the_client_with_their_codes() {
    let (res, calls) = execute("mutation { forceRun(tid: 9) { id } }", Some(as_role(Role::Operator)));
    assert_eq!((code(&res), calls), (Some("NOT_FOUND"), 1), "{res}");
    let (res, _) = execute("mutation { terminateRun(id: 3) }", Some(as_role(Role::Operator)));
    assert_eq!(code(&res), Some("INTERNAL"), "{res}");
    let message = res.pointer("/errors/0/message").and_then(Value::as_str).unwrap_or_default();
    assert_eq!(message, "internal error", "nothing of the failure's cause: {res}");
}
