// Hand-maintained diesel schema; mirrors migrations/ (checked by the test suite, which
// runs every query against a migrated database).

diesel::table! {
    teams (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        parent_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Nullable<Text>,
        phone -> Nullable<Text>,
        team_id -> Nullable<Uuid>,
        manager_id -> Nullable<Uuid>,
        is_active -> Bool,
        is_service -> Bool,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    roles (id) {
        id -> Uuid,
        key -> Text,
        name -> Text,
        description -> Nullable<Text>,
        builtin -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    role_permissions (role_id, resource, action) {
        role_id -> Uuid,
        resource -> Text,
        action -> Text,
        scope -> Text,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> Uuid,
        role_id -> Uuid,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        name -> Text,
        user_id -> Uuid,
        role_id -> Uuid,
        prefix -> Text,
        key_hash -> Bytea,
        created_by -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_throttle (key) {
        key -> Text,
        failures -> Int4,
        window_started_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        api_key_id -> Nullable<Uuid>,
        request_id -> Nullable<Text>,
        entity_type -> Text,
        entity_id -> Uuid,
        action -> Text,
        changes -> Jsonb,
    }
}

diesel::table! {
    outbox_events (id) {
        id -> Int8,
        event_type -> Text,
        aggregate_type -> Text,
        aggregate_id -> Uuid,
        payload -> Jsonb,
        actor_id -> Nullable<Uuid>,
        occurred_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    idempotency_keys (owner, key) {
        owner -> Text,
        key -> Text,
        request_hash -> Bytea,
        status_code -> Int4,
        response_body -> Jsonb,
        location -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    accounts (id) {
        id -> Uuid,
        name -> Text,
        name_norm -> Text,
        account_type -> Text,
        industry -> Nullable<Text>,
        region -> Nullable<Text>,
        address -> Nullable<Text>,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        website -> Nullable<Text>,
        tier -> Nullable<Text>,
        source -> Nullable<Text>,
        parent_id -> Nullable<Uuid>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        notes -> Nullable<Text>,
        custom -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    contacts (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        name_norm -> Text,
        title -> Nullable<Text>,
        department -> Nullable<Text>,
        mobile -> Nullable<Text>,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        wechat -> Nullable<Text>,
        birthday -> Nullable<Date>,
        decision_role -> Nullable<Text>,
        preferences -> Nullable<Text>,
        pain_points -> Nullable<Text>,
        notes -> Nullable<Text>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        custom -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::joinable!(users -> teams (team_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(api_keys -> roles (role_id));
diesel::joinable!(contacts -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    teams,
    users,
    roles,
    role_permissions,
    user_roles,
    refresh_tokens,
    api_keys,
    login_throttle,
    audit_log,
    outbox_events,
    idempotency_keys,
    accounts,
    contacts,
);
