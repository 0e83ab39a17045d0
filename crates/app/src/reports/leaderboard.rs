//! A leaderboard: the reps (or teams) of the caller's scope ranked by one figure of the
//! results or process report. Amounts are ranked per currency, never added across.

use crm_domain::reports::{GroupBy, Window};

use super::{kpi, Figure, Group, Params, Unit};
use crate::error::{AppError, AppResult};
use crate::Ctx;

/// One place on the board.
#[derive(Debug, Clone)]
pub struct Standing {
    /// 1 for the highest value; equal values share a rank (1, 2, 2, 4).
    pub rank: u32,
    pub group: Group,
    pub figure: Figure,
}

/// The leaderboard's answer.
#[derive(Debug, Clone)]
pub struct Leaderboard {
    pub kpi: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub unit: Unit,
    pub window: Window,
    pub group_by: GroupBy,
    /// Ordered by currency (amounts), then rank.
    pub standings: Vec<Standing>,
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

/// Ranks the owners (default) or teams by `kpi` (e.g. `sales_won_amount`,
/// `payments_collected`, `win_rate`); `currency` keeps one currency's amounts.
pub fn leaderboard(
    c: &mut PgConnection,
    ctx: &Ctx,
    p: &Params,
    kpi: &str,
    currency: Option<&str>,
) -> AppResult<Leaderboard> {
    let group_by = p.group_by.clone().unwrap_or_else(|| "owner".into());
    if group_by != "owner" && group_by != "team" {
        return Err(AppError::field(
            "group_by",
            "unknown_grouping",
            "a leaderboard ranks `owner` (default) or `team`",
        ));
    }
    let measure = kpi::find(kpi).ok_or_else(|| {
        AppError::field(
            "kpi",
            "unknown_kpi",
            format!("`{kpi}` is not a figure of the results or process report"),
        )
    })?;
    let p = Params {
        group_by: Some(group_by),
        ..p.clone()
    };
    let report = kpi::of_kpi(c, ctx, &p, kpi)?;
    if report.withheld.contains(&measure.kpi) {
        return Err(AppError::field(
            "kpi",
            "field_not_readable",
            format!("you may not read what `{kpi}` is computed from"),
        ));
    }
    let mut standings: Vec<Standing> = report
        .rows
        .iter()
        .flat_map(|row| {
            row.figures
                .iter()
                .filter(|f| f.kpi == measure.kpi && f.activity_type.is_none())
                .filter(|f| currency.is_none_or(|c| f.currency.as_deref() == Some(c)))
                .map(|f| Standing {
                    rank: 0,
                    group: row.group.clone(),
                    figure: f.clone(),
                })
        })
        .filter(|s| s.figure.value.is_some())
        .collect();
    standings.sort_by(|a, b| {
        a.figure
            .currency
            .cmp(&b.figure.currency)
            .then(b.figure.value.cmp(&a.figure.value))
            .then(a.group.label.cmp(&b.group.label))
    });
    let mut i = 0;
    while i < standings.len() {
        let (mut place, mut n) = (1u32, 0u32);
        let ccy = standings[i].figure.currency.clone();
        let mut last = None;
        while i < standings.len() && standings[i].figure.currency == ccy {
            n += 1;
            if last != Some(standings[i].figure.value) {
                place = n;
                last = Some(standings[i].figure.value);
            }
            standings[i].rank = place;
            i += 1;
        }
    }
    Ok(Leaderboard {
        kpi: measure.kpi,
        label_zh: measure.label_zh,
        label_en: measure.label_en,
        unit: measure.unit,
        window: report.window,
        group_by: report.group_by,
        standings,
        generated_at: report.generated_at,
    })
}

use diesel::PgConnection;
