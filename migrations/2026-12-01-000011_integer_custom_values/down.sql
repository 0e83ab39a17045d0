DO $$
DECLARE d record;
BEGIN
    FOR d IN SELECT object, key FROM field_definitions WHERE field_type = 'integer' LOOP
        EXECUTE format(
            'UPDATE %I SET custom = jsonb_set(custom, ARRAY[%L], to_jsonb(custom->>%L)) '
            'WHERE jsonb_typeof(custom->%L) = ''number''',
            d.object, d.key, d.key, d.key);
    END LOOP;
END $$;
