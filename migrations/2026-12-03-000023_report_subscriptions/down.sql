DROP TABLE report_deliveries;
DROP TABLE report_schedules;
DROP TABLE report_subscriptions;
