DROP TABLE dashboards;
DROP TABLE saved_reports;
