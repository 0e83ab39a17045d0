//! Demo organisation: teams in three regions, ~20 users over every built-in role,
//! 2,000 customers and 5,000 contacts with Chinese and English names. Deterministic
//! (fixed RNG seed) and idempotent: nothing happens when the demo admin exists.

pub mod pipeline;
pub mod q2c;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crm_db::repo::{roles, teams, users};
use crm_db::schema::{accounts, contacts};
use crm_db::QueryResult;

/// Password of every demo user.
pub const DEMO_PASSWORD: &str = "demo1234";
pub const ADMIN_EMAIL: &str = "admin@demo.local";

/// A demo login, for printing.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub email: String,
    pub role: String,
    pub team: String,
}

/// What seeding did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub seeded: bool,
    pub logins: Vec<DemoLogin>,
    pub accounts: usize,
    pub contacts: usize,
}

#[derive(Insertable)]
#[diesel(table_name = accounts)]
struct DemoAccount {
    id: Uuid,
    name: String,
    name_norm: String,
    account_type: String,
    industry: Option<String>,
    region: Option<String>,
    address: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    website: Option<String>,
    tier: Option<String>,
    source: Option<String>,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    notes: Option<String>,
    custom: serde_json::Value,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = contacts)]
struct DemoContact {
    id: Uuid,
    account_id: Uuid,
    name: String,
    name_norm: String,
    title: Option<String>,
    department: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
    wechat: Option<String>,
    birthday: Option<NaiveDate>,
    decision_role: Option<String>,
    preferences: Option<String>,
    pain_points: Option<String>,
    owner_id: Uuid,
    team_id: Option<Uuid>,
    custom: serde_json::Value,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Region {
    key: &'static str,
    name: &'static str,
    cities: &'static [&'static str],
    teams: [&'static str; 2],
}

const REGIONS: [Region; 3] = [
    Region {
        key: "east",
        name: "华东区 East China",
        cities: &["上海", "杭州", "南京", "苏州", "宁波"],
        teams: ["上海一组 Shanghai Team", "杭州组 Hangzhou Team"],
    },
    Region {
        key: "north",
        name: "华北区 North China",
        cities: &["北京", "天津", "济南", "青岛", "石家庄"],
        teams: ["北京一组 Beijing Team", "天津组 Tianjin Team"],
    },
    Region {
        key: "south",
        name: "华南区 South China",
        cities: &["深圳", "广州", "厦门", "东莞", "福州"],
        teams: ["深圳一组 Shenzhen Team", "广州组 Guangzhou Team"],
    },
];

const BRANDS: &[&str] = &[
    "华信", "恒通", "远景", "博达", "天成", "瑞丰", "金桥", "安泰", "鼎盛", "新元", "宏图", "卓越", "启明", "中联",
    "海纳", "泰和", "东方", "星辰", "云帆", "正大", "明德", "汇智", "永安", "同创", "德胜", "凯旋", "长风", "嘉禾",
    "致远", "开元", "华夏", "锦程", "万达", "盛世", "晨光", "蓝海", "青松", "鸿运", "立信", "君诚",
];
const INDUSTRIES: &[(&str, &str)] = &[
    ("manufacturing", "制造"),
    ("software", "软件"),
    ("retail", "商贸"),
    ("healthcare", "医疗"),
    ("education", "教育"),
    ("logistics", "物流"),
    ("finance", "金融"),
    ("energy", "能源"),
];
const EN_ADJ: &[&str] = &[
    "Blue",
    "Silver",
    "North",
    "Bright",
    "Summit",
    "Pacific",
    "Golden",
    "Rapid",
    "Prime",
    "Evergreen",
    "Apex",
    "Harbor",
    "Crystal",
    "Vertex",
    "Orion",
    "Cedar",
];
const EN_NOUN: &[&str] = &[
    "River",
    "Stone",
    "Bridge",
    "Peak",
    "Field",
    "Wave",
    "Forge",
    "Works",
    "Labs",
    "Systems",
    "Dynamics",
    "Partners",
    "Logistics",
    "Health",
    "Energy",
    "Foods",
    "Motors",
    "Analytics",
    "Robotics",
    "Textiles",
];
const EN_SUFFIX: &[&str] = &["Ltd", "Inc", "Co., Ltd", "Group", "Holdings"];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗",
    "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平",
    "刚", "建华", "晓东", "丽娟", "志强", "海燕",
];
const EN_FIRST: &[&str] = &[
    "James", "Mary", "David", "Linda", "Michael", "Emma", "Daniel", "Sophia", "Kevin", "Grace", "Peter", "Olivia",
    "Eric", "Chloe", "Jason", "Lucy",
];
const EN_LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Chen", "Wong", "Lee", "Martin", "Clark", "Walker", "Young",
];
const TITLES: &[&str] = &[
    "总经理 CEO",
    "采购经理 Purchasing Manager",
    "IT总监 IT Director",
    "财务经理 Finance Manager",
    "技术负责人 CTO",
    "运营总监 COO",
    "行政主管 Office Manager",
    "项目经理 Project Manager",
];
const DEPARTMENTS: &[&str] = &["采购部", "信息部", "财务部", "总经办", "技术部", "运营部"];
const DECISION_ROLES: &[&str] = &["decision_maker", "influencer", "user", "gatekeeper"];
const SOURCES: &[&str] = &[
    "website",
    "campaign",
    "event",
    "referral",
    "cold_call",
    "partner",
    "other",
];
const PAINS: &[&str] = &[
    "销售过程不透明",
    "客户信息分散在个人手里",
    "回款周期长",
    "报价审批慢",
    "线索跟进不及时",
    "Forecasts are guesswork",
    "Too many spreadsheets",
];

struct SeedUser {
    email: String,
    name: &'static str,
    role: &'static str,
    team: usize,
    manager: Option<usize>,
}

/// Seeds the demo organisation unless it exists. `hash` turns a password into a
/// stored hash (argon2id in production).
pub fn seed(conn: &mut PgConnection, hash: &dyn Fn(&str) -> String) -> QueryResult<DemoReport> {
    conn.transaction(|c| seed_in_tx(c, hash))
}

fn seed_in_tx(c: &mut PgConnection, hash: &dyn Fn(&str) -> String) -> QueryResult<DemoReport> {
    // Serialise concurrent seeders (e.g. two instances starting together).
    diesel::sql_query("SELECT pg_advisory_xact_lock(4242001)").execute(c)?;
    // Seed data is written directly, not as audited business writes.
    diesel::sql_query("SET LOCAL crm.unaudited_writes = 'allowed'").execute(c)?;
    if users::find_by_email(c, ADMIN_EMAIL)?.is_some() {
        return Ok(DemoReport {
            seeded: false,
            logins: logins(),
            accounts: 0,
            contacts: 0,
        });
    }
    let mut rng = StdRng::seed_from_u64(20261127);

    // Teams: company -> 3 regions -> 2 sales teams each; plus 3 departments.
    let mut team_ids: Vec<Uuid> = Vec::new();
    let company = add_team(c, &mut team_ids, "演示公司 Demo Co", "company", None)?;
    let mut region_idx = Vec::new();
    let mut sales_team_idx = Vec::new();
    for r in &REGIONS {
        let ri = add_team(c, &mut team_ids, r.name, "region", Some(company))?;
        region_idx.push(ri);
        for t in r.teams {
            sales_team_idx.push(add_team(c, &mut team_ids, t, "team", Some(ri))?);
        }
    }
    let presales = add_team(
        c,
        &mut team_ids,
        "售前与交付 Presales & Delivery",
        "department",
        Some(company),
    )?;
    let legal_fin = add_team(
        c,
        &mut team_ids,
        "法务财务 Legal & Finance",
        "department",
        Some(company),
    )?;
    let marketing = add_team(c, &mut team_ids, "市场部 Marketing", "department", Some(company))?;

    // Users.
    let mut seed_users = vec![
        SeedUser {
            email: ADMIN_EMAIL.into(),
            name: "系统管理员 Admin",
            role: "admin",
            team: company,
            manager: None,
        },
        SeedUser {
            email: "director@demo.local".into(),
            name: "周总 Director Zhou",
            role: "sales_director",
            team: company,
            manager: None,
        },
    ];
    let manager_names = ["陈经理 Manager Chen", "李经理 Manager Li", "黄经理 Manager Huang"];
    for (i, ri) in region_idx.iter().enumerate() {
        seed_users.push(SeedUser {
            email: format!("manager{}@demo.local", i + 1),
            name: manager_names[i],
            role: "sales_manager",
            team: *ri,
            manager: Some(1),
        });
    }
    let rep_names = [
        "王伟 Wang Wei",
        "李娜 Li Na",
        "张磊 Zhang Lei",
        "刘洋 Liu Yang",
        "陈静 Chen Jing",
        "杨勇 Yang Yong",
        "赵敏 Zhao Min",
        "吴杰 Wu Jie",
        "Emma Lin",
        "David Xu",
        "孙丽 Sun Li",
        "Kevin Ma",
    ];
    for (i, name) in rep_names.iter().enumerate() {
        let team = sales_team_idx[i / 2];
        seed_users.push(SeedUser {
            email: format!("rep{}@demo.local", i + 1),
            name,
            role: "sales_rep",
            team,
            manager: Some(2 + i / 4),
        });
    }
    seed_users.push(SeedUser {
        email: "presales1@demo.local".into(),
        name: "郭工 Presales Guo",
        role: "presales",
        team: presales,
        manager: Some(1),
    });
    seed_users.push(SeedUser {
        email: "legal1@demo.local".into(),
        name: "何律师 Legal He",
        role: "legal",
        team: legal_fin,
        manager: None,
    });
    seed_users.push(SeedUser {
        email: "finance1@demo.local".into(),
        name: "林会计 Finance Lin",
        role: "finance",
        team: legal_fin,
        manager: None,
    });
    seed_users.push(SeedUser {
        email: "marketing1@demo.local".into(),
        name: "马经理 Marketing Ma",
        role: "marketing",
        team: marketing,
        manager: None,
    });

    let role_rows = roles::list(c)?;
    let mut user_ids: Vec<Uuid> = Vec::new();
    for u in &seed_users {
        let team_id = team_ids[u.team];
        let row = users::insert(
            c,
            &users::NewUser {
                id: Uuid::now_v7(),
                email: u.email.clone(),
                name: u.name.into(),
                password_hash: Some(hash(DEMO_PASSWORD)),
                phone: None,
                team_id: Some(team_id),
                manager_id: u.manager.map(|m| user_ids[m]),
                is_active: true,
                is_service: false,
            },
        )?;
        let role_id: Vec<Uuid> = role_rows.iter().filter(|r| r.key == u.role).map(|r| r.id).collect();
        users::set_roles(c, row.id, &role_id)?;
        user_ids.push(row.id);
    }

    // Reps own the customers; managers and marketing own a few so scopes are visible.
    let owners: Vec<(Uuid, Uuid, usize)> = seed_users
        .iter()
        .enumerate()
        .filter(|(_, u)| matches!(u.role, "sales_rep" | "sales_manager" | "marketing"))
        .map(|(i, u)| {
            let region = region_of(&seed_users[i], &sales_team_idx, &region_idx);
            (user_ids[i], team_ids[u.team], region)
        })
        .collect();

    let now = Utc::now();
    // (id, owner, team, created_at, e-mail domain) of each account, for its contacts.
    type AccountInfo = (Uuid, Uuid, Option<Uuid>, DateTime<Utc>, String);
    let mut account_rows: Vec<AccountInfo> = Vec::new();
    let mut batch: Vec<DemoAccount> = Vec::new();
    let total_accounts = 2000;
    let managers = &user_ids[2..5];
    let reps: Vec<&(Uuid, Uuid, usize)> = owners.iter().filter(|o| !managers.contains(&o.0)).collect();
    for i in 0..total_accounts {
        // Reps and marketing get most customers; every 10th goes to anyone, managers included.
        let owner = if i % 10 == 9 {
            &owners[i % owners.len()]
        } else {
            reps[i % reps.len()]
        };
        let region = &REGIONS[owner.2.min(2)];
        let (ind_key, ind_zh) = INDUSTRIES[(i / 7) % INDUSTRIES.len()];
        let chinese = i % 5 != 0 && i % 5 != 3;
        let name = if chinese {
            let city = region.cities[i % region.cities.len()];
            let brand = BRANDS[(i / 5) % BRANDS.len()];
            format!(
                "{city}{brand}{ind_zh}{}有限公司",
                ["科技", "实业", "集团", "股份"][(i / 200) % 4]
            )
        } else {
            format!(
                "{} {} {}",
                EN_ADJ[i % EN_ADJ.len()],
                EN_NOUN[(i / EN_ADJ.len()) % EN_NOUN.len()],
                EN_SUFFIX[(i / (EN_ADJ.len() * EN_NOUN.len())) % EN_SUFFIX.len()]
            )
        };
        let created_at = now - Duration::minutes(rng.random_range(60..(548 * 24 * 60)));
        let account_type = match rng.random_range(0..100) {
            0..50 => "customer",
            50..85 => "prospect",
            85..95 => "partner",
            _ => "competitor",
        };
        let id = Uuid::now_v7();
        let domain = format!("demo{i:04}.example.com");
        batch.push(DemoAccount {
            id,
            name_norm: crm_domain::normalize::name_key(&name),
            name: name.clone(),
            account_type: account_type.into(),
            industry: Some(ind_key.into()),
            region: Some(region.key.into()),
            address: Some(format!(
                "{}市{}路{}号",
                region.cities[i % region.cities.len()],
                BRANDS[(i * 7) % BRANDS.len()],
                1 + i % 300
            )),
            phone: Some(format!("0{}{:08}", 10 + (i % 89), 60000000 + i)),
            email: Some(format!("info@{domain}")),
            website: Some(format!("https://www.{domain}")),
            tier: Some(["A", "B", "C", "D"][rng.random_range(0..4)].into()),
            source: Some(SOURCES[rng.random_range(0..SOURCES.len())].into()),
            owner_id: owner.0,
            team_id: Some(owner.1),
            notes: None,
            custom: json!({}),
            created_by: Some(owner.0),
            created_at,
            updated_at: created_at,
        });
        account_rows.push((id, owner.0, Some(owner.1), created_at, domain));
        if batch.len() == 500 {
            diesel::insert_into(accounts::table).values(&batch).execute(c)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        diesel::insert_into(accounts::table).values(&batch).execute(c)?;
    }

    let total_contacts = 5000;
    let mut cbatch: Vec<DemoContact> = Vec::new();
    for i in 0..total_contacts {
        let (account_id, owner_id, team_id, acc_created, domain) =
            &account_rows[(i * 2) % total_accounts + (i / total_accounts) % 2];
        let chinese = i % 4 != 3;
        let (name, email_local) = if chinese {
            let s = SURNAMES[i % SURNAMES.len()];
            let g = GIVEN[(i / SURNAMES.len()) % GIVEN.len()];
            (format!("{s}{g}"), format!("contact{i:04}"))
        } else {
            let f = EN_FIRST[i % EN_FIRST.len()];
            let l = EN_LAST[(i / EN_FIRST.len()) % EN_LAST.len()];
            (
                format!("{f} {l}"),
                format!("{}.{}{}", f.to_lowercase(), l.to_lowercase(), i),
            )
        };
        let created_at = *acc_created + Duration::minutes(rng.random_range(0..(30 * 24 * 60)));
        let created_at = created_at.min(now);
        let birthday = NaiveDate::from_ymd_opt(
            rng.random_range(1965..2000),
            rng.random_range(1..13),
            rng.random_range(1..29),
        );
        cbatch.push(DemoContact {
            id: Uuid::now_v7(),
            account_id: *account_id,
            name_norm: crm_domain::normalize::name_key(&name),
            name,
            title: Some(TITLES[i % TITLES.len()].into()),
            department: Some(DEPARTMENTS[i % DEPARTMENTS.len()].into()),
            mobile: Some(format!(
                "1{}{:09}",
                [3, 5, 8][i % 3],
                100_000_000 + i * 7919 % 900_000_000
            )),
            email: Some(format!("{email_local}@{domain}")),
            wechat: if i % 3 == 0 { Some(format!("wx_{i:05}")) } else { None },
            birthday,
            decision_role: Some(DECISION_ROLES[rng.random_range(0..DECISION_ROLES.len())].into()),
            preferences: if i % 5 == 0 {
                Some("偏好微信沟通 Prefers WeChat".into())
            } else {
                None
            },
            pain_points: Some(PAINS[i % PAINS.len()].into()),
            owner_id: *owner_id,
            team_id: *team_id,
            custom: json!({}),
            created_by: Some(*owner_id),
            created_at,
            updated_at: created_at,
        });
        if cbatch.len() == 500 {
            diesel::insert_into(contacts::table).values(&cbatch).execute(c)?;
            cbatch.clear();
        }
    }
    if !cbatch.is_empty() {
        diesel::insert_into(contacts::table).values(&cbatch).execute(c)?;
    }
    // Fresh statistics, or the planner works from empty-table estimates until autovacuum.
    diesel::sql_query("ANALYZE teams, users, accounts, contacts").execute(c)?;
    Ok(DemoReport {
        seeded: true,
        logins: logins(),
        accounts: total_accounts,
        contacts: total_contacts,
    })
}

fn add_team(
    c: &mut PgConnection,
    ids: &mut Vec<Uuid>,
    name: &str,
    kind: &str,
    parent: Option<usize>,
) -> QueryResult<usize> {
    // A region team covers its region's key (the value records carry in `region`).
    let region = REGIONS.iter().find(|r| r.name == name).map(|r| r.key.to_owned());
    let row = teams::insert(
        c,
        &teams::NewTeam {
            id: Uuid::now_v7(),
            name: name.into(),
            kind: kind.into(),
            parent_id: parent.map(|p| ids[p]),
            region,
        },
    )?;
    ids.push(row.id);
    Ok(ids.len() - 1)
}

fn region_of(u: &SeedUser, sales_teams: &[usize], regions: &[usize]) -> usize {
    if let Some(pos) = regions.iter().position(|r| *r == u.team) {
        return pos;
    }
    if let Some(pos) = sales_teams.iter().position(|t| *t == u.team) {
        return pos / 2;
    }
    0
}

/// The stable demo logins.
pub fn logins() -> Vec<DemoLogin> {
    let mut v = vec![
        DemoLogin {
            email: ADMIN_EMAIL.into(),
            role: "admin".into(),
            team: "Demo Co".into(),
        },
        DemoLogin {
            email: "director@demo.local".into(),
            role: "sales_director".into(),
            team: "Demo Co".into(),
        },
    ];
    for (i, r) in REGIONS.iter().enumerate() {
        v.push(DemoLogin {
            email: format!("manager{}@demo.local", i + 1),
            role: "sales_manager".into(),
            team: r.name.into(),
        });
    }
    for i in 0..12 {
        v.push(DemoLogin {
            email: format!("rep{}@demo.local", i + 1),
            role: "sales_rep".into(),
            team: REGIONS[i / 4].teams[(i / 2) % 2].into(),
        });
    }
    for (e, r, t) in [
        ("presales1@demo.local", "presales", "Presales & Delivery"),
        ("legal1@demo.local", "legal", "Legal & Finance"),
        ("finance1@demo.local", "finance", "Legal & Finance"),
        ("marketing1@demo.local", "marketing", "Marketing"),
    ] {
        v.push(DemoLogin {
            email: e.into(),
            role: r.into(),
            team: t.into(),
        });
    }
    v
}
