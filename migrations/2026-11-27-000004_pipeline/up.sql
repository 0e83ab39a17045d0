-- Leads, pipelines and stages, opportunities with stage history, checklists and outputs,
-- activities and tasks.

ALTER TABLE accounts ADD COLUMN last_activity_at timestamptz;
ALTER TABLE contacts ADD COLUMN last_activity_at timestamptz;

CREATE TABLE leads (
    id                        uuid PRIMARY KEY,
    person_name               text NOT NULL CHECK (length(btrim(person_name)) BETWEEN 1 AND 200),
    company                   text,
    title                     text,
    mobile                    text,
    phone                     text,
    email                     text,
    source                    text NOT NULL CHECK (source IN ('website', 'campaign', 'event', 'referral', 'cold_call', 'partner', 'other')),
    campaign                  text,
    region                    text,
    industry                  text,
    tags                      text[] NOT NULL DEFAULT '{}',
    estimated_budget          numeric(18, 2) CHECK (estimated_budget >= 0),
    notes                     text,
    owner_id                  uuid NOT NULL REFERENCES users (id),
    team_id                   uuid REFERENCES teams (id),
    status                    text NOT NULL DEFAULT 'new'
                              CHECK (status IN ('new', 'assigned', 'contacted', 'qualified', 'disqualified', 'converted')),
    disqualify_reason         text,
    assigned_at               timestamptz,
    first_response_at         timestamptz,
    last_activity_at          timestamptz,
    converted_at              timestamptz,
    converted_account_id      uuid REFERENCES accounts (id),
    converted_contact_id      uuid REFERENCES contacts (id),
    converted_opportunity_id  uuid,
    custom                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by                uuid REFERENCES users (id),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz,
    version                   integer NOT NULL DEFAULT 1,
    CHECK (status <> 'disqualified' OR disqualify_reason IS NOT NULL),
    CHECK (status <> 'converted' OR (converted_account_id IS NOT NULL AND converted_at IS NOT NULL))
);
CREATE INDEX leads_owner_id_idx ON leads (owner_id, created_at, id);
CREATE INDEX leads_team_id_idx ON leads (team_id, created_at, id);
CREATE INDEX leads_created_by_idx ON leads (created_by);
CREATE INDEX leads_converted_account_idx ON leads (converted_account_id);
CREATE INDEX leads_converted_contact_idx ON leads (converted_contact_id);
CREATE INDEX leads_converted_opportunity_idx ON leads (converted_opportunity_id);
CREATE INDEX leads_created_at_idx ON leads (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX leads_updated_at_idx ON leads (updated_at, id);
CREATE INDEX leads_name_idx ON leads (person_name, id) WHERE deleted_at IS NULL;
CREATE INDEX leads_deleted_at_idx ON leads (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX leads_status_idx ON leads (status, created_at) WHERE deleted_at IS NULL;
CREATE INDEX leads_source_idx ON leads (source) WHERE deleted_at IS NULL;
CREATE INDEX leads_region_idx ON leads (region) WHERE deleted_at IS NULL;
CREATE INDEX leads_industry_idx ON leads (industry) WHERE deleted_at IS NULL;
CREATE INDEX leads_campaign_idx ON leads (campaign) WHERE deleted_at IS NULL;
CREATE INDEX leads_tags_idx ON leads USING gin (tags);
-- The response-SLA queue: assigned but not yet answered.
CREATE INDEX leads_unanswered_idx ON leads (assigned_at)
    WHERE first_response_at IS NULL AND status IN ('new', 'assigned') AND deleted_at IS NULL;
CREATE INDEX leads_mobile_idx ON leads (mobile) WHERE deleted_at IS NULL;
CREATE INDEX leads_phone_idx ON leads (phone) WHERE deleted_at IS NULL;
CREATE INDEX leads_email_idx ON leads (email) WHERE deleted_at IS NULL;
CREATE INDEX leads_search_idx ON leads USING gin (
    (person_name || ' ' || coalesce(company, '') || ' ' || coalesce(mobile, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(email, ''))
    gin_trgm_ops);

CREATE TABLE pipelines (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description  text,
    is_default   boolean NOT NULL DEFAULT false,
    archived_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX pipelines_one_default ON pipelines (is_default) WHERE is_default;
CREATE UNIQUE INDEX pipelines_name_key ON pipelines (lower(name)) WHERE archived_at IS NULL;

CREATE TABLE stages (
    id                  uuid PRIMARY KEY,
    pipeline_id         uuid NOT NULL REFERENCES pipelines (id),
    code                text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,49}$'),
    name                text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    kind                text NOT NULL CHECK (kind IN ('open', 'won', 'lost')),
    position            integer NOT NULL,
    probability         integer NOT NULL CHECK (probability BETWEEN 0 AND 100),
    key_tasks           jsonb NOT NULL DEFAULT '[]'::jsonb,
    required_outputs    jsonb NOT NULL DEFAULT '[]'::jsonb,
    entry_criteria      jsonb NOT NULL DEFAULT '[]'::jsonb,
    stalled_after_days  integer CHECK (stalled_after_days > 0),
    archived_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX stages_code_key ON stages (pipeline_id, code);
CREATE INDEX stages_pipeline_idx ON stages (pipeline_id, position);

CREATE TABLE opportunities (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    account_id           uuid NOT NULL REFERENCES accounts (id),
    primary_contact_id   uuid REFERENCES contacts (id),
    pipeline_id          uuid NOT NULL REFERENCES pipelines (id),
    stage_id             uuid NOT NULL REFERENCES stages (id),
    amount               numeric(18, 2) CHECK (amount >= 0),
    currency             text NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{3}$'),
    expected_close_date  date,
    probability          integer NOT NULL CHECK (probability BETWEEN 0 AND 100),
    owner_id             uuid NOT NULL REFERENCES users (id),
    team_id              uuid REFERENCES teams (id),
    source_lead_id       uuid REFERENCES leads (id),
    competitors          text[] NOT NULL DEFAULT '{}',
    next_step            text,
    status               text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    lost_reason          text,
    closed_at            timestamptz,
    stage_entered_at     timestamptz NOT NULL DEFAULT now(),
    last_activity_at     timestamptz,
    custom               jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by           uuid REFERENCES users (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    version              integer NOT NULL DEFAULT 1,
    CHECK (status = 'open' OR closed_at IS NOT NULL),
    CHECK (status <> 'lost' OR lost_reason IS NOT NULL)
);
ALTER TABLE leads ADD CONSTRAINT leads_converted_opportunity_fkey
    FOREIGN KEY (converted_opportunity_id) REFERENCES opportunities (id);
CREATE INDEX opportunities_account_idx ON opportunities (account_id);
CREATE INDEX opportunities_primary_contact_idx ON opportunities (primary_contact_id);
CREATE INDEX opportunities_pipeline_idx ON opportunities (pipeline_id);
CREATE INDEX opportunities_source_lead_idx ON opportunities (source_lead_id);
CREATE INDEX opportunities_created_by_idx ON opportunities (created_by);
CREATE INDEX opportunities_owner_idx ON opportunities (owner_id, created_at, id);
CREATE INDEX opportunities_team_idx ON opportunities (team_id, created_at, id);
-- Board cards: per stage, most recently updated first.
CREATE INDEX opportunities_board_idx ON opportunities (stage_id, updated_at, id) WHERE deleted_at IS NULL;
-- Board totals by index-only scan.
CREATE INDEX opportunities_stage_totals_idx ON opportunities (stage_id)
    INCLUDE (amount, probability, owner_id, team_id) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_created_at_idx ON opportunities (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_updated_at_idx ON opportunities (updated_at, id);
CREATE INDEX opportunities_name_idx ON opportunities (name, id) WHERE deleted_at IS NULL;
-- Sorts on nullable columns use these coalesced expressions (nulls sort as 0 / last).
CREATE INDEX opportunities_amount_idx ON opportunities ((coalesce(amount, 0)), id) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_close_date_idx ON opportunities ((coalesce(expected_close_date, '9999-12-31'::date)), id)
    WHERE deleted_at IS NULL;
CREATE INDEX opportunities_status_idx ON opportunities (status, closed_at) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_deleted_at_idx ON opportunities (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX opportunities_search_idx ON opportunities USING gin (name gin_trgm_ops);

-- Other contacts of a deal, with their role in it.
CREATE TABLE opportunity_contacts (
    opportunity_id  uuid NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    contact_id      uuid NOT NULL REFERENCES contacts (id),
    role            text NOT NULL CHECK (role IN ('decision_maker', 'influencer', 'user', 'gatekeeper', 'champion', 'other')),
    PRIMARY KEY (opportunity_id, contact_id)
);
CREATE INDEX opportunity_contacts_contact_idx ON opportunity_contacts (contact_id);

-- One row per stage visit: entered when the deal moved in, left when it moved on.
CREATE TABLE stage_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    opportunity_id  uuid NOT NULL REFERENCES opportunities (id),
    from_stage_id   uuid REFERENCES stages (id),
    to_stage_id     uuid NOT NULL REFERENCES stages (id),
    entered_at      timestamptz NOT NULL,
    left_at         timestamptz,
    changed_by      uuid REFERENCES users (id),
    amount          numeric(18, 2),
    probability     integer,
    reason          text,
    CHECK (left_at IS NULL OR left_at >= entered_at)
);
CREATE INDEX stage_history_opportunity_idx ON stage_history (opportunity_id, entered_at, id);
CREATE INDEX stage_history_to_stage_idx ON stage_history (to_stage_id, entered_at);
CREATE INDEX stage_history_from_stage_idx ON stage_history (from_stage_id);
CREATE INDEX stage_history_changed_by_idx ON stage_history (changed_by);
CREATE UNIQUE INDEX stage_history_one_open_visit ON stage_history (opportunity_id) WHERE left_at IS NULL;

-- Key-task checklist state per deal and stage.
CREATE TABLE opportunity_checklist (
    opportunity_id  uuid NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    stage_id        uuid NOT NULL REFERENCES stages (id),
    task_code       text NOT NULL,
    done            boolean NOT NULL,
    changed_by      uuid REFERENCES users (id),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (opportunity_id, stage_id, task_code)
);
CREATE INDEX opportunity_checklist_stage_idx ON opportunity_checklist (stage_id);
CREATE INDEX opportunity_checklist_changed_by_idx ON opportunity_checklist (changed_by);

-- Deliverables (outputs) attached to a deal.
CREATE TABLE opportunity_outputs (
    id              uuid PRIMARY KEY,
    opportunity_id  uuid NOT NULL REFERENCES opportunities (id),
    stage_id        uuid NOT NULL REFERENCES stages (id),
    output_code     text,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    notes           text,
    url             text,
    file_ref        text,
    author_id       uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX opportunity_outputs_opportunity_idx ON opportunity_outputs (opportunity_id, created_at);
CREATE INDEX opportunity_outputs_stage_idx ON opportunity_outputs (stage_id);
CREATE INDEX opportunity_outputs_author_idx ON opportunity_outputs (author_id);

-- Follow-up records.
CREATE TABLE activities (
    id                uuid PRIMARY KEY,
    activity_type     text NOT NULL CHECK (activity_type IN ('call', 'visit', 'meeting', 'email', 'message', 'note')),
    subject           text NOT NULL CHECK (length(btrim(subject)) BETWEEN 1 AND 300),
    content           text,
    occurred_at       timestamptz NOT NULL,
    duration_minutes  integer CHECK (duration_minutes >= 0),
    outcome           text,
    next_step         text,
    lead_id           uuid REFERENCES leads (id),
    account_id        uuid REFERENCES accounts (id),
    contact_id        uuid REFERENCES contacts (id),
    opportunity_id    uuid REFERENCES opportunities (id),
    owner_id          uuid NOT NULL REFERENCES users (id),
    team_id           uuid REFERENCES teams (id),
    created_by        uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    version           integer NOT NULL DEFAULT 1,
    CHECK (num_nonnulls(lead_id, account_id, contact_id, opportunity_id) > 0)
);
CREATE INDEX activities_lead_idx ON activities (lead_id, occurred_at);
CREATE INDEX activities_account_idx ON activities (account_id, occurred_at);
CREATE INDEX activities_contact_idx ON activities (contact_id, occurred_at);
CREATE INDEX activities_opportunity_idx ON activities (opportunity_id, occurred_at);
CREATE INDEX activities_owner_idx ON activities (owner_id, occurred_at, id);
CREATE INDEX activities_team_idx ON activities (team_id, occurred_at, id);
CREATE INDEX activities_created_by_idx ON activities (created_by);
CREATE INDEX activities_occurred_at_idx ON activities (occurred_at, id) WHERE deleted_at IS NULL;
CREATE INDEX activities_updated_at_idx ON activities (updated_at, id);

-- To-dos.
CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    title         text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    description   text,
    due_at        timestamptz,
    reminder_at   timestamptz,
    priority      text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    owner_id      uuid NOT NULL REFERENCES users (id),
    team_id       uuid REFERENCES teams (id),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    completed_at  timestamptz,
    related_type  text CHECK (related_type IN ('lead', 'account', 'contact', 'opportunity')),
    related_id    uuid,
    origin        text NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'rule', 'system')),
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    version       integer NOT NULL DEFAULT 1,
    CHECK ((related_type IS NULL) = (related_id IS NULL))
);
CREATE INDEX tasks_owner_idx ON tasks (owner_id, status, due_at);
CREATE INDEX tasks_team_idx ON tasks (team_id, created_at, id);
CREATE INDEX tasks_related_idx ON tasks (related_type, related_id);
CREATE INDEX tasks_created_by_idx ON tasks (created_by);
CREATE INDEX tasks_due_idx ON tasks (due_at, id) WHERE deleted_at IS NULL AND status = 'open';
CREATE INDEX tasks_created_at_idx ON tasks (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX tasks_updated_at_idx ON tasks (updated_at, id);

-- Grants for the new resources.
INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, g.resource, g.action, g.scope
FROM (VALUES
    ('admin', 'leads'), ('admin', 'opportunities'), ('admin', 'activities'), ('admin', 'tasks'),
    ('sales_director', 'leads'), ('sales_director', 'opportunities'), ('sales_director', 'activities'), ('sales_director', 'tasks')
) AS w (role_key, resource)
CROSS JOIN (VALUES ('read'), ('create'), ('update'), ('delete'), ('export'), ('assign')) AS a (action)
CROSS JOIN LATERAL (SELECT w.resource, a.action, 'all'::text AS scope) AS g
JOIN roles r ON r.key = w.role_key;

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, w.resource, a.action, 'team_and_below'
FROM (VALUES ('leads'), ('opportunities'), ('activities'), ('tasks')) AS w (resource)
CROSS JOIN (VALUES ('read'), ('create'), ('update'), ('delete'), ('export'), ('assign')) AS a (action)
JOIN roles r ON r.key = 'sales_manager';

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, w.resource, a.action, 'own'
FROM (VALUES ('leads'), ('opportunities'), ('activities'), ('tasks')) AS w (resource)
CROSS JOIN (VALUES ('read'), ('create'), ('update'), ('delete')) AS a (action)
JOIN roles r ON r.key = 'sales_rep';

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, g.resource, g.action, g.scope
FROM (VALUES
    ('admin', 'pipelines', 'read', 'all'), ('admin', 'pipelines', 'admin', 'all'),
    ('sales_director', 'pipelines', 'read', 'all'), ('sales_manager', 'pipelines', 'read', 'all'),
    ('sales_rep', 'pipelines', 'read', 'all'), ('presales', 'pipelines', 'read', 'all'),
    ('legal', 'pipelines', 'read', 'all'), ('finance', 'pipelines', 'read', 'all'),
    ('marketing', 'pipelines', 'read', 'all'),
    -- presales and legal support deals across the company
    ('presales', 'opportunities', 'read', 'all'), ('presales', 'activities', 'read', 'all'),
    ('presales', 'activities', 'create', 'own'), ('presales', 'tasks', 'read', 'own'),
    ('presales', 'tasks', 'update', 'own'), ('presales', 'tasks', 'create', 'own'),
    ('legal', 'opportunities', 'read', 'all'), ('legal', 'activities', 'read', 'all'),
    ('legal', 'tasks', 'read', 'own'), ('legal', 'tasks', 'update', 'own'), ('legal', 'tasks', 'create', 'own'),
    ('finance', 'opportunities', 'read', 'all'), ('finance', 'opportunities', 'export', 'all'),
    ('finance', 'tasks', 'read', 'own'), ('finance', 'tasks', 'update', 'own'), ('finance', 'tasks', 'create', 'own'),
    -- marketing brings leads in and follows them
    ('marketing', 'leads', 'read', 'all'), ('marketing', 'leads', 'create', 'own'),
    ('marketing', 'leads', 'update', 'own'), ('marketing', 'leads', 'assign', 'all'),
    ('marketing', 'leads', 'export', 'all'),
    ('marketing', 'tasks', 'read', 'own'), ('marketing', 'tasks', 'update', 'own'), ('marketing', 'tasks', 'create', 'own')
) AS g (role_key, resource, action, scope)
JOIN roles r ON r.key = g.role_key;

-- The default B2B pipeline (MISSION.md, technique 1).
WITH p AS (
    INSERT INTO pipelines (id, name, description, is_default)
    VALUES (gen_random_uuid(), '标准B2B销售流程 Standard B2B', 'Default pipeline: qualification to won, with entry criteria and outputs per stage', true)
    RETURNING id
)
INSERT INTO stages (id, pipeline_id, code, name, kind, position, probability, key_tasks, required_outputs, entry_criteria, stalled_after_days)
SELECT gen_random_uuid(), p.id, s.code, s.name, s.kind, s.position, s.probability, s.key_tasks::jsonb, s.outputs::jsonb, s.criteria::jsonb, s.stalled
FROM p, (VALUES
    ('qualification', '初步接触 Qualification', 'open', 1, 10,
     '[{"code":"identify_prospect","title":"识别潜在客户 Identify the prospect"},
       {"code":"confirm_need_budget","title":"确认基本需求与预算范围 Confirm basic need and budget range"},
       {"code":"workshop_agreed","title":"客户同意需求调研会 Customer agrees to a requirements workshop"}]',
     '[{"code":"first_call_notes","title":"《首次沟通纪要》 First-call notes"}]',
     '[{"kind":"field_required","field":"primary_contact_id"},
       {"kind":"activity_logged","types":["call","visit","meeting"]}]', 7),
    ('discovery', '需求确认 Discovery', 'open', 2, 20,
     '[{"code":"in_depth_interviews","title":"深度访谈 In-depth interviews"},
       {"code":"pain_points_found","title":"挖掘痛点与业务目标 Find pain points and business goals"},
       {"code":"decision_makers_named","title":"确认关键决策人 Key decision makers named"},
       {"code":"needs_confirmed","title":"客户确认需求报告 Customer confirms the needs report"},
       {"code":"demo_agreed","title":"客户同意演示 Customer agrees to a demo"}]',
     '[{"code":"needs_analysis_draft","title":"《客户需求分析报告（初稿）》 Needs analysis draft"}]',
     '[{"kind":"task_done","stage":"qualification","task":"confirm_need_budget"},
       {"kind":"task_done","stage":"qualification","task":"workshop_agreed"},
       {"kind":"output_attached","output":"first_call_notes"}]', 15),
    ('proposal', '方案 Proposal', 'open', 3, 40,
     '[{"code":"tailored_proposal","title":"定制解决方案 Tailored proposal"},
       {"code":"demo_done","title":"完成演示 Demo done"},
       {"code":"proposal_accepted","title":"客户接受方案并要求谈判 Customer accepts and asks to negotiate"}]',
     '[{"code":"solution_proposal","title":"《定制化解决方案建议书》 Solution proposal"}]',
     '[{"kind":"task_done","stage":"discovery","task":"needs_confirmed"},
       {"kind":"task_done","stage":"discovery","task":"demo_agreed"},
       {"kind":"task_done","stage":"discovery","task":"decision_makers_named"},
       {"kind":"output_attached","output":"needs_analysis_draft"},
       {"kind":"field_required","field":"amount"}]', 15),
    ('negotiation', '商务谈判 Negotiation', 'open', 4, 60,
     '[{"code":"price_agreed","title":"价格 Price"},
       {"code":"terms_agreed","title":"条款 Terms"},
       {"code":"delivery_agreed","title":"交付细节 Delivery details"}]',
     '[{"code":"quote","title":"《报价单》 Quote"}]',
     '[{"kind":"task_done","stage":"proposal","task":"demo_done"},
       {"kind":"task_done","stage":"proposal","task":"proposal_accepted"},
       {"kind":"output_attached","output":"solution_proposal"},
       {"kind":"field_required","field":"expected_close_date"}]', 20),
    ('closing', '合同签订 Closing', 'open', 5, 80,
     '[{"code":"final_contract","title":"确认最终合同 Final contract confirmed"},
       {"code":"internal_approval_started","title":"启动内部审批 Internal approval started"},
       {"code":"contract_signed","title":"合同签署 Contract signed"}]',
     '[{"code":"signed_contract","title":"签署的合同 Signed contract"}]',
     '[{"kind":"task_done","stage":"negotiation","task":"price_agreed"},
       {"kind":"task_done","stage":"negotiation","task":"terms_agreed"},
       {"kind":"output_attached","output":"quote"}]', 20),
    ('won', '赢单 Won', 'won', 6, 100,
     '[{"code":"project_kickoff","title":"内部项目启动 Internal project kick-off"}]',
     '[{"code":"kickoff_notice","title":"内部项目启动通知 Internal project kick-off notice"}]',
     '[{"kind":"task_done","stage":"closing","task":"contract_signed"},
       {"kind":"output_attached","output":"signed_contract"}]', NULL),
    ('lost', '输单 Lost', 'lost', 7, 0, '[]', '[]', '[]', NULL)
) AS s (code, name, kind, position, probability, key_tasks, outputs, criteria, stalled);
