//! The rollups the fixed reports read (migration `report_rollups`): kept by triggers
//! in the writing transaction; the activity rollup is built at a business-day offset.

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable};

#[derive(QueryableByName)]
struct Offset {
    #[diesel(sql_type = Integer)]
    utc_offset_hours: i32,
}

/// The UTC offset (hours) the day rollups are built with.
pub fn offset_hours(conn: &mut PgConnection) -> QueryResult<Option<i32>> {
    let row: Option<Offset> = diesel::sql_query("SELECT utc_offset_hours FROM report_rollup_state")
        .get_result(conn)
        .optional()?;
    Ok(row.map(|r| r.utc_offset_hours))
}

/// Rebuilds the day rollups at `hours` (the business calendar's new offset) when they
/// were built at another; returns whether it did. In the caller's transaction, so the
/// new offset and the rollup built with it commit together with the calendar.
pub fn align_offset(conn: &mut PgConnection, hours: i32) -> QueryResult<bool> {
    if offset_hours(conn)? == Some(hours) {
        return Ok(false);
    }
    diesel::sql_query("SELECT rebuild_activity_day_totals($1)")
        .bind::<Nullable<Integer>, _>(Some(hours))
        .execute(conn)?;
    Ok(true)
}
