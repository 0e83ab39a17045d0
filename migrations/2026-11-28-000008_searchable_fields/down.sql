DO $$
DECLARE d record;
BEGIN
    FOR d IN SELECT object, key FROM field_definitions WHERE searchable LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', d.object || '_cfs_' || d.key || '_idx');
    END LOOP;
END $$;
ALTER TABLE field_definitions DROP COLUMN searchable;
