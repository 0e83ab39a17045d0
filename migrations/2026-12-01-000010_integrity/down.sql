DROP TABLE login_security;
DROP TABLE login_known_addresses;
DROP TRIGGER opportunities_scope_departure ON opportunities;
DROP TRIGGER leads_scope_departure ON leads;
DROP TRIGGER contacts_scope_departure ON contacts;
DROP TRIGGER accounts_scope_departure ON accounts;
DROP FUNCTION record_scope_departure();
DROP TABLE scope_departures;
DELETE FROM settings WHERE key = 'payments';
ALTER TABLE payments DROP COLUMN prepayment;
UPDATE approval_definitions
SET condition = '{"field": "effective_discount_pct", "op": "gt", "value": "15"}'::jsonb,
    name = '大额折扣审批 Discount above 15%'
WHERE object_type = 'quote'
  AND condition = '{"any": [{"field": "effective_discount_pct", "op": "gt", "value": "15"},
                            {"field": "free_text_lines", "op": "gt", "value": 0}]}'::jsonb;
DELETE FROM field_permissions WHERE object IN ('products', 'quotes');
ALTER TABLE field_permissions DROP CONSTRAINT field_permissions_object_check;
ALTER TABLE field_permissions ADD CONSTRAINT field_permissions_object_check
    CHECK (object IN ('accounts', 'contacts', 'leads', 'opportunities'));
DELETE FROM role_permissions WHERE action = 'reopen';
ALTER TABLE role_permissions DROP CONSTRAINT role_permissions_action_check;
ALTER TABLE role_permissions ADD CONSTRAINT role_permissions_action_check
    CHECK (action IN ('read', 'create', 'update', 'delete', 'export', 'assign', 'admin'));
