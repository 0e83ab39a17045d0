DROP TABLE IF EXISTS assignment_pauses;
