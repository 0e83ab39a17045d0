// @generated automatically by Diesel CLI.

diesel::table! {
    account_tier_history (id) {
        id -> Int8,
        account_id -> Uuid,
        tier_from -> Nullable<Text>,
        tier_to -> Nullable<Text>,
        cause -> Text,
        metrics -> Jsonb,
        rule_index -> Nullable<Int4>,
        changed_at -> Timestamptz,
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
        last_activity_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    activities (id) {
        id -> Uuid,
        activity_type -> Text,
        subject -> Text,
        content -> Nullable<Text>,
        occurred_at -> Timestamptz,
        duration_minutes -> Nullable<Int4>,
        outcome -> Nullable<Text>,
        next_step -> Nullable<Text>,
        lead_id -> Nullable<Uuid>,
        account_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        opportunity_id -> Nullable<Uuid>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    activity_day_totals (day, activity_type, owner_id, team_id) {
        day -> Date,
        activity_type -> Text,
        owner_id -> Uuid,
        team_id -> Uuid,
        activities -> Int8,
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
    approval_definitions (id) {
        id -> Uuid,
        name -> Text,
        object_type -> Text,
        condition -> Nullable<Jsonb>,
        priority -> Int4,
        steps -> Jsonb,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    approval_history (id) {
        id -> Int8,
        instance_id -> Uuid,
        at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        step_index -> Nullable<Int4>,
        comment -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    approval_instances (id) {
        id -> Uuid,
        definition_id -> Nullable<Uuid>,
        object_type -> Text,
        object_id -> Uuid,
        status -> Text,
        requester_id -> Uuid,
        owner_id -> Uuid,
        current_step -> Nullable<Int4>,
        snapshot -> Jsonb,
        created_at -> Timestamptz,
        decided_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    approval_tasks (id) {
        id -> Uuid,
        instance_id -> Uuid,
        step_index -> Int4,
        approver_id -> Uuid,
        status -> Text,
        comment -> Nullable<Text>,
        delegated_from -> Nullable<Uuid>,
        due_at -> Nullable<Timestamptz>,
        decided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
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
        rule_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    background_jobs (id) {
        id -> Int8,
        queue -> Text,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        priority -> Int2,
        run_at -> Timestamptz,
        attempts -> Int4,
        max_attempts -> Int4,
        unique_key -> Nullable<Text>,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
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
        last_activity_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    contract_amendments (id) {
        id -> Uuid,
        contract_id -> Uuid,
        seq -> Int4,
        description -> Text,
        changes -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contracts (id) {
        id -> Uuid,
        number -> Text,
        opportunity_id -> Uuid,
        account_id -> Uuid,
        quote_id -> Nullable<Uuid>,
        title -> Text,
        amount -> Numeric,
        currency -> Text,
        lines -> Jsonb,
        status -> Text,
        start_date -> Nullable<Date>,
        end_date -> Nullable<Date>,
        signed_at -> Nullable<Timestamptz>,
        signed_copy_ref -> Nullable<Text>,
        terms -> Nullable<Text>,
        termination_reason -> Nullable<Text>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    field_definitions (id) {
        id -> Uuid,
        object -> Text,
        key -> Text,
        label_zh -> Text,
        label_en -> Text,
        help_text -> Nullable<Text>,
        field_type -> Text,
        required -> Bool,
        required_from_stage_id -> Nullable<Uuid>,
        default_value -> Nullable<Jsonb>,
        position -> Int4,
        group_name -> Nullable<Text>,
        settings -> Jsonb,
        filterable -> Bool,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
        searchable -> Bool,
    }
}

diesel::table! {
    field_permissions (role_id, object, field) {
        role_id -> Uuid,
        object -> Text,
        field -> Text,
        access -> Text,
    }
}

diesel::table! {
    flagged_values (object, field_key, record_id) {
        object -> Text,
        record_id -> Uuid,
        field_key -> Text,
        value -> Nullable<Jsonb>,
        reason -> Text,
        flagged_at -> Timestamptz,
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
    installments (id) {
        id -> Uuid,
        contract_id -> Uuid,
        seq -> Int4,
        due_date -> Date,
        amount -> Numeric,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    invoices (id) {
        id -> Uuid,
        number -> Text,
        contract_id -> Uuid,
        installment_id -> Nullable<Uuid>,
        amount -> Numeric,
        tax_amount -> Numeric,
        issued_on -> Date,
        status -> Text,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    job_schedules (name) {
        name -> Text,
        queue -> Text,
        kind -> Text,
        every_secs -> Int4,
        next_run_at -> Timestamptz,
        last_run_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    layouts (id) {
        id -> Uuid,
        object -> Text,
        pipeline_id -> Nullable<Uuid>,
        name -> Text,
        sections -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    lead_slas (lead_id) {
        lead_id -> Uuid,
        assigned_at -> Timestamptz,
        due_at -> Timestamptz,
        status -> Text,
        responded_at -> Nullable<Timestamptz>,
        response_minutes -> Nullable<Int4>,
    }
}

diesel::table! {
    leads (id) {
        id -> Uuid,
        person_name -> Text,
        company -> Nullable<Text>,
        title -> Nullable<Text>,
        mobile -> Nullable<Text>,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        source -> Text,
        campaign -> Nullable<Text>,
        region -> Nullable<Text>,
        industry -> Nullable<Text>,
        tags -> Array<Text>,
        estimated_budget -> Nullable<Numeric>,
        notes -> Nullable<Text>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        status -> Text,
        disqualify_reason -> Nullable<Text>,
        assigned_at -> Nullable<Timestamptz>,
        first_response_at -> Nullable<Timestamptz>,
        last_activity_at -> Nullable<Timestamptz>,
        converted_at -> Nullable<Timestamptz>,
        converted_account_id -> Nullable<Uuid>,
        converted_contact_id -> Nullable<Uuid>,
        converted_opportunity_id -> Nullable<Uuid>,
        custom -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    login_known_addresses (user_id, address) {
        user_id -> Uuid,
        address -> Text,
        last_success_at -> Timestamptz,
    }
}

diesel::table! {
    login_security (user_id) {
        user_id -> Uuid,
        failed_since_login -> Int4,
        last_failed_at -> Nullable<Timestamptz>,
        last_failed_from -> Nullable<Text>,
        locked_notice_at -> Nullable<Timestamptz>,
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
    notification_mutes (user_id, kind) {
        user_id -> Uuid,
        kind -> Text,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        event_id -> Uuid,
        object_type -> Text,
        object_id -> Uuid,
        title_zh -> Text,
        title_en -> Text,
        created_at -> Timestamptz,
        read_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    number_sequences (series, year) {
        series -> Text,
        year -> Int4,
        last_value -> Int4,
    }
}

diesel::table! {
    opportunities (id) {
        id -> Uuid,
        name -> Text,
        account_id -> Uuid,
        primary_contact_id -> Nullable<Uuid>,
        pipeline_id -> Uuid,
        stage_id -> Uuid,
        amount -> Nullable<Numeric>,
        currency -> Text,
        expected_close_date -> Nullable<Date>,
        probability -> Int4,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        source_lead_id -> Nullable<Uuid>,
        competitors -> Array<Text>,
        next_step -> Nullable<Text>,
        status -> Text,
        lost_reason -> Nullable<Text>,
        closed_at -> Nullable<Timestamptz>,
        stage_entered_at -> Timestamptz,
        last_activity_at -> Nullable<Timestamptz>,
        custom -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
        forecast_category -> Nullable<Text>,
    }
}

diesel::table! {
    opportunity_checklist (opportunity_id, stage_id, task_code) {
        opportunity_id -> Uuid,
        stage_id -> Uuid,
        task_code -> Text,
        done -> Bool,
        changed_by -> Nullable<Uuid>,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    opportunity_contacts (opportunity_id, contact_id) {
        opportunity_id -> Uuid,
        contact_id -> Uuid,
        role -> Text,
    }
}

diesel::table! {
    opportunity_day_totals (close_date, stage_id, owner_id, team_id, currency) {
        close_date -> Date,
        stage_id -> Uuid,
        owner_id -> Uuid,
        team_id -> Uuid,
        currency -> Text,
        deals -> Int8,
        amount -> Numeric,
        amount_x_prob -> Numeric,
    }
}

diesel::table! {
    opportunity_forecast_totals (close_date, stage_id, forecast_category, owner_id, team_id, currency) {
        close_date -> Date,
        stage_id -> Uuid,
        forecast_category -> Text,
        owner_id -> Uuid,
        team_id -> Uuid,
        currency -> Text,
        deals -> Int8,
        amount -> Numeric,
        amount_x_prob -> Numeric,
    }
}

diesel::table! {
    opportunity_month_totals (stage_id, close_month, owner_id, team_id, currency) {
        stage_id -> Uuid,
        close_month -> Date,
        owner_id -> Uuid,
        team_id -> Uuid,
        deals -> Int8,
        amount -> Numeric,
        amount_x_prob -> Numeric,
        currency -> Text,
    }
}

diesel::table! {
    opportunity_outputs (id) {
        id -> Uuid,
        opportunity_id -> Uuid,
        stage_id -> Uuid,
        output_code -> Nullable<Text>,
        title -> Text,
        notes -> Nullable<Text>,
        url -> Nullable<Text>,
        file_ref -> Nullable<Text>,
        author_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    opportunity_stage_totals (stage_id, owner_id, team_id, currency) {
        stage_id -> Uuid,
        owner_id -> Uuid,
        team_id -> Uuid,
        deals -> Int8,
        amount -> Numeric,
        amount_x_prob -> Numeric,
        currency -> Text,
    }
}

diesel::table! {
    outbox_commits (seq) {
        seq -> Int8,
        tx_id -> Int8,
        committed_at -> Timestamptz,
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
        event_id -> Uuid,
        tx_id -> Nullable<Int8>,
    }
}

diesel::table! {
    outbox_subscribers (name) {
        name -> Text,
        position -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    payment_allocations (payment_id, installment_id) {
        payment_id -> Uuid,
        installment_id -> Uuid,
        amount -> Numeric,
    }
}

diesel::table! {
    payments (id) {
        id -> Uuid,
        contract_id -> Uuid,
        account_id -> Uuid,
        amount -> Numeric,
        received_on -> Date,
        method -> Text,
        reference -> Nullable<Text>,
        note -> Nullable<Text>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        version -> Int4,
        prepayment -> Bool,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        is_default -> Bool,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    price_book_entries (price_book_id, product_id) {
        price_book_id -> Uuid,
        product_id -> Uuid,
        unit_price -> Numeric,
    }
}

diesel::table! {
    price_books (id) {
        id -> Uuid,
        name -> Text,
        currency -> Text,
        tier -> Nullable<Text>,
        is_default -> Bool,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    products (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        unit -> Text,
        category -> Nullable<Text>,
        list_price -> Numeric,
        standard_cost -> Numeric,
        tax_rate -> Numeric,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    quote_lines (id) {
        id -> Uuid,
        quote_id -> Uuid,
        position -> Int4,
        product_id -> Nullable<Uuid>,
        description -> Text,
        unit -> Nullable<Text>,
        quantity -> Numeric,
        unit_list_price -> Numeric,
        unit_price -> Numeric,
        discount_pct -> Numeric,
        tax_rate -> Numeric,
        unit_cost -> Numeric,
        list_amount -> Numeric,
        net_amount -> Numeric,
        tax_amount -> Numeric,
        total -> Numeric,
    }
}

diesel::table! {
    quotes (id) {
        id -> Uuid,
        opportunity_id -> Uuid,
        number -> Text,
        revision -> Int4,
        status -> Text,
        currency -> Text,
        price_book_id -> Nullable<Uuid>,
        valid_until -> Nullable<Date>,
        header_discount_pct -> Numeric,
        list_total -> Numeric,
        subtotal -> Numeric,
        discount_amount -> Numeric,
        net_amount -> Numeric,
        tax_amount -> Numeric,
        total -> Numeric,
        effective_discount_pct -> Numeric,
        cost_total -> Numeric,
        gross_margin -> Numeric,
        terms -> Nullable<Text>,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        status_changed_at -> Timestamptz,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
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
    role_permissions (role_id, resource, action) {
        role_id -> Uuid,
        resource -> Text,
        action -> Text,
        scope -> Text,
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
    scope_departures (id) {
        id -> Int8,
        resource -> Text,
        record_id -> Uuid,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        left_at -> Timestamptz,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    dashboards (id) {
        id -> Uuid,
        owner_id -> Nullable<Uuid>,
        team_id -> Nullable<Uuid>,
        name -> Text,
        period -> Text,
        granularity -> Text,
        widgets -> Jsonb,
        shared_with_roles -> Array<Text>,
        shared_with_teams -> Array<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    report_deliveries (id) {
        id -> Uuid,
        subscription_id -> Uuid,
        occurrence -> Timestamptz,
        status -> Text,
        detail -> Jsonb,
        notified -> Int4,
        channel_queued -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    report_rollup_state (id) {
        id -> Bool,
        utc_offset_hours -> Int4,
    }
}

diesel::table! {
    report_schedules (subscription_id) {
        subscription_id -> Uuid,
        next_run_at -> Timestamptz,
        last_run_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    report_subscriptions (id) {
        id -> Uuid,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        name -> Text,
        saved_report_id -> Nullable<Uuid>,
        dashboard_id -> Nullable<Uuid>,
        schedule -> Text,
        period -> Nullable<Text>,
        recipients -> Array<Uuid>,
        channel_id -> Nullable<Uuid>,
        alert -> Nullable<Jsonb>,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    saved_reports (id) {
        id -> Uuid,
        owner_id -> Nullable<Uuid>,
        team_id -> Nullable<Uuid>,
        name -> Text,
        report -> Text,
        params -> Jsonb,
        shared_with_roles -> Array<Text>,
        shared_with_teams -> Array<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    sales_targets (id) {
        id -> Uuid,
        owner_id -> Nullable<Uuid>,
        team_id -> Nullable<Uuid>,
        metric -> Text,
        period_from -> Date,
        period_to -> Date,
        currency -> Nullable<Text>,
        target -> Numeric,
        note -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    stage_history (id) {
        id -> Int8,
        opportunity_id -> Uuid,
        from_stage_id -> Nullable<Uuid>,
        to_stage_id -> Uuid,
        entered_at -> Timestamptz,
        left_at -> Nullable<Timestamptz>,
        changed_by -> Nullable<Uuid>,
        amount -> Nullable<Numeric>,
        probability -> Nullable<Int4>,
        reason -> Nullable<Text>,
        next_stage_id -> Nullable<Uuid>,
        prev_entered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    stage_win_totals (entered_on, prev_on, stage_id, owner_id, team_id) {
        entered_on -> Date,
        prev_on -> Date,
        stage_id -> Uuid,
        owner_id -> Uuid,
        team_id -> Uuid,
        visits -> Int8,
        won_visits -> Int8,
        won_secs -> Numeric,
    }
}

diesel::table! {
    stages (id) {
        id -> Uuid,
        pipeline_id -> Uuid,
        code -> Text,
        name -> Text,
        kind -> Text,
        position -> Int4,
        probability -> Int4,
        key_tasks -> Jsonb,
        required_outputs -> Jsonb,
        entry_criteria -> Jsonb,
        stalled_after_days -> Nullable<Int4>,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
        forecast_category -> Text,
    }
}

diesel::table! {
    status_transitions (id) {
        id -> Int8,
        entity_type -> Text,
        entity_id -> Uuid,
        from_status -> Nullable<Text>,
        to_status -> Text,
        at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    tasks (id) {
        id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        due_at -> Nullable<Timestamptz>,
        reminder_at -> Nullable<Timestamptz>,
        priority -> Text,
        owner_id -> Uuid,
        team_id -> Nullable<Uuid>,
        status -> Text,
        completed_at -> Nullable<Timestamptz>,
        related_type -> Nullable<Text>,
        related_id -> Nullable<Uuid>,
        origin -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    teams (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        parent_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
        region -> Nullable<Text>,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> Uuid,
        role_id -> Uuid,
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

diesel::joinable!(account_tier_history -> accounts (account_id));
diesel::joinable!(accounts -> teams (team_id));
diesel::joinable!(activities -> accounts (account_id));
diesel::joinable!(activities -> contacts (contact_id));
diesel::joinable!(activities -> leads (lead_id));
diesel::joinable!(activities -> opportunities (opportunity_id));
diesel::joinable!(activities -> teams (team_id));
diesel::joinable!(api_keys -> roles (role_id));
diesel::joinable!(approval_history -> approval_instances (instance_id));
diesel::joinable!(approval_history -> users (actor_id));
diesel::joinable!(approval_instances -> approval_definitions (definition_id));
diesel::joinable!(approval_tasks -> approval_instances (instance_id));
diesel::joinable!(approval_tasks -> users (approver_id));
diesel::joinable!(audit_log -> api_keys (api_key_id));
diesel::joinable!(audit_log -> users (actor_id));
diesel::joinable!(contacts -> accounts (account_id));
diesel::joinable!(contacts -> teams (team_id));
diesel::joinable!(contract_amendments -> contracts (contract_id));
diesel::joinable!(contract_amendments -> users (created_by));
diesel::joinable!(contracts -> accounts (account_id));
diesel::joinable!(contracts -> opportunities (opportunity_id));
diesel::joinable!(contracts -> quotes (quote_id));
diesel::joinable!(contracts -> teams (team_id));
diesel::joinable!(field_definitions -> stages (required_from_stage_id));
diesel::joinable!(field_permissions -> roles (role_id));
diesel::joinable!(installments -> contracts (contract_id));
diesel::joinable!(invoices -> contracts (contract_id));
diesel::joinable!(invoices -> installments (installment_id));
diesel::joinable!(invoices -> teams (team_id));
diesel::joinable!(layouts -> pipelines (pipeline_id));
diesel::joinable!(leads -> accounts (converted_account_id));
diesel::joinable!(leads -> contacts (converted_contact_id));
diesel::joinable!(leads -> teams (team_id));
diesel::joinable!(login_known_addresses -> users (user_id));
diesel::joinable!(login_security -> users (user_id));
diesel::joinable!(opportunities -> accounts (account_id));
diesel::joinable!(opportunities -> contacts (primary_contact_id));
diesel::joinable!(opportunities -> pipelines (pipeline_id));
diesel::joinable!(opportunities -> stages (stage_id));
diesel::joinable!(opportunities -> teams (team_id));
diesel::joinable!(opportunity_checklist -> opportunities (opportunity_id));
diesel::joinable!(opportunity_checklist -> stages (stage_id));
diesel::joinable!(opportunity_checklist -> users (changed_by));
diesel::joinable!(opportunity_contacts -> contacts (contact_id));
diesel::joinable!(opportunity_contacts -> opportunities (opportunity_id));
diesel::joinable!(opportunity_day_totals -> stages (stage_id));
diesel::joinable!(opportunity_day_totals -> users (owner_id));
diesel::joinable!(opportunity_forecast_totals -> stages (stage_id));
diesel::joinable!(opportunity_forecast_totals -> users (owner_id));
diesel::joinable!(opportunity_month_totals -> stages (stage_id));
diesel::joinable!(opportunity_month_totals -> users (owner_id));
diesel::joinable!(opportunity_outputs -> opportunities (opportunity_id));
diesel::joinable!(opportunity_outputs -> stages (stage_id));
diesel::joinable!(opportunity_outputs -> users (author_id));
diesel::joinable!(opportunity_stage_totals -> stages (stage_id));
diesel::joinable!(opportunity_stage_totals -> users (owner_id));
diesel::joinable!(notification_mutes -> users (user_id));
diesel::joinable!(notifications -> users (user_id));
diesel::joinable!(outbox_events -> users (actor_id));
diesel::joinable!(payment_allocations -> installments (installment_id));
diesel::joinable!(payment_allocations -> payments (payment_id));
diesel::joinable!(payments -> accounts (account_id));
diesel::joinable!(payments -> contracts (contract_id));
diesel::joinable!(payments -> teams (team_id));
diesel::joinable!(price_book_entries -> price_books (price_book_id));
diesel::joinable!(price_book_entries -> products (product_id));
diesel::joinable!(quote_lines -> products (product_id));
diesel::joinable!(quote_lines -> quotes (quote_id));
diesel::joinable!(quotes -> opportunities (opportunity_id));
diesel::joinable!(quotes -> price_books (price_book_id));
diesel::joinable!(quotes -> teams (team_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(sales_targets -> teams (team_id));
diesel::joinable!(dashboards -> teams (team_id));
diesel::joinable!(dashboards -> users (owner_id));
diesel::joinable!(report_deliveries -> report_subscriptions (subscription_id));
diesel::joinable!(report_schedules -> report_subscriptions (subscription_id));
diesel::joinable!(report_subscriptions -> dashboards (dashboard_id));
diesel::joinable!(report_subscriptions -> saved_reports (saved_report_id));
diesel::joinable!(report_subscriptions -> teams (team_id));
diesel::joinable!(report_subscriptions -> users (owner_id));
diesel::joinable!(saved_reports -> teams (team_id));
diesel::joinable!(saved_reports -> users (owner_id));
diesel::joinable!(stage_history -> opportunities (opportunity_id));
diesel::joinable!(stage_history -> users (changed_by));
diesel::joinable!(stage_win_totals -> stages (stage_id));
diesel::joinable!(stages -> pipelines (pipeline_id));
diesel::joinable!(status_transitions -> users (actor_id));
diesel::joinable!(tasks -> teams (team_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(users -> teams (team_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_tier_history,
    accounts,
    activities,
    activity_day_totals,
    api_keys,
    approval_definitions,
    approval_history,
    approval_instances,
    approval_tasks,
    audit_log,
    background_jobs,
    contacts,
    contract_amendments,
    contracts,
    field_definitions,
    field_permissions,
    flagged_values,
    idempotency_keys,
    installments,
    invoices,
    job_schedules,
    layouts,
    lead_slas,
    leads,
    login_known_addresses,
    login_security,
    login_throttle,
    notification_mutes,
    notifications,
    number_sequences,
    opportunities,
    opportunity_checklist,
    opportunity_contacts,
    opportunity_day_totals,
    opportunity_forecast_totals,
    opportunity_month_totals,
    opportunity_outputs,
    opportunity_stage_totals,
    outbox_commits,
    outbox_events,
    outbox_subscribers,
    payment_allocations,
    payments,
    pipelines,
    price_book_entries,
    price_books,
    products,
    quote_lines,
    quotes,
    refresh_tokens,
    role_permissions,
    roles,
    report_deliveries,
    report_rollup_state,
    report_schedules,
    report_subscriptions,
    dashboards,
    sales_targets,
    saved_reports,
    scope_departures,
    settings,
    stage_history,
    stage_win_totals,
    stages,
    status_transitions,
    tasks,
    teams,
    user_roles,
    users,
);
