//! The `groups` table: containers of tasks with a shared schedule, timezone, calendar and instance.

use super::schema::groups;
use super::{from_json, to_json, ts, with_conn, DbConn, DbResult};
use baton_schema::definition::{AlertRuleDraft, GroupDef, GroupDraft};
use baton_schema::ids::{GroupId, InstanceId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = groups)]
pub struct GroupRow {
    pub id: GroupId,
    pub instance_id: InstanceId,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub team: String,
    pub active: bool,
    pub schedule: Option<String>,
    pub dependency: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl GroupRow {
    pub fn to_draft(&self, instance: &str, alerts: Vec<AlertRuleDraft>) -> DbResult<GroupDraft> {
        Ok(GroupDraft {
            gid: Some(self.id),
            name: self.name.clone(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            team: self.team.clone(),
            instance: instance.to_string(),
            active: self.active,
            schedule: self.schedule.as_deref().map(|s| from_json("group schedule", s)).transpose()?,
            dependency: self.dependency.clone(),
            alerts,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub instance_ids: Option<Vec<InstanceId>>,
    pub active: Option<bool>,
    /// Part of the name.
    pub search: Option<String>,
}

pub(crate) fn like_pattern(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

macro_rules! filtered {
    ($f:expr) => {{
        let f: &GroupFilter = $f;
        let mut q = groups::table.into_boxed();
        if let Some(ids) = &f.instance_ids {
            q = q.filter(groups::instance_id.eq_any(ids.clone()));
        }
        if let Some(a) = f.active {
            q = q.filter(groups::active.eq(a));
        }
        if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
            q = q.filter(groups::name.like(like_pattern(s)).escape('\\'));
        }
        q
    }};
}

/// One page of groups by ascending id, after the cursor `after`; `limit + 1` rows are read so the
/// caller knows whether there is a next page.
pub fn page(conn: &mut DbConn, f: &GroupFilter, after: Option<GroupId>, limit: i64) -> DbResult<Vec<GroupRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = filtered!(f).select(GroupRow::as_select()).order(groups::id.asc()).limit(limit);
        if let Some(a) = after {
            q = q.filter(groups::id.gt(a));
        }
        q.load(c)
    })?)
}

pub fn count(conn: &mut DbConn, f: &GroupFilter) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| filtered!(f).count().get_result(c))?)
}

pub fn get(conn: &mut DbConn, id: GroupId) -> DbResult<GroupRow> {
    Ok(with_conn!(conn, |c| groups::table.find(id).select(GroupRow::as_select()).first(c))?)
}

pub fn by_name(conn: &mut DbConn, instance_id: InstanceId, name: &str) -> DbResult<Option<GroupRow>> {
    Ok(with_conn!(conn, |c| groups::table
        .filter(groups::instance_id.eq(instance_id).and(groups::name.eq(name)))
        .select(GroupRow::as_select())
        .first(c)
        .optional())?)
}

pub fn in_instance(conn: &mut DbConn, instance_id: InstanceId) -> DbResult<Vec<GroupRow>> {
    Ok(with_conn!(conn, |c| groups::table
        .filter(groups::instance_id.eq(instance_id))
        .order(groups::id)
        .select(GroupRow::as_select())
        .load(c))?)
}

/// Every column a definition sets, for inserts and updates alike.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = groups, treat_none_as_null = true)]
struct GroupFields {
    instance_id: InstanceId,
    name: String,
    description: String,
    owner: String,
    team: String,
    active: bool,
    schedule: Option<String>,
    dependency: Option<String>,
}

impl GroupFields {
    fn new(instance_id: InstanceId, g: &GroupDef) -> Self {
        GroupFields {
            instance_id,
            name: g.name.to_string(),
            description: g.description.clone(),
            owner: g.owner.clone(),
            team: g.team.clone(),
            active: g.active,
            schedule: g.schedule.as_ref().map(|s| to_json(&s.to_draft())),
            dependency: g.dependency.as_ref().map(ToString::to_string),
        }
    }
}

/// Inserts a group (with the given id when importing by id) and returns its GID.
pub fn insert(conn: &mut DbConn, instance_id: InstanceId, g: &GroupDef, now: DateTime<Utc>) -> DbResult<GroupId> {
    let fields = GroupFields::new(instance_id, g);
    let stamps = (groups::version.eq(1), groups::created_at.eq(ts(now)), groups::updated_at.eq(ts(now)));
    Ok(with_conn!(conn, |c| match g.gid {
        Some(id) => diesel::insert_into(groups::table)
            .values((groups::id.eq(id.0), &fields, stamps))
            .returning(groups::id)
            .get_result(c),
        None => diesel::insert_into(groups::table).values((&fields, stamps)).returning(groups::id).get_result(c),
    })?)
}

/// Updates every field of a group and bumps its version.
pub fn update(
    conn: &mut DbConn,
    id: GroupId,
    instance_id: InstanceId,
    g: &GroupDef,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let fields = GroupFields::new(instance_id, g);
    let n = with_conn!(conn, |c| diesel::update(groups::table.find(id))
        .set((&fields, groups::version.eq(groups::version + 1), groups::updated_at.eq(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(super::DbError::NotFound);
    }
    Ok(())
}

pub fn set_active(conn: &mut DbConn, id: GroupId, active: bool, now: DateTime<Utc>) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(groups::table.find(id))
        .set((groups::active.eq(active), groups::version.eq(groups::version + 1), groups::updated_at.eq(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(super::DbError::NotFound);
    }
    Ok(())
}

/// Deletes a group; refused (Conflict) while tasks still belong to it.
pub fn delete(conn: &mut DbConn, id: GroupId) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::delete(groups::table.find(id)).execute(c))?;
    if n == 0 {
        return Err(super::DbError::NotFound);
    }
    Ok(())
}

pub fn get_many(conn: &mut DbConn, ids: &[GroupId]) -> DbResult<Vec<GroupRow>> {
    super::in_chunks(ids, |ids| {
        Ok(with_conn!(conn, |c| groups::table.filter(groups::id.eq_any(ids)).select(GroupRow::as_select()).load(c))?)
    })
}
