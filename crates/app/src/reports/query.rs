//! Ad-hoc report queries: an object, measures, dimensions (fields, custom fields,
//! related fields, time buckets), a filter in the shared expression format, sort and
//! limit; checked against the report field catalogue below and the caller's field
//! permissions, and compiled to one parameterised statement with the caller's data
//! scope built in. Field names select expressions from the catalogue; values are only
//! ever bound as parameters.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use crm_db::sql::{escape_like, Sql};
use crm_domain::expr::{Expr, Op};
use crm_domain::fields::{FieldAccess, FieldType};
use crm_domain::FieldError;
use diesel::prelude::*;
use diesel::sql_types::{self, Jsonb};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::read_scope;
use crate::error::{AppError, AppResult};
use crate::Ctx;

/// Rows a query answers unless it asks for fewer or more.
pub const DEFAULT_ROWS: i64 = 1000;
/// The most rows a query may answer.
pub const MAX_ROWS: i64 = 10_000;
const MAX_DIMENSIONS: usize = 4;
const MAX_MEASURES: usize = 8;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Number,
    Money,
    Integer,
    Date,
    Timestamp,
    Bool,
    Id,
}

impl Ty {
    pub fn as_str(self) -> &'static str {
        match self {
            Ty::Text => "text",
            Ty::Number => "number",
            Ty::Money => "money",
            Ty::Integer => "integer",
            Ty::Date => "date",
            Ty::Timestamp => "datetime",
            Ty::Bool => "boolean",
            Ty::Id => "id",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Number | Ty::Money | Ty::Integer)
    }

    fn of_custom(t: FieldType) -> Ty {
        match t {
            FieldType::Integer => Ty::Integer,
            FieldType::Decimal | FieldType::Percent => Ty::Number,
            FieldType::Money => Ty::Money,
            FieldType::Boolean => Ty::Bool,
            _ => Ty::Text,
        }
    }
}

/// A field reports may read: its key, its SQL over the alias `{a}`, type and labels.
struct QField {
    key: &'static str,
    expr: &'static str,
    ty: Ty,
    zh: &'static str,
    en: &'static str,
}

const fn q(key: &'static str, expr: &'static str, ty: Ty, zh: &'static str, en: &'static str) -> QField {
    QField { key, expr, ty, zh, en }
}

/// Fields of another record reachable from the object (`account.industry`).
struct Relation {
    name: &'static str,
    /// The object whose field permissions apply (and whose custom fields exist).
    object: &'static str,
    alias: &'static str,
    /// Joined when used; none when the object's base already joins it.
    join: Option<&'static str>,
    fields: &'static [QField],
    custom: bool,
}

/// An object ad-hoc queries run over.
struct QObject {
    name: &'static str,
    /// Whose `<resource>:read` scope applies, on `scope_alias`.
    resource: &'static str,
    scope_alias: &'static str,
    from: &'static str,
    live: &'static str,
    /// The currency of the object's money fields.
    currency: Option<&'static str>,
    fields: &'static [QField],
    relations: &'static [Relation],
    custom: bool,
}

use Ty::{Bool, Date, Id, Integer, Money, Number, Text, Timestamp};

const ACCOUNT: &[QField] = &[
    q("id", "{a}.id", Id, "客户", "Account"),
    q("name", "{a}.name", Text, "客户名称", "Account name"),
    q("type", "{a}.account_type", Text, "类型", "Type"),
    q("industry", "{a}.industry", Text, "行业", "Industry"),
    q("region", "{a}.region", Text, "区域", "Region"),
    q("tier", "{a}.tier", Text, "客户等级", "Tier"),
    q("source", "{a}.source", Text, "来源", "Source"),
    q("parent_id", "{a}.parent_id", Id, "上级客户", "Parent account"),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q(
        "last_activity_at",
        "{a}.last_activity_at",
        Timestamp,
        "最近跟进",
        "Last activity",
    ),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
    q("updated_at", "{a}.updated_at", Timestamp, "更新时间", "Updated at"),
];

const CONTACT: &[QField] = &[
    q("id", "{a}.id", Id, "联系人", "Contact"),
    q("name", "{a}.name", Text, "姓名", "Name"),
    q("title", "{a}.title", Text, "职位", "Title"),
    q("department", "{a}.department", Text, "部门", "Department"),
    q("decision_role", "{a}.decision_role", Text, "决策角色", "Decision role"),
    q("account_id", "{a}.account_id", Id, "所属客户", "Account"),
    q("birthday", "{a}.birthday", Date, "生日", "Birthday"),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q(
        "last_activity_at",
        "{a}.last_activity_at",
        Timestamp,
        "最近跟进",
        "Last activity",
    ),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
];

const LEAD: &[QField] = &[
    q("id", "{a}.id", Id, "线索", "Lead"),
    q("person_name", "{a}.person_name", Text, "姓名", "Name"),
    q("company", "{a}.company", Text, "公司", "Company"),
    q("source", "{a}.source", Text, "来源", "Source"),
    q("campaign", "{a}.campaign", Text, "市场活动", "Campaign"),
    q("region", "{a}.region", Text, "区域", "Region"),
    q("industry", "{a}.industry", Text, "行业", "Industry"),
    q(
        "estimated_budget",
        "{a}.estimated_budget",
        Number,
        "预算",
        "Estimated budget",
    ),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q("status", "{a}.status", Text, "状态", "Status"),
    q("assigned_at", "{a}.assigned_at", Timestamp, "分配时间", "Assigned at"),
    q(
        "first_response_at",
        "{a}.first_response_at",
        Timestamp,
        "首次响应",
        "First response",
    ),
    q(
        "converted_at",
        "{a}.converted_at",
        Timestamp,
        "转化时间",
        "Converted at",
    ),
    q(
        "last_activity_at",
        "{a}.last_activity_at",
        Timestamp,
        "最近跟进",
        "Last activity",
    ),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
];

const OPPORTUNITY: &[QField] = &[
    q("id", "{a}.id", Id, "商机", "Opportunity"),
    q("name", "{a}.name", Text, "商机名称", "Name"),
    q("account_id", "{a}.account_id", Id, "客户", "Account"),
    q("pipeline_id", "{a}.pipeline_id", Id, "销售流程", "Pipeline"),
    q("stage_id", "{a}.stage_id", Id, "阶段", "Stage"),
    q("amount", "{a}.amount", Money, "金额", "Amount"),
    q("currency", "{a}.currency", Text, "币种", "Currency"),
    q(
        "expected_close_date",
        "{a}.expected_close_date",
        Date,
        "预计成交日期",
        "Expected close",
    ),
    q("probability", "{a}.probability", Integer, "赢率", "Probability"),
    q(
        "weighted_amount",
        "round({a}.amount * {a}.probability / 100.0, 2)",
        Money,
        "加权金额",
        "Weighted amount",
    ),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q("status", "{a}.status", Text, "状态", "Status"),
    q("lost_reason", "{a}.lost_reason", Text, "输单原因", "Lost reason"),
    q("closed_at", "{a}.closed_at", Timestamp, "关闭时间", "Closed at"),
    q(
        "stage_entered_at",
        "{a}.stage_entered_at",
        Timestamp,
        "进入阶段时间",
        "Stage entered at",
    ),
    q(
        "last_activity_at",
        "{a}.last_activity_at",
        Timestamp,
        "最近跟进",
        "Last activity",
    ),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
    q("updated_at", "{a}.updated_at", Timestamp, "更新时间", "Updated at"),
];

const STAGE: &[QField] = &[
    q("id", "{a}.id", Id, "阶段", "Stage"),
    q("code", "{a}.code", Text, "阶段代码", "Stage code"),
    q("name", "{a}.name", Text, "阶段名称", "Stage name"),
    q("kind", "{a}.kind", Text, "阶段类型", "Stage kind"),
    q("position", "{a}.position", Integer, "阶段顺序", "Stage position"),
    q(
        "probability",
        "{a}.probability",
        Integer,
        "阶段赢率",
        "Stage probability",
    ),
];

const USER: &[QField] = &[
    q("id", "{a}.id", Id, "用户", "User"),
    q("name", "{a}.name", Text, "姓名", "Name"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
];

const TEAM: &[QField] = &[
    q("id", "{a}.id", Id, "团队", "Team"),
    q("name", "{a}.name", Text, "团队名称", "Team name"),
    q("region", "{a}.region", Text, "团队区域", "Team region"),
    q("parent_id", "{a}.parent_id", Id, "上级团队", "Parent team"),
];

const PIPELINE: &[QField] = &[
    q("id", "{a}.id", Id, "销售流程", "Pipeline"),
    q("name", "{a}.name", Text, "流程名称", "Pipeline name"),
];

const PRODUCT: &[QField] = &[
    q("id", "{a}.id", Id, "产品", "Product"),
    q("code", "{a}.code", Text, "产品编码", "Code"),
    q("name", "{a}.name", Text, "产品名称", "Name"),
    q("category", "{a}.category", Text, "类别", "Category"),
    q("unit", "{a}.unit", Text, "单位", "Unit"),
];

const QUOTE: &[QField] = &[
    q("id", "{a}.id", Id, "报价单", "Quote"),
    q("opportunity_id", "{a}.opportunity_id", Id, "商机", "Opportunity"),
    q("number", "{a}.number", Text, "报价单号", "Number"),
    q("revision", "{a}.revision", Integer, "版本", "Revision"),
    q("status", "{a}.status", Text, "状态", "Status"),
    q("currency", "{a}.currency", Text, "币种", "Currency"),
    q("valid_until", "{a}.valid_until", Date, "有效期至", "Valid until"),
    q(
        "header_discount_pct",
        "{a}.header_discount_pct",
        Number,
        "整单折扣",
        "Header discount",
    ),
    q("list_total", "{a}.list_total", Money, "标准价合计", "List total"),
    q("subtotal", "{a}.subtotal", Money, "小计", "Subtotal"),
    q(
        "discount_amount",
        "{a}.discount_amount",
        Money,
        "折扣额",
        "Discount amount",
    ),
    q(
        "effective_discount_pct",
        "{a}.effective_discount_pct",
        Number,
        "综合折扣率",
        "Effective discount",
    ),
    q("net_amount", "{a}.net_amount", Money, "未税金额", "Net amount"),
    q("tax_amount", "{a}.tax_amount", Money, "税额", "Tax"),
    q("total", "{a}.total", Money, "含税总额", "Total"),
    q("cost_total", "{a}.cost_total", Money, "成本合计", "Cost total"),
    q("gross_margin", "{a}.gross_margin", Money, "毛利", "Gross margin"),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q(
        "status_changed_at",
        "{a}.status_changed_at",
        Timestamp,
        "状态变更时间",
        "Status changed at",
    ),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
];

const CONTRACT: &[QField] = &[
    q("id", "{a}.id", Id, "合同", "Contract"),
    q("number", "{a}.number", Text, "合同编号", "Number"),
    q("title", "{a}.title", Text, "合同名称", "Title"),
    q("opportunity_id", "{a}.opportunity_id", Id, "商机", "Opportunity"),
    q("account_id", "{a}.account_id", Id, "客户", "Account"),
    q("quote_id", "{a}.quote_id", Id, "报价单", "Quote"),
    q("amount", "{a}.amount", Money, "合同金额", "Amount"),
    q("currency", "{a}.currency", Text, "币种", "Currency"),
    q("status", "{a}.status", Text, "状态", "Status"),
    q("start_date", "{a}.start_date", Date, "开始日期", "Start date"),
    q("end_date", "{a}.end_date", Date, "结束日期", "End date"),
    q("signed_at", "{a}.signed_at", Timestamp, "签订时间", "Signed at"),
    q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
    q("team_id", "{a}.team_id", Id, "团队", "Team"),
    q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
];

const fn rel(
    name: &'static str,
    object: &'static str,
    join: &'static str,
    fields: &'static [QField],
    custom: bool,
) -> Relation {
    Relation {
        name,
        object,
        alias: name,
        join: Some(join),
        fields,
        custom,
    }
}

const OWNER: Relation = rel(
    "owner",
    "users",
    "LEFT JOIN users owner ON owner.id = t.owner_id",
    USER,
    false,
);
const TEAM_REL: Relation = rel(
    "team",
    "teams",
    "LEFT JOIN teams team ON team.id = t.team_id",
    TEAM,
    false,
);

static OBJECTS: &[QObject] = &[
    QObject {
        name: "leads",
        resource: "leads",
        scope_alias: "t",
        from: "leads t",
        live: "t.deleted_at IS NULL",
        currency: None,
        fields: LEAD,
        relations: &[OWNER, TEAM_REL],
        custom: true,
    },
    QObject {
        name: "accounts",
        resource: "accounts",
        scope_alias: "t",
        from: "accounts t",
        live: "t.deleted_at IS NULL",
        currency: None,
        fields: ACCOUNT,
        relations: &[OWNER, TEAM_REL],
        custom: true,
    },
    QObject {
        name: "contacts",
        resource: "contacts",
        scope_alias: "t",
        from: "contacts t",
        live: "t.deleted_at IS NULL",
        currency: None,
        fields: CONTACT,
        relations: &[
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = t.account_id",
                ACCOUNT,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: true,
    },
    QObject {
        name: "opportunities",
        resource: "opportunities",
        scope_alias: "t",
        from: "opportunities t",
        live: "t.deleted_at IS NULL",
        currency: Some("t.currency"),
        fields: OPPORTUNITY,
        relations: &[
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = t.account_id",
                ACCOUNT,
                true,
            ),
            rel(
                "stage",
                "stages",
                "LEFT JOIN stages stage ON stage.id = t.stage_id",
                STAGE,
                false,
            ),
            rel(
                "pipeline",
                "pipelines",
                "LEFT JOIN pipelines pipeline ON pipeline.id = t.pipeline_id",
                PIPELINE,
                false,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: true,
    },
    QObject {
        name: "stage_history",
        resource: "opportunities",
        scope_alias: "opportunity",
        from: "stage_history t JOIN opportunities opportunity ON opportunity.id = t.opportunity_id",
        live: "opportunity.deleted_at IS NULL",
        currency: Some("opportunity.currency"),
        fields: &[
            q("id", "{a}.id", Integer, "记录", "Entry"),
            q("opportunity_id", "{a}.opportunity_id", Id, "商机", "Opportunity"),
            q("from_stage_id", "{a}.from_stage_id", Id, "原阶段", "From stage"),
            q("to_stage_id", "{a}.to_stage_id", Id, "阶段", "Stage"),
            q("entered_at", "{a}.entered_at", Timestamp, "进入时间", "Entered at"),
            q("left_at", "{a}.left_at", Timestamp, "离开时间", "Left at"),
            q("changed_by", "{a}.changed_by", Id, "操作人", "Changed by"),
            q("amount", "{a}.amount", Money, "当时金额", "Amount then"),
            q(
                "probability",
                "{a}.probability",
                Integer,
                "当时赢率",
                "Probability then",
            ),
            q(
                "dwell_days",
                "round(extract(epoch FROM {a}.left_at - {a}.entered_at) / 86400.0, 2)",
                Number,
                "停留天数",
                "Dwell days",
            ),
        ],
        relations: &[
            Relation {
                name: "opportunity",
                object: "opportunities",
                alias: "opportunity",
                join: None,
                fields: OPPORTUNITY,
                custom: true,
            },
            rel(
                "stage",
                "stages",
                "LEFT JOIN stages stage ON stage.id = t.to_stage_id",
                STAGE,
                false,
            ),
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = opportunity.account_id",
                ACCOUNT,
                true,
            ),
            rel(
                "owner",
                "users",
                "LEFT JOIN users owner ON owner.id = opportunity.owner_id",
                USER,
                false,
            ),
        ],
        custom: false,
    },
    QObject {
        name: "activities",
        resource: "activities",
        scope_alias: "t",
        from: "activities t",
        live: "t.deleted_at IS NULL",
        currency: None,
        fields: &[
            q("id", "{a}.id", Id, "跟进记录", "Activity"),
            q("type", "{a}.activity_type", Text, "类型", "Type"),
            q("subject", "{a}.subject", Text, "主题", "Subject"),
            q("occurred_at", "{a}.occurred_at", Timestamp, "发生时间", "Occurred at"),
            q(
                "duration_minutes",
                "{a}.duration_minutes",
                Integer,
                "时长(分)",
                "Duration (min)",
            ),
            q("outcome", "{a}.outcome", Text, "结果", "Outcome"),
            q("lead_id", "{a}.lead_id", Id, "线索", "Lead"),
            q("account_id", "{a}.account_id", Id, "客户", "Account"),
            q("contact_id", "{a}.contact_id", Id, "联系人", "Contact"),
            q("opportunity_id", "{a}.opportunity_id", Id, "商机", "Opportunity"),
            q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
            q("team_id", "{a}.team_id", Id, "团队", "Team"),
            q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
        ],
        relations: &[
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = t.account_id",
                ACCOUNT,
                true,
            ),
            rel(
                "opportunity",
                "opportunities",
                "LEFT JOIN opportunities opportunity ON opportunity.id = t.opportunity_id",
                OPPORTUNITY,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: false,
    },
    QObject {
        name: "tasks",
        resource: "tasks",
        scope_alias: "t",
        from: "tasks t",
        live: "t.deleted_at IS NULL",
        currency: None,
        fields: &[
            q("id", "{a}.id", Id, "任务", "Task"),
            q("title", "{a}.title", Text, "标题", "Title"),
            q("priority", "{a}.priority", Text, "优先级", "Priority"),
            q("status", "{a}.status", Text, "状态", "Status"),
            q("due_at", "{a}.due_at", Timestamp, "截止时间", "Due at"),
            q(
                "completed_at",
                "{a}.completed_at",
                Timestamp,
                "完成时间",
                "Completed at",
            ),
            q("related_type", "{a}.related_type", Text, "关联对象", "Related object"),
            q("origin", "{a}.origin", Text, "来源", "Origin"),
            q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
            q("team_id", "{a}.team_id", Id, "团队", "Team"),
            q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
        ],
        relations: &[OWNER, TEAM_REL],
        custom: false,
    },
    QObject {
        name: "quotes",
        resource: "quotes",
        scope_alias: "t",
        from: "quotes t",
        live: "t.deleted_at IS NULL",
        currency: Some("t.currency"),
        fields: QUOTE,
        relations: &[
            rel(
                "opportunity",
                "opportunities",
                "LEFT JOIN opportunities opportunity ON opportunity.id = t.opportunity_id",
                OPPORTUNITY,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: false,
    },
    QObject {
        name: "quote_lines",
        resource: "quotes",
        scope_alias: "quote",
        from: "quote_lines t JOIN quotes quote ON quote.id = t.quote_id",
        live: "quote.deleted_at IS NULL",
        currency: Some("quote.currency"),
        fields: &[
            q("id", "{a}.id", Id, "明细", "Line"),
            q("quote_id", "{a}.quote_id", Id, "报价单", "Quote"),
            q("product_id", "{a}.product_id", Id, "产品", "Product"),
            q("description", "{a}.description", Text, "描述", "Description"),
            q("quantity", "{a}.quantity", Number, "数量", "Quantity"),
            q(
                "unit_list_price",
                "{a}.unit_list_price",
                Money,
                "标准单价",
                "Unit list price",
            ),
            q("unit_price", "{a}.unit_price", Money, "单价", "Unit price"),
            q("discount_pct", "{a}.discount_pct", Number, "折扣", "Discount"),
            q("unit_cost", "{a}.unit_cost", Money, "单位成本", "Unit cost"),
            q("list_amount", "{a}.list_amount", Money, "标准金额", "List amount"),
            q("net_amount", "{a}.net_amount", Money, "未税金额", "Net amount"),
            q("total", "{a}.total", Money, "含税金额", "Total"),
        ],
        relations: &[
            Relation {
                name: "quote",
                object: "quotes",
                alias: "quote",
                join: None,
                fields: QUOTE,
                custom: false,
            },
            rel(
                "product",
                "products",
                "LEFT JOIN products product ON product.id = t.product_id",
                PRODUCT,
                false,
            ),
        ],
        custom: false,
    },
    QObject {
        name: "contracts",
        resource: "contracts",
        scope_alias: "t",
        from: "contracts t",
        live: "t.deleted_at IS NULL",
        currency: Some("t.currency"),
        fields: CONTRACT,
        relations: &[
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = t.account_id",
                ACCOUNT,
                true,
            ),
            rel(
                "opportunity",
                "opportunities",
                "LEFT JOIN opportunities opportunity ON opportunity.id = t.opportunity_id",
                OPPORTUNITY,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: false,
    },
    QObject {
        name: "invoices",
        resource: "payments",
        scope_alias: "t",
        from: "invoices t JOIN contracts contract ON contract.id = t.contract_id",
        live: "TRUE",
        currency: Some("contract.currency"),
        fields: &[
            q("id", "{a}.id", Id, "发票", "Invoice"),
            q("number", "{a}.number", Text, "发票号", "Number"),
            q("contract_id", "{a}.contract_id", Id, "合同", "Contract"),
            q("amount", "{a}.amount", Money, "金额", "Amount"),
            q("tax_amount", "{a}.tax_amount", Money, "税额", "Tax"),
            q("issued_on", "{a}.issued_on", Date, "开票日期", "Issued on"),
            q("status", "{a}.status", Text, "状态", "Status"),
            q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
            q("team_id", "{a}.team_id", Id, "团队", "Team"),
            q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
        ],
        relations: &[
            Relation {
                name: "contract",
                object: "contracts",
                alias: "contract",
                join: None,
                fields: CONTRACT,
                custom: false,
            },
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = contract.account_id",
                ACCOUNT,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: false,
    },
    QObject {
        name: "payments",
        resource: "payments",
        scope_alias: "t",
        from: "payments t JOIN contracts contract ON contract.id = t.contract_id",
        live: "TRUE",
        currency: Some("contract.currency"),
        fields: &[
            q("id", "{a}.id", Id, "回款", "Payment"),
            q("contract_id", "{a}.contract_id", Id, "合同", "Contract"),
            q("account_id", "{a}.account_id", Id, "客户", "Account"),
            q("amount", "{a}.amount", Money, "回款金额", "Amount"),
            q("received_on", "{a}.received_on", Date, "到账日期", "Received on"),
            q("method", "{a}.method", Text, "方式", "Method"),
            q("prepayment", "{a}.prepayment", Bool, "预收款", "Prepayment"),
            q("owner_id", "{a}.owner_id", Id, "负责人", "Owner"),
            q("team_id", "{a}.team_id", Id, "团队", "Team"),
            q("created_at", "{a}.created_at", Timestamp, "创建时间", "Created at"),
        ],
        relations: &[
            Relation {
                name: "contract",
                object: "contracts",
                alias: "contract",
                join: None,
                fields: CONTRACT,
                custom: false,
            },
            rel(
                "account",
                "accounts",
                "LEFT JOIN accounts account ON account.id = t.account_id",
                ACCOUNT,
                true,
            ),
            OWNER,
            TEAM_REL,
        ],
        custom: false,
    },
];

/// The objects ad-hoc queries accept.
pub fn objects() -> Vec<&'static str> {
    OBJECTS.iter().map(|o| o.name).collect()
}

/// An aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl Agg {
    fn as_str(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::CountDistinct => "count_distinct",
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }
}

/// A time bucket of a date or timestamp dimension (in the business time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
            Bucket::Quarter => "quarter",
            Bucket::Year => "year",
        }
    }
}

/// One measure asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct MeasureSpec {
    pub agg: Agg,
    pub field: Option<String>,
}

/// One dimension asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct DimensionSpec {
    pub field: String,
    pub bucket: Option<Bucket>,
}

/// One sort key: a column key of the answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SortSpec {
    pub key: String,
    #[serde(default)]
    pub desc: bool,
}

/// An ad-hoc query.
#[derive(Debug, Clone, Deserialize)]
pub struct QuerySpec {
    pub object: String,
    #[serde(default)]
    pub measures: Vec<MeasureSpec>,
    #[serde(default)]
    pub dimensions: Vec<DimensionSpec>,
    pub filter: Option<Value>,
    #[serde(default)]
    pub sort: Vec<SortSpec>,
    pub limit: Option<i64>,
}

/// A column of the answer.
#[derive(Debug, Clone)]
pub struct Column {
    pub key: String,
    /// `dimension` or `measure`.
    pub role: &'static str,
    pub ty: Ty,
    pub label_zh: String,
    pub label_en: String,
    /// `currency` for amounts (the row's `currency` column says which), `percent`,
    /// `days`, `count`; none otherwise.
    pub unit: Option<&'static str>,
}

/// The answer: columns, rows (one JSON array per row, in column order), and whether
/// the limit cut it.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub object: &'static str,
    pub columns: Vec<Column>,
    pub rows: Vec<Value>,
    pub limit: i64,
    pub truncated: bool,
    /// `number`, `bar`, `stacked_bar`, `line` or `table`.
    pub chart: &'static str,
    /// What the engine added or assumed (e.g. a currency dimension beside sums).
    pub notes: Vec<String>,
    pub generated_at: DateTime<Utc>,
}

/// A resolved field: SQL, type, labels.
struct Resolved {
    sql: SqlExpr,
    ty: Ty,
    zh: String,
    en: String,
    /// Whether it belongs to a related record.
    related: bool,
    /// The related record's join, if one is needed.
    join: Option<&'static str>,
}

/// SQL of a field: literal text from the catalogue, or a custom field read from the
/// JSON document under a bound key.
#[derive(Clone)]
enum SqlExpr {
    Fixed(String),
    Custom { alias: &'static str, key: String, ty: Ty },
}

impl SqlExpr {
    fn push(&self, sql: &mut Sql<'_>) {
        match self {
            SqlExpr::Fixed(s) => {
                sql.push(s);
            }
            SqlExpr::Custom { alias, key, ty } => {
                let wrap = match ty {
                    Ty::Number | Ty::Money | Ty::Integer => ("crm_num(", ")"),
                    Ty::Bool => ("(", ")::boolean"),
                    _ => ("(", ")"),
                };
                sql.push(&format!("{}{alias}.custom ->> ", wrap.0));
                sql.bind::<sql_types::Text, _>(key.clone());
                sql.push(wrap.1);
            }
        }
    }
}

struct Resolver<'c> {
    ctx: &'c Ctx,
    object: &'static QObject,
    defs: Vec<crm_db::repo::fields::FieldDefRow>,
}

impl Resolver<'_> {
    /// `field`, `custom.key`, `relation.field` or `relation.custom.key`; `at` names the
    /// request member in errors.
    fn resolve(&self, path: &str, at: &str) -> AppResult<Resolved> {
        let unknown = || {
            AppError::field(
                at,
                "unknown_report_field",
                format!("`{path}` is not a field of {} reports can read", self.object.name),
            )
        };
        let parts: Vec<&str> = path.split('.').collect();
        let (relation, rest) = match parts.as_slice() {
            [f] => (None, vec![*f]),
            ["custom", k] => (None, vec!["custom", *k]),
            [r, rest @ ..] => (
                Some(
                    self.object
                        .relations
                        .iter()
                        .find(|x| x.name == *r)
                        .ok_or_else(unknown)?,
                ),
                rest.to_vec(),
            ),
            [] => return Err(unknown()),
        };
        let (object, alias, fields, custom) = match relation {
            Some(r) => (r.object, r.alias, r.fields, r.custom),
            None => (self.object.name, "t", self.object.fields, self.object.custom),
        };
        let readable = |object: &str, key: &str| -> AppResult<()> {
            if matches!(
                self.ctx.principal.field_access(object, key),
                FieldAccess::Hidden | FieldAccess::Masked
            ) {
                return Err(AppError::field(
                    at,
                    "field_not_readable",
                    format!("you may not read `{path}`"),
                ));
            }
            Ok(())
        };
        let (sql, ty, zh, en) = match rest.as_slice() {
            [key] => {
                let f = fields.iter().find(|f| f.key == *key).ok_or_else(unknown)?;
                readable(object, key)?;
                (
                    SqlExpr::Fixed(f.expr.replace("{a}", alias)),
                    f.ty,
                    f.zh.to_owned(),
                    f.en.to_owned(),
                )
            }
            ["custom", key] if custom => {
                let def = self
                    .defs
                    .iter()
                    .find(|d| d.object == object && d.key == *key && d.archived_at.is_none())
                    .ok_or_else(unknown)?;
                readable(object, &format!("custom.{key}"))?;
                let ty = Ty::of_custom(def.field_type());
                (
                    SqlExpr::Custom {
                        alias,
                        key: (*key).to_owned(),
                        ty,
                    },
                    ty,
                    def.label_zh.clone(),
                    def.label_en.clone(),
                )
            }
            _ => return Err(unknown()),
        };
        let (zh, en) = match relation {
            Some(r) => {
                let (rz, re) = relation_label(r.name);
                (format!("{rz}·{zh}"), format!("{re}: {en}"))
            }
            None => (zh, en),
        };
        Ok(Resolved {
            sql,
            ty,
            zh,
            en,
            related: relation.is_some(),
            join: relation.and_then(|r| r.join),
        })
    }
}

/// One selected expression: a field, a field in time buckets, or an aggregate.
type Select = (SqlExpr, Option<(Bucket, Ty)>, Option<Agg>);

/// Runs an ad-hoc query for the caller.
pub fn run(c: &mut PgConnection, ctx: &Ctx, spec: &QuerySpec) -> AppResult<QueryResult> {
    let object = OBJECTS.iter().find(|o| o.name == spec.object).ok_or_else(|| {
        AppError::field(
            "object",
            "unknown_report_object",
            format!("`{}` is not one of {}", spec.object, objects().join(", ")),
        )
    })?;
    let scope = read_scope(ctx, object.resource)
        .ok_or_else(|| AppError::forbidden(format!("missing permission {}:read", object.resource)))?;
    let mut errors: Vec<FieldError> = Vec::new();
    if spec.measures.is_empty() && spec.dimensions.is_empty() {
        errors.push(FieldError::new(
            "measures",
            "nothing_to_compute",
            "ask for a measure or a dimension",
        ));
    }
    if spec.measures.len() > MAX_MEASURES {
        errors.push(FieldError::new(
            "measures",
            "too_many",
            format!("at most {MAX_MEASURES} measures"),
        ));
    }
    if spec.dimensions.len() > MAX_DIMENSIONS {
        errors.push(FieldError::new(
            "dimensions",
            "too_many",
            format!("at most {MAX_DIMENSIONS} dimensions"),
        ));
    }
    let limit = spec.limit.unwrap_or(DEFAULT_ROWS);
    if !(1..=MAX_ROWS).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            "out_of_bounds",
            format!("between 1 and {MAX_ROWS}"),
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let defs = crm_db::repo::fields::list(c, "accounts", false)?
        .into_iter()
        .chain(crm_db::repo::fields::list(c, "contacts", false)?)
        .chain(crm_db::repo::fields::list(c, "leads", false)?)
        .chain(crm_db::repo::fields::list(c, "opportunities", false)?)
        .collect();
    let r = Resolver { ctx, object, defs };
    let tz: FixedOffset = crate::rules::calendar(c)?.offset();
    let offset_secs = tz.local_minus_utc();

    let mut joins: Vec<&'static str> = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    // (column key, select expression builder)
    let mut selects: Vec<Select> = Vec::new();
    let mut money_measure = false;
    let mut has_currency_dim = false;

    for (i, d) in spec.dimensions.iter().enumerate() {
        let at = format!("dimensions[{i}].field");
        let f = match r.resolve(&d.field, &at) {
            Ok(f) => f,
            Err(e) => {
                collect(&mut errors, e)?;
                continue;
            }
        };
        if let Some(b) = d.bucket {
            if !matches!(f.ty, Ty::Date | Ty::Timestamp) {
                errors.push(FieldError::new(
                    format!("dimensions[{i}].bucket"),
                    "not_a_date",
                    format!(
                        "`{}` is not a date or time, so it has no {} buckets",
                        d.field,
                        b.as_str()
                    ),
                ));
                continue;
            }
        }
        if let Some(j) = f.join {
            joins.push(j);
        }
        if d.field == "currency" && d.bucket.is_none() {
            has_currency_dim = true;
        }
        let key = match d.bucket {
            Some(b) => format!("{}:{}", d.field, b.as_str()),
            None => d.field.clone(),
        };
        let (zh, en) = match d.bucket {
            Some(b) => (
                format!("{}({})", f.zh, bucket_zh(b)),
                format!("{} ({})", f.en, b.as_str()),
            ),
            None => (f.zh.clone(), f.en.clone()),
        };
        columns.push(Column {
            key,
            role: "dimension",
            ty: if d.bucket.is_some() { Ty::Date } else { f.ty },
            label_zh: zh,
            label_en: en,
            unit: None,
        });
        selects.push((f.sql, d.bucket.map(|b| (b, f.ty)), None));
    }
    for (i, m) in spec.measures.iter().enumerate() {
        let at = format!("measures[{i}].field");
        let (resolved, ty) = match (m.agg, &m.field) {
            (Agg::Count, None) => (None, Ty::Integer),
            (Agg::Count, Some(_)) => {
                errors.push(FieldError::new(
                    &at,
                    "not_allowed",
                    "`count` counts rows; use `count_distinct` for a field",
                ));
                continue;
            }
            (_, None) => {
                errors.push(FieldError::new(
                    &at,
                    "required",
                    format!("`{}` needs a field", m.agg.as_str()),
                ));
                continue;
            }
            (agg, Some(path)) => {
                let f = match r.resolve(path, &at) {
                    Ok(f) => f,
                    Err(e) => {
                        collect(&mut errors, e)?;
                        continue;
                    }
                };
                if agg != Agg::CountDistinct && !f.ty.numeric() {
                    errors.push(FieldError::new(
                        &at,
                        "not_numeric",
                        format!("`{path}` is not numeric, so it has no {}", agg.as_str()),
                    ));
                    continue;
                }
                if agg != Agg::CountDistinct && f.ty == Ty::Money && f.related {
                    errors.push(FieldError::new(
                        &at,
                        "related_amount",
                        format!(
                            "`{path}` is an amount of another record, in that record's currency: query that object"
                        ),
                    ));
                    continue;
                }
                if let Some(j) = f.join {
                    joins.push(j);
                }
                let ty = match agg {
                    Agg::CountDistinct => Ty::Integer,
                    Agg::Avg if f.ty == Ty::Integer => Ty::Number,
                    _ => f.ty,
                };
                if ty == Ty::Money {
                    money_measure = true;
                }
                (Some((f, path.clone())), ty)
            }
        };
        let key = match &resolved {
            None => "count".to_owned(),
            Some((_, path)) => format!("{}:{path}", m.agg.as_str()),
        };
        let (zh, en) = match &resolved {
            None => ("记录数".to_owned(), "Count".to_owned()),
            Some((f, _)) => (
                format!("{}({})", f.zh, agg_zh(m.agg)),
                format!("{} of {}", agg_en(m.agg), f.en),
            ),
        };
        columns.push(Column {
            key,
            role: "measure",
            ty,
            label_zh: zh,
            label_en: en,
            unit: match ty {
                Ty::Money => Some("currency"),
                Ty::Integer if m.agg == Agg::Count || m.agg == Agg::CountDistinct => Some("count"),
                _ => None,
            },
        });
        let sql = resolved.map_or(SqlExpr::Fixed("*".into()), |(f, _)| f.sql);
        selects.push((sql, None, Some(m.agg)));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut notes = Vec::new();
    // Sums of amounts are per currency: the currency becomes a dimension.
    if money_measure && !has_currency_dim {
        if let Some(cur) = object.currency {
            let at = columns
                .iter()
                .position(|c| c.role == "measure")
                .unwrap_or(columns.len());
            columns.insert(
                at,
                Column {
                    key: "currency".into(),
                    role: "dimension",
                    ty: Ty::Text,
                    label_zh: "币种".into(),
                    label_en: "Currency".into(),
                    unit: None,
                },
            );
            selects.insert(at, (SqlExpr::Fixed(cur.to_owned()), None, None));
            notes.push("amounts are never added across currencies: `currency` was added as a dimension".to_owned());
        }
    }
    let filter = match &spec.filter {
        None | Some(Value::Null) => None,
        Some(v) => {
            let e: Expr = serde_json::from_value(v.clone())
                .map_err(|e| AppError::field("filter", "invalid_filter", format!("not a condition: {e}")))?;
            e.validate()
                .map_err(|e| AppError::field("filter", "invalid_filter", e.to_string()))?;
            Some(e)
        }
    };

    // Sort keys name columns of the answer.
    let mut order: Vec<(usize, bool)> = Vec::new();
    for (i, s) in spec.sort.iter().enumerate() {
        match columns.iter().position(|c| c.key == s.key) {
            Some(p) => order.push((p, s.desc)),
            None => errors.push(FieldError::new(
                format!("sort[{i}].key"),
                "unknown_column",
                format!(
                    "`{}` is not a column of this query ({})",
                    s.key,
                    columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if order.is_empty() {
        // Time buckets in order; otherwise the first measure, largest first.
        let first_time = columns.iter().position(|c| c.role == "dimension" && c.ty == Ty::Date);
        let first_measure = columns.iter().position(|c| c.role == "measure");
        match (first_time, first_measure) {
            (Some(t), _) => order.push((t, false)),
            (None, Some(m)) => order.push((m, true)),
            _ => {}
        }
        for (i, c) in columns.iter().enumerate() {
            if c.role == "dimension" && !order.iter().any(|(p, _)| *p == i) {
                order.push((i, false));
            }
        }
    }

    // The statement: one JSON array per row.
    let mut sql = Sql::new("SELECT jsonb_build_array(");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        match c.ty {
            Ty::Money | Ty::Number | Ty::Id | Ty::Date => sql.push(&format!("c{i}::text")),
            _ => sql.push(&format!("c{i}")),
        };
    }
    sql.push(") AS row FROM (SELECT ");
    for (i, (expr, bucket, agg)) in selects.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        match (bucket, agg) {
            (Some((b, ty)), _) => {
                sql.push(&format!("date_trunc('{}', ", b.as_str()));
                expr.push(&mut sql);
                if *ty == Ty::Timestamp {
                    // Local time in the business zone (a fixed offset, not user input).
                    sql.push(&format!(" AT TIME ZONE 'UTC' + make_interval(secs => {offset_secs})"));
                }
                sql.push(")::date");
            }
            (None, None) => expr.push(&mut sql),
            (None, Some(Agg::Count)) => {
                sql.push("count(*)");
            }
            (None, Some(a)) => {
                let f = match a {
                    Agg::CountDistinct => "count(DISTINCT ",
                    Agg::Sum => "sum(",
                    Agg::Avg => "round(avg(",
                    Agg::Min => "min(",
                    Agg::Max => "max(",
                    Agg::Count => "count(",
                };
                sql.push(f);
                expr.push(&mut sql);
                sql.push(if *a == Agg::Avg { "), 4)" } else { ")" });
            }
        }
        sql.push(&format!(" AS c{i}"));
    }
    sql.push(&format!(" FROM {}", object.from));
    // The filter's related records are joined like the columns'.
    let mut filter_joins = Vec::new();
    if let Some(e) = &filter {
        for (i, path) in e.fields().into_iter().enumerate() {
            // Errors are reported where the condition names the field, by `compile`.
            if let Some(j) = r
                .resolve(path, &format!("filter.fields[{i}]"))
                .ok()
                .and_then(|f| f.join)
            {
                filter_joins.push(j);
            }
        }
    }
    let mut seen = BTreeSet::new();
    for j in joins.iter().chain(&filter_joins) {
        if seen.insert(*j) {
            sql.push(" ");
            sql.push(j);
        }
    }
    sql.push(&format!(" WHERE {}", object.live));
    sql.scope(object.scope_alias, &scope);
    if let Some(e) = &filter {
        sql.push(" AND ");
        compile(&r, e, "filter", &mut sql, tz)?;
    }
    let dims: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.role == "dimension")
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !dims.is_empty() {
        sql.push(&format!(" GROUP BY {}", dims.join(", ")));
    }
    if !order.is_empty() {
        let keys: Vec<String> = order
            .iter()
            .map(|(p, desc)| format!("c{p} {} NULLS LAST", if *desc { "DESC" } else { "ASC" }))
            .collect();
        sql.push(&format!(" ORDER BY {}", keys.join(", ")));
    }
    sql.push(" LIMIT ");
    sql.bind::<sql_types::Int8, _>(limit + 1);
    sql.push(") s");
    if !order.is_empty() {
        let keys: Vec<String> = order
            .iter()
            .map(|(p, desc)| format!("s.c{p} {} NULLS LAST", if *desc { "DESC" } else { "ASC" }))
            .collect();
        sql.push(&format!(" ORDER BY {}", keys.join(", ")));
    }
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Jsonb)]
        row: Value,
    }
    let mut rows: Vec<Value> = sql.into_query().load::<R>(c)?.into_iter().map(|r| r.row).collect();
    let truncated = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let dim_count = columns.iter().filter(|c| c.role == "dimension").count();
    let time_dim = columns.iter().any(|c| c.role == "dimension" && c.ty == Ty::Date);
    let chart = match (dim_count, time_dim) {
        (0, _) => "number",
        (1, true) => "line",
        (1, false) => "bar",
        (2, _) => "stacked_bar",
        _ => "table",
    };
    Ok(QueryResult {
        object: object.name,
        columns,
        rows,
        limit,
        truncated,
        chart,
        notes,
        generated_at: ctx.now(),
    })
}

/// How a related record is named in column labels.
fn relation_label(name: &str) -> (&'static str, &'static str) {
    match name {
        "account" => ("客户", "Account"),
        "stage" => ("阶段", "Stage"),
        "pipeline" => ("销售流程", "Pipeline"),
        "owner" => ("负责人", "Owner"),
        "team" => ("团队", "Team"),
        "opportunity" => ("商机", "Opportunity"),
        "quote" => ("报价单", "Quote"),
        "product" => ("产品", "Product"),
        "contract" => ("合同", "Contract"),
        _ => ("关联", "Related"),
    }
}

/// Adds a validation error to the list; passes any other error on.
fn collect(errors: &mut Vec<FieldError>, e: AppError) -> AppResult<()> {
    match e {
        AppError::Validation(mut errs) => {
            errors.append(&mut errs);
            Ok(())
        }
        other => Err(other),
    }
}

fn bucket_zh(b: Bucket) -> &'static str {
    match b {
        Bucket::Day => "日",
        Bucket::Week => "周",
        Bucket::Month => "月",
        Bucket::Quarter => "季度",
        Bucket::Year => "年",
    }
}

fn agg_zh(a: Agg) -> &'static str {
    match a {
        Agg::Count => "计数",
        Agg::CountDistinct => "去重计数",
        Agg::Sum => "合计",
        Agg::Avg => "平均",
        Agg::Min => "最小",
        Agg::Max => "最大",
    }
}

fn agg_en(a: Agg) -> &'static str {
    match a {
        Agg::Count => "Count",
        Agg::CountDistinct => "Distinct count",
        Agg::Sum => "Sum",
        Agg::Avg => "Average",
        Agg::Min => "Minimum",
        Agg::Max => "Maximum",
    }
}

/// Compiles a condition to SQL over the resolved fields, every value bound.
fn compile(r: &Resolver<'_>, e: &Expr, at: &str, sql: &mut Sql<'_>, tz: FixedOffset) -> AppResult<()> {
    match e {
        Expr::All { all: list } | Expr::Any { any: list } => {
            let (word, key) = if matches!(e, Expr::All { .. }) {
                (" AND ", "all")
            } else {
                (" OR ", "any")
            };
            sql.push("(");
            for (i, x) in list.iter().enumerate() {
                if i > 0 {
                    sql.push(word);
                }
                compile(r, x, &format!("{at}.{key}[{i}]"), sql, tz)?;
            }
            sql.push(")");
        }
        Expr::Not { not } => {
            sql.push("NOT coalesce(");
            compile(r, not, &format!("{at}.not"), sql, tz)?;
            sql.push(", false)");
        }
        Expr::Compare { field, op, value } => {
            let f = r.resolve(field, &format!("{at}.field"))?;
            let vat = format!("{at}.value");
            let bad = |m: String| AppError::field(&vat, "invalid_value", m);
            match op {
                Op::Present | Op::Blank => {
                    sql.push(if *op == Op::Blank { "(" } else { "NOT (" });
                    f.sql.push(sql);
                    sql.push(" IS NULL");
                    if f.ty == Ty::Text {
                        sql.push(" OR btrim(");
                        f.sql.push(sql);
                        sql.push(") = ''");
                    }
                    sql.push(")");
                }
                Op::Eq | Op::Ne if value.is_null() => {
                    f.sql.push(sql);
                    sql.push(if *op == Op::Eq { " IS NULL" } else { " IS NOT NULL" });
                }
                Op::Contains => {
                    if f.ty != Ty::Text {
                        return Err(bad(format!(
                            "`contains` applies to text; `{field}` is {}",
                            f.ty.as_str()
                        )));
                    }
                    let text = value
                        .as_str()
                        .ok_or_else(|| bad("`contains` needs a text value".into()))?;
                    sql.push("coalesce(");
                    f.sql.push(sql);
                    sql.push(", '') ILIKE ");
                    sql.bind::<sql_types::Text, _>(format!("%{}%", escape_like(text)));
                }
                Op::In | Op::NotIn => {
                    let items = value.as_array().cloned().unwrap_or_default();
                    if items.is_empty() {
                        sql.push(if *op == Op::In { "FALSE" } else { "TRUE" });
                        return Ok(());
                    }
                    if *op == Op::NotIn {
                        sql.push("coalesce(NOT (");
                    } else {
                        sql.push("(");
                    }
                    f.sql.push(sql);
                    sql.push(" IN (");
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        bind_value(sql, f.ty, v, tz).map_err(&bad)?;
                    }
                    sql.push(if *op == Op::NotIn { ")), true)" } else { "))" });
                }
                Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                    let sym = match op {
                        Op::Eq => "=",
                        Op::Ne => "IS DISTINCT FROM",
                        Op::Gt => ">",
                        Op::Gte => ">=",
                        Op::Lt => "<",
                        _ => "<=",
                    };
                    f.sql.push(sql);
                    sql.push(&format!(" {sym} "));
                    bind_value(sql, f.ty, value, tz).map_err(&bad)?;
                }
            }
        }
    }
    Ok(())
}

/// Binds a JSON value as the SQL type of a field.
fn bind_value(sql: &mut Sql<'_>, ty: Ty, v: &Value, tz: FixedOffset) -> Result<(), String> {
    let text = || match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("`{v}` is not a single value")),
    };
    match ty {
        Ty::Text => {
            sql.bind::<sql_types::Text, _>(text()?);
        }
        Ty::Number | Ty::Money | Ty::Integer => {
            let d: Decimal = text()?.trim().parse().map_err(|_| format!("`{v}` is not a number"))?;
            sql.bind::<sql_types::Numeric, _>(d);
        }
        Ty::Bool => {
            let b = v.as_bool().ok_or_else(|| format!("`{v}` is not true or false"))?;
            sql.bind::<sql_types::Bool, _>(b);
        }
        Ty::Id => {
            let id: Uuid = text()?.parse().map_err(|_| format!("`{v}` is not an id"))?;
            sql.bind::<sql_types::Uuid, _>(id);
        }
        Ty::Date => {
            let d: NaiveDate = text()?
                .parse()
                .map_err(|_| format!("`{v}` is not a date (YYYY-MM-DD)"))?;
            sql.bind::<sql_types::Date, _>(d);
        }
        Ty::Timestamp => {
            let s = text()?;
            let at = match DateTime::parse_from_rfc3339(&s) {
                Ok(t) => t.with_timezone(&Utc),
                Err(_) => {
                    // A date means its first moment in the business time zone.
                    let d: NaiveDate = s
                        .parse()
                        .map_err(|_| format!("`{v}` is not a time (RFC 3339) or a date"))?;
                    tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                        .single()
                        .ok_or_else(|| format!("`{v}` is not a valid date"))?
                        .with_timezone(&Utc)
                }
            };
            sql.bind::<sql_types::Timestamptz, _>(at);
        }
    }
    Ok(())
}
