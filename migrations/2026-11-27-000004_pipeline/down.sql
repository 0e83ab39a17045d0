DELETE FROM role_permissions
WHERE resource IN ('leads', 'opportunities', 'activities', 'tasks', 'pipelines');
ALTER TABLE leads DROP CONSTRAINT leads_converted_opportunity_fkey;
DROP TABLE tasks;
DROP TABLE activities;
DROP TABLE opportunity_outputs;
DROP TABLE opportunity_checklist;
DROP TABLE stage_history;
DROP TABLE opportunity_contacts;
DROP TABLE opportunities;
DROP TABLE stages;
DROP TABLE pipelines;
DROP TABLE leads;
ALTER TABLE contacts DROP COLUMN last_activity_at;
ALTER TABLE accounts DROP COLUMN last_activity_at;
