DELETE FROM outbox_subscribers WHERE name = 'tiering';
DROP TABLE account_tier_history;
