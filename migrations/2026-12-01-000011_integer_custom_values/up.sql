-- Integer custom values are JSON integers (they were decimal strings such as "90"), as
-- `/meta` and the OpenAPI document say. Filters and sorts read them through crm_num()
-- either way.
DO $$
DECLARE d record;
BEGIN
    FOR d IN SELECT object, key FROM field_definitions WHERE field_type = 'integer' LOOP
        EXECUTE format(
            'UPDATE %I SET custom = jsonb_set(custom, ARRAY[%L], to_jsonb((custom->>%L)::numeric::bigint)) '
            'WHERE jsonb_typeof(custom->%L) = ''string'' AND (custom->>%L) ~ ''^-?[0-9]+$''',
            d.object, d.key, d.key, d.key, d.key);
    END LOOP;
END $$;
