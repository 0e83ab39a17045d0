-- Quote to cash: products and price books, quotes, a general approval engine,
-- contracts, payment plans, invoices, payments and their allocation.

CREATE TABLE products (
    id             uuid PRIMARY KEY,
    code           text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$'),
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    unit           text NOT NULL DEFAULT '件',
    category       text,
    list_price     numeric(18, 2) NOT NULL CHECK (list_price >= 0),
    standard_cost  numeric(18, 2) NOT NULL DEFAULT 0 CHECK (standard_cost >= 0),
    tax_rate       numeric(5, 2) NOT NULL DEFAULT 13 CHECK (tax_rate BETWEEN 0 AND 100),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX products_code_key ON products (lower(code));
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_category_idx ON products (category);

CREATE TABLE price_books (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    tier        text CHECK (tier IN ('A', 'B', 'C', 'D')),
    is_default  boolean NOT NULL DEFAULT false,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX price_books_one_default ON price_books (currency) WHERE is_default;

CREATE TABLE price_book_entries (
    price_book_id  uuid NOT NULL REFERENCES price_books (id) ON DELETE CASCADE,
    product_id     uuid NOT NULL REFERENCES products (id),
    unit_price     numeric(18, 2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (price_book_id, product_id)
);
CREATE INDEX price_book_entries_product_idx ON price_book_entries (product_id);

CREATE TABLE quotes (
    id                     uuid PRIMARY KEY,
    opportunity_id         uuid NOT NULL REFERENCES opportunities (id),
    number                 text NOT NULL,
    revision               integer NOT NULL,
    status                 text NOT NULL DEFAULT 'draft' CHECK (status IN
                           ('draft', 'pending_approval', 'approved', 'rejected', 'sent', 'accepted', 'declined', 'expired')),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    price_book_id          uuid REFERENCES price_books (id),
    valid_until            date,
    header_discount_pct    numeric(5, 2) NOT NULL DEFAULT 0 CHECK (header_discount_pct BETWEEN 0 AND 100),
    list_total             numeric(18, 2) NOT NULL DEFAULT 0,
    subtotal               numeric(18, 2) NOT NULL DEFAULT 0,
    discount_amount        numeric(18, 2) NOT NULL DEFAULT 0,
    net_amount             numeric(18, 2) NOT NULL DEFAULT 0,
    tax_amount             numeric(18, 2) NOT NULL DEFAULT 0,
    total                  numeric(18, 2) NOT NULL DEFAULT 0,
    effective_discount_pct numeric(7, 2) NOT NULL DEFAULT 0,
    cost_total             numeric(18, 2) NOT NULL DEFAULT 0,
    gross_margin           numeric(18, 2) NOT NULL DEFAULT 0,
    terms                  text,
    owner_id               uuid NOT NULL REFERENCES users (id),
    team_id                uuid REFERENCES teams (id),
    status_changed_at      timestamptz NOT NULL DEFAULT now(),
    created_by             uuid REFERENCES users (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    version                integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX quotes_number_key ON quotes (number);
CREATE UNIQUE INDEX quotes_revision_key ON quotes (opportunity_id, revision);
-- Only one accepted quote per opportunity.
CREATE UNIQUE INDEX quotes_one_accepted ON quotes (opportunity_id) WHERE status = 'accepted' AND deleted_at IS NULL;
CREATE INDEX quotes_price_book_idx ON quotes (price_book_id);
CREATE INDEX quotes_owner_idx ON quotes (owner_id, created_at, id);
CREATE INDEX quotes_team_idx ON quotes (team_id, created_at, id);
CREATE INDEX quotes_created_by_idx ON quotes (created_by);
CREATE INDEX quotes_status_idx ON quotes (status, valid_until) WHERE deleted_at IS NULL;
CREATE INDEX quotes_created_at_idx ON quotes (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX quotes_updated_at_idx ON quotes (updated_at, id);

CREATE TABLE quote_lines (
    id               uuid PRIMARY KEY,
    quote_id         uuid NOT NULL REFERENCES quotes (id) ON DELETE CASCADE,
    position         integer NOT NULL,
    product_id       uuid REFERENCES products (id),
    description      text NOT NULL,
    unit             text,
    quantity         numeric(18, 4) NOT NULL CHECK (quantity > 0),
    unit_list_price  numeric(18, 2) NOT NULL CHECK (unit_list_price >= 0),
    unit_price       numeric(18, 2) NOT NULL CHECK (unit_price >= 0),
    discount_pct     numeric(5, 2) NOT NULL DEFAULT 0 CHECK (discount_pct BETWEEN 0 AND 100),
    tax_rate         numeric(5, 2) NOT NULL DEFAULT 0 CHECK (tax_rate BETWEEN 0 AND 100),
    unit_cost        numeric(18, 2) NOT NULL DEFAULT 0,
    list_amount      numeric(18, 2) NOT NULL,
    net_amount       numeric(18, 2) NOT NULL,
    tax_amount       numeric(18, 2) NOT NULL,
    total            numeric(18, 2) NOT NULL
);
CREATE INDEX quote_lines_quote_idx ON quote_lines (quote_id, position);
CREATE INDEX quote_lines_product_idx ON quote_lines (product_id);

-- Every status change of a quote, contract or approval, in order.
CREATE TABLE status_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_type  text NOT NULL,
    entity_id    uuid NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid REFERENCES users (id),
    reason       text
);
CREATE INDEX status_transitions_entity_idx ON status_transitions (entity_type, entity_id, id);
CREATE INDEX status_transitions_actor_idx ON status_transitions (actor_id);

-- Approval process definitions: which records (condition over the record) need which
-- ordered steps of approvers.
CREATE TABLE approval_definitions (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    object_type  text NOT NULL CHECK (object_type IN ('quote', 'contract', 'opportunity')),
    condition    jsonb,
    priority     integer NOT NULL DEFAULT 100,
    steps        jsonb NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1
);
CREATE INDEX approval_definitions_object_idx ON approval_definitions (object_type, priority) WHERE active;

CREATE TABLE approval_instances (
    id             uuid PRIMARY KEY,
    definition_id  uuid REFERENCES approval_definitions (id),
    object_type    text NOT NULL,
    object_id      uuid NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn', 'auto_approved')),
    requester_id   uuid NOT NULL REFERENCES users (id),
    owner_id       uuid NOT NULL REFERENCES users (id),
    current_step   integer,
    snapshot       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,
    version        integer NOT NULL DEFAULT 1
);
CREATE INDEX approval_instances_object_idx ON approval_instances (object_type, object_id, created_at);
CREATE INDEX approval_instances_definition_idx ON approval_instances (definition_id);
CREATE INDEX approval_instances_requester_idx ON approval_instances (requester_id);
CREATE INDEX approval_instances_owner_idx ON approval_instances (owner_id);
-- One live approval per record.
CREATE UNIQUE INDEX approval_instances_one_pending ON approval_instances (object_type, object_id) WHERE status = 'pending';

CREATE TABLE approval_tasks (
    id              uuid PRIMARY KEY,
    instance_id     uuid NOT NULL REFERENCES approval_instances (id),
    step_index      integer NOT NULL,
    approver_id     uuid NOT NULL REFERENCES users (id),
    status          text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'skipped', 'delegated', 'escalated', 'withdrawn')),
    comment         text,
    delegated_from  uuid REFERENCES approval_tasks (id),
    due_at          timestamptz,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- One open decision per approver and step.
CREATE UNIQUE INDEX approval_tasks_one_open ON approval_tasks (instance_id, step_index, approver_id) WHERE status = 'pending';
CREATE INDEX approval_tasks_instance_idx ON approval_tasks (instance_id, step_index);
CREATE INDEX approval_tasks_approver_idx ON approval_tasks (approver_id, status);
CREATE INDEX approval_tasks_delegated_from_idx ON approval_tasks (delegated_from);
CREATE INDEX approval_tasks_due_idx ON approval_tasks (due_at) WHERE status = 'pending';

CREATE TABLE approval_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  uuid NOT NULL REFERENCES approval_instances (id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid REFERENCES users (id),
    action       text NOT NULL,
    step_index   integer,
    comment      text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX approval_history_instance_idx ON approval_history (instance_id, id);
CREATE INDEX approval_history_actor_idx ON approval_history (actor_id);

-- Settings (contract numbering and the like).
CREATE TABLE settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings (key, value) VALUES
    ('contract_numbering', '{"prefix": "HT", "digits": 5}'),
    ('quote_numbering', '{"prefix": "BJ", "digits": 6}'),
    ('company', '{"name": "演示公司 Demo Co", "address": "上海市浦东新区", "phone": "021-60000000", "tax_id": "91310000DEMO00000X"}');

-- Gap-free numbering: one row per (series, year), locked by the allocating transaction.
CREATE TABLE number_sequences (
    series      text NOT NULL,
    year        integer NOT NULL,
    last_value  integer NOT NULL,
    PRIMARY KEY (series, year)
);

CREATE TABLE contracts (
    id               uuid PRIMARY KEY,
    number           text NOT NULL,
    opportunity_id   uuid NOT NULL REFERENCES opportunities (id),
    account_id       uuid NOT NULL REFERENCES accounts (id),
    quote_id         uuid REFERENCES quotes (id),
    title            text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    amount           numeric(18, 2) NOT NULL CHECK (amount >= 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    lines            jsonb NOT NULL DEFAULT '[]'::jsonb,
    status           text NOT NULL DEFAULT 'draft' CHECK (status IN
                     ('draft', 'legal_review', 'pending_signature', 'signed', 'active', 'completed', 'terminated')),
    start_date       date,
    end_date         date,
    signed_at        timestamptz,
    signed_copy_ref  text,
    terms            text,
    termination_reason text,
    owner_id         uuid NOT NULL REFERENCES users (id),
    team_id          uuid REFERENCES teams (id),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    version          integer NOT NULL DEFAULT 1,
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
);
CREATE UNIQUE INDEX contracts_number_key ON contracts (number);
CREATE INDEX contracts_opportunity_idx ON contracts (opportunity_id);
CREATE INDEX contracts_account_idx ON contracts (account_id);
CREATE INDEX contracts_quote_idx ON contracts (quote_id);
CREATE INDEX contracts_owner_idx ON contracts (owner_id, created_at, id);
CREATE INDEX contracts_team_idx ON contracts (team_id, created_at, id);
CREATE INDEX contracts_created_by_idx ON contracts (created_by);
CREATE INDEX contracts_status_idx ON contracts (status) WHERE deleted_at IS NULL;
CREATE INDEX contracts_created_at_idx ON contracts (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX contracts_updated_at_idx ON contracts (updated_at, id);

CREATE TABLE contract_amendments (
    id            uuid PRIMARY KEY,
    contract_id   uuid NOT NULL REFERENCES contracts (id),
    seq           integer NOT NULL,
    description   text NOT NULL,
    changes       jsonb NOT NULL,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (contract_id, seq)
);
CREATE INDEX contract_amendments_created_by_idx ON contract_amendments (created_by);

CREATE TABLE installments (
    id           uuid PRIMARY KEY,
    contract_id  uuid NOT NULL REFERENCES contracts (id),
    seq          integer NOT NULL,
    due_date     date NOT NULL,
    amount       numeric(18, 2) NOT NULL CHECK (amount > 0),
    note         text,
    UNIQUE (contract_id, seq)
);

CREATE TABLE invoices (
    id              uuid PRIMARY KEY,
    number          text NOT NULL,
    contract_id     uuid NOT NULL REFERENCES contracts (id),
    installment_id  uuid REFERENCES installments (id),
    amount          numeric(18, 2) NOT NULL CHECK (amount > 0),
    tax_amount      numeric(18, 2) NOT NULL DEFAULT 0,
    issued_on       date NOT NULL,
    status          text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'void')),
    owner_id        uuid NOT NULL REFERENCES users (id),
    team_id         uuid REFERENCES teams (id),
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX invoices_number_key ON invoices (number);
CREATE INDEX invoices_contract_idx ON invoices (contract_id);
CREATE INDEX invoices_installment_idx ON invoices (installment_id);
CREATE INDEX invoices_owner_idx ON invoices (owner_id, created_at, id);
CREATE INDEX invoices_team_idx ON invoices (team_id);
CREATE INDEX invoices_created_by_idx ON invoices (created_by);

CREATE TABLE payments (
    id           uuid PRIMARY KEY,
    contract_id  uuid NOT NULL REFERENCES contracts (id),
    account_id   uuid NOT NULL REFERENCES accounts (id),
    amount       numeric(18, 2) NOT NULL CHECK (amount > 0),
    received_on  date NOT NULL,
    method       text NOT NULL CHECK (method IN ('bank_transfer', 'cash', 'check', 'alipay', 'wechat_pay', 'card', 'other')),
    reference    text,
    note         text,
    owner_id     uuid NOT NULL REFERENCES users (id),
    team_id      uuid REFERENCES teams (id),
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1
);
CREATE INDEX payments_contract_idx ON payments (contract_id, received_on);
CREATE INDEX payments_account_idx ON payments (account_id, received_on);
CREATE INDEX payments_owner_idx ON payments (owner_id, created_at, id);
CREATE INDEX payments_team_idx ON payments (team_id);
CREATE INDEX payments_created_by_idx ON payments (created_by);
CREATE INDEX payments_received_idx ON payments (received_on, id);

CREATE TABLE payment_allocations (
    payment_id      uuid NOT NULL REFERENCES payments (id),
    installment_id  uuid NOT NULL REFERENCES installments (id),
    amount          numeric(18, 2) NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payment_id, installment_id)
);
CREATE INDEX payment_allocations_installment_idx ON payment_allocations (installment_id);

-- Permissions for the new resources.
INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, g.resource, g.action, g.scope
FROM (VALUES
    ('admin', 'products', 'read', 'all'), ('admin', 'products', 'admin', 'all'),
    ('admin', 'approvals', 'admin', 'all'), ('admin', 'settings', 'admin', 'all'),
    ('sales_director', 'products', 'read', 'all'), ('sales_manager', 'products', 'read', 'all'),
    ('sales_rep', 'products', 'read', 'all'), ('presales', 'products', 'read', 'all'),
    ('legal', 'products', 'read', 'all'), ('finance', 'products', 'read', 'all'), ('marketing', 'products', 'read', 'all')
) AS g (role_key, resource, action, scope)
JOIN roles r ON r.key = g.role_key;

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, w.resource, a.action, w.scope
FROM (VALUES
    ('admin', 'quotes', 'all'), ('admin', 'contracts', 'all'), ('admin', 'payments', 'all'),
    ('sales_director', 'quotes', 'all'), ('sales_director', 'contracts', 'all'), ('sales_director', 'payments', 'all'),
    ('sales_manager', 'quotes', 'team_and_below'), ('sales_manager', 'contracts', 'team_and_below'),
    ('finance', 'payments', 'all'), ('finance', 'contracts', 'all')
) AS w (role_key, resource, scope)
CROSS JOIN (VALUES ('read'), ('create'), ('update'), ('delete'), ('export')) AS a (action)
JOIN roles r ON r.key = w.role_key;

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, g.resource, g.action, g.scope
FROM (VALUES
    ('sales_rep', 'quotes', 'read', 'own'), ('sales_rep', 'quotes', 'create', 'own'), ('sales_rep', 'quotes', 'update', 'own'),
    ('sales_rep', 'quotes', 'delete', 'own'),
    ('sales_rep', 'contracts', 'read', 'own'), ('sales_rep', 'contracts', 'create', 'own'), ('sales_rep', 'contracts', 'update', 'own'),
    ('sales_rep', 'payments', 'read', 'own'), ('sales_manager', 'payments', 'read', 'team_and_below'),
    ('legal', 'contracts', 'read', 'all'), ('legal', 'quotes', 'read', 'all'),
    ('presales', 'quotes', 'read', 'all'), ('finance', 'quotes', 'read', 'all')
) AS g (role_key, resource, action, scope)
JOIN roles r ON r.key = g.role_key;

-- Default product catalogue and price book.
INSERT INTO price_books (id, name, currency, is_default) VALUES (gen_random_uuid(), '标准价目表 Standard CNY', 'CNY', true);

-- Seeded approval definitions (MISSION.md scenario 5, and legal review of contracts).
INSERT INTO approval_definitions (id, name, object_type, condition, priority, steps) VALUES
    (gen_random_uuid(), '大额折扣审批 Discount above 15%', 'quote',
     '{"field": "effective_discount_pct", "op": "gt", "value": "15"}', 10,
     '[{"name": "销售总监审批 Sales director", "approvers": {"kind": "role", "role": "sales_director"}, "mode": "any", "due_hours": 24}]'),
    (gen_random_uuid(), '合同法务审核 Legal review', 'contract', NULL, 10,
     '[{"name": "法务审核 Legal", "approvers": {"kind": "role", "role": "legal"}, "mode": "any", "due_hours": 48}]');

-- The seed's Won criterion: a customer-stamped contract or a prepayment received. Stages
-- still carrying the original seeded criteria get the contract and payment alternatives.
UPDATE stages SET entry_criteria =
    '[{"kind": "any_of", "criteria": [
        {"kind": "contract_signed"},
        {"kind": "payment_received"},
        {"kind": "all_of", "criteria": [
            {"kind": "task_done", "stage": "closing", "task": "contract_signed"},
            {"kind": "output_attached", "output": "signed_contract"}]}]}]'::jsonb
WHERE kind = 'won' AND entry_criteria = '[{"kind":"task_done","stage":"closing","task":"contract_signed"},
       {"kind":"output_attached","output":"signed_contract"}]'::jsonb;
