//! Demo pipeline data: leads in every status, ~20,000 deals walked through the default
//! pipeline over the last 18 months (with stage history, checklists and outputs for the
//! stages they passed), and ~100,000 activities. Runs once, when no deal exists yet.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use crm_db::schema::{leads, opportunities, stage_history};
use crm_db::QueryResult;

#[derive(QueryableByName)]
struct AccountInfo {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    owner_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    team_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    contact_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct StageInfo {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pipeline_id: Uuid,
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    probability: i32,
}

#[derive(Insertable)]
#[diesel(table_name = opportunities)]
struct DemoDeal {
    id: Uuid,
    name: String,
    account_id: Uuid,
    primary_contact_id: Option<Uuid>,
    pipeline_id: Uuid,
    stage_id: Uuid,
    amount: Option<Decimal>,
    currency: String,
    expected_close_date: Option<chrono::NaiveDate>,
    probability: i32,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    competitors: Vec<String>,
    status: String,
    lost_reason: Option<String>,
    closed_at: Option<DateTime<Utc>>,
    stage_entered_at: DateTime<Utc>,
    custom: serde_json::Value,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = stage_history)]
struct DemoVisit {
    opportunity_id: Uuid,
    from_stage_id: Option<Uuid>,
    to_stage_id: Uuid,
    entered_at: DateTime<Utc>,
    left_at: Option<DateTime<Utc>>,
    changed_by: Option<Uuid>,
    amount: Option<Decimal>,
    probability: Option<i32>,
    reason: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = leads)]
struct DemoLead {
    id: Uuid,
    person_name: String,
    company: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
    source: String,
    campaign: Option<String>,
    region: Option<String>,
    tags: Vec<String>,
    estimated_budget: Option<Decimal>,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    status: String,
    disqualify_reason: Option<String>,
    assigned_at: Option<DateTime<Utc>>,
    first_response_at: Option<DateTime<Utc>>,
    converted_at: Option<DateTime<Utc>>,
    converted_account_id: Option<Uuid>,
    converted_contact_id: Option<Uuid>,
    custom: serde_json::Value,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// How many rows the pipeline demo created.
#[derive(Debug, Clone, Default)]
pub struct PipelineReport {
    pub leads: usize,
    pub opportunities: usize,
    pub stage_visits: usize,
    pub activities: i64,
}

const LOST_REASONS: &[&str] = &[
    "价格过高 Price too high",
    "选择了竞争对手 Chose a competitor",
    "预算取消 Budget cancelled",
    "需求变化 Needs changed",
    "No decision",
];
const COMPETITORS: &[&str] = &["Salesforce", "HubSpot", "纷享销客", "销售易", "Odoo"];
const CAMPAIGNS: &[&str] = &[
    "2026 春季发布会",
    "CIIE 2026",
    "Webinar: 数字化销售",
    "Partner Day",
    "官网表单 Website form",
];

/// Seeds the pipeline demo when no deal exists; needs the demo organisation.
pub fn seed(c: &mut PgConnection, deals: usize) -> QueryResult<PipelineReport> {
    c.transaction(|c| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(4242002)").execute(c)?;
        // Seed data is written directly, not as audited business writes.
        diesel::sql_query("SET LOCAL crm.unaudited_writes = 'allowed'").execute(c)?;
        #[derive(QueryableByName)]
        struct Flag {
            #[diesel(sql_type = Bool)]
            b: bool,
        }
        let exists: Flag = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM opportunities) AS b").get_result(c)?;
        if exists.b {
            return Ok(PipelineReport::default());
        }
        seed_in_tx(c, deals)
    })
}

fn seed_in_tx(c: &mut PgConnection, total_deals: usize) -> QueryResult<PipelineReport> {
    let mut rng = StdRng::seed_from_u64(20261128);
    let accounts: Vec<AccountInfo> = diesel::sql_query(
        "SELECT a.id, a.owner_id, a.team_id, a.name, \
         (SELECT ct.id FROM contacts ct WHERE ct.account_id = a.id AND ct.deleted_at IS NULL ORDER BY ct.created_at LIMIT 1) AS contact_id \
         FROM accounts a WHERE a.deleted_at IS NULL ORDER BY a.created_at, a.id",
    )
    .load(c)?;
    let stages: Vec<StageInfo> = diesel::sql_query(
        "SELECT s.id, s.pipeline_id, s.code, s.probability FROM stages s JOIN pipelines p ON p.id = s.pipeline_id \
         WHERE p.is_default AND s.archived_at IS NULL ORDER BY s.position",
    )
    .load(c)?;
    if accounts.is_empty() || stages.len() < 7 {
        return Ok(PipelineReport::default());
    }
    let open: Vec<&StageInfo> = stages.iter().take(5).collect();
    let (won, lost) = (&stages[5], &stages[6]);
    let now = Utc::now();
    let horizon = Duration::days(548);

    let mut deals = Vec::with_capacity(1000);
    let mut visits = Vec::with_capacity(4000);
    let mut n_visits = 0usize;
    for i in 0..total_deals {
        let acc = &accounts[(i * 7919) % accounts.len()];
        let created = now - Duration::minutes(rng.random_range(0..horizon.num_minutes()));
        // Where the deal ends up: open in some stage, won, or lost after some stage.
        let roll = rng.random_range(0..100);
        let (reached, outcome) = match roll {
            0..25 => (0, None),
            25..43 => (1, None),
            43..55 => (2, None),
            55..63 => (3, None),
            63..68 => (4, None),
            68..85 => (4, Some(won)),
            _ => (rng.random_range(0..4), Some(lost)),
        };
        let amount = Decimal::from(rng.random_range(20..2000) * 1000) + Decimal::new(rng.random_range(0..100), 2);
        let id = Uuid::now_v7();
        let mut at = created;
        let mut path: Vec<&StageInfo> = open[..=reached].to_vec();
        if let Some(s) = outcome {
            path.push(s);
        }
        let mut prev: Option<Uuid> = None;
        for (k, stage) in path.iter().enumerate() {
            let left = if k + 1 < path.len() {
                let dwell = Duration::hours(rng.random_range(12..(24 * 35)));
                let t = (at + dwell).min(now - Duration::minutes(1));
                Some(t.max(at))
            } else {
                None
            };
            let reason =
                (stage.code == "lost").then(|| LOST_REASONS[rng.random_range(0..LOST_REASONS.len())].to_owned());
            visits.push(DemoVisit {
                opportunity_id: id,
                from_stage_id: prev,
                to_stage_id: stage.id,
                entered_at: at,
                left_at: left,
                changed_by: Some(acc.owner_id),
                amount: Some(amount),
                probability: Some(stage.probability),
                reason,
            });
            prev = Some(stage.id);
            if let Some(l) = left {
                at = l;
            }
        }
        n_visits += path.len();
        let last = path[path.len() - 1];
        let (status, closed_at, lost_reason) = match last.code.as_str() {
            "won" => ("won", Some(at), None),
            "lost" => ("lost", Some(at), visits.last().and_then(|v| v.reason.clone())),
            _ => ("open", None, None),
        };
        let close_date = (created + Duration::days(rng.random_range(30..240))).date_naive();
        deals.push(DemoDeal {
            id,
            name: format!(
                "{} - {}",
                acc.name,
                [
                    "CRM 实施",
                    "ERP 升级",
                    "数据平台",
                    "年度服务",
                    "Cloud migration",
                    "Analytics suite"
                ][i % 6]
            ),
            account_id: acc.id,
            primary_contact_id: acc.contact_id,
            pipeline_id: last.pipeline_id,
            stage_id: last.id,
            amount: Some(amount),
            currency: "CNY".into(),
            expected_close_date: Some(close_date),
            probability: last.probability,
            owner_id: acc.owner_id,
            team_id: acc.team_id,
            competitors: if i % 3 == 0 {
                vec![COMPETITORS[i % COMPETITORS.len()].to_owned()]
            } else {
                Vec::new()
            },
            status: status.into(),
            lost_reason,
            closed_at,
            stage_entered_at: at,
            custom: json!({}),
            created_by: Some(acc.owner_id),
            created_at: created,
            updated_at: at,
        });
        if deals.len() == 1000 {
            diesel::insert_into(opportunities::table).values(&deals).execute(c)?;
            diesel::insert_into(stage_history::table).values(&visits).execute(c)?;
            deals.clear();
            visits.clear();
        }
    }
    if !deals.is_empty() {
        diesel::insert_into(opportunities::table).values(&deals).execute(c)?;
        diesel::insert_into(stage_history::table).values(&visits).execute(c)?;
    }

    // Key tasks and required outputs of every stage a deal has left, so its past
    // criteria hold and moving it on behaves as in real use.
    diesel::sql_query(
        "INSERT INTO opportunity_checklist (opportunity_id, stage_id, task_code, done, changed_by, changed_at) \
         SELECT h.opportunity_id, h.to_stage_id, t->>'code', true, h.changed_by, h.left_at \
         FROM stage_history h JOIN stages s ON s.id = h.to_stage_id \
         CROSS JOIN LATERAL jsonb_array_elements(s.key_tasks) t \
         WHERE h.left_at IS NOT NULL AND s.kind = 'open' ON CONFLICT DO NOTHING",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO opportunity_outputs (id, opportunity_id, stage_id, output_code, title, author_id, created_at) \
         SELECT gen_random_uuid(), h.opportunity_id, h.to_stage_id, t->>'code', t->>'title', h.changed_by, coalesce(h.left_at, h.entered_at) \
         FROM stage_history h JOIN stages s ON s.id = h.to_stage_id \
         CROSS JOIN LATERAL jsonb_array_elements(s.required_outputs) t \
         WHERE h.left_at IS NOT NULL OR s.kind = 'won'",
    )
    .execute(c)?;

    let n_leads = seed_leads(c, &mut rng, &accounts, now)?;

    // About five follow-ups per deal over its life, and a few per worked lead.
    diesel::sql_query("SELECT setseed(0.4242)").execute(c)?;
    diesel::sql_query(
        "INSERT INTO activities (id, activity_type, subject, content, occurred_at, duration_minutes, outcome, \
                                 account_id, contact_id, opportunity_id, owner_id, team_id, created_by, created_at, updated_at) \
         SELECT gen_random_uuid(), (ARRAY['call','visit','meeting','email','message','note'])[r.i], \
                (ARRAY['电话沟通 Call','上门拜访 Visit','需求会议 Meeting','方案邮件 Email','微信沟通 WeChat','内部备注 Note'])[r.i], \
                NULL, r.at, (5 + random() * 85)::int, NULL, \
                o.account_id, o.primary_contact_id, o.id, o.owner_id, o.team_id, o.owner_id, r.at, r.at \
         FROM opportunities o \
         CROSS JOIN LATERAL generate_series(1, 2 + abs(hashtext(o.id::text)) % 6) g \
         CROSS JOIN LATERAL (SELECT 1 + (random() * 5 + g * 0)::int AS i, \
                                    o.created_at + (random() + g * 0) * (coalesce(o.closed_at, now()) - o.created_at) AS at) r",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO activities (id, activity_type, subject, occurred_at, lead_id, owner_id, team_id, created_by, created_at, updated_at) \
         SELECT gen_random_uuid(), 'call', '线索跟进 Lead follow-up', l.first_response_at + (g * interval '2 days'), l.id, l.owner_id, l.team_id, \
                l.owner_id, l.first_response_at, l.first_response_at \
         FROM leads l CROSS JOIN LATERAL generate_series(0, 2) g WHERE l.first_response_at IS NOT NULL",
    )
    .execute(c)?;
    for sql in [
        "UPDATE opportunities o SET last_activity_at = x.m FROM (SELECT opportunity_id, max(occurred_at) m FROM activities WHERE opportunity_id IS NOT NULL GROUP BY 1) x WHERE x.opportunity_id = o.id",
        "UPDATE accounts a SET last_activity_at = x.m FROM (SELECT account_id, max(occurred_at) m FROM activities WHERE account_id IS NOT NULL GROUP BY 1) x WHERE x.account_id = a.id",
        "UPDATE contacts ct SET last_activity_at = x.m FROM (SELECT contact_id, max(occurred_at) m FROM activities WHERE contact_id IS NOT NULL GROUP BY 1) x WHERE x.contact_id = ct.id",
        "UPDATE leads l SET last_activity_at = x.m FROM (SELECT lead_id, max(occurred_at) m FROM activities WHERE lead_id IS NOT NULL GROUP BY 1) x WHERE x.lead_id = l.id",
    ] {
        diesel::sql_query(sql).execute(c)?;
    }
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let acts: N = diesel::sql_query("SELECT count(*) AS n FROM activities").get_result(c)?;
    diesel::sql_query("ANALYZE leads, opportunities, stage_history, opportunity_checklist, opportunity_outputs, activities, accounts, contacts")
        .execute(c)?;
    Ok(PipelineReport {
        leads: n_leads,
        opportunities: total_deals,
        stage_visits: n_visits,
        activities: acts.n,
    })
}

fn seed_leads(
    c: &mut PgConnection,
    rng: &mut StdRng,
    accounts: &[AccountInfo],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Marketing {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
        team_id: Option<Uuid>,
    }
    let marketing: Option<Marketing> =
        diesel::sql_query("SELECT id, team_id FROM users WHERE email = 'marketing1@demo.local'")
            .get_result(c)
            .optional()?;
    let Some(marketing) = marketing else { return Ok(0) };
    let surnames = ["陈", "林", "郑", "何", "宋", "韩", "唐", "冯", "于", "董"];
    let given = ["晓明", "丽华", "建国", "婷婷", "志伟", "海涛", "雪梅", "俊杰"];
    let statuses = [
        ("new", 60),
        ("assigned", 120),
        ("contacted", 150),
        ("qualified", 90),
        ("disqualified", 80),
        ("converted", 100),
    ];
    let mut rows = Vec::new();
    let mut n = 0usize;
    for (status, count) in statuses {
        for _ in 0..count {
            let acc = &accounts[(n * 31) % accounts.len()];
            let created = now - Duration::minutes(rng.random_range(30..(180 * 24 * 60)));
            let assigned = status != "new";
            let assigned_at = assigned.then(|| created + Duration::minutes(rng.random_range(1..240)));
            let responded = matches!(status, "contacted" | "qualified" | "disqualified" | "converted");
            let first_response_at = if responded {
                assigned_at.map(|a| a + Duration::minutes(rng.random_range(3..600)))
            } else {
                None
            };
            let name = format!(
                "{}{}",
                surnames[n % surnames.len()],
                given[(n / surnames.len()) % given.len()]
            );
            rows.push(DemoLead {
                id: Uuid::now_v7(),
                person_name: name,
                company: Some(if status == "converted" {
                    acc.name.clone()
                } else {
                    format!("潜在客户{:03} Prospect {:03}", n, n)
                }),
                mobile: Some(format!("1{}{:09}", [5, 7, 9][n % 3], 200_000_000 + n * 7877)),
                email: Some(format!("lead{n:04}@prospect.example.com")),
                source: [
                    "website",
                    "campaign",
                    "event",
                    "referral",
                    "cold_call",
                    "partner",
                    "other",
                ][n % 7]
                    .into(),
                campaign: n.is_multiple_of(2).then(|| CAMPAIGNS[n % CAMPAIGNS.len()].to_owned()),
                region: Some(["east", "north", "south"][n % 3].into()),
                tags: if n.is_multiple_of(4) {
                    vec!["vip".into()]
                } else {
                    Vec::new()
                },
                estimated_budget: Some(Decimal::from(rng.random_range(10..500) * 1000)),
                owner_id: if assigned { acc.owner_id } else { marketing.id },
                team_id: if assigned { acc.team_id } else { marketing.team_id },
                status: status.into(),
                disqualify_reason: (status == "disqualified").then(|| "无预算 No budget".to_owned()),
                assigned_at,
                first_response_at,
                converted_at: (status == "converted").then(|| first_response_at.unwrap_or(created) + Duration::days(3)),
                converted_account_id: (status == "converted").then_some(acc.id),
                converted_contact_id: if status == "converted" { acc.contact_id } else { None },
                custom: json!({}),
                created_by: Some(marketing.id),
                created_at: created,
                updated_at: first_response_at.or(assigned_at).unwrap_or(created),
            });
            n += 1;
        }
    }
    // Converted leads need a contact; drop those whose account has none.
    rows.retain(|l| l.status != "converted" || l.converted_contact_id.is_some());
    for chunk in rows.chunks(200) {
        diesel::insert_into(leads::table).values(chunk).execute(c)?;
    }
    Ok(rows.len())
}
