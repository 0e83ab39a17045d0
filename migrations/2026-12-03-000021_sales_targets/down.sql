DELETE FROM role_permissions WHERE resource = 'sales_targets';
DROP TABLE sales_targets;
