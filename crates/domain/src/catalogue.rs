//! The field catalogue: the built-in fields of each object, as `GET /meta/{object}`
//! describes them and record views (`crm_app::record`) are built from.

/// A built-in field.
pub struct Builtin {
    pub key: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub field_type: &'static str,
    pub required: bool,
    /// Set by the system or another endpoint, never in create/update bodies.
    pub system: bool,
    pub options: &'static [&'static str],
    pub filterable: bool,
}

const fn f(key: &'static str, zh: &'static str, en: &'static str, t: &'static str) -> Builtin {
    Builtin {
        key,
        label_zh: zh,
        label_en: en,
        field_type: t,
        required: false,
        system: false,
        options: &[],
        filterable: false,
    }
}

const fn req(mut b: Builtin) -> Builtin {
    b.required = true;
    b
}

const fn sys(mut b: Builtin) -> Builtin {
    b.system = true;
    b
}

const fn filt(mut b: Builtin) -> Builtin {
    b.filterable = true;
    b
}

const fn opts(mut b: Builtin, o: &'static [&'static str]) -> Builtin {
    b.options = o;
    b
}

const SOURCES: &[&str] = &[
    "website",
    "campaign",
    "event",
    "referral",
    "cold_call",
    "partner",
    "other",
];

const COMMON_TAIL: &[Builtin] = &[
    sys(f("id", "编号", "ID", "text")),
    sys(filt(f("created_at", "创建时间", "Created at", "datetime"))),
    sys(filt(f("updated_at", "更新时间", "Updated at", "datetime"))),
    sys(f("created_by", "创建人", "Created by", "user_ref")),
    sys(f("version", "版本", "Version", "integer")),
];

pub const ACCOUNTS: &[Builtin] = &[
    req(filt(f("name", "客户名称", "Name", "text"))),
    filt(opts(
        f("type", "类型", "Type", "single_select"),
        &["customer", "prospect", "partner", "competitor"],
    )),
    filt(f("industry", "行业", "Industry", "text")),
    filt(f("region", "区域", "Region", "text")),
    f("address", "地址", "Address", "text"),
    f("phone", "电话", "Phone", "phone"),
    f("email", "邮箱", "E-mail", "email"),
    f("website", "网站", "Website", "url"),
    filt(opts(
        f("tier", "客户等级", "Tier", "single_select"),
        &["A", "B", "C", "D"],
    )),
    filt(opts(f("source", "来源", "Source", "single_select"), SOURCES)),
    filt(f("parent_id", "上级客户", "Parent account", "record_ref")),
    filt(f("owner_id", "负责人", "Owner", "user_ref")),
    sys(filt(f("team_id", "团队", "Team", "text"))),
    f("notes", "备注", "Notes", "long_text"),
    sys(f("last_activity_at", "最近跟进", "Last activity", "datetime")),
];

pub const CONTACTS: &[Builtin] = &[
    req(filt(f("account_id", "所属客户", "Account", "record_ref"))),
    req(filt(f("name", "姓名", "Name", "text"))),
    f("title", "职位", "Title", "text"),
    f("department", "部门", "Department", "text"),
    f("mobile", "手机", "Mobile", "phone"),
    f("phone", "电话", "Phone", "phone"),
    f("email", "邮箱", "E-mail", "email"),
    f("wechat", "微信", "WeChat", "text"),
    f("birthday", "生日", "Birthday", "date"),
    filt(opts(
        f("decision_role", "决策角色", "Decision role", "single_select"),
        &["decision_maker", "influencer", "user", "gatekeeper"],
    )),
    f("preferences", "偏好", "Preferences", "long_text"),
    f("pain_points", "痛点", "Pain points", "long_text"),
    f("notes", "备注", "Notes", "long_text"),
    filt(f("owner_id", "负责人", "Owner", "user_ref")),
    sys(filt(f("team_id", "团队", "Team", "text"))),
    sys(f("last_activity_at", "最近跟进", "Last activity", "datetime")),
];

pub const LEADS: &[Builtin] = &[
    req(filt(f("person_name", "姓名", "Name", "text"))),
    f("company", "公司", "Company", "text"),
    f("title", "职位", "Title", "text"),
    f("mobile", "手机", "Mobile", "phone"),
    f("phone", "电话", "Phone", "phone"),
    f("email", "邮箱", "E-mail", "email"),
    req(filt(opts(f("source", "来源", "Source", "single_select"), SOURCES))),
    filt(f("campaign", "市场活动", "Campaign", "text")),
    filt(f("region", "区域", "Region", "text")),
    filt(f("industry", "行业", "Industry", "text")),
    filt(f("tags", "标签", "Tags", "multi_select")),
    f("estimated_budget", "预算", "Estimated budget", "money"),
    f("notes", "备注", "Notes", "long_text"),
    filt(f("owner_id", "负责人", "Owner", "user_ref")),
    sys(filt(f("team_id", "团队", "Team", "text"))),
    filt(opts(
        f("status", "状态", "Status", "single_select"),
        &["new", "assigned", "contacted", "qualified", "disqualified", "converted"],
    )),
    f("disqualify_reason", "无效原因", "Disqualify reason", "text"),
    sys(f("assigned_at", "分配时间", "Assigned at", "datetime")),
    sys(f("first_response_at", "首次响应", "First response", "datetime")),
    sys(f("response_minutes", "响应时长(分)", "Response minutes", "integer")),
    sys(f("last_activity_at", "最近跟进", "Last activity", "datetime")),
    sys(f("converted_account_id", "转化客户", "Converted account", "record_ref")),
    sys(f(
        "converted_contact_id",
        "转化联系人",
        "Converted contact",
        "record_ref",
    )),
    sys(f(
        "converted_opportunity_id",
        "转化商机",
        "Converted opportunity",
        "record_ref",
    )),
];

pub const OPPORTUNITIES: &[Builtin] = &[
    req(filt(f("name", "商机名称", "Name", "text"))),
    req(filt(f("account_id", "客户", "Account", "record_ref"))),
    f("primary_contact_id", "主要联系人", "Primary contact", "record_ref"),
    f("contacts", "其他联系人", "Other contacts", "multi_select"),
    filt(f("pipeline_id", "销售流程", "Pipeline", "record_ref")),
    sys(filt(f("stage_id", "阶段", "Stage", "record_ref"))),
    filt(f("amount", "金额", "Amount", "money")),
    f("currency", "币种", "Currency", "text"),
    filt(f("expected_close_date", "预计成交日期", "Expected close", "date")),
    f("probability", "赢率", "Probability", "percent"),
    sys(f("weighted_amount", "加权金额", "Weighted amount", "money")),
    filt(f("owner_id", "负责人", "Owner", "user_ref")),
    sys(filt(f("team_id", "团队", "Team", "text"))),
    sys(f("source_lead_id", "来源线索", "Source lead", "record_ref")),
    f("competitors", "竞争对手", "Competitors", "multi_select"),
    f("next_step", "下一步", "Next step", "text"),
    opts(
        f("forecast_category", "预测类别", "Forecast category", "single_select"),
        &crate::reports::FORECAST_CATEGORIES,
    ),
    sys(filt(opts(
        f("status", "状态", "Status", "single_select"),
        &["open", "won", "lost"],
    ))),
    sys(f("lost_reason", "输单原因", "Lost reason", "text")),
    sys(f("closed_at", "关闭时间", "Closed at", "datetime")),
    sys(filt(f(
        "stage_entered_at",
        "进入阶段时间",
        "Stage entered at",
        "datetime",
    ))),
    sys(f("last_activity_at", "最近跟进", "Last activity", "datetime")),
];

pub const PRODUCTS: &[Builtin] = &[
    req(f("code", "产品编码", "Code", "text")),
    req(f("name", "产品名称", "Name", "text")),
    f("unit", "单位", "Unit", "text"),
    f("category", "类别", "Category", "text"),
    req(f("list_price", "标准价", "List price", "money")),
    f("standard_cost", "标准成本", "Standard cost", "money"),
    f("tax_rate", "税率", "Tax rate", "percent"),
    f("active", "在售", "Active", "boolean"),
];

pub const QUOTES: &[Builtin] = &[
    sys(f("opportunity_id", "商机", "Opportunity", "record_ref")),
    sys(f("number", "报价单号", "Number", "text")),
    sys(f("revision", "版本", "Revision", "integer")),
    sys(f("status", "状态", "Status", "single_select")),
    f("currency", "币种", "Currency", "text"),
    f("price_book_id", "价格表", "Price book", "record_ref"),
    f("valid_until", "有效期至", "Valid until", "date"),
    f("header_discount_pct", "整单折扣", "Header discount", "percent"),
    f("lines", "明细", "Lines", "long_text"),
    sys(f("list_total", "标准价合计", "List total", "money")),
    sys(f("subtotal", "小计", "Subtotal", "money")),
    sys(f(
        "header_discount_amount",
        "整单折扣额",
        "Header discount amount",
        "money",
    )),
    sys(f("discount_amount", "折扣额", "Discount amount", "money")),
    sys(f(
        "effective_discount_pct",
        "综合折扣率",
        "Effective discount",
        "percent",
    )),
    sys(f("net_amount", "未税金额", "Net amount", "money")),
    sys(f("tax_amount", "税额", "Tax", "money")),
    sys(f("total", "含税总额", "Total", "money")),
    sys(f("cost_total", "成本合计", "Cost total", "money")),
    sys(f("gross_margin", "毛利", "Gross margin", "money")),
    sys(f("gross_margin_pct", "毛利率", "Gross margin %", "percent")),
    f("terms", "条款", "Terms", "long_text"),
    sys(f("owner_id", "负责人", "Owner", "user_ref")),
    sys(f("team_id", "团队", "Team", "text")),
];

/// Fields every reader of the object sees, whatever the role: what identifies the
/// record, where it sits and who owns it, and the bookkeeping fields. Field
/// permissions cannot restrict them, so a response always carries them.
pub fn protected(object: &str) -> &'static [&'static str] {
    const COMMON: [&str; 5] = ["id", "created_at", "updated_at", "created_by", "version"];
    match object {
        "accounts" => &[
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "version",
            "name",
            "owner_id",
            "team_id",
            "custom",
        ],
        "contacts" => &[
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "version",
            "name",
            "account_id",
            "owner_id",
            "team_id",
            "custom",
        ],
        "leads" => &[
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "version",
            "person_name",
            "source",
            "status",
            "owner_id",
            "team_id",
            "custom",
        ],
        "opportunities" => &[
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "version",
            "name",
            "account_id",
            "contacts",
            "pipeline_id",
            "stage_id",
            "status",
            "owner_id",
            "team_id",
            "stage_entered_at",
            "custom",
        ],
        "products" => &[
            "id",
            "created_at",
            "updated_at",
            "version",
            "code",
            "name",
            "unit",
            "list_price",
            "tax_rate",
            "active",
        ],
        "quotes" => &[
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "version",
            "opportunity_id",
            "number",
            "revision",
            "status",
            "currency",
            "lines",
            "list_total",
            "subtotal",
            "header_discount_pct",
            "header_discount_amount",
            "discount_amount",
            "effective_discount_pct",
            "free_text_lines",
            "net_amount",
            "tax_amount",
            "total",
            "owner_id",
            "team_id",
            "editable",
            "status_changed_at",
        ],
        _ => &COMMON,
    }
}

/// Field types whose values can be shown masked (text-like): others can be hidden or
/// made read-only, not masked, so a value keeps its JSON type for every reader.
pub fn maskable(field_type: &str) -> bool {
    matches!(field_type, "text" | "long_text" | "phone" | "email" | "url")
}

/// The built-in field a list query parameter filters on, if any.
pub fn filter_field(object: &str, param: &str) -> Option<&'static str> {
    let field = match param {
        "amount_gte" | "amount_lte" => "amount",
        "close_after" | "close_before" => "expected_close_date",
        "created_after" | "created_before" => "created_at",
        "updated_after" | "updated_before" | "updated_since" => "updated_at",
        "account_type" => "type",
        "tag" => "tags",
        "unanswered" => "first_response_at",
        "stalled" => "stage_entered_at",
        other => other,
    };
    builtins(object).into_iter().find(|b| b.key == field).map(|b| b.key)
}

/// Built-in fields of an object (with the common system fields).
pub fn builtins(object: &str) -> Vec<&'static Builtin> {
    let own: &[Builtin] = match object {
        "accounts" => ACCOUNTS,
        "contacts" => CONTACTS,
        "leads" => LEADS,
        "opportunities" => OPPORTUNITIES,
        "products" => PRODUCTS,
        "quotes" => QUOTES,
        _ => &[],
    };
    own.iter().chain(COMMON_TAIL.iter()).collect()
}

/// Built-in numeric fields formulas may use.
pub fn formula_inputs(object: &str) -> &'static [&'static str] {
    match object {
        "opportunities" => &["amount", "probability"],
        "leads" => &["estimated_budget"],
        _ => &[],
    }
}
