-- Custom text fields can join the list's `q` search; each searchable field gets a
-- trigram index on its value (created by the field-definition endpoints).
ALTER TABLE field_definitions ADD COLUMN searchable boolean NOT NULL DEFAULT false;
ALTER TABLE field_definitions ADD CONSTRAINT field_definitions_searchable_text
    CHECK (NOT searchable OR field_type IN ('text', 'long_text', 'email', 'phone', 'url'));
