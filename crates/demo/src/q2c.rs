//! Demo quote-to-cash data consistent with the demo deals: a product catalogue and
//! price books; for every won deal an accepted quote whose net equals the deal amount
//! (approved by the director when the discount is above 15%), a signed, active or
//! completed contract, a two-installment payment plan and the payments received so far
//! (some late, so receivables age); sent quotes on deals in negotiation; and a few
//! quotes waiting in the director's approval inbox. Runs once, when no quote exists.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use crm_domain::money::{allocate, compute_quote, Due, LineInput};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use crm_db::repo::approvals::{InstanceRow, TaskRow};
use crm_db::repo::contracts::{InstallmentRow, PaymentRow};
use crm_db::repo::products::NewProduct;
use crm_db::repo::quotes::QuoteLineRow;
use crm_db::schema::{
    approval_history, approval_instances, approval_tasks, contracts, installments, payment_allocations, payments,
    price_book_entries, price_books, products, quote_lines, quotes, status_transitions,
};
use crm_db::QueryResult;

/// How many rows the quote-to-cash demo created.
#[derive(Debug, Clone, Default)]
pub struct Q2cReport {
    pub products: usize,
    pub quotes: usize,
    pub contracts: usize,
    pub payments: usize,
    pub pending_approvals: usize,
}

const PRODUCTS: &[(&str, &str, &str, i64, i64, i64)] = &[
    (
        "CRM-STD",
        "销售云 标准版 Sales Cloud Standard",
        "套",
        48_000,
        12_000,
        13,
    ),
    (
        "CRM-PRO",
        "销售云 专业版 Sales Cloud Professional",
        "套",
        98_000,
        26_000,
        13,
    ),
    (
        "CRM-ENT",
        "销售云 企业版 Sales Cloud Enterprise",
        "套",
        198_000,
        52_000,
        13,
    ),
    ("SVC-IMPL", "实施服务 Implementation", "人天", 2_500, 1_200, 6),
    ("SVC-TRAIN", "培训服务 Training", "场", 8_000, 3_000, 6),
    ("SVC-SUPPORT", "年度维保 Annual support", "年", 30_000, 9_000, 6),
    ("INT-DING", "钉钉集成 DingTalk connector", "套", 15_000, 4_000, 13),
    ("INT-WECOM", "企业微信集成 WeCom connector", "套", 15_000, 4_000, 13),
    ("INT-ERP", "ERP 集成 ERP connector", "套", 60_000, 25_000, 13),
    ("HW-PAD", "移动终端 Field tablet", "台", 3_200, 2_400, 13),
];

#[derive(QueryableByName)]
struct Deal {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    account_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    amount: Decimal,
    #[diesel(sql_type = SqlUuid)]
    owner_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    team_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    stage_entered_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    closed_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = quotes)]
struct DemoQuote {
    id: Uuid,
    opportunity_id: Uuid,
    number: String,
    revision: i32,
    status: String,
    currency: String,
    price_book_id: Option<Uuid>,
    valid_until: Option<NaiveDate>,
    header_discount_pct: Decimal,
    list_total: Decimal,
    subtotal: Decimal,
    discount_amount: Decimal,
    net_amount: Decimal,
    tax_amount: Decimal,
    total: Decimal,
    effective_discount_pct: Decimal,
    cost_total: Decimal,
    gross_margin: Decimal,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    status_changed_at: DateTime<Utc>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = contracts)]
struct DemoContract {
    id: Uuid,
    number: String,
    opportunity_id: Uuid,
    account_id: Uuid,
    quote_id: Option<Uuid>,
    title: String,
    amount: Decimal,
    currency: String,
    lines: serde_json::Value,
    status: String,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    signed_at: Option<DateTime<Utc>>,
    signed_copy_ref: Option<String>,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = status_transitions)]
struct DemoTransition {
    entity_type: &'static str,
    entity_id: Uuid,
    from_status: Option<&'static str>,
    to_status: &'static str,
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
}

/// (instance, at, actor, action, step, details).
type HistoryEntry = (
    Uuid,
    DateTime<Utc>,
    Option<Uuid>,
    &'static str,
    Option<i32>,
    serde_json::Value,
);

#[derive(Default)]
struct Batch {
    quotes: Vec<DemoQuote>,
    lines: Vec<QuoteLineRow>,
    contracts: Vec<DemoContract>,
    installments: Vec<InstallmentRow>,
    payments: Vec<PaymentRow>,
    allocations: Vec<(Uuid, Uuid, Decimal)>,
    transitions: Vec<DemoTransition>,
    instances: Vec<InstanceRow>,
    tasks: Vec<TaskRow>,
    history: Vec<HistoryEntry>,
}

impl Batch {
    fn flush(&mut self, c: &mut PgConnection) -> QueryResult<()> {
        for chunk in self.quotes.chunks(1000) {
            diesel::insert_into(quotes::table).values(chunk).execute(c)?;
        }
        for chunk in self.lines.chunks(1000) {
            diesel::insert_into(quote_lines::table).values(chunk).execute(c)?;
        }
        for chunk in self.instances.chunks(1000) {
            diesel::insert_into(approval_instances::table)
                .values(chunk)
                .execute(c)?;
        }
        for chunk in self.tasks.chunks(1000) {
            diesel::insert_into(approval_tasks::table).values(chunk).execute(c)?;
        }
        for chunk in self.history.chunks(1000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|(i, at, actor, action, step, details)| {
                    (
                        approval_history::instance_id.eq(*i),
                        approval_history::at.eq(*at),
                        approval_history::actor_id.eq(*actor),
                        approval_history::action.eq(*action),
                        approval_history::step_index.eq(*step),
                        approval_history::details.eq(details.clone()),
                    )
                })
                .collect();
            diesel::insert_into(approval_history::table).values(rows).execute(c)?;
        }
        for chunk in self.contracts.chunks(1000) {
            diesel::insert_into(contracts::table).values(chunk).execute(c)?;
        }
        for chunk in self.installments.chunks(1000) {
            diesel::insert_into(installments::table).values(chunk).execute(c)?;
        }
        for chunk in self.payments.chunks(1000) {
            diesel::insert_into(payments::table).values(chunk).execute(c)?;
        }
        for chunk in self.allocations.chunks(1000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|(p, i, a)| {
                    (
                        payment_allocations::payment_id.eq(*p),
                        payment_allocations::installment_id.eq(*i),
                        payment_allocations::amount.eq(*a),
                    )
                })
                .collect();
            diesel::insert_into(payment_allocations::table)
                .values(rows)
                .execute(c)?;
        }
        for chunk in self.transitions.chunks(1000) {
            diesel::insert_into(status_transitions::table)
                .values(chunk)
                .execute(c)?;
        }
        *self = Batch::default();
        Ok(())
    }
}

/// Seeds the demo when no quote exists; needs the demo organisation and pipeline data.
pub fn seed(c: &mut PgConnection) -> QueryResult<Q2cReport> {
    c.transaction(|c| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(4242003)").execute(c)?;
        // Seed data is written directly, not as audited business writes.
        diesel::sql_query("SET LOCAL crm.unaudited_writes = 'allowed'").execute(c)?;
        #[derive(QueryableByName)]
        struct Flag {
            #[diesel(sql_type = Bool)]
            b: bool,
        }
        let done: Flag =
            diesel::sql_query("SELECT EXISTS (SELECT 1 FROM quotes) OR NOT EXISTS (SELECT 1 FROM opportunities) AS b")
                .get_result(c)?;
        if done.b {
            return Ok(Q2cReport::default());
        }
        seed_in_tx(c)
    })
}

fn user_with_role(c: &mut PgConnection, role: &str) -> QueryResult<Option<Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let r: Option<Id> = diesel::sql_query(
        "SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id \
         WHERE r.key = $1 AND u.is_active ORDER BY u.email LIMIT 1",
    )
    .bind::<Text, _>(role)
    .get_result(c)
    .optional()?;
    Ok(r.map(|r| r.id))
}

fn seed_in_tx(c: &mut PgConnection) -> QueryResult<Q2cReport> {
    let mut rng = StdRng::seed_from_u64(20261129);
    let mut report = Q2cReport::default();
    let director = user_with_role(c, "sales_director")?;
    let finance = user_with_role(c, "finance")?;
    let legal = user_with_role(c, "legal")?;

    // Catalogue and books.
    let book: Uuid = price_books::table
        .filter(price_books::is_default.eq(true))
        .filter(price_books::currency.eq("CNY"))
        .select(price_books::id)
        .first(c)?;
    let tier_a = Uuid::now_v7();
    diesel::insert_into(price_books::table)
        .values((
            price_books::id.eq(tier_a),
            price_books::name.eq("A 类客户价目表 Tier A"),
            price_books::currency.eq("CNY"),
            price_books::tier.eq(Some("A")),
        ))
        .execute(c)?;
    let mut catalogue = Vec::new();
    for (code, name, unit, price, cost, tax) in PRODUCTS {
        let p = NewProduct {
            id: Uuid::now_v7(),
            code: (*code).into(),
            name: (*name).into(),
            unit: (*unit).into(),
            category: Some(
                if code.starts_with("SVC") {
                    "服务 Services"
                } else {
                    "软件 Software"
                }
                .into(),
            ),
            list_price: Decimal::from(*price),
            standard_cost: Decimal::from(*cost),
            tax_rate: Decimal::from(*tax),
            active: true,
        };
        diesel::insert_into(products::table).values(&p).execute(c)?;
        for (b, factor) in [(book, 100), (tier_a, 90)] {
            diesel::insert_into(price_book_entries::table)
                .values((
                    price_book_entries::price_book_id.eq(b),
                    price_book_entries::product_id.eq(p.id),
                    price_book_entries::unit_price.eq(Decimal::from(*price * factor / 100)),
                ))
                .execute(c)?;
        }
        catalogue.push(p);
    }
    report.products = catalogue.len();

    let deals: Vec<Deal> = diesel::sql_query(
        "SELECT o.id, o.account_id, o.name, o.amount, o.owner_id, o.team_id, o.status, s.code AS stage, \
         o.stage_entered_at, o.closed_at \
         FROM opportunities o JOIN stages s ON s.id = o.stage_id \
         WHERE o.deleted_at IS NULL AND o.amount IS NOT NULL AND o.amount > 0 \
           AND (o.status = 'won' OR s.code IN ('negotiation', 'closing')) \
         ORDER BY coalesce(o.closed_at, o.stage_entered_at), o.id",
    )
    .load(c)?;
    let now = Utc::now();
    let today = (now + Duration::hours(8)).date_naive();
    let mut quote_seq: std::collections::BTreeMap<i32, i32> = Default::default();
    let mut contract_seq: std::collections::BTreeMap<i32, i32> = Default::default();
    let mut batch = Batch::default();
    let mut pending_left = 8;
    for d in &deals {
        let won = d.status == "won";
        let created = if won {
            d.closed_at.unwrap_or(d.stage_entered_at) - Duration::days(rng.random_range(7..30))
        } else {
            d.stage_entered_at + Duration::hours(rng.random_range(2..72))
        }
        .min(now);
        // Lines: the main product plus services, list prices scaled so the net after the
        // discount equals the deal amount.
        let main = &catalogue[rng.random_range(0..3)];
        let svc = &catalogue[3 + rng.random_range(0..3)];
        let discount = Decimal::from(rng.random_range(0..25));
        let wants_pending = !won && d.status == "open" && pending_left > 0 && d.stage == "negotiation";
        // 30% on the main product is at least 18% overall: above the director threshold.
        let discount = if wants_pending { Decimal::from(30) } else { discount };
        let share = Decimal::from(rng.random_range(60..85));
        let target = d.amount;
        let main_net = crm_domain::money::cents(target * share / Decimal::from(100));
        let svc_net = target - main_net;
        let factor = Decimal::from(100) - discount;
        let list_of = |net: Decimal| crm_domain::money::cents(net * Decimal::from(100) / factor);
        let inputs = [
            (main, list_of(main_net), discount, main_net),
            (svc, svc_net, Decimal::ZERO, svc_net),
        ];
        let money_lines: Vec<LineInput> = inputs
            .iter()
            .map(|(p, list, disc, _)| LineInput {
                quantity: Decimal::ONE,
                unit_list_price: *list,
                unit_price: *list,
                discount_pct: *disc,
                tax_rate: p.tax_rate,
                unit_cost: crm_domain::money::cents(p.standard_cost * *list / p.list_price),
            })
            .collect();
        let (amounts, t) = compute_quote(&money_lines, Decimal::ZERO);
        let qid = Uuid::now_v7();
        let year = created.year();
        let qn = quote_seq.entry(year).or_default();
        *qn += 1;
        let status: &'static str = if won {
            "accepted"
        } else if wants_pending {
            "pending_approval"
        } else if d.stage == "closing" {
            "accepted"
        } else {
            "sent"
        };
        batch.quotes.push(DemoQuote {
            id: qid,
            opportunity_id: d.id,
            number: format!("BJ-{year}-{:06}", *qn),
            revision: 1,
            status: status.into(),
            currency: "CNY".into(),
            price_book_id: Some(book),
            valid_until: Some((created + Duration::days(60)).date_naive()),
            header_discount_pct: Decimal::ZERO,
            list_total: t.list_total,
            subtotal: t.subtotal,
            discount_amount: t.discount_amount,
            net_amount: t.net_amount,
            tax_amount: t.tax_amount,
            total: t.total,
            effective_discount_pct: t.effective_discount_pct,
            cost_total: t.cost_total,
            gross_margin: t.gross_margin,
            owner_id: d.owner_id,
            team_id: d.team_id,
            status_changed_at: created + Duration::hours(4),
            created_by: Some(d.owner_id),
            created_at: created,
            updated_at: created + Duration::hours(4),
        });
        let mut line_json = Vec::new();
        for (i, ((p, list, disc, _), a)) in inputs.iter().zip(&amounts).enumerate() {
            let row = QuoteLineRow {
                id: Uuid::now_v7(),
                quote_id: qid,
                position: i as i32 + 1,
                product_id: Some(p.id),
                description: p.name.clone(),
                unit: Some(p.unit.clone()),
                quantity: Decimal::ONE,
                unit_list_price: *list,
                unit_price: *list,
                discount_pct: *disc,
                tax_rate: p.tax_rate,
                unit_cost: money_lines[i].unit_cost,
                list_amount: a.list_amount,
                net_amount: a.net_amount,
                tax_amount: a.tax_amount,
                total: a.total,
            };
            line_json.push(json!({
                "product_id": p.id, "description": p.name, "quantity": "1", "unit_price": row.unit_price,
                "discount_pct": row.discount_pct, "net_amount": row.net_amount, "total": row.total,
            }));
            batch.lines.push(row);
        }
        // Approval: auto at or below 15%, else the director.
        let needs_director = t.effective_discount_pct > Decimal::from(15) && director.is_some();
        let submitted = created + Duration::hours(1);
        let decided = created + Duration::hours(3);
        let inst_id = Uuid::now_v7();
        let inst_status = match (needs_director, status) {
            (false, _) => "auto_approved",
            (true, "pending_approval") => "pending",
            (true, _) => "approved",
        };
        batch.instances.push(InstanceRow {
            id: inst_id,
            definition_id: None,
            object_type: "quote".into(),
            object_id: qid,
            status: inst_status.into(),
            requester_id: d.owner_id,
            owner_id: d.owner_id,
            current_step: needs_director.then_some(0),
            snapshot: json!({"record": {"id": qid, "total": t.total, "effective_discount_pct": t.effective_discount_pct,
                                         "discount_pct": t.effective_discount_pct, "opportunity_id": d.id}}),
            created_at: submitted,
            decided_at: (inst_status != "pending").then_some(decided),
            version: 1,
        });
        batch
            .history
            .push((inst_id, submitted, Some(d.owner_id), "submitted", None, json!({})));
        if needs_director {
            let done = inst_status == "approved";
            batch.tasks.push(TaskRow {
                id: Uuid::now_v7(),
                instance_id: inst_id,
                step_index: 0,
                approver_id: director.unwrap_or(d.owner_id),
                status: if done { "approved" } else { "pending" }.into(),
                comment: done.then(|| "同意 Approved".to_owned()),
                delegated_from: None,
                due_at: Some(if done { submitted } else { now } + Duration::hours(24)),
                decided_at: done.then_some(decided),
                created_at: submitted,
            });
            batch.history.push((
                inst_id,
                submitted,
                None,
                "step_opened",
                Some(0),
                json!({"approvers": [director]}),
            ));
            if done {
                batch
                    .history
                    .push((inst_id, decided, director, "approved", Some(0), json!({})));
                batch.history.push((
                    inst_id,
                    decided,
                    None,
                    "completed",
                    Some(0),
                    json!({"outcome": "approved"}),
                ));
            } else {
                pending_left -= 1;
                report.pending_approvals += 1;
            }
        } else {
            batch
                .history
                .push((inst_id, submitted, None, "auto_approved", None, json!({})));
        }
        let mut path: Vec<&'static str> = vec!["draft", "pending_approval"];
        match status {
            "pending_approval" => {}
            "sent" => path.extend(["approved", "sent"]),
            _ => path.extend(["approved", "sent", "accepted"]),
        }
        let mut prev: Option<&'static str> = None;
        for (i, s) in path.iter().enumerate() {
            batch.transitions.push(DemoTransition {
                entity_type: "quote",
                entity_id: qid,
                from_status: prev,
                to_status: s,
                at: created + Duration::minutes(50 * i as i64),
                actor_id: Some(d.owner_id),
            });
            prev = Some(s);
        }
        report.quotes += 1;

        if !won {
            continue;
        }
        // Contract, plan and payments for won deals.
        let signed_at = d.closed_at.unwrap_or(now).min(now);
        let cyear = signed_at.year();
        let cn = contract_seq.entry(cyear).or_default();
        *cn += 1;
        let kid = Uuid::now_v7();
        let start = (signed_at + Duration::days(7)).date_naive();
        let first_due = (signed_at + Duration::days(15)).date_naive();
        let second_due = (signed_at + Duration::days(90)).date_naive();
        let half = crm_domain::money::cents(t.total / Decimal::from(2));
        let plan = [(first_due, half), (second_due, t.total - half)];
        let mut dues = Vec::new();
        for (i, (due, amount)) in plan.iter().enumerate() {
            let iid = Uuid::now_v7();
            batch.installments.push(InstallmentRow {
                id: iid,
                contract_id: kid,
                seq: i as i32 + 1,
                due_date: *due,
                amount: *amount,
                note: Some(
                    if i == 0 {
                        "首付款 Down payment"
                    } else {
                        "验收款 Acceptance"
                    }
                    .into(),
                ),
            });
            dues.push(Due {
                installment_id: iid,
                due_date: *due,
                outstanding: *amount,
            });
        }
        let mut paid = Decimal::ZERO;
        for (i, (due, amount)) in plan.iter().enumerate() {
            // Most pay on time; some late, some not yet.
            let late = rng.random_range(-10..40i64);
            let on = *due + Duration::days(late);
            if on > today || rng.random_range(0..100) < 8 {
                continue;
            }
            let pid = Uuid::now_v7();
            let allocs = allocate(*amount, &dues[i..=i], None).unwrap_or_default();
            for (inst, a) in &allocs {
                batch.allocations.push((pid, *inst, *a));
            }
            paid += *amount;
            batch.payments.push(PaymentRow {
                id: pid,
                contract_id: kid,
                account_id: d.account_id,
                amount: *amount,
                received_on: on,
                method: if rng.random_range(0..10) < 8 {
                    "bank_transfer"
                } else {
                    "wechat_pay"
                }
                .into(),
                reference: Some(format!("BANK-{}", &pid.simple().to_string()[20..])),
                note: None,
                owner_id: d.owner_id,
                team_id: d.team_id,
                created_by: finance,
                created_at: DateTime::<Utc>::from_naive_utc_and_offset(
                    on.and_hms_opt(2, 0, 0).unwrap_or_default(),
                    Utc,
                ),
                version: 1,
                prepayment: false,
            });
            report.payments += 1;
        }
        let kstatus: &'static str = if paid == t.total && second_due < today - chrono::Days::new(30) {
            "completed"
        } else if start <= today {
            "active"
        } else {
            "signed"
        };
        batch.contracts.push(DemoContract {
            id: kid,
            number: format!("HT-{cyear}-{:05}", *cn),
            opportunity_id: d.id,
            account_id: d.account_id,
            quote_id: Some(qid),
            title: format!("{} 合同", d.name),
            amount: t.total,
            currency: "CNY".into(),
            lines: serde_json::Value::Array(line_json),
            status: kstatus.into(),
            start_date: Some(start),
            end_date: Some(start + Duration::days(365)),
            signed_at: Some(signed_at),
            signed_copy_ref: Some(format!("contracts/{kid}/signed.pdf")),
            owner_id: d.owner_id,
            team_id: d.team_id,
            created_by: Some(d.owner_id),
            created_at: signed_at - Duration::days(5),
            updated_at: signed_at,
        });
        let mut prev: Option<&'static str> = None;
        let mut kpath = vec!["draft", "legal_review", "pending_signature", "signed"];
        if kstatus != "signed" {
            kpath.push("active");
        }
        if kstatus == "completed" {
            kpath.push("completed");
        }
        for (i, s) in kpath.iter().enumerate() {
            batch.transitions.push(DemoTransition {
                entity_type: "contract",
                entity_id: kid,
                from_status: prev,
                to_status: s,
                at: signed_at - Duration::days(5) + Duration::days(i as i64 * 2).min(Duration::days(5)),
                actor_id: if *s == "pending_signature" {
                    legal
                } else {
                    Some(d.owner_id)
                },
            });
            prev = Some(s);
        }
        report.contracts += 1;
        if batch.quotes.len() >= 2000 {
            batch.flush(c)?;
        }
    }
    batch.flush(c)?;
    for (series, seqs) in [("quote", &quote_seq), ("contract", &contract_seq)] {
        for (year, last) in seqs {
            diesel::sql_query(
                "INSERT INTO number_sequences (series, year, last_value) VALUES ($1, $2, $3) \
                 ON CONFLICT (series, year) DO UPDATE SET last_value = greatest(number_sequences.last_value, $3)",
            )
            .bind::<Text, _>(series)
            .bind::<diesel::sql_types::Int4, _>(*year)
            .bind::<diesel::sql_types::Int4, _>(*last)
            .execute(c)?;
        }
    }
    diesel::sql_query("ANALYZE quotes, quote_lines, contracts, installments, payments, payment_allocations")
        .execute(c)?;
    Ok(report)
}
